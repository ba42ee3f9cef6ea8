import InvertNN

/// `coupling`: coupling layers (MLP conditioner with one hidden layer of 256) against the GEMMs
/// of their own MLP (`MLPReference`): forward, and forward+backward as a taped training step runs
/// it (a retaining forward, then `forwardBackward`, so the conditioner is not recomputed).
/// - `AffineCoupling`: target (issue 5) forward+backward ≤ 1.2 × the MLP GEMMs.
/// - `SplineCoupling` (K = 8 bins, `(3K - 1)(D - d)` conditioner outputs): target (issue 18)
///   forward+backward ≤ 1.5 × the MLP GEMMs, stated at B = 1024, D = 64.
func couplingSuite<T: Scalar>(_ context: BenchmarkContext, _: T.Type) throws -> [BenchmarkRecord] {
    var records = [BenchmarkRecord]()
    var rng = SeededGenerator(seed: 4)
    let hidden = 256, bins = 8
    for n in context.featureSizes {
        for batch in context.batchSizes {
            let affine = try AffineCoupling<T>(features: n, hiddenSizes: [hidden], zeroInitializeLastLayer: false, using: &rng)
            let spline = try SplineCoupling<T>(
                features: n, hiddenSizes: [hidden], bins: bins, tailBound: T(3), zeroInitializeLastLayer: false, using: &rng)
            // The spline's inputs: N(0, 1), a few in the tails beyond B = 3 as in use.
            let cases: [(name: String, layer: any RetainingLayer<T>, outputsPerFeature: Int, target: (Int, Int) -> Double?)] = [
                ("AffineCoupling hidden=\(hidden)", affine, 2, { _, _ in 1.2 }),
                ("SplineCoupling bins=\(bins) hidden=\(hidden)", spline, 3 * bins - 1, { b, d in b == 1024 && d == 64 ? 1.5 : nil }),
            ]
            for (name, layer, outputsPerFeature, target) in cases {
                let d = n / 2
                let reference = MLPReference<T>(batch: batch, sizes: [d, hidden, outputsPerFeature * (n - d)], using: &rng)
                let x = Matrix<T>.randomNormal(rows: batch, columns: n, using: &rng)
                let dy = Matrix<T>.randomNormal(rows: batch, columns: n, using: &rng)
                let dld = [T](repeating: -1 / T(batch), count: batch)
                for mode in ["forward", "forward+backward"] {
                    let body: () throws -> Void = mode == "forward"
                        ? { _ = try layer.forward(x) }
                        : {
                            let y = try layer.forwardRetaining(x).output
                            _ = try layer.forwardBackward(input: x, output: y, outputGradient: dy, logAbsDetGradient: dld)
                        }
                    let timing = try interleavedMedians(
                        repeats: context.repeats, warmup: context.warmup, case: body,
                        reference: mode == "forward" ? reference.forward : reference.forwardBackward)
                    let pass = mode == "forward+backward" ? Targets.passNote(timing.ratio, target(batch, n)) : nil
                    records.append(context.record(
                        suite: "coupling", case: name, precision: T.self, batch: batch,
                        features: n, reflectors: nil, mode: mode, timing: timing,
                        flops: reference.forwardFlops * (mode == "forward" ? 1 : 3),
                        note: "reference = its own MLP GEMMs" + (pass.map { "; " + $0 } ?? "")))
                }
            }
        }
    }
    return records
}
