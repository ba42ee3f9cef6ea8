/// A simulator of a simulation-based inference task: a prior over parameters `θ` and a
/// stochastic model `x ~ p(x | θ)`, from which a conditional flow learns the posterior
/// `p(θ | x)` (neural posterior estimation; Papamakarios & Murray 2016, Greenberg et al. 2019).
///
/// Shapes: `θ` is `[count, parameters]`, `x` is `[count, observations]`, row-major.
public protocol Simulator: Sendable {
    /// Width of `θ`.
    var parameters: Int { get }
    /// Width of `x`.
    var observations: Int { get }
    /// `count` draws from the prior, `[count, parameters]`.
    func samplePrior(count: Int, using generator: inout some RandomNumberGenerator) -> Matrix<Double>
    /// One `x ~ p(x | θ)` per row of `theta`, `[rows, observations]`.
    func simulate(_ theta: Matrix<Double>, using generator: inout some RandomNumberGenerator) -> Matrix<Double>
    /// `count` draws from the true posterior `p(θ | x_o)` for one observation `x_o`, `[count, parameters]`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an observation of another
    ///   width, or one the posterior cannot be sampled at.
    func samplePosterior(
        count: Int, observation: [Double], using generator: inout some RandomNumberGenerator
    ) throws -> Matrix<Double>
}

extension Simulator {
    /// `count` pairs `(θ, x)` from the joint `p(θ) p(x | θ)`.
    public func simulations(count: Int, using generator: inout some RandomNumberGenerator) -> (theta: Matrix<Double>, x: Matrix<Double>) {
        let theta = samplePrior(count: count, using: &generator)
        return (theta, simulate(theta, using: &generator))
    }

    func requireObservation(_ observation: [Double], _ operation: String) throws {
        guard observation.count == observations, observation.allSatisfy(\.isFinite) else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "the observation needs \(observations) finite values, got \(observation)")
        }
    }
}
