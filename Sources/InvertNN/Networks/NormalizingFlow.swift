import RealModule

/// A normalizing flow: a base distribution `p_Z` and an invertible transform whose forward
/// direction is generative, `x = f(z)` (DESIGN.md §2).
///
/// - Density (change of variables; Rezende & Mohamed 2015, eq. 1; Dinh et al. 2017, eq. 3):
///   `log p(x) = log p_Z(f⁻¹(x)) + log|det ∂f⁻¹/∂x|`, in nats, where the second term is the sum of
///   the inverse log-determinants of every layer.
/// - Sampling: `x = f(z)` with `z ~ p_Z` (optionally at a temperature, `z ~ N(0, τ²I)`).
/// - Maximum likelihood: ``accumulateNegativeLogLikelihoodGradient(_:context:)`` runs the inverse
///   direction on a tape and backpropagates `L = -(1/B) Σ_i log p(x_i)`.
///
/// - Conditional flows (``contextEncoder`` not `nil`): every density, sample and gradient takes
///   a context `c` `[batch, contextFeatures]` (one row per sample), encoded once per batch by the
///   ``ContextEncoder`` and read by every conditioner (Papamakarios et al. 2017 §3.4; Winkler
///   et al. 2019): `log p(x | c) = log p_Z(f⁻¹(x; c)) + log|det ∂f⁻¹/∂x|`. An unconditional flow
///   ignores a `nil` context and rejects a non-empty one.
///
/// Shapes: data and latents are `[batch, features]`, row-major, one sample per row.
public final class NormalizingFlow<T: Scalar> {
    /// The latent distribution `p_Z`.
    public let base: any BaseDistribution<T>
    /// The generative transform `f`, latent -> data.
    public let transform: Sequential<T>

    /// A flow with the given base distribution and generative transform.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if the transform is not
    ///   square (input and output features differ) or does not match the base's dimension.
    ///   A conditional layer in an unconditional flow, or one that expects another context width
    ///   than `contextEncoder` produces, is also an invalid argument.
    public init(base: any BaseDistribution<T>, transform: Sequential<T>, contextEncoder: ContextEncoder<T>? = nil) throws {
        guard transform.inputFeatures == transform.outputFeatures else {
            throw InvertNNError.invalidArgument(
                operation: "NormalizingFlow",
                reason: "the transform maps \(transform.inputFeatures) to \(transform.outputFeatures) features; a density needs equal dimensions")
        }
        guard base.features == transform.inputFeatures else {
            throw InvertNNError.invalidArgument(
                operation: "NormalizingFlow",
                reason: "the base distribution has \(base.features) features but the transform takes \(transform.inputFeatures)")
        }
        let widths = transform.contextWidths
        let expected = contextEncoder.map { Set([$0.encodedFeatures]) } ?? []
        guard widths.isSubset(of: expected) else {
            throw InvertNNError.invalidArgument(
                operation: "NormalizingFlow",
                reason: contextEncoder == nil
                    ? "the transform has conditional layers (context widths \(widths.sorted())) but the flow has no context encoder"
                    : "the transform's conditional layers read contexts of widths \(widths.sorted()), the encoder gives \(expected.sorted())")
        }
        self.base = base
        self.transform = transform
        self.contextEncoder = contextEncoder
        self.parameters = transform.parameters + (contextEncoder?.parameters ?? []) + base.parameters
    }

    /// How the context becomes the conditioners' input; `nil` for an unconditional flow.
    public let contextEncoder: ContextEncoder<T>?

    /// Raw context columns per row (0 for an unconditional flow).
    public var contextFeatures: Int { contextEncoder?.features ?? 0 }

    /// Whether every density and sample needs a context.
    public var isConditional: Bool { contextEncoder != nil }

    /// The buffers of a training step (``accumulateNegativeLogLikelihoodGradient(_:context:)``),
    /// lent to the transform's taped pass and backward: the layers' outputs, gradients and
    /// scratch, and this step's log p_Z, dL/dz and dL/dld (slots 0, 1, 2). Used only while the
    /// transform's ``Sequential/keepsBuffers`` is on.
    public let stepBuffers = StepBuffers<T>()

    /// A flow over a standard normal base of the transform's dimension.
    ///
    /// - Throws: as ``init(base:transform:contextEncoder:)``.
    public convenience init(transform: Sequential<T>, contextEncoder: ContextEncoder<T>? = nil) throws {
        try self.init(base: StandardNormal<T>(features: transform.inputFeatures), transform: transform, contextEncoder: contextEncoder)
    }

    /// The dimension D of one sample.
    public var features: Int { transform.inputFeatures }
    /// Every parameter of the transform, then the context embedding's, then the base
    /// distribution's, in a stable order (for optimizers and checkpoints).
    public let parameters: [Parameter<T>]
    /// Total number of scalar parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }
    /// Number of learnable scalars (entries fixed by a ``Parameter/trainableMask`` excluded).
    public var trainableParameterCount: Int { parameters.reduce(0) { $0 + $1.trainableCount } }

    /// `log p(x)` per sample, `[batch]`, in nats: `log p_Z(f⁻¹(x)) + Σ inverse log-dets`; for a
    /// conditional flow `log p(x | c)` with `context` `[batch, contextFeatures]`.
    ///
    /// - Throws: shape mismatch (of `x` or of the context; an empty batch gives `[]`);
    ///   ``InvertNNError/nonFinite(operation:row:column:)`` with the position of the first NaN or
    ///   infinite entry of `x` or `c`; ``InvertNNError/invalidArgument(operation:reason:)`` for a
    ///   missing context of a conditional flow or a context given to an unconditional one; any
    ///   layer's domain error.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func logProbability(_ x: Matrix<T>, context: Matrix<T>? = nil) throws -> [T] {
        try x.requireFinite("NormalizingFlow.logProbability")
        var layerContext = try conditioning(context, rows: x.rows, operation: "NormalizingFlow.logProbability").context
        let latent = try transform.inverse(x, context: &layerContext)
        var result = try base.logProbability(latent.output)
        for i in 0..<result.count { result[i] += latent.logAbsDet[i] }
        return result
    }

    /// The latent code `z = f⁻¹(x)` (or `f⁻¹(x; c)`) with the inverse log-determinant per sample.
    ///
    /// - Throws: as ``logProbability(_:context:)``.
    public func encode(_ x: Matrix<T>, context: Matrix<T>? = nil) throws -> LayerOutput<T> {
        try x.requireFinite("NormalizingFlow.encode")
        var layerContext = try conditioning(context, rows: x.rows, operation: "NormalizingFlow.encode").context
        return try transform.inverse(x, context: &layerContext)
    }

    /// The data `x = f(z)` (or `f(z; c)`) for latents `z` `[batch, features]`, with the forward
    /// log-determinant per sample.
    ///
    /// - Throws: as ``logProbability(_:context:)``.
    public func decode(_ z: Matrix<T>, context: Matrix<T>? = nil) throws -> LayerOutput<T> {
        try z.requireFinite("NormalizingFlow.decode")
        var layerContext = try conditioning(context, rows: z.rows, operation: "NormalizingFlow.decode").context
        return try transform.forward(z, context: &layerContext)
    }

    /// The layer context of a pass over `rows` rows: the encoded context (and its trace for the
    /// backward pass, its activations in `buffers`) of a conditional flow, an empty one otherwise.
    func conditioning(
        _ context: Matrix<T>?, rows: Int, operation: String, buffers: StepBuffers<T>? = nil
    ) throws -> (context: LayerContext<T>, trace: ContextEncoder<T>.Trace?) {
        guard let encoder = contextEncoder else {
            if let context, context.columns > 0 {
                throw InvertNNError.invalidArgument(
                    operation: operation, reason: "this flow is unconditional; a context of \(context.columns) columns was given")
            }
            return (LayerContext(), nil)
        }
        guard let context else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "this flow is conditional and needs a context [\(rows), \(encoder.features)]; none was given")
        }
        guard context.rows == rows, context.columns == encoder.features else {
            throw InvertNNError.shapeMismatch(
                operation: "\(operation) context", expected: "[\(rows), \(encoder.features)]", actual: "\(context.shape)")
        }
        let trace = try encoder.encode(context, buffers: buffers)
        return (LayerContext(conditioning: trace.output), trace)
    }

    /// `count` draws `x = f(z)`, `z ~ p_Z` at `temperature` (1 = the model's own distribution;
    /// below 1 concentrates on high-density samples, Kingma & Dhariwal 2018, §5).
    ///
    /// A conditional flow draws from `p(x | c)`: `context` is `[1, contextFeatures]` (all `count`
    /// samples share it) or `[count, contextFeatures]` (one sample per context row).
    ///
    /// - Returns: `[count, features]`.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `count < 1`, the
    ///   temperature is not positive and finite, or the context is missing (conditional flow) or
    ///   given (unconditional flow); ``InvertNNError/shapeMismatch(operation:expected:actual:)`` for
    ///   a context of another shape; any layer's error.
    @_specialize(where T == Float, G == SeededGenerator)
    @_specialize(where T == Double, G == SeededGenerator)
    public func sample<G: RandomNumberGenerator>(
        count: Int, context: Matrix<T>? = nil, temperature: T = 1, using generator: inout G
    ) throws -> Matrix<T> {
        guard count >= 1 else {
            throw InvertNNError.invalidArgument(operation: "NormalizingFlow.sample", reason: "count must be ≥ 1, got \(count)")
        }
        guard temperature > 0, temperature.isFinite else {
            throw InvertNNError.invalidArgument(
                operation: "NormalizingFlow.sample", reason: "temperature must be positive and finite, got \(temperature)")
        }
        let shared = context.map { $0.rows == 1 && count > 1 } ?? false
        let encoded = try conditioning(
            context, rows: shared ? 1 : count, operation: "NormalizingFlow.sample").context.conditioning
        let z = base.sample(count: count, temperature: temperature, using: &generator)
        // The latent draws are made at once (the same random stream as one batch), the transform
        // runs in chunks: its intermediate batches (an MLP's hidden layers, several times the
        // output's width) would otherwise need gigabytes for millions of samples.
        var x = Matrix<T>(uninitializedRows: count, columns: z.columns)
        var start = 0
        while start < count {
            let end = Swift.min(start + Self.sampleChunkRows, count)
            var layerContext = LayerContext<T>()
            if let encoded {
                layerContext.conditioning = shared
                    ? encoded.rows(at: [Int](repeating: 0, count: end - start))
                    : (end - start == count ? encoded : encoded.rows(start..<end))
            }
            let chunk = try transform.forward(end - start == count ? z : z.rows(start..<end), context: &layerContext).output
            guard end - start < count else { return chunk }
            guard chunk.columns == x.columns else {
                throw InvertNNError.shapeMismatch(
                    operation: "NormalizingFlow.sample", expected: "[\(end - start), \(x.columns)]", actual: "\(chunk.shape)")
            }
            chunk.storage.withUnsafeBufferPointer { source in
                x.storage.withUnsafeMutableBufferPointer { target in
                    (target.baseAddress! + start * x.columns).update(from: source.baseAddress!, count: source.count)
                }
            }
            start = end
        }
        return x
    }

    /// Rows per transform call in ``sample(count:temperature:using:)``.
    static var sampleChunkRows: Int { 8192 }

    /// Mean negative log-likelihood `-(1/B) Σ_i log p(x_i | c_i)` in nats per sample, no gradients.
    ///
    /// - Throws: as ``logProbability(_:context:)``; `invalidArgument` for an empty batch.
    public func negativeLogLikelihood(_ x: Matrix<T>, context: Matrix<T>? = nil) throws -> T {
        try Self.requireRows(x, "NormalizingFlow.negativeLogLikelihood")
        let logP = try logProbability(x, context: context)
        return -logP.reduce(0, +) / T(logP.count)
    }

    /// One maximum-likelihood step's forward and backward pass: evaluates the mean negative
    /// log-likelihood `L = -(1/B) Σ_i [log p_Z(z_i) + ld_i]` of the batch (nats per sample) and
    /// *adds* `dL/dθ` into every parameter's gradient (call ``zeroGradients()`` first), the
    /// context embedding's included.
    ///
    /// The inverse direction runs on a tape (``Sequential/inverseTaped(_:context:)``); backward
    /// starts from `dL/dz = -∇_z log p_Z(z) / B` and `dL/dld = -1/B` per sample.
    ///
    /// - Parameters:
    ///   - x: `[batch, features]`, batch ≥ 1.
    ///   - context: `[batch, contextFeatures]` for a conditional flow, `nil` otherwise.
    /// - Returns: `L`; NaN or infinity is returned as is (the caller decides whether to stop).
    /// - Throws: as ``logProbability(_:context:)``.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func accumulateNegativeLogLikelihoodGradient(_ x: Matrix<T>, context: Matrix<T>? = nil) throws -> T {
        try negativeLogLikelihoodStep(x, context: context).loss
    }

    /// ``accumulateNegativeLogLikelihoodGradient(_:context:)`` that also returns `dL/dx`
    /// `[batch, features]` and `dL/dc` `[batch, contextFeatures]` (`nil` for an unconditional
    /// flow or one-hot class labels): for inference over the context, saliency, or checks.
    ///
    /// - Throws: as ``logProbability(_:context:)``.
    public func negativeLogLikelihoodGradients(
        _ x: Matrix<T>, context: Matrix<T>? = nil
    ) throws -> (loss: T, data: Matrix<T>, context: Matrix<T>?) {
        let step = try negativeLogLikelihoodStep(x, context: context)
        return (step.loss, step.data, step.context)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func negativeLogLikelihoodStep(
        _ x: Matrix<T>, context: Matrix<T>?
    ) throws -> (loss: T, data: Matrix<T>, context: Matrix<T>?) {
        try Self.requireRows(x, "NormalizingFlow.accumulateNegativeLogLikelihoodGradient")
        try x.requireFinite("NormalizingFlow.accumulateNegativeLogLikelihoodGradient")
        // The step's buffers: a training loop allocates nothing here after its first step.
        let pool = transform.keepsBuffers ? stepBuffers : nil
        var (layerContext, contextTrace) = try conditioning(
            context, rows: x.rows, operation: "NormalizingFlow.accumulateNegativeLogLikelihoodGradient", buffers: pool)
        layerContext.buffers = pool
        let workspace = layerContext.buffers(for: self)
        let (latent, tape) = try transform.inverseTaped(x, context: &layerContext)
        let batch = x.rows, z = latent.output
        let scale = -1 / T(batch)
        var logPz = workspace.take(0, count: batch)
        var dz = workspace.matrix(1, rows: batch, columns: z.columns)
        try base.logProbabilityAndGradient(z, scaledBy: scale, logProbability: &logPz, gradient: &dz)
        try base.accumulateParameterGradient(z, scaledBy: scale)
        var total: T = 0
        for i in 0..<batch { total += logPz[i] + latent.logAbsDet[i] }
        let loss = -total / T(batch)
        let dld = workspace.filled(2, count: batch, with: scale)
        layerContext.conditioningGradient = nil
        let dx = try transform.backward(tape, outputGradient: dz, logAbsDetGradient: dld, context: &layerContext)
        workspace.keep(0, logPz)
        workspace.keep(1, dz)
        workspace.keep(2, dld)
        guard let encoder = contextEncoder, let contextTrace else { return (loss, dx, nil) }
        let dEncoded = layerContext.conditioningGradient
            ?? Matrix(rows: batch, columns: encoder.encodedFeatures)
        return (loss, dx, try encoder.backward(contextTrace, gradient: dEncoded, buffers: pool))
    }

    /// Resets every parameter gradient to zero.
    public func zeroGradients() {
        for p in parameters { p.zeroGradient() }
    }

    /// A mean over no samples is undefined (0/0): the mean losses need a row, unlike
    /// ``logProbability(_:context:)``, which returns `[]` for an empty batch.
    private static func requireRows(_ x: Matrix<T>, _ operation: String) throws {
        guard x.rows > 0 else {
            throw InvertNNError.invalidArgument(operation: operation, reason: "the mean over an empty batch (0 rows) is undefined")
        }
    }
}
