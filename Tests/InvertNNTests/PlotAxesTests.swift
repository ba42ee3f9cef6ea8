import Testing
import Foundation
import CZlib
@testable import InvertNN
@testable import InvertNNPlots

/// Issue 14 item 18: scatter plots and density panels carry axes with ticks in data units,
/// axis labels and a title (`GreyscaleImage.withAxes`, sharing its axis drawing with the
/// training curve's `lineChart`).
@Suite struct PlotAxesTests {
    /// A white 100×100 panel with one black pixel at column 10, row 20, framed over
    /// x ∈ [-1, 1] and y ∈ [0, 10].
    @Test func axesTicksAndPanelPlacement() throws {
        var panel = try GreyscaleImage(width: 100, height: 100, value: 255)
        panel.pixels[20 * 100 + 10] = 0
        let image = try GreyscaleImage.withAxes(panel, xRange: -1...1, yRange: 0...10, xLabel: "x", yLabel: "y", title: "samples")
        let m = GreyscaleImage.axesMargins(xRange: -1...1, yRange: 0...10, xLabel: "x", yLabel: "y", title: "samples")
        // The picture grew by the margins, on every side.
        #expect(image.width == m.left + 100 + m.right && image.height == m.top + 100 + m.bottom)
        #expect(m.left > 16 && m.top > 16 && m.bottom > 16 && m.right >= 12)
        func pixel(_ x: Int, _ y: Int) -> UInt8 { image.pixels[y * image.width + x] }
        // The panel is copied unchanged.
        #expect(pixel(m.left + 10, m.top + 20) == 0 && pixel(m.left + 11, m.top + 20) == 255)
        // The x axis: the row under the panel is black across it; the y axis: the column left of it.
        let axisRow = m.top + 100, axisColumn = m.left - 1
        #expect((axisColumn...(m.left + 99)).allSatisfy { pixel($0, axisRow) == 0 })
        #expect((m.top...axisRow).allSatisfy { pixel(axisColumn, $0) == 0 })
        #expect(pixel(axisColumn - 1, m.top + 50) == 255, "ticks only, not a second line")
        // Ticks at -1, -0.5, 0, 0.5, 1 on x (column of the pixel holding the value) and 0, 2, …, 10 on y.
        #expect(GreyscaleImage.axisTicks(-1...1) == [-1, -0.5, 0, 0.5, 1])
        for (tick, column) in [(-1.0, 0), (0, 50), (0.5, 75), (1, 99)] {
            #expect((1...4).allSatisfy { pixel(m.left + column, axisRow + $0) == 0 }, "x tick \(tick)")
        }
        #expect((1...4).allSatisfy { pixel(m.left + 25 - 3, axisRow + $0) == 255 }, "no tick between ticks")
        for (tick, row) in [(0.0, 99), (2, 79), (10, 0)] {
            #expect((2...5).allSatisfy { pixel(m.left - $0, m.top + row) == 0 }, "y tick \(tick)")
        }
        // Tick labels below the x ticks, the title above the panel.
        #expect((axisRow + 8..<axisRow + 18).contains { r in (m.left + 40..<m.left + 60).contains { pixel($0, r) == 0 } })
        #expect((4..<14).contains { r in (0..<image.width).contains { pixel($0, r) == 0 } })
        // Bad arguments are errors.
        #expect(throws: InvertNNError.self) { try GreyscaleImage.withAxes(panel, xRange: 1...1, yRange: 0...1) }
        #expect(throws: InvertNNError.self) { try GreyscaleImage.withAxes(panel, xRange: 0...Double.infinity, yRange: 0...1) }
        #expect(throws: InvertNNError.self) {
            try GreyscaleImage.withAxes(try GreyscaleImage(width: 4, height: 4, value: 0), xRange: 0...1, yRange: 0...1)
        }
    }

    /// A scatter point at a tick value lands in the tick's column; a title wider than the picture
    /// (it used to trap in the text clipping) is drawn small and clipped.
    @Test func scatterPointsLineUpWithTicksAndLongTitlesAreClipped() throws {
        let points = try Matrix<Double>(rows: 1, columns: 2, storage: [0, 2])
        let scatter = try GreyscaleImage.scatter(points, xRange: -4...4, yRange: -4...4, size: 64, dotSize: 1)
        let image = try GreyscaleImage.withAxes(scatter, xRange: -4...4, yRange: -4...4, title: String(repeating: "wide title ", count: 20))
        let m = GreyscaleImage.axesMargins(xRange: -4...4, yRange: -4...4, xLabel: "", yLabel: "",
                                           title: String(repeating: "wide title ", count: 20))
        let dot = try #require(scatter.pixels.firstIndex(of: 0))
        let (dotColumn, dotRow) = (dot % 64, dot / 64)
        let axisRow = m.top + 64
        #expect((1...4).allSatisfy { image.pixels[(axisRow + $0) * image.width + m.left + dotColumn] == 0 }, "the x tick at 0")
        #expect((2...5).allSatisfy { image.pixels[(m.top + dotRow) * image.width + m.left - $0] == 0 }, "the y tick at 2")
        var small = try GreyscaleImage(width: 10, height: 10, value: 255)
        small.fill(x: 50, y: 50, width: 4, height: 4, value: 0)
        small.fill(x: -9, y: 3, width: 4, height: 4, value: 0)
        small.drawText("far away", x: 300, y: 300)
        #expect(small.pixels.allSatisfy { $0 == 255 })
    }

    /// Width, height and pixels of a greyscale PNG written by ``PNGWriter`` (filter 0 rows).
    static func decodePNG(_ path: String) throws -> GreyscaleImage {
        let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func bigEndian(_ i: Int) -> Int { file[i..<(i + 4)].reduce(0) { $0 << 8 | Int($1) } }
        var i = 8, width = 0, height = 0
        var idat = [UInt8]()
        while i + 12 <= file.count {
            let length = bigEndian(i), type = String(decoding: file[(i + 4)..<(i + 8)], as: UTF8.self)
            if type == "IHDR" { width = bigEndian(i + 8); height = bigEndian(i + 12) }
            if type == "IDAT" { idat += file[(i + 8)..<(i + 8 + length)] }
            i += 12 + length
        }
        var raw = [UInt8](repeating: 0, count: (width + 1) * height)
        var rawCount = UInt(raw.count)
        let status = raw.withUnsafeMutableBufferPointer { dst in
            idat.withUnsafeBufferPointer { uncompress(dst.baseAddress, &rawCount, $0.baseAddress, UInt($0.count)) }
        }
        try #require(status == Z_OK && Int(rawCount) == raw.count)
        var pixels = [UInt8]()
        for r in 0..<height {
            let start = r * (width + 1) + 1
            pixels += raw[start..<(start + width)]
        }
        return try GreyscaleImage(width: width, height: height, pixels: pixels)
    }

    /// `sample --png` and `density` of a 2-D model: each panel framed by axes (a black line a
    /// panel wide under each scatter), the picture larger than the bare panels; non-finite
    /// samples remain an error that writes nothing.
    @Test func commandsDrawAxes() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("plot-axes") { d in
            let model = try HostileCLITests.tinyModel(d)
            let sample = try CLIErrorTests.run(["--model", model, "--png", "\(d)/s.png", "--count", "300"], command: "sample")
            #expect(sample.status == 0, "\(sample.stderr)")
            let s = try Self.decodePNG("\(d)/s.png")
            // One 320-pixel panel and sideBySide's 8-pixel border: the rest is the axes' margins.
            #expect(s.width > 320 + 16 + 40 && s.height > 320 + 16 + 40, "\(s.width)×\(s.height)")
            func longestBlackRun(_ image: GreyscaleImage) -> Int {
                (0..<image.height).map { r in
                    var best = 0, run = 0
                    for c in 0..<image.width { run = image.pixels[r * image.width + c] == 0 ? run + 1 : 0; best = max(best, run) }
                    return best
                }.max() ?? 0
            }
            #expect(longestBlackRun(s) >= 321, "an x axis under the 320-pixel panel")
            let density = try CLIErrorTests.run(["--model", model, "--png", "\(d)/p.png", "--size", "64", "--quiet"], command: "density")
            #expect(density.status == 0, "\(density.stderr)")
            let p = try Self.decodePNG("\(d)/p.png")
            #expect(p.width > 3 * 64 + 4 * 8 + 3 * 40 && p.height > 64 + 16 + 40, "\(p.width)×\(p.height)")
            #expect(longestBlackRun(p) >= 65)
            try HostileCLITests.rewrite(model, suffix: "logScale", value: 100, to: "\(d)/inf.safetensors")
            let bad = try CLIErrorTests.run(["--model", "\(d)/inf.safetensors", "--count", "50", "--png", "\(d)/i.png"], command: "sample")
            #expect(bad.status == 1 && bad.stderr.contains("not finite"), "\(bad.status): \(bad.stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(d)/i.png"))
        }
    }
}
