import RealModule

/// The Gaussian linear task (as sbibm's `gaussian_linear`, with the prior of this library's
/// benchmark): `θ ~ N(0, σ₀² I_D)`, `x | θ ~ N(θ, σ² I_D)`, with the analytic posterior
/// `p(θ | x) = N(x · σ₀² / (σ₀² + σ²), σ₀² σ² / (σ₀² + σ²) · I_D)` (conjugate Gaussians).
public struct GaussianLinear: Simulator {
    /// D, the width of `θ` and of `x`.
    public let dimensions: Int
    /// `σ₀²`, the prior variance.
    public let priorVariance: Double
    /// `σ²`, the noise variance of the simulator.
    public let noiseVariance: Double

    /// The task with `dimensions` D (default 10), prior variance 1 and noise variance 0.1.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for D < 1 or variances that
    ///   are not positive and finite.
    public init(dimensions: Int = 10, priorVariance: Double = 1, noiseVariance: Double = 0.1) throws {
        guard dimensions >= 1, dimensions <= 10_000, priorVariance > 0, priorVariance.isFinite,
              noiseVariance > 0, noiseVariance.isFinite else {
            throw InvertNNError.invalidArgument(
                operation: "GaussianLinear",
                reason: "need 1 ≤ D ≤ 10000 and positive finite variances, got D = \(dimensions), \(priorVariance), \(noiseVariance)")
        }
        self.dimensions = dimensions
        self.priorVariance = priorVariance
        self.noiseVariance = noiseVariance
    }

    public var parameters: Int { dimensions }
    public var observations: Int { dimensions }

    public func samplePrior(count: Int, using generator: inout some RandomNumberGenerator) -> Matrix<Double> {
        Matrix.randomNormal(rows: count, columns: dimensions, standardDeviation: priorVariance.squareRoot(), using: &generator)
    }

    public func simulate(_ theta: Matrix<Double>, using generator: inout some RandomNumberGenerator) -> Matrix<Double> {
        var x = theta
        let sd = noiseVariance.squareRoot()
        for i in 0..<x.count { x.storage[i] += sd * generator.nextNormal(Double.self) }
        return x
    }

    /// The posterior mean `x_o · σ₀² / (σ₀² + σ²)`.
    public func posteriorMean(_ observation: [Double]) -> [Double] {
        observation.map { $0 * priorVariance / (priorVariance + noiseVariance) }
    }

    /// The posterior variance of every coordinate, `σ₀² σ² / (σ₀² + σ²)` (the covariance is diagonal).
    public var posteriorVariance: Double { priorVariance * noiseVariance / (priorVariance + noiseVariance) }

    /// `log p(θ | x_o)` per row of `theta`, nats.
    public func posteriorLogDensity(_ theta: Matrix<Double>, observation: [Double]) -> [Double] {
        let mean = posteriorMean(observation), v = posteriorVariance
        let constant = -0.5 * Double(dimensions) * Double.log(2 * Double.pi * v)
        return (0..<theta.rows).map { i in
            var q = 0.0
            for j in 0..<dimensions { let d = theta[i, j] - mean[j]; q += d * d }
            return constant - 0.5 * q / v
        }
    }

    public func samplePosterior(
        count: Int, observation: [Double], using generator: inout some RandomNumberGenerator
    ) throws -> Matrix<Double> {
        try requireObservation(observation, "GaussianLinear.samplePosterior")
        let mean = posteriorMean(observation), sd = posteriorVariance.squareRoot()
        var theta = Matrix<Double>(rows: count, columns: dimensions)
        for i in 0..<count { for j in 0..<dimensions { theta[i, j] = mean[j] + sd * generator.nextNormal(Double.self) } }
        return theta
    }
}
