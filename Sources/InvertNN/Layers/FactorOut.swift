import RealModule

/// The factor-out of a multi-scale flow (Dinh et al. 2017, "Density estimation using Real NVP",
/// §3.6; Kingma & Dhariwal 2018, "Glow", §3): an inner flow acts on the first `k` features of
/// each row and the other `D - k` pass through unchanged, straight to the base distribution.
///
/// On NCHW images `[C, H, W]` the first `c` channels are the first `c·H·W` features of a row, so
/// wrapping the rest of a multi-scale flow in `FactorOut(inner, keptFeatures: c·H·W)` factors
/// out the last `C - c` channels at this scale with a fixed N(0, 1) prior; a learned prior on
/// them (Glow's split prior: mean and log-scale from the kept channels by a zero-initialized
/// convolution) is a ``ConvCoupling`` with a channel mask and no hidden layers placed just
/// outside the factor-out (see ``FlowPresets/glow(channels:height:width:levels:steps:hiddenChannels:scaleBound:learnedPrior:context:seed:as:)``).
///
/// - Shapes: `x`, `y` `[batch, D]`; the inner layer maps `k` features to `k` features.
/// - Log-determinant: the inner layer's (the pass-through part contributes 0).
/// - Training: a taped call (``RetainingLayer``) tapes an inner ``Sequential`` (or retains an inner
///   ``RetainingLayer``), so the outer tape's backward costs what the inner flow's taped backward
///   costs; untaped, the VJPs call the inner layer's, which rebuild by inversion (memory flat in depth).
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` from the initializer for
///   `k ∉ 1...D` or an inner layer of another width; shape errors as every layer.
public final class FactorOut<T: Scalar>: RetainingLayer, RebuildableLayer {
    public typealias Element = T

    /// The flow on the kept features.
    public let inner: any InvertibleLayer<T>
    /// `D`, the row width.
    public let features: Int
    /// `k`, the leading features the inner flow maps.
    public let keptFeatures: Int

    /// What a taped call kept for its backward.
    enum Retained {
        case tape(Sequential<T>.Tape, input: [T])
        case inner(isForward: Bool)
    }
    var retained: Retained?

    /// Wraps `inner` (on `keptFeatures` features) for rows of `features`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` unless
    ///   `1 ≤ keptFeatures ≤ features` and `inner` maps `keptFeatures → keptFeatures`.
    public init(_ inner: any InvertibleLayer<T>, features: Int, keptFeatures: Int) throws {
        guard keptFeatures >= 1, keptFeatures <= features else {
            throw InvertNNError.invalidArgument(
                operation: "FactorOut", reason: "keptFeatures must be in 1...\(features), got \(keptFeatures)")
        }
        try SizeLimits.features(features, operation: "FactorOut")
        guard inner.inputFeatures == keptFeatures, inner.outputFeatures == keptFeatures else {
            throw InvertNNError.invalidArgument(
                operation: "FactorOut",
                reason: "\(inner.name) maps \(inner.inputFeatures) → \(inner.outputFeatures) features; expected \(keptFeatures) → \(keptFeatures)")
        }
        self.inner = inner
        self.features = features
        self.keptFeatures = keptFeatures
    }

    /// Wraps `inner` for `[channels, height, width]` images, keeping the first `keptChannels`.
    ///
    /// - Throws: as ``init(_:features:keptFeatures:)``.
    public convenience init(_ inner: any InvertibleLayer<T>, channels: Int, height: Int, width: Int, keptChannels: Int) throws {
        let features = try SizeLimits.product([channels, height, width], operation: "FactorOut", what: "C·H·W")
        try self.init(inner, features: features, keptFeatures: keptChannels * height * width)
    }

    public var name: String { "FactorOut(\(inner.name), keeps \(keptFeatures) of \(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { inner.parameters }
    public func releaseRetained() {
        retained = nil
        (inner as? any RetainingLayer<T>)?.releaseRetained()
    }

    /// The hyper-parameters: the widths and the inner layer (a one-element `layers`).
    public struct Configuration: Codable, Sendable {
        /// `D`.
        public var features: Int
        /// `k`.
        public var keptFeatures: Int
        /// The inner layer's configuration.
        public var layers: [LayerConfiguration<T>]
    }
    public static var typeName: String { "FactorOut" }
    public var configuration: Configuration {
        Configuration(features: features, keptFeatures: keptFeatures, layers: [LayerConfiguration(inner)])
    }
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` unless `layers` holds exactly one layer.
    public convenience init(configuration c: Configuration) throws {
        guard c.layers.count == 1 else {
            throw InvertNNError.invalidArgument(operation: "FactorOut", reason: "wraps exactly one layer, got \(c.layers.count)")
        }
        try self.init(try c.layers[0].makeLayer(), features: c.features, keptFeatures: c.keptFeatures)
    }

    /// The kept block `[rows, k]` of a batch.
    private func kept(_ m: Matrix<T>) -> Matrix<T> { m.columns(0..<keptFeatures) }

    /// `full` with its kept block replaced by `block`.
    private func merged(_ full: Matrix<T>, _ block: Matrix<T>) -> Matrix<T> {
        var out = full
        let d = features, k = keptFeatures
        out.storage.withUnsafeMutableBufferPointer { o in
            block.storage.withUnsafeBufferPointer { b in
                for r in 0..<full.rows { (o.baseAddress! + r * d).update(from: b.baseAddress! + r * k, count: k) }
            }
        }
        return out
    }

    private func run(_ input: Matrix<T>, isForward: Bool, retain: Bool, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try input.requireColumns(features, "\(name).\(isForward ? "forward" : "inverse")")
        let block = kept(input)
        let result: LayerOutput<T>
        retained = nil
        if retain, let sequential = inner as? Sequential<T> {
            let (output, tape) = isForward
                ? try sequential.forwardTaped(block, context: &context) : try sequential.inverseTaped(block, context: &context)
            retained = .tape(tape, input: block.storage)
            result = output
        } else if retain, let retaining = inner as? any RetainingLayer<T> {
            result = isForward ? try retaining.forwardRetaining(block, context: &context) : try retaining.inverseRetaining(block, context: &context)
            retained = .inner(isForward: isForward)
        } else {
            result = isForward ? try inner.forward(block, context: &context) : try inner.inverse(block, context: &context)
        }
        return LayerOutput(output: merged(input, result.output), logAbsDet: result.logAbsDet)
    }

    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try run(x, isForward: true, retain: false, context: &context)
    }

    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try run(y, isForward: false, retain: false, context: &context)
    }

    public func forwardRetaining(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try run(x, isForward: true, retain: true, context: &context)
    }

    public func inverseRetaining(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try run(y, isForward: false, retain: true, context: &context)
    }

    /// Both VJPs: the pass-through block's gradient is the output gradient; the kept block's is
    /// the inner layer's VJP (from the tape of a taped call at this input, else the inner layer's own).
    private func backward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], isForward: Bool,
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        defer { retained = nil }
        let block = kept(input), blockGradient = kept(outputGradient)
        let innerGradient: Matrix<T>
        if case let .tape(tape, kept)? = retained, let sequential = inner as? Sequential<T>, tape.isForward == isForward,
           kept == block.storage {
            innerGradient = try sequential.backward(tape, outputGradient: blockGradient, logAbsDetGradient: logAbsDetGradient,
                                                    context: &context)
        } else {
            let blockOutput = self.kept(output)
            innerGradient = isForward
                ? try inner.forwardBackward(input: block, output: blockOutput, outputGradient: blockGradient,
                                            logAbsDetGradient: logAbsDetGradient, context: &context)
                : try inner.inverseBackward(input: block, output: blockOutput, outputGradient: blockGradient,
                                            logAbsDetGradient: logAbsDetGradient, context: &context)
        }
        return merged(outputGradient, innerGradient)
    }

    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: input, inFeatures: features, output: output, outFeatures: features,
                             outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        return try backward(input: input, output: output, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient,
                            isForward: true, context: &context)
    }

    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: input, inFeatures: features, output: output, outFeatures: features,
                             outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        return try backward(input: input, output: output, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient,
                            isForward: false, context: &context)
    }
}

extension FactorOut: ConditionalLayer {
    public var contextWidths: Set<Int> { (inner as? any ConditionalLayer<T>)?.contextWidths ?? [] }
}
