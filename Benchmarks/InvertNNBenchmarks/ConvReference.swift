import InvertNN

/// The GEMM floor of a chain of im2col convolutions on a batch: per convolution `k` with
/// `C_in·s²` patch rows and `C_out` outputs, forward `O = W X̂` (`[C_out, C_in·s²] × [C_in·s², B·H·W]`),
/// backward `dW += dO X̂ᵀ` and `dX̂ = Wᵀ dO`, all preallocated, through the library's BLAS wrapper
/// (no patch gathering, no bias, no activation: only the GEMMs a ``ConvNet`` contains).
final class ConvReference<T: Scalar> {
    var weights: [Matrix<T>], patches: [Matrix<T>], outputs: [Matrix<T>], patchGradients: [Matrix<T>], weightGradients: [Matrix<T>]

    /// `layers`: `(C_in, C_out, kernel size)` per convolution, on `batch` images of `pixels` pixels.
    init(batch: Int, pixels: Int, layers: [(input: Int, output: Int, kernel: Int)], using generator: inout SeededGenerator) {
        let columns = batch * pixels
        weights = layers.map { Matrix.randomNormal(rows: $0.output, columns: $0.input * $0.kernel * $0.kernel, using: &generator) }
        patches = weights.map { Matrix.randomNormal(rows: $0.columns, columns: columns, using: &generator) }
        outputs = weights.map { Matrix.randomNormal(rows: $0.rows, columns: columns, using: &generator) }
        patchGradients = patches.map { Matrix(rows: $0.rows, columns: $0.columns) }
        weightGradients = weights.map { Matrix(rows: $0.rows, columns: $0.columns) }
    }

    func forward() throws {
        for k in 0..<weights.count { try BLAS.gemm(weights[k], patches[k], into: &outputs[k]) }
    }

    func forwardBackward() throws {
        try forward()
        for k in stride(from: weights.count - 1, through: 0, by: -1) {
            try BLAS.gemm(outputs[k], patches[k], transposeB: true, beta: 1, into: &weightGradients[k])
            try BLAS.gemm(weights[k], transposeA: true, outputs[k], into: &patchGradients[k])
        }
    }

    /// Forward flops `Σ 2·C_out·C_in·s²·B·H·W`.
    var forwardFlops: Double {
        zip(weights, patches).reduce(0) { $0 + 2 * Double($1.0.rows) * Double($1.0.columns) * Double($1.1.columns) }
    }
}
