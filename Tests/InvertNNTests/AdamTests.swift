import Testing
import InvertNN

@Suite struct AdamTests {
    /// f(θ) = Σ_i w_i (θ_i - c_i)², gradient 2 w_i (θ_i - c_i).
    private func setGradient(_ p: Parameter<Double>, target: [Double], weights: [Double]) {
        let value = p.value.storage
        p.withUnsafeMutableGradient { g in for i in g.indices { g[i] = 2 * weights[i] * (value[i] - target[i]) } }
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
        try p.assignGradient(Matrix(row: [1e-3, -50, 7]))
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
        try p.assignGradient(Matrix(row: [3, 4]))
        try adam.update()
        let first = p.value.storage
        try p.assignGradient(Matrix(row: [9, 12]))
        try adam.update()
        #expect(abs(p.value.storage[0] - 2 * first[0]) <= 1e-12 && abs(p.value.storage[1] - 2 * first[1]) <= 1e-12)
    }

    @Test func fixedEntriesNeverMove() throws {
        let p = Parameter<Double>(name: "masked", value: Matrix(row: [1, 2, 3]), trainableMask: [true, false, true])
        let adam = try Adam(parameters: [p], learningRate: 0.5, weightDecay: 0.1)
        for _ in 0..<10 {
            try p.assignGradient(Matrix(row: [1, 1, -1]))
            try adam.update()
        }
        #expect(p.value.storage[1] == 2)
        #expect(p.value.storage[0] < 1 && p.value.storage[2] > 3)
    }

    /// The update loops are vectorized; every entry, in the vector body or in the tail, masked or
    /// not, must equal the scalar formula of Algorithm 1 (with AdamW decay) bit for bit.
    @Test(arguments: [1, 7, 8, 37, 1029])
    func everyEntryFollowsTheScalarFormulaExactly(count: Int) throws {
        func check<T: Scalar>(_: T.Type) throws {
            var generator = SeededGenerator(seed: UInt64(count))
            let start = (0..<count).map { _ in T(Double.random(in: -2...2, using: &generator)) }
            let mask = (0..<count).map { $0 % 5 != 3 }
            let plain = Parameter<T>(name: "plain", value: Matrix(row: start))
            let masked = Parameter<T>(name: "masked", value: Matrix(row: start), trainableMask: mask)
            let eta: T = 0.05, b1: T = 0.9, b2: T = 0.999, eps: T = 1e-8, decay: T = 0.01
            let adam = try Adam(parameters: [plain, masked], learningRate: eta, beta1: b1, beta2: b2, epsilon: eps, weightDecay: decay)
            var theta = start, m = [T](repeating: 0, count: count), v = m
            for t in 1...3 {
                // Gradients whose square is subnormal check the flush of the moments in every lane.
                let tiny = T.leastNormalMagnitude.squareRoot() / 2
                let g = (0..<count).map { i in i % 7 == 0 ? tiny : T(Double.random(in: -3...3, using: &generator)) }
                try plain.assignGradient(Matrix(row: g))
                try masked.assignGradient(Matrix(row: g))
                try adam.update()
                let stepScale = eta / (1 - T.pow(b1, T(t))), inverse2 = 1 / (1 - T.pow(b2, T(t)))
                for i in 0..<count {
                    var mi = b1 * m[i] + (1 - b1) * g[i]
                    var vi = b2 * v[i] + (1 - b2) * g[i] * g[i]
                    if abs(mi) < T.leastNormalMagnitude { mi = 0 }
                    if vi < T.leastNormalMagnitude { vi = 0 }
                    m[i] = mi
                    v[i] = vi
                    theta[i] = theta[i] - (stepScale * mi / ((vi * inverse2).squareRoot() + eps) + eta * decay * theta[i])
                }
            }
            #expect(plain.value.storage == theta)
            #expect(adam.moments.first[0] == m && adam.moments.second[0] == v)
            for i in 0..<count {
                #expect(masked.value.storage[i] == (mask[i] ? theta[i] : start[i]), "entry \(i) of \(count)")
                #expect(adam.moments.second[1][i] == (mask[i] ? v[i] : 0))
            }
        }
        try check(Float.self)
        try check(Double.self)
    }

    @Test func nonFiniteGradientThrowsAndChangesNothing() throws {
        let p = Parameter<Float>(name: "theta", value: Matrix(row: [1, 2]))
        let adam = try Adam(parameters: [p], learningRate: 0.1)
        try p.assignGradient(Matrix(row: [1, .nan]))
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
