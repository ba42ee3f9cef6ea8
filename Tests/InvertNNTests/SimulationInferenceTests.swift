import Testing
import InvertNN

/// The simulators of the simulation-based inference examples and the C2ST score, checked against
/// what they must be independently of their own formulas.
@Suite struct SimulationInferenceTests {
    /// Approximate Bayesian computation at a tolerance: θ of the joint draws whose x lands within
    /// `epsilon` of x_o follows p(θ | x_o) as epsilon → 0.
    static func abc(_ simulator: some Simulator, observation: [Double], epsilon: Double, draws: Int, seed: UInt64) -> [[Double]] {
        var rng = SeededGenerator(seed: seed)
        let (theta, x) = simulator.simulations(count: draws, using: &rng)
        var kept = [[Double]]()
        for i in 0..<draws {
            var distance = 0.0
            for j in 0..<x.columns { distance = max(distance, abs(x[i, j] - observation[j])) }
            if distance < epsilon { kept.append(theta.row(i)) }
        }
        return kept
    }

    @Test func gaussianLinearPosteriorMatchesRejectionFromTheJoint() throws {
        let task = try GaussianLinear(dimensions: 1)
        let kept = Self.abc(task, observation: [0.8], epsilon: 0.005, draws: 400_000, seed: 1)
        #expect(kept.count > 500)
        let mean = kept.map { $0[0] }.reduce(0, +) / Double(kept.count)
        let variance = kept.map { ($0[0] - mean) * ($0[0] - mean) }.reduce(0, +) / Double(kept.count - 1)
        // Analytic: mean 0.8 · 1/1.1 = 0.7273, variance 0.1/1.1 = 0.0909.
        #expect(abs(task.posteriorMean([0.8])[0] - 0.8 / 1.1) < 1e-15 && abs(task.posteriorVariance - 0.1 / 1.1) < 1e-15)
        let standardError = (task.posteriorVariance / Double(kept.count)).squareRoot()
        #expect(abs(mean - 0.8 / 1.1) < 4 * standardError, "ABC mean \(mean) from \(kept.count) draws")
        #expect(abs(variance / task.posteriorVariance - 1) < 0.15, "ABC variance \(variance)")
        var rng = SeededGenerator(seed: 2)
        let exact = try task.samplePosterior(count: 20_000, observation: [0.8], using: &rng)
        let logDensity = task.posteriorLogDensity(try Matrix([[0.8 / 1.1]]), observation: [0.8])[0]
        #expect(abs(logDensity + 0.5 * Double.log(2 * Double.pi * 0.1 / 1.1)) < 1e-12)
        let exactMean: Double = exact.storage.reduce(0, +) / 20_000
        #expect(abs(exactMean - 0.8 / 1.1) < 0.01)
    }

    @Test func twoMoonsRejectionSamplerAgreesWithTheSimulator() throws {
        let task = TwoMoons()
        var rng = SeededGenerator(seed: 3)
        let posterior = try task.samplePosterior(count: 4000, observation: [0, 0], using: &rng)
        // Every accepted θ puts x_o on the crescent: p = x_o - shift(θ) has p₁ > 0.25 and |p - (0.25, 0)| ≈ 0.1.
        let s = 1 / 2.0.squareRoot()
        var radii = [Double]()
        for i in 0..<posterior.rows {
            let t1 = posterior[i, 0], t2 = posterior[i, 1]
            let p1 = abs(t1 + t2) * s - 0.25, p2 = (t1 - t2) * s
            #expect(p1 > 0)
            radii.append((p1 * p1 + p2 * p2).squareRoot())
        }
        let meanRadius = radii.reduce(0, +) / Double(radii.count)
        #expect(abs(meanRadius - 0.1) < 0.003 && radii.allSatisfy { abs($0 - 0.1) < 0.06 }, "mean radius \(meanRadius)")
        // The same statistics from the simulator alone (ABC) agree: |θ₁ + θ₂| and θ₁ - θ₂.
        let kept = Self.abc(task, observation: [0, 0], epsilon: 0.01, draws: 2_000_000, seed: 4)
        #expect(kept.count > 300, "\(kept.count) ABC draws")
        func stats(_ rows: [[Double]]) -> (Double, Double) {
            (rows.map { abs($0[0] + $0[1]) }.reduce(0, +) / Double(rows.count),
             rows.map { abs($0[0] - $0[1]) }.reduce(0, +) / Double(rows.count))
        }
        let a = stats((0..<posterior.rows).map { posterior.row($0) }), b = stats(kept)
        #expect(abs(a.0 - b.0) < 0.02 && abs(a.1 - b.1) < 0.02, "rejection \(a) vs ABC \(b)")
        #expect(throws: InvertNNError.self) { try task.samplePosterior(count: 1, observation: [5, 5], using: &rng) }
    }

    @Test func classifierTwoSampleTestSeparatesWhatDiffers() throws {
        var rng = SeededGenerator(seed: 5)
        let a = Matrix<Double>.randomNormal(rows: 1000, columns: 2, using: &rng)
        let b = Matrix<Double>.randomNormal(rows: 1000, columns: 2, using: &rng)
        var shifted = Matrix<Double>.randomNormal(rows: 1000, columns: 2, using: &rng)
        for i in 0..<1000 { shifted[i, 0] += 3 }
        let same = try ClassifierTwoSampleTest.accuracy(a, b, maxEpochs: 40)
        let apart = try ClassifierTwoSampleTest.accuracy(a, shifted, maxEpochs: 40)
        #expect(same > 0.42 && same < 0.58, "same distribution: \(same)")
        #expect(apart > 0.9, "shifted by 3σ: \(apart)")
        #expect(throws: InvertNNError.self) { try ClassifierTwoSampleTest.accuracy(a, Matrix(rows: 10, columns: 3)) }
    }
}
