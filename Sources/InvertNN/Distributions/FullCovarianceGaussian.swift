import RealModule

/// The maximum-likelihood full-covariance Gaussian `N(μ, Σ)` of a sample: the baseline a flow
/// must beat on continuous data (a flow that does not beat it has learned nothing beyond the
/// first two moments).
///
/// `μ` is the sample mean and `Σ = (1/n) Σ_i (x_i - μ)(x_i - μ)ᵀ` (divisor `n`: the maximum-
/// likelihood estimate, not the unbiased `n - 1`), factored as `Σ = L Lᵀ` by LAPACK `potrf`.
/// `log N(x; μ, Σ) = -½‖L⁻¹(x - μ)‖² - Σ_j log L_jj - (D/2) log 2π` nats.
/// Fitting and scoring run in Double whatever the data's precision (the covariance of features
/// on very different scales loses too many digits in Float).
public struct FullCovarianceGaussian: Sendable, Equatable {
    /// μ, `[features]`.
    public let mean: [Double]
    /// `L`, `[features, features]`, lower triangular with a positive diagonal, `Σ = L Lᵀ`.
    public let cholesky: Matrix<Double>

    /// D.
    public var features: Int { mean.count }

    /// Fits `μ` and `Σ` to the rows of `data` by maximum likelihood.
    ///
    /// - Parameter data: `[n, D]`, `n ≥ 1`, `D ≥ 1`, finite.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an empty sample;
    ///   ``InvertNNError/nonFinite(operation:row:column:)`` naming a NaN or infinite entry;
    ///   ``InvertNNError/singular(operation:detail:)`` if `Σ` is not positive definite (a constant
    ///   column, a column that is a linear combination of others, or `n ≤ D`): such data have no
    ///   Gaussian density.
    public init<T: Scalar>(fitting data: Matrix<T>) throws {
        let operation = "FullCovarianceGaussian(fitting:)"
        guard data.rows >= 1, data.columns >= 1 else {
            throw InvertNNError.invalidArgument(operation: operation, reason: "needs at least one row and one column, got \(data.shape)")
        }
        try data.requireFinite(operation)
        let n = data.rows, d = data.columns
        var centered: Matrix<Double> = data.converted()
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += centered[i, j] } }
        for j in 0..<d { mean[j] /= Double(n) }
        for i in 0..<n { for j in 0..<d { centered[i, j] -= mean[j] } }
        var covariance = Matrix<Double>(rows: d, columns: d)
        try BLAS.gemm(centered, transposeA: true, centered, alpha: 1 / Double(n), into: &covariance)
        do {
            cholesky = try LAPACK.cholesky(covariance)
        } catch InvertNNError.lapack(_, let info, _) where info > 0 {
            throw InvertNNError.singular(
                operation: operation,
                detail: "the covariance of \(n) rows × \(d) columns is not positive definite (leading minor \(info)): "
                    + "a constant column, a column determined by others, or no more rows than columns")
        }
        self.mean = mean
    }

    /// `log N(x_i; μ, Σ)` of each row, nats.
    ///
    /// - Parameter x: `[batch, D]`.
    /// - Returns: `[batch]`.
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if `x` has another width.
    public func logDensity<T: Scalar>(_ x: Matrix<T>) throws -> [Double] {
        try x.requireColumns(features, "FullCovarianceGaussian.logDensity")
        let d = features
        var z: Matrix<Double> = x.converted()
        for i in 0..<z.rows { for j in 0..<d { z[i, j] -= mean[j] } }
        // Rows zᵢᵀ = (xᵢ - μ)ᵀ L⁻ᵀ: one triangular solve for the whole batch.
        try BLAS.trsm(cholesky, side: .right, lower: true, transpose: true, solving: &z)
        var constant = -Double(d) / 2 * Double.log(2 * Double.pi)
        for j in 0..<d { constant -= Double.log(cholesky[j, j]) }
        return (0..<z.rows).map { i in
            var sum = 0.0
            for j in 0..<d { sum += z[i, j] * z[i, j] }
            return constant - sum / 2
        }
    }
}
