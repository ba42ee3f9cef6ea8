import InvertNN

/// Changes one learnable reflector entry back and forth, as an optimizer step would, so that
/// the next call cannot reuse a cached W (the "training" modes).
final class ParameterNudge<T: Scalar> {
    let parameter: Parameter<T>
    let index: Int
    var up = true
    init(_ parameter: Parameter<T>, index: Int) { self.parameter = parameter; self.index = index }
    func callAsFunction() {
        let step = up ? T(1e-3) : T(-1e-3)
        parameter.withUnsafeMutableValue { $0[index] += step }
        up.toggle()
    }
}

/// `householder`: the Householder layer (m = n, trapezoidal, with bias) against the dense layer
/// of the same shape, in inference (cached W), forward and forward+backward (W rebuilt every
/// step), plus m ≤ n/4 at B = 1024 on the largest n, and blocked vs a GEMV/GER loop.
func householderSuite<T: Scalar>(_ context: BenchmarkContext, _: T.Type) throws -> [BenchmarkRecord] {
    var records = [BenchmarkRecord]()
    var rng = SeededGenerator(seed: 2)
    func measure(
        _ name: String, _ layer: Householder<T>, _ dense: DenseReference<T>, mode: String, batch: Int, n: Int, m: Int
    ) throws {
        let nudge = ParameterNudge(layer.reflectors, index: 1)
        let x = dense.x, dy = dense.dy, zeros = [T](repeating: 0, count: batch)
        // The layer borrows its buffers from a pool, as a container lends it during a step.
        var pass = LayerContext<T>()
        pass.buffers = StepBuffers<T>()
        let body: () throws -> Void
        switch mode {
        case "inference":
            _ = try layer.matrix()
            body = { _ = try layer.forward(x, context: &pass) }
        case "forward":
            body = { nudge(); _ = try layer.forward(x, context: &pass) }
        default:
            // As a taped training step runs it (Sequential.forwardTaped): the retaining forward,
            // which keeps the block outputs on the blocked path, then the backward.
            body = {
                nudge()
                let y = try layer.forwardRetaining(x, context: &pass).output
                _ = try layer.forwardBackward(input: x, output: y, outputGradient: dy, logAbsDetGradient: zeros, context: &pass)
            }
        }
        let reference: () throws -> Void = mode == "forward+backward" ? dense.forwardBackward : dense.forward
        let timing = try interleavedMedians(repeats: context.repeats, warmup: context.warmup, case: body, reference: reference)
        let ratio = timing.ratio
        records.append(context.record(
            suite: "householder", case: name, precision: T.self, batch: batch, features: n, reflectors: m, mode: mode,
            timing: timing,
            flops: dense.forwardFlops * (mode == "forward+backward" ? 3 : 1),
            note: Targets.passNote(ratio, Targets.householder(mode: mode, batch: batch, features: n, reflectors: m))))
    }
    for n in context.featureSizes {
        for batch in context.batchSizes {
            let dense = DenseReference<T>(batch: batch, features: n, using: &rng)
            let layer = try Householder<T>(features: n, using: &rng)
            for mode in ["inference", "forward", "forward+backward"] {
                try measure("m=n", layer, dense, mode: mode, batch: batch, n: n, m: n)
            }
        }
    }
    // Few reflectors, B = 1024, the largest n.
    if let n = context.featureSizes.max(), context.batchSizes.contains(1024) {
        let dense = DenseReference<T>(batch: 1024, features: n, using: &rng)
        for m in [16, 64, 196] where 4 * m <= n {
            let layer = try Householder<T>(features: n, reflectors: m, using: &rng)
            try measure("m<n", layer, dense, mode: "forward", batch: 1024, n: n, m: m)
            try measure("m<n", layer, dense, mode: "forward+backward", batch: 1024, n: n, m: m)
        }
    }
    // Blocked compact WY against applying the reflectors one by one (GEMV + GER per reflector,
    // the PyTorch libraries' way), forward, m = n ≥ 256, at the smallest batch.
    if let batch = context.batchSizes.min() {
        for n in context.featureSizes where n >= 256 {
            let layer = try Householder<T>(features: n, using: &rng)
            layer.strategy = .blocked
            let x = Matrix<T>.randomNormal(rows: batch, columns: n, using: &rng)
            let units = unitRows(layer.reflectors.value)
            var work = x
            var a = [T](repeating: 0, count: batch)
            let nudge = ParameterNudge(layer.reflectors, index: 1)
            var pass = LayerContext<T>()
            pass.buffers = StepBuffers<T>()
            let loop: () -> Void = {
                work.withUnsafeMutableBufferPointer { pw in
                    units.withUnsafeBufferPointer { pu in
                        a.withUnsafeMutableBufferPointer { pa in
                            for i in stride(from: n - 1, through: 0, by: -1) {
                                let u = pu.baseAddress! + i * n
                                T._gemv(transpose: false, m: batch, n: n, alpha: 1, a: pw.baseAddress!, lda: n,
                                        x: u, incx: 1, beta: 0, y: pa.baseAddress!, incy: 1)
                                T._ger(m: batch, n: n, alpha: -2, x: pa.baseAddress!, incx: 1, y: u, incy: 1,
                                       a: pw.baseAddress!, lda: n)
                            }
                        }
                    }
                }
            }
            let timing = try interleavedMedians(
                repeats: context.repeats, warmup: context.warmup,
                case: { nudge(); _ = try layer.forward(x, context: &pass) }, reference: loop)
            records.append(context.record(
                suite: "householder", case: "blocked-vs-gemv-ger-loop", precision: T.self, batch: batch, features: n,
                reflectors: n, mode: "forward", timing: timing, flops: 2 * Double(batch * n * n),
                note: "reference = reflector-by-reflector GEMV+GER loop; speed-up \(String(format: "%.1f", 1 / timing.ratio))x; "
                    + (Targets.passNote(timing.ratio, 0.4) ?? "")))
        }
    }
    return records
}

/// The normalized rows of `v` (zero rows stay zero).
func unitRows<T: Scalar>(_ v: Matrix<T>) -> [T] {
    var out = v.storage
    for i in 0..<v.rows {
        var s: T = 0
        for j in 0..<v.columns { s += out[i * v.columns + j] * out[i * v.columns + j] }
        let inv = s > 0 ? 1 / s.squareRoot() : 0
        for j in 0..<v.columns { out[i * v.columns + j] *= inv }
    }
    return out
}
