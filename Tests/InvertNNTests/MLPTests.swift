import Testing
import InvertNN

@Suite struct MLPTests {
    /// sizes [2, 2, 1], W0 = [[1, -1], [0.5, 2]], b0 = [0, -1], W1 = [[2, -3]], b1 = [0.5], x = [1, 2]:
    /// z0 = [-1, 3.5]; relu h = [0, 3.5] -> -10; leaky 0.1 h = [-0.1, 3.5] -> -10.2;
    /// tanh -> 2 tanh(-1) - 3 tanh(3.5) + 0.5 = -4.017722004745126.
    @Test(arguments: [
        (MLPActivation.relu, -10.0), (.leakyReLU(slope: 0.1), -10.2), (.tanh, -4.017722004745126),
    ])
    func knownValues(activation: MLPActivation, expected: Double) throws {
        let mlp = try MLP<Double>(
            weights: [try Matrix([[1, -1], [0.5, 2]]), try Matrix([[2, -3]])], biases: [[0, -1], [0.5]],
            activation: activation)
        let out = try mlp(Matrix(row: [1, 2]))
        #expect(out.shape == [1, 1])
        #expect(abs(out[0, 0] - expected) <= 1e-12)
    }

    @Test func zeroHiddenLayersIsAffine() throws {
        // y = x Wᵀ + b with W [3, 2].
        let mlp = try MLP<Double>(weights: [try Matrix([[1, 2], [-1, 0.5], [0, 3]])], biases: [[0.1, 0.2, 0.3]])
        #expect(mlp.sizes == [2, 3] && mlp.hiddenSizes.isEmpty)
        let out = try mlp(Matrix([[1, -1], [2, 4]]))
        let expected: [Double] = [-1 + 0.1, -1.5 + 0.2, -3 + 0.3, 10 + 0.1, 0 + 0.2, 12 + 0.3]
        for (a, b) in zip(out.storage, expected) { #expect(abs(a - b) <= 1e-14) }
        #expect(mlp.parameters.map(\.name) == ["dense0.weight", "dense0.bias"])
    }

    @Test(arguments: [MLPActivation.relu, .leakyReLU(slope: 0.2), .tanh])
    func gradientsMatchCentralDifferences(activation: MLPActivation) throws {
        for sizes in [[3, 5, 4, 2], [4, 3], [1, 7, 1]] {
            var rng = SeededGenerator(seed: 42)
            let mlp = try MLP<Double>(sizes: sizes, activation: activation, using: &rng)
            for b in mlp.biases {
                try b.assign(Matrix.randomNormal(rows: 1, columns: b.value.columns, standardDeviation: 0.5, using: &rng))
            }
            let x = Matrix<Double>.randomNormal(rows: 5, columns: sizes[0], using: &rng)
            let upstream = Matrix<Double>.randomNormal(rows: 5, columns: sizes.last!, using: &rng)
            let dx = try mlp.backward(try mlp.forward(x), outputGradient: upstream)
            try checkNetworkGradients(input: x, outputGradient: upstream, inputGradient: dx, parameters: mlp.parameters,
                                      label: "\(sizes) \(activation)") { try mlp($0) }
        }
    }

    @Test func backwardAccumulates() throws {
        var rng = SeededGenerator(seed: 3)
        let mlp = try MLP<Double>(sizes: [3, 4, 2], using: &rng)
        let x = Matrix<Double>.randomNormal(rows: 4, columns: 3, using: &rng)
        let g = Matrix<Double>.randomNormal(rows: 4, columns: 2, using: &rng)
        let trace = try mlp.forward(x)
        _ = try mlp.backward(trace, outputGradient: g)
        let once = mlp.parameters.map(\.gradient)
        _ = try mlp.backward(trace, outputGradient: g)
        for (p, first) in zip(mlp.parameters, once) {
            #expect(try (p.gradient - 2 * first).maxAbs <= 1e-14 * max(1, first.maxAbs))
        }
    }

    @Test func initialization() throws {
        var rng = SeededGenerator(seed: 9)
        let mlp = try MLP<Double>(sizes: [256, 256, 10], zeroInitializeLastLayer: true, using: &rng)
        let w = mlp.weights[0].value.storage
        let std = (w.reduce(0) { $0 + $1 * $1 } / Double(w.count)).squareRoot()
        // He: sqrt(2 / 256) = 0.0884; 65536 draws give a relative standard error of about 0.3%.
        #expect(abs(std - (2.0 / 256).squareRoot()) <= 0.02 * (2.0 / 256).squareRoot())
        #expect(mlp.weights[1].value.maxAbs == 0 && mlp.biases.allSatisfy { $0.value.maxAbs == 0 })
        let out = try mlp(Matrix<Double>.randomNormal(rows: 3, columns: 256, using: &rng))
        #expect(out.maxAbs == 0)
        // Same seed, same parameters.
        var a = SeededGenerator(seed: 5), b = SeededGenerator(seed: 5)
        let m1 = try MLP<Float>(sizes: [4, 8, 2], using: &a), m2 = try MLP<Float>(sizes: [4, 8, 2], using: &b)
        #expect(zip(m1.parameters, m2.parameters).allSatisfy { $0.0.value == $0.1.value })
    }

    @Test func rejectsBadArguments() throws {
        var rng = SeededGenerator(seed: 1)
        #expect(throws: InvertNNError.self) { try MLP<Double>(sizes: [3], using: &rng) }
        #expect(throws: InvertNNError.self) { try MLP<Double>(sizes: [3, 0, 2], using: &rng) }
        #expect(throws: InvertNNError.self) { try MLP<Double>(sizes: [3, 2], activation: .leakyReLU(slope: -0.1), using: &rng) }
        #expect(throws: InvertNNError.self) { try MLP<Double>(sizes: [3, 2], activation: .leakyReLU(slope: .nan), using: &rng) }
        #expect(throws: InvertNNError.self) {
            try MLP<Double>(weights: [try Matrix([[1, 2]]), try Matrix([[1, 2]])], biases: [[0], [0]])
        }
        #expect(throws: InvertNNError.self) { try MLP<Double>(weights: [try Matrix([[1, 2]])], biases: [[0, 1]]) }
        #expect(throws: InvertNNError.self) { try MLP<Double>(weights: [try Matrix([[1, .infinity]])], biases: [[0]]) }
        #expect(throws: InvertNNError.self) { try MLP<Double>(weights: [], biases: []) }
        #expect(throws: InvertNNError.self) { try MLPActivation(configurationName: "gelu") }
        #expect(throws: InvertNNError.self) { try MLPActivation(configurationName: "leakyReLU") }
        let mlp = try MLP<Double>(sizes: [3, 4, 2], using: &rng)
        #expect(throws: InvertNNError.self) { try mlp.forward(Matrix(rows: 2, columns: 4)) }
        #expect(throws: Never.self) { _ = try mlp.forward(Matrix(rows: 0, columns: 3)) }  // an empty batch gives an empty result
        let trace = try mlp.forward(Matrix(rows: 2, columns: 3, repeating: 1))
        #expect(throws: InvertNNError.self) { try mlp.backward(trace, outputGradient: Matrix(rows: 2, columns: 3)) }
        #expect(throws: InvertNNError.self) { try mlp.backward(trace, outputGradient: Matrix(rows: 3, columns: 2)) }
        let other = try MLP<Double>(sizes: [3, 5, 2], using: &rng)
        #expect(throws: InvertNNError.self) { try other.backward(trace, outputGradient: Matrix(rows: 2, columns: 2)) }
        // A gradient or value of the wrong size is refused when assigned, so no pass meets it.
        #expect(throws: InvertNNError.self) { try mlp.biases[0].assignGradient(Matrix(rows: 1, columns: 1)) }
        #expect(throws: InvertNNError.self) { try mlp.weights[1].assign(Matrix(rows: 2, columns: 3)) }
        #expect(throws: Never.self) { _ = try mlp.backward(trace, outputGradient: Matrix(rows: 2, columns: 2)) }
    }

    /// The branch-free ReLU keeps a NaN pre-activation as NaN (so a training guard sees it) and
    /// maps negative values, including -0, to a non-positive zero.
    @Test func reluPropagatesNaN() throws {
        let mlp = try MLP<Double>(weights: [try Matrix([[1], [1], [1]]), try Matrix([[1, 1, 1]])],
                                  biases: [[0, -3, 1], [0]])
        let out = try mlp.forward(try Matrix([[2], [.nan]]))
        #expect(out.output.storage[0] == 2 + 0 + 3)
        #expect(out.output.storage[1].isNaN)
        #expect(out.layerInputs[1].storage[0...2] == [2, 0, 3])
    }
}
