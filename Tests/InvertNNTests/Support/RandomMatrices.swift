import InvertNN

/// Test matrices with known structure, built from LAPACK's SVD of Gaussian matrices (independent
/// of the QR-based code under test).
enum RandomMatrices {
    /// An orthogonal `n × n` matrix (left singular vectors of a Gaussian matrix) with the requested
    /// determinant sign (a column is negated to flip it).
    static func orthogonal(_ n: Int, negative: Bool, using rng: inout SeededGenerator) throws -> Matrix<Double> {
        var q = try LAPACK.svd(Matrix<Double>.randomNormal(rows: n, columns: n, using: &rng)).u
        let sign = try LAPACK.logAbsDeterminant(q).sign
        if (sign < 0) != negative {
            for r in 0..<n { q[r, 0] = -q[r, 0] }
        }
        return q
    }

    /// `A = P · diag(σ) · Rᵀ · scale` with random orthogonal `P`, `R` and `σ` log-spaced from 1 down
    /// to `1/condition` (so `κ(A) = condition`), in random order.
    static func conditioned(
        _ n: Int, condition: Double, scale: Double = 1, using rng: inout SeededGenerator
    ) throws -> Matrix<Double> {
        let p = try orthogonal(n, negative: rng.next() % 2 == 0, using: &rng)
        let r = try orthogonal(n, negative: rng.next() % 2 == 0, using: &rng)
        var sigma = (0..<n).map { n == 1 ? 1 : Double.pow(condition, -Double($0) / Double(n - 1)) }
        sigma.shuffle(using: &rng)
        var scaled = p
        for row in 0..<n { for c in 0..<n { scaled[row, c] *= sigma[c] * scale } }
        return try BLAS.matmul(scaled, r, transposeB: true)
    }

    /// `‖M‖_F`.
    static func frobenius(_ m: Matrix<Double>) -> Double {
        m.storage.reduce(0) { $0 + $1 * $1 }.squareRoot()
    }

    /// `max|QᵀQ - I|`.
    static func defect(_ q: Matrix<Double>) throws -> Double {
        var g = try BLAS.matmul(q, transposeA: true, q)
        for i in 0..<q.rows { g[i, i] -= 1 }
        return g.maxAbs
    }
}
