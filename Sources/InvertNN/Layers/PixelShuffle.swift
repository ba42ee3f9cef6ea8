import RealModule

/// Depth to space: moves groups of `r²` channels into `r × r` pixel blocks, on NCHW-flattened
/// images with PyTorch's channel order (`torch.nn.PixelShuffle`):
/// `out[c, h·r + i, w·r + j] = in[c·r² + i·r + j, h, w]`.
///
/// - Shapes: `x` `[batch, C·r²·H·W]` read as `[C·r², H, W]` per sample; `y` `[batch, C·(H·r)·(W·r)]`
///   read as `[C, H·r, W·r]`. Height and width may differ.
/// - A permutation of the features: log-determinant 0 in both directions; the inverse is
///   ``PixelUnshuffle`` of the output shape, and each VJP is the opposite permutation of the
///   gradient.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` from the initializer if a size
///   or the factor is < 1 or `channels` is not divisible by `factor²`; shape errors as every layer.
/// - Source: Shi et al. 2016, "Real-time single image and video super-resolution using an
///   efficient sub-pixel convolutional neural network"; DESIGN.md §3.
public final class PixelShuffle<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// Channels of the input, `C·r²`.
    public let channels: Int
    /// Height of the input (the output has `height·factor`).
    public let height: Int
    /// Width of the input (the output has `width·factor`).
    public let width: Int
    /// The block size `r`.
    public let factor: Int

    /// A pixel shuffle of `[channels, height, width]` images by `factor`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if any size or `factor` is
    ///   < 1 or `channels` is not divisible by `factor²`.
    public init(channels: Int, height: Int, width: Int, factor: Int) throws {
        guard channels >= 1, height >= 1, width >= 1, factor >= 1 else {
            throw InvertNNError.invalidArgument(
                operation: "PixelShuffle",
                reason: "channels, height, width and factor must be ≥ 1, got \(channels), \(height), \(width), \(factor)")
        }
        _ = try SizeLimits.product([channels, height, width], operation: "PixelShuffle", what: "channels × height × width")
        // factor² (and the scaled height and width) must be representable.
        _ = try SizeLimits.product([factor, factor], operation: "PixelShuffle", what: "factor²")
        guard channels % (factor * factor) == 0 else {
            throw InvertNNError.invalidArgument(
                operation: "PixelShuffle", reason: "channels \(channels) is not divisible by factor² = \(factor * factor)")
        }
        self.channels = channels
        self.height = height
        self.width = width
        self.factor = factor
    }

    /// The per-sample output shape `[C, H·r, W·r]`.
    public var outputShape: [Int] { [channels / (factor * factor), height * factor, width * factor] }

    public var name: String { "PixelShuffle([\(channels), \(height), \(width)], r: \(factor))" }
    public var inputFeatures: Int { channels * height * width }
    public var outputFeatures: Int { inputFeatures }
    public var parameters: [Parameter<T>] { [] }
    /// The hyper-parameters: the input's channels, height and width, and the factor.
    public struct Configuration: Codable, Sendable, Equatable {
        /// Channels of the input image (NCHW).
        public var channels: Int
        /// Height of the input image in pixels.
        public var height: Int
        /// Width of the input image in pixels.
        public var width: Int
        /// The block size of the rearrangement.
        public var factor: Int
    }
    public static var typeName: String { "PixelShuffle" }
    public var configuration: Configuration { Configuration(channels: channels, height: height, width: width, factor: factor) }
    public convenience init(configuration c: Configuration) throws {
        try self.init(channels: c.channels, height: c.height, width: c.width, factor: c.factor)
    }

    private var blockChannels: Int { channels / (factor * factor) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(inputFeatures, "\(name).forward")
        return LayerOutput(
            output: PixelShuffling.permute(x, channels: blockChannels, height: height, width: width, factor: factor,
                                           toSpace: true),
            logAbsDet: [T](repeating: 0, count: x.rows))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(outputFeatures, "\(name).inverse")
        return LayerOutput(
            output: PixelShuffling.permute(y, channels: blockChannels, height: height, width: width, factor: factor,
                                           toSpace: false),
            logAbsDet: [T](repeating: 0, count: y.rows))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: input, inFeatures: inputFeatures, output: output,
                             outFeatures: outputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        return PixelShuffling.permute(outputGradient, channels: blockChannels, height: height, width: width,
                                      factor: factor, toSpace: false)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: input, inFeatures: outputFeatures, output: output,
                             outFeatures: inputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        return PixelShuffling.permute(outputGradient, channels: blockChannels, height: height, width: width,
                                      factor: factor, toSpace: true)
    }
}

/// The index map shared by ``PixelShuffle`` and ``PixelUnshuffle``.
enum PixelShuffling {
    /// Moves every row between the channel-stacked layout `[C·r², H, W]` and the spatial layout
    /// `[C, H·r, W·r]`: element `[c·r² + i·r + j, h, w]` of the former is element
    /// `[c, h·r + i, w·r + j]` of the latter. `toSpace` selects the direction.
    static func permute<T: Scalar>(
        _ m: Matrix<T>, channels: Int, height: Int, width: Int, factor r: Int, toSpace: Bool
    ) -> Matrix<T> {
        var out = m
        let n = m.columns
        let wideWidth = width * r
        m.storage.withUnsafeBufferPointer { source in
            out.storage.withUnsafeMutableBufferPointer { target in
                for row in 0..<m.rows {
                    let base = row * n
                    for c in 0..<channels {
                        for i in 0..<r {
                            for j in 0..<r {
                                let stackedChannel = c * r * r + i * r + j
                                for h in 0..<height {
                                    let stacked = base + (stackedChannel * height + h) * width
                                    let spatial = base + (c * height * r + h * r + i) * wideWidth + j
                                    if toSpace {
                                        for w in 0..<width { target[spatial + w * r] = source[stacked + w] }
                                    } else {
                                        for w in 0..<width { target[stacked + w] = source[spatial + w * r] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
