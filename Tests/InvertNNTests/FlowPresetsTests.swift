import Testing
import InvertNN

@Suite struct FlowPresetsTests {
    @Test func digitsPresetStartsVolumePreserving() throws {
        // Zero-initialized conditioner outputs and unit scales: log p(x) = log N(Wx; 0, I) with W
        // orthogonal, i.e. exactly the standard normal density of x.
        for mixing in FlowPresets.Mixing.allCases {
            let flow: NormalizingFlow<Double> = try FlowPresets.digits(features: 6, couplings: 3, hiddenSizes: [5], mixing: mixing, seed: 4)
            var rng = SeededGenerator(seed: 1)
            let x = Matrix<Double>.randomNormal(rows: 4, columns: 6, using: &rng)
            let logP = try flow.logProbability(x)
            let reference = try StandardNormal<Double>(features: 6).logProbability(x)
            for i in 0..<4 { #expect(abs(logP[i] - reference[i]) <= 1e-10, "\(mixing) row \(i)") }
            #expect(flow.transform.layers.count == 6)
        }
    }

    @Test func digitsPresetShapesAndSeeds() throws {
        let a: NormalizingFlow<Float> = try FlowPresets.digits(seed: 7)
        let b: NormalizingFlow<Float> = try FlowPresets.digits(seed: 7)
        #expect(a.features == 64)
        // Conditioners 32 -> 256 -> 256 -> 64 and 8 InvertibleLinear(64) layers.
        let coupling = 32 * 256 + 256 + 256 * 256 + 256 + 256 * 64 + 64
        let linear = 2 * 64 * 64 + 64 + 64
        #expect(a.parameterCount == 8 * (coupling + linear))
        for (p, q) in zip(a.parameters, b.parameters) { #expect(p.value == q.value) }
        #expect(throws: InvertNNError.self) { try FlowPresets.digits(features: 1, as: Float.self) }
        #expect(throws: InvertNNError.self) { try FlowPresets.digits(couplings: 0, as: Float.self) }
    }
}
