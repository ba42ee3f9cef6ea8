import RealModule

/// The two-moons task of Greenberg et al. 2019 ("Automatic posterior transformation for
/// likelihood-free inference", §5; as sbibm's `two_moons`): `θ ~ U[-1, 1]²`,
///
///     a ~ U(-π/2, π/2),  r ~ N(0.1, 0.01²),  p = (r cos a + 0.25, r sin a),
///     x = p + (-|θ₁ + θ₂| / √2, (-θ₁ + θ₂) / √2),
///
/// whose posterior at `x_o = (0, 0)` is two thin crescents. The likelihood is known in closed form
/// (the density of `p` in polar coordinates around (0.25, 0): `N(r; 0.1, 0.01²) · (1/π) / r` for
/// `p₁ > 0.25`), so exact posterior samples come from rejection sampling under the uniform prior.
public struct TwoMoons: Simulator {
    public init() {}

    public var parameters: Int { 2 }
    public var observations: Int { 2 }

    static let radiusMean = 0.1, radiusDeviation = 0.01

    public func samplePrior(count: Int, using generator: inout some RandomNumberGenerator) -> Matrix<Double> {
        var theta = Matrix<Double>(rows: count, columns: 2)
        for i in 0..<theta.count { theta.storage[i] = 2 * generator.nextUniform(Double.self) - 1 }
        return theta
    }

    /// The shift `(-|θ₁ + θ₂| / √2, (-θ₁ + θ₂) / √2)` that θ adds to the crescent point.
    static func shift(_ t1: Double, _ t2: Double) -> (Double, Double) {
        let s = 1 / 2.0.squareRoot()
        return (-abs(t1 + t2) * s, (-t1 + t2) * s)
    }

    public func simulate(_ theta: Matrix<Double>, using generator: inout some RandomNumberGenerator) -> Matrix<Double> {
        var x = Matrix<Double>(rows: theta.rows, columns: 2)
        for i in 0..<theta.rows {
            let a = Double.pi * (generator.nextUniform(Double.self) - 0.5)
            let r = Self.radiusMean + Self.radiusDeviation * generator.nextNormal(Double.self)
            let (s1, s2) = Self.shift(theta[i, 0], theta[i, 1])
            x[i, 0] = r * Double.cos(a) + 0.25 + s1
            x[i, 1] = r * Double.sin(a) + s2
        }
        return x
    }

    /// `p(x_o | θ)` (a density in x, not a log).
    public func likelihood(_ observation: [Double], theta t1: Double, _ t2: Double) -> Double {
        let (s1, s2) = Self.shift(t1, t2)
        let p1 = observation[0] - s1 - 0.25, p2 = observation[1] - s2
        guard p1 > 0 else { return 0 }
        let r = (p1 * p1 + p2 * p2).squareRoot()
        let z = (r - Self.radiusMean) / Self.radiusDeviation
        return Double.exp(-0.5 * z * z) / ((2 * Double.pi).squareRoot() * Self.radiusDeviation) / Double.pi / r
    }

    /// The largest value the likelihood takes: `max_r N(r; 0.1, 0.01²) / (π r)`, found on a fine
    /// grid and raised by 5% (the rejection sampler's envelope over the uniform prior).
    static let likelihoodBound: Double = {
        var best = 0.0
        for k in 1...20_000 {
            let r = 0.02 + 0.16 * Double(k) / 20_000
            let z = (r - radiusMean) / radiusDeviation
            best = max(best, Double.exp(-0.5 * z * z) / ((2 * Double.pi).squareRoot() * radiusDeviation) / Double.pi / r)
        }
        return 1.05 * best
    }()

    /// Exact posterior draws by rejection sampling: propose `θ ~ U[-1, 1]²`, accept with
    /// probability `p(x_o | θ) / bound`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an observation of another
    ///   width, or one where fewer than 1 in 10⁷ proposals are accepted (outside the support).
    public func samplePosterior(
        count: Int, observation: [Double], using generator: inout some RandomNumberGenerator
    ) throws -> Matrix<Double> {
        try requireObservation(observation, "TwoMoons.samplePosterior")
        var theta = Matrix<Double>(rows: count, columns: 2)
        var accepted = 0, proposed = 0
        while accepted < count {
            let t1 = 2 * generator.nextUniform(Double.self) - 1, t2 = 2 * generator.nextUniform(Double.self) - 1
            proposed += 1
            if generator.nextUniform(Double.self) * Self.likelihoodBound < likelihood(observation, theta: t1, t2) {
                theta[accepted, 0] = t1
                theta[accepted, 1] = t2
                accepted += 1
            } else if proposed >= 10_000_000, accepted * 10_000_000 < proposed {
                throw InvertNNError.invalidArgument(
                    operation: "TwoMoons.samplePosterior",
                    reason: "the observation \(observation) has (almost) no posterior mass under the prior: \(accepted) of \(proposed) proposals accepted")
            }
        }
        return theta
    }
}
