import InvertNN

/// `svd`: the SVD-composed layer (two full Householder factors, a diagonal, a bias) against the
/// dense layer of the same shape: inference, forward and forward+backward (parameters nudged
/// every step so nothing is reused across steps).
func svdSuite<T: Scalar>(_ context: BenchmarkContext, _: T.Type) throws -> [BenchmarkRecord] {
    var records = [BenchmarkRecord]()
    var rng = SeededGenerator(seed: 3)
    for n in context.featureSizes {
        for batch in context.batchSizes {
            let dense = DenseReference<T>(batch: batch, features: n, using: &rng)
            let layer = try InvertibleLinear<T>(features: n, using: &rng)
            let nudge = ParameterNudge(layer.orthogonalU.reflectors, index: 1)
            let x = dense.x, dy = dense.dy, zeros = [T](repeating: 0, count: batch)
            for mode in ["inference", "forward", "forward+backward"] {
                let body: () throws -> Void
                switch mode {
                case "inference": body = { _ = try layer.forward(x) }
                case "forward": body = { nudge(); _ = try layer.forward(x) }
                default:
                    body = {
                        nudge()
                        let y = try layer.forward(x).output
                        _ = try layer.forwardBackward(input: x, output: y, outputGradient: dy, logAbsDetGradient: zeros)
                    }
                }
                let reference: () throws -> Void = mode == "forward+backward" ? dense.forwardBackward : dense.forward
                let (t, r) = try interleavedMedians(repeats: context.repeats, warmup: context.warmup, case: body, reference: reference)
                records.append(context.record(
                    suite: "svd", case: "InvertibleLinear m=n", precision: T.self, batch: batch, features: n, reflectors: n,
                    mode: mode, seconds: t, referenceSeconds: r,
                    flops: dense.forwardFlops * (mode == "forward+backward" ? 3 : 1),
                    note: Targets.passNote(t / r, Targets.svd(mode: mode, batch: batch, features: n))))
            }
        }
    }
    return records
}
