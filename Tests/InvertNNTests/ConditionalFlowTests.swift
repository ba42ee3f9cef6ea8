import Foundation
import Testing
import InvertNN

/// A coupling whose conditioner also reads a 3-wide context (random biases, so the map is not
/// the identity), for the DESIGN.md §5 contract with the context.
struct ConditionalCouplingFactory: LayerFactory {
    var conditioningBlock: CouplingBlock = .first
    var contextFeatures = 3
    /// 0: the conditioner reads only the context and every feature is transformed.
    var firstBlockSize: Int? = nil

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try makeCoupling(features: features, seed: seed, block: conditioningBlock, T.self)
    }

    func makeCoupling<T: Scalar>(features: Int, seed: UInt64, block: CouplingBlock, _: T.Type) throws -> AffineCoupling<T> {
        var rng = SeededGenerator(seed: seed)
        let layer = try AffineCoupling<T>(
            features: features, hiddenSizes: [12], conditioningBlock: block, scaleBound: T(2), firstBlockSize: firstBlockSize,
            zeroInitializeLastLayer: false, contextFeatures: contextFeatures, using: &rng)
        for b in layer.conditioner.biases {
            try b.assign(Matrix.randomNormal(rows: 1, columns: b.value.columns, standardDeviation: T(0.3), using: &rng))
        }
        return layer
    }

    func conditioning(rows: Int, using generator: inout SeededGenerator) -> Matrix<Double>? {
        Matrix.randomNormal(rows: rows, columns: contextFeatures, using: &generator)
    }
}

/// Conditional coupling, permutation, conditional coupling on the other block.
struct ConditionalFlowFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        let factory = ConditionalCouplingFactory()
        var rng = SeededGenerator(seed: seed + 2)
        return try Sequential<T>([
            try factory.makeCoupling(features: features, seed: seed, block: .first, T.self),
            try Permutation<T>.random(features: features, using: &rng),
            try factory.makeCoupling(features: features, seed: seed + 1, block: .second, T.self),
        ])
    }

    func conditioning(rows: Int, using generator: inout SeededGenerator) -> Matrix<Double>? {
        ConditionalCouplingFactory().conditioning(rows: rows, using: &generator)
    }
}

@Suite struct ConditionalFlowTests {
    @Test(arguments: [CouplingBlock.first, .second])
    func couplingContractWithContext(block: CouplingBlock) throws {
        try checkLayerContract(ConditionalCouplingFactory(conditioningBlock: block), features: [2, 3, 17], batches: [1, 2, 7])
    }

    /// The elementwise conditional affine map (empty conditioning block), also on one feature.
    @Test func elementwiseConditionalContract() throws {
        try checkLayerContract(ConditionalCouplingFactory(firstBlockSize: 0), features: [1, 2, 5], batches: [1, 7])
        var rng = SeededGenerator(seed: 1)
        #expect(throws: InvertNNError.self) {
            try AffineCoupling<Double>(features: 3, hiddenSizes: [4], firstBlockSize: 0, using: &rng)
        }
        #expect(throws: InvertNNError.self) {
            try AffineCoupling<Double>(features: 3, hiddenSizes: [4], conditioningBlock: .second, firstBlockSize: 0,
                                       contextFeatures: 2, using: &rng)
        }
    }

    @Test func sequentialContractWithContext() throws {
        try checkLayerContract(ConditionalFlowFactory(), features: [2, 5], batches: [1, 7])
    }

    /// A conditional flow (2 couplings) on 4 features with a 2-column context, standardized and
    /// embedded by a small MLP into 3 columns.
    static func flow<T: Scalar>(_: T.Type, embedding: Bool = true, seed: UInt64 = 5) throws -> NormalizingFlow<T> {
        var rng = SeededGenerator(seed: seed)
        let standardization = try Standardization<T>(means: [T(0.5), T(-1)], scales: [T(2), T(0.5)])
        let mlp = embedding ? try MLP<T>(sizes: [2, 6, 3], activation: .tanh, using: &rng) : nil
        let encoder = try ContextEncoder<T>(features: 2, encoding: .standardization(standardization), embedding: mlp)
        let width = encoder.encodedFeatures
        var layers = [any InvertibleLayer<T>]()
        for block in [CouplingBlock.first, .second] {
            let coupling = try AffineCoupling<T>(
                features: 4, hiddenSizes: [8], conditioningBlock: block, scaleBound: T(2),
                zeroInitializeLastLayer: false, contextFeatures: width, using: &rng)
            for b in coupling.conditioner.biases {
                try b.assign(Matrix.randomNormal(rows: 1, columns: b.value.columns, standardDeviation: T(0.3), using: &rng))
            }
            layers.append(coupling)
            layers.append(try Permutation<T>.random(features: 4, using: &rng))
        }
        return try NormalizingFlow(transform: try Sequential(layers), contextEncoder: encoder)
    }

    /// `dL/dx`, `dL/dc` and the embedding's parameter gradients of the NLL against central
    /// differences (Double), through the encoder's standardization and embedding.
    @Test(arguments: [true, false])
    func negativeLogLikelihoodGradientsMatchFiniteDifferences(embedding: Bool) throws {
        let flow = try Self.flow(Double.self, embedding: embedding)
        var rng = SeededGenerator(seed: 11)
        let x = Matrix<Double>.randomNormal(rows: 5, columns: 4, using: &rng)
        let c = Matrix<Double>.randomNormal(rows: 5, columns: 2, using: &rng)
        flow.zeroGradients()
        let (loss, dx, dc) = try flow.negativeLogLikelihoodGradients(x, context: c)
        #expect(abs(loss - (try flow.negativeLogLikelihood(x, context: c))) <= 1e-12 * max(1, abs(loss)))
        let h = 1e-6
        func fd(_ f: (Double) throws -> Double) rethrows -> Double { (try f(h) - f(-h)) / (2 * h) }
        for k in 0..<x.count {
            let numeric = try fd { e in var xp = x; xp.withUnsafeMutableBufferPointer { $0[k] += e }; return try flow.negativeLogLikelihood(xp, context: c) }
            #expect(abs(numeric - dx.storage[k]) <= 1e-6 * max(1, abs(numeric)), "dL/dx[\(k)]: \(dx.storage[k]) vs \(numeric)")
        }
        let contextGradient = try #require(dc)
        #expect(contextGradient.shape == c.shape)
        var largest = 0.0
        for k in 0..<c.count {
            let numeric = try fd { e in var cp = c; cp.withUnsafeMutableBufferPointer { $0[k] += e }; return try flow.negativeLogLikelihood(x, context: cp) }
            largest = max(largest, abs(numeric))
            #expect(abs(numeric - contextGradient.storage[k]) <= 1e-6 * max(1, abs(numeric)),
                    "dL/dc[\(k)]: \(contextGradient.storage[k]) vs \(numeric)")
        }
        #expect(largest > 1e-3, "the context must matter for this check to mean anything")
        for parameter in flow.contextEncoder?.parameters ?? [] {
            for k in 0..<parameter.count {
                let saved = parameter.value.storage[k]
                let numeric = try fd { e in
                    parameter.withUnsafeMutableValue { $0[k] = saved + e }
                    defer { parameter.withUnsafeMutableValue { $0[k] = saved } }
                    return try flow.negativeLogLikelihood(x, context: c)
                }
                #expect(abs(numeric - parameter.gradient.storage[k]) <= 1e-6 * max(1, abs(numeric)),
                        "\(parameter.name)[\(k)]: \(parameter.gradient.storage[k]) vs \(numeric)")
            }
        }
        #expect(flow.parameters.count == flow.transform.parameters.count + (embedding ? 4 : 0))
    }

    /// Encoding then decoding with the same context returns x; with another context it does not.
    @Test func roundTripAndContextDependence() throws {
        let flow = try Self.flow(Double.self)
        var rng = SeededGenerator(seed: 3)
        let x = Matrix<Double>.randomNormal(rows: 6, columns: 4, using: &rng)
        let c = Matrix<Double>.randomNormal(rows: 6, columns: 2, using: &rng)
        let z = try flow.encode(x, context: c)
        let back = try flow.decode(z.output, context: c)
        #expect(try (back.output - x).maxAbs <= 1e-12)
        for i in 0..<6 { #expect(abs(z.logAbsDet[i] + back.logAbsDet[i]) <= 1e-12) }
        let other = Matrix<Double>.randomNormal(rows: 6, columns: 2, using: &rng)
        #expect(try (flow.encode(x, context: other).output - z.output).maxAbs > 1e-3)
        let logP = try flow.logProbability(x, context: c)
        let base = try StandardNormal<Double>(features: 4).logProbability(z.output)
        for i in 0..<6 { #expect(abs(logP[i] - (base[i] + z.logAbsDet[i])) <= 1e-12) }
    }

    /// Float agrees with Double on log p(x | c).
    @Test func floatAgreesWithDouble() throws {
        let double = try Self.flow(Double.self), float = try Self.flow(Float.self)
        for (p, q) in zip(double.parameters, float.parameters) { try q.assign(p.value.converted(to: Float.self)) }
        var rng = SeededGenerator(seed: 8)
        let x = Matrix<Double>.randomNormal(rows: 7, columns: 4, using: &rng)
        let c = Matrix<Double>.randomNormal(rows: 7, columns: 2, using: &rng)
        let a = try double.logProbability(x, context: c)
        let b = try float.logProbability(x.converted(to: Float.self), context: c.converted(to: Float.self))
        for i in 0..<7 { #expect(abs(Double(b[i]) - a[i]) <= 1e-4 * max(1, abs(a[i]))) }
    }

    /// One shared context row gives the same draws as that row repeated, and one sample per
    /// context row follows its context.
    @Test func sampling() throws {
        let flow = try Self.flow(Double.self)
        let c = try Matrix<Double>([[0.3, 1.2]])
        var g1 = SeededGenerator(seed: 4), g2 = SeededGenerator(seed: 4)
        let shared = try flow.sample(count: 9, context: c, using: &g1)
        let repeated = try flow.sample(count: 9, context: c.rows(at: Array(repeating: 0, count: 9)), using: &g2)
        #expect(shared.shape == [9, 4])
        #expect(shared == repeated)
        var g3 = SeededGenerator(seed: 4)
        let z = StandardNormal<Double>(features: 4).sample(count: 9, using: &g3)
        let decoded = try flow.decode(z, context: c.rows(at: Array(repeating: 0, count: 9))).output
        #expect(try (decoded - shared).maxAbs <= 1e-12)
    }

    @Test func missingOrWrongContextIsATypedError() throws {
        let flow = try Self.flow(Double.self)
        let x = Matrix<Double>(rows: 3, columns: 4)
        #expect(throws: InvertNNError.self) { try flow.logProbability(x) }
        #expect(throws: InvertNNError.self) { try flow.logProbability(x, context: Matrix(rows: 3, columns: 3)) }
        #expect(throws: InvertNNError.self) { try flow.logProbability(x, context: Matrix(rows: 2, columns: 2)) }
        var g = SeededGenerator(seed: 1)
        #expect(throws: InvertNNError.self) { try flow.sample(count: 3, using: &g) }
        #expect(throws: InvertNNError.self) { try flow.sample(count: 3, context: Matrix(rows: 2, columns: 2), using: &g) }
        var nan = Matrix<Double>(rows: 3, columns: 2)
        nan[1, 1] = .nan
        #expect(throws: InvertNNError.self) { try flow.logProbability(x, context: nan) }
        let unconditional = try FlowPresets.realNVP(features: 4, couplings: 2, hiddenSizes: [8], as: Double.self)
        #expect(throws: InvertNNError.self) { try unconditional.logProbability(x, context: Matrix(rows: 3, columns: 2)) }
        // A conditional transform needs an encoder of its width.
        #expect(throws: InvertNNError.self) { try NormalizingFlow(transform: flow.transform) }
        let narrow = try ContextEncoder<Double>(features: 2)
        #expect(throws: InvertNNError.self) { try NormalizingFlow(transform: flow.transform, contextEncoder: narrow) }
    }

    /// A zero-width context is no context: an unconditional flow gives the same densities with
    /// `nil` and with a `[batch, 0]` context, bit for bit.
    @Test func emptyContextIsUnconditional() throws {
        let flow = try FlowPresets.realNVP(features: 4, couplings: 2, hiddenSizes: [8], as: Double.self)
        var rng = SeededGenerator(seed: 2)
        let x = Matrix<Double>.randomNormal(rows: 5, columns: 4, using: &rng)
        #expect(try flow.logProbability(x) == flow.logProbability(x, context: Matrix(rows: 5, columns: 0)))
    }

    /// One-hot class labels: each class has its own density; a label out of range is an error.
    @Test func oneHotClasses() throws {
        var rng = SeededGenerator(seed: 9)
        let encoder = try ContextEncoder<Double>(features: 1, encoding: .oneHot(classes: 3))
        let flow = try FlowPresets.realNVP(features: 4, couplings: 2, hiddenSizes: [8], context: encoder, as: Double.self)
        for p in flow.parameters {
            try p.assign(p.value + Matrix.randomNormal(rows: p.value.rows, columns: p.value.columns, standardDeviation: 0.1, using: &rng))
        }
        let x = Matrix<Double>.randomNormal(rows: 1, columns: 4, using: &rng)
        let densities = try (0..<3).map { try flow.logProbability(x, context: Matrix([[Double($0)]]))[0] }
        #expect(Set(densities).count == 3)
        #expect(throws: InvertNNError.self) { try flow.logProbability(x, context: Matrix([[3.0]])) }
        #expect(throws: InvertNNError.self) { try flow.logProbability(x, context: Matrix([[0.5]])) }
        let (_, _, dc) = try flow.negativeLogLikelihoodGradients(x, context: Matrix([[1.0]]))
        #expect(dc == nil)
    }

    /// x | c is Gaussian with a mean linear in c: x₁ = c + 0.5ε₁, x₂ = 1 - c + 0.3ε₂, c ~ U[-2, 2].
    /// The trained conditional flow reaches the analytic conditional NLL within 0.02 nats.
    @Test func learnsAKnownConditionalGaussian() throws {
        var rng = SeededGenerator(seed: 21)
        func draw(_ n: Int) -> (Matrix<Float>, Matrix<Float>) {
            var x = Matrix<Float>(rows: n, columns: 2), c = Matrix<Float>(rows: n, columns: 1)
            for i in 0..<n {
                let ci = Float.random(in: -2...2, using: &rng)
                c[i, 0] = ci
                x[i, 0] = ci + 0.5 * rng.nextNormal(Float.self)
                x[i, 1] = 1 - ci + 0.3 * rng.nextNormal(Float.self)
            }
            return (x, c)
        }
        let (train, trainContext) = draw(4000), (validation, validationContext) = draw(1000), (test, testContext) = draw(4000)
        let encoder = try ContextEncoder<Float>(features: 1, encoding: .standardization(try Standardization(fitting: trainContext)))
        let flow = try FlowPresets.realNVP(features: 2, couplings: 4, hiddenSizes: [32, 32], mixing: .permutation,
                                          context: encoder, seed: 1, as: Float.self)
        var configuration = TrainingConfiguration.plain()
        configuration.epochs = 20
        configuration.batchSize = 128
        configuration.learningRate = 3e-3
        let trainer = try Trainer(
            flow: flow, preprocessing: .standardization(try Standardization(fitting: train)), configuration: configuration)
        let result = try trainer.fit(
            train: train, validation: validation, test: test,
            trainContext: trainContext, validationContext: validationContext, testContext: testContext)
        // The true conditional NLL of this test sample (not its expectation: no sampling error).
        var analytic = 0.0
        for i in 0..<test.rows {
            let c = Double(testContext[i, 0])
            let e1 = (Double(test[i, 0]) - c) / 0.5, e2 = (Double(test[i, 1]) - (1 - c)) / 0.3
            analytic += 0.5 * (e1 * e1 + e2 * e2) + Double.log(2 * Double.pi * 0.5 * 0.3)
        }
        analytic /= Double(test.rows)
        let testNLL = try #require(result.best.test).negativeLogLikelihood
        print("conditional Gaussian: test NLL \(testNLL), analytic \(analytic) nats")
        #expect(abs(testNLL - analytic) <= 0.02, "test NLL \(testNLL) vs analytic \(analytic)")
        #expect(throws: InvertNNError.self) {
            try trainer.fit(train: train, validation: validation)
        }
    }

    /// A conditional checkpoint (standardization + embedding, with a training state) reloads with
    /// bit-identical log p(x | c); loading it into a flow with another context encoder is refused.
    @Test func checkpointRoundTrip() throws {
        let flow = try Self.flow(Float.self)
        var rng = SeededGenerator(seed: 13)
        let x = Matrix<Float>.randomNormal(rows: 64, columns: 4, using: &rng)
        let c = Matrix<Float>.randomNormal(rows: 64, columns: 2, using: &rng)
        let trainer = try Trainer(
            flow: flow, preprocessing: .standardization(try Standardization(fitting: x)),
            configuration: TrainingConfiguration.plain(epochs: 1, batchSize: 16))
        _ = try trainer.fit(train: x, validation: x, trainContext: c, validationContext: c)
        let path = temporaryPath("conditional.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Checkpoint(flow: flow, preprocessing: trainer.preprocessing, trainingState: trainer.trainingState).write(to: path)
        let loaded = try Checkpoint<Float>.read(path: path)
        #expect(loaded.flow.contextFeatures == 2)
        #expect(loaded.flow.contextEncoder?.encodedFeatures == 3)
        #expect(loaded.trainingState != nil)
        #expect(try loaded.flow.logProbability(x, context: c) == flow.logProbability(x, context: c))
        let file = try SafeTensors.read(path: path)
        #expect(file.tensors.contains { $0.name == "context.embedding.dense0.weight" })
        let other = try Self.flow(Float.self, embedding: false)
        #expect(throws: CheckpointError.self) { try Checkpoint<Float>.load(file, into: other, path: path) }
    }
}
