import Testing
@testable import InvertNN

/// The buffer reuse behind the allocation-free training step (`StepBuffers`, lent by the
/// container through `LayerContext.buffers`): storage is reused in place only when nobody else
/// holds it, results already returned never change, and a step computed in reused buffers equals
/// the same step computed in fresh ones.
@Suite struct WorkspaceTests {
    private func address<T>(_ a: [T]) -> UnsafeRawPointer? {
        a.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) }
    }

    /// Without a pool every buffer is new and nothing is kept.
    @Test func withoutPoolEveryBufferIsNew() {
        let owner = Parameter<Double>(name: "owner", value: Matrix(row: [0]))
        let buffers = LayerBuffers<Double>(nil, owner: owner)
        var first = buffers.filled(0, count: 5, with: 3)
        buffers.keep(0, first)
        let firstAddress = address(first)
        first[0] = 4
        let second = buffers.filled(0, count: 5, with: -1)
        #expect(address(second) != firstAddress)
        #expect(first == [4, 3, 3, 3, 3])
        #expect(second == [-1, -1, -1, -1, -1])
    }

    @Test func reusesOnlyUnsharedStorage() {
        let pool = StepBuffers<Double>()
        let owner = Parameter<Double>(name: "owner", value: Matrix(row: [0]))
        let workspace = LayerBuffers(pool, owner: owner)
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
        // Untouched slots start empty, and another owner's slot 0 is another buffer.
        #expect(workspace.take(1, count: 2).count == 2)
        let otherOwner = LayerBuffers(pool, owner: Parameter<Double>(name: "other", value: Matrix(row: [0])))
        let kept: [Double] = [1, 2, 3]
        workspace.keep(0, kept)
        otherOwner.keep(0, [9, 9, 9])
        #expect(pool.footprint.buffers == 2 && pool.footprint.entries == 6)
        #expect(address(otherOwner.take(0, count: 3)) != address(kept))
        #expect(address(workspace.take(0, count: 3)) == address(kept))
        pool.removeAll()
        #expect(pool.footprint.buffers == 0 && pool.footprint.entries == 0)
    }

    /// A list handed back to the pool is reused in place once the previous tape or trace holding
    /// it was dropped, and emptied before reuse; a list still held stays as it was.
    @Test func reusesListsOnlyWhenDropped() {
        let pool = StepBuffers<Double>()
        let owner = Parameter<Double>(name: "owner", value: Matrix(row: [0]))
        let workspace = LayerBuffers(pool, owner: owner)
        var list = workspace.takeList(0, capacity: 4)
        list.append(Matrix(row: [1, 2]))
        workspace.keepList(0, list)
        let held = list
        list = []
        var next = workspace.takeList(0, capacity: 4)
        #expect(next.isEmpty && next.capacity >= 4)
        next.append(Matrix(row: [3]))
        #expect(held.count == 1 && held[0].storage == [1, 2])
        workspace.keepList(0, next)
        next = []
        workspace.emptyList(0)
        #expect(workspace.takeList(0, capacity: 1).isEmpty)
    }

    /// Outputs and gradients returned earlier keep their values after later calls of the layer,
    /// in every layer whose hot path now writes into reused buffers.
    @Test(arguments: [(20, 12, false), (5, 40, false), (20, 12, true), (5, 40, true)])  // dense/materialized paths, then chained/blocked ones; without and with a pool
    func returnedResultsNeverChange(batch: Int, n: Int, pooled: Bool) throws {
        let pool = pooled ? StepBuffers<Double>() : nil
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
            var c = LayerContext<Double>()
            c.buffers = pool
            let y1 = try retaining?.forwardRetaining(x1, context: &c) ?? layer.forward(x1, context: &c)
            let z1 = try layer.inverse(y1.output, context: &c)
            let dx1 = try layer.forwardBackward(input: x1, output: y1.output, outputGradient: g, logAbsDetGradient: dld, context: &c)
            let dy1 = try layer.inverseBackward(input: y1.output, output: z1.output, outputGradient: g, logAbsDetGradient: dld, context: &c)
            let snapshot = [y1.output.storage, y1.logAbsDet, z1.output.storage, dx1.storage, dy1.storage].map { $0.map { $0 } }
            let y2 = try retaining?.forwardRetaining(x2, context: &c) ?? layer.forward(x2, context: &c)
            let z2 = try retaining?.inverseRetaining(y2.output, context: &c) ?? layer.inverse(y2.output, context: &c)
            _ = try layer.forwardBackward(input: x2, output: y2.output, outputGradient: g, logAbsDetGradient: dld, context: &c)
            _ = try layer.inverseBackward(input: y2.output, output: z2.output, outputGradient: g, logAbsDetGradient: dld, context: &c)
            let now = [y1.output.storage, y1.logAbsDet, z1.output.storage, dx1.storage, dy1.storage]
            #expect(now == snapshot, "\(layer.name): a result returned earlier changed")
            // And the second call computed the right thing in its (possibly reused) buffers.
            #expect(zip(z2.output.storage, x2.storage).allSatisfy { abs($0 - $1) <= 1e-12 * max(1, abs($1)) }, "\(layer.name)")
        }
        let mlp = try MLP<Double>(sizes: [4, 8, 3], activation: .tanh, zeroInitializeLastLayer: false, using: &rng)
        let trace = try mlp.forward(Matrix<Double>.randomNormal(rows: 5, columns: 4, using: &rng), buffers: pool)
        let gradient = try mlp.backward(trace, outputGradient: Matrix<Double>.randomNormal(rows: 5, columns: 3, using: &rng), buffers: pool)
        let kept = trace.layerInputs.map { $0.storage.map { $0 } } + [trace.output.storage.map { $0 }, gradient.storage.map { $0 }]
        let next = try mlp.forward(Matrix<Double>.randomNormal(rows: 5, columns: 4, using: &rng), buffers: pool)
        _ = try mlp.backward(next, outputGradient: Matrix<Double>.randomNormal(rows: 5, columns: 3, using: &rng), buffers: pool)
        #expect(trace.layerInputs.map(\.storage) + [trace.output.storage, gradient.storage] == kept)
    }

    /// The containers' own calls: a taped pass and its backward on `Sequential` (its
    /// ``Sequential/stepBuffers``) and a training step of `NormalizingFlow` (its step buffers)
    /// never change what an earlier call returned, and still compute the right thing.
    @Test func containersNeverOverwriteReturnedResults() throws {
        var rng = SeededGenerator(seed: 21)
        let flow = try FlowPresets.realNVP(features: 6, couplings: 2, hiddenSizes: [8], seed: 3, as: Double.self)
        let x1 = Matrix<Double>.randomNormal(rows: 9, columns: 6, using: &rng)
        let x2 = Matrix<Double>.randomNormal(rows: 9, columns: 6, using: &rng)
        let g = Matrix<Double>.randomNormal(rows: 9, columns: 6, using: &rng)
        let dld = [Double](repeating: 0.2, count: 9)
        let model = flow.transform
        // Sequential: taped forward, backward, and an untaped pass, twice.
        let (out1, tape1) = try model.forwardTaped(x1)
        let dx1 = try model.backward(tape1, outputGradient: g, logAbsDetGradient: dld)
        let snapshot = ([out1.output.storage, out1.logAbsDet, dx1.storage] + tape1.activations.map(\.storage)).map { $0.map { $0 } }
        let (out2, tape2) = try model.forwardTaped(x2)
        _ = try model.backward(tape2, outputGradient: g, logAbsDetGradient: dld)
        _ = try model.inverse(out2.output)
        #expect([out1.output.storage, out1.logAbsDet, dx1.storage] + tape1.activations.map(\.storage) == snapshot)
        #expect(try model.forward(x2).output.storage == out2.output.storage)
        // NormalizingFlow: the gradients one step returns survive the next step.
        let first = try flow.negativeLogLikelihoodGradients(x1)
        let kept = first.data.storage.map { $0 }
        let second = try flow.negativeLogLikelihoodGradients(x2)
        #expect(first.data.storage == kept)
        flow.stepBuffers.removeAll()
        let fresh = try flow.negativeLogLikelihoodGradients(x2)
        #expect(fresh.loss == second.loss && fresh.data.storage == second.data.storage)
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

/// Untaped passes and rebuilding mode keep nothing per layer: the per-layer pool is empty after
/// each pass and what the model keeps does not grow with depth, while a taped step keeps its
/// buffers (so that the next step allocates nothing).
@Suite struct StepBufferDepthTests {
    private func model(depth: Int) throws -> Sequential<Double> {
        var rng = SeededGenerator(seed: 31)
        var layers = [any InvertibleLayer<Double>]()
        for k in 0..<depth {
            layers.append(try InvertibleLinear<Double>(features: 6, using: &rng))
            layers.append(try AffineCoupling<Double>(
                features: 6, hiddenSizes: [8], conditioningBlock: k % 2 == 0 ? .first : .second, zeroInitializeLastLayer: false,
                using: &rng))
        }
        return try Sequential(layers)
    }

    @Test func rebuildingAndUntapedPassesKeepNothingPerLayer() throws {
        var rng = SeededGenerator(seed: 32)
        let x = Matrix<Double>.randomNormal(rows: 10, columns: 6, using: &rng)
        let g = Matrix<Double>.randomNormal(rows: 10, columns: 6, using: &rng)
        let dld = [Double](repeating: 0.1, count: 10)
        var kept = [[Int]]()
        for depth in [2, 8] {
            let flow = try model(depth: depth)
            let z = try flow.inverse(x).output
            _ = try flow.inverseBackward(input: x, output: z, outputGradient: g, logAbsDetGradient: dld)
            let y = try flow.forward(x).output
            _ = try flow.forwardBackward(input: x, output: y, outputGradient: g, logAbsDetGradient: dld)
            #expect(flow.layerBuffers.footprint.buffers == 0)
            kept.append([flow.stepBuffers.footprint.buffers, flow.stepBuffers.footprint.entries])
            // A taped step keeps every layer's buffers for the next one.
            let (out, tape) = try flow.inverseTaped(x)
            _ = try flow.backward(tape, outputGradient: out.output, logAbsDetGradient: dld)
            #expect(flow.stepBuffers.footprint.buffers > 4 * depth)
        }
        #expect(kept[0] == kept[1], "what untaped and rebuilding passes keep grows with depth: \(kept)")
    }
}

/// Rebuilding mode and untaped passes lend no buffers to the layers; a taped model with
/// `keepsBuffers = false` lends none either and empties its pool after the backward. Results are
/// the same either way.
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
            flow.stepBuffers.removeAll()
            flow.transform.stepBuffers.removeAll()
            return (losses, flow.parameters.map { $0.gradient.storage })
        }
        let kept = try run(keepsBuffers: true), released = try run(keepsBuffers: false)
        #expect(kept.0 == released.0)
        #expect(kept.1 == released.1)
    }
}
