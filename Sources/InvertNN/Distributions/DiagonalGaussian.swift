import RealModule

/// A learnable diagonal Gaussian base distribution `N(μ, diag(σ²))`, `σ = exp(s)`:
/// `log p(z) = Σ_j [-½((z_j - μ_j)/σ_j)² - s_j - ½ log 2π]` nats.
///
/// - Parameters (trained with the flow): `mean` `μ` and `logScale` `s`, each `[1, features]`,
///   starting at `μ = 0`, `s = 0` (the standard normal).
/// - Gradients, with `u = (z - μ)/σ`: `∂/∂z = -u/σ`, `∂/∂μ = u/σ`, `∂/∂s = u² - 1`.
/// - Sampling at temperature `τ`: `z = μ + τ σ ε`, `ε ~ N(0, I)`.
/// - Source: the learnable base of Glow (Kingma & Dhariwal 2018, §3's prior) and nflows'
///   `DiagonalNormal`.
public final class DiagonalGaussian<T: Scalar>: BaseDistribution {
    public typealias Element = T

    /// D.
    public let features: Int
    /// `μ`, `[1, features]`.
    public let mean: Parameter<T>
    /// `s = log σ`, `[1, features]`.
    public let logScale: Parameter<T>

    /// `N(0, I)` as a starting point, with learnable mean and log-scale.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`.
    public init(features: Int) throws {
        try SizeLimits.features(features, operation: "DiagonalGaussian")
        self.features = features
        mean = Parameter(name: "mean", value: Matrix(rows: 1, columns: features))
        logScale = Parameter(name: "logScale", value: Matrix(rows: 1, columns: features))
    }

    public var parameters: [Parameter<T>] { [mean, logScale] }
    public var checkpointType: (name: String, components: Int?) { ("DiagonalGaussian", nil) }

    /// `(z_ij - μ_j)/σ_j` and `σ_j`, after the parameter checks.
    private func standardized(_ z: Matrix<T>, _ operation: String) throws -> (u: Matrix<T>, scales: [T]) {
        try z.requireColumns(features, operation)
        if let (_, j) = logScale.value.firstNonFinite() ?? mean.value.firstNonFinite() {
            throw InvertNNError.nonFinite(operation: "\(operation) parameter", row: 0, column: j)
        }
        let scales = logScale.value.storage.map { T.exp($0) }
        var u = z
        for i in 0..<z.rows {
            for j in 0..<features { u[i, j] = (z[i, j] - mean.value.storage[j]) / scales[j] }
        }
        return (u, scales)
    }

    public func logProbability(_ z: Matrix<T>) throws -> [T] {
        let (u, _) = try standardized(z, "DiagonalGaussian.logProbability")
        let constant = -T(features) / 2 * T.log(2 * T.pi) - logScale.value.storage.reduce(0, +)
        return (0..<z.rows).map { i in
            var sum: T = 0
            for j in 0..<features { sum += u[i, j] * u[i, j] }
            return constant - sum / 2
        }
    }

    public func logProbabilityGradient(_ z: Matrix<T>) throws -> Matrix<T> {
        var (u, scales) = try standardized(z, "DiagonalGaussian.logProbabilityGradient")
        for i in 0..<u.rows { for j in 0..<features { u[i, j] = -u[i, j] / scales[j] } }
        return u
    }

    public func accumulateParameterGradient(_ z: Matrix<T>, scaledBy scale: T) throws {
        let (u, scales) = try standardized(z, "DiagonalGaussian.accumulateParameterGradient")
        for i in 0..<u.rows {
            for j in 0..<features {
                let v = u[i, j]
                mean.gradient.storage[j] += scale * v / scales[j]
                logScale.gradient.storage[j] += scale * (v * v - 1)
            }
        }
    }

    public func sample(count: Int, temperature: T = 1, using generator: inout some RandomNumberGenerator) -> Matrix<T> {
        var z = Matrix<T>.randomNormal(rows: count, columns: features, standardDeviation: temperature, using: &generator)
        for i in 0..<count {
            for j in 0..<features { z[i, j] = mean.value.storage[j] + T.exp(logScale.value.storage[j]) * z[i, j] }
        }
        return z
    }
}
