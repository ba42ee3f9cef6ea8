import Testing
@testable import InvertNN

/// MAF layers with non-trivial MADEs (random last layer and biases), in a reversed or random
/// order, optionally reading a 3-wide context.
struct MaskedAutoregressiveFactory: LayerFactory {
    var randomOrder = false
    var contextFeatures = 0
    var hiddenSizes = [16, 16]
    var activation: MLPActivation = .relu

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try makeLayer(features: features, seed: seed, T.self)
    }

    func makeLayer<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> AffineMaskedAutoregressive<T> {
        var rng = SeededGenerator(seed: seed)
        let order = randomOrder ? MADE<T>.randomOrder(features: features, using: &rng) : Array((0..<features).reversed())
        let layer = try AffineMaskedAutoregressive<T>(
            features: features, transformer: try AffineTransformer(scaleBound: 2), hiddenSizes: hiddenSizes, order: order,
            activation: activation, zeroInitializeLastLayer: false, contextFeatures: contextFeatures, using: &rng)
        for b in layer.conditioner.network.biases {
            b.value = Matrix.randomNormal(rows: 1, columns: b.value.columns, standardDeviation: T(0.3), using: &rng)
        }
        return layer
    }

    func conditioning(rows: Int, using generator: inout SeededGenerator) -> Matrix<Double>? {
        contextFeatures > 0 ? Matrix.randomNormal(rows: rows, columns: contextFeatures, using: &generator) : nil
    }
}

/// Spline MAF layers (K = 5 on [-3, 3]) with random MADEs.
struct SplineMaskedAutoregressiveFactory: LayerFactory {
    var contextFeatures = 0

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        let layer = try SplineMaskedAutoregressive<T>(
            features: features, hiddenSizes: [12], bins: 5, tailBound: 3,
            order: MADE<T>.randomOrder(features: features, using: &rng), zeroInitializeLastLayer: false,
            contextFeatures: contextFeatures, using: &rng)
        for b in layer.conditioner.network.biases {
            b.value = Matrix.randomNormal(rows: 1, columns: b.value.columns, standardDeviation: T(0.3), using: &rng)
        }
        // Moderate slopes: a chain of D steep splines amplifies Float rounding along the order
        // (the D-pass direction), which is conditioning, not an error of the layer.
        if let last = layer.conditioner.network.weights.last { last.value = T(0.15) * last.value }
        return layer
    }

    func conditioning(rows: Int, using generator: inout SeededGenerator) -> Matrix<Double>? {
        contextFeatures > 0 ? Matrix.randomNormal(rows: rows, columns: contextFeatures, using: &generator) : nil
    }
}

/// The MAF layer inverted: an IAF (sampling in one pass, density in D).
struct InverseAutoregressiveFactory: LayerFactory {
    var base = MaskedAutoregressiveFactory(randomOrder: true, contextFeatures: 2)

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        Inverted<T>(try base.makeLayer(features: features, seed: seed, T.self))
    }

    func conditioning(rows: Int, using generator: inout SeededGenerator) -> Matrix<Double>? {
        base.conditioning(rows: rows, using: &generator)
    }
}

@Suite struct MaskedAutoregressiveTests {
    @Test(arguments: [false, true], [0, 3])
    func contract(randomOrder: Bool, contextFeatures: Int) throws {
        try checkLayerContract(MaskedAutoregressiveFactory(randomOrder: randomOrder, contextFeatures: contextFeatures))
    }

    @Test func contractWithTanhAndNoHiddenLayer() throws {
        try checkLayerContract(MaskedAutoregressiveFactory(randomOrder: true, hiddenSizes: [], activation: .tanh),
                               features: [1, 3, 17], batches: [1, 7])
        try checkLayerContract(MaskedAutoregressiveFactory(contextFeatures: 2, hiddenSizes: [9], activation: .tanh),
                               features: [1, 2, 17], batches: [1, 7])
    }

    @Test(arguments: [0, 3])
    func splineContract(contextFeatures: Int) throws {
        // Random splines have bins whose slopes differ by 10²-10³: one spline's own round trip then
        // errs by up to ~5e-12 at |x| ≈ 2.7 (measured), and in the D-pass direction a Float error
        // in an early feature moves the parameters of every later one (conditioning of the chain).
        var tolerances = ContractTolerances()
        tolerances.roundTrip = 1e-11
        tolerances.logDetCancel = 1e-11
        tolerances.floatRoundTrip = 1e-4
        tolerances.floatVersusDouble = 1e-3
        try checkLayerContract(SplineMaskedAutoregressiveFactory(contextFeatures: contextFeatures), features: [1, 2, 5, 17, 64],
                               tolerances: tolerances)
    }

    /// A zero-initialized spline MAF layer is the identity (unit knot derivatives, equal bins).
    @Test func splineLayerStartsAsTheIdentity() throws {
        var rng = SeededGenerator(seed: 3)
        let layer = try SplineMaskedAutoregressive<Double>(features: 4, hiddenSizes: [8], bins: 6, tailBound: 3.0, using: &rng)
        let x = Matrix<Double>.randomNormal(rows: 9, columns: 4, standardDeviation: 2, using: &rng)
        let out = try layer.inverse(x)
        #expect(try (out.output - x).maxAbs <= 1e-12)
        #expect(out.logAbsDet.allSatisfy { abs($0) <= 1e-12 })
        let json = try architecture(of: layer)
        #expect(json.contains("\"type\":\"SplineMaskedAutoregressive\""))
        #expect(try architecture(of: try LayerRegistry.layer(json: json, as: Double.self)) == json)
    }

    @Test func contractOfTheInvertedLayer() throws {
        try checkLayerContract(InverseAutoregressiveFactory(), features: [1, 3, 17], batches: [1, 7])
    }

    /// The Jacobian of x ↦ MADE outputs, by central differences, is exactly 0 wherever feature k is
    /// not before feature i in the order (all P outputs of i), and nonzero where it is (tanh: no
    /// dead units); the context reaches every output.
    @Test(arguments: [0, 2])
    func madeJacobianIsStrictlyLowerTriangularInTheOrder(contextFeatures: Int) throws {
        var rng = SeededGenerator(seed: 41)
        let d = 6, p = 2
        let order = MADE<Double>.randomOrder(features: d, using: &rng)
        let made = try MADE<Double>(
            features: d, parametersPerFeature: p, hiddenSizes: [10, 7], order: order, contextFeatures: contextFeatures,
            activation: .tanh, zeroInitializeLastLayer: false, using: &rng)
        for b in made.network.biases { b.value = Matrix.randomNormal(rows: 1, columns: b.value.columns, standardDeviation: 0.3, using: &rng) }
        let input = Matrix<Double>.randomNormal(rows: 1, columns: d + contextFeatures, using: &rng).row(0)
        let h = 1e-6
        var position = [Int](repeating: 0, count: d)
        for (k, feature) in order.enumerated() { position[feature] = k }
        for k in 0..<(d + contextFeatures) {
            var plus = input, minus = input
            plus[k] += h
            minus[k] -= h
            let fp = try made.forward(Matrix(row: plus)).output.storage
            let fm = try made.forward(Matrix(row: minus)).output.storage
            for q in 0..<p {
                for i in 0..<d {
                    let derivative = (fp[q * d + i] - fm[q * d + i]) / (2 * h)
                    let allowed = k >= d || position[k] < position[i]
                    if allowed {
                        #expect(abs(derivative) > 1e-9, "output (\(q), \(i)) should depend on input \(k)")
                    } else {
                        #expect(derivative == 0, "output (\(q), \(i)) depends on input \(k): \(derivative)")
                    }
                }
            }
        }
        // Masked entries are stored zeros and fixed.
        for w in made.network.weights {
            let mask = try #require(w.trainableMask)
            for i in 0..<w.count where !mask[i] { #expect(w.value.storage[i] == 0) }
        }
    }

    /// The D-pass direction calls the MADE at most D times per batch, and its VJP at most D - 1
    /// input-gradient iterations.
    @Test func samplingPassesAreBoundedByTheFeatureCount() throws {
        for d in [1, 2, 5, 17] {
            let layer = try MaskedAutoregressiveFactory(randomOrder: true).makeLayer(features: d, seed: 3, Double.self)
            var rng = SeededGenerator(seed: 9)
            let u = Matrix<Double>.randomNormal(rows: 33, columns: d, using: &rng)
            let out = try layer.forward(u)
            #expect(layer.lastForwardPasses <= d && layer.lastForwardPasses >= 1)
            let dy = Matrix<Double>.randomNormal(rows: 33, columns: d, using: &rng)
            _ = try layer.forwardBackward(input: u, output: out.output, outputGradient: dy,
                                          logAbsDetGradient: [Double](repeating: 0.5, count: 33))
            #expect(layer.lastBackwardIterations <= max(0, d - 1))
            layer.zeroGradients()
        }
        // A layer at its zero initialization depends on nothing: the second pass finds nothing changed.
        var rng = SeededGenerator(seed: 1)
        let identity = try AffineMaskedAutoregressive<Double>(
            features: 8, transformer: try AffineTransformer(scaleBound: 2), hiddenSizes: [8], using: &rng)
        _ = try identity.forward(Matrix<Double>.randomNormal(rows: 4, columns: 8, using: &rng))
        #expect(identity.lastForwardPasses == 2)
    }

    /// The MAF preset's density (one pass per layer) and the IAF (its inverse, sampling in one pass
    /// per layer) agree: x = IAF sample of z, and the MAF density of x equals log p(z) - log-det.
    @Test func mafDensityAndIAFInverseAgree() throws {
        let d = 5
        let flow = try FlowPresets.maskedAutoregressiveFlow(
            features: d, layers: 4, hiddenSizes: [12, 12], orders: .random, seed: 7, as: Double.self)
        var rng = SeededGenerator(seed: 8)
        for p in flow.parameters {
            for i in 0..<p.count where p.trainableMask?[i] ?? true { p.value.storage[i] += 0.3 * rng.nextNormal(Double.self) }
        }
        let iaf = Inverted<Double>(flow.transform)
        let z = Matrix<Double>.randomNormal(rows: 50, columns: d, using: &rng)
        let sampled = try iaf.forward(z)  // MAF inverse: one MADE pass per layer
        for case let layer as AffineMaskedAutoregressive<Double> in flow.transform.layers {
            #expect(layer.lastForwardPasses == 0, "sampling the IAF never runs the D-pass direction")
        }
        let base = StandardNormal<Double>(features: d)
        let logPZ = try base.logProbability(z)
        let iafDensity = zip(logPZ, sampled.logAbsDet).map { $0 - $1 }  // log q(x) of the IAF at its own sample
        // The same points under the IAF's density direction (D passes per layer) ...
        let back = try iaf.inverse(sampled.output)
        #expect(try (back.output - z).maxAbs <= 1e-10)
        let logPBack = try base.logProbability(back.output)
        for i in 0..<z.rows {
            #expect(abs((logPBack[i] + back.logAbsDet[i]) - iafDensity[i]) <= 1e-10)
        }
        // ... and the MAF density of a point x equals the IAF density of the latent it maps to.
        let x = Matrix<Double>.randomNormal(rows: 50, columns: d, using: &rng)
        let mafLogDensity = try flow.logProbability(x)
        let u = try flow.encode(x)
        let generated = try flow.transform.forward(u.output)  // D passes per layer
        #expect(try (generated.output - x).maxAbs <= 1e-10)
        for i in 0..<x.rows {
            #expect(abs(mafLogDensity[i] - (try base.logProbability(u.output)[i] - generated.logAbsDet[i])) <= 1e-10)
        }
    }

    @Test func checkpointRebuildsTheLayer() throws {
        let layer = try MaskedAutoregressiveFactory(randomOrder: true, contextFeatures: 2).makeLayer(features: 5, seed: 4, Double.self)
        let json = try architecture(of: layer)
        #expect(json.contains("\"type\":\"AffineMaskedAutoregressive\""))
        let rebuilt = try LayerRegistry.layer(json: json, as: Double.self)
        #expect(try architecture(of: rebuilt) == json)
        for (a, b) in zip(layer.parameters, rebuilt.parameters) {
            #expect(a.trainableMask == b.trainableMask)
            b.value = a.value
        }
        var rng = SeededGenerator(seed: 2)
        let x = Matrix<Double>.randomNormal(rows: 6, columns: 5, using: &rng)
        var context = LayerContext<Double>(conditioning: Matrix.randomNormal(rows: 6, columns: 2, using: &rng))
        var context2 = context
        #expect(try rebuilt.inverse(x, context: &context).output == layer.inverse(x, context: &context2).output)
    }

    @Test func badArgumentsThrow() throws {
        var rng = SeededGenerator(seed: 1)
        #expect(throws: InvertNNError.self) {
            _ = try MADE<Double>(features: 3, parametersPerFeature: 2, hiddenSizes: [4], order: [0, 0, 1], using: &rng)
        }
        #expect(throws: InvertNNError.self) {
            _ = try MADE<Double>(features: 0, parametersPerFeature: 2, hiddenSizes: [4], using: &rng)
        }
        let made = try MADE<Double>(features: 3, parametersPerFeature: 3, hiddenSizes: [4], using: &rng)
        #expect(throws: InvertNNError.self) {
            _ = try AffineMaskedAutoregressive<Double>(features: 3, transformer: try AffineTransformer(scaleBound: 2), conditioner: made)
        }
        let conditional = try AffineMaskedAutoregressive<Double>(
            features: 3, transformer: try AffineTransformer(scaleBound: 2), hiddenSizes: [4], contextFeatures: 2, using: &rng)
        #expect(throws: InvertNNError.self) { _ = try conditional.inverse(Matrix<Double>(rows: 2, columns: 3)) }
        #expect(throws: InvertNNError.self) { _ = try conditional.forward(Matrix<Double>(rows: 2, columns: 4)) }
    }
}
