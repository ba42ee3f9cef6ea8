import RealModule
/// A base (latent) distribution `p_Z` of a normalizing flow, over `[batch, features]` rows.
public protocol BaseDistribution<Element> {
    associatedtype Element: Scalar
    /// The dimension D of one sample.
    var features: Int { get }
    /// `log p_Z(z)` per row, `[batch]`, in nats.
    /// - Throws: shape mismatch if `z` is not `[batch, features]`.
    func logProbability(_ z: Matrix<Element>) throws -> [Element]
    /// `∂ log p_Z(z) / ∂z`, `[batch, features]`.
    /// - Throws: shape mismatch.
    func logProbabilityGradient(_ z: Matrix<Element>) throws -> Matrix<Element>
    /// `count` independent draws, `[count, features]`; `temperature` scales the spread (1 = exact).
    func sample(count: Int, temperature: Element, using generator: inout some RandomNumberGenerator) -> Matrix<Element>
    /// `log p_Z(z)` per row written into `logProbability` (`[batch]`, nats) and
    /// `scale · ∂ log p_Z(z)/∂z` into `gradient` (`[batch, features]`), both already of those
    /// sizes: the allocation-free form a training step uses. The default calls
    /// ``logProbability(_:)`` and ``logProbabilityGradient(_:)`` and copies.
    /// - Throws: shape mismatch if `z`, `logProbability` or `gradient` has the wrong shape.
    func logProbabilityAndGradient(
        _ z: Matrix<Element>, scaledBy scale: Element, logProbability: inout [Element], gradient: inout Matrix<Element>
    ) throws

    /// The learnable parameters (empty for a fixed base such as ``StandardNormal``); trained
    /// with the flow and stored in checkpoints as `base.<name>`.
    var parameters: [Parameter<Element>] { get }

    /// *Adds* `scale · Σ_i ∂ log p_Z(z_i) / ∂θ` into every parameter's gradient, for `z`
    /// `[batch, features]` (the training step passes `scale = -1/B`). The default does nothing
    /// (no parameters).
    ///
    /// - Throws: shape mismatch.
    func accumulateParameterGradient(_ z: Matrix<Element>, scaledBy scale: Element) throws

    /// The checkpoint description: the type name and, for a mixture, the component count.
    var checkpointType: (name: String, components: Int?) { get }
}

extension BaseDistribution {
    public var parameters: [Parameter<Element>] { [] }

    public func accumulateParameterGradient(_ z: Matrix<Element>, scaledBy scale: Element) throws {}

    public var checkpointType: (name: String, components: Int?) { ("StandardNormal", nil) }

    public func logProbabilityAndGradient(
        _ z: Matrix<Element>, scaledBy scale: Element, logProbability: inout [Element], gradient: inout Matrix<Element>
    ) throws {
        try requireSameBatch(z, logProbability: logProbability, gradient: gradient)
        let values = try self.logProbability(z)
        let g = try logProbabilityGradient(z)
        for i in 0..<z.rows { logProbability[i] = values[i] }
        for i in 0..<z.count { gradient.storage[i] = scale * g.storage[i] }
    }

    /// The shape checks of ``logProbabilityAndGradient(_:scaledBy:logProbability:gradient:)``.
    func requireSameBatch(_ z: Matrix<Element>, logProbability: [Element], gradient: Matrix<Element>) throws {
        try z.requireColumns(features, "\(Self.self).logProbabilityAndGradient")
        try gradient.requireShape(rows: z.rows, columns: z.columns, "\(Self.self).logProbabilityAndGradient gradient")
        guard logProbability.count == z.rows else {
            throw InvertNNError.shapeMismatch(
                operation: "\(Self.self).logProbabilityAndGradient", expected: "[\(z.rows)] log-probabilities",
                actual: "[\(logProbability.count)]")
        }
    }
}
