import RealModule

/// A learnable mixture of `K` diagonal Gaussians as a base distribution:
/// `p(z) = Σ_k π_k N(z; μ_k, diag(σ_k²))` with `π = softmax(w)`, `σ_k = exp(s_k)`.
///
/// - Parameters (trained with the flow): `logits` `w` `[1, K]`, `means` `μ` `[K, features]`,
///   `logScales` `s` `[K, features]`. The means start at seeded N(0, 0.5²) draws (equal means
///   would give every component the same gradient forever), the weights equal, the scales 1.
/// - Gradients, with the responsibilities `r_k = π_k N_k(z) / p(z)` and `u_kj = (z_j - μ_kj)/σ_kj`:
///   `∂ log p/∂z_j = -Σ_k r_k u_kj/σ_kj`, `∂/∂μ_kj = r_k u_kj/σ_kj`, `∂/∂s_kj = r_k (u_kj² - 1)`,
///   `∂/∂w_k = r_k - π_k`. Log-sum-exp keeps far-out `z` finite.
/// - Sampling at temperature `τ`: a component `k ~ π`, then `μ_k + τ σ_k ε`.
/// - Source: the mixture bases of normflows (`GaussianMixture`) and of Papamakarios et al. 2017
///   (MAF's MoG variant, §3.5).
public final class GaussianMixture<T: Scalar>: BaseDistribution {
    public typealias Element = T

    /// D.
    public let features: Int
    /// K.
    public let components: Int
    /// `w`, `[1, K]`.
    public let logits: Parameter<T>
    /// `μ`, `[K, features]`.
    public let means: Parameter<T>
    /// `s = log σ`, `[K, features]`.
    public let logScales: Parameter<T>

    /// A mixture of `components` Gaussians in `features` dimensions, means drawn from `seed`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or
    ///   `components` is not in `1...1024`.
    public init(features: Int, components: Int, seed: UInt64 = 0) throws {
        try SizeLimits.features(features, operation: "GaussianMixture")
        guard components >= 1, components <= 1024 else {
            throw InvertNNError.invalidArgument(operation: "GaussianMixture", reason: "components must be in 1...1024, got \(components)")
        }
        self.features = features
        self.components = components
        var generator = SeededGenerator(seed: seed)
        logits = Parameter(name: "logits", value: Matrix(rows: 1, columns: components))
        means = Parameter(name: "means", value: Matrix.randomNormal(
            rows: components, columns: features, standardDeviation: 0.5, using: &generator))
        logScales = Parameter(name: "logScales", value: Matrix(rows: components, columns: features))
    }

    public var parameters: [Parameter<T>] { [logits, means, logScales] }
    public var checkpointType: (name: String, components: Int?) { ("GaussianMixture", components) }

    /// `log π_k`.
    private func logWeights() -> [T] {
        let w = logits.value.storage
        let top = w.max() ?? 0
        let logSum = top + T.log(w.reduce(T(0)) { $0 + T.exp($1 - top) })
        return w.map { $0 - logSum }
    }

    /// Per row: `log p(z)` and the responsibilities `r` `[K]`; `body` sees each row's `u_kj` on demand.
    private func evaluate(
        _ z: Matrix<T>, _ operation: String, _ body: (_ row: Int, _ logP: T, _ responsibilities: [T]) -> Void
    ) throws {
        try z.requireColumns(features, operation)
        for p in parameters {
            if let (r, c) = p.value.firstNonFinite() {
                throw InvertNNError.nonFinite(operation: "\(operation) \(p.name)", row: r, column: c)
            }
        }
        let logPi = logWeights()
        let constant = -T(features) / 2 * T.log(2 * T.pi)
        let logScaleSums = (0..<components).map { k in (0..<features).reduce(T(0)) { $0 + logScales.value[k, $1] } }
        var terms = [T](repeating: 0, count: components)
        for i in 0..<z.rows {
            for k in 0..<components {
                var sum: T = 0
                for j in 0..<features {
                    let u = (z[i, j] - means.value[k, j]) * T.exp(-logScales.value[k, j])
                    sum += u * u
                }
                terms[k] = logPi[k] + constant - logScaleSums[k] - sum / 2
            }
            let top = terms.max()!
            let logP = top + T.log(terms.reduce(T(0)) { $0 + T.exp($1 - top) })
            body(i, logP, terms.map { T.exp($0 - logP) })
        }
    }

    public func logProbability(_ z: Matrix<T>) throws -> [T] {
        var out = [T](repeating: 0, count: z.rows)
        try evaluate(z, "GaussianMixture.logProbability") { i, logP, _ in out[i] = logP }
        return out
    }

    public func logProbabilityGradient(_ z: Matrix<T>) throws -> Matrix<T> {
        var g = Matrix<T>(rows: z.rows, columns: features)
        try evaluate(z, "GaussianMixture.logProbabilityGradient") { i, _, r in
            for k in 0..<components {
                for j in 0..<features {
                    let inverseScale = T.exp(-logScales.value[k, j])
                    g[i, j] -= r[k] * (z[i, j] - means.value[k, j]) * inverseScale * inverseScale
                }
            }
        }
        return g
    }

    public func accumulateParameterGradient(_ z: Matrix<T>, scaledBy scale: T) throws {
        let pi = logWeights().map { T.exp($0) }
        try evaluate(z, "GaussianMixture.accumulateParameterGradient") { i, _, r in
            for k in 0..<components {
                logits.gradient.storage[k] += scale * (r[k] - pi[k])
                for j in 0..<features {
                    let inverseScale = T.exp(-logScales.value[k, j])
                    let u = (z[i, j] - means.value[k, j]) * inverseScale
                    means.gradient[k, j] += scale * r[k] * u * inverseScale
                    logScales.gradient[k, j] += scale * r[k] * (u * u - 1)
                }
            }
        }
    }

    public func sample(count: Int, temperature: T = 1, using generator: inout some RandomNumberGenerator) -> Matrix<T> {
        let pi = logWeights().map { Double(T.exp($0)) }
        var z = Matrix<T>.randomNormal(rows: count, columns: features, standardDeviation: temperature, using: &generator)
        for i in 0..<count {
            var u = generator.nextUniform(Double.self), k = 0
            while k < components - 1, u >= pi[k] { u -= pi[k]; k += 1 }
            for j in 0..<features { z[i, j] = means.value[k, j] + T.exp(logScales.value[k, j]) * z[i, j] }
        }
        return z
    }
}
