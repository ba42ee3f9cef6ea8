import Testing
import InvertNN

/// Both training directions of DESIGN.md §2 (issue 3, deliverable 5): maximum likelihood
/// backpropagates through the inverse (normalizing) direction, reverse KL through the forward
/// (generative) one. Each run is checked against its known optimum.
@Suite struct TrainingDirectionsTests {
    /// Fit a 2-D correlated Gaussian by maximum likelihood with a linear flow; the optimum is the
    /// Gaussian with the sample mean and the sample covariance (divisor N), whose mean NLL is
    /// `½·log det(2π Σ̂) + D/2`.
    @Test func maximumLikelihoodReachesTheGaussianOptimum() throws {
        var rng = SeededGenerator(seed: 31)
        let n = 2000
        // x = L z + μ with L L' = [[2, 1.2], [1.2, 1]].
        let l11 = 2.0.squareRoot(), l21 = 1.2 / 2.0.squareRoot(), l22 = (1 - l21 * l21).squareRoot()
        var data = Matrix<Double>(rows: n, columns: 2)
        for i in 0..<n {
            let z1 = rng.nextNormal(Double.self), z2 = rng.nextNormal(Double.self)
            data[i, 0] = l11 * z1 + 1
            data[i, 1] = l21 * z1 + l22 * z2 - 2
        }
        var mean = [0.0, 0.0], covariance = [[0.0, 0.0], [0.0, 0.0]]
        for i in 0..<n { for j in 0..<2 { mean[j] += data[i, j] / Double(n) } }
        for i in 0..<n { for j in 0..<2 { for k in 0..<2 {
            covariance[j][k] += (data[i, j] - mean[j]) * (data[i, k] - mean[k]) / Double(n)
        } } }
        let determinant = covariance[0][0] * covariance[1][1] - covariance[0][1] * covariance[1][0]
        let optimum = 0.5 * Double.log(4 * Double.pi * Double.pi * determinant) + 1

        let flow = try NormalizingFlow<Double>(
            transform: Sequential([try InvertibleLinear<Double>(features: 2, using: &rng)]))
        let adam = try Adam<Double>(parameters: flow.parameters, learningRate: 0.05)
        for _ in 0..<600 {
            flow.zeroGradients()
            _ = try flow.accumulateNegativeLogLikelihoodGradient(data)
            _ = try adam.update()
        }
        let nll = try flow.negativeLogLikelihood(data)
        #expect(nll >= optimum - 1e-9, "no model beats the MLE Gaussian: \(nll) vs \(optimum)")
        #expect(nll - optimum <= 1e-4, "NLL \(nll) vs optimum \(optimum)")
    }

    /// Fit a flow by reverse KL to a banana-shaped density, `x₁ ~ N(0, 1)`,
    /// `x₂ | x₁ ~ N(b(x₁² - 1), σ²)`, which an affine coupling conditioned on x₁ can represent
    /// (t ≈ b(x₁² - 1), s = log σ); the optimum KL is 0.
    @Test func reverseKLThroughTheGenerativeDirection() throws {
        let b = 0.5, sigma = 0.5
        func logTarget(_ x: Matrix<Double>) -> (logDensity: [Double], gradient: Matrix<Double>) {
            var logP = [Double](repeating: 0, count: x.rows)
            var gradient = Matrix<Double>(rows: x.rows, columns: 2)
            let c = -Double.log(2 * Double.pi) - Double.log(sigma)
            for i in 0..<x.rows {
                let x1 = x[i, 0], x2 = x[i, 1]
                let r = (x2 - b * (x1 * x1 - 1)) / sigma
                logP[i] = c - 0.5 * x1 * x1 - 0.5 * r * r
                gradient[i, 0] = -x1 + r / sigma * 2 * b * x1
                gradient[i, 1] = -r / sigma
            }
            return (logP, gradient)
        }
        var rng = SeededGenerator(seed: 47)
        let model = try Sequential<Double>([
            try Diagonal<Double>(features: 2),
            try AffineCoupling<Double>(
                features: 2, hiddenSizes: [32, 32], conditioningBlock: .first, scaleBound: 3, activation: .tanh,
                using: &rng),
        ])
        let base = StandardNormal<Double>(features: 2)
        let adam = try Adam<Double>(parameters: model.parameters, learningRate: 0.01)
        /// KL(q‖p) = E_z[log p_Z(z) - ld(z) - log p*(f(z))], with its gradient through forward.
        func klStep(batch: Int, train: Bool) throws -> Double {
            let z = base.sample(count: batch, temperature: 1, using: &rng)
            let (out, tape) = try model.forwardTaped(z)
            let target = logTarget(out.output)
            let logPz = try base.logProbability(z)
            var kl = 0.0
            for i in 0..<batch { kl += (logPz[i] - out.logAbsDet[i] - target.logDensity[i]) / Double(batch) }
            if train {
                model.zeroGradients()
                let dx = -1 / Double(batch) * target.gradient
                _ = try model.backward(tape, outputGradient: dx, logAbsDetGradient: [Double](repeating: -1 / Double(batch), count: batch))
                _ = try adam.update()
            }
            return kl
        }
        let initial = try klStep(batch: 4000, train: false)
        for step in 0..<2500 {
            if step == 1500 { adam.learningRate = 0.003 }
            _ = try klStep(batch: 128, train: true)
        }
        let final = try klStep(batch: 20000, train: false)
        #expect(initial > 0.3, "the untrained flow is far from the target (KL \(initial))")
        #expect(final <= 0.02, "reverse KL after training \(final) (optimum 0)")
        #expect(final >= -0.01, "a KL estimate cannot be clearly negative: \(final)")
    }
}
