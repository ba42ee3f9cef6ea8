import InvertNN

/// `coupling`: an affine coupling layer (MLP conditioner with one hidden layer of 256) against
/// the GEMMs of its own MLP (`MLPReference`): forward, and forward+backward as a taped training
/// step runs it (a retaining forward, then `forwardBackward`, so the conditioner is not
/// recomputed). Target (issue 5): forward+backward ≤ 1.2 × the MLP GEMMs. The `context=16` case
/// is the same layer conditioned on a 16-wide context (its conditioner reads `[x_a, c]`), against
/// its own, wider GEMMs: conditioning must cost no more than that width (ratio within 10% of the
/// unconditional case).
func couplingSuite<T: Scalar>(_ context: BenchmarkContext, _: T.Type) throws -> [BenchmarkRecord] {
    var records = [BenchmarkRecord]()
    var rng = SeededGenerator(seed: 4)
    let hidden = 256
    for n in context.featureSizes {
        for batch in context.batchSizes {
            for contextWidth in [0, 16] {
                let layer = try AffineCoupling<T>(
                    features: n, hiddenSizes: [hidden], zeroInitializeLastLayer: false, contextFeatures: contextWidth, using: &rng)
                let d = layer.conditioningRange.count
                let reference = MLPReference<T>(batch: batch, sizes: [d + contextWidth, hidden, 2 * (n - d)], using: &rng)
                let x = Matrix<T>.randomNormal(rows: batch, columns: n, using: &rng)
                let dy = Matrix<T>.randomNormal(rows: batch, columns: n, using: &rng)
                let dld = [T](repeating: -1 / T(batch), count: batch)
                var side = LayerContext<T>(
                    conditioning: contextWidth > 0 ? Matrix<T>.randomNormal(rows: batch, columns: contextWidth, using: &rng) : nil)
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
                    records.append(context.record(
                        suite: "coupling", case: "AffineCoupling hidden=\(hidden)" + (contextWidth > 0 ? " context=\(contextWidth)" : ""),
                        precision: T.self, batch: batch,
                        features: n, reflectors: nil, mode: mode, timing: timing,
                        flops: reference.forwardFlops * (mode == "forward" ? 1 : 3),
                        note: "reference = its own MLP GEMMs" + (mode == "forward+backward" ? "; " + (Targets.passNote(timing.ratio, 1.2) ?? "") : "")))
                }
            }
        }
    }
    return records
}
