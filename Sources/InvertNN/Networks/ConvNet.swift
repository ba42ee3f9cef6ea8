import RealModule

/// A small convolutional network (not invertible) on NCHW images, the conditioner of
/// ``ConvCoupling``: `conv 3×3 → ReLU → (conv 1×1 → ReLU)… → conv 3×3`, the last convolution
/// zero-initialized so that a coupling built on it starts as the identity (RealNVP, Dinh et al.
/// 2017, §4.1; Glow, Kingma & Dhariwal 2018, §3.3 and its `NN()` of 3×3, 1×1, 3×3 convolutions).
///
/// - Channels: `[C_in, hidden₀, …, hidden_{n-1}, C_out]`. The first and last convolutions are
///   3×3, the ones between 1×1; without hidden channels the network is one zero-initialized 3×3
///   convolution (Glow's split prior, which reads the kept channels of a factor-out).
/// - Shapes: `x` `[batch, C_in·H·W]` → `[batch, C_out·H·W]`; stride 1, "same" zero padding.
/// - Parameters: each ``Conv2D``'s `"conv<k>.weight"` `[C_out_k, C_in_k·k²]` and
///   `"conv<k>.bias"` `[1, C_out_k]`, in order.
/// - Cost: the GEMMs of its convolutions plus one elementwise ReLU per hidden layer.
public final class ConvNet<T: Scalar> {
    /// What ``ConvNet/backward(_:outputGradient:buffers:)`` needs from one forward pass.
    public struct Trace: Sendable {
        /// One trace per convolution. Every convolution but the last is followed by a ReLU, and
        /// its trace's `output` is the rectified output: the input of convolution `k + 1`.
        public let convolutions: [Conv2D<T>.Trace]
        /// The network output `[batch, C_out·H·W]`.
        public var output: Matrix<T> { convolutions[convolutions.count - 1].output }
    }

    /// `[C_in, hidden…, C_out]`.
    public let channels: [Int]
    /// The convolutions in order.
    public let convolutions: [Conv2D<T>]
    /// Every convolution's `[weight, bias]` in order.
    public let parameters: [Parameter<T>]
    /// `H`, image rows.
    public let height: Int
    /// `W`, image columns.
    public let width: Int

    /// A network with He-initialized hidden convolutions and a zero last convolution.
    ///
    /// - Parameters:
    ///   - inputChannels: `C_in ≥ 1`.
    ///   - hiddenChannels: widths of the hidden layers (empty: a single 3×3 convolution).
    ///   - outputChannels: `C_out ≥ 1`.
    ///   - height: the image height, ≥ 1.
    ///   - width: the image width, ≥ 1.
    ///   - generator: the caller-owned source of randomness.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for sizes below 1 or beyond
    ///   the BLAS index limit (2³¹ − 1 elements per matrix) (from ``Conv2D``).
    public init(
        inputChannels: Int, hiddenChannels: [Int], outputChannels: Int, height: Int, width: Int,
        using generator: inout some RandomNumberGenerator
    ) throws {
        let sizes = [inputChannels] + hiddenChannels + [outputChannels]
        var convolutions = [Conv2D<T>]()
        for k in 0..<(sizes.count - 1) {
            let last = k == sizes.count - 2
            let kernel = k == 0 || last ? 3 : 1
            convolutions.append(try Conv2D<T>(
                inputChannels: sizes[k], outputChannels: sizes[k + 1], kernelSize: kernel, height: height, width: width,
                zeroInitialize: last, gainSquared: 2, name: "conv\(k)", using: &generator))
        }
        self.channels = sizes
        self.convolutions = convolutions
        self.parameters = convolutions.flatMap { $0.parameters }
        self.height = height
        self.width = width
    }

    /// `C_in·H·W`.
    public var inputFeatures: Int { channels[0] * height * width }
    /// `C_out·H·W`.
    public var outputFeatures: Int { channels[channels.count - 1] * height * width }
    /// The hidden widths.
    public var hiddenChannels: [Int] { Array(channels.dropFirst().dropLast()) }

    /// Applies the network and keeps what ``backward(_:outputGradient:buffers:)`` needs.
    ///
    /// - Parameters:
    ///   - x: `[batch, C_in·H·W]`.
    ///   - buffers: the step's buffers the activations are written into; `nil` allocates them.
    /// - Throws: as ``Conv2D/forward(_:buffers:)``.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, buffers: StepBuffers<T>? = nil) throws -> Trace {
        var traces = [Conv2D<T>.Trace]()
        traces.reserveCapacity(convolutions.count)
        var current = x
        for (k, conv) in convolutions.enumerated() {
            // Every convolution but the last is followed by a ReLU, fused into it.
            let trace = try conv.forward(current, rectified: k < convolutions.count - 1, buffers: buffers)
            traces.append(trace)
            current = trace.output
        }
        return Trace(convolutions: traces)
    }

    /// The VJP of ``forward(_:buffers:)``: returns `dL/dx` `[batch, C_in·H·W]` and adds every
    /// convolution's parameter gradients.
    ///
    /// - Parameters:
    ///   - trace: the result of ``forward(_:buffers:)`` with the current parameter values.
    ///   - outputGradient: `dL/d(output)`, `[batch, C_out·H·W]`.
    ///   - buffers: the step's buffers the gradients are written into; `nil` allocates them.
    /// - Throws: as ``Conv2D/backward(_:outputGradient:buffers:)``.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(_ trace: Trace, outputGradient: Matrix<T>, buffers: StepBuffers<T>? = nil) throws -> Matrix<T> {
        guard trace.convolutions.count == convolutions.count else {
            throw InvertNNError.shapeMismatch(
                operation: "ConvNet.backward", expected: "a trace of \(convolutions.count) convolutions",
                actual: "\(trace.convolutions.count)")
        }
        var gradient = try convolutions[convolutions.count - 1].backward(
            trace.convolutions[convolutions.count - 1], outputGradient: outputGradient, buffers: buffers)
        for k in stride(from: convolutions.count - 2, through: 0, by: -1) {
            // ReLU: the gradient passes where conv k's rectified output is positive.
            gradient = try convolutions[k].backward(trace.convolutions[k], outputGradient: gradient, rectified: true, buffers: buffers)
        }
        return gradient
    }
}
