@_exported import RealModule

/// The floating-point element type of every ``Matrix`` and layer: `Float` or `Double`.
///
/// `Scalar` refines swift-numerics' `Real` (elementary functions such as `exp`, `log1p`, `tanh`)
/// and `BinaryFloatingPoint`, and adds the BLAS and LAPACK entry points the library uses. The two
/// conformances live in `LinearAlgebra/Float+Scalar.swift` and `LinearAlgebra/Double+Scalar.swift`
/// and forward to OpenBLAS's `s`/`d` routines; they are the only code that touches the C boundary.
///
/// All matrices are row-major, so every routine here takes a leading dimension `ld` that is the
/// row stride in elements. The raw requirements are the C calling convention; use the typed
/// wrappers in ``BLAS`` and ``LAPACK`` instead.
public protocol Scalar: Real, BinaryFloatingPoint, Sendable, Codable
where Self.RawSignificand: FixedWidthInteger {
    /// The safetensors dtype name of this type (`"F32"` or `"F64"`).
    static var dtypeName: String { get }

    /// `C = alpha * op(A) * op(B) + beta * C` (BLAS `?gemm`, row-major). `op(A)` is `m×k`,
    /// `op(B)` is `k×n`, `C` is `m×n`.
    static func _gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    /// `y = alpha * op(A) * x + beta * y` (BLAS `?gemv`, row-major), `A` is `m×n`.
    static func _gemv(
        transpose: Bool, m: Int, n: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int,
        x: UnsafePointer<Self>, incx: Int, beta: Self, y: UnsafeMutablePointer<Self>, incy: Int)

    /// The lower triangle of `C = alpha * A * Aᵀ + beta * C` (BLAS `?syrk`, row-major, lower,
    /// no transpose), `A` is `n×k`, `C` is `n×n`; the strict upper triangle is not touched.
    static func _syrkLower(
        n: Int, k: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int, beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    /// `A += alpha * x * yᵀ` (BLAS `?ger`, row-major), `A` is `m×n`.
    static func _ger(
        m: Int, n: Int, alpha: Self, x: UnsafePointer<Self>, incx: Int,
        y: UnsafePointer<Self>, incy: Int, a: UnsafeMutablePointer<Self>, lda: Int)

    /// Triangular solve in place (BLAS `?trsm`, row-major): `B ← alpha · op(A)⁻¹ · B` (left side)
    /// or `B ← alpha · B · op(A)⁻¹` (right side), where `A` is triangular (`lower` or upper;
    /// `unitDiagonal` treats its diagonal as ones without reading it), `m×m` (left) or `n×n`
    /// (right), and `B` is `m×n`.
    static func _trsm(
        rightSide: Bool, lower: Bool, transpose: Bool, unitDiagonal: Bool, m: Int, n: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafeMutablePointer<Self>, ldb: Int)

    /// LU factorization with partial pivoting (LAPACK `?getrf`, row-major). Returns `info`.
    static func _getrf(
        m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int,
        pivots: UnsafeMutablePointer<Int32>) -> Int32

    /// Cholesky factorization of a symmetric positive-definite matrix (LAPACK `?potrf`, lower,
    /// row-major): on exit the lower triangle of `a` holds `L` with `A = L Lᵀ` (the strict upper
    /// triangle is left as it was). Returns `info` (`> 0`: the leading minor of that order is not
    /// positive definite).
    static func _potrf(n: Int, a: UnsafeMutablePointer<Self>, lda: Int) -> Int32

    /// Singular value decomposition by divide and conquer (LAPACK `?gesdd`, job `A`, row-major).
    /// `a` is `m×n` and destroyed; `s` has `min(m, n)` entries; `u` is `m×m`, `vt` is `n×n`.
    /// Returns `info`.
    static func _gesdd(
        m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int, s: UnsafeMutablePointer<Self>,
        u: UnsafeMutablePointer<Self>, ldu: Int, vt: UnsafeMutablePointer<Self>, ldvt: Int) -> Int32

    /// Eigen-decomposition of a symmetric matrix (LAPACK `?syevd`, job `V`, upper, row-major).
    /// On exit `a` holds the eigenvectors as columns and `w` the ascending eigenvalues.
    /// Returns `info`.
    static func _syevd(
        n: Int, a: UnsafeMutablePointer<Self>, lda: Int, w: UnsafeMutablePointer<Self>) -> Int32

    /// QR factorization (LAPACK `?geqrf`, row-major). `tau` has `min(m, n)` entries.
    /// Returns `info`.
    static func _geqrf(
        m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int,
        tau: UnsafeMutablePointer<Self>) -> Int32

    /// QR factorization with a non-negative diagonal of R (LAPACK `?geqrfp`, row-major), in the
    /// same compact form as ``_geqrf(m:n:a:lda:tau:)``. Returns `info`.
    static func _geqrfp(
        m: Int, n: Int, a: UnsafeMutablePointer<Self>, lda: Int,
        tau: UnsafeMutablePointer<Self>) -> Int32
}
