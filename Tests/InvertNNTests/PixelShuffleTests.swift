import Testing
import InvertNN

/// Image shapes `[C, H, W]` and factors for the contract grid, non-square on purpose; the
/// contract's `features` value only selects the case.
private func unshuffleCase(_ features: Int) -> (channels: Int, height: Int, width: Int, factor: Int) {
    switch features {
    case 1: return (1, 2, 2, 2)
    case 2: return (2, 2, 4, 2)
    case 3: return (3, 4, 6, 2)
    case 17: return (1, 3, 9, 3)
    default: return (2, 8, 4, 2)
    }
}

private func shuffleCase(_ features: Int) -> (channels: Int, height: Int, width: Int, factor: Int) {
    switch features {
    case 1: return (4, 1, 1, 2)
    case 2: return (4, 2, 3, 2)
    case 3: return (12, 2, 1, 2)
    case 17: return (9, 2, 3, 3)
    default: return (8, 4, 8, 2)
    }
}

struct PixelShuffleFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        let s = shuffleCase(features)
        return try PixelShuffle<T>(channels: s.channels, height: s.height, width: s.width, factor: s.factor)
    }
}

struct PixelUnshuffleFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        let s = unshuffleCase(features)
        return try PixelUnshuffle<T>(channels: s.channels, height: s.height, width: s.width, factor: s.factor)
    }
}

@Suite struct PixelShuffleTests {
    @Test func shuffleContract() throws { try checkLayerContract(PixelShuffleFactory()) }
    @Test func unshuffleContract() throws { try checkLayerContract(PixelUnshuffleFactory()) }

    @Test func unshuffleKnownValues() throws {
        // 1x1x2x4 holding 0…7 row-major → 4 channels of 1x2.
        let a = try PixelUnshuffle<Double>(channels: 1, height: 2, width: 4, factor: 2)
        let ya = try a.forward(Matrix(row: (0..<8).map(Double.init)))
        #expect(ya.output.storage == [0, 2, 1, 3, 4, 6, 5, 7])
        #expect(ya.logAbsDet == [0])
        #expect(a.outputShape == [4, 1, 2])
        // 1x2x2x2, channel 0 = [[0,1],[2,3]], channel 1 = [[4,5],[6,7]] → channels 0…7 of 1x1.
        let b = try PixelUnshuffle<Double>(channels: 2, height: 2, width: 2, factor: 2)
        #expect(try b.forward(Matrix(row: (0..<8).map(Double.init))).output.storage == (0..<8).map(Double.init))
        // Shuffle of four 1x2 channels [0,1], [2,3], [4,5], [6,7] → one 2x4 image.
        let c = try PixelShuffle<Double>(channels: 4, height: 1, width: 2, factor: 2)
        #expect(try c.forward(Matrix(row: (0..<8).map(Double.init))).output.storage == [0, 2, 1, 3, 4, 6, 5, 7])
        #expect(c.outputShape == [1, 2, 4])
    }

    @Test func matchesPyTorchIndexFormula() throws {
        // out[c, h·r + i, w·r + j] = in[c·r² + i·r + j, h, w], r = 3, C = 2, H = 2, W = 3.
        let r = 3, channels = 2, height = 2, width = 3
        let layer = try PixelShuffle<Double>(channels: channels * r * r, height: height, width: width, factor: r)
        var rng = SeededGenerator(seed: 11)
        let x = Matrix<Double>.randomNormal(rows: 2, columns: layer.inputFeatures, using: &rng)
        let y = try layer.forward(x).output
        for n in 0..<2 {
            for c in 0..<channels { for i in 0..<r { for j in 0..<r { for h in 0..<height { for w in 0..<width {
                let source = ((c * r * r + i * r + j) * height + h) * width + w
                let target = (c * height * r + h * r + i) * (width * r) + w * r + j
                #expect(y[n, target] == x[n, source])
            } } } } }
        }
    }

    @Test func shuffleAndUnshuffleAreExactInverses() throws {
        var rng = SeededGenerator(seed: 5)
        let x = Matrix<Double>.randomNormal(rows: 1, columns: 3 * 4 * 6, using: &rng)
        let unshuffle = try PixelUnshuffle<Double>(channels: 3, height: 4, width: 6, factor: 2)
        let shuffle = try PixelShuffle<Double>(channels: 12, height: 2, width: 3, factor: 2)
        let folded = try unshuffle.forward(x).output
        #expect(try shuffle.forward(folded).output == x)
        #expect(try unshuffle.inverse(folded).output == x)
        #expect(try shuffle.inverse(x).output == folded)
    }

    @Test func rejectsIndivisibleSizesAndBadShapes() throws {
        #expect(throws: InvertNNError.self) { try PixelUnshuffle<Double>(channels: 1, height: 3, width: 4, factor: 2) }
        #expect(throws: InvertNNError.self) { try PixelUnshuffle<Double>(channels: 1, height: 4, width: 5, factor: 2) }
        #expect(throws: InvertNNError.self) { try PixelShuffle<Double>(channels: 6, height: 2, width: 2, factor: 2) }
        #expect(throws: InvertNNError.self) { try PixelShuffle<Double>(channels: 4, height: 2, width: 2, factor: 0) }
        let layer = try PixelUnshuffle<Double>(channels: 1, height: 2, width: 4, factor: 2)
        #expect(throws: InvertNNError.self) { try layer.forward(Matrix(rows: 1, columns: 7)) }
        #expect(throws: Never.self) { _ = try layer.inverse(Matrix(rows: 0, columns: 8)) }  // an empty batch gives an empty result
    }
}
