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
    @Test func returnedResultsNeverChange() throws {
        var rng = SeededGenerator(seed: 11)
        let n = 12, batch = 20
        let layers: [any InvertibleLayer<Double>] = [
            try AffineCoupling<Double>(features: n, hiddenSizes: [16], zeroInitializeLastLayer: false, using: &rng),
            try InvertibleLinear<Double>(features: n, using: &rng),
            try Householder<Double>(features: n, using: &rng),
        ]
        for layer in layers {
            let x1 = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
            let x2 = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
            let g = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
            let dld = [Double](repeating: 0.3, count: batch)
            let y1 = try layer.forward(x1)
            let z1 = try layer.inverse(y1.output)
            let dx1 = try layer.forwardBackward(input: x1, output: y1.output, outputGradient: g, logAbsDetGradient: dld)
            let snapshot = (y1.output.storage.map { $0 }, y1.logAbsDet.map { $0 }, z1.output.storage.map { $0 }, dx1.storage.map { $0 })
            let y2 = try layer.forward(x2)
            _ = try layer.inverse(y2.output)
            _ = try layer.forwardBackward(input: x2, output: y2.output, outputGradient: g, logAbsDetGradient: dld)
            _ = try layer.inverseBackward(input: y2.output, output: x2, outputGradient: g, logAbsDetGradient: dld)
            #expect(y1.output.storage == snapshot.0, "\(layer.name) forward output changed")
            #expect(y1.logAbsDet == snapshot.1, "\(layer.name) log-det changed")
            #expect(z1.output.storage == snapshot.2, "\(layer.name) inverse output changed")
            #expect(dx1.storage == snapshot.3, "\(layer.name) input gradient changed")
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
            let flow = try FlowPresets.digits(features: 10, couplings: 2, hiddenSizes: [16], seed: 4, as: Double.self)
            return (flow, try Adam(parameters: flow.parameters, learningRate: 1e-2))
        }
        var rng = SeededGenerator(seed: 12)
        let batches = (0..<3).map { _ in Matrix<Double>.randomNormal(rows: 16, columns: 10, using: &rng) }
        let (reused, reusedAdam) = try model()
        var reusedLosses = [Double]()
        for x in batches {
            reused.zeroGradients()
            reusedLosses.append(try reused.accumulateNegativeLogLikelihoodGradient(x))
            try reusedAdam.update()
        }
        // The same three steps, each on a model rebuilt from the previous values (fresh buffers).
        var (fresh, freshAdam) = try model()
        var freshLosses = [Double]()
        for (k, x) in batches.enumerated() {
            fresh.zeroGradients()
            freshLosses.append(try fresh.accumulateNegativeLogLikelihoodGradient(x))
            try freshAdam.update()
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
