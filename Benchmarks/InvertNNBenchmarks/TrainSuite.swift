import Foundation
import InvertNN

/// One maximum-likelihood SGD step on a batch: `L = mean_i(½‖z_i‖² + (D/2) log 2π - Σ log-dets)`
/// with `z = model.inverse(x)`, backpropagated in tape mode (`inverseTaped` + `backward`) or in
/// rebuilding mode (`inverse` + `inverseBackward`), then `θ -= lr · dL/dθ`.
func trainStep<T: Scalar>(_ model: Sequential<T>, _ x: Matrix<T>, rebuilding: Bool, learningRate: T = 1e-3) throws -> T {
    let b = x.rows
    let result: LayerOutput<T>
    var tape: Sequential<T>.Tape? = nil
    if rebuilding {
        result = try model.inverse(x)
    } else {
        let taped = try model.inverseTaped(x)
        result = taped.0
        tape = taped.1
    }
    let z = result.output
    var dz = z
    let scale = 1 / T(b)
    var loss: T = 0
    for i in 0..<z.count { loss += z.storage[i] * z.storage[i] / 2 }
    dz.withUnsafeMutableBufferPointer { g in for i in g.indices { g[i] *= scale } }
    loss = loss / T(b) - result.logAbsDet.reduce(0, +) / T(b)
    let dld = [T](repeating: -scale, count: b)
    if let tape {
        _ = try model.backward(tape, outputGradient: dz, logAbsDetGradient: dld)
    } else {
        _ = try model.inverseBackward(input: x, output: z, outputGradient: dz, logAbsDetGradient: dld)
    }
    for p in model.parameters {
        p.withUnsafeMutableValue { v in
            p.withUnsafeMutableGradient { g in
                for k in 0..<v.count {
                    v[k] -= learningRate * g[k]
                    g[k] = 0
                }
            }
        }
    }
    return loss
}

/// `train`: whole SGD training steps, samples/s, against the GEMM floor of the same model
/// (each InvertibleLinear as a dense layer, each coupling as its MLP's GEMMs).
/// Models on 64 features: 4 × (InvertibleLinear, AffineCoupling [256]) at batch 128 in both
/// gradient modes, and the default `invertnn train` model with its Adam step (batch 32, 128, 1024;
/// permutation mixing at 32 and 128).
func trainSuite<T: Scalar>(_ context: BenchmarkContext, _: T.Type) throws -> [BenchmarkRecord] {
    var records = [BenchmarkRecord]()
    var rng = SeededGenerator(seed: 5)
    let n = 64, batch = 128
    let x = Matrix<T>.randomNormal(rows: batch, columns: n, using: &rng)

    var linearLayers = [any InvertibleLayer<T>]()
    var floor = [() throws -> Void](), floorFlops = 0.0
    for k in 0..<4 {
        linearLayers.append(try InvertibleLinear<T>(features: n, using: &rng))
        let dense = DenseReference<T>(batch: batch, features: n, using: &rng)
        floor.append(dense.forwardBackward)
        floorFlops += 3 * dense.forwardFlops
        linearLayers.append(try AffineCoupling<T>(
            features: n, hiddenSizes: [256], conditioningBlock: k % 2 == 0 ? .first : .second, using: &rng))
        let mlp = MLPReference<T>(batch: batch, sizes: [n / 2, 256, n], using: &rng)
        floor.append(mlp.forwardBackward)
        floorFlops += 3 * mlp.forwardFlops
    }
    let linearFlow = try Sequential(linearLayers)
    for rebuilding in [false, true] {
        let timing = try interleavedMedians(
            repeats: context.repeats, warmup: context.warmup,
            case: { _ = try trainStep(linearFlow, x, rebuilding: rebuilding) },
            reference: { for f in floor { try f() } })
        records.append(context.record(
            suite: "train", case: "4×(InvertibleLinear, AffineCoupling[256]) \(rebuilding ? "rebuilding" : "tape")",
            precision: T.self, batch: batch, features: n, reflectors: n, mode: "train-step", timing: timing,
            flops: floorFlops, note: "reference = the model's dense/MLP GEMM floor"))
    }

    // The default `invertnn train` model (FlowPresets.realNVP(features: 64): 8 × (InvertibleLinear,
    // AffineCoupling [256, 256])) and its whole training step: zero the gradients, the taped NLL
    // forward and backward, one Adam update; at the batch sizes of the PyTorch comparison
    // (PERFORMANCE.md), and with permutation mixing. The floor: each InvertibleLinear as a dense
    // layer (three GEMMs), each coupling as its MLP's GEMMs (a permutation has no GEMM).
    let modelBatches: [(mixing: FlowPresets.Mixing, batch: Int)] = context.quick
        ? [(.invertibleLinear, 128)]
        : [(.invertibleLinear, 32), (.invertibleLinear, 128), (.invertibleLinear, 1024), (.permutation, 32), (.permutation, 128)]
    for (mixing, modelBatch) in modelBatches {
        let flow = try FlowPresets.realNVP(features: 64, mixing: mixing, seed: 0, as: T.self)
        let adam = try Adam(parameters: flow.parameters, learningRate: 1e-4)
        var modelFloor = [() throws -> Void](), modelFlops = 0.0
        for _ in 0..<8 {
            if mixing == .invertibleLinear {
                let dense = DenseReference<T>(batch: modelBatch, features: n, using: &rng)
                modelFloor.append(dense.forwardBackward)
                modelFlops += 3 * dense.forwardFlops
            }
            let mlp = MLPReference<T>(batch: modelBatch, sizes: [n / 2, 256, 256, n], using: &rng)
            modelFloor.append(mlp.forwardBackward)
            modelFlops += 3 * mlp.forwardFlops
        }
        // Logit-space data like the preprocessed digits: roughly standard normal per feature.
        let modelInput = Matrix<T>.randomNormal(rows: modelBatch, columns: n, using: &rng)
        let step = {
            flow.zeroGradients()
            _ = try flow.accumulateNegativeLogLikelihoodGradient(modelInput)
            _ = try adam.update()
        }
        // Heap allocations of one step once the first steps have sized every buffer (the
        // executable interposes malloc and friends; see CAllocationCounter).
        let (allocations, allocatedBytes) = try allocationsAfterWarmUp(step)
        let timing = try interleavedMedians(
            repeats: context.repeats, warmup: context.warmup,
            case: step,
            reference: { for f in modelFloor { try f() } })
        let name = mixing == .invertibleLinear
            ? "default digits model 8×(InvertibleLinear, AffineCoupling[256,256]) + Adam"
            : "permutation digits model 8×(Permutation, AffineCoupling[256,256]) + Adam"
        records.append(context.record(
            suite: "train", case: name,
            precision: T.self, batch: modelBatch, features: n, reflectors: mixing == .invertibleLinear ? n : nil,
            mode: "train-step", timing: timing,
            flops: modelFlops, note: "the invertnn train step; reference = the model's GEMM floor; "
                + "heap allocations per step after the first: \(allocations) (\(allocatedBytes) bytes)"))
    }
    return records
}

