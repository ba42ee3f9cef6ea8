import InvertNN
import RealModule

/// An 8-bit greyscale image, row-major (`pixels[row * width + column]`, 0 = black, 255 = white).
public struct GreyscaleImage: Equatable, Sendable {
    /// Columns of pixels.
    public let width: Int
    /// Rows of pixels.
    public let height: Int
    /// `width · height` grey levels, row by row.
    public var pixels: [UInt8]

    /// An image of the given size filled with `value`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if a size is < 1.
    public init(width: Int, height: Int, value: UInt8 = 0) throws {
        guard width >= 1, height >= 1 else {
            throw InvertNNError.invalidArgument(operation: "GreyscaleImage", reason: "size must be ≥ 1×1, got \(width)×\(height)")
        }
        self.width = width
        self.height = height
        self.pixels = [UInt8](repeating: value, count: width * height)
    }

    /// An image over existing pixels.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `pixels.count != width · height`
    ///   or a size is < 1.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width >= 1, height >= 1, pixels.count == width * height else {
            throw InvertNNError.invalidArgument(
                operation: "GreyscaleImage", reason: "\(pixels.count) pixels for a \(width)×\(height) image")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Tiles images into a grid, each pixel upscaled to a `scale × scale` block, with `spacing`
    /// pixels of `background` between and around the tiles.
    ///
    /// - Parameters:
    ///   - images: `[count, height·width]`, one image per row, values in `[0, 1]` (0 = black,
    ///     1 = white; values outside are clamped, NaN shows as black).
    ///   - height: the height of one image.
    ///   - width: the width of one image.
    ///   - columns: tiles per grid row (the grid has `⌈count / columns⌉` rows).
    ///   - scale: the upscaling factor of each pixel, ≥ 1.
    ///   - spacing: pixels between and around the tiles, ≥ 0.
    ///   - background: the grey level of the spacing (0 black, 255 white).
    /// - Returns: an image of `columns·(width·scale + spacing) + spacing` by
    ///   `gridRows·(height·scale + spacing) + spacing` pixels.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if sizes are < 1 (spacing < 0)
    ///   or the rows do not have `height·width` columns.
    public static func grid<T: Scalar>(
        _ images: Matrix<T>, height: Int, width: Int, columns: Int, scale: Int = 4, spacing: Int = 2,
        background: UInt8 = 128
    ) throws -> GreyscaleImage {
        guard height >= 1, width >= 1, columns >= 1, scale >= 1, spacing >= 0, images.rows >= 1,
              images.columns == height * width else {
            throw InvertNNError.invalidArgument(
                operation: "GreyscaleImage.grid",
                reason: "cannot tile \(images.rows) images of \(images.columns) pixels as \(height)×\(width), \(columns) per row, scale \(scale), spacing \(spacing)")
        }
        let gridRows = (images.rows + columns - 1) / columns
        let tileWidth = width * scale, tileHeight = height * scale
        var out = try GreyscaleImage(
            width: columns * (tileWidth + spacing) + spacing, height: gridRows * (tileHeight + spacing) + spacing,
            value: background)
        for index in 0..<images.rows {
            let left = spacing + (index % columns) * (tileWidth + spacing)
            let top = spacing + (index / columns) * (tileHeight + spacing)
            for r in 0..<height {
                for c in 0..<width {
                    let v = Double(images[index, r * width + c])
                    let grey = UInt8(v.isNaN ? 0 : (Swift.min(Swift.max(v, 0), 1) * 255).rounded())
                    for dy in 0..<scale {
                        let rowStart = (top + r * scale + dy) * out.width + left + c * scale
                        for dx in 0..<scale { out.pixels[rowStart + dx] = grey }
                    }
                }
            }
        }
        return out
    }
}
