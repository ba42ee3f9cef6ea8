import RealModule
import CBLAS

// Double forwards the Scalar requirements to OpenBLAS's `d` routines (CBLAS and LAPACKE,
// row-major). Sizes are converted to Int32 here, the one place that knows the C types.
extension Double: Scalar {
    public static var dtypeName: String { "F64" }

    public static func _gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    public static func _gemv(
        transpose: Bool, m: Int, n: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
        x: UnsafePointer<Double>, incx: Int, beta: Double, y: UnsafeMutablePointer<Double>, incy: Int
    ) {
        cblas_dgemv(
            CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda),
            x, Int32(incx), beta, y, Int32(incy))
    }

    public static func _syrkLower(
        n: Int, k: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int, beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, Int32(n), Int32(k), alpha, a, Int32(lda), beta, c, Int32(ldc))
    }

    public static func _ger(
        m: Int, n: Int, alpha: Double, x: UnsafePointer<Double>, incx: Int,
        y: UnsafePointer<Double>, incy: Int, a: UnsafeMutablePointer<Double>, lda: Int
    ) {
        cblas_dger(CblasRowMajor, Int32(m), Int32(n), alpha, x, Int32(incx), y, Int32(incy), a, Int32(lda))
    }

    public static func _trsm(
        rightSide: Bool, lower: Bool, transpose: Bool, unitDiagonal: Bool, m: Int, n: Int, alpha: Double,
        a: UnsafePointer<Double>, lda: Int, b: UnsafeMutablePointer<Double>, ldb: Int
    ) {
        cblas_dtrsm(
            CblasRowMajor, rightSide ? CblasRight : CblasLeft, lower ? CblasLower : CblasUpper,
            transpose ? CblasTrans : CblasNoTrans, unitDiagonal ? CblasUnit : CblasNonUnit,
            Int32(m), Int32(n), alpha, a, Int32(lda), b, Int32(ldb))
    }

    public static func _getrf(
        m: Int, n: Int, a: UnsafeMutablePointer<Double>, lda: Int, pivots: UnsafeMutablePointer<Int32>
    ) -> Int32 {
        LAPACKE_dgetrf(LAPACK_ROW_MAJOR, Int32(m), Int32(n), a, Int32(lda), pivots)
    }

    public static func _potrf(n: Int, a: UnsafeMutablePointer<Double>, lda: Int) -> Int32 {
        LAPACKE_dpotrf(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "L")), Int32(n), a, Int32(lda))
    }

    public static func _gesdd(
        m: Int, n: Int, a: UnsafeMutablePointer<Double>, lda: Int, s: UnsafeMutablePointer<Double>,
        u: UnsafeMutablePointer<Double>, ldu: Int, vt: UnsafeMutablePointer<Double>, ldvt: Int
    ) -> Int32 {
        LAPACKE_dgesdd(
            LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "A")), Int32(m), Int32(n), a, Int32(lda), s,
            u, Int32(ldu), vt, Int32(ldvt))
    }

    public static func _syevd(n: Int, a: UnsafeMutablePointer<Double>, lda: Int, w: UnsafeMutablePointer<Double>) -> Int32 {
        LAPACKE_dsyevd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")), Int32(n), a, Int32(lda), w)
    }

    public static func _geqrf(
        m: Int, n: Int, a: UnsafeMutablePointer<Double>, lda: Int, tau: UnsafeMutablePointer<Double>
    ) -> Int32 {
        LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, Int32(m), Int32(n), a, Int32(lda), tau)
    }

    public static func _geqrfp(
        m: Int, n: Int, a: UnsafeMutablePointer<Double>, lda: Int, tau: UnsafeMutablePointer<Double>
    ) -> Int32 {
        LAPACKE_dgeqrfp(LAPACK_ROW_MAJOR, Int32(m), Int32(n), a, Int32(lda), tau)
    }
}
