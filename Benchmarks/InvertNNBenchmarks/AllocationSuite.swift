import CAllocationCounter
import InvertNN

/// `allocations` (not part of `all`; prints a Markdown table, no JSON records): the heap
/// allocations of one training call after two warm-up calls, per training path. Counted by
/// interposing malloc and friends in this executable (target `CAllocationCounter`), on this thread.
/// Each call first changes a parameter in place, as an optimizer step would, so every cache
/// derived from the parameters is rebuilt.
func allocationSuite<T: Scalar>(_: BenchmarkContext, _: T.Type) throws {
    var rng = SeededGenerator(seed: 1)
    print("| path | precision | allocations | bytes |\n| --- | --- | ---: | ---: |")
    func report(_ label: String, _ body: () throws -> Void) rethrows {
        let (count, bytes) = try allocationsAfterWarmUp(body)
        print("| \(label) | \(T.self == Float.self ? "float" : "double") | \(count) | \(bytes) |")
    }
    for (b, n) in [(256, 256), (64, 256), (1024, 784)] {
        let x = Matrix<T>.randomNormal(rows: b, columns: n, using: &rng)
        let g = Matrix<T>.randomNormal(rows: b, columns: n, using: &rng)
        let dld = [T](repeating: 0.1, count: b)
        // A layer called on its own borrows its buffers from a pool the caller owns, as a
        // container's taped pass lends its own.
        var context = LayerContext<T>()
        context.buffers = StepBuffers<T>()
        let householder = try Householder<T>(features: n, using: &rng)
        try report("Householder B=\(b) n=\(n): taped forward + backward") {
            householder.reflectors.withUnsafeMutableValue { $0[1] += 1e-3 }
            let y = try householder.forwardRetaining(x, context: &context).output
            _ = try householder.forwardBackward(input: x, output: y, outputGradient: g, logAbsDetGradient: dld, context: &context)
        }
        try report("Householder B=\(b) n=\(n): inverse + backward") {
            householder.reflectors.withUnsafeMutableValue { $0[1] += 1e-3 }
            let z = try householder.inverse(x, context: &context).output
            _ = try householder.inverseBackward(input: x, output: z, outputGradient: g, logAbsDetGradient: dld, context: &context)
        }
        let linear = try InvertibleLinear<T>(features: n, using: &rng)
        try report("InvertibleLinear B=\(b) n=\(n): forward + backward") {
            linear.orthogonalU.reflectors.withUnsafeMutableValue { $0[1] += 1e-3 }
            let y = try linear.forward(x, context: &context).output
            _ = try linear.forwardBackward(input: x, output: y, outputGradient: g, logAbsDetGradient: dld, context: &context)
        }
        try report("InvertibleLinear B=\(b) n=\(n): inverse + backward") {
            linear.orthogonalU.reflectors.withUnsafeMutableValue { $0[1] += 1e-3 }
            let z = try linear.inverse(x, context: &context).output
            _ = try linear.inverseBackward(input: x, output: z, outputGradient: g, logAbsDetGradient: dld, context: &context)
        }
    }
    // Whole steps: the default digits model (and with permutation mixing), and 4 × (InvertibleLinear, AffineCoupling [256]) in
    // both gradient modes, each with an Adam update.
    let digits = try FlowPresets.realNVP(features: 64, seed: 0, as: T.self)
    let digitsAdam = try Adam(parameters: digits.parameters, learningRate: 1e-4)
    let batch = Matrix<T>.randomNormal(rows: 128, columns: 64, using: &rng)
    try report("default digits model, B=128: NLL step + Adam") {
        digits.zeroGradients()
        _ = try digits.accumulateNegativeLogLikelihoodGradient(batch)
        try digitsAdam.update()
    }
    let permuted = try FlowPresets.realNVP(features: 64, mixing: .permutation, seed: 0, as: T.self)
    let permutedAdam = try Adam(parameters: permuted.parameters, learningRate: 1e-4)
    try report("permutation digits model, B=128: NLL step + Adam") {
        permuted.zeroGradients()
        _ = try permuted.accumulateNegativeLogLikelihoodGradient(batch)
        try permutedAdam.update()
    }
    var layers = [any InvertibleLayer<T>]()
    for k in 0..<4 {
        layers.append(try InvertibleLinear<T>(features: 64, using: &rng))
        layers.append(try AffineCoupling<T>(
            features: 64, hiddenSizes: [256], conditioningBlock: k % 2 == 0 ? .first : .second, using: &rng))
    }
    let flow = try NormalizingFlow(transform: try Sequential(layers))
    let adam = try Adam(parameters: flow.parameters, learningRate: 1e-4)
    let dz = Matrix<T>.randomNormal(rows: 128, columns: 64, using: &rng)
    let dld = [T](repeating: 0.1, count: 128)
    try report("4×(InvertibleLinear, AffineCoupling[256]), B=128: tape step + Adam") {
        flow.zeroGradients()
        _ = try flow.accumulateNegativeLogLikelihoodGradient(batch)
        try adam.update()
    }
    try report("4×(InvertibleLinear, AffineCoupling[256]), B=128: rebuilding step + Adam") {
        flow.zeroGradients()
        let z = try flow.transform.inverse(batch).output
        _ = try flow.transform.inverseBackward(input: batch, output: z, outputGradient: dz, logAbsDetGradient: dld)
        try adam.update()
    }
}

/// The heap allocations (calls, bytes) of the third call of `body` on this thread: the first two
/// size every reused buffer.
func allocationsAfterWarmUp(_ body: () throws -> Void) rethrows -> (count: Int, bytes: Int) {
    try body()
    try body()
    invertnn_allocation_count_begin()
    try body()
    var bytes = 0
    let count = invertnn_allocation_count_end(&bytes)
    return (count, bytes)
}
