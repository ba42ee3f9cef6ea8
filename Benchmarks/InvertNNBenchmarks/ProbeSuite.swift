import Foundation
import InvertNN

/// `probe` (not part of `all`): GFLOP/s of the GEMM shapes the blocked paths use, to tune them.
func probeSuite<T: Scalar>(_ context: BenchmarkContext, _: T.Type) throws -> [BenchmarkRecord] {
    var rng = SeededGenerator(seed: 9)
    let b = 1024, p = 256
    for c in [64, 128, 192, 256] {
        let z = Matrix<T>.randomNormal(rows: 2 * b, columns: p, using: &rng)
        let u = Matrix<T>.randomNormal(rows: c, columns: p, using: &rng)
        var l = Matrix<T>(rows: 2 * b, columns: c)
        let nmat = Matrix<T>.randomNormal(rows: 2 * b, columns: c, using: &rng)
        var g = Matrix<T>(rows: c, columns: p)
        var z2 = z
        let flops = 2.0 * Double(2 * b * c * p)
        let shapes: [(String, () throws -> Void)] = [
            ("L = Z Uᵀ (NT)", { try BLAS.gemm(z, u, transposeB: true, into: &l) }),
            ("G = Nᵀ Z (TN)", { try BLAS.gemm(nmat, transposeA: true, z, into: &g) }),
            ("Z += N U (NN)", { try BLAS.gemm(nmat, u, beta: 1, into: &z2) }),
        ]
        for (name, body) in shapes {
            var times = [Double]()
            for _ in 0..<9 { times.append(try seconds(body)) }
            print(String(format: "%@ c=%d: %.2f ms, %.1f GFLOP/s", name, c, median(times) * 1e3, flops / median(times) / 1e9))
        }
    }
    return []
}
