import InvertNN

/// `shapes`: every GEMM shape and transpose layout of the default digits model (batch 32, 128,
/// 1024) and of the MNIST preset (batch 64), through the library's BLAS wrapper, against a
/// large square GEMM (`512³`) of the same precision in the same run.
///
/// An MLP layer `in → out` with weights `W [out, in]` runs `Z = X·Wᵀ` (NT) forward, and
/// `dX = G·W` (NN) and `dW += Gᵀ·X` (TN) backward; the InvertibleLinear's dense path is
/// `D → D` the same way. The record's ratio is the large GEMM's rate over the shape's rate
/// (seconds per flop, case over reference), so `1/ratio` is the fraction of the large-GEMM rate
/// the shape reaches; target (issue 19): ratio ≤ 1.25 (≥ 80% of that rate).
func gemmShapesSuite<T: Scalar>(_ context: BenchmarkContext, _: T.Type) throws -> [BenchmarkRecord] {
    var records = [BenchmarkRecord]()
    var rng = SeededGenerator(seed: 6)
    let large = 512
    let a = Matrix<T>.randomNormal(rows: large, columns: large, using: &rng)
    let b = Matrix<T>.randomNormal(rows: large, columns: large, using: &rng)
    var c = Matrix<T>(rows: large, columns: large)
    let largeFlops = 2 * Double(large * large * large)
    let reference = { try BLAS.gemm(a, b, into: &c) }

    // (model, batch, layer widths in → out)
    var models: [(String, Int, [(Int, Int)])] = []
    let digitsLayers = [(32, 256), (256, 256), (256, 64), (64, 64)]
    let mnistLayers = [(392, 512), (512, 512), (512, 784), (784, 784)]
    for batch in context.quick ? [128] : [32, 128, 1024] { models.append(("digits", batch, digitsLayers)) }
    if !context.quick { models.append(("mnist", 64, mnistLayers)) }

    for (model, batch, layers) in models {
        for (inputs, outputs) in layers {
            let x = Matrix<T>.randomNormal(rows: batch, columns: inputs, using: &rng)
            let w = Matrix<T>.randomNormal(rows: outputs, columns: inputs, using: &rng)
            let g = Matrix<T>.randomNormal(rows: batch, columns: outputs, using: &rng)
            var z = Matrix<T>(rows: batch, columns: outputs)
            var dx = Matrix<T>(rows: batch, columns: inputs)
            var dw = Matrix<T>(rows: outputs, columns: inputs)
            let flops = 2 * Double(batch * inputs * outputs)
            let cases: [(String, () throws -> Void)] = [
                ("NT Z = X·Wᵀ", { try BLAS.gemm(x, w, transposeB: true, into: &z) }),
                ("NN dX = G·W", { try BLAS.gemm(g, w, into: &dx) }),
                ("TN dW += Gᵀ·X", { try BLAS.gemm(g, transposeA: true, x, beta: 1, into: &dw) }),
            ]
            for (layout, body) in cases {
                let timing = try interleavedMedians(repeats: context.repeats, warmup: context.warmup, case: body, reference: reference)
                // Seconds per flop of the shape over those of the large GEMM.
                let perFlop = PairedTiming(
                    caseSeconds: timing.caseSeconds, referenceSeconds: timing.referenceSeconds,
                    ratio: timing.ratio * largeFlops / flops)
                let largeRate = largeFlops / timing.referenceSeconds / 1e9
                records.append(context.record(
                    suite: "shapes", case: "\(model) \(inputs)→\(outputs) \(layout)", precision: T.self, batch: batch,
                    features: inputs, reflectors: outputs, mode: layout.prefix(2).lowercased(), timing: perFlop, flops: flops,
                    note: String(format: "large %d³ GEMM %.1f GFLOP/s; fraction %.2f; ", large, largeRate, 1 / perFlop.ratio)
                        + (Targets.passNote(perFlop.ratio, 1.25) ?? "")))
            }
        }
    }
    return records
}
