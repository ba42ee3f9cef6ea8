import RealModule

/// A normalizing flow: a base distribution `p_Z` and an invertible transform whose forward
/// direction is generative, `x = f(z)` (DESIGN.md §2).
///
/// - Density (change of variables; Rezende & Mohamed 2015, eq. 1; Dinh et al. 2017, eq. 3):
///   `log p(x) = log p_Z(f⁻¹(x)) + log|det ∂f⁻¹/∂x|`, in nats, where the second term is the sum of
///   the inverse log-determinants of every layer.
/// - Sampling: `x = f(z)` with `z ~ p_Z` (optionally at a temperature, `z ~ N(0, τ²I)`).
/// - Maximum likelihood: ``accumulateNegativeLogLikelihoodGradient(_:)`` runs the inverse
///   direction on a tape and backpropagates `L = -(1/B) Σ_i log p(x_i)`.
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
    public init(base: any BaseDistribution<T>, transform: Sequential<T>) throws {
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
        self.base = base
        self.transform = transform
    }

    /// Buffers of ``accumulateNegativeLogLikelihoodGradient(_:)``: log p_Z, dL/dz, dL/dld.
    let workspace = Workspace<T>(slots: 3)

    /// A flow over a standard normal base of the transform's dimension.
    ///
    /// - Throws: as ``init(base:transform:)``.
    public convenience init(transform: Sequential<T>) throws {
        try self.init(base: StandardNormal<T>(features: transform.inputFeatures), transform: transform)
    }

    /// The dimension D of one sample.
    public var features: Int { transform.inputFeatures }
    /// Every parameter of the transform, in a stable order (for optimizers and checkpoints).
    public var parameters: [Parameter<T>] { transform.parameters }  // stored by Sequential: no copy
    /// Total number of scalar parameters.
    public var parameterCount: Int { transform.parameterCount }
    /// Number of learnable scalars (entries fixed by a ``Parameter/trainableMask`` excluded).
    public var trainableParameterCount: Int { parameters.reduce(0) { $0 + $1.trainableCount } }

    /// `log p(x)` per sample, `[batch]`, in nats: `log p_Z(f⁻¹(x)) + Σ inverse log-dets`.
    ///
    /// - Throws: shape mismatch (an empty batch gives `[]`); ``InvertNNError/nonFinite(operation:row:column:)``
    ///   with the position of the first NaN or infinite entry of `x`; any layer's domain error.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func logProbability(_ x: Matrix<T>) throws -> [T] {
        try x.requireFinite("NormalizingFlow.logProbability")
        let latent = try transform.inverse(x)
        var result = try base.logProbability(latent.output)
        for i in 0..<result.count { result[i] += latent.logAbsDet[i] }
        return result
    }

    /// The latent code `z = f⁻¹(x)` with the inverse log-determinant per sample.
    ///
    /// - Throws: as ``logProbability(_:)``.
    public func encode(_ x: Matrix<T>) throws -> LayerOutput<T> {
        try x.requireFinite("NormalizingFlow.encode")
        return try transform.inverse(x)
    }

    /// `count` draws `x = f(z)`, `z ~ p_Z` at `temperature` (1 = the model's own distribution;
    /// below 1 concentrates on high-density samples, Kingma & Dhariwal 2018, §5).
    ///
    /// - Returns: `[count, features]`.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `count < 1` or the
    ///   temperature is not positive and finite; any layer's error.
    @_specialize(where T == Float, G == SeededGenerator)
    @_specialize(where T == Double, G == SeededGenerator)
    public func sample<G: RandomNumberGenerator>(count: Int, temperature: T = 1, using generator: inout G) throws -> Matrix<T> {
        guard count >= 1 else {
            throw InvertNNError.invalidArgument(operation: "NormalizingFlow.sample", reason: "count must be ≥ 1, got \(count)")
        }
        guard temperature > 0, temperature.isFinite else {
            throw InvertNNError.invalidArgument(
                operation: "NormalizingFlow.sample", reason: "temperature must be positive and finite, got \(temperature)")
        }
        let z = base.sample(count: count, temperature: temperature, using: &generator)
        guard count > Self.sampleChunkRows else { return try transform.forward(z).output }
        // The latent draws are made at once (the same random stream as one batch), the transform
        // runs in chunks: its intermediate batches (an MLP's hidden layers, several times the
        // output's width) would otherwise need gigabytes for millions of samples.
        var x = Matrix<T>(uninitializedRows: count, columns: z.columns)
        var start = 0
        while start < count {
            let end = Swift.min(start + Self.sampleChunkRows, count)
            let chunk = try transform.forward(z.rows(start..<end)).output
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

    /// Mean negative log-likelihood `-(1/B) Σ_i log p(x_i)` in nats per sample, no gradients.
    ///
    /// - Throws: as ``logProbability(_:)``.
    public func negativeLogLikelihood(_ x: Matrix<T>) throws -> T {
        try Self.requireRows(x, "NormalizingFlow.negativeLogLikelihood")
        let logP = try logProbability(x)
        return -logP.reduce(0, +) / T(logP.count)
    }

    /// One maximum-likelihood step's forward and backward pass: evaluates the mean negative
    /// log-likelihood `L = -(1/B) Σ_i [log p_Z(z_i) + ld_i]` of the batch (nats per sample) and
    /// *adds* `dL/dθ` into every parameter's gradient (call ``zeroGradients()`` first).
    ///
    /// The inverse direction runs on a tape (``Sequential/inverseTaped(_:)``); backward starts
    /// from `dL/dz = -∇_z log p_Z(z) / B` and `dL/dld = -1/B` per sample.
    ///
    /// - Parameter x: `[batch, features]`, batch ≥ 1.
    /// - Returns: `L`; NaN or infinity is returned as is (the caller decides whether to stop).
    /// - Throws: shape mismatch or an empty batch; ``InvertNNError/nonFinite(operation:row:column:)``
    ///   for NaN or infinite data (with its position); any layer's error.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func accumulateNegativeLogLikelihoodGradient(_ x: Matrix<T>) throws -> T {
        try Self.requireRows(x, "NormalizingFlow.accumulateNegativeLogLikelihoodGradient")
        try x.requireFinite("NormalizingFlow.accumulateNegativeLogLikelihoodGradient")
        let (latent, tape) = try transform.inverseTaped(x)
        let batch = x.rows, z = latent.output
        let scale = -1 / T(batch)
        // The step's buffers come from the workspace: a training loop allocates nothing here.
        var logPz = workspace.take(0, count: batch)
        var dz = workspace.matrix(1, rows: batch, columns: z.columns)
        try base.logProbabilityAndGradient(z, scaledBy: scale, logProbability: &logPz, gradient: &dz)
        var total: T = 0
        for i in 0..<batch { total += logPz[i] + latent.logAbsDet[i] }
        let loss = -total / T(batch)
        let dld = workspace.filled(2, count: batch, with: scale)
        _ = try transform.backward(tape, outputGradient: dz, logAbsDetGradient: dld)
        workspace.keep(0, logPz)
        workspace.keep(1, dz)
        workspace.keep(2, dld)
        return loss
    }

    /// Resets every parameter gradient to zero.
    public func zeroGradients() { transform.zeroGradients() }

    /// A mean over no samples is undefined (0/0): the mean losses need a row, unlike
    /// ``logProbability(_:)``, which returns `[]` for an empty batch.
    private static func requireRows(_ x: Matrix<T>, _ operation: String) throws {
        guard x.rows > 0 else {
            throw InvertNNError.invalidArgument(operation: operation, reason: "the mean over an empty batch (0 rows) is undefined")
        }
    }
}
