import RealModule

/// Applies a layer to the channel vector of every pixel of NCHW images: the "1x1 convolution"
/// (2D) variant of a feature-wise layer (Kingma & Dhariwal 2018, "Glow", §3.2).
///
/// Each sample `[channels*height*width]` (NCHW flattened, channel-major) is regrouped into
/// `height*width` rows of `channels` features, the wrapped layer maps all `batch*height*width` rows
/// in one call (one GEMM for the linear layers), and the result is regrouped back. Because the
/// wrapped layer acts on each row independently, the log-determinant of a sample is the sum of
/// its pixels' log-determinants: `height·width` times the 1D value for layers whose log-det does
/// not depend on the input (orthogonal, diagonal, SVD-composed).
///
/// - Shapes: `x`, `y` `[batch, channels*height*width]`; the wrapped layer must map `channels`
///   features to `channels` features and treat rows independently (every layer of this library
///   except side-channel layers does).
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for non-positive sizes or a
///   wrapped layer of the wrong width; shape mismatches on wrong inputs.
public final class Pixelwise<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// The per-pixel layer on `channels` features.
    public let base: any InvertibleLayer<T>
    /// C, the channels of an NCHW image (the wrapped layer's width).
    public let channels: Int
    /// H, image rows.
    public let height: Int
    /// W, image columns.
    public let width: Int

    /// Wraps `base` (on `channels` features) for `channels × height × width` images.
    public init(_ base: any InvertibleLayer<T>, channels: Int, height: Int, width: Int) throws {
        guard channels >= 1, height >= 1, width >= 1 else {
            throw InvertNNError.invalidArgument(
                operation: "Pixelwise", reason: "channels, height and width must be ≥ 1, got \(channels)×\(height)×\(width)")
        }
        _ = try SizeLimits.product([channels, height, width], operation: "Pixelwise", what: "channels × height × width")
        guard base.inputFeatures == channels, base.outputFeatures == channels else {
            throw InvertNNError.invalidArgument(
                operation: "Pixelwise",
                reason: "\(base.name) maps \(base.inputFeatures) → \(base.outputFeatures) features; expected \(channels) → \(channels)")
        }
        self.base = base
        self.channels = channels
        self.height = height
        self.width = width
    }

    public var name: String { "Pixelwise(\(base.name), \(channels)×\(height)×\(width))" }
    public var inputFeatures: Int { channels * height * width }
    public var outputFeatures: Int { channels * height * width }
    public var parameters: [Parameter<T>] { base.parameters }
    /// The hyper-parameters: the image shape and the per-pixel layer (a one-element `layers`).
    public struct Configuration: Codable, Sendable {
        /// Channels of the input image (NCHW).
        public var channels: Int
        /// Height of the input image in pixels.
        public var height: Int
        /// Width of the input image in pixels.
        public var width: Int
        /// The children's configurations, in order.
        public var layers: [LayerConfiguration<T>]
    }
    public static var typeName: String { "Pixelwise" }
    public var configuration: Configuration {
        Configuration(channels: channels, height: height, width: width, layers: [LayerConfiguration(base)])
    }
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` unless `layers` holds exactly one layer.
    public convenience init(configuration c: Configuration) throws {
        guard c.layers.count == 1 else {
            throw InvertNNError.invalidArgument(operation: "Pixelwise", reason: "wraps exactly one layer, got \(c.layers.count)")
        }
        try self.init(try c.layers[0].makeLayer(), channels: c.channels, height: c.height, width: c.width)
    }

    /// `[batch, C*H*W]` (NCHW) → `[batch*H*W, C]` (one row per pixel).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func pixelRows(_ images: Matrix<T>) -> Matrix<T> {
        let pixels = height * width
        var out = Matrix<T>(rows: images.rows * pixels, columns: channels)
        images.storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                for b in 0..<images.rows {
                    let sampleIn = b * channels * pixels, sampleOut = b * pixels * channels
                    for c in 0..<channels {
                        for p in 0..<pixels { dst[sampleOut + p * channels + c] = src[sampleIn + c * pixels + p] }
                    }
                }
            }
        }
        return out
    }

    /// `[batch*H*W, C]` → `[batch, C*H*W]` (NCHW).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func images(_ rows: Matrix<T>, batch: Int) -> Matrix<T> {
        let pixels = height * width
        var out = Matrix<T>(rows: batch, columns: channels * pixels)
        rows.storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                for b in 0..<batch {
                    let sampleIn = b * pixels * channels, sampleOut = b * channels * pixels
                    for c in 0..<channels {
                        for p in 0..<pixels { dst[sampleOut + c * pixels + p] = src[sampleIn + p * channels + c] }
                    }
                }
            }
        }
        return out
    }

    /// Sums per-pixel log-dets `[batch*H*W]` into per-sample ones `[batch]`.
    func perSample(_ pixelLogDets: [T], batch: Int) -> [T] {
        let pixels = height * width
        return (0..<batch).map { b in pixelLogDets[(b * pixels)..<((b + 1) * pixels)].reduce(0, +) }
    }

    /// The context of the per-pixel layer: the pass's buffers only (its batch is the pixels, so
    /// side channels and conditioning of the images do not apply).
    func pixelContext(_ context: LayerContext<T>) -> LayerContext<T> {
        var pixelContext = LayerContext<T>()
        pixelContext.buffers = context.buffers
        return pixelContext
    }

    /// Repeats each sample's `dL/dlogAbsDet` for its pixels.
    func perPixel(_ sampleGradients: [T]) -> [T] {
        sampleGradients.flatMap { [T](repeating: $0, count: height * width) }
    }

    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(inputFeatures, "\(name).forward")
        var pixelContext = pixelContext(context)
        let result = try base.forward(pixelRows(x), context: &pixelContext)
        return LayerOutput(output: images(result.output, batch: x.rows), logAbsDet: perSample(result.logAbsDet, batch: x.rows))
    }

    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(outputFeatures, "\(name).inverse")
        var pixelContext = pixelContext(context)
        let result = try base.inverse(pixelRows(y), context: &pixelContext)
        return LayerOutput(output: images(result.output, batch: y.rows), logAbsDet: perSample(result.logAbsDet, batch: y.rows))
    }

    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: input, inFeatures: inputFeatures, output: output,
                             outFeatures: outputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        var pixelContext = pixelContext(context)
        let g = try base.forwardBackward(
            input: pixelRows(input), output: pixelRows(output), outputGradient: pixelRows(outputGradient),
            logAbsDetGradient: perPixel(logAbsDetGradient), context: &pixelContext)
        return images(g, batch: input.rows)
    }

    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: input, inFeatures: outputFeatures, output: output,
                             outFeatures: inputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        var pixelContext = pixelContext(context)
        let g = try base.inverseBackward(
            input: pixelRows(input), output: pixelRows(output), outputGradient: pixelRows(outputGradient),
            logAbsDetGradient: perPixel(logAbsDetGradient), context: &pixelContext)
        return images(g, batch: input.rows)
    }
}
