import InvertNN

/// The GEMM floor of an MLP `[n₀, n₁, …, n_L]` on a batch: forward one GEMM per dense layer,
/// backward `dW_k = g_kᵀ h_{k-1}` and `g_{k-1} = g_k W_k` per layer, all preallocated, through the
/// library's BLAS wrapper (no activations, no bias: only the GEMMs).
final class MLPReference<T: Scalar> {
    var weights: [Matrix<T>], activations: [Matrix<T>], gradients: [Matrix<T>], weightGradients: [Matrix<T>]

    init(batch: Int, sizes: [Int], using generator: inout SeededGenerator) {
        weights = (0..<(sizes.count - 1)).map { Matrix.randomNormal(rows: sizes[$0 + 1], columns: sizes[$0], using: &generator) }
        activations = sizes.map { Matrix.randomNormal(rows: batch, columns: $0, using: &generator) }
        gradients = sizes.map { Matrix.randomNormal(rows: batch, columns: $0, using: &generator) }
        weightGradients = weights.map { Matrix(rows: $0.rows, columns: $0.columns) }
    }

    func forward() throws {
        for k in 0..<weights.count {
            try BLAS.gemm(activations[k], weights[k], transposeB: true, into: &activations[k + 1])
        }
    }

    func forwardBackward() throws {
        try forward()
        for k in stride(from: weights.count - 1, through: 0, by: -1) {
            try BLAS.gemm(gradients[k + 1], transposeA: true, activations[k], beta: 1, into: &weightGradients[k])
            try BLAS.gemm(gradients[k + 1], weights[k], into: &gradients[k])
        }
    }

    /// Forward flops `Σ 2·B·n_k·n_{k+1}`.
    var forwardFlops: Double {
        weights.reduce(0) { $0 + 2 * Double(activations[0].rows) * Double($1.rows) * Double($1.columns) }
    }
}
