import Testing
import InvertNN

@Suite struct FlowPresetsTests {
    @Test func realNVPPresetStartsVolumePreserving() throws {
        // Zero-initialized conditioner outputs and unit scales: log p(x) = log N(Wx; 0, I) with W
        // orthogonal, i.e. exactly the standard normal density of x.
        for mixing in FlowPresets.Mixing.allCases {
            let flow: NormalizingFlow<Double> = try FlowPresets.realNVP(features: 6, couplings: 3, hiddenSizes: [5], mixing: mixing, seed: 4)
            var rng = SeededGenerator(seed: 1)
            let x = Matrix<Double>.randomNormal(rows: 4, columns: 6, using: &rng)
            let logP = try flow.logProbability(x)
            let reference = try StandardNormal<Double>(features: 6).logProbability(x)
            for i in 0..<4 { #expect(abs(logP[i] - reference[i]) <= 1e-10, "\(mixing) row \(i)") }
            #expect(flow.transform.layers.count == 6)
        }
    }

    @Test func digitsPresetShapesAndSeeds() throws {
        let a: NormalizingFlow<Float> = try FlowPresets.realNVP(features: 64, seed: 7)
        let b: NormalizingFlow<Float> = try FlowPresets.realNVP(features: 64, seed: 7)
        #expect(a.features == 64)
        // Conditioners 32 -> 256 -> 256 -> 64 and 8 InvertibleLinear(64) layers.
        let coupling = 32 * 256 + 256 + 256 * 256 + 256 + 256 * 64 + 64
        let linear = 2 * 64 * 64 + 64 + 64
        #expect(a.parameterCount == 8 * (coupling + linear))
        for (p, q) in zip(a.parameters, b.parameters) { #expect(p.value == q.value) }
        #expect(throws: InvertNNError.self) { try FlowPresets.realNVP(features: 1, as: Float.self) }
        #expect(throws: InvertNNError.self) { try FlowPresets.realNVP(features: 64, couplings: 0, as: Float.self) }
    }

    /// The tabular preset is the CLI's tabular model: 6 × (InvertibleLinear, affine coupling with
    /// a D/2 -> 64 -> 64 -> D conditioner); with whitening data it starts as the full-covariance
    /// Gaussian fitted to those rows (mean NLL equal to the Gaussian's, computed independently).
    @Test func tabularPresetShapesAndWhiteningStart() throws {
        let flow: NormalizingFlow<Double> = try FlowPresets.tabular(features: 20, seed: 3)
        #expect(flow.transform.layers.count == 12)
        let coupling = 10 * 64 + 64 + 64 * 64 + 64 + 64 * 20 + 20
        let linear = 2 * 20 * 20 + 20 + 20
        #expect(flow.parameterCount == 6 * (coupling + linear))
        #expect(throws: InvertNNError.self) { try FlowPresets.tabular(features: 1, as: Double.self) }

        // Correlated rows: x = z·A with a fixed mixing A, plus a mean.
        var rng = SeededGenerator(seed: 9)
        let z = Matrix<Double>.randomNormal(rows: 500, columns: 4, using: &rng)
        var x = Matrix<Double>(rows: 500, columns: 4)
        let a: [[Double]] = [[1, 0.5, 0, 0.2], [0, 1, -0.7, 0], [0, 0, 0.5, 0.3], [0.1, 0, 0, 2]]
        for r in 0..<500 { for j in 0..<4 { x[r, j] = 1.5 * Double(j) + (0..<4).reduce(0) { $0 + z[r, $1] * a[$1][j] } } }
        let whitened: NormalizingFlow<Double> = try FlowPresets.tabular(features: 4, whiteningData: x, seed: 3)
        #expect(whitened.transform.layers.count == 13)
        let flowNLL = -(try whitened.logProbability(x)).reduce(0, +) / 500
        let gaussianNLL = try TabularTests.gaussianNLL(train: x, test: x)
        #expect(abs(flowNLL - gaussianNLL) < 1e-3, "flow \(flowNLL), Gaussian \(gaussianNLL)")
    }

    /// The deprecated name builds the same flow as ``FlowPresets/realNVP``.
    @Test func digitsIsTheRealNVPPreset() throws {
        let old: NormalizingFlow<Double> = try FlowPresets.digits(features: 6, couplings: 2, hiddenSizes: [5], seed: 2)
        let new: NormalizingFlow<Double> = try FlowPresets.realNVP(features: 6, couplings: 2, hiddenSizes: [5], seed: 2)
        #expect(old.parameters.map(\.value) == new.parameters.map(\.value))
        #expect(old.transform.layers.map(\.name) == new.transform.layers.map(\.name))
    }

    /// The spline MAF preset: spline MADE layers in the alternating orders, identity at the start
    /// (so with whitening data it starts as the data's Gaussian), the whitening layer last.
    @Test func splineAutoregressivePresetStartsAsTheWhitenedGaussian() throws {
        var rng = SeededGenerator(seed: 4)
        let z = Matrix<Double>.randomNormal(rows: 300, columns: 3, using: &rng)
        var x = Matrix<Double>(rows: 300, columns: 3)
        for r in 0..<300 { x[r, 0] = z[r, 0]; x[r, 1] = 0.8 * z[r, 0] + 0.3 * z[r, 1]; x[r, 2] = 2 + z[r, 2] - z[r, 1] }
        let flow: NormalizingFlow<Double> = try FlowPresets.splineAutoregressiveFlow(
            features: 3, layers: 3, hiddenSizes: [8], bins: 4, tailBound: 2.5, whiteningData: x, seed: 1)
        #expect(flow.transform.layers.count == 4)
        let splines = flow.transform.layers.prefix(3).compactMap { $0 as? SplineMaskedAutoregressive<Double> }
        #expect(splines.count == 3 && flow.transform.layers.last is InvertibleLinear<Double>)
        #expect(splines.map { $0.conditioner.order } == [[0, 1, 2], [2, 1, 0], [0, 1, 2]])
        let flowNLL = -(try flow.logProbability(x)).reduce(0, +) / 300
        let gaussianNLL = -(try FullCovarianceGaussian(fitting: x).logDensity(x)).reduce(0, +) / 300
        #expect(abs(flowNLL - gaussianNLL) < 1e-3, "flow \(flowNLL), Gaussian \(gaussianNLL)")
        #expect(throws: InvertNNError.self) {
            try FlowPresets.splineAutoregressiveFlow(features: 3, layers: 0, as: Double.self)
        }
        #expect(throws: InvertNNError.self) {
            try FlowPresets.splineAutoregressiveFlow(features: 3, bins: 0, as: Double.self)
        }
    }

    /// The spline preset with the 2-D toys' settings (tanh conditioners, bins and knot
    /// derivatives floored at 1e-2): every coupling carries them and still starts as the
    /// identity, so with permutation mixing the flow starts as the standard normal. (Unit knot
    /// derivatives need the bias `log(e^{1 - m_δ} - 1)` of the spline's own `m_δ`; that of the
    /// default 1e-3 would give δ ≈ 1.009.)
    @Test func splinePresetWithFloorsAndTanhStartsAsTheIdentity() throws {
        let flow: NormalizingFlow<Double> = try FlowPresets.neuralSplineFlow(
            features: 2, couplings: 4, hiddenSizes: [5], bins: 8, tailBound: 4, minimumBinSize: 1e-2, minimumDerivative: 1e-2,
            activation: .tanh, mixing: .permutation, seed: 3)
        let couplings = flow.transform.layers.compactMap { $0 as? SplineCoupling<Double> }
        #expect(couplings.count == 4)
        for c in couplings {
            #expect(c.conditioner.activation == .tanh)
            #expect(c.transformer.minimumBinWidth == 1e-2 && c.transformer.minimumBinHeight == 1e-2)
            #expect(c.transformer.minimumDerivative == 1e-2 && c.transformer.tailBound == 4)
        }
        var rng = SeededGenerator(seed: 2)
        let x = Matrix<Double>.randomNormal(rows: 50, columns: 2, standardDeviation: 2, using: &rng)
        let logP = try flow.logProbability(x)
        let reference = try StandardNormal<Double>(features: 2).logProbability(x)
        for i in 0..<50 { #expect(abs(logP[i] - reference[i]) <= 1e-9, "row \(i): \(logP[i]) vs \(reference[i])") }
        #expect(throws: InvertNNError.self) {
            try FlowPresets.neuralSplineFlow(features: 2, bins: 8, minimumBinSize: 0.2, as: Double.self)
        }
    }

}
