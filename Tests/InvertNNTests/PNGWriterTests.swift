import Testing
import Foundation
import CZlib
import InvertNN
import InvertNNPlots

@Suite struct PNGWriterTests {
    private func bigEndian(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Parses chunks, checking each CRC; returns (type, data) pairs.
    private func chunks(_ file: [UInt8]) -> [(String, [UInt8])] {
        var out = [(String, [UInt8])]()
        var i = 8
        while i + 12 <= file.count {
            let length = Int(bigEndian(file[i..<(i + 4)]))
            let type = String(decoding: file[(i + 4)..<(i + 8)], as: UTF8.self)
            let data = Array(file[(i + 8)..<(i + 8 + length)])
            let stored = bigEndian(file[(i + 8 + length)..<(i + 12 + length)])
            let typeAndData = Array(file[(i + 4)..<(i + 8 + length)])
            let crc = typeAndData.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
            #expect(crc == stored, "CRC of \(type)")
            out.append((type, data))
            i += 12 + length
        }
        #expect(i == file.count, "no trailing bytes")
        return out
    }

    @Test func encodesAValidGreyscalePNG() throws {
        let width = 5, height = 3
        let pixels = (0..<(width * height)).map { UInt8($0 * 17) }
        let image = try GreyscaleImage(width: width, height: height, pixels: pixels)
        let path = temporaryPath("image.png")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PNGWriter.write(image, to: path)
        let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(Array(file.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let parts = chunks(file)
        #expect(parts.map(\.0) == ["IHDR", "tEXt", "IDAT", "IEND"])
        #expect(parts[1].1 == Array("Software".utf8) + [0] + Array("invertnn".utf8))
        let ihdr = parts[0].1
        #expect(ihdr.count == 13)
        #expect(bigEndian(ihdr[0..<4]) == 5 && bigEndian(ihdr[4..<8]) == 3)
        #expect(Array(ihdr[8..<13]) == [8, 0, 0, 0, 0])  // depth 8, greyscale, deflate, filter 0, no interlace
        #expect(parts[3].1.isEmpty)
        // Inflate IDAT: each scanline is filter byte 0 and the row's pixels.
        let idat = parts[2].1
        var raw = [UInt8](repeating: 0, count: (width + 1) * height)
        var rawCount = UInt(raw.count)
        let status = raw.withUnsafeMutableBufferPointer { dst in
            idat.withUnsafeBufferPointer { uncompress(dst.baseAddress, &rawCount, $0.baseAddress, UInt($0.count)) }
        }
        #expect(status == Z_OK)
        #expect(Int(rawCount) == raw.count)
        for r in 0..<height {
            #expect(raw[r * (width + 1)] == 0)
            #expect(Array(raw[(r * (width + 1) + 1)..<((r + 1) * (width + 1))]) == Array(pixels[(r * width)..<((r + 1) * width)]))
        }
        // No temporary file is left behind.
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasPrefix(".\(URL(fileURLWithPath: path).lastPathComponent).tmp") }
        #expect(leftovers.isEmpty)
    }

    @Test func gridTilesAndUpscales() throws {
        // Two 2×2 images in a grid of 2 columns, scale 3, spacing 1.
        let images = try Matrix<Double>(rows: 2, columns: 4, storage: [0, 1, 0.5, 0, 1, 1, 1, 2])
        let grid = try GreyscaleImage.grid(images, height: 2, width: 2, columns: 2, scale: 3, spacing: 1, background: 7)
        #expect(grid.width == 2 * (6 + 1) + 1 && grid.height == 6 + 2)
        #expect(grid.pixels[0] == 7)                       // border
        #expect(grid.pixels[1 * grid.width + 1] == 0)      // image 0, pixel (0,0)
        #expect(grid.pixels[3 * grid.width + 6] == 255)    // image 0, pixel (0,1), last upscaled row/col
        #expect(grid.pixels[4 * grid.width + 1] == 128)    // image 0, pixel (1,0) = 0.5
        #expect(grid.pixels[1 * grid.width + 7] == 7)      // spacing between tiles
        #expect(grid.pixels[6 * grid.width + 13] == 255)   // image 1, pixel (1,1) = 2 clamped to 1
        #expect(throws: InvertNNError.self) {
            try GreyscaleImage.grid(images, height: 3, width: 2, columns: 2)
        }
        #expect(throws: InvertNNError.self) { try GreyscaleImage(width: 2, height: 2, pixels: [1, 2, 3]) }
    }

    @Test func unwritablePathThrows() throws {
        let image = try GreyscaleImage(width: 1, height: 1)
        #expect(throws: InvertNNError.self) { try PNGWriter.write(image, to: "/nonexistent/dir/x.png") }
    }
}
