import Foundation
import Testing
import InvertNN

/// The learnable bases: their densities against direct formulas, the NLL gradients of a flow
/// over them against finite differences (parameters of the base and of the transform), sampling
/// moments, and checkpoints.
@Suite struct BaseDistributionTests {
    static func flow(base: any BaseDistribution<Double>) throws -> NormalizingFlow<Double> {
        var rng = SeededGenerator(seed: 3)
        let coupling = try AffineCoupling<Double>(
            features: 3, hiddenSizes: [6], zeroInitializeLastLayer: false, using: &rng)
        return try NormalizingFlow(base: base, transform: try Sequential([coupling]))
    }

    /// Moves every parameter away from its start so the checks are not at a symmetric point.
    static func perturb(_ parameters: [Parameter<Double>], seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for p in parameters {
            p.withUnsafeMutableValue { v in for k in v.indices { v[k] += 0.3 * rng.nextNormal(Double.self) } }
        }
    }

    @Test func diagonalGaussianDensityMatchesTheFormula() throws {
        let base = try DiagonalGaussian<Double>(features: 2)
        try base.mean.assign(Matrix([[0.5, -1]]))
        try base.logScale.assign(Matrix([[Double.log(2), Double.log(0.5)]]))
        let z = try Matrix<Double>([[1.5, -1.25]])
        // N(1.5; 0.5, 2²) · N(-1.25; -1, 0.5²)
        let expected = -0.5 * 0.25 - Double.log(2) - 0.5 * 0.25 - Double.log(0.5) - Double.log(2 * Double.pi)
        #expect(abs(try base.logProbability(z)[0] - expected) < 1e-14)
    }

    @Test func gaussianMixtureDensityMatchesTheFormula() throws {
        let base = try GaussianMixture<Double>(features: 1, components: 2)
        try base.logits.assign(Matrix([[0, Double.log(3)]]))   // π = (1/4, 3/4)
        try base.means.assign(Matrix([[-1], [2]]))
        try base.logScales.assign(Matrix([[0], [Double.log(0.5)]]))
        func logNormal(_ x: Double, _ m: Double, _ s: Double) -> Double {
            -0.5 * (x - m) * (x - m) / (s * s) - Double.log(s * (2 * Double.pi).squareRoot())
        }
        for x in [-3.0, 0.1, 2.2, 40] {
            let a = Double.log(0.25) + logNormal(x, -1, 1), b = Double.log(0.75) + logNormal(x, 2, 0.5)
            let top = max(a, b)
            let expected = top + Double.log(Double.exp(a - top) + Double.exp(b - top))
            let got = try base.logProbability(Matrix([[x]]))[0]
            #expect(abs(got - expected) < 1e-12 * max(1, abs(expected)), "x = \(x): \(got) vs \(expected)")
        }
    }

    @Test(arguments: ["diagonal", "mixture", "full-mixture"])
    func negativeLogLikelihoodGradientsMatchFiniteDifferences(kind: String) throws {
        let base: any BaseDistribution<Double> = switch kind {
        case "diagonal": try DiagonalGaussian<Double>(features: 3)
        case "mixture": try GaussianMixture<Double>(features: 3, components: 3, seed: 2)
        default: try FullCovarianceMixture<Double>(features: 3, components: 3, floor: 0.1, seed: 2)
        }
        Self.perturb(base.parameters, seed: 7)
        let flow = try Self.flow(base: base)
        var rng = SeededGenerator(seed: 5)
        let x = Matrix<Double>.randomNormal(rows: 6, columns: 3, using: &rng)
        flow.zeroGradients()
        let (_, dx, _) = try flow.negativeLogLikelihoodGradients(x)
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
                        "\(kind) \(parameter.name)[\(k)]: \(parameter.gradient.storage[k]) vs \(numeric)")
            }
        }
        for k in 0..<x.count {
            var xp = x, xm = x
            xp.withUnsafeMutableBufferPointer { $0[k] += h }
            xm.withUnsafeMutableBufferPointer { $0[k] -= h }
            let numeric = (try flow.negativeLogLikelihood(xp) - flow.negativeLogLikelihood(xm)) / (2 * h)
            #expect(abs(numeric - dx.storage[k]) <= 1e-6 * max(1, abs(numeric)))
        }
        #expect(flow.parameters.suffix(base.parameters.count).map(\.name) == base.parameters.map(\.name))
    }

    @Test func samplingMoments() throws {
        let diagonal = try DiagonalGaussian<Double>(features: 2)
        try diagonal.mean.assign(Matrix([[1, -2]]))
        try diagonal.logScale.assign(Matrix([[0, Double.log(3)]]))
        var rng = SeededGenerator(seed: 1)
        let z = diagonal.sample(count: 40_000, temperature: 0.5, using: &rng)
        let mean1 = (0..<z.rows).reduce(0.0) { $0 + z[$1, 1] } / Double(z.rows)
        let variance1 = (0..<z.rows).reduce(0.0) { $0 + (z[$1, 1] - mean1) * (z[$1, 1] - mean1) } / Double(z.rows)
        #expect(abs(mean1 + 2) < 0.03 && abs(variance1 - 2.25) < 0.06, "\(mean1) \(variance1)")

        let mixture = try GaussianMixture<Double>(features: 1, components: 2)
        try mixture.logits.assign(Matrix([[0, Double.log(3)]]))
        try mixture.means.assign(Matrix([[-10], [10]]))
        let w = mixture.sample(count: 40_000, using: &rng)
        let right = Double(w.storage.filter { $0 > 0 }.count) / 40_000
        #expect(abs(right - 0.75) < 0.01, "share of the second component \(right)")
    }

    @Test func checkpointsRebuildLearnableBases() throws {
        for kind in ["diagonal", "mixture", "full-mixture"] {
            let base: any BaseDistribution<Float> = switch kind {
            case "diagonal": try DiagonalGaussian<Float>(features: 2)
            case "mixture": try GaussianMixture<Float>(features: 2, components: 4)
            default: try FullCovarianceMixture<Float>(features: 2, components: 3, floor: 0.25)
            }
            var rng = SeededGenerator(seed: 9)
            for p in base.parameters { try p.assign(p.value + Matrix.randomNormal(rows: p.value.rows, columns: p.value.columns, standardDeviation: Float(0.2), using: &rng)) }
            let flow = try NormalizingFlow(base: base, transform: try FlowPresets.realNVP(features: 2, couplings: 1, hiddenSizes: [4], as: Float.self).transform)
            let path = temporaryPath("base-\(kind).safetensors")
            defer { try? FileManager.default.removeItem(atPath: path) }
            try Checkpoint(flow: flow, preprocessing: .standardization(try Standardization(means: [0, 0], scales: [1, 1]))).write(to: path)
            let loaded = try Checkpoint<Float>.read(path: path)
            #expect(loaded.flow.base.checkpointType.name == base.checkpointType.name)
            if kind == "full-mixture" { #expect((loaded.flow.base as? FullCovarianceMixture<Float>)?.floor == 0.25) }
            let x = Matrix<Float>.randomNormal(rows: 5, columns: 2, using: &rng)
            #expect(try loaded.flow.logProbability(x) == flow.logProbability(x))
        }
    }

    /// One component is `N(μ, L Lᵀ + λI)`: the density of ``FullCovarianceGaussian`` fitted to
    /// a sample with exactly that covariance, and the entries above `L`'s diagonal play no part.
    @Test func fullCovarianceMixtureDensityMatchesTheGaussianFormula() throws {
        let base = try FullCovarianceMixture<Double>(features: 2, components: 1, floor: 0.5)
        try base.means.assign(Matrix([[1, -1]]))
        try base.factors.assign(Matrix([[2, 9, 0.6, 0.8]]))   // L = [[2, 0], [0.6, 0.8]]; the 9 is ignored
        // Σ = L Lᵀ + 0.5 I = [[4.5, 1.2], [1.2, 1.5]]: det 5.31, Σ⁻¹ = [[1.5, -1.2], [-1.2, 4.5]] / 5.31.
        let z = try Matrix<Double>([[2, 0.5], [-3, 4]])
        let got = try base.logProbability(z)
        for i in 0..<2 {
            let u = [z[i, 0] - 1, z[i, 1] + 1]
            let quadratic = (1.5 * u[0] * u[0] - 2.4 * u[0] * u[1] + 4.5 * u[1] * u[1]) / 5.31
            let expected = -quadratic / 2 - Double.log(5.31) / 2 - Double.log(2 * Double.pi)
            #expect(abs(got[i] - expected) < 1e-12, "row \(i): \(got[i]) vs \(expected)")
        }
        var rng = SeededGenerator(seed: 2)
        let draws = base.sample(count: 40_000, temperature: 1, using: &rng)
        let m0 = (0..<draws.rows).reduce(0.0) { $0 + draws[$1, 0] } / 40_000
        let m1 = (0..<draws.rows).reduce(0.0) { $0 + draws[$1, 1] } / 40_000
        let c01 = (0..<draws.rows).reduce(0.0) { $0 + (draws[$1, 0] - m0) * (draws[$1, 1] - m1) } / 40_000
        #expect(abs(m0 - 1) < 0.03 && abs(m1 + 1) < 0.02 && abs(c01 - 1.2) < 0.05, "\(m0) \(m1) \(c01)")
    }

    /// EM finds three separated clusters of a small sample; the floor is added on top of each
    /// component's own covariance, so a larger floor gives a lower training likelihood.
    @Test func fullCovarianceMixtureFitsSeparatedClusters() throws {
        var rng = SeededGenerator(seed: 6)
        let centres: [[Double]] = [[-4, 0, 0], [4, 0, 1], [0, 5, -1]]
        var data = Matrix<Double>(rows: 150, columns: 3)
        for i in 0..<150 {
            let c = centres[i % 3]
            let shared = rng.nextNormal(Double.self)
            for j in 0..<3 { data[i, j] = c[j] + 0.5 * shared + 0.2 * rng.nextNormal(Double.self) }
        }
        let fitted = try FullCovarianceMixture<Double>(fitting: data, components: 3, floor: 0.01, seed: 1)
        let weights = fitted.logits.value.storage.map { Double.exp($0) }
        #expect(weights.allSatisfy { abs($0 - 1.0 / 3) < 1e-6 }, "\(weights)")
        for c in centres {
            let nearest = (0..<3).map { k in (0..<3).reduce(0.0) { $0 + (fitted.means.value[k, $1] - c[$1]) * (fitted.means.value[k, $1] - c[$1]) } }.min()!
            #expect(nearest < 0.05, "centre \(c): squared distance \(nearest)")
        }
        // Each cluster's covariance is 0.25 (shared) + 0.04 I: far below the Gaussian of all rows.
        let mixtureNLL = -(try fitted.logProbability(data)).reduce(0, +) / 150
        let gaussianNLL = -(try FullCovarianceGaussian(fitting: data).logDensity(data)).reduce(0, +) / 150
        #expect(mixtureNLL < gaussianNLL - 3, "mixture \(mixtureNLL) vs Gaussian \(gaussianNLL)")
        let wide = try FullCovarianceMixture<Double>(fitting: data, components: 3, floor: 1, seed: 1)
        #expect(-(try wide.logProbability(data)).reduce(0, +) / 150 > mixtureNLL + 0.5)
        #expect(throws: InvertNNError.self) { try FullCovarianceMixture<Double>(fitting: data, components: 3, floor: -1) }
        #expect(throws: InvertNNError.self) { try FullCovarianceMixture<Double>(fitting: data.rows(at: [0, 1]), components: 3, floor: 0.1) }
    }

    /// Maximum likelihood moves a mixture base onto two separated clusters the identity
    /// transform cannot reshape: the NLL falls well below a single Gaussian's.
    @Test func trainingAMixtureBase() throws {
        var rng = SeededGenerator(seed: 4)
        var data = Matrix<Double>(rows: 2000, columns: 2)
        for i in 0..<2000 {
            let side: Double = i % 2 == 0 ? -3 : 3
            data[i, 0] = side + 0.3 * rng.nextNormal(Double.self)
            data[i, 1] = 0.3 * rng.nextNormal(Double.self)
        }
        let flow = try NormalizingFlow(
            base: try GaussianMixture<Double>(features: 2, components: 2, seed: 1),
            transform: try FlowPresets.realNVP(features: 2, couplings: 1, hiddenSizes: [4], mixing: .permutation, as: Double.self).transform)
        let optimizer = try Adam(parameters: flow.parameters, learningRate: 0.05)
        let start = try flow.negativeLogLikelihood(data)
        for _ in 0..<300 {
            flow.zeroGradients()
            _ = try flow.accumulateNegativeLogLikelihoodGradient(data)
            _ = try optimizer.update()
        }
        let end = try flow.negativeLogLikelihood(data)
        // Two clusters of σ = 0.3 in 2-D: log(2πe·0.09) + log 2 ≈ 1.12 nats per point is the
        // entropy; one Gaussian fitted to both would stay near 2.9.
        #expect(end < 1.25 && end < start - 3, "NLL \(start) → \(end)")
    }
}
