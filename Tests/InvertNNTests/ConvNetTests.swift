import Testing
import InvertNN

@Suite struct ConvNetTests {
    /// A network with random (not zero) weights everywhere, so every ReLU and the last
    /// convolution matter: widths (C_in, hidden, C_out) with hidden layers of 3 and of 9 channels
    /// (the last 3×3 convolution then runs as shifted GEMMs over padded planes).
    static func make(_ widths: (Int, [Int], Int), height: Int, width: Int, seed: UInt64) throws -> ConvNet<Double> {
        var g = SeededGenerator(seed: seed)
        let net = try ConvNet<Double>(
            inputChannels: widths.0, hiddenChannels: widths.1, outputChannels: widths.2, height: height, width: width, using: &g)
        for parameter in net.parameters {
            parameter.withUnsafeMutableValue { v in for i in v.indices { v[i] = 0.5 * g.nextNormal(Double.self) } }
        }
        return net
    }

    static let cases: [((Int, [Int], Int), Int, Int)] = [((2, [3, 3], 4), 3, 4), ((2, [9, 9], 4), 4, 3), ((3, [], 2), 2, 5)]

    /// The network equals its convolutions applied one after another with explicit ReLUs.
    @Test func equalsItsConvolutionsWithReLUsBetween() throws {
        for (n, c) in Self.cases.enumerated() {
            let net = try Self.make(c.0, height: c.1, width: c.2, seed: UInt64(n + 1))
            var g = SeededGenerator(seed: UInt64(n + 50))
            let x = Matrix<Double>.randomNormal(rows: 3, columns: net.inputFeatures, using: &g)
            var expected = x
            for (k, conv) in net.convolutions.enumerated() {
                expected = try conv(expected)
                if k < net.convolutions.count - 1 { expected.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = max($0[i], 0) } } }
            }
            let trace = try net.forward(x)
            #expect(try (trace.output - expected).maxAbs <= 1e-13 * max(1, expected.maxAbs), "case \(c)")
            #expect(trace.output.maxAbs > 0, "case \(c)")
        }
    }

    /// `L = Σ dO ⊙ f(x)`: input and parameter gradients against central differences (the ReLUs'
    /// kinks are met with probability 0 by random inputs).
    @Test func backwardMatchesFiniteDifferences() throws {
        for (n, c) in Self.cases.enumerated() {
            let net = try Self.make(c.0, height: c.1, width: c.2, seed: UInt64(n + 10))
            var g = SeededGenerator(seed: UInt64(n + 60))
            let x = Matrix<Double>.randomNormal(rows: 2, columns: net.inputFeatures, using: &g)
            let dOut = Matrix<Double>.randomNormal(rows: 2, columns: net.outputFeatures, using: &g)
            let dx = try net.backward(try net.forward(x), outputGradient: dOut)
            try checkNetworkGradients(input: x, outputGradient: dOut, inputGradient: dx, parameters: net.parameters,
                                      label: "case \(c)") { try net.forward($0).output }
        }
    }
}
