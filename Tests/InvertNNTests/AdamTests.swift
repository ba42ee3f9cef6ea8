import Testing
import InvertNN

@Suite struct AdamTests {
    /// f(θ) = Σ_i w_i (θ_i - c_i)², gradient 2 w_i (θ_i - c_i).
    private func setGradient(_ p: Parameter<Double>, target: [Double], weights: [Double]) {
        for i in 0..<p.count { p.gradient.storage[i] = 2 * weights[i] * (p.value.storage[i] - target[i]) }
    }

    @Test func convergesOnAnIllConditionedQuadratic() throws {
        let target = [3.0, -2.0, 0.5, 10.0]
        let weights = [1.0, 100.0, 0.01, 5.0]
        let p = Parameter<Double>(name: "theta", value: Matrix(row: [0, 0, 0, 0]))
        let adam = try Adam(parameters: [p], learningRate: 0.1)
        for step in 0..<3000 {
            if step == 2000 { adam.learningRate = 0.01 }
            setGradient(p, target: target, weights: weights)
            try adam.update()
        }
        for i in 0..<4 { #expect(abs(p.value.storage[i] - target[i]) <= 1e-2, "θ[\(i)] = \(p.value.storage[i])") }
        #expect(adam.step == 3000)
    }

    @Test func firstStepIsTheLearningRateTimesTheSign() throws {
        // With bias correction, m̂ = g and v̂ = g² at t = 1, so the step is η·g/(|g| + ε).
        let p = Parameter<Double>(name: "theta", value: Matrix(row: [1, 1, 1]))
        p.gradient = Matrix(row: [1e-3, -50, 7])
        let adam = try Adam(parameters: [p], learningRate: 0.25, epsilon: 0)
        let norm = try adam.update()
        #expect(abs(norm - (1e-6 + 2500 + 49).squareRoot()) <= 1e-12)
        for (value, expected) in zip(p.value.storage, [0.75, 1.25, 0.75]) { #expect(abs(value - expected) <= 1e-12) }
    }

    @Test func clippingScalesTheGradientBeforeTheMoments() throws {
        // Two steps with gradients g then 3g: without clipping, m̂₂/√v̂₂ depends on the ratio;
        // with a tiny clip both steps use unit-norm gradients, so the second equals the first.
        let p = Parameter<Double>(name: "theta", value: Matrix(row: [0, 0]))
        let adam = try Adam(parameters: [p], learningRate: 0.1, epsilon: 0, maxGradientNorm: 1e-3)
        p.gradient = Matrix(row: [3, 4])
        try adam.update()
        let first = p.value.storage
        p.gradient = Matrix(row: [9, 12])
        try adam.update()
        #expect(abs(p.value.storage[0] - 2 * first[0]) <= 1e-12 && abs(p.value.storage[1] - 2 * first[1]) <= 1e-12)
    }

    @Test func fixedEntriesNeverMove() throws {
        let p = Parameter<Double>(name: "masked", value: Matrix(row: [1, 2, 3]), trainableMask: [true, false, true])
        let adam = try Adam(parameters: [p], learningRate: 0.5, weightDecay: 0.1)
        for _ in 0..<10 {
            p.gradient = Matrix(row: [1, 1, -1])
            try adam.update()
        }
        #expect(p.value.storage[1] == 2)
        #expect(p.value.storage[0] < 1 && p.value.storage[2] > 3)
    }

    @Test func nonFiniteGradientThrowsAndChangesNothing() throws {
        let p = Parameter<Float>(name: "theta", value: Matrix(row: [1, 2]))
        let adam = try Adam(parameters: [p], learningRate: 0.1)
        p.gradient = Matrix(row: [1, .nan])
        #expect(throws: InvertNNError.self) { try adam.update() }
        #expect(p.value.storage == [1, 2])
        #expect(adam.step == 0)
    }

    @Test func rejectsBadHyperParameters() {
        let p = Parameter<Double>(name: "theta", value: Matrix(row: [0]))
        #expect(throws: InvertNNError.self) { try Adam(parameters: [p], learningRate: 0) }
        #expect(throws: InvertNNError.self) { try Adam(parameters: [p], beta1: 1) }
        #expect(throws: InvertNNError.self) { try Adam(parameters: [p], maxGradientNorm: -1) }
    }
}
