import Testing
@testable import InvertNN

/// The buffer reuse behind the allocation-free training step (`Workspace`): storage is reused
/// only when nobody else holds it, results already returned never change, and a step computed
/// in reused buffers equals the same step computed in fresh ones.
@Suite struct WorkspaceTests {
    private func address<T>(_ a: [T]) -> UnsafeRawPointer? {
        a.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) }
    }

    /// The probe may answer "shared" for a lone array (unoptimized builds keep extra
    /// references; that only costs an allocation), but never "unique" for a shared one.
    @Test func uniquenessProbe() {
        var a = [Double](repeating: 1, count: 8)
        let b = a
        let shared = a.hasUniqueStorage()
        #expect(!shared)
        #expect(b.count == 8)
        var empty = [Double]()
        let emptyUnique = empty.hasUniqueStorage()
        #expect(!emptyUnique)
    }

    @Test func reusesOnlyUnsharedStorage() {
        let workspace = Workspace<Double>(slots: 2)
        var first = workspace.filled(0, count: 5, with: 3)
        let firstAddress = address(first)
        workspace.keep(0, first)
        first = []
        // Nobody else holds the buffer: the same storage comes back.
        var second = workspace.take(0, count: 5)
        #expect(address(second) == firstAddress)
        second[0] = 7
        workspace.keep(0, second)
        // The caller still holds `second`: the next buffer is new and writing it leaves `second` alone.
        var third = workspace.filled(0, count: 5, with: -1)
        #expect(address(third) != address(second))
        #expect(second == [7, 3, 3, 3, 3])
        #expect(third == [-1, -1, -1, -1, -1])
        // Another size never reuses.
        workspace.keep(0, third)
        third = []
        let other = workspace.take(0, count: 6)
        #expect(other.count == 6)
        // Untouched slots start empty.
        #expect(workspace.take(1, count: 2).count == 2)
    }

    /// Outputs and gradients returned earlier keep their values after later calls of the layer,
    /// in every layer whose hot path now writes into reused buffers.
    @Test(arguments: [(20, 12), (5, 40)])  // dense/materialized paths, then chained/blocked ones
    func returnedResultsNeverChange(batch: Int, n: Int) throws {
        var rng = SeededGenerator(seed: 11)
        let blocked = try Householder<Double>(features: n, using: &rng)
        blocked.strategy = .blocked
        let layers: [any InvertibleLayer<Double>] = [
            try AffineCoupling<Double>(features: n, hiddenSizes: [16], zeroInitializeLastLayer: false, using: &rng),
            try InvertibleLinear<Double>(features: n, using: &rng),
            try Householder<Double>(features: n, using: &rng),
            blocked,
            try Diagonal<Double>(features: n, logScale: (0..<n).map { 0.1 * Double($0 % 5) - 0.2 }, bias: (0..<n).map { Double($0) / 10 }),
            try Permutation<Double>.random(features: n, using: &rng),
        ]
        for layer in layers {
            let x1 = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
            let x2 = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
            let g = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
            let dld = [Double](repeating: 0.3, count: batch)
            let retaining = layer as? any RetainingLayer<Double>
            let y1 = try retaining?.forwardRetaining(x1) ?? layer.forward(x1)
            let z1 = try layer.inverse(y1.output)
            let dx1 = try layer.forwardBackward(input: x1, output: y1.output, outputGradient: g, logAbsDetGradient: dld)
            let dy1 = try layer.inverseBackward(input: y1.output, output: z1.output, outputGradient: g, logAbsDetGradient: dld)
            let snapshot = [y1.output.storage, y1.logAbsDet, z1.output.storage, dx1.storage, dy1.storage].map { $0.map { $0 } }
            let y2 = try retaining?.forwardRetaining(x2) ?? layer.forward(x2)
            let z2 = try retaining?.inverseRetaining(y2.output) ?? layer.inverse(y2.output)
            _ = try layer.forwardBackward(input: x2, output: y2.output, outputGradient: g, logAbsDetGradient: dld)
            _ = try layer.inverseBackward(input: y2.output, output: z2.output, outputGradient: g, logAbsDetGradient: dld)
            let now = [y1.output.storage, y1.logAbsDet, z1.output.storage, dx1.storage, dy1.storage]
            #expect(now == snapshot, "\(layer.name): a result returned earlier changed")
            // And the second call computed the right thing in its (possibly reused) buffers.
            #expect(zip(z2.output.storage, x2.storage).allSatisfy { abs($0 - $1) <= 1e-12 * max(1, abs($1)) }, "\(layer.name)")
        }
        let mlp = try MLP<Double>(sizes: [4, 8, 3], activation: .tanh, zeroInitializeLastLayer: false, using: &rng)
        let trace = try mlp.forward(Matrix<Double>.randomNormal(rows: 5, columns: 4, using: &rng))
        let kept = trace.layerInputs.map { $0.storage.map { $0 } } + [trace.output.storage.map { $0 }]
        _ = try mlp.forward(Matrix<Double>.randomNormal(rows: 5, columns: 4, using: &rng))
        #expect(trace.layerInputs.map(\.storage) + [trace.output.storage] == kept)
    }

    /// A training step whose buffers are all reused (the third one) gives bit for bit the loss,
    /// gradients and Adam update of the same step on a fresh copy of the model.
    @Test func reusedStepEqualsFreshStep() throws {
        func model() throws -> (NormalizingFlow<Double>, Adam<Double>) {
            let flow = try FlowPresets.realNVP(features: 10, couplings: 2, hiddenSizes: [16], seed: 4, as: Double.self)
            return (flow, try Adam(parameters: flow.parameters, learningRate: 1e-2))
        }
        var rng = SeededGenerator(seed: 12)
        let batches = (0..<3).map { _ in Matrix<Double>.randomNormal(rows: 16, columns: 10, using: &rng) }
        // One step: the NLL gradient (inverse direction) plus a forward-direction VJP with the
        // output itself as the upstream gradient (so both directions' buffers are exercised).
        func step(_ flow: NormalizingFlow<Double>, _ adam: Adam<Double>, _ x: Matrix<Double>) throws -> Double {
            flow.zeroGradients()
            let loss = try flow.accumulateNegativeLogLikelihoodGradient(x)
            let (out, tape) = try flow.transform.forwardTaped(x)
            _ = try flow.transform.backward(tape, outputGradient: out.output, logAbsDetGradient: out.logAbsDet)
            try adam.update()
            return loss
        }
        let (reused, reusedAdam) = try model()
        var reusedLosses = [Double]()
        for x in batches { reusedLosses.append(try step(reused, reusedAdam, x)) }
        // The same three steps, each on a model rebuilt from the previous values (fresh buffers).
        var (fresh, freshAdam) = try model()
        var freshLosses = [Double]()
        for (k, x) in batches.enumerated() {
            freshLosses.append(try step(fresh, freshAdam, x))
            if k < batches.count - 1 {
                let (next, nextAdam) = try model()
                for (p, q) in zip(next.parameters, fresh.parameters) { p.value = q.value }
                try nextAdam.restore(step: freshAdam.step, firstMoments: freshAdam.moments.first, secondMoments: freshAdam.moments.second)
                (fresh, freshAdam) = (next, nextAdam)
            }
        }
        #expect(reusedLosses == freshLosses)
        for (p, q) in zip(reused.parameters, fresh.parameters) {
            #expect(p.value == q.value, "\(p.name)")
            #expect(p.gradient == q.gradient, "\(p.name)")
        }
    }
}

/// Rebuilding mode and untaped passes release each layer's buffers; a taped model with
/// `keepsBuffers = false` releases them after its backward. Results are the same either way.
@Suite struct BufferReleaseTests {
    @Test func releasingGivesTheSameGradients() throws {
        func run(keepsBuffers: Bool) throws -> ([Double], [[Double]]) {
            let flow = try FlowPresets.realNVP(features: 10, couplings: 2, hiddenSizes: [16], seed: 5, as: Double.self)
            flow.transform.keepsBuffers = keepsBuffers
            var rng = SeededGenerator(seed: 13)
            var losses = [Double]()
            for _ in 0..<3 {
                let x = Matrix<Double>.randomNormal(rows: 12, columns: 10, using: &rng)
                flow.zeroGradients()
                losses.append(try flow.accumulateNegativeLogLikelihoodGradient(x))
                _ = try flow.logProbability(x)  // an untaped pass in between
            }
            flow.transform.releaseBuffers()
            return (losses, flow.parameters.map { $0.gradient.storage })
        }
        let kept = try run(keepsBuffers: true), released = try run(keepsBuffers: false)
        #expect(kept.0 == released.0)
        #expect(kept.1 == released.1)
    }
}
