import InvertNN

/// `coupling`: coupling layers (MLP conditioner with one hidden layer of 256) against the GEMMs
/// of their own MLP (`MLPReference`): forward, and forward+backward as a taped training step runs
/// it (a retaining forward, then `forwardBackward`, so the conditioner is not recomputed).
/// - `AffineCoupling`: target (issue 5) forward+backward ≤ 1.2 × the MLP GEMMs. The `context=16`
///   case is the same layer conditioned on a 16-wide context (its conditioner reads `[x_a, c]`),
///   against its own, wider GEMMs: conditioning must cost no more than that width (ratio within
///   10% of the unconditional case).
/// - `MaskedAutoregressive` (affine MAF layer, MADE `D -> 256 -> 2D`): the density pass (`inverse`,
///   one MADE call) against the dense GEMMs of the MADE's shape; target (issue 18) ≤ 1.3× at
///   B = 1024, D = 64.
/// - `SplineCoupling` (K = 8 bins, `(3K - 1)(D - d)` conditioner outputs, B = 3): target
///   (issue 18) forward+backward ≤ 1.5 × the MLP GEMMs, stated at B = 1024, D = 64.
func couplingSuite<T: Scalar>(_ context: BenchmarkContext, _: T.Type) throws -> [BenchmarkRecord] {
    var records = [BenchmarkRecord]()
    var rng = SeededGenerator(seed: 4)
    let hidden = 256, bins = 8
    for n in context.featureSizes {
        for batch in context.batchSizes {
            let splineTarget: Double? = batch == 1024 && n == 64 ? 1.5 : nil
            let cases: [(name: String, layer: any RetainingLayer<T>, outputsPerFeature: Int, contextWidth: Int, target: Double?)] = [
                ("AffineCoupling hidden=\(hidden)",
                 try AffineCoupling<T>(features: n, hiddenSizes: [hidden], zeroInitializeLastLayer: false, using: &rng), 2, 0, 1.2),
                ("AffineCoupling hidden=\(hidden) context=16",
                 try AffineCoupling<T>(features: n, hiddenSizes: [hidden], zeroInitializeLastLayer: false, contextFeatures: 16, using: &rng),
                 2, 16, 1.2),
                ("SplineCoupling bins=\(bins) hidden=\(hidden)",
                 try SplineCoupling<T>(features: n, hiddenSizes: [hidden], bins: bins, tailBound: T(3), zeroInitializeLastLayer: false,
                                       using: &rng), 3 * bins - 1, 0, splineTarget),
            ]
            for (name, layer, outputsPerFeature, contextWidth, target) in cases {
                let d = n / 2
                let reference = MLPReference<T>(batch: batch, sizes: [d + contextWidth, hidden, outputsPerFeature * (n - d)], using: &rng)
                // N(0, 1) inputs: for the spline, a few fall in the tails beyond B = 3, as in use.
                let x = Matrix<T>.randomNormal(rows: batch, columns: n, using: &rng)
                let dy = Matrix<T>.randomNormal(rows: batch, columns: n, using: &rng)
                let dld = [T](repeating: -1 / T(batch), count: batch)
                var side = LayerContext<T>(
                    conditioning: contextWidth > 0 ? Matrix<T>.randomNormal(rows: batch, columns: contextWidth, using: &rng) : nil)
                // The layer borrows its buffers from a pool, as a container lends it during a step.
                side.buffers = StepBuffers<T>()
                for mode in ["forward", "forward+backward"] {
                    let body: () throws -> Void = mode == "forward"
                        ? { _ = try layer.forward(x, context: &side) }
                        : {
                            side.conditioningGradient = nil
                            let y = try layer.forwardRetaining(x, context: &side).output
                            _ = try layer.forwardBackward(input: x, output: y, outputGradient: dy, logAbsDetGradient: dld, context: &side)
                        }
                    let timing = try interleavedMedians(
                        repeats: context.repeats, warmup: context.warmup, case: body,
                        reference: mode == "forward" ? reference.forward : reference.forwardBackward)
                    let pass = mode == "forward+backward" ? Targets.passNote(timing.ratio, target) : nil
                    records.append(context.record(
                        suite: "coupling", case: name, precision: T.self, batch: batch,
                        features: n, reflectors: nil, mode: mode, timing: timing,
                        flops: reference.forwardFlops * (mode == "forward" ? 1 : 3),
                        note: "reference = its own MLP GEMMs" + (pass.map { "; " + $0 } ?? "")))
                }
            }
            // The MAF density pass (one MADE call and one transformer pass over all D features)
            // against the GEMMs of a dense MLP of the MADE's shape: the masks live inside the GEMMs.
            let maf = try AffineMaskedAutoregressive<T>(
                features: n, transformer: try AffineTransformer(scaleBound: 2), hiddenSizes: [hidden],
                order: MADE<T>.randomOrder(features: n, using: &rng), zeroInitializeLastLayer: false, using: &rng)
            let reference = MLPReference<T>(batch: batch, sizes: [n, hidden, 2 * n], using: &rng)
            let x = Matrix<T>.randomNormal(rows: batch, columns: n, using: &rng)
            var mafContext = LayerContext<T>()
            mafContext.buffers = StepBuffers<T>()
            let timing = try interleavedMedians(
                repeats: context.repeats, warmup: context.warmup, case: { _ = try maf.inverse(x, context: &mafContext) },
                reference: reference.forward)
            let pass = Targets.passNote(timing.ratio, batch == 1024 && n == 64 ? 1.3 : nil)
            records.append(context.record(
                suite: "coupling", case: "MaskedAutoregressive hidden=\(hidden)", precision: T.self, batch: batch,
                features: n, reflectors: nil, mode: "density", timing: timing, flops: reference.forwardFlops,
                note: "reference = the MADE's GEMMs (dense, same shape)" + (pass.map { "; " + $0 } ?? "")))
        }
    }
    return records
}
