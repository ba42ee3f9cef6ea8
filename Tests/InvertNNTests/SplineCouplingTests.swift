import Foundation
import Testing
@testable import InvertNN

/// Spline coupling layers with non-trivial conditioners (random last layer and biases), so every
/// row has its own bins; `inputScale` spreads the inputs so that some fall in the tails.
struct SplineCouplingFactory: LayerFactory {
    var conditioningBlock: CouplingBlock = .first
    var bins = 5
    var tailBound = 2.0
    var hiddenSizes = [8]
    var inputScale = 1.0
    /// Width of the conditioning context (0: unconditional).
    var contextFeatures = 0

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        let layer = try SplineCoupling<T>(
            features: features, hiddenSizes: hiddenSizes, conditioningBlock: conditioningBlock, bins: bins,
            tailBound: T(tailBound), zeroInitializeLastLayer: false, contextFeatures: contextFeatures, using: &rng)
        for b in layer.conditioner.biases {
            b.value = Matrix.randomNormal(rows: 1, columns: b.value.columns, standardDeviation: T(0.3), using: &rng)
        }
        // Moderate spline parameters (|u| ≲ 1, slopes within about [0.1, 10]): the contract's fixed
        // tolerances assume a well-conditioned map; extreme parameters are checked entry by entry.
        if let last = layer.conditioner.weights.last { last.value = T(0.3) * last.value }
        return layer
    }

    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double> {
        Matrix.randomNormal(rows: rows, columns: features, standardDeviation: inputScale, using: &generator)
    }

    func conditioning(rows: Int, using generator: inout SeededGenerator) -> Matrix<Double>? {
        contextFeatures > 0 ? Matrix.randomNormal(rows: rows, columns: contextFeatures, using: &generator) : nil
    }
}

/// Additive (NICE) coupling layers with random conditioners.
struct AdditiveCouplingFactory: LayerFactory {
    var conditioningBlock: CouplingBlock = .first

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        let layer = try AdditiveCoupling<T>(
            features: features, transformer: AdditiveTransformer(), hiddenSizes: [8], conditioningBlock: conditioningBlock,
            zeroInitializeLastLayer: false, using: &rng)
        for b in layer.conditioner.biases {
            b.value = Matrix.randomNormal(rows: 1, columns: b.value.columns, standardDeviation: T(0.5), using: &rng)
        }
        return layer
    }
}

/// The knots of a spline from its unconstrained parameters, written independently of the
/// library from the parametrization the type documents (softmax widths and heights with minima,
/// `δ = m_δ + softplus(u_δ)`, boundary derivatives 1).
func splineKnots(_ u: [Double], bins K: Int, bound B: Double, minimum: Double = 1e-3)
    -> (xs: [Double], ys: [Double], derivatives: [Double]) {
    func softmax(_ v: ArraySlice<Double>) -> [Double] {
        let top = v.max()!, e = v.map { exp($0 - top) }, s = e.reduce(0, +)
        return e.map { $0 / s }
    }
    func cumulative(_ p: [Double]) -> [Double] {
        var out = [-B]
        for q in p { out.append(out.last! + 2 * B * (minimum + (1 - Double(K) * minimum) * q)) }
        out[K] = B
        return out
    }
    let inner = u[(2 * K)...].map { minimum + log1p(exp($0)) }
    return (cumulative(softmax(u[0..<K])), cumulative(softmax(u[K..<(2 * K)])), [1] + inner + [1])
}

@Suite struct SplineCouplingTests {
    /// Issue 18's known values (Double, abs 1e-12): K = 3 on [-2, 2] from uw, uh, ud.
    static let knownParameters: [Double] = [0.5, -0.3, 0.1, -0.2, 0.4, 0.0, 0.3, -0.5]
    static let knownX: [Double] = [-2.5, -1.5, -0.3, 0, 0.7, 1.9, 3.0]
    static let knownY: [Double] = [-2.5, -1.663457754497, -1.144071608894, -0.869785841471, 0.771392742830, 1.896932609654, 3.0]
    static let knownLogDerivatives: [Double] = [0, -0.739802848756, -0.480261027943, 0.483305901473, -0.391339629234, 0.057668981275, 0]

    /// A coupling on 2 features whose conditioner ignores its input and outputs `u` (zero
    /// weights, bias `u`), so row `i`'s feature 1 goes through the spline with parameters `u`.
    static func constantSpline(_ u: [Double], bins: Int, bound: Double) throws -> SplineCoupling<Double> {
        let mlp = try MLP<Double>(weights: [Matrix(rows: u.count, columns: 1)], biases: [u])
        return try SplineCoupling(features: 2, transformer: try RationalQuadraticSpline(bins: bins, tailBound: bound), conditioner: mlp)
    }

    static func batch(_ values: [Double]) -> Matrix<Double> {
        var x = Matrix<Double>(rows: values.count, columns: 2)
        for (i, v) in values.enumerated() {
            x[i, 0] = Double(i) - 3
            x[i, 1] = v
        }
        return x
    }

    @Test func knownValues() throws {
        let (xs, ys, d) = splineKnots(Self.knownParameters, bins: 3, bound: 2)
        let widths = zip(xs.dropFirst(), xs).map { $0 - $1 }, heights = zip(ys.dropFirst(), ys).map { $0 - $1 }
        for (a, b) in zip(widths, [1.885443569618, 0.849387090182, 1.265169340200]) { #expect(abs(a - b) <= 1e-12) }
        for (a, b) in zip(heights, [0.990269008896, 1.801099303351, 1.208631687753]) { #expect(abs(a - b) <= 1e-12) }
        for (a, b) in zip(d, [1, 0.855355244469, 0.475076984180, 1]) { #expect(abs(a - b) <= 1e-12) }

        let layer = try Self.constantSpline(Self.knownParameters, bins: 3, bound: 2)
        let x = Self.batch(Self.knownX)
        let out = try layer.forward(x)
        let back = try layer.inverse(out.output)
        for i in 0..<7 {
            #expect(abs(out.output[i, 1] - Self.knownY[i]) <= 1e-12, "y[\(i)] = \(out.output[i, 1])")
            #expect(abs(out.logAbsDet[i] - Self.knownLogDerivatives[i]) <= 1e-12, "log-derivative[\(i)] = \(out.logAbsDet[i])")
            #expect(out.output[i, 0] == x[i, 0])
            #expect(abs(back.output[i, 1] - Self.knownX[i]) <= 1e-12, "x[\(i)] = \(back.output[i, 1])")
            #expect(abs(back.logAbsDet[i] + Self.knownLogDerivatives[i]) <= 1e-12)
            #expect(abs(back.logAbsDet[i] + out.logAbsDet[i]) <= 1e-14)
        }
        // The entry forms agree with the block forms.
        let spline = layer.transformer
        Self.knownParameters.withUnsafeBufferPointer { u in
            let θ = TransformerParameters(base: u.baseAddress!, stride: 1)
            for i in 0..<7 {
                let f = spline.forward(Self.knownX[i], parameters: θ)
                #expect(abs(f.value - Self.knownY[i]) <= 1e-12 && abs(f.logDerivative - Self.knownLogDerivatives[i]) <= 1e-12)
                // From the computed y: the 12 printed decimals of y move x by up to 5e-13/slope.
                let b = spline.inverse(f.value, parameters: θ)!
                #expect(abs(b.value - Self.knownX[i]) <= 1e-12 && abs(b.logDerivative + Self.knownLogDerivatives[i]) <= 1e-12)
            }
        }
    }

    /// Inputs exactly on every knot (the spline passes through it with the knot's derivative),
    /// at ±B, and far in the tails (the identity, log-derivative 0, no parameter gradient).
    @Test(arguments: [3, 8])
    func knotsBoundsAndTails(bins: Int) throws {
        var rng = SeededGenerator(seed: UInt64(bins))
        let u = (0..<(3 * bins - 1)).map { _ in rng.nextNormal(Double.self) }
        let bound = 2.5
        let (xs, ys, d) = splineKnots(u, bins: bins, bound: bound)
        let layer = try Self.constantSpline(u, bins: bins, bound: bound)
        let out = try layer.forward(Self.batch(xs))
        for k in 0...bins {
            #expect(abs(out.output[k, 1] - ys[k]) <= 1e-12, "knot \(k): y = \(out.output[k, 1]) vs \(ys[k])")
            #expect(abs(out.logAbsDet[k] - log(d[k])) <= 1e-12, "knot \(k): log-derivative \(out.logAbsDet[k]) vs \(log(d[k]))")
        }
        #expect(out.output[0, 1] == -bound && out.output[bins, 1] == bound)
        let back = try layer.inverse(Self.batch(ys))
        for k in 0...bins {
            #expect(abs(back.output[k, 1] - xs[k]) <= 1e-12, "knot \(k): x = \(back.output[k, 1]) vs \(xs[k])")
            // The test's knot y differs from the library's by rounding, which moves ξ off 0 by
            // about ε/slope and the log-derivative by the curvature times that: 1e-11.
            #expect(abs(back.logAbsDet[k] + log(d[k])) <= 1e-11)
        }
        let far = [-1e300, -1e6, (-bound).nextDown, bound.nextUp, 10, 1e6, 1e300]
        let tails = Self.batch(far)
        for (isForward, result) in [(true, try layer.forward(tails)), (false, try layer.inverse(tails))] {
            #expect(result.output == tails && result.logAbsDet.allSatisfy { $0 == 0 }, "tails, forward \(isForward)")
            let dy = Matrix<Double>(rows: far.count, columns: 2, repeating: 0.5)
            layer.zeroGradients()
            let dx = isForward
                ? try layer.forwardBackward(input: tails, output: result.output, outputGradient: dy, logAbsDetGradient: [Double](repeating: 1, count: far.count))
                : try layer.inverseBackward(input: tails, output: result.output, outputGradient: dy, logAbsDetGradient: [Double](repeating: 1, count: far.count))
            #expect((0..<far.count).allSatisfy { dx[$0, 1] == 0.5 && dx[$0, 0] == 0.5 })
            #expect(layer.parameters.allSatisfy { $0.gradient.maxAbs == 0 }, "tails give no parameter gradient")
        }
    }

    /// Entry-level VJPs against central differences of the entry forms, in both directions, for
    /// the input and every unconstrained parameter, at ordinary and extreme parameters; and the
    /// block forms against the entry forms.
    @Test(arguments: [0.5, 4.0, 30.0])
    func entryGradientsAgainstFiniteDifferences(parameterScale: Double) throws {
        let K = 6, bound = 3.0
        let spline = try RationalQuadraticSpline<Double>(bins: K, tailBound: bound)
        let P = spline.parametersPerFeature
        var rng = SeededGenerator(seed: UInt64(parameterScale * 10))
        for trial in 0..<40 {
            var u = (0..<P).map { _ in parameterScale * rng.nextNormal(Double.self) }
            let x = (trial % 10 == 0 ? 1.5 : 1.0) * bound * (2 * rng.nextUniform(Double.self) - 1)
            let g = rng.nextNormal(Double.self), ℓ = rng.nextNormal(Double.self)
            func map(_ value: Double, _ params: [Double], inverse: Bool) -> (Double, Double) {
                params.withUnsafeBufferPointer { p in
                    let θ = TransformerParameters(base: p.baseAddress!, stride: 1)
                    let r = inverse ? spline.inverse(value, parameters: θ)! : spline.forward(value, parameters: θ)
                    return (r.value, r.logDerivative)
                }
            }
            let (y, logDerivative) = map(x, u, inverse: false)
            let (xBack, inverseLog) = map(y, u, inverse: true)
            // The inverse's error grows as the slope shrinks (extreme parameters make slopes of 1e-5).
            let slope = exp(logDerivative)
            #expect(abs(xBack - x) <= 1e-12 * max(1, abs(x)) / min(1, slope), "round trip \(x) -> \(y) -> \(xBack)")
            #expect(abs(inverseLog + logDerivative) <= 1e-12 * max(1, abs(logDerivative)) / min(1, slope))
            for (inverse, point) in [(false, x), (true, y)] {
                func loss(_ value: Double, _ params: [Double]) -> Double {
                    let (o, l) = map(value, params, inverse: inverse)
                    return g * o + ℓ * l
                }
                var analytic = [Double](repeating: .nan, count: P)
                let dInput = u.withUnsafeBufferPointer { p in
                    analytic.withUnsafeMutableBufferPointer { d in
                        let θ = TransformerParameters(base: p.baseAddress!, stride: 1)
                        let dθ = TransformerParameterGradient(base: d.baseAddress!, stride: 1)
                        return inverse
                            ? spline.inverseBackward(point, parameters: θ, outputGradient: g, logDerivativeGradient: ℓ, parameterGradient: dθ)
                            : spline.forwardBackward(point, parameters: θ, outputGradient: g, logDerivativeGradient: ℓ, parameterGradient: dθ)
                    }
                }
                // The inverse of a map of slope g' has slope 1/g': its input step shrinks with g' so
                // that central differences stay inside the bin, and both the rounding of x (about
                // ε/g') and the truncation grow as g' shrinks, so the tolerance grows as 1/g'.
                let step = 1e-6, inputStep = inverse ? step * min(1, slope) : step
                let tolerance = inverse ? 1e-6 / min(1, slope) : 1e-6
                let fdInput = (loss(point + inputStep, u) - loss(point - inputStep, u)) / (2 * inputStep)
                let inputScale = max(1, abs(fdInput))
                #expect(abs(fdInput - dInput) <= tolerance * inputScale || abs(point) > bound - 1e-5,
                        "\(inverse ? "inverse" : "forward") dL/dx \(dInput) vs \(fdInput) at \(point), scale \(parameterScale)")
                for p in 0..<P {
                    let saved = u[p]
                    u[p] = saved + step
                    let lp = loss(point, u)
                    u[p] = saved - step
                    let lm = loss(point, u)
                    u[p] = saved
                    let fd = (lp - lm) / (2 * step)
                    #expect(abs(fd - analytic[p]) <= tolerance * max(1, abs(fd)),
                            "\(inverse ? "inverse" : "forward") dL/du[\(p)] \(analytic[p]) vs \(fd), scale \(parameterScale)")
                }
            }
        }
    }

    /// The block forms (vectorized exponentials, one scratch row) agree with the entry forms, and
    /// their retaining variants with the plain ones.
    @Test func blockFormsMatchEntryForms() throws {
        let K = 4, m = 3, rows = 5
        let spline = try RationalQuadraticSpline<Double>(bins: K, tailBound: 2)
        let P = spline.parametersPerFeature, width = P * m, stride = m + 2
        var rng = SeededGenerator(seed: 12)
        let h = (0..<(rows * width)).map { _ in 2 * rng.nextNormal(Double.self) }
        let data = (0..<(rows * stride)).map { _ in 1.5 * rng.nextNormal(Double.self) }
        let block = TransformedBlock(rows: rows, features: m, rowStride: stride, offset: 1)
        let upstream = (0..<(rows * stride)).map { _ in rng.nextNormal(Double.self) }
        let ℓ = (0..<rows).map { _ in rng.nextNormal(Double.self) }
        for inverse in [false, true] {
            var blockOut = data, blockLog = [Double](repeating: 0, count: rows)
            var blockGradient = upstream, blockDh = [Double](repeating: .nan, count: rows * width)
            h.withUnsafeBufferPointer { hp in
                _ = spline.apply(&blockOut, block: block, parameters: hp.baseAddress!, logAbsDet: &blockLog, inverse: inverse)
                spline.backward(input: data, block: block, parameters: hp.baseAddress!, gradient: &blockGradient,
                                logAbsDetGradient: ℓ, parameterGradient: &blockDh, inverse: inverse)
            }
            for r in 0..<rows {
                var sum = 0.0
                for j in 0..<m {
                    let k = block.index(r, j)
                    var dh = [Double](repeating: .nan, count: P)
                    let theta = (0..<P).map { h[r * width + $0 * m + j] }
                    let (value, logDerivative, dx) = theta.withUnsafeBufferPointer { tp in
                        dh.withUnsafeMutableBufferPointer { dp in
                            let θ = TransformerParameters(base: tp.baseAddress!, stride: 1)
                            let dθ = TransformerParameterGradient(base: dp.baseAddress!, stride: 1)
                            let f = inverse ? spline.inverse(data[k], parameters: θ)! : spline.forward(data[k], parameters: θ)
                            let d = inverse
                                ? spline.inverseBackward(data[k], parameters: θ, outputGradient: upstream[k], logDerivativeGradient: ℓ[r], parameterGradient: dθ)
                                : spline.forwardBackward(data[k], parameters: θ, outputGradient: upstream[k], logDerivativeGradient: ℓ[r], parameterGradient: dθ)
                            return (f.value, f.logDerivative, d)
                        }
                    }
                    sum += logDerivative
                    #expect(abs(blockOut[k] - value) <= 1e-13 && abs(blockGradient[k] - dx) <= 1e-12 * max(1, abs(dx)))
                    for p in 0..<P { #expect(abs(blockDh[r * width + p * m + j] - dh[p]) <= 1e-12 * max(1, abs(dh[p]))) }
                }
                #expect(abs(blockLog[r] - sum) <= 1e-13)
            }
            // Entries outside the block are untouched.
            for r in 0..<rows {
                for c in [0, stride - 1] {
                    #expect(blockOut[r * stride + c] == data[r * stride + c] && blockGradient[r * stride + c] == upstream[r * stride + c])
                }
            }
            // A retaining pass and the backward that reads its state give the same bits (tails included).
            var state = [Double](repeating: .nan, count: spline.retainedCount(block: block))
            var keptOut = data, keptLog = [Double](repeating: 0, count: rows)
            var keptGradient = upstream, keptDh = [Double](repeating: .nan, count: rows * width)
            h.withUnsafeBufferPointer { hp in
                _ = spline.apply(&keptOut, block: block, parameters: hp.baseAddress!, logAbsDet: &keptLog, inverse: inverse, retaining: &state)
                spline.backward(input: data, block: block, parameters: hp.baseAddress!, gradient: &keptGradient,
                                logAbsDetGradient: ℓ, parameterGradient: &keptDh, inverse: inverse, retained: state)
            }
            #expect(data.contains { abs($0) > 2 }, "some entries lie in the tails")
            #expect(keptOut == blockOut && keptLog == blockLog && keptGradient == blockGradient && keptDh == blockDh)
        }
    }

    /// A taped step (retaining pass, then the backward reusing the spline's state) gives the same
    /// bits as a backward that recomputes everything, in both directions, with inputs in the tails.
    @Test func retainedBackwardMatchesRecomputed() throws {
        for isForward in [true, false] {
            func layer() throws -> SplineCoupling<Double> {
                var rng = SeededGenerator(seed: 21)
                return try SplineCoupling<Double>(features: 7, hiddenSizes: [6], bins: 5, tailBound: 2, zeroInitializeLastLayer: false,
                                                  using: &rng)
            }
            let taped = try layer(), plain = try layer()
            var rng = SeededGenerator(seed: 22)
            let x = 2.5 * Matrix<Double>.randomNormal(rows: 9, columns: 7, using: &rng)
            let g = Matrix<Double>.randomNormal(rows: 9, columns: 7, using: &rng)
            let dld = (0..<9).map { _ in rng.nextNormal(Double.self) }
            let y = try isForward ? taped.forwardRetaining(x) : taped.inverseRetaining(x)
            let kept = try isForward
                ? taped.forwardBackward(input: x, output: y.output, outputGradient: g, logAbsDetGradient: dld)
                : taped.inverseBackward(input: x, output: y.output, outputGradient: g, logAbsDetGradient: dld)
            let recomputed = try isForward
                ? plain.forwardBackward(input: x, output: y.output, outputGradient: g, logAbsDetGradient: dld)
                : plain.inverseBackward(input: x, output: y.output, outputGradient: g, logAbsDetGradient: dld)
            #expect(kept == recomputed, "direction forward: \(isForward)")
            #expect(zip(taped.parameters, plain.parameters).allSatisfy { $0.0.gradient == $0.1.gradient })
        }
    }

    @Test(arguments: [CouplingBlock.first, .second])
    func contract(conditioningBlock: CouplingBlock) throws {
        try checkLayerContract(SplineCouplingFactory(conditioningBlock: conditioningBlock), features: [2, 3, 17, 64])
    }

    /// A conditional spline coupling: the context's gradient is checked like the input's.
    @Test func contractWithContext() throws {
        try checkLayerContract(SplineCouplingFactory(contextFeatures: 3), features: [2, 3, 17], batches: [1, 7])
    }

    /// Wide inputs (a third of them in the tails) and a single bin.
    @Test func contractTailsAndOneBin() throws {
        try checkLayerContract(SplineCouplingFactory(inputScale: 2.5), features: [2, 5], batches: [1, 7])
        try checkLayerContract(SplineCouplingFactory(bins: 1, hiddenSizes: []), features: [3], batches: [1, 7])
    }

    @Test(arguments: [CouplingBlock.first, .second])
    func additiveContract(conditioningBlock: CouplingBlock) throws {
        try checkLayerContract(AdditiveCouplingFactory(conditioningBlock: conditioningBlock), features: [2, 3, 17, 64])
    }

    @Test func additiveKnownValues() throws {
        // t = [0.5 x0 - 1, 2] on the second block of D = 3 split at 1.
        let mlp = try MLP<Double>(weights: [try Matrix([[0.5], [0]])], biases: [[-1, 2]])
        let layer = try AdditiveCoupling(features: 3, transformer: AdditiveTransformer(), conditioner: mlp, firstBlockSize: 1)
        let x = Matrix<Double>(row: [4, 1, -3])
        let out = try layer.forward(x)
        #expect(out.output == Matrix(row: [4, 2, -1]) && out.logAbsDet == [0])
        let back = try layer.inverse(out.output)
        #expect(back.output == x && back.logAbsDet == [0])
    }

    /// A zero-initialized spline coupling starts as the identity (every knot derivative 1).
    @Test func zeroInitializedLayerIsTheIdentity() throws {
        var rng = SeededGenerator(seed: 3)
        let layer = try SplineCoupling<Double>(features: 4, hiddenSizes: [16], bins: 8, tailBound: 3.0, using: &rng)
        let x = Matrix<Double>.randomNormal(rows: 9, columns: 4, using: &rng)
        let out = try layer.forward(x)
        #expect(try (out.output - x).maxAbs <= 1e-12 && out.logAbsDet.allSatisfy { abs($0) <= 1e-12 })
    }

    @Test func configurationRebuildsThroughTheRegistryAndCheckpoints() throws {
        var rng = SeededGenerator(seed: 6)
        let spline = try SplineCoupling<Double>(
            features: 5, hiddenSizes: [7], conditioningBlock: .second, bins: 6, tailBound: 4.0, activation: .tanh,
            firstBlockSize: 2, zeroInitializeLastLayer: false, using: &rng)
        let additive = try AdditiveCoupling<Double>(features: 5, transformer: AdditiveTransformer(), hiddenSizes: [7], using: &rng)
        #expect(spline.configuration.transformer == RationalQuadraticSpline<Double>.Configuration(
            bins: 6, tailBound: 4, minimumBinWidth: 1e-3, minimumBinHeight: 1e-3, minimumDerivative: 1e-3))
        let json = try architecture(of: spline), additiveJSON = try architecture(of: additive)
        #expect(json.contains("\"SplineCoupling\"") && json.contains("\"bins\":6") && json.contains("\"tailBound\":4"), "\(json)")
        #expect(additiveJSON.contains("\"AdditiveCoupling\""), "\(additiveJSON)")
        let flow = try NormalizingFlow(transform: try Sequential<Double>([spline, try Permutation.random(features: 5, using: &rng), additive]))
        for p in flow.parameters { p.value = try p.value + Matrix.randomNormal(rows: p.value.rows, columns: p.value.columns, standardDeviation: 0.1, using: &rng) }
        let path = NSTemporaryDirectory() + "spline-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Checkpoint(flow: flow, preprocessing: .standardization(try Standardization(means: [Double](repeating: 0, count: 5), scales: [Double](repeating: 1, count: 5))),
                       dataset: DatasetDescription(name: "test")).write(to: path)
        for loadedAs in [0, 1] {
            let x = Matrix<Double>.randomNormal(rows: 6, columns: 5, standardDeviation: 2, using: &rng)
            if loadedAs == 0 {
                let loaded = try Checkpoint<Double>.read(path: path)
                #expect(try loaded.flow.logProbability(x) == flow.logProbability(x))
                #expect(try architecture(of: loaded.flow.transform) == architecture(of: flow.transform))
            } else {
                let loaded = try Checkpoint<Float>.read(path: path)
                let a = try loaded.flow.logProbability(x.converted(to: Float.self)), b = try flow.logProbability(x)
                for (p, q) in zip(a, b) { #expect(abs(Double(p) - q) <= 1e-4 * max(1, abs(q))) }
            }
        }
    }

    @Test func rejectsBadArguments() throws {
        for bins in [0, -1, 1001] { #expect(throws: InvertNNError.self) { try RationalQuadraticSpline<Double>(bins: bins) } }
        for bound in [0, -1, Double.infinity, .nan, Double.greatestFiniteMagnitude] {
            #expect(throws: InvertNNError.self) { try RationalQuadraticSpline<Double>(tailBound: bound) }
        }
        for minimum in [0, -1e-3, 0.125, 0.2, .nan] {
            #expect(throws: InvertNNError.self) { try RationalQuadraticSpline<Double>(bins: 8, minimumBinWidth: minimum) }
            #expect(throws: InvertNNError.self) { try RationalQuadraticSpline<Double>(bins: 8, minimumBinHeight: minimum) }
        }
        for minimum in [0, -1, Double.infinity, .nan] {
            #expect(throws: InvertNNError.self) { try RationalQuadraticSpline<Double>(minimumDerivative: minimum) }
        }
        var rng = SeededGenerator(seed: 1)
        // A conditioner of the affine width does not fit a spline.
        let wrong = try MLP<Double>(sizes: [2, 4, 4], using: &rng)
        #expect(throws: InvertNNError.self) { try SplineCoupling(features: 4, transformer: try RationalQuadraticSpline(), conditioner: wrong) }
        let layer = try SplineCoupling<Double>(features: 4, hiddenSizes: [4], using: &rng)
        #expect(throws: InvertNNError.self) { try layer.forward(Matrix(rows: 2, columns: 3)) }
    }
}
