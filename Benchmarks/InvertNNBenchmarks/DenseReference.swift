import InvertNN

/// The GEMM floor of a dense layer on `[batch, n]`: forward is one GEMM `Y = X·Wᵀ`, forward+backward
/// adds `dX = dY·W` and `dW = dYᵀ·X` (three GEMMs), all through the library's BLAS wrapper.
final class DenseReference<T: Scalar> {
    var x: Matrix<T>, w: Matrix<T>, y: Matrix<T>, dy: Matrix<T>, dx: Matrix<T>, dw: Matrix<T>

    init(batch: Int, features n: Int, using generator: inout SeededGenerator) {
        x = .randomNormal(rows: batch, columns: n, using: &generator)
        w = .randomNormal(rows: n, columns: n, using: &generator)
        y = Matrix(rows: batch, columns: n)
        dy = .randomNormal(rows: batch, columns: n, using: &generator)
        dx = Matrix(rows: batch, columns: n)
        dw = Matrix(rows: n, columns: n)
    }

    func forward() throws { try BLAS.gemm(x, w, transposeB: true, into: &y) }

    func forwardBackward() throws {
        try BLAS.gemm(x, w, transposeB: true, into: &y)
        try BLAS.gemm(dy, w, into: &dx)
        try BLAS.gemm(dy, transposeA: true, x, into: &dw)
    }

    /// Flops of forward (`2·B·n²`); forward+backward is three times that.
    var forwardFlops: Double { 2 * Double(x.rows) * Double(x.columns) * Double(x.columns) }
}
