import RealModule

/// A coupling layer: a conditioner network plus a per-feature transformer (Dinh et al. 2017,
/// "Density estimation using Real NVP", §3.3; Durkan et al. 2019, "Neural Spline Flows", §3.1).
///
/// The `D` features split at `k` into two blocks (see ``CouplingBlock``); the conditioning block
/// `a` (`d` features) passes through and the other block `b` (`m = D - d` features) is transformed
/// feature by feature, with parameters the conditioner computes from `a`:
///
///     h   = conditioner([x_a, c])                 [batch, P·m]  (P = transformer.parametersPerFeature)
///     y_a = x_a,   y_b[j] = τ(x_b[j]; h[·, j])    log|det ∂y/∂x| = Σ_j log|τ'(x_b[j])|
///     x_b[j] = τ⁻¹(y_b[j]; h[·, j])               (h from y_a = x_a)
///
/// - Shapes: `x`, `y` `[batch, D]`, log-dets `[batch]` in nats. Splits need not be even.
/// - Context: with ``contextFeatures`` `> 0` the layer is conditional: the conditioner also reads
///   the context `c` `[batch, contextFeatures]` from ``LayerContext/conditioning`` (appended to
///   `x_a`), and the backward passes add `dL/dc` into ``LayerContext/conditioningGradient``. A
///   conditional layer without a context, or with one of another width, throws.
/// - Transformers: ``AffineTransformer`` (``AffineCoupling``), ``AdditiveTransformer``,
///   ``RationalQuadraticSpline``, or any ``CouplingTransformer``.
/// - Parameters: those of the ``conditioner`` MLP (`dense<k>.weight`, `dense<k>.bias`).
/// - Backward passes recompute the conditioner's forward from the layer input, unless a taped call
///   retained it (``RetainingLayer``: then a training step costs the MLP's own GEMMs and the
///   transformer's elementwise work), and run the MLP's hand-written backward, so gradients reach
///   `x_a` both directly and through the conditioner.
/// - Throws: ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` when an inverse input
///   lies outside the transformer's inverse domain; shape errors as every layer.
public final class Coupling<Transformer: CouplingTransformer>: RetainingLayer, RebuildableLayer {
    public typealias Element = Transformer.Element
    public typealias T = Transformer.Element

    /// `D`, the feature count (`≥ 2`).
    public let features: Int
    /// `k`: the first block is `[0, k)`, the second `[k, D)`.
    public let firstBlockSize: Int
    /// Which block conditions the other.
    public let conditioningBlock: CouplingBlock
    /// The per-feature bijection of the transformed block.
    public let transformer: Transformer
    /// The conditioner, `[batch, d] -> [batch, P·m]`, laid out parameter-major (`h[r, p·m + j]`).
    public let conditioner: MLP<T>
    /// The feature positions of the conditioning block `a` (`d` of them).
    public let conditioningRange: Range<Int>
    /// The feature positions of the transformed block `b` (`m` of them).
    public let transformedRange: Range<Int>
    /// Width of the conditioning context `c` the conditioner reads besides `x_a` (0: unconditional).
    public let contextFeatures: Int

    /// The conditioner trace kept by a retaining call: valid for the next backward of
    /// `isForward`'s direction if that call's input equals `input` and the parameters'
    /// ``Parameter/version``s still equal ``retainedParameterKeys``.
    struct Retained {
        let isForward: Bool
        let input: [T]
        let trace: MLP<T>.Trace
        let context: [T]
        /// What the transformer's apply left for its backward (``CouplingTransformer/retainedCount(block:)`` entries).
        let transformerState: [T]
    }
    var retained: Retained?
    /// The conditioner's parameter versions at the retaining call, updated in place.
    var retainedParameterKeys: [UInt64] = []

    /// A coupling layer around a ready conditioner.
    ///
    /// - Parameters:
    ///   - features: `D ≥ 2`.
    ///   - transformer: the per-feature bijection.
    ///   - conditioner: an MLP from `d + contextFeatures` to `P·(D - d)` features.
    ///   - conditioningBlock: which block is `a` (default the first).
    ///   - firstBlockSize: `k` in `1..<D` (default `⌊D/2⌋`); 0 for a conditional layer whose
    ///     conditioner reads only the context and transforms every feature.
    ///   - contextFeatures: width of the conditioning context (default 0: unconditional).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `D < 2`, `k` is out of
    ///   range, or the conditioner's sizes do not fit the split and the transformer.
    public init(
        features: Int, transformer: Transformer, conditioner: MLP<T>, conditioningBlock: CouplingBlock = .first,
        firstBlockSize: Int? = nil, contextFeatures: Int = 0
    ) throws {
        let (a, b) = try Self.split(
            features: features, firstBlockSize: firstBlockSize, conditioningBlock: conditioningBlock, contextFeatures: contextFeatures)
        guard contextFeatures >= 0 else {
            throw InvertNNError.invalidArgument(operation: Self.typeName, reason: "contextFeatures must be ≥ 0, got \(contextFeatures)")
        }
        let width = transformer.parametersPerFeature * b.count
        guard conditioner.inputFeatures == a.count + contextFeatures, conditioner.outputFeatures == width else {
            throw InvertNNError.invalidArgument(
                operation: Self.typeName,
                reason: "conditioner must map \(a.count + contextFeatures) -> \(width) features "
                    + "(\(transformer.parametersPerFeature) parameters of each of \(b.count) features), got sizes \(conditioner.sizes)")
        }
        self.features = features
        self.firstBlockSize = firstBlockSize ?? features / 2
        self.conditioningBlock = conditioningBlock
        self.transformer = transformer
        self.conditioner = conditioner
        self.conditioningRange = a
        self.transformedRange = b
        self.contextFeatures = contextFeatures
    }

    /// A coupling layer with a new He-initialized MLP conditioner `d -> hidden… -> P·(D - d)`.
    ///
    /// - Parameters:
    ///   - features: `D ≥ 2`.
    ///   - transformer: the per-feature bijection.
    ///   - hiddenSizes: widths of the conditioner's hidden layers (may be empty: affine conditioner).
    ///   - conditioningBlock: which block is `a` (default the first; alternate it in a flow).
    ///   - activation: the conditioner's hidden nonlinearity (default ReLU).
    ///   - firstBlockSize: `k` in `1..<D` (default `⌊D/2⌋`).
    ///   - zeroInitializeLastLayer: start the conditioner's output layer at 0 (default true: an
    ///     affine or additive coupling then starts as the identity).
    ///   - contextFeatures: width of the conditioning context (default 0: unconditional).
    ///   - generator: the caller-owned source of randomness.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` as
    ///   ``init(features:transformer:conditioner:conditioningBlock:firstBlockSize:contextFeatures:)`` and
    ///   ``MLP/init(sizes:activation:zeroInitializeLastLayer:using:)`` do.
    public convenience init(
        features: Int, transformer: Transformer, hiddenSizes: [Int], conditioningBlock: CouplingBlock = .first,
        activation: MLPActivation = .relu, firstBlockSize: Int? = nil, zeroInitializeLastLayer: Bool = true,
        contextFeatures: Int = 0, using generator: inout some RandomNumberGenerator
    ) throws {
        let (a, b) = try Self.split(
            features: features, firstBlockSize: firstBlockSize, conditioningBlock: conditioningBlock, contextFeatures: contextFeatures)
        guard contextFeatures >= 0, contextFeatures <= SizeLimits.maximumElements else {
            throw InvertNNError.invalidArgument(operation: Self.typeName, reason: "contextFeatures must be ≥ 0, got \(contextFeatures)")
        }
        let mlp = try MLP<T>(sizes: [a.count + contextFeatures] + hiddenSizes + [transformer.parametersPerFeature * b.count],
                             activation: activation, zeroInitializeLastLayer: zeroInitializeLastLayer, using: &generator)
        try self.init(features: features, transformer: transformer, conditioner: mlp,
                      conditioningBlock: conditioningBlock, firstBlockSize: firstBlockSize, contextFeatures: contextFeatures)
    }

    /// The checkpoint type name, the transformer's ``CouplingTransformer/couplingTypeName``
    /// (`AffineCoupling` for the affine transformer, the name format 1 files use).
    public static var typeName: String { Transformer.couplingTypeName }

    /// The conditioning and transformed ranges. A conditional layer may have an empty
    /// conditioning block (`firstBlockSize` 0 with the first block conditioning): its conditioner
    /// then reads only the context and every feature is transformed, an elementwise map whose
    /// parameters are functions of `c` (a conditional diagonal Gaussian when placed next to the base).
    private static func split(
        features: Int, firstBlockSize: Int?, conditioningBlock: CouplingBlock, contextFeatures: Int
    ) throws -> (conditioning: Range<Int>, transformed: Range<Int>) {
        let smallest = contextFeatures > 0 ? 0 : 1
        guard features >= smallest + 1 else {
            throw InvertNNError.invalidArgument(
                operation: typeName,
                reason: "needs ≥ 2 features to split into a conditioning and a transformed block, got \(features)")
        }
        try SizeLimits.features(features, operation: typeName)
        let k = firstBlockSize ?? features / 2
        guard k >= smallest, k < features || (k == 0 && features >= 1) else {
            throw InvertNNError.invalidArgument(
                operation: typeName, reason: "firstBlockSize must be in \(smallest)..<\(features), got \(k)")
        }
        if k == 0, conditioningBlock == .second {
            throw InvertNNError.invalidArgument(
                operation: typeName, reason: "an empty conditioning block must be the first (firstBlockSize 0, conditioningBlock .first)")
        }
        let first = 0..<k, second = k..<features
        return conditioningBlock == .first ? (first, second) : (second, first)
    }

    public var name: String {
        let kind = Self.typeName == "AffineCoupling" ? "AffineCoupling" : "Coupling[\(transformer.name)]"
        return "\(kind)(\(features), \(conditioningBlock.rawValue) block [\(conditioningRange.lowerBound)..<\(conditioningRange.upperBound)] conditions)"
    }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { conditioner.parameters }

    /// The transformed block's place in a `[rows, D]` batch.
    private func block(rows: Int) -> TransformedBlock {
        TransformedBlock(rows: rows, features: transformedRange.count, rowStride: features, offset: transformedRange.lowerBound)
    }

    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    @_specialize(where Transformer == RationalQuadraticSpline<Float>)
    @_specialize(where Transformer == RationalQuadraticSpline<Double>)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        let h = try conditioner.forward(conditionerInput(x, context), buffers: context.buffers).output
        return try apply(x, conditionerOutput: h, isForward: true, workspace: context.buffers(for: self))
    }

    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    @_specialize(where Transformer == RationalQuadraticSpline<Float>)
    @_specialize(where Transformer == RationalQuadraticSpline<Double>)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(features, "\(name).inverse")
        let h = try conditioner.forward(conditionerInput(y, context), buffers: context.buffers).output
        return try apply(y, conditionerOutput: h, isForward: false, workspace: context.buffers(for: self))
    }

    public func forwardRetaining(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try retaining(x, context: context, isForward: true)
    }

    public func inverseRetaining(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try retaining(y, context: context, isForward: false)
    }

    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    @_specialize(where Transformer == RationalQuadraticSpline<Float>)
    @_specialize(where Transformer == RationalQuadraticSpline<Double>)
    private func retaining(_ input: Matrix<T>, context: LayerContext<T>, isForward: Bool) throws -> LayerOutput<T> {
        try input.requireColumns(features, "\(name).\(isForward ? "forward" : "inverse")")
        let workspace = context.buffers(for: self)
        let trace = try conditioner.forward(conditionerInput(input, context), buffers: context.buffers)
        var state = workspace.take(CouplingSlot.transformerState, count: transformer.retainedCount(block: block(rows: input.rows)))
        let result = try apply(input, conditionerOutput: trace.output, isForward: isForward, workspace: workspace, retaining: &state)
        workspace.keep(CouplingSlot.transformerState, state)
        retained = Retained(isForward: isForward, input: input.storage, trace: trace,
                            context: contextFeatures > 0 ? context.conditioning?.storage ?? [] : [], transformerState: state)
        let parameters = conditioner.parameters
        if retainedParameterKeys.count != parameters.count {
            retainedParameterKeys = parameters.map { $0.version }
        } else {
            for i in 0..<parameters.count { retainedParameterKeys[i] = parameters[i].version }
        }
        return result
    }

    /// Drops the conditioner trace kept by a taped pass (``RetainingLayer``).
    public func releaseRetained() { retained = nil }

    /// The conditioner's input `[x_a, c]` `[rows, d + contextFeatures]` in a buffer of the
    /// context's pool. The conditioner first drops its previous trace's references
    /// (``MLP/recycleTrace(in:)``) so the buffer can be reused in place.
    private func conditionerInput(_ x: Matrix<T>, _ context: LayerContext<T>) throws -> Matrix<T> {
        let c = try context.requireConditioning(rows: x.rows, columns: contextFeatures, layer: name)
        conditioner.recycleTrace(in: context.buffers)
        let workspace = context.buffers(for: self)
        let rows = x.rows, width = features, d = conditioningRange.count, offset = conditioningRange.lowerBound
        let cf = contextFeatures, total = d + cf
        var out = workspace.matrix(CouplingSlot.conditioningColumns, rows: rows, columns: total)
        x.storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                guard let from = src.baseAddress, let to = dst.baseAddress else { return }
                for r in 0..<rows { (to + r * total).update(from: from + r * width + offset, count: d) }
                guard let c else { return }
                c.storage.withUnsafeBufferPointer { cp in
                    guard let cs = cp.baseAddress else { return }
                    for r in 0..<rows { (to + r * total + d).update(from: cs + r * cf, count: cf) }
                }
            }
        }
        workspace.keep(CouplingSlot.conditioningColumns, out)
        return out
    }

    /// The conditioner trace for a backward call at `input`, with the transformer's retained
    /// state: the retained ones if they were taken in the same direction at the same input with
    /// the same parameters, else the trace recomputed and no state. Releases the retained state
    /// either way.
    private func trace(for input: Matrix<T>, context: LayerContext<T>, isForward: Bool) throws -> (MLP<T>.Trace, [T]?) {
        defer { retained = nil }
        if let kept = retained, kept.isForward == isForward, kept.input == input.storage,
           contextFeatures == 0 || kept.context == context.conditioning?.storage ?? [],
           retainedParameterKeys.count == conditioner.parameters.count,
           zip(retainedParameterKeys, conditioner.parameters).allSatisfy({ $0.0 == $0.1.version }),
           kept.trace.output.rows == input.rows {
            return (kept.trace, kept.transformerState.isEmpty ? nil : kept.transformerState)
        }
        return (try conditioner.forward(conditionerInput(input, context), buffers: context.buffers), nil)
    }

    /// One direction given the conditioner output `h` `[rows, P·m]`: the input copied, its
    /// transformed block mapped in place; with `retaining` (sized by the transformer's
    /// ``CouplingTransformer/retainedCount(block:)``, not empty) the transformer also writes the
    /// state its backward reuses. The output and log-dets are borrowed from `workspace`.
    private func apply(
        _ input: Matrix<T>, conditionerOutput h: Matrix<T>, isForward: Bool, workspace: LayerBuffers<T>,
        retaining: UnsafeMutablePointer<[T]>? = nil
    ) throws -> LayerOutput<T> {
        // One output buffer per direction: rebuilding mode maps an inverse result forward again
        // while that result is still in use.
        let outputSlot = isForward ? CouplingSlot.output : CouplingSlot.inverseOutput
        var out = workspace.copy(outputSlot, of: input)
        defer { workspace.keep(outputSlot, out) }
        var logDet = workspace.take(CouplingSlot.logDet, count: input.rows)
        defer { workspace.keep(CouplingSlot.logDet, logDet) }
        let block = block(rows: input.rows)
        let failure = h.storage.withUnsafeBufferPointer { hp in
            out.storage.withUnsafeMutableBufferPointer { op in
                logDet.withUnsafeMutableBufferPointer { lp in
                    guard let retaining, !retaining.pointee.isEmpty else {
                        return transformer.apply(op.baseAddress!, block: block, parameters: hp.baseAddress!, logAbsDet: lp.baseAddress!,
                                                 inverse: !isForward)
                    }
                    return retaining.pointee.withUnsafeMutableBufferPointer { sp in
                        transformer.apply(op.baseAddress!, block: block, parameters: hp.baseAddress!, logAbsDet: lp.baseAddress!,
                                          inverse: !isForward, retaining: sp.baseAddress!)
                    }
                }
            }
        }
        if let failure {
            throw InvertNNError.outOfDomain(
                layer: "\(name).\(isForward ? "forward" : "inverse")", value: Double(failure.value), row: failure.row,
                column: transformedRange.lowerBound + failure.feature, domain: "the transformer's inverse domain")
        }
        return LayerOutput(output: out, logAbsDet: logDet)
    }

    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    @_specialize(where Transformer == RationalQuadraticSpline<Float>)
    @_specialize(where Transformer == RationalQuadraticSpline<Double>)
    public func forwardBackward(
        input x: Matrix<T>, output y: Matrix<T>, outputGradient dy: Matrix<T>, logAbsDetGradient dld: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: x, inFeatures: features, output: y, outFeatures: features,
                             outputGradient: dy, logAbsDetGradient: dld)
        return try backward(input: x, outputGradient: dy, logAbsDetGradient: dld, context: &context, isForward: true)
    }

    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    @_specialize(where Transformer == RationalQuadraticSpline<Float>)
    @_specialize(where Transformer == RationalQuadraticSpline<Double>)
    public func inverseBackward(
        input y: Matrix<T>, output x: Matrix<T>, outputGradient dx: Matrix<T>, logAbsDetGradient dld: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: y, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: dx, logAbsDetGradient: dld)
        return try backward(input: y, outputGradient: dx, logAbsDetGradient: dld, context: &context, isForward: false)
    }

    /// Both VJPs after their checks: the conditioner trace (kept or recomputed), the transformer's
    /// backward on the block, then the conditioner's backward added into the conditioning columns.
    /// `output` is not needed: everything is recomputed from `input`.
    private func backward(
        input: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>, isForward: Bool
    ) throws -> Matrix<T> {
        let (trace, state) = try trace(for: input, context: context, isForward: isForward)
        let workspace = context.buffers(for: self)
        let rows = input.rows
        var gradient = workspace.copy(CouplingSlot.inputGradient, of: outputGradient)
        var dh = workspace.matrix(CouplingSlot.conditionerGradient, rows: rows, columns: trace.output.columns)
        let block = block(rows: rows)
        input.storage.withUnsafeBufferPointer { ip in
            trace.output.storage.withUnsafeBufferPointer { hp in
                gradient.storage.withUnsafeMutableBufferPointer { gp in
                    dh.storage.withUnsafeMutableBufferPointer { dhp in
                        dld.withUnsafeBufferPointer { lp in
                            guard let state else {
                                return transformer.backward(
                                    input: ip.baseAddress!, block: block, parameters: hp.baseAddress!, gradient: gp.baseAddress!,
                                    logAbsDetGradient: lp.baseAddress!, parameterGradient: dhp.baseAddress!, inverse: !isForward)
                            }
                            state.withUnsafeBufferPointer { sp in
                                transformer.backward(
                                    input: ip.baseAddress!, block: block, parameters: hp.baseAddress!, gradient: gp.baseAddress!,
                                    logAbsDetGradient: lp.baseAddress!, parameterGradient: dhp.baseAddress!, inverse: !isForward,
                                    retained: sp.baseAddress!)
                            }
                        }
                    }
                }
            }
        }
        workspace.keep(CouplingSlot.conditionerGradient, dh)
        let da = try conditioner.backward(trace, outputGradient: dh, buffers: context.buffers)
        let width = features, d = conditioningRange.count, offset = conditioningRange.lowerBound, total = d + contextFeatures
        da.storage.withUnsafeBufferPointer { ap in
            gradient.storage.withUnsafeMutableBufferPointer { gp in
                for r in 0..<rows {
                    let o = r * width + offset, ao = r * total
                    for j in 0..<d { gp[o + j] += ap[ao + j] }
                }
            }
        }
        if contextFeatures > 0 { context.accumulateConditioningGradient(da.columns(d..<total)) }
        workspace.keep(CouplingSlot.inputGradient, gradient)  // after its last write
        return gradient
    }

    /// The hyper-parameters: the split, the conditioner's shape and activation, the context
    /// width (written only when `> 0`) and the transformer's own fields, all in one object (the
    /// keys format 1 files use: `features`, `firstBlockSize`, `conditioningBlock`, `hiddenSizes`,
    /// `activation`, `activationSlope`, `contextFeatures`, then e.g. `scaleBound`).
    public struct Configuration: Codable, Sendable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// `k`: the first block is `[0, k)`.
        public var firstBlockSize: Int
        /// Which block conditions the other.
        public var conditioningBlock: CouplingBlock
        /// Widths of the conditioner's hidden layers.
        public var hiddenSizes: [Int]
        /// ``MLPActivation/configurationName``.
        public var activation: String
        /// ``MLPActivation/slope``.
        public var activationSlope: Double?
        /// Width of the conditioning context; `nil` for 0.
        public var contextFeatures: Int?
        /// The transformer's hyper-parameters.
        public var transformer: Transformer.Configuration

        private enum CodingKeys: String, CodingKey {
            case features, firstBlockSize, conditioningBlock, hiddenSizes, activation, activationSlope, contextFeatures
        }

        init(
            features: Int, firstBlockSize: Int, conditioningBlock: CouplingBlock, hiddenSizes: [Int], activation: MLPActivation,
            contextFeatures: Int, transformer: Transformer.Configuration
        ) {
            self.features = features
            self.firstBlockSize = firstBlockSize
            self.conditioningBlock = conditioningBlock
            self.hiddenSizes = hiddenSizes
            self.activation = activation.configurationName
            self.activationSlope = activation.slope
            self.contextFeatures = contextFeatures > 0 ? contextFeatures : nil
            self.transformer = transformer
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            features = try c.decode(Int.self, forKey: .features)
            firstBlockSize = try c.decode(Int.self, forKey: .firstBlockSize)
            conditioningBlock = try c.decode(CouplingBlock.self, forKey: .conditioningBlock)
            hiddenSizes = try c.decode([Int].self, forKey: .hiddenSizes)
            activation = try c.decode(String.self, forKey: .activation)
            activationSlope = try c.decodeIfPresent(Double.self, forKey: .activationSlope)
            contextFeatures = try c.decodeIfPresent(Int.self, forKey: .contextFeatures)
            transformer = try Transformer.Configuration(from: decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(features, forKey: .features)
            try c.encode(firstBlockSize, forKey: .firstBlockSize)
            try c.encode(conditioningBlock, forKey: .conditioningBlock)
            try c.encode(hiddenSizes, forKey: .hiddenSizes)
            try c.encode(activation, forKey: .activation)
            try c.encodeIfPresent(activationSlope, forKey: .activationSlope)
            try c.encodeIfPresent(contextFeatures, forKey: .contextFeatures)
            try transformer.encode(to: encoder)  // the transformer's fields join the coupling's object
        }
    }

    public var configuration: Configuration {
        Configuration(
            features: features, firstBlockSize: firstBlockSize, conditioningBlock: conditioningBlock,
            hiddenSizes: conditioner.hiddenSizes, activation: conditioner.activation, contextFeatures: contextFeatures,
            transformer: transformer.configuration)
    }

    /// A coupling with a new conditioner of the configured shape (zero last layer: placeholder
    /// values a checkpoint overwrites).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an unknown activation,
    ///   a transformer configuration the transformer rejects, or sizes the initializer rejects.
    public convenience init(configuration c: Configuration) throws {
        let activation = try MLPActivation(configurationName: c.activation, slope: c.activationSlope)
        var generator = SeededGenerator(seed: 0)
        try self.init(
            features: c.features, transformer: try Transformer(configuration: c.transformer), hiddenSizes: c.hiddenSizes,
            conditioningBlock: c.conditioningBlock, activation: activation, firstBlockSize: c.firstBlockSize,
            zeroInitializeLastLayer: true, contextFeatures: c.contextFeatures ?? 0, using: &generator)
    }
}

/// The ``LayerBuffers`` slots of ``Coupling``.
enum CouplingSlot {
    static let conditioningColumns = 0, output = 1, logDet = 2, inputGradient = 3
    static let conditionerGradient = 4, inverseOutput = 5, transformerState = 6
}
