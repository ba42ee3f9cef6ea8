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
}
