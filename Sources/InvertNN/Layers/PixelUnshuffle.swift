import RealModule

/// Space to depth: folds every `r × r` pixel block into `r²` channels, on NCHW-flattened images
/// with PyTorch's channel order (`torch.nn.PixelUnshuffle`):
/// `out[c·r² + i·r + j, h, w] = in[c, h·r + i, w·r + j]`.
///
/// - Shapes: `x` `[batch, C·H·W]` read as `[C, H, W]` per sample; `y` read as
///   `[C·r², H/r, W/r]`. Height and width may differ but must both be divisible by `r`.
/// - A permutation of the features: log-determinant 0 in both directions; the inverse is
///   ``PixelShuffle`` of the output shape, and each VJP is the opposite permutation of the gradient.
/// - Example: r = 2 on a `[1, 2, 4]` image holding 0…7 row-major gives four `[1, 2]` channels
///   `[0, 2]`, `[1, 3]`, `[4, 6]`, `[5, 7]`.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` from the initializer if a size
///   or the factor is < 1 or `height` or `width` is not divisible by `factor`; shape errors as
///   every layer.
/// - Source: the inverse of the sub-pixel shuffle of Shi et al. 2016; DESIGN.md §3.
public final class PixelUnshuffle<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// Channels of the input (the output has `channels·factor²`).
    public let channels: Int
    /// Height of the input, a multiple of `factor`.
    public let height: Int
    /// Width of the input, a multiple of `factor`.
    public let width: Int
    /// The block size `r`.
    public let factor: Int

    /// A pixel unshuffle of `[channels, height, width]` images by `factor`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if any size or `factor` is
    ///   < 1 or `height` or `width` is not divisible by `factor`.
    public init(channels: Int, height: Int, width: Int, factor: Int) throws {
        guard channels >= 1, height >= 1, width >= 1, factor >= 1 else {
            throw InvertNNError.invalidArgument(
                operation: "PixelUnshuffle",
                reason: "channels, height, width and factor must be ≥ 1, got \(channels), \(height), \(width), \(factor)")
        }
        _ = try SizeLimits.product([channels, height, width], operation: "PixelUnshuffle", what: "channels × height × width")
        // factor² (and the scaled height and width) must be representable.
        _ = try SizeLimits.product([factor, factor], operation: "PixelUnshuffle", what: "factor²")
        guard height % factor == 0, width % factor == 0 else {
            throw InvertNNError.invalidArgument(
                operation: "PixelUnshuffle",
                reason: "height \(height) and width \(width) must both be divisible by factor \(factor)")
        }
        self.channels = channels
        self.height = height
        self.width = width
        self.factor = factor
    }

    /// The per-sample output shape `[C·r², H/r, W/r]`.
    public var outputShape: [Int] { [channels * factor * factor, height / factor, width / factor] }

    public var name: String { "PixelUnshuffle([\(channels), \(height), \(width)], r: \(factor))" }
    public var inputFeatures: Int { channels * height * width }
    public var outputFeatures: Int { inputFeatures }
    public var parameters: [Parameter<T>] { [] }
    /// The hyper-parameters: the input's channels, height and width, and the factor (the same
    /// fields as ``PixelShuffle``'s).
    public typealias Configuration = PixelShuffle<T>.Configuration
    public static var typeName: String { "PixelUnshuffle" }
    public var configuration: Configuration { Configuration(channels: channels, height: height, width: width, factor: factor) }
    public convenience init(configuration c: Configuration) throws {
        try self.init(channels: c.channels, height: c.height, width: c.width, factor: c.factor)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(inputFeatures, "\(name).forward")
        return LayerOutput(output: permute(x, toSpace: false), logAbsDet: [T](repeating: 0, count: x.rows))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(outputFeatures, "\(name).inverse")
        return LayerOutput(output: permute(y, toSpace: true), logAbsDet: [T](repeating: 0, count: y.rows))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: input, inFeatures: inputFeatures, output: output,
                             outFeatures: outputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        return permute(outputGradient, toSpace: true)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: input, inFeatures: outputFeatures, output: output,
                             outFeatures: inputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        return permute(outputGradient, toSpace: false)
    }

    private func permute(_ m: Matrix<T>, toSpace: Bool) -> Matrix<T> {
        PixelShuffling.permute(m, channels: channels, height: height / factor, width: width / factor,
                               factor: factor, toSpace: toSpace)
    }
}
