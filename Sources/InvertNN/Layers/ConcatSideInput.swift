import RealModule

/// Appends a side input to every sample: `y = [x, s]`, where `s` `[batch, sideFeatures]` is read
/// from the side channels under ``channel``. The inverse splits `y` back into `x` and `s` and
/// writes `s` to the side channels as the restored side output. Log-determinant 0 (the joint map
/// `(x, s) ↦ y` is a concatenation).
///
/// - Shapes: `x` `[batch, features]`, `y` `[batch, features + sideFeatures]`; any sizes.
/// - Throws: the plain ``forward(_:)`` cannot find the side input and throws
///   ``InvertNNError/invalidArgument(operation:reason:)``; use
///   ``forward(_:context:)``. Shape mismatches throw
///   ``InvertNNError/shapeMismatch(operation:expected:actual:)``.
///
/// Source: invertnn's concatenation with an inference-context input, made explicit.
public final class ConcatSideInput<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// Features of `x`, the forward input.
    public let features: Int
    /// Width of the side input appended to every sample.
    public let sideFeatures: Int
    /// The side-channel name the input is read from and the output restored to.
    public let channel: String

    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if a size is < 1 or the name is empty.
    public init(features: Int, sideFeatures: Int, channel: String) throws {
        guard features >= 1, sideFeatures >= 1, !channel.isEmpty else {
            throw InvertNNError.invalidArgument(
                operation: "ConcatSideInput",
                reason: "features (\(features)) and sideFeatures (\(sideFeatures)) must be ≥ 1 and the channel name non-empty")
        }
        let (total, overflow) = features.addingReportingOverflow(sideFeatures)
        _ = try SizeLimits.product([overflow ? Int.max : total], operation: "ConcatSideInput", what: "output features")
        self.features = features
        self.sideFeatures = sideFeatures
        self.channel = channel
    }

    public var name: String { "ConcatSideInput(\(features) + \(sideFeatures) '\(channel)')" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features + sideFeatures }
    public var parameters: [Parameter<T>] { [] }
    /// The hyper-parameters: the feature counts and the side channel's name.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// Features of the side input.
        public var sideFeatures: Int
        /// The name of the side channel in the ``LayerContext``.
        public var channel: String
    }
    public static var typeName: String { "ConcatSideInput" }
    public var configuration: Configuration { Configuration(features: features, sideFeatures: sideFeatures, channel: channel) }
    public convenience init(configuration c: Configuration) throws {
        try self.init(features: c.features, sideFeatures: c.sideFeatures, channel: c.channel)
    }

    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        let side = try context.require(channel, rows: x.rows, columns: sideFeatures, layer: name)
        return LayerOutput(output: try x.concatenatedColumns(side), logAbsDet: [T](repeating: 0, count: x.rows))
    }

    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(outputFeatures, "\(name).inverse")
        context[channel] = y.columns(features..<outputFeatures)
        return LayerOutput(output: y.columns(0..<features), logAbsDet: [T](repeating: 0, count: y.rows))
    }

    /// Returns `dL/dx` and adds `dL/ds` into `context.gradients[channel]`.
    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: input, inFeatures: features, output: output,
                             outFeatures: outputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        context.accumulateGradient(channel, outputGradient.columns(features..<outputFeatures))
        return outputGradient.columns(0..<features)
    }

    /// Returns `dL/dy`: the gradient of `x` in the first block and, in the side block, the
    /// gradient of the restored side output found in `context.gradients[channel]` (zero if
    /// absent).
    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: input, inFeatures: outputFeatures, output: output,
                             outFeatures: features, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        var sideGradient = Matrix<T>(rows: input.rows, columns: sideFeatures)
        if let g = context.gradients[channel], g.rows == input.rows, g.columns == sideFeatures { sideGradient = g }
        return try outputGradient.concatenatedColumns(sideGradient)
    }
}
