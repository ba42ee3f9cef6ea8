import RealModule
import CBLAS

/// Typed, shape-checked wrappers over the BLAS routines, on row-major ``Matrix`` values.
///
/// The shape checks throw ``InvertNNError/shapeMismatch(operation:expected:actual:)`` instead of
/// letting BLAS read out of bounds.
public enum BLAS {
    /// Sets the number of OpenBLAS threads (process-wide). `n < 1` means all cores.
    public static func setThreads(_ n: Int) {
        // Clamped: OpenBLAS takes an Int32 and caps the count at its compiled maximum anyway.
        openblas_set_num_threads(Int32(n < 1 ? Int(openblas_get_num_procs()) : min(n, 1 << 16)))
    }

    /// The number of OpenBLAS threads in use.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The OpenBLAS kernel in use (e.g. `"Haswell"`), from `openblas_get_corename`.
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// `C = alpha · op(A) · op(B) + beta · C`, where `op(X)` is `X` or `Xᵀ`.
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if the inner
    ///   dimensions or `C`'s shape disagree.
    @inlinable
    public static func gemm<T: Scalar>(
        _ a: Matrix<T>, transposeA: Bool = false, _ b: Matrix<T>, transposeB: Bool = false,
        alpha: T = 1, beta: T = 0, into c: inout Matrix<T>
    ) throws {
        let m = transposeA ? a.columns : a.rows
        let k = transposeA ? a.rows : a.columns
        let kb = transposeB ? b.columns : b.rows
        let n = transposeB ? b.rows : b.columns
        guard k == kb, c.rows == m, c.columns == n else {
            throw InvertNNError.shapeMismatch(
                operation: "gemm", expected: "op(A) [\(m), \(k)] · op(B) [\(k), \(n)] -> C [\(m), \(n)]",
                actual: "op(B) [\(kb), \(n)], C [\(c.rows), \(c.columns)]")
        }
        if m == 0 || n == 0 { return }
        if k == 0 {
            c.withUnsafeMutableBufferPointer { pc in
                for i in pc.indices { pc[i] = beta == 0 ? 0 : beta * pc[i] }
            }
            return
        }
        let ldc = max(c.columns, 1)
        a.storage.withUnsafeBufferPointer { pa in
            b.storage.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    T._gemm(
                        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                        alpha: alpha, a: pa.baseAddress!, lda: max(a.columns, 1),
                        b: pb.baseAddress!, ldb: max(b.columns, 1),
                        beta: beta, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
    }

    /// `op(A) · op(B)` as a new matrix.
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` on inner-dimension mismatch.
    @inlinable
    public static func matmul<T: Scalar>(
        _ a: Matrix<T>, transposeA: Bool = false, _ b: Matrix<T>, transposeB: Bool = false, alpha: T = 1
    ) throws -> Matrix<T> {
        var c = Matrix<T>(rows: transposeA ? a.columns : a.rows, columns: transposeB ? b.rows : b.columns)
        try gemm(a, transposeA: transposeA, b, transposeB: transposeB, alpha: alpha, into: &c)
        return c
    }

    /// `A += alpha · x · yᵀ` (rank-1 update, BLAS `?ger`).
    ///
    /// - Throws: shape mismatch unless `x.count == A.rows` and `y.count == A.columns`.
    @inlinable
    public static func ger<T: Scalar>(alpha: T, _ x: [T], _ y: [T], into a: inout Matrix<T>) throws {
        guard x.count == a.rows, y.count == a.columns else {
            throw InvertNNError.shapeMismatch(
                operation: "ger", expected: "x[\(a.rows)], y[\(a.columns)]", actual: "x[\(x.count)], y[\(y.count)]")
        }
        if a.count == 0 { return }
        let m = a.rows, n = a.columns
        x.withUnsafeBufferPointer { px in
            y.withUnsafeBufferPointer { py in
                a.withUnsafeMutableBufferPointer { pa in
                    T._ger(m: m, n: n, alpha: alpha, x: px.baseAddress!, incx: 1,
                           y: py.baseAddress!, incy: 1, a: pa.baseAddress!, lda: n)
                }
            }
        }
    }

    /// `op(A) · x` (BLAS `?gemv`).
    ///
    /// - Throws: shape mismatch unless `x` has as many entries as `op(A)` has columns.
    @inlinable
    public static func gemv<T: Scalar>(_ a: Matrix<T>, transpose: Bool = false, _ x: [T]) throws -> [T] {
        let outCount = transpose ? a.columns : a.rows
        let inCount = transpose ? a.rows : a.columns
        guard x.count == inCount else {
            throw InvertNNError.shapeMismatch(operation: "gemv", expected: "x[\(inCount)]", actual: "x[\(x.count)]")
        }
        var y = [T](repeating: 0, count: outCount)
        if outCount == 0 || inCount == 0 { return y }
        a.storage.withUnsafeBufferPointer { pa in
            x.withUnsafeBufferPointer { px in
                y.withUnsafeMutableBufferPointer { py in
                    T._gemv(transpose: transpose, m: a.rows, n: a.columns, alpha: 1, a: pa.baseAddress!,
                            lda: a.columns, x: px.baseAddress!, incx: 1, beta: 0, y: py.baseAddress!, incy: 1)
                }
            }
        }
        return y
    }

    /// A triangular matrix's place in ``trsm(_:side:lower:transpose:unitDiagonal:alpha:solving:)``.
    public enum Side: Sendable {
        /// Solve `op(A) · X = alpha · B`.
        case left
        /// Solve `X · op(A) = alpha · B`.
        case right
    }

    /// Solves a triangular system in place of `b` (BLAS `?trsm`): `B ← alpha · op(A)⁻¹ · B` for
    /// ``Side/left``, `B ← alpha · B · op(A)⁻¹` for ``Side/right``. Only the `lower` (or upper)
    /// triangle of `a` is read, and with `unitDiagonal` not its diagonal (taken as ones).
    ///
    /// - Parameters:
    ///   - a: square, `[m, m]` for the left side or `[n, n]` for the right side of `b` `[m, n]`.
    ///   - side: whether `op(A)⁻¹` multiplies `b` from the left or the right.
    ///   - lower: read the lower triangle of `a` (else the upper).
    ///   - transpose: use `Aᵀ` for `op(A)`.
    ///   - unitDiagonal: take the diagonal of `a` as ones.
    ///   - alpha: the scale of the result.
    ///   - b: `[m, n]`, overwritten by the solution.
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if `a` is not square
    ///   or does not match `b`. A zero on a non-unit diagonal is not detected (BLAS divides by it).
    @inlinable
    public static func trsm<T: Scalar>(
        _ a: Matrix<T>, side: Side, lower: Bool, transpose: Bool = false, unitDiagonal: Bool = false,
        alpha: T = 1, solving b: inout Matrix<T>
    ) throws {
        let k = side == .left ? b.rows : b.columns
        guard a.rows == k, a.columns == k else {
            throw InvertNNError.shapeMismatch(
                operation: "trsm", expected: "A [\(k), \(k)] for B [\(b.rows), \(b.columns)] (\(side) side)",
                actual: "A [\(a.rows), \(a.columns)]")
        }
        if b.count == 0 { return }
        let m = b.rows, n = b.columns
        a.storage.withUnsafeBufferPointer { pa in
            b.withUnsafeMutableBufferPointer { pb in
                T._trsm(
                    rightSide: side == .right, lower: lower, transpose: transpose, unitDiagonal: unitDiagonal,
                    m: m, n: n, alpha: alpha, a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: n)
            }
        }
    }
}
