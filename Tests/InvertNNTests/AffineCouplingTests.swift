import Testing
import InvertNN

/// Coupling layers with non-trivial conditioners: the last layer is not zeroed and the biases are
/// random, so s and t are neither 0 nor the same for every sample.
struct AffineCouplingFactory: LayerFactory {
    var conditioningBlock: CouplingBlock = .first
    var scaleBound: Double? = 2
    var hiddenSizes = [16, 16]
    var activation: MLPActivation = .relu

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try makeCoupling(features: features, seed: seed, T.self)
    }

    func makeCoupling<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> AffineCoupling<T> {
        var rng = SeededGenerator(seed: seed)
        let layer = try AffineCoupling<T>(
            features: features, hiddenSizes: hiddenSizes, conditioningBlock: conditioningBlock,
            scaleBound: scaleBound.map { T($0) }, activation: activation, zeroInitializeLastLayer: false, using: &rng)
        for b in layer.conditioner.biases {
            try b.assign(Matrix.randomNormal(rows: 1, columns: b.value.columns, standardDeviation: T(0.3), using: &rng))
        }
        return layer
    }
}

/// Coupling, reversal, coupling on the other block: a small flow through ``Sequential``.
struct CouplingFlowFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        let first = try AffineCouplingFactory(conditioningBlock: .first).makeCoupling(features: features, seed: seed, T.self)
        let second = try AffineCouplingFactory(conditioningBlock: .second, scaleBound: nil, activation: .tanh)
            .makeCoupling(features: features, seed: seed + 1, T.self)
        var rng = SeededGenerator(seed: seed + 2)
        return try Sequential<T>([first, try Permutation<T>.random(features: features, using: &rng), second])
    }
}

@Suite struct AffineCouplingTests {
    @Test(arguments: [CouplingBlock.first, .second], [2.0, nil])
    func contract(conditioningBlock: CouplingBlock, scaleBound: Double?) throws {
        try checkLayerContract(
            AffineCouplingFactory(conditioningBlock: conditioningBlock, scaleBound: scaleBound), features: [2, 3, 17, 64])
    }

    @Test(arguments: [MLPActivation.leakyReLU(slope: 0.1), .tanh])
    func contractOtherActivations(activation: MLPActivation) throws {
        try checkLayerContract(AffineCouplingFactory(activation: activation), features: [3, 17], batches: [1, 7])
    }

    @Test func contractOfASmallFlow() throws {
        try checkLayerContract(CouplingFlowFactory(), features: [2, 3, 17], batches: [1, 7])
    }

    /// The linear conditioner of issue 2's known value: s(h) = A h + a, t(h) = B h + c on the
    /// first half, as one affine MLP with weight [A; B] and bias [a; c].
    static func linearCoupling() throws -> AffineCoupling<Double> {
        let mlp = try MLP<Double>(
            weights: [try Matrix([[0.2, -0.1], [0.3, 0.4], [1, 0], [0.5, -0.5]])], biases: [[0.1, -0.2, 0, 0.1]])
        return try AffineCoupling(features: 4, conditioner: mlp, conditioningBlock: .first, scaleBound: nil)
    }

    @Test func knownValues() throws {
        let layer = try Self.linearCoupling()
        let x = Matrix<Double>(row: [0.5, -1, 2, 0.3])
        let out = try layer.forward(x)
        let expected = [0.5, -1, 3.199717615152, 1.041288445487]
        for (a, b) in zip(out.output.storage, expected) { #expect(abs(a - b) <= 1e-11, "\(a) vs \(b)") }
        #expect(abs(out.logAbsDet[0] - -0.15) <= 1e-12)
        let back = try layer.inverse(out.output)
        #expect(try (back.output - x).maxAbs <= 1e-12)
        #expect(abs(back.logAbsDet[0] - 0.15) <= 1e-12)
    }

    /// Uneven splits: the log-det sums exactly the D - d scale outputs (invertnn read it from the
    /// wrong slice). D = 3 with an affine conditioner: s = W_s x_a + b_s.
    @Test func unevenSplitLogDeterminant() throws {
        // First block [0, 1) conditions, two features transformed: s = [0.5 x0 + 0.1, -x0 + 0.2].
        let first = try AffineCoupling<Double>(
            features: 3,
            conditioner: try MLP(weights: [try Matrix([[0.5], [-1], [2], [0]])], biases: [[0.1, 0.2, 0, 1]]),
            conditioningBlock: .first, scaleBound: nil)
        let x = Matrix<Double>(row: [0.4, 1, -2])
        let y = try first.forward(x)
        let s = [0.5 * 0.4 + 0.1, -0.4 + 0.2]
        #expect(abs(y.logAbsDet[0] - (s[0] + s[1])) <= 1e-15)
        #expect(abs(y.output[0, 1] - (1 * Double.exp(s[0]) + 0.8)) <= 1e-15)
        #expect(abs(y.output[0, 2] - (-2 * Double.exp(s[1]) + 1)) <= 1e-15)
        // Second block [1, 3) conditions, feature 0 transformed: s = x1 - x2 + 0.3, t = 2.
        let second = try AffineCoupling<Double>(
            features: 3,
            conditioner: try MLP(weights: [try Matrix([[1, -1], [0, 0]])], biases: [[0.3, 2]]),
            conditioningBlock: .second, scaleBound: nil)
        let z = try second.forward(x)
        #expect(abs(z.logAbsDet[0] - 3.3) <= 1e-15)
        #expect(abs(z.output[0, 0] - (0.4 * Double.exp(3.3) + 2)) <= 1e-13)
        #expect(z.output[0, 1] == 1 && z.output[0, 2] == -2)
        #expect(second.conditioningRange == 1..<3 && second.transformedRange == 0..<1)
    }

    @Test func boundLimitsTheScale() throws {
        // Huge conditioner outputs: |s| stays below c = 0.5 and the round trip still holds.
        let mlp = try MLP<Double>(weights: [try Matrix([[100, 0], [-100, 0], [0, 1], [1, 0]])], biases: [[0, 0, 0, 0]])
        let layer = try AffineCoupling(features: 4, conditioner: mlp, scaleBound: 0.5)
        let x = Matrix<Double>(row: [3, 1, 2, -1])
        let out = try layer.forward(x)
        // s = 0.5 tanh(±300 / 0.5) = ±0.5 to rounding; they cancel in the sum.
        #expect(abs(out.logAbsDet[0]) <= 1e-15)
        #expect(abs(out.output[0, 2] - (2 * Double.exp(0.5) + 1)) <= 1e-14)
        #expect(abs(out.output[0, 3] - (-1 * Double.exp(-0.5) + 3)) <= 1e-14)
        #expect(try (layer.inverse(out.output).output - x).maxAbs <= 1e-14)
    }

    @Test func zeroInitializedLayerIsTheIdentity() throws {
        var rng = SeededGenerator(seed: 8)
        for block in [CouplingBlock.first, .second] {
            let layer = try AffineCoupling<Float>(features: 5, hiddenSizes: [32], conditioningBlock: block, using: &rng)
            let x = Matrix<Float>.randomNormal(rows: 6, columns: 5, using: &rng)
            let out = try layer.forward(x)
            #expect(out.output == x && out.logAbsDet.allSatisfy { $0 == 0 })
        }
    }

    @Test func configuration() throws {
        var rng = SeededGenerator(seed: 2)
        let layer = try AffineCoupling<Double>(
            features: 17, hiddenSizes: [64, 32], conditioningBlock: .second, scaleBound: 3,
            activation: .leakyReLU(slope: 0.01), using: &rng)
        #expect(layer.conditioningRange == 8..<17 && layer.transformedRange == 0..<8)
        #expect(layer.conditioner.sizes == [9, 64, 32, 16])
        let c = layer.configuration
        #expect(AffineCoupling<Double>.typeName == "AffineCoupling" && c.features == 17)
        #expect(c.conditioningBlock == .second && c.firstBlockSize == 8)
        #expect(c.hiddenSizes == [64, 32] && c.transformer.scaleBound == 3)
        #expect(c.activation == "leakyReLU" && c.activationSlope == 0.01 && c.contextFeatures == nil)
        #expect(try MLPActivation(configurationName: "leakyReLU", slope: 0.01) == layer.conditioner.activation)
        let unbounded = try AffineCoupling<Double>(features: 4, hiddenSizes: [], scaleBound: nil, using: &rng)
        #expect(unbounded.configuration.transformer.scaleBound == nil)
        #expect(unbounded.configuration.activation == "relu" && unbounded.configuration.activationSlope == nil)
        #expect(unbounded.parameters.map(\.name) == ["dense0.weight", "dense0.bias"])
    }

    @Test func rejectsBadArguments() throws {
        var rng = SeededGenerator(seed: 1)
        #expect(throws: InvertNNError.self) { try AffineCoupling<Double>(features: 1, hiddenSizes: [8], using: &rng) }
        #expect(throws: InvertNNError.self) {
            try AffineCoupling<Double>(features: 4, hiddenSizes: [8], firstBlockSize: 4, using: &rng)
        }
        #expect(throws: InvertNNError.self) {
            try AffineCoupling<Double>(features: 4, hiddenSizes: [8], firstBlockSize: 0, using: &rng)
        }
        #expect(throws: InvertNNError.self) { try AffineCoupling<Double>(features: 4, hiddenSizes: [8], scaleBound: 0, using: &rng) }
        #expect(throws: InvertNNError.self) {
            try AffineCoupling<Double>(features: 4, hiddenSizes: [8], scaleBound: .infinity, using: &rng)
        }
        #expect(throws: InvertNNError.self) { try AffineCoupling<Double>(features: 4, hiddenSizes: [0], using: &rng) }
        // A conditioner whose sizes do not fit the split (D = 5, first block 2 -> needs 2 -> 6).
        let wrong = try MLP<Double>(sizes: [2, 8, 4], using: &rng)
        #expect(throws: InvertNNError.self) { try AffineCoupling(features: 5, conditioner: wrong) }
        let layer = try AffineCoupling<Double>(features: 4, hiddenSizes: [8], using: &rng)
        #expect(throws: InvertNNError.self) { try layer.forward(Matrix(rows: 2, columns: 3)) }
        #expect(throws: Never.self) { _ = try layer.inverse(Matrix(rows: 0, columns: 4)) }  // an empty batch gives an empty result
        let x = Matrix<Double>(rows: 2, columns: 4)
        #expect(throws: InvertNNError.self) {
            try layer.forwardBackward(input: x, output: x, outputGradient: x, logAbsDetGradient: [0])
        }
        #expect(throws: InvertNNError.self) {
            try layer.inverseBackward(input: x, output: x, outputGradient: Matrix(rows: 2, columns: 3), logAbsDetGradient: [0, 0])
        }
    }
}

/// Issue 3's known values: an uneven split and the other conditioning parity.
@Suite struct AffineCouplingIssue3KnownValues {
    @Test func unevenSplitFiveFeatures() throws {
        // s = A₃h + a₃, t = B₃h + c₃ with h = x[0..<2].
        let mlp = try MLP<Double>(
            weights: [try Matrix([[0.2, -0.1], [0.3, 0.4], [-0.5, 0.1], [1, 0], [0.5, -0.5], [0, 1]])],
            biases: [[0.1, -0.2, 0.05, 0, 0.1, -0.1]])
        let layer = try AffineCoupling<Double>(
            features: 5, conditioner: mlp, conditioningBlock: .first, scaleBound: nil, firstBlockSize: 2)
        let x = Matrix<Double>(row: [0.5, -1, 2, 0.3, -0.7])
        let out = try layer.forward(x)
        let expected = [0.5, -1, 3.199717615152, 1.041288445487, -1.618572754477]
        for j in 0..<5 { #expect(abs(out.output[0, j] - expected[j]) <= 1e-11, "y[\(j)] = \(out.output[0, j])") }
        #expect(abs(out.logAbsDet[0] - -0.45) <= 1e-12)
        let back = try layer.inverse(out.output)
        #expect(try (back.output - x).maxAbs <= 1e-12)
        #expect(abs(back.logAbsDet[0] - 0.45) <= 1e-12)
    }

    @Test func secondBlockConditions() throws {
        // The last two features condition the first two, with issue 2's A, a, B, c.
        let mlp = try MLP<Double>(
            weights: [try Matrix([[0.2, -0.1], [0.3, 0.4], [1, 0], [0.5, -0.5]])], biases: [[0.1, -0.2, 0, 0.1]])
        let layer = try AffineCoupling<Double>(features: 4, conditioner: mlp, conditioningBlock: .second, scaleBound: nil)
        let x = Matrix<Double>(row: [0.5, -1, 2, 0.3])
        let out = try layer.forward(x)
        let expected = [2.799997096609, -0.732027649699, 2, 0.3]
        for j in 0..<4 { #expect(abs(out.output[0, j] - expected[j]) <= 1e-11, "y[\(j)] = \(out.output[0, j])") }
        #expect(abs(out.logAbsDet[0] - 0.99) <= 1e-12)
        let back = try layer.inverse(out.output)
        #expect(try (back.output - x).maxAbs <= 1e-12)
    }
}
