import InvertNN
import RealModule
import CZlib
import Foundation

/// Writes 8-bit greyscale PNG files (PNG specification, ISO/IEC 15948:2003 / W3C PNG 2nd ed.).
///
/// The file is the 8-byte signature followed by four chunks, each `length · type · data · CRC-32`
/// (CRC over type and data, zlib's `crc32`):
/// `IHDR` (width, height, bit depth 8, colour type 0 = greyscale, compression 0, filter 0,
/// interlace 0), a `tEXt` chunk `Software` = ``software`` (so that the CLI knows its own pictures
/// from others), one `IDAT` holding the zlib stream (`compress2`, level 9) of the scanlines, each
/// prefixed with filter type 0 (None), and an empty `IEND`.
public enum PNGWriter {
    /// The 8-byte PNG signature.
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The `Software` text every file carries.
    public static let software = "invertnn"

    /// The PNG file bytes of `image`.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` (path `"<png>"`) if zlib fails to compress.
    public static func encode(_ image: GreyscaleImage) throws -> [UInt8] {
        var raw = [UInt8]()
        raw.reserveCapacity((image.width + 1) * image.height)
        for r in 0..<image.height {
            raw.append(0)
            raw.append(contentsOf: image.pixels[(r * image.width)..<((r + 1) * image.width)])
        }
        var compressedCount = compressBound(UInt(raw.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedCount))
        let status = compressed.withUnsafeMutableBufferPointer { dst in
            raw.withUnsafeBufferPointer { src in
                compress2(dst.baseAddress, &compressedCount, src.baseAddress, UInt(src.count), 9)
            }
        }
        guard status == Z_OK else { throw InvertNNError.io(path: "<png>", reason: "zlib compress2 failed with code \(status)") }
        compressed.removeLast(compressed.count - Int(compressedCount))

        var header = [UInt8]()
        appendBigEndian(UInt32(image.width), to: &header)
        appendBigEndian(UInt32(image.height), to: &header)
        header += [8, 0, 0, 0, 0]

        var file = signature
        appendChunk("IHDR", header, to: &file)
        appendChunk("tEXt", Array("Software".utf8) + [0] + Array(software.utf8), to: &file)
        appendChunk("IDAT", compressed, to: &file)
        appendChunk("IEND", [], to: &file)
        return file
    }

    /// Writes `image` to `path` atomically: the bytes go to a temporary file in the same
    /// directory, which is then renamed over `path` (POSIX `rename`), so readers never see a
    /// partial file.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` if the file cannot be written or renamed.
    public static func write(_ image: GreyscaleImage, to path: String) throws {
        try AtomicFile.write(try encode(image), to: path)
    }

    private static func appendBigEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }

    private static func appendChunk(_ type: String, _ data: [UInt8], to file: inout [UInt8]) {
        appendBigEndian(UInt32(data.count), to: &file)
        let typeAndData = Array(type.utf8) + data
        file += typeAndData
        let crc = typeAndData.withUnsafeBufferPointer { crc32(0, $0.baseAddress, UInt32($0.count)) }
        appendBigEndian(UInt32(crc), to: &file)
    }
}
