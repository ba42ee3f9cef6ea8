import InvertNN
import RealModule

extension GreyscaleImage {
    /// A scatter plot of the first two columns of `points` on a white square of `size` pixels,
    /// each point a black `dotSize × dotSize` square, over the plot window `xRange × yRange`
    /// (y grows upwards); points outside the window, NaN and infinite points are not drawn.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `points` has fewer than 2
    ///   columns, `size < 8`, or a range is empty or not finite.
    public static func scatter<T: Scalar>(
        _ points: Matrix<T>, xRange: ClosedRange<Double>, yRange: ClosedRange<Double>, size: Int = 320, dotSize: Int = 2
    ) throws -> GreyscaleImage {
        func invalid(_ reason: String) -> InvertNNError { .invalidArgument(operation: "GreyscaleImage.scatter", reason: reason) }
        guard points.columns >= 2 else { throw invalid("need ≥ 2 columns, got \(points.columns)") }
        guard size >= 8, dotSize >= 1 else { throw invalid("need size ≥ 8 and dotSize ≥ 1, got \(size) and \(dotSize)") }
        for (axis, range) in [("x", xRange), ("y", yRange)] {
            guard range.lowerBound.isFinite, range.upperBound.isFinite, range.upperBound > range.lowerBound else {
                throw invalid("the \(axis) range \(range.lowerBound)...\(range.upperBound) must be finite and non-empty")
            }
        }
        var image = try GreyscaleImage(width: size, height: size, value: 255)
        for r in 0..<points.rows {
            let x = Double(points[r, 0]), y = Double(points[r, 1])
            // Positions are compared as Doubles before any Int conversion: a huge finite point
            // (1e300) would overflow Int and trap. A margin of one dot keeps edge dots drawn.
            let fx = (x - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * Double(size)
            let fy = (y - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound) * Double(size)
            let margin = Double(dotSize + 1)
            guard fx.isFinite, fy.isFinite, fx > -margin, fx < Double(size) + margin, fy > -margin, fy < Double(size) + margin else {
                continue
            }
            let px = Int(fx.rounded(.down))
            let py = size - 1 - Int(fy.rounded(.down))
            for dy in 0..<dotSize {
                for dx in 0..<dotSize {
                    let cx = px + dx - dotSize / 2, cy = py + dy - dotSize / 2
                    if cx >= 0, cx < size, cy >= 0, cy < size { image.pixels[cy * size + cx] = 0 }
                }
            }
        }
        return image
    }

    /// A heat map of `values` (row-major, `height` rows of `width`, the first row at the top):
    /// each value mapped linearly from `[0, top]` to grey 255 (white, low) … 0 (black, high),
    /// like ink, where `top` is the 99.5th percentile of the finite values (so that a single sharp
    /// peak does not wash the picture out; values above it are black); NaN and negative values
    /// are white.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `values.count != width · height`.
    public static func heatMap(_ values: [Double], width: Int, height: Int) throws -> GreyscaleImage {
        guard width >= 1, height >= 1, values.count == width * height else {
            throw InvertNNError.invalidArgument(operation: "GreyscaleImage.heatMap", reason: "\(values.count) values for \(width)×\(height)")
        }
        let finite = values.filter { $0.isFinite }.sorted()
        let top = finite.isEmpty ? 0 : finite[min(finite.count - 1, Int(Double(finite.count) * 0.995))]
        let pixels = values.map { v -> UInt8 in
            guard top > 0, v.isFinite, v > 0 else { return 255 }
            return UInt8((255 * (1 - Swift.min(v / top, 1))).rounded())
        }
        return try GreyscaleImage(width: width, height: height, pixels: pixels)
    }

    /// Images side by side, top-aligned, with `spacing` pixels of `background` between and around.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an empty list or negative spacing.
    public static func sideBySide(_ images: [GreyscaleImage], spacing: Int = 8, background: UInt8 = 128) throws -> GreyscaleImage {
        guard !images.isEmpty, spacing >= 0 else {
            throw InvertNNError.invalidArgument(operation: "GreyscaleImage.sideBySide", reason: "need ≥ 1 image and spacing ≥ 0")
        }
        let height = images.map(\.height).max()! + 2 * spacing
        let width = images.reduce(spacing) { $0 + $1.width + spacing }
        var out = try GreyscaleImage(width: width, height: height, value: background)
        var left = spacing
        for image in images {
            for r in 0..<image.height {
                let start = (spacing + r) * width + left
                out.pixels.replaceSubrange(start..<(start + image.width), with: image.pixels[(r * image.width)..<((r + 1) * image.width)])
            }
            left += image.width + spacing
        }
        return out
    }
}
