import RealModule

/// A masked autoregressive transform (Papamakarios et al. 2017, "Masked Autoregressive Flow for
/// Density Estimation", §3.1-3.3; Kingma et al. 2016 for the inverse autoregressive direction): a
/// ``MADE`` conditioner plus a per-feature ``CouplingTransformer``, every feature transformed with
/// parameters that depend on the features before it in the MADE's ``MADE/order``.
///
/// With the library's forward direction generative (DESIGN.md §2), the layer is a MAF:
///
///     inverse (density, one pass):   h = MADE([x, c]),   u_i = τ⁻¹(x_i; h_i(x_<i, c))
///                                    log|det ∂u/∂x| = Σ_i log|(τ⁻¹)'(x_i; h_i)|
///     forward (sampling, D passes):  x⁽⁰⁾ = 0,   x⁽ᵏ⁺¹⁾ = τ(u; MADE([x⁽ᵏ⁾, c]))
///
/// After pass `k` the first `k` features in the order are exact, so `x⁽ᴰ⁾ = f(u)` exactly; each
/// pass is one MADE call on the whole batch, and the passes stop early when a pass changes
/// nothing (bit for bit). ``Inverted`` of this layer is an IAF: sampling in one pass, density in `D`.
///
/// - Shapes: `x`, `u` `[batch, D]`, log-dets `[batch]` in nats.
/// - Context: with ``contextFeatures`` `> 0` the MADE also reads `c` `[batch, contextFeatures]`
///   from ``LayerContext/conditioning`` (degree 0: every output sees it); backward passes add
///   `dL/dc` into ``LayerContext/conditioningGradient``.
/// - Backward of the density direction: the coupling VJPs (transformer backward, then the MADE's).
///   Backward of the `D`-pass direction: with `g(x) = τ⁻¹(x; h(x))`, `J = ∂g/∂x = Diag + L` (`L`
///   strictly triangular in the order, hence nilpotent) and `ld_f(u) = -ld_g(x(u))`, the input
///   gradient `v = dL/du` solves `v J = dL/dx - dld·∂ld_g/∂x`, found by the iteration
///   `v ← (dL/dx - dld·∂ld_g/∂x|direct - (v·L + dld·∂ld_g/∂x|via h)) Diag⁻¹`, exact after `D - 1`
///   steps (one transformer backward and one MADE input backward on the batch each; stops early
///   when `v` does not change); then `dL/dθ = -(v·∂g/∂θ + dld·∂ld_g/∂θ)` and likewise `dL/dc`.
/// - Throws: ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` when a density input
///   lies outside the transformer's inverse domain; shape errors as every layer.
public final class MaskedAutoregressive<Transformer: CouplingTransformer>: RebuildableLayer {
    public typealias Element = Transformer.Element
    public typealias T = Transformer.Element

    /// `D`, the feature count (`≥ 1`).
    public let features: Int
    /// The per-feature bijection.
    public let transformer: Transformer
    /// The masked conditioner `[batch, D + contextFeatures] -> [batch, P·D]`.
    public let conditioner: MADE<T>
    /// Width of the conditioning context (0: unconditional).
    public var contextFeatures: Int { conditioner.contextFeatures }
    /// Conditioner passes of the last ``forward(_:context:)`` (at most `D`).
    private(set) var lastForwardPasses = 0
    /// MADE input-gradient passes of the last ``forwardBackward(input:output:outputGradient:logAbsDetGradient:context:)``
    /// iteration (at most `D - 1`).
    private(set) var lastBackwardIterations = 0

    /// A masked autoregressive layer around a ready MADE.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if the MADE's features or
    ///   outputs per feature differ from `features` and the transformer's ``CouplingTransformer/parametersPerFeature``.
    public init(features: Int, transformer: Transformer, conditioner: MADE<T>) throws {
        guard conditioner.features == features, conditioner.parametersPerFeature == transformer.parametersPerFeature else {
            throw InvertNNError.invalidArgument(
                operation: Self.typeName,
                reason: "the MADE must have \(features) features and \(transformer.parametersPerFeature) outputs per feature, got "
                    + "\(conditioner.features) and \(conditioner.parametersPerFeature)")
        }
        self.features = features
        self.transformer = transformer
        self.conditioner = conditioner
    }

    /// A masked autoregressive layer with a new MADE conditioner (see
    /// ``MADE/init(features:parametersPerFeature:hiddenSizes:order:contextFeatures:activation:zeroInitializeLastLayer:using:)``).
    ///
    /// - Parameters:
    ///   - features: `D ≥ 1`.
    ///   - transformer: the per-feature bijection.
    ///   - hiddenSizes: the MADE's hidden widths (each `≥ D - 1` so every degree occurs).
    ///   - order: the autoregressive order, a permutation of `0..<D` (default identity; alternate
    ///     reversed or random orders between the layers of a flow).
    ///   - activation: the MADE's hidden nonlinearity (default ReLU).
    ///   - zeroInitializeLastLayer: start the MADE's output layer at 0 (default true: the layer
    ///     starts as the transformer at zero parameters, the identity for affine and spline).
    ///   - contextFeatures: width of the conditioning context (default 0).
    ///   - generator: the caller-owned source of randomness.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` as the MADE's initializer.
    public convenience init(
        features: Int, transformer: Transformer, hiddenSizes: [Int], order: [Int]? = nil, activation: MLPActivation = .relu,
        zeroInitializeLastLayer: Bool = true, contextFeatures: Int = 0, using generator: inout some RandomNumberGenerator
    ) throws {
        let made = try MADE<T>(
            features: features, parametersPerFeature: transformer.parametersPerFeature, hiddenSizes: hiddenSizes, order: order,
            contextFeatures: contextFeatures, activation: activation, zeroInitializeLastLayer: zeroInitializeLastLayer,
            using: &generator)
        try self.init(features: features, transformer: transformer, conditioner: made)
    }

    /// The checkpoint type name: the transformer's coupling name with `Coupling` replaced by
    /// `MaskedAutoregressive` (`AffineMaskedAutoregressive`, `SplineMaskedAutoregressive`).
    public static var typeName: String {
        let coupling = Transformer.couplingTypeName
        return (coupling.hasSuffix("Coupling") ? String(coupling.dropLast("Coupling".count)) : coupling) + "MaskedAutoregressive"
    }

    public var name: String { "MaskedAutoregressive[\(transformer.name)](\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { conditioner.parameters }

    /// The whole batch as the transformed block.
    private func block(rows: Int) -> TransformedBlock {
        TransformedBlock(rows: rows, features: features, rowStride: features, offset: 0)
    }

    /// The MADE's input `[x, c]` `[rows, D + contextFeatures]` in a buffer of the context's pool:
    /// `x` itself when unconditional.
    private func conditionerInput(_ x: Matrix<T>, _ context: LayerContext<T>) throws -> Matrix<T> {
        let c = try context.requireConditioning(rows: x.rows, columns: contextFeatures, layer: name)
        conditioner.network.recycleTrace(in: context.buffers)
        let workspace = context.buffers(for: self)
        guard let c else { return x }
        let slot = MaskedAutoregressiveSlot.conditionerInput
        var out = workspace.matrix(slot, rows: x.rows, columns: features + c.columns)
        try out.storage.withUnsafeMutableBufferPointer { dst in
            try x.storage.withUnsafeBufferPointer { xp in
                try c.storage.withUnsafeBufferPointer { cp in
                    let d = features, cf = c.columns, total = d + cf
                    guard let to = dst.baseAddress, let from = xp.baseAddress, let cs = cp.baseAddress else {
                        throw InvertNNError.invalidArgument(operation: name, reason: "an empty batch")
                    }
                    for r in 0..<x.rows {
                        (to + r * total).update(from: from + r * d, count: d)
                        (to + r * total + d).update(from: cs + r * cf, count: cf)
                    }
                }
            }
        }
        workspace.keep(slot, out)
        return out
    }

    /// One transformer pass over the whole batch: `source` copied into `slot` and mapped in place
    /// with the parameters `h` `[rows, P·D]` (forward `τ`, or `τ⁻¹` when `!isForward`); the
    /// buffers are borrowed from `workspace`.
    private func apply(
        _ source: Matrix<T>, parameters h: Matrix<T>, isForward: Bool, slot: Int, workspace: LayerBuffers<T>
    ) throws -> LayerOutput<T> {
        var out = workspace.copy(slot, of: source)
        defer { workspace.keep(slot, out) }
        var logDet = workspace.take(MaskedAutoregressiveSlot.logDet, count: source.rows)
        defer { workspace.keep(MaskedAutoregressiveSlot.logDet, logDet) }
        let block = block(rows: source.rows)
        let failure = h.storage.withUnsafeBufferPointer { hp in
            out.storage.withUnsafeMutableBufferPointer { op in
                logDet.withUnsafeMutableBufferPointer { lp in
                    transformer.apply(op.baseAddress!, block: block, parameters: hp.baseAddress!, logAbsDet: lp.baseAddress!,
                                      inverse: !isForward)
                }
            }
        }
        if let failure {
            throw InvertNNError.outOfDomain(
                layer: "\(name).\(isForward ? "forward" : "inverse")", value: Double(failure.value), row: failure.row,
                column: failure.feature, domain: "the transformer's inverse domain")
        }
        return LayerOutput(output: out, logAbsDet: logDet)
    }

    /// Sampling direction, `u -> x`: at most `D` MADE passes over the whole batch (see the type's
    /// documentation); the log-det is that of the last pass, whose parameters come from the exact `x`.
    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    @_specialize(where Transformer == RationalQuadraticSpline<Float>)
    @_specialize(where Transformer == RationalQuadraticSpline<Double>)
    public func forward(_ u: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try u.requireColumns(features, "\(name).forward")
        guard u.rows > 0 else {
            throw InvertNNError.shapeMismatch(operation: "\(name).forward", expected: "a batch of ≥ 1 rows", actual: "0 rows")
        }
        var current = Matrix<T>(rows: u.rows, columns: features)
        var passes = 0
        let workspace = context.buffers(for: self)
        while true {
            let h = try conditioner.forward(conditionerInput(current, context), buffers: context.buffers).output
            passes += 1
            let slot = passes % 2 == 0 ? MaskedAutoregressiveSlot.output : MaskedAutoregressiveSlot.alternateOutput
            let result = try apply(u, parameters: h, isForward: true, slot: slot, workspace: workspace)
            if passes >= features || result.output.storage == current.storage {
                lastForwardPasses = passes
                return result
            }
            current = result.output
        }
    }

    /// Density direction, `x -> u`: one MADE pass and one transformer pass.
    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    @_specialize(where Transformer == RationalQuadraticSpline<Float>)
    @_specialize(where Transformer == RationalQuadraticSpline<Double>)
    public func inverse(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).inverse")
        let h = try conditioner.forward(conditionerInput(x, context), buffers: context.buffers).output
        return try apply(
            x, parameters: h, isForward: false, slot: MaskedAutoregressiveSlot.inverseOutput, workspace: context.buffers(for: self))
    }

    /// The transformer's block VJP of `τ⁻¹` at `x`: `gradient` holds `dL/du` on entry and the
    /// direct part of `dL/dx` on return; returns `dL/dh` `[rows, P·D]` (in a buffer of `workspace`).
    private func transformerBackward(
        at x: Matrix<T>, parameters h: Matrix<T>, gradient: inout Matrix<T>, logAbsDetGradient ℓ: [T], workspace: LayerBuffers<T>
    ) -> Matrix<T> {
        var dh = workspace.matrix(MaskedAutoregressiveSlot.conditionerGradient, rows: x.rows, columns: h.columns)
        let block = block(rows: x.rows)
        x.storage.withUnsafeBufferPointer { xp in
            h.storage.withUnsafeBufferPointer { hp in
                gradient.storage.withUnsafeMutableBufferPointer { gp in
                    dh.storage.withUnsafeMutableBufferPointer { dhp in
                        ℓ.withUnsafeBufferPointer { lp in
                            transformer.backward(
                                input: xp.baseAddress!, block: block, parameters: hp.baseAddress!, gradient: gp.baseAddress!,
                                logAbsDetGradient: lp.baseAddress!, parameterGradient: dhp.baseAddress!, inverse: true)
                        }
                    }
                }
            }
        }
        workspace.keep(MaskedAutoregressiveSlot.conditionerGradient, dh)
        return dh
    }

    /// The full VJP of the density direction `g` at `x` for upstream `(dL/du, dL/dld)`: `dL/dx`
    /// (direct plus through the MADE), parameter gradients added, `dL/dc` added into `context`.
    private func densityBackward(
        at x: Matrix<T>, trace: MLP<T>.Trace, outputGradient: Matrix<T>, logAbsDetGradient ℓ: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        let workspace = context.buffers(for: self)
        var gradient = workspace.copy(MaskedAutoregressiveSlot.inputGradient, of: outputGradient)
        let dh = transformerBackward(at: x, parameters: trace.output, gradient: &gradient, logAbsDetGradient: ℓ, workspace: workspace)
        let da = try conditioner.backward(trace, outputGradient: dh, buffers: context.buffers)
        let d = features, total = d + contextFeatures
        da.storage.withUnsafeBufferPointer { ap in
            gradient.storage.withUnsafeMutableBufferPointer { gp in
                for r in 0..<x.rows {
                    for j in 0..<d { gp[r * d + j] += ap[r * total + j] }
                }
            }
        }
        if contextFeatures > 0 { context.accumulateConditioningGradient(da.columns(d..<total)) }
        workspace.keep(MaskedAutoregressiveSlot.inputGradient, gradient)
        return gradient
    }

    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    @_specialize(where Transformer == RationalQuadraticSpline<Float>)
    @_specialize(where Transformer == RationalQuadraticSpline<Double>)
    public func inverseBackward(
        input x: Matrix<T>, output u: Matrix<T>, outputGradient du: Matrix<T>, logAbsDetGradient dld: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: x, inFeatures: features, output: u, outFeatures: features,
                             outputGradient: du, logAbsDetGradient: dld)
        let trace = try conditioner.forward(conditionerInput(x, context), buffers: context.buffers)
        return try densityBackward(at: x, trace: trace, outputGradient: du, logAbsDetGradient: dld, context: &context)
    }

    /// VJP of the `D`-pass direction at `input = u`, `output = x`: the nilpotent iteration of the
    /// type's documentation, then one density VJP with `(-v, -dld)` for the parameters and context.
    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    @_specialize(where Transformer == RationalQuadraticSpline<Float>)
    @_specialize(where Transformer == RationalQuadraticSpline<Double>)
    public func forwardBackward(
        input u: Matrix<T>, output x: Matrix<T>, outputGradient dx: Matrix<T>, logAbsDetGradient dld: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: u, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: dx, logAbsDetGradient: dld)
        let rows = x.rows, d = features, count = rows * d, total = d + contextFeatures
        let trace = try conditioner.forward(conditionerInput(x, context), buffers: context.buffers)
        let workspace = context.buffers(for: self)
        let h = trace.output
        // Diag_j = ∂τ⁻¹/∂x_j and the direct log-det term dld·∂ld_g/∂x_j, from two transformer VJPs.
        var diagonal = Matrix<T>(rows: rows, columns: d, repeating: 1)
        _ = transformerBackward(
            at: x, parameters: h, gradient: &diagonal, logAbsDetGradient: [T](repeating: 0, count: rows), workspace: workspace)
        var direct = Matrix<T>(rows: rows, columns: d)
        _ = transformerBackward(at: x, parameters: h, gradient: &direct, logAbsDetGradient: dld, workspace: workspace)
        // target = dL/dx - dld·∂ld_g/∂x|direct; v⁰ = target / Diag is exact for the last feature in the order.
        var target = dx
        for i in 0..<count { target.storage[i] -= direct.storage[i] }
        var v = target
        for i in 0..<count { v.storage[i] /= diagonal.storage[i] }
        var iterations = 0
        if d > 1 {
            var step = Matrix<T>(rows: rows, columns: d)
            for _ in 0..<(d - 1) {
                step.storage.withUnsafeMutableBufferPointer { s in
                    v.storage.withUnsafeBufferPointer { vp in s.baseAddress!.update(from: vp.baseAddress!, count: count) }
                }
                let dh = transformerBackward(at: x, parameters: h, gradient: &step, logAbsDetGradient: dld, workspace: workspace)
                let through = try conditioner.backward(
                    trace, outputGradient: dh, accumulatingParameterGradients: false, buffers: context.buffers)
                iterations += 1
                var changed = false
                through.storage.withUnsafeBufferPointer { tp in
                    for r in 0..<rows {
                        for j in 0..<d {
                            let i = r * d + j
                            let next = (target.storage[i] - tp[r * total + j]) / diagonal.storage[i]
                            if next != v.storage[i] { changed = true }
                            v.storage[i] = next
                        }
                    }
                }
                if !changed { break }
            }
        }
        lastBackwardIterations = iterations
        var negated = v
        for i in 0..<count { negated.storage[i] = -negated.storage[i] }
        _ = try densityBackward(at: x, trace: trace, outputGradient: negated, logAbsDetGradient: dld.map { -$0 }, context: &context)
        return v
    }

    /// The hyper-parameters: the order, the MADE's shape and activation, the context width
    /// (written only when `> 0`) and the transformer's own fields, all in one object.
    public struct Configuration: Codable, Sendable {
        /// `D`.
        public var features: Int
        /// The autoregressive order (``MADE/order``).
        public var order: [Int]
        /// The MADE's hidden widths.
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
            case features, order, hiddenSizes, activation, activationSlope, contextFeatures
        }

        init(features: Int, order: [Int], hiddenSizes: [Int], activation: MLPActivation, contextFeatures: Int,
             transformer: Transformer.Configuration) {
            self.features = features
            self.order = order
            self.hiddenSizes = hiddenSizes
            self.activation = activation.configurationName
            self.activationSlope = activation.slope
            self.contextFeatures = contextFeatures > 0 ? contextFeatures : nil
            self.transformer = transformer
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            features = try c.decode(Int.self, forKey: .features)
            order = try c.decode([Int].self, forKey: .order)
            hiddenSizes = try c.decode([Int].self, forKey: .hiddenSizes)
            activation = try c.decode(String.self, forKey: .activation)
            activationSlope = try c.decodeIfPresent(Double.self, forKey: .activationSlope)
            contextFeatures = try c.decodeIfPresent(Int.self, forKey: .contextFeatures)
            transformer = try Transformer.Configuration(from: decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(features, forKey: .features)
            try c.encode(order, forKey: .order)
            try c.encode(hiddenSizes, forKey: .hiddenSizes)
            try c.encode(activation, forKey: .activation)
            try c.encodeIfPresent(activationSlope, forKey: .activationSlope)
            try c.encodeIfPresent(contextFeatures, forKey: .contextFeatures)
            try transformer.encode(to: encoder)  // the transformer's fields join the layer's object
        }
    }

    public var configuration: Configuration {
        Configuration(features: features, order: conditioner.order, hiddenSizes: conditioner.hiddenSizes,
                      activation: conditioner.activation, contextFeatures: contextFeatures, transformer: transformer.configuration)
    }

    /// A layer with a new MADE of the configured shape and order (zero last layer: placeholder
    /// values a checkpoint overwrites; the masks follow from the order and sizes).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an unknown activation, an
    ///   order that is not a permutation, or a transformer configuration the transformer rejects.
    public convenience init(configuration c: Configuration) throws {
        let activation = try MLPActivation(configurationName: c.activation, slope: c.activationSlope)
        var generator = SeededGenerator(seed: 0)
        try self.init(features: c.features, transformer: try Transformer(configuration: c.transformer), hiddenSizes: c.hiddenSizes,
                      order: c.order, activation: activation, zeroInitializeLastLayer: true,
                      contextFeatures: c.contextFeatures ?? 0, using: &generator)
    }
}

/// A MAF layer with the affine transformer of ``AffineCoupling`` (Papamakarios et al. 2017, eqs.
/// 3-5, with the bounded log-scale `s = c·tanh(ŝ/c)`): `x_i = u_i·e^{s_i} + t_i`, `(ŝ_i, t_i)` from
/// `x_<i`. Checkpoints name it `AffineMaskedAutoregressive`.
public typealias AffineMaskedAutoregressive<T: Scalar> = MaskedAutoregressive<AffineTransformer<T>>

/// The ``LayerBuffers`` slots of ``MaskedAutoregressive``.
enum MaskedAutoregressiveSlot {
    static let conditionerInput = 0, output = 1, alternateOutput = 2, logDet = 3, inputGradient = 4
    static let conditionerGradient = 5, inverseOutput = 6
}

extension MaskedAutoregressive: ConditionalLayer {
    public var contextWidths: Set<Int> { contextFeatures > 0 ? [contextFeatures] : [] }
}
