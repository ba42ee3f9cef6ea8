import RealModule
/// Typed wrappers over the LAPACK factorizations the library uses. Every wrapper turns
/// `info != 0` into ``InvertNNError/lapack(routine:info:meaning:)`` and checks shapes first.
public enum LAPACK {
    /// `log|det A|` and the sign of `det A` of a square matrix, from an LU factorization with
    /// partial pivoting (`?getrf`).
    ///
    /// - Returns: `(logAbsDet, sign)` with `sign` ∈ {-1, +1}. A singular matrix gives
    ///   `logAbsDet = -inf` and `sign = 0` (not an error: the determinant is exactly zero).
    /// - Throws: shape mismatch if `a` is not square; ``InvertNNError/lapack(routine:info:meaning:)``
    ///   on an illegal argument.
    public static func logAbsDeterminant<T: Scalar>(_ a: Matrix<T>) throws -> (logAbsDet: T, sign: T) {
        guard a.rows == a.columns else {
            throw InvertNNError.shapeMismatch(operation: "LAPACK.logAbsDeterminant", expected: "square", actual: "\(a.shape)")
        }
        let n = a.rows
        if n == 0 { return (0, 1) }
        var lu = a.storage
        var pivots = [Int32](repeating: 0, count: n)
        let info = lu.withUnsafeMutableBufferPointer { pa in
            pivots.withUnsafeMutableBufferPointer { pp in T._getrf(m: n, n: n, a: pa.baseAddress!, lda: n, pivots: pp.baseAddress!) }
        }
        if info > 0 { return (-.infinity, 0) }
        if info < 0 { throw InvertNNError.lapack(routine: "getrf", info: Int(info), meaning: "illegal argument \(-info)") }
        var logAbs: T = 0
        var sign: T = 1
        for i in 0..<n {
            let d = lu[i * n + i]
            logAbs += T.log(Swift.abs(d))
            if d < 0 { sign = -sign }
            if Int(pivots[i]) != i + 1 { sign = -sign }
        }
        return (logAbs, sign)
    }

    /// The Cholesky factor `L` (lower triangular, positive diagonal) of a symmetric
    /// positive-definite matrix, `A = L Lᵀ` (`?potrf`). Only the lower triangle of `a` is read.
    ///
    /// - Parameter a: `[n, n]`.
    /// - Returns: `L` `[n, n]` with zeros above the diagonal.
    /// - Throws: shape mismatch if `a` is not square; ``InvertNNError/lapack(routine:info:meaning:)``
    ///   if `a` is not positive definite (`info` is the order of the first failing leading minor).
    public static func cholesky<T: Scalar>(_ a: Matrix<T>) throws -> Matrix<T> {
        guard a.rows == a.columns else {
            throw InvertNNError.shapeMismatch(operation: "LAPACK.cholesky", expected: "square", actual: "\(a.shape)")
        }
        let n = a.rows
        var l = a
        if n == 0 { return l }
        let info = l.storage.withUnsafeMutableBufferPointer { T._potrf(n: n, a: $0.baseAddress!, lda: n) }
        if info != 0 {
            throw InvertNNError.lapack(
                routine: "potrf", info: Int(info),
                meaning: info < 0 ? "illegal argument \(-info)" : "the leading minor of order \(info) is not positive definite")
        }
        for i in 0..<n { for j in (i + 1)..<n { l.storage[i * n + j] = 0 } }
        return l
    }

    /// Full singular value decomposition `A = U · diag(s) · Vᵀ` by divide and conquer (`?gesdd`).
    ///
    /// - Parameter a: `[m, n]`.
    /// - Returns: `u` `[m, m]`, `s` with `min(m, n)` descending entries, `vt` `[n, n]`.
    /// - Throws: ``InvertNNError/lapack(routine:info:meaning:)`` if the iteration fails to converge.
    public static func svd<T: Scalar>(_ a: Matrix<T>) throws -> (u: Matrix<T>, s: [T], vt: Matrix<T>) {
        let m = a.rows, n = a.columns
        var work = a.storage
        var s = [T](repeating: 0, count: min(m, n))
        var u = Matrix<T>(rows: m, columns: m)
        var vt = Matrix<T>(rows: n, columns: n)
        if m == 0 || n == 0 { return (u, s, vt) }
        let info = work.withUnsafeMutableBufferPointer { pa in
            s.withUnsafeMutableBufferPointer { ps in
                u.storage.withUnsafeMutableBufferPointer { pu in
                    vt.storage.withUnsafeMutableBufferPointer { pv in
                        T._gesdd(m: m, n: n, a: pa.baseAddress!, lda: n, s: ps.baseAddress!,
                                 u: pu.baseAddress!, ldu: m, vt: pv.baseAddress!, ldvt: n)
                    }
                }
            }
        }
        if info != 0 {
            throw InvertNNError.lapack(
                routine: "gesdd", info: Int(info),
                meaning: info < 0 ? "illegal argument \(-info)" : "the SVD did not converge")
        }
        return (u, s, vt)
    }

    /// Eigen-decomposition of a symmetric matrix, `A = Q · diag(w) · Qᵀ` (`?syevd`).
    /// Only the upper triangle of `a` is read.
    ///
    /// - Returns: eigenvalues `w` ascending and eigenvectors as the columns of `q` `[n, n]`.
    /// - Throws: shape mismatch if not square; ``InvertNNError/lapack(routine:info:meaning:)`` on failure.
    public static func symmetricEigen<T: Scalar>(_ a: Matrix<T>) throws -> (values: [T], vectors: Matrix<T>) {
        guard a.rows == a.columns else {
            throw InvertNNError.shapeMismatch(operation: "LAPACK.symmetricEigen", expected: "square", actual: "\(a.shape)")
        }
        let n = a.rows
        var q = a
        var w = [T](repeating: 0, count: n)
        if n == 0 { return (w, q) }
        let info = q.storage.withUnsafeMutableBufferPointer { pa in
            w.withUnsafeMutableBufferPointer { pw in T._syevd(n: n, a: pa.baseAddress!, lda: n, w: pw.baseAddress!) }
        }
        if info != 0 {
            throw InvertNNError.lapack(
                routine: "syevd", info: Int(info),
                meaning: info < 0 ? "illegal argument \(-info)" : "the eigensolver did not converge")
        }
        return (w, q)
    }

    /// Householder QR factorization in LAPACK's compact form (`?geqrf`): on return the upper
    /// triangle of `factors` holds R and the part below the diagonal the reflectors' tails
    /// (unit leading entry implied); `H_i = I - tau_i v_i v_iᵀ`.
    ///
    /// - Throws: ``InvertNNError/lapack(routine:info:meaning:)`` on an illegal argument.
    public static func qr<T: Scalar>(_ a: Matrix<T>) throws -> (factors: Matrix<T>, tau: [T]) {
        var f = a
        var tau = [T](repeating: 0, count: min(a.rows, a.columns))
        if a.count == 0 { return (f, tau) }
        let info = f.storage.withUnsafeMutableBufferPointer { pa in
            tau.withUnsafeMutableBufferPointer { pt in
                T._geqrf(m: a.rows, n: a.columns, a: pa.baseAddress!, lda: a.columns, tau: pt.baseAddress!)
            }
        }
        if info != 0 { throw InvertNNError.lapack(routine: "geqrf", info: Int(info), meaning: "illegal argument \(-info)") }
        return (f, tau)
    }

    /// Householder QR factorization with a non-negative diagonal of R (`?geqrfp`), in the compact
    /// form of ``qr(_:)``: `A = H_1 ⋯ H_k R` with `H_i = I - tau_i v_i v_iᵀ`, `v_i[i] = 1` implied,
    /// `v_i[j] = 0` for `j < i`, and `R[i, i] ≥ 0`. LAPACK's `?larfgp` gives `tau_i = 0` (H = I)
    /// when column `i` already points along `+e_i`, and `tau_i = 2` with a zero tail (H flips
    /// coordinate `i`) when it points along `-e_i`; otherwise `tau_i = 2 / (v_iᵀ v_i)`, so every
    /// `H_i` is an exact reflector (up to rounding).
    ///
    /// With `R[i, i] > 0` the factorization of a full-rank square matrix is unique, which is what
    /// makes it useful both for turning an orthogonal matrix into reflectors with `R = I` and for
    /// drawing Haar-distributed orthogonal matrices from Gaussian ones (Mezzadri 2007, "How to
    /// generate random matrices from the classical compact groups", §5: the sign fix).
    ///
    /// - Throws: ``InvertNNError/lapack(routine:info:meaning:)`` on an illegal argument.
    public static func qrNonNegativeDiagonal<T: Scalar>(_ a: Matrix<T>) throws -> (factors: Matrix<T>, tau: [T]) {
        var f = a
        var tau = [T](repeating: 0, count: min(a.rows, a.columns))
        if a.count == 0 { return (f, tau) }
        let info = f.storage.withUnsafeMutableBufferPointer { pa in
            tau.withUnsafeMutableBufferPointer { pt in
                T._geqrfp(m: a.rows, n: a.columns, a: pa.baseAddress!, lda: a.columns, tau: pt.baseAddress!)
            }
        }
        if info != 0 { throw InvertNNError.lapack(routine: "geqrfp", info: Int(info), meaning: "illegal argument \(-info)") }
        return (f, tau)
    }

    /// LU factorization with partial pivoting of a square matrix (`?getrf`): `A = P · L · U` with
    /// `L` unit lower triangular (below the diagonal of `factors`), `U` upper triangular (on and
    /// above it) and the row order `rowOrder`: row `i` of `L·U` is row `rowOrder[i]` of `A`
    /// (LAPACK's interchanges applied in turn to `0..<n`).
    ///
    /// - Throws: shape mismatch if `a` is not square; ``InvertNNError/singular(operation:detail:)``
    ///   if a pivot is exactly zero (`info > 0`); ``InvertNNError/lapack(routine:info:meaning:)`` on
    ///   an illegal argument.
    public static func luFactorization<T: Scalar>(_ a: Matrix<T>) throws -> (factors: Matrix<T>, rowOrder: [Int]) {
        guard a.rows == a.columns else {
            throw InvertNNError.shapeMismatch(operation: "LAPACK.luFactorization", expected: "square", actual: "\(a.shape)")
        }
        let n = a.rows
        var lu = a
        var pivots = [Int32](repeating: 0, count: n)
        if n == 0 { return (lu, []) }
        let info = lu.storage.withUnsafeMutableBufferPointer { pa in
            pivots.withUnsafeMutableBufferPointer { pp in T._getrf(m: n, n: n, a: pa.baseAddress!, lda: n, pivots: pp.baseAddress!) }
        }
        if info < 0 { throw InvertNNError.lapack(routine: "getrf", info: Int(info), meaning: "illegal argument \(-info)") }
        if info > 0 {
            throw InvertNNError.singular(operation: "LAPACK.luFactorization", detail: "U[\(info - 1), \(info - 1)] is exactly zero")
        }
        var order = Array(0..<n)
        for i in 0..<n { order.swapAt(i, Int(pivots[i]) - 1) }
        return (lu, order)
    }
}
