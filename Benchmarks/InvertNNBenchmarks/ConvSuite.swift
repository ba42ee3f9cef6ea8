import InvertNN

/// `conv` (issue 16 item 6): the convolutional pieces of `--flow glow` at batch 64.
/// - A Glow coupling conditioner (``ConvNet``: 3×3 → ReLU → 1×1 → ReLU → 3×3 of width 64) at
///   both MNIST scales (`2 → 64 → 64 → 4` on 14×14, `4 → 64 → 64 → 8` on 7×7), forward and
///   forward+backward against the GEMMs it contains (``ConvReference``); target ≤ 1.3×.
/// - The whole multi-scale training step of ``FlowPresets/glow(channels:height:width:levels:steps:hiddenChannels:scaleBound:learnedPrior:context:seed:as:)``
///   on 1×28×28 (2 scales × 8 steps, width 64, 151,628 parameters): zero the gradients, the taped
///   NLL forward and backward, one Adam update; samples/s against the sum of its conditioners'
///   GEMM floors (the target: 1.5× the PyTorch Glow's ≈ 140 samples/s per thread).
func convSuite<T: Scalar>(_ context: BenchmarkContext, _: T.Type) throws -> [BenchmarkRecord] {
    var records = [BenchmarkRecord]()
    var rng = SeededGenerator(seed: 16)
    let batch = 64, width = 64
    let shapes: [(channels: Int, side: Int)] = [(4, 14), (8, 7)]
    var floors = [Int: ConvReference<T>]()
    for (c, side) in shapes {
        let net = try ConvNet<T>(inputChannels: c / 2, hiddenChannels: [width, width], outputChannels: c, height: side, width: side,
                                 using: &rng)
        // Non-zero last layer, so the backward is not special.
        for p in net.parameters { try p.assign(Matrix.randomNormal(rows: p.value.rows, columns: p.value.columns, standardDeviation: T(0.1), using: &rng)) }
        let reference = ConvReference<T>(
            batch: batch, pixels: side * side, layers: [(c / 2, width, 3), (width, width, 1), (width, c, 3)], using: &rng)
        floors[c] = reference
        let x = Matrix<T>.randomNormal(rows: batch, columns: net.inputFeatures, using: &rng)
        let dy = Matrix<T>.randomNormal(rows: batch, columns: net.outputFeatures, using: &rng)
        let buffers = StepBuffers<T>()  // as a coupling lends its conditioner during a step
        for mode in ["forward", "forward+backward"] {
            let timing = try interleavedMedians(
                repeats: context.repeats, warmup: context.warmup,
                case: mode == "forward"
                    ? { _ = try net.forward(x, buffers: buffers) }
                    : { _ = try net.backward(try net.forward(x, buffers: buffers), outputGradient: dy, buffers: buffers) },
                reference: mode == "forward" ? reference.forward : reference.forwardBackward)
            let pass = mode == "forward+backward" ? Targets.passNote(timing.ratio, 1.3) : nil
            records.append(context.record(
                suite: "conv", case: "ConvNet \(c / 2)→\(width)→\(width)→\(c) on \(side)×\(side)", precision: T.self, batch: batch,
                features: net.inputFeatures, reflectors: nil, mode: mode, timing: timing,
                flops: reference.forwardFlops * (mode == "forward" ? 1 : 3),
                note: "reference = its im2col GEMMs" + (pass.map { "; " + $0 } ?? "")))
        }
    }
    // The whole training step of the MNIST glow preset.
    let flow = try FlowPresets.glow(channels: 1, height: 28, width: 28, as: T.self)
    let adam = try Adam(parameters: flow.parameters, learningRate: 1e-4)
    // Logit-space pixels: roughly standard normal per feature after the ActNorm initialization.
    let images = Matrix<T>.randomNormal(rows: batch, columns: 784, using: &rng)
    _ = try flow.logProbability(images)  // the ActNorms' data-dependent initialization
    let step = {
        flow.zeroGradients()
        _ = try flow.accumulateNegativeLogLikelihoodGradient(images)
        _ = try adam.update()
    }
    let floor = { for _ in 0..<8 { try floors[4]!.forwardBackward(); try floors[8]!.forwardBackward() } }
    let timing = try interleavedMedians(repeats: context.repeats, warmup: context.warmup, case: step, reference: floor)
    records.append(context.record(
        suite: "conv", case: "glow 1×28×28, 2 scales × 8 steps, width 64 + Adam", precision: T.self, batch: batch, features: 784,
        reflectors: nil, mode: "train-step", timing: timing, flops: 3 * 8 * (floors[4]!.forwardFlops + floors[8]!.forwardFlops),
        note: "reference = the 16 coupling conditioners' GEMMs; target ≥ 210 samples/s (1.5 × PyTorch's ≈ 140 per thread)"))
    return records
}
