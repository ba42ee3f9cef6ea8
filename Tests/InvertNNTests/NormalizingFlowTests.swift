import Testing
import InvertNN

@Suite struct NormalizingFlowTests {
    /// A small flow whose layers all have parameters, for gradient checks.
    static func tinyFlow(features: Int, seed: UInt64) throws -> NormalizingFlow<Double> {
        var rng = SeededGenerator(seed: seed)
        func diagonal() throws -> Diagonal<Double> {
            try Diagonal(features: features,
                         logScale: (0..<features).map { _ in 0.4 * rng.nextNormal(Double.self) },
                         bias: (0..<features).map { _ in rng.nextNormal(Double.self) })
        }
        return try NormalizingFlow(transform: Sequential([try diagonal(), try diagonal(), try diagonal()]))
    }

    @Test func logProbabilityKnownValue() throws {
        // Issue 2: scales [2, 0.5, 3], bias [0.1, 0.2, 0.3] over N(0, I): log p([2.1, 1.2, -2.7]) = -6.8554278883.
        let flow = try NormalizingFlow(transform: Sequential([try Diagonal<Double>(scales: [2, 0.5, 3], bias: [0.1, 0.2, 0.3])]))
        let logP = try flow.logProbability(Matrix(row: [2.1, 1.2, -2.7]))
        #expect(abs(logP[0] - -6.8554278883) <= 1e-9)
        #expect(abs(try flow.negativeLogLikelihood(Matrix(row: [2.1, 1.2, -2.7])) - 6.8554278883) <= 1e-9)
    }

    @Test func gradientMatchesFiniteDifferences() throws {
        let flow = try Self.tinyFlow(features: 3, seed: 21)
        var rng = SeededGenerator(seed: 4)
        let x = Matrix<Double>.randomNormal(rows: 5, columns: 3, standardDeviation: 2, using: &rng)
        flow.zeroGradients()
        let loss = try flow.accumulateNegativeLogLikelihoodGradient(x)
        #expect(abs(loss - (try flow.negativeLogLikelihood(x))) <= 1e-12)
        let h = 1e-6
        for parameter in flow.parameters {
            for k in 0..<parameter.count {
                let saved = parameter.value.storage[k]
                parameter.withUnsafeMutableValue { $0[k] = saved + h }
                let plus = try flow.negativeLogLikelihood(x)
                parameter.withUnsafeMutableValue { $0[k] = saved - h }
                let minus = try flow.negativeLogLikelihood(x)
                parameter.withUnsafeMutableValue { $0[k] = saved }
                let numeric = (plus - minus) / (2 * h)
                #expect(abs(numeric - parameter.gradient.storage[k]) <= 1e-6 * max(1, abs(numeric)),
                        "\(parameter.name)[\(k)]: analytic \(parameter.gradient.storage[k]) vs numeric \(numeric)")
            }
        }
        // Gradients accumulate: a second call doubles them.
        let once = flow.parameters.map { $0.gradient.storage }
        _ = try flow.accumulateNegativeLogLikelihoodGradient(x)
        for (p, g) in zip(flow.parameters, once) {
            for k in 0..<p.count { #expect(abs(p.gradient.storage[k] - 2 * g[k]) <= 1e-12 * max(1, abs(g[k]))) }
        }
    }

    @Test func maximumLikelihoodKnownValue() throws {
        // Issue 2: data [1, 3, 5, 3] with a diagonal+bias layer reaches NLL ≤ 1.7656 nats/sample;
        // the optimum is N(3, 2): ½·log(2π·2) + ½ = 1.7655121235 at scale √2, shift 3.
        let layer = try Diagonal<Double>(features: 1)
        let flow = try NormalizingFlow(transform: Sequential([layer]))
        let data = try Matrix<Double>(rows: 4, columns: 1, storage: [1, 3, 5, 3])
        let adam = try Adam(parameters: flow.parameters, learningRate: 0.05)
        let steps = 3000
        for step in 0..<steps {
            adam.learningRate = LearningRateSchedule.cosine(finalFraction: 0.001, warmupSteps: 0)
                .rate(base: 0.05, step: step, totalSteps: steps)
            flow.zeroGradients()
            _ = try flow.accumulateNegativeLogLikelihoodGradient(data)
            try adam.update()
        }
        let nll = try flow.negativeLogLikelihood(data)
        #expect(nll <= 1.7656)
        #expect(nll >= 1.7655121235 - 1e-10)
        #expect(abs(Double.exp(layer.logScale.value[0, 0]) - 2.0.squareRoot()) <= 1e-3)
        #expect(abs(layer.bias!.value[0, 0] - 3) <= 1e-3)
    }

    @Test func samplingIsSeededAndMatchesTheTransform() throws {
        let flow = try Self.tinyFlow(features: 4, seed: 2)
        var a = SeededGenerator(seed: 8), b = SeededGenerator(seed: 8)
        let x = try flow.sample(count: 6, using: &a)
        #expect(x.shape == [6, 4])
        let z = StandardNormal<Double>(features: 4).sample(count: 6, temperature: 1, using: &b)
        #expect(try (flow.transform.forward(z).output - x).maxAbs <= 1e-12)
        // Encoding returns the latent.
        #expect(try (flow.encode(x).output - z).maxAbs <= 1e-12)
        #expect(throws: InvertNNError.self) { try flow.sample(count: 0, using: &a) }
        #expect(throws: InvertNNError.self) { try flow.sample(count: 2, temperature: 0, using: &a) }
    }

    /// Above 8192 samples the transform runs in chunks (bounded memory); the result is the
    /// transform of the same latent draws, and the chunk boundaries do not show.
    @Test func largeSamplesRunInChunks() throws {
        let flow = try Self.tinyFlow(features: 4, seed: 3)
        var a = SeededGenerator(seed: 9), b = SeededGenerator(seed: 9)
        let count = 2 * 8192 + 7
        let x = try flow.sample(count: count, temperature: 0.8, using: &a)
        #expect(x.shape == [count, 4])
        let z = StandardNormal<Double>(features: 4).sample(count: count, temperature: 0.8, using: &b)
        let whole = try flow.transform.forward(z).output
        #expect(try (whole - x).maxAbs <= 1e-12 * max(1, whole.maxAbs))
        #expect(x.rows(8190..<8196) != x.rows(8196..<8202))  // no repeated or stale chunk
    }

    @Test func rejectsMismatchedBase() throws {
        let transform = try Sequential<Double>([try Diagonal(features: 3)])
        #expect(throws: InvertNNError.self) { try NormalizingFlow(base: StandardNormal(features: 2), transform: transform) }
        let flow = try NormalizingFlow(transform: transform)
        #expect(throws: InvertNNError.self) { try flow.logProbability(Matrix(rows: 2, columns: 4)) }
    }
}
