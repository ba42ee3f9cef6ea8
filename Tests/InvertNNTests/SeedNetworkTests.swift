import Testing
import InvertNN

/// The 14-layer network of the original invertnn's documentation, rebuilt with explicit side
/// channels instead of its global inference context (issue 3, deliverable 6).
@Suite struct SeedNetworkTests {
    /// Even/odd interleave on 20 features: evens first, then odds.
    static let interleave = Array(stride(from: 0, to: 20, by: 2)) + Array(stride(from: 1, to: 20, by: 2))

    static func headLayers(_ rng: inout SeededGenerator) throws -> [any InvertibleLayer<Double>] {
        var shift = [Double]()
        for _ in 0..<10 { shift.append(0.5 * rng.nextNormal(Double.self)) }
        return [
            try Householder<Double>(features: 10, hasBias: true, using: &rng),
            try Diagonal<Double>(features: 10, logScale: (0..<10).map { _ in 0.3 * rng.nextNormal(Double.self) }, hasBias: false),
            try Householder<Double>(features: 10, hasBias: true, using: &rng),
            try Baird<Double>(features: 10, shift: shift),
            try Householder<Double>(features: 10, hasBias: true, using: &rng),
            try Permutation<Double>.reversed(features: 10),
        ]
    }

    static func tailLayers(_ rng: inout SeededGenerator) throws -> [any InvertibleLayer<Double>] {
        [
            try Diagonal<Double>(features: 20, logScale: (0..<20).map { _ in 0.3 * rng.nextNormal(Double.self) }, hasBias: false),
            try Permutation<Double>(interleave),
            try AffineCoupling<Double>(
                features: 20, hiddenSizes: [16], conditioningBlock: .first, firstBlockSize: 8,
                zeroInitializeLastLayer: false, using: &rng),
            try Permutation<Double>(interleave),
            try AffineCoupling<Double>(
                features: 20, hiddenSizes: [16], conditioningBlock: .first, firstBlockSize: 12,
                zeroInitializeLastLayer: false, using: &rng),
            try Householder<Double>(features: 20, hasBias: true, using: &rng),
            try LeakyReLU<Double>(features: 20, negativeSlope: 0.2),
        ]
    }

    @Test func roundTripWithSideInputAndLogDets() throws {
        var rng = SeededGenerator(seed: 2018)
        let head = try Self.headLayers(&rng), tail = try Self.tailLayers(&rng)
        let network = try Sequential<Double>(head + [try ConcatSideInput<Double>(features: 10, sideFeatures: 10, channel: "side")] + tail)
        #expect(network.layers.count == 14)
        #expect(network.inputFeatures == 10 && network.outputFeatures == 20)

        let x = Matrix<Double>.randomNormal(rows: 10, columns: 10, using: &rng)
        let side = Matrix<Double>.randomNormal(rows: 10, columns: 10, using: &rng)
        var forwardChannels = LayerContext<Double>(["side": side])
        let y = try network.forward(x, context: &forwardChannels)
        var inverseChannels = LayerContext<Double>()
        let back = try network.inverse(y.output, context: &inverseChannels)

        #expect(try (back.output - x).maxAbs <= 1e-12 * max(1, x.maxAbs))
        let restored = try #require(inverseChannels["side"])
        #expect(try (restored - side).maxAbs <= 1e-11 * max(1, side.maxAbs))
        for i in 0..<10 {
            #expect(abs(y.logAbsDet[i] + back.logAbsDet[i]) <= 1e-12 * max(1, abs(y.logAbsDet[i])))
        }

        // Log-det against finite differences, for each part with equal dimensions.
        let headNetwork = try Sequential<Double>(head), tailNetwork = try Sequential<Double>(tail)
        let headOut = try headNetwork.forward(x.rows(0..<1))
        let fdHead = try finiteDifferenceLogAbsDet(x.row(0), step: 1e-6) { try headNetwork.forward($0).output }
        #expect(abs(fdHead - headOut.logAbsDet[0]) <= 1e-6 * max(1, abs(headOut.logAbsDet[0])))
        let joined = try headOut.output.concatenatedColumns(side.rows(0..<1))
        let tailOut = try tailNetwork.forward(joined)
        let fdTail = try finiteDifferenceLogAbsDet(joined.row(0), step: 1e-6) { try tailNetwork.forward($0).output }
        #expect(abs(fdTail - tailOut.logAbsDet[0]) <= 1e-6 * max(1, abs(tailOut.logAbsDet[0])))
        // The whole network's log-det is the sum of the two parts (the concat adds 0).
        #expect(abs(y.logAbsDet[0] - (headOut.logAbsDet[0] + tailOut.logAbsDet[0])) <= 1e-12 * max(1, abs(y.logAbsDet[0])))
    }

    @Test func gradientsFlowToTheSideInput() throws {
        var rng = SeededGenerator(seed: 7)
        let network = try Sequential<Double>(
            try Self.headLayers(&rng) + [try ConcatSideInput<Double>(features: 10, sideFeatures: 10, channel: "side")]
                + Self.tailLayers(&rng))
        let x = Matrix<Double>.randomNormal(rows: 3, columns: 10, using: &rng)
        let side = Matrix<Double>.randomNormal(rows: 3, columns: 10, using: &rng)
        let dy = Matrix<Double>.randomNormal(rows: 3, columns: 20, using: &rng)
        let dld: [Double] = [0.3, -0.7, 1.1]
        func loss(_ s: Matrix<Double>) throws -> Double {
            var channels = LayerContext<Double>(["side": s])
            let out = try network.forward(x, context: &channels)
            return zip(dy.storage, out.output.storage).map(*).reduce(0, +) + zip(dld, out.logAbsDet).map(*).reduce(0, +)
        }
        var channels = LayerContext<Double>(["side": side])
        let (_, tape) = try network.forwardTaped(x, context: &channels)
        _ = try network.backward(tape, outputGradient: dy, logAbsDetGradient: dld, context: &channels)
        let analytic = try #require(channels.gradients["side"])
        var worst = 0.0, scale = 1e-3
        for k in 0..<side.count {
            var plus = side, minus = side
            plus.withUnsafeMutableBufferPointer { $0[k] += 1e-6 }
            minus.withUnsafeMutableBufferPointer { $0[k] -= 1e-6 }
            let fd = (try loss(plus) - loss(minus)) / 2e-6
            worst = max(worst, abs(fd - analytic.storage[k]))
            scale = max(scale, abs(fd))
        }
        #expect(worst <= 1e-6 * scale)
    }
}
