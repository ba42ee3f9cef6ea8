import Foundation
import Testing
import InvertNN

/// Image shapes `[C, H, W]` by feature count for the contract: 12 and 16 are small enough for
/// the finite-difference checks, 48 is the 2×4×6.
private func imageShape(_ features: Int, mask: ImageMask) -> (Int, Int, Int) {
    switch (features, mask) {
    case (12, _): return (2, 2, 3)
    case (16, _): return (1, 4, 4)
    case (48, _): return (2, 4, 6)
    default: return (features / 4, 2, 2)
    }
}

/// Sets every parameter to N(0, σ²) entries, so the coupling is far from the identity.
private func randomize<T: Scalar>(_ parameters: [Parameter<T>], standardDeviation: Double, using g: inout SeededGenerator) throws {
    for p in parameters {
        try p.assign(Matrix.randomNormal(rows: p.value.rows, columns: p.value.columns, standardDeviation: T(standardDeviation), using: &g))
    }
}

struct ConvCouplingFactory: LayerFactory {
    var mask: ImageMask = .channels
    var conditioningBlock: CouplingBlock = .first
    var spline = false
    var hiddenChannels = [3, 4]
    /// The context width (0: unconditional).
    var contextFeatures = 0

    func conditioning(rows: Int, using generator: inout SeededGenerator) -> Matrix<Double>? {
        contextFeatures > 0 ? Matrix.randomNormal(rows: rows, columns: contextFeatures, using: &generator) : nil
    }

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var g = SeededGenerator(seed: seed)
        let (c, h, w) = imageShape(features, mask: mask)
        let layer: any InvertibleLayer<T>
        if spline {
            layer = try ConvSplineCoupling<T>(
                channels: c, height: h, width: w, transformer: try RationalQuadraticSpline<T>(bins: 4, tailBound: 3),
                hiddenChannels: hiddenChannels, mask: mask, conditioningBlock: conditioningBlock, contextFeatures: contextFeatures,
                using: &g)
        } else {
            layer = try ConvAffineCoupling<T>(
                channels: c, height: h, width: w, transformer: try AffineTransformer<T>(scaleBound: 2),
                hiddenChannels: hiddenChannels, mask: mask, conditioningBlock: conditioningBlock, contextFeatures: contextFeatures,
                using: &g)
        }
        try randomize(layer.parameters, standardDeviation: spline ? 0.15 : 0.4, using: &g)
        return layer
    }
}

/// A ``FactorOut`` keeping the first channel of a 2-channel image, with a checkerboard coupling
/// and a diagonal inside.
struct FactorOutFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var g = SeededGenerator(seed: seed)
        let (c, h, w) = imageShape(features, mask: .channels)
        let kept = c / 2
        let coupling = try ConvAffineCoupling<T>(
            channels: kept, height: h, width: w, transformer: try AffineTransformer<T>(scaleBound: 2), hiddenChannels: [3],
            mask: .checkerboard, conditioningBlock: .second, using: &g)
        try randomize(coupling.parameters, standardDeviation: 0.4, using: &g)
        let scales = (0..<(kept * h * w)).map { _ in T(Double.exp(0.3 * g.nextNormal(Double.self))) }
        let inner = try Sequential<T>([coupling, try Diagonal<T>(scales: scales)])
        return try FactorOut(inner, channels: c, height: h, width: w, keptChannels: kept)
    }
}

@Suite struct ConvCouplingTests {
    @Test func channelMaskContract() throws {
        try checkLayerContract(ConvCouplingFactory(mask: .channels, conditioningBlock: .first), features: [12, 48], batches: [1, 3])
        try checkLayerContract(ConvCouplingFactory(mask: .channels, conditioningBlock: .second), features: [12, 48], batches: [1, 3])
    }

    @Test func checkerboardContract() throws {
        try checkLayerContract(ConvCouplingFactory(mask: .checkerboard, conditioningBlock: .first), features: [12, 16, 48], batches: [1, 3])
        try checkLayerContract(ConvCouplingFactory(mask: .checkerboard, conditioningBlock: .second), features: [16], batches: [1, 3])
    }

    @Test func splineContract() throws {
        try checkLayerContract(ConvCouplingFactory(mask: .checkerboard, spline: true), features: [16], batches: [1, 3])
        try checkLayerContract(ConvCouplingFactory(mask: .channels, spline: true), features: [12], batches: [2])
    }

    @Test func splitPriorContract() throws {
        // No hidden layers: one 3×3 convolution, Glow's split prior.
        try checkLayerContract(ConvCouplingFactory(mask: .channels, hiddenChannels: []), features: [12, 48], batches: [1, 3])
    }

    /// Class-conditional images: the context enters as constant channels; the contract checks
    /// the context VJP by finite differences in both directions, and Float against Double.
    @Test func conditionalContract() throws {
        try checkLayerContract(ConvCouplingFactory(mask: .channels, contextFeatures: 3), features: [12, 48], batches: [1, 3])
        try checkLayerContract(ConvCouplingFactory(mask: .checkerboard, conditioningBlock: .second, contextFeatures: 2),
                               features: [16], batches: [2])
        try checkLayerContract(ConvCouplingFactory(mask: .channels, hiddenChannels: [], contextFeatures: 2), features: [12], batches: [3])
    }

    /// The context changes the map (each row its own), is required, and survives a checkpoint's configuration.
    @Test func conditionalContextActsPerRow() throws {
        let layer = try ConvCouplingFactory(mask: .channels, contextFeatures: 2).make(features: 12, seed: 3, Double.self)
        var g = SeededGenerator(seed: 4)
        let x = Matrix<Double>.randomNormal(rows: 2, columns: 12, using: &g)
        let c1 = try Matrix<Double>(rows: 2, columns: 2, storage: [1, 0, 0, 1])
        let c2 = try Matrix<Double>(rows: 2, columns: 2, storage: [1, 0, 1, 0])
        var k1 = LayerContext<Double>(conditioning: c1), k2 = LayerContext<Double>(conditioning: c2)
        let y1 = try layer.forward(x, context: &k1).output, y2 = try layer.forward(x, context: &k2).output
        #expect(try (y1.rows(0..<1) - y2.rows(0..<1)).maxAbs == 0)  // same context row, same output
        #expect(try (y1.rows(1..<2) - y2.rows(1..<2)).maxAbs > 1e-3)
        #expect(throws: InvertNNError.self) { try layer.forward(x) }
        let rebuilt = try ConvAffineCoupling<Double>(configuration: (layer as! ConvAffineCoupling<Double>).configuration)
        #expect(rebuilt.contextFeatures == 2 && rebuilt.conditioner.channels[0] == 1 + 2)
    }

    @Test func factorOutContract() throws {
        try checkLayerContract(FactorOutFactory(), features: [12, 48], batches: [1, 3])
    }

    /// With zero conditioner weights only the last convolution's bias acts: every transformed
    /// entry of channel `c` is `x·e^{s_c} + t_c` with `s_c = 2·tanh(b_c/2)`, known in closed form.
    @Test func biasOnlyConditionerIsAKnownAffineMap() throws {
        var g = SeededGenerator(seed: 4)
        let layer = try ConvAffineCoupling<Double>(
            channels: 4, height: 3, width: 2, transformer: try AffineTransformer<Double>(scaleBound: 2), hiddenChannels: [],
            mask: .channels, conditioningBlock: .second, using: &g)
        // Output channels: ŝ for transformed channels 0, 1 then t for 0, 1.
        try layer.conditioner.convolutions[0].bias.assign(Matrix(row: [0.5, -1.0, 0.25, 3.0]))
        let x = Matrix<Double>.randomNormal(rows: 2, columns: 24, using: &g)
        let out = try layer.forward(x)
        let s = [2 * Double.tanh(0.25), 2 * Double.tanh(-0.5)], t = [0.25, 3.0]
        for r in 0..<2 {
            for q in 0..<24 {
                let c = q / 6
                let expected = c < 2 ? x[r, q] * Double.exp(s[c]) + t[c] : x[r, q]
                #expect(abs(out.output[r, q] - expected) <= 1e-14 * max(1, abs(expected)))
            }
            #expect(abs(out.logAbsDet[r] - 6 * (s[0] + s[1])) <= 1e-13)
        }
    }

    @Test func checkerboardLeavesConditioningPixelsAndStartsAsTheIdentity() throws {
        var g = SeededGenerator(seed: 5)
        let layer = try ConvAffineCoupling<Double>(
            channels: 1, height: 3, width: 3, transformer: try AffineTransformer<Double>(), hiddenChannels: [4, 4],
            mask: .checkerboard, conditioningBlock: .first, using: &g)
        let x = Matrix<Double>.randomNormal(rows: 2, columns: 9, using: &g)
        #expect(try layer.forward(x).output == x)  // zero last convolution: the identity
        try randomize(layer.parameters, standardDeviation: 0.5, using: &g)
        let y = try layer.forward(x).output
        for q in 0..<9 where (q / 3 + q % 3) % 2 == 0 { #expect(y[0, q] == x[0, q] && y[1, q] == x[1, q]) }
        #expect((0..<9).contains { (($0 / 3 + $0 % 3) % 2 == 1) && y[0, $0] != x[0, $0] })
    }

    @Test func rejectsUnsplittableImages() throws {
        var g = SeededGenerator(seed: 1)
        let affine = try AffineTransformer<Double>()
        #expect(throws: InvertNNError.self) {
            try ConvAffineCoupling<Double>(channels: 1, height: 4, width: 4, transformer: affine, hiddenChannels: [4], mask: .channels, using: &g)
        }
        #expect(throws: InvertNNError.self) {
            try ConvAffineCoupling<Double>(channels: 3, height: 1, width: 1, transformer: affine, hiddenChannels: [4], mask: .checkerboard, using: &g)
        }
        let layer = try ConvAffineCoupling<Double>(channels: 2, height: 2, width: 2, transformer: affine, hiddenChannels: [4], using: &g)
        #expect(throws: InvertNNError.self) { try layer.forward(Matrix(rows: 1, columns: 7)) }
        #expect(throws: InvertNNError.self) { try FactorOut<Double>(layer, features: 8, keptFeatures: 4) }
    }
}

/// The whole multi-scale model, small: 1×8×8 images, 2 levels, 1 step, width 4.
@Suite struct GlowPresetTests {
    func smallGlow<T: Scalar>(_: T.Type, seed: UInt64 = 3) throws -> NormalizingFlow<T> {
        let flow = try FlowPresets.glow(channels: 1, height: 8, width: 8, levels: 2, steps: 1, hiddenChannels: 4, seed: seed, as: T.self)
        var g = SeededGenerator(seed: seed &+ 11)
        // Initialize the ActNorms on a batch, then move every parameter off its initial value.
        _ = try flow.logProbability(Matrix<T>.randomNormal(rows: 16, columns: 64, using: &g))
        for p in flow.parameters {
            for i in 0..<p.count where p.trainableMask?[i] ?? true { p.withUnsafeMutableValue { $0[i] += T(0.2) * g.nextNormal(T.self) } }
        }
        return flow
    }

    @Test func structureAndDimensions() throws {
        let flow = try FlowPresets.glow(channels: 1, height: 28, width: 28, levels: 2, steps: 8, hiddenChannels: 64, as: Float.self)
        #expect(flow.transform.inputFeatures == 784)
        // Per level 8 × (ActNorm 2C + LU C² + C + conditioner), prior conv at level 1.
        let conditioner = { (c: Int) in (c / 2 * 9 * 64 + 64) + (64 * 64 + 64) + (64 * 9 * c + c) }
        let level1 = 8 * (2 * 4 + 16 + 4 + conditioner(4)) + (2 * 9 * 4 + 4)
        let level2 = 8 * (2 * 8 + 64 + 8 + conditioner(8))
        // LU: the strictly lower and upper triangles plus log σ: C² parameters, plus the bias.
        #expect(flow.trainableParameterCount == level1 + level2, "\(flow.trainableParameterCount)")
        #expect(throws: InvertNNError.self) { try FlowPresets.glow(channels: 1, height: 28, width: 28, levels: 3, as: Float.self) }
    }

    /// Exact log-likelihood: the log-det of the whole transform against a finite-difference
    /// Jacobian (64×64, LAPACK), round trips, and sampling at a temperature.
    @Test func exactLikelihoodBothDirections() throws {
        let flow = try smallGlow(Double.self)
        var g = SeededGenerator(seed: 8)
        let x = Matrix<Double>.randomNormal(rows: 3, columns: 64, using: &g)
        let latent = try flow.transform.inverse(x)
        let back = try flow.transform.forward(latent.output)
        #expect(try (back.output - x).maxAbs <= 1e-11)
        for i in 0..<3 { #expect(abs(back.logAbsDet[i] + latent.logAbsDet[i]) <= 1e-11) }
        let fd = try finiteDifferenceLogAbsDet(x.row(0), step: 1e-6) { try flow.transform.inverse($0).output }
        #expect(abs(fd - latent.logAbsDet[0]) <= 1e-6 * max(1, abs(fd)), "\(fd) vs \(latent.logAbsDet[0])")
        #expect(abs(latent.logAbsDet[0]) > 0.1)  // the parameters are not at the identity
        // Sampling at temperature τ maps τ·z of the same latent draws.
        var s1 = SeededGenerator(seed: 1), s2 = SeededGenerator(seed: 1)
        let cold = try flow.sample(count: 2, temperature: 0.5, using: &s1)
        var z = flow.base.sample(count: 2, temperature: 1, using: &s2)
        z.withUnsafeMutableBufferPointer { z in for i in z.indices { z[i] *= 0.5 } }
        #expect(try (cold - flow.transform.forward(z).output).maxAbs <= 1e-12)
    }

    /// Taped training gradients equal the rebuilding mode's (which inverts layer by layer) and
    /// finite differences of the loss; Float follows Double.
    @Test func trainingGradients() throws {
        let flow = try smallGlow(Double.self)
        var g = SeededGenerator(seed: 9)
        let x = Matrix<Double>.randomNormal(rows: 4, columns: 64, using: &g)
        flow.zeroGradients()
        let loss = try flow.accumulateNegativeLogLikelihoodGradient(x)
        let taped = flow.parameters.map { $0.gradient }
        // Rebuilding mode: the transform's own VJP from its output.
        flow.zeroGradients()
        let z = try flow.transform.inverse(x)
        var dz = z.output
        dz.withUnsafeMutableBufferPointer { dz in for i in dz.indices { dz[i] /= 4 } }  // d(-log N(z))/dz / B
        _ = try flow.transform.inverseBackward(
            input: x, output: z.output, outputGradient: dz, logAbsDetGradient: [Double](repeating: -0.25, count: 4))
        for (a, p) in zip(taped, flow.parameters) { #expect(try (a - p.gradient).maxAbs <= 1e-10 * max(1, a.maxAbs), "\(p.name)") }
        // Finite differences on a few entries of each parameter.
        let h = 1e-6
        for p in flow.parameters {
            for i in Set([0, p.count / 2, p.count - 1]) where p.trainableMask?[i] ?? true {
                let old = p.value.storage[i]
                p.withUnsafeMutableValue { $0[i] = old + h }
                let up = try flow.negativeLogLikelihood(x)
                p.withUnsafeMutableValue { $0[i] = old - h }
                let down = try flow.negativeLogLikelihood(x)
                p.withUnsafeMutableValue { $0[i] = old }
                let fd = (up - down) / (2 * h)
                #expect(abs(fd - taped[flow.parameters.firstIndex { $0 === p }!].storage[i]) <= 1e-5 * max(1, abs(fd)), "\(p.name)[\(i)]")
            }
        }
        // Float against Double with the same parameters.
        let floatFlow = try smallGlow(Float.self)
        for (p, q) in zip(flow.parameters, floatFlow.parameters) { try q.assign(p.value.converted(to: Float.self)) }
        let floatLoss = try floatFlow.negativeLogLikelihood(x.converted(to: Float.self))
        #expect(abs(Double(floatLoss) - loss) <= 1e-4 * abs(loss))
    }

    /// Sampling is decoding: `encode(decode(z)) = z` to 1e-10 through the whole multi-scale model
    /// (the factored-out latents of every level included) at the sampling temperatures, and the
    /// log-dets of the two directions cancel.
    @Test func decodeThenEncodeRecoversTheLatent() throws {
        for levels in [2, 3] {
            let flow = try FlowPresets.glow(channels: 1, height: 8, width: 8, levels: levels, steps: 2, hiddenChannels: 4, seed: 5, as: Double.self)
            var g = SeededGenerator(seed: 12)
            _ = try flow.logProbability(Matrix<Double>.randomNormal(rows: 16, columns: 64, using: &g))
            for p in flow.parameters {
                for i in 0..<p.count where p.trainableMask?[i] ?? true { p.withUnsafeMutableValue { $0[i] += 0.2 * g.nextNormal(Double.self) } }
            }
            for temperature in [1.0, 0.7] {
                let z = flow.base.sample(count: 5, temperature: temperature, using: &g)
                let x = try flow.decode(z)
                let back = try flow.encode(x.output)
                // Relative to the data's scale (DESIGN.md §5.1): three levels of randomized ActNorms
                // reach |x| ≈ 8000 here.
                let scale = max(1, x.output.maxAbs)
                #expect(try (back.output - z).maxAbs <= 1e-10 * scale, "levels \(levels), T \(temperature)")
                for i in 0..<5 { #expect(abs(back.logAbsDet[i] + x.logAbsDet[i]) <= 1e-10 * scale) }
            }
        }
    }

    /// The split prior is one density on both paths. A sample drawn with a fixed seed has
    /// `log p(x)` from the density path (`logProbability`, data → latent) equal to the sampling
    /// path's `log N(ε) - log|det ∂x/∂ε|`; the factored-out half `z₂` that sampling produces is
    /// `μ(z₁) + T·σ(z₁)·ε₂` with `μ`, `log σ` read off the prior convolution, channel by channel;
    /// and the prior's share of `log p` equals `log N(z₂; μ, σ²)` written out.
    @Test func splitPriorDensityMatchesSampling() throws {
        let flow = try smallGlow(Double.self)
        let layers = flow.transform.layers
        let prior = try #require(layers[1] as? ConvAffineCoupling<Double>)
        #expect(prior.conditioner.hiddenChannels.isEmpty && layers[0] is FactorOut<Double>)
        for temperature in [1.0, 0.7] {
            var g1 = SeededGenerator(seed: 21), g2 = SeededGenerator(seed: 21)
            let x = try flow.sample(count: 4, temperature: temperature, using: &g1)
            let epsilon = flow.base.sample(count: 4, temperature: temperature, using: &g2)
            let decoded = try flow.decode(epsilon)
            #expect(try (decoded.output - x).maxAbs == 0)
            let baseLogP = try flow.base.logProbability(epsilon)
            let density = try flow.logProbability(x)
            for i in 0..<4 {
                #expect(abs(density[i] - (baseLogP[i] - decoded.logAbsDet[i])) <= 1e-9 * max(1, abs(density[i])))
            }
            // The level-1 image [4, 4, 4] entering the prior (generative order: after FactorOut).
            let h = try layers[0].forward(epsilon).output
            let z = try prior.forward(h).output
            let conditioner = try prior.conditioner.forward(h.columns(0..<32)).output  // ŝ for 2 channels, then t
            for r in 0..<4 {
                var logN = 0.0, normalized = 0.0
                for j in 0..<32 {
                    let s = 2 * Double.tanh(conditioner[r, j] / 2), mu = conditioner[r, 32 + j]
                    let e = epsilon[r, 32 + j], z2 = z[r, 32 + j]
                    #expect(abs(z2 - (mu + Double.exp(s) * e)) <= 1e-12 * max(1, abs(z2)))
                    #expect(abs(z[r, j] - h[r, j]) == 0)  // the kept half passes
                    let sd = Double.exp(s)
                    logN += -0.5 * Double.log(2 * .pi) - s - 0.5 * ((z2 - mu) / sd) * ((z2 - mu) / sd)
                    normalized += -0.5 * Double.log(2 * .pi) - 0.5 * e * e
                }
                // log N(z₂; μ, σ²) = log N(ε₂) + the prior's inverse log-det (-Σ s).
                var inverseContext = LayerContext<Double>()
                let priorInverse = try prior.inverse(z.rows(r..<(r + 1)), context: &inverseContext)
                #expect(abs(logN - (normalized + priorInverse.logAbsDet[0])) <= 1e-10 * max(1, abs(logN)))
                #expect(try (priorInverse.output - h.rows(r..<(r + 1))).maxAbs <= 1e-12)
            }
            // The temperature scales ε (every level's), nothing else.
            if temperature < 1 {
                var g3 = SeededGenerator(seed: 21)
                let unit = flow.base.sample(count: 4, temperature: 1, using: &g3)
                #expect(try (unit - (1 / temperature) * epsilon).maxAbs <= 1e-12)
            }
        }
    }

    @Test func checkpointRoundTrip() throws {
        for seed: UInt64 in [3] {
            let flow = try smallGlow(Float.self, seed: seed)
            let path = temporaryPath("glow-\(seed).safetensors")
            defer { try? FileManager.default.removeItem(atPath: path) }
            let preprocessing = Preprocessing<Float>.standardization(
                try Standardization(means: [Float](repeating: 0, count: 64), scales: [Float](repeating: 1, count: 64)))
            try Checkpoint(flow: flow, preprocessing: preprocessing).write(to: path)
            let loaded = try Checkpoint<Float>.read(path: path).flow
            var g = SeededGenerator(seed: 2)
            let x = Matrix<Float>.randomNormal(rows: 5, columns: 64, using: &g)
            #expect(try loaded.logProbability(x) == flow.logProbability(x))
            var g1 = SeededGenerator(seed: 3), g2 = SeededGenerator(seed: 3)
            #expect(try loaded.sample(count: 4, temperature: 0.7, using: &g1) == flow.sample(count: 4, temperature: 0.7, using: &g2))
            #expect(try architecture(of: loaded.transform) == architecture(of: flow.transform))
        }
    }
}

@Suite struct ConvCouplingChunkTests {
    /// An untaped pass on more rows than one conditioner chunk equals the row-by-row result.
    @Test func largeBatchesMatchRowByRow() throws {
        let layer = try ConvCouplingFactory(mask: .checkerboard).make(features: 12, seed: 5, Double.self)
        var g = SeededGenerator(seed: 6)
        let rows = ConvAffineCoupling<Double>.untapedChunkRows * 2 + 3
        let x = Matrix<Double>.randomNormal(rows: rows, columns: 12, using: &g)
        let whole = try layer.forward(x)
        for r in [0, 127, 128, 200, rows - 1] {
            let single = try layer.forward(x.rows(r..<(r + 1)))
            #expect(try (single.output - whole.output.rows(r..<(r + 1))).maxAbs <= 1e-13)
            #expect(abs(single.logAbsDet[0] - whole.logAbsDet[r]) <= 1e-13)
        }
    }
}
