import InvertNN

/// `svd`: the SVD-composed layer (two full Householder factors, a diagonal, a bias) against the
/// dense layer of the same shape: inference, forward and forward+backward (both factors'
/// reflectors nudged every step so nothing is reused across steps).
func svdSuite<T: Scalar>(_ context: BenchmarkContext, _: T.Type) throws -> [BenchmarkRecord] {
    var records = [BenchmarkRecord]()
    var rng = SeededGenerator(seed: 3)
    for n in context.featureSizes {
        for batch in context.batchSizes {
            let dense = DenseReference<T>(batch: batch, features: n, using: &rng)
            let layer = try InvertibleLinear<T>(features: n, using: &rng)
            // Both factors change, as in a training step: neither plan nor W can be reused.
            let nudgeU = ParameterNudge(layer.orthogonalU.reflectors, index: 1)
            let nudgeV = ParameterNudge(layer.orthogonalV.reflectors, index: 1)
            let nudge = { nudgeU(); nudgeV() }
            let x = dense.x, dy = dense.dy, zeros = [T](repeating: 0, count: batch)
            // The layer borrows its buffers from a pool, as a container lends it during a step.
            var pass = LayerContext<T>()
            pass.buffers = StepBuffers<T>()
            for mode in ["inference", "forward", "forward+backward"] {
                let body: () throws -> Void
                switch mode {
                case "inference": body = { _ = try layer.forward(x, context: &pass) }
                case "forward": body = { nudge(); _ = try layer.forward(x, context: &pass) }
                default:
                    body = {
                        nudge()
                        let y = try layer.forward(x, context: &pass).output
                        _ = try layer.forwardBackward(input: x, output: y, outputGradient: dy, logAbsDetGradient: zeros, context: &pass)
                    }
                }
                let reference: () throws -> Void = mode == "forward+backward" ? dense.forwardBackward : dense.forward
                let timing = try interleavedMedians(repeats: context.repeats, warmup: context.warmup, case: body, reference: reference)
                records.append(context.record(
                    suite: "svd", case: "InvertibleLinear m=n", precision: T.self, batch: batch, features: n, reflectors: n,
                    mode: mode, timing: timing,
                    flops: dense.forwardFlops * (mode == "forward+backward" ? 3 : 1),
                    note: Targets.passNote(timing.ratio, Targets.svd(mode: mode, batch: batch, features: n))))
            }
        }
    }
    records += try svdInitialization(context, T.self, features: context.featureSizes.max() ?? 784)
    return records
}

/// Issue 4's acceptance: initializing an `InvertibleLinear` from a random square matrix (SVD,
/// then both orthogonal factors turned into reflectors) against one LAPACK `gesdd` of the same
/// size. Target: ratio ≤ 1.5.
func svdInitialization<T: Scalar>(_ context: BenchmarkContext, _: T.Type, features n: Int) throws -> [BenchmarkRecord] {
    var rng = SeededGenerator(seed: 4)
    // A Gaussian matrix shifted by 2√n·I: random, but well conditioned enough for Float (a plain
    // Gaussian 784×784 has σ_min/σ_max ≈ 1e-4, numerically singular at n·ε in Float).
    var a = Matrix<T>.randomNormal(rows: n, columns: n, using: &rng)
    for i in 0..<n { a[i, i] += 2 * T(n).squareRoot() }
    let repeats = max(3, context.repeats / 2)
    let timing = try interleavedMedians(
        repeats: repeats, warmup: 1,
        case: { _ = try InvertibleLinear<T>(matrix: a) },
        reference: { _ = try LAPACK.svd(a) })
    return [context.record(
        suite: "svd", case: "init from matrix vs gesdd", precision: T.self, batch: 1, features: n, reflectors: n,
        mode: "inference", timing: timing, flops: 0,
        note: Targets.passNote(timing.ratio, 1.5))]
}
