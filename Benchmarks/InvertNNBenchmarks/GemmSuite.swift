import Foundation
import CReferenceGemm
import InvertNN

/// `gemm`: the library's BLAS wrapper against the same row-major GEMM called from C.
/// Target (issue 5): ≥ 0.95 of C's GFLOP/s for n ≥ 256, i.e. ratio ≤ 1/0.95.
func gemmSuite<T: Scalar>(_ context: BenchmarkContext, _: T.Type) throws -> [BenchmarkRecord] {
    var records = [BenchmarkRecord]()
    var rng = SeededGenerator(seed: 1)
    for n in context.featureSizes {
        for batch in context.batchSizes {
            let dense = DenseReference<T>(batch: batch, features: n, using: &rng)
            let wt = dense.w.transposed()
            var c = Matrix<T>(rows: batch, columns: n)
            let callC: () -> Void = {
                dense.x.storage.withUnsafeBufferPointer { a in
                    wt.storage.withUnsafeBufferPointer { b in
                        c.withUnsafeMutableBufferPointer { out in
                            if T.self == Float.self {
                                invertnn_reference_sgemm(
                                    Int32(batch), Int32(n), Int32(n),
                                    UnsafeRawPointer(a.baseAddress!).assumingMemoryBound(to: Float.self),
                                    UnsafeRawPointer(b.baseAddress!).assumingMemoryBound(to: Float.self),
                                    UnsafeMutableRawPointer(out.baseAddress!).assumingMemoryBound(to: Float.self))
                            } else {
                                invertnn_reference_dgemm(
                                    Int32(batch), Int32(n), Int32(n),
                                    UnsafeRawPointer(a.baseAddress!).assumingMemoryBound(to: Double.self),
                                    UnsafeRawPointer(b.baseAddress!).assumingMemoryBound(to: Double.self),
                                    UnsafeMutableRawPointer(out.baseAddress!).assumingMemoryBound(to: Double.self))
                            }
                        }
                    }
                }
            }
            var y = Matrix<T>(rows: batch, columns: n)
            let timing = try interleavedMedians(
                repeats: context.repeats, warmup: context.warmup,
                case: { try BLAS.gemm(dense.x, wt, into: &y) }, reference: callC)
            records.append(context.record(
                suite: "gemm", case: "wrapper-vs-C", precision: T.self, batch: batch, features: n, reflectors: nil,
                mode: "forward", timing: timing, flops: dense.forwardFlops,
                note: Targets.passNote(timing.ratio, n >= 256 ? 1 / 0.95 : nil)))
        }
    }
    return records
}
