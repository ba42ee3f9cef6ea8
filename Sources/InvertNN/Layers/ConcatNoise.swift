import RealModule

/// Augments every sample with `k` noise features drawn from a base distribution q:
/// forward `y = [ε, x]` with `ε ~ q`, inverse `x = y[k...]` (ε is split off and restored to the
/// side channels).
///
/// The layer contributes `-log q(ε)` to the forward log-determinant and `+log q(ε)` to the inverse
/// one, per sample, so that the augmented model has the exact density `p_Y(y) = p_X(x)·q(ε)`
/// (DESIGN.md §3; Huang et al. 2020, "Augmented normalizing flows", eq. 4).
///
/// - Shapes: `x` `[batch, features]`, `y` `[batch, noiseFeatures + features]`, log-dets `[batch]`.
/// - Noise in the forward direction comes from `context[channel]` if present (so that
///   `forward(inverse(y))` reproduces `y` exactly), otherwise from `context.generator`.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if forward finds neither a given
///   ε nor a generator (the plain ``forward(_:)`` has neither); shape mismatches.
public final class ConcatNoise<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// Features of `x`, the forward input.
    public let features: Int
    /// `k`, the number of noise features.
    public let noiseFeatures: Int
    /// q, the noise distribution on `k` features.
    public let noise: any BaseDistribution<T>
    /// The side-channel name of ε.
    public let channel: String

    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if a size is < 1, the channel
    ///   name is empty, or `noise.features != noiseFeatures`.
    public init(features: Int, noise: any BaseDistribution<T>, channel: String = "noise") throws {
        guard features >= 1, noise.features >= 1, !channel.isEmpty else {
            throw InvertNNError.invalidArgument(
                operation: "ConcatNoise",
                reason: "features (\(features)) and noise features (\(noise.features)) must be ≥ 1, channel non-empty")
        }
        let (total, overflow) = features.addingReportingOverflow(noise.features)
        _ = try SizeLimits.product([overflow ? Int.max : total], operation: "ConcatNoise", what: "output features")
        self.features = features
        self.noiseFeatures = noise.features
        self.noise = noise
        self.channel = channel
    }

    public var name: String { "ConcatNoise(\(noiseFeatures) + \(features) '\(channel)')" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { noiseFeatures + features }
    public var parameters: [Parameter<T>] { [] }
    /// The hyper-parameters: the feature counts, the side channel's name and the noise
    /// distribution (`"StandardNormal"`, the only one a checkpoint can rebuild so far).
    public struct Configuration: Codable, Sendable, Equatable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// Features of the appended noise.
        public var noiseFeatures: Int
        /// The name of the side channel in the ``LayerContext``.
        public var channel: String
        /// The noise distribution (`"StandardNormal"`; absent means the same).
        public var noise: String?
    }
    public static var typeName: String { "ConcatNoise" }
    public var configuration: Configuration {
        Configuration(
            features: features, noiseFeatures: noiseFeatures, channel: channel,
            noise: noise is StandardNormal<T> ? "StandardNormal" : String(describing: type(of: noise)))
    }
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for a noise other than `StandardNormal`.
    public convenience init(configuration c: Configuration) throws {
        let noise = c.noise ?? "StandardNormal"
        guard noise == "StandardNormal" else {
            throw InvertNNError.invalidArgument(operation: "ConcatNoise", reason: "unsupported noise distribution \(noise)")
        }
        try self.init(features: c.features, noise: StandardNormal<T>(features: c.noiseFeatures), channel: c.channel)
    }

    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        let epsilon: Matrix<T>
        if context[channel] != nil {
            epsilon = try context.require(channel, rows: x.rows, columns: noiseFeatures, layer: name)
        } else if var generator = context.generator {
            epsilon = noise.sample(count: x.rows, temperature: 1, using: &generator)
            context.generator = generator
        } else {
            throw InvertNNError.invalidArgument(
                operation: "\(name).forward",
                reason: "needs ε: put it in the side channels under '\(channel)' or give the side channels a generator")
        }
        let logQ = try noise.logProbability(epsilon)
        return LayerOutput(output: try epsilon.concatenatedColumns(x), logAbsDet: logQ.map { -$0 })
    }

    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(outputFeatures, "\(name).inverse")
        let epsilon = y.columns(0..<noiseFeatures)
        context[channel] = epsilon
        return LayerOutput(output: y.columns(noiseFeatures..<outputFeatures), logAbsDet: try noise.logProbability(epsilon))
    }

    /// Returns `dL/dx`; adds `dL/dε = dL/dy_ε - dL/dlogAbsDet · ∇log q(ε)` into
    /// `context.gradients[channel]` (useful for reparametrized noise).
    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: input, inFeatures: features, output: output,
                             outFeatures: outputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        let epsilon = output.columns(0..<noiseFeatures)
        let score = try noise.logProbabilityGradient(epsilon)
        var epsilonGradient = outputGradient.columns(0..<noiseFeatures)
        for r in 0..<epsilon.rows {
            for j in 0..<noiseFeatures { epsilonGradient[r, j] -= logAbsDetGradient[r] * score[r, j] }
        }
        context.accumulateGradient(channel, epsilonGradient)
        return outputGradient.columns(noiseFeatures..<outputFeatures)
    }

    /// Returns `dL/dy = [dL/dlogAbsDet · ∇log q(ε) + dL/dε_restored, dL/dx]`.
    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: input, inFeatures: outputFeatures, output: output,
                             outFeatures: features, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        let epsilon = input.columns(0..<noiseFeatures)
        var epsilonGradient = try noise.logProbabilityGradient(epsilon)
        for r in 0..<epsilon.rows {
            for j in 0..<noiseFeatures { epsilonGradient[r, j] *= logAbsDetGradient[r] }
        }
        if let g = context.gradients[channel], g.rows == input.rows, g.columns == noiseFeatures {
            epsilonGradient = try epsilonGradient + g
        }
        return try epsilonGradient.concatenatedColumns(outputGradient)
    }
}
