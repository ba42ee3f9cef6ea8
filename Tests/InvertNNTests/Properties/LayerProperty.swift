import Testing
import PropertyBased
@testable import InvertNN

/// How to build one layer family with random shapes for the property tests, what its valid
/// inputs look like, and which inputs and constructor arguments it must reject.
///
/// `make` draws every size it needs from `size` (1...8, shrunk by PropertyBased on failure) and
/// `rng`, so each case runs a differently shaped layer.
struct LayerProperty {
    typealias Build = (_ size: Int, _ rng: inout SeededGenerator) throws -> any InvertibleLayer<Double>
    typealias Batch = (_ rows: Int, _ features: Int, _ rng: inout SeededGenerator) -> Matrix<Double>

    let name: String
    let make: Build
    /// A batch inside the forward domain (default: N(0, 1) entries).
    var forwardInput: Batch = { rows, features, rng in Matrix.randomNormal(rows: rows, columns: features, using: &rng) }
    /// Side inputs the forward direction reads, given the built layer.
    var sideInputs: (_ layer: any InvertibleLayer<Double>, _ rows: Int, _ rng: inout SeededGenerator)
        -> [String: Matrix<Double>] = { _, _, _ in [:] }
    /// A batch with at least one entry outside the inverse domain, when the inverse is partial.
    var inverseOutOfDomain: Batch? = nil
    /// A batch with at least one entry outside the forward domain, when the forward map is partial.
    var forwardOutOfDomain: Batch? = nil
    /// Bad constructor calls: each must throw ``InvertNNError``.
    var badConstructors: [(inout SeededGenerator) throws -> Void] = []
    /// Relative tolerance of the round trip and of the log-det cancellation. Random parameters
    /// can be less well conditioned than the contract's fixed ones, hence looser than §5's 1e-12.
    var tolerance = 1e-9
}

/// Sizes that must be rejected wherever a size is expected: zero, negative, and too large to
/// allocate or to index with BLAS's 32-bit integers.
let badSizes = [0, -1, -7, Int.min, Int.max, Int.max / 2 + 1, 1 << 40, SizeLimits.maximumElements + 1]

/// Non-finite scalars.
let nonFiniteValues: [Double] = [.nan, .infinity, -.infinity, .signalingNaN]

/// Expects `body` to throw an ``InvertNNError`` (any case).
func expectInvertNNError(_ label: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation,
                         _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("\(label()): expected an InvertNNError, nothing was thrown", sourceLocation: sourceLocation)
    } catch is InvertNNError {
    } catch {
        Issue.record("\(label()): expected an InvertNNError, got \(error)", sourceLocation: sourceLocation)
    }
}

/// Runs `body`; returning normally or throwing an ``InvertNNError`` are both fine (the test
/// process not trapping is the property), any other error is recorded. Returns the value if any.
@discardableResult
func expectNoTrap<R>(_ label: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: () throws -> R) -> R? {
    do { return try body() } catch is InvertNNError { return nil } catch {
        Issue.record("\(label()): unexpected error type \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

private func isFinite(_ m: Matrix<Double>) -> Bool { m.firstNonFinite() == nil }
private func isFinite(_ v: [Double]) -> Bool { v.allSatisfy { $0.isFinite } }

/// Valid-input properties on ≥ `count` random cases: forward output and log-dets finite with the
/// right shapes, round trips both ways, log-dets cancel, and both backward passes return finite
/// gradients of the right shapes for the input and every parameter.
func checkValidProperties(_ spec: LayerProperty, count: Int = 200) async {
    var cases = 0
    defer { #expect(cases >= count, "\(spec.name): ran \(cases) valid cases") }
    await propertyCheck(count: count, input: Gen.int(in: 1...8), Gen.int(in: 1...9), Gen.uint64(in: 0...UInt64.max)) {
        size, batch, seed in
        cases += 1
        var rng = SeededGenerator(seed: seed)
        let label = "\(spec.name) size \(size) batch \(batch) seed \(seed)"
        do {
            let layer = try spec.make(size, &rng)
            let x = spec.forwardInput(batch, layer.inputFeatures, &rng)
            let side = spec.sideInputs(layer, batch, &rng)
            var channels = LayerContext<Double>(side)
            let f = try layer.forward(x, context: &channels)
            #expect(f.output.rows == batch && f.output.columns == layer.outputFeatures, "forward shape \(label)")
            #expect(f.logAbsDet.count == batch, "forward log-det count \(label)")
            #expect(isFinite(f.output) && isFinite(f.logAbsDet), "forward finite \(label)")

            var restored = LayerContext<Double>()
            let b = try layer.inverse(f.output, context: &restored)
            let scale = max(1, x.maxAbs, f.output.maxAbs)
            #expect(try (b.output - x).maxAbs <= spec.tolerance * scale, "round trip x→y→x \(label)")
            for (key, value) in side {
                #expect(restored[key].map { $0 == value || ((try? ($0 - value).maxAbs) ?? 1) <= 1e-12 } == true,
                        "side input '\(key)' restored \(label)")
            }
            for i in 0..<batch {
                #expect(abs(f.logAbsDet[i] + b.logAbsDet[i]) <= spec.tolerance * max(1, abs(f.logAbsDet[i])),
                        "log-dets cancel row \(i) \(label)")
            }
            // y → x → y, from the forward image (inside the inverse domain by construction).
            var channels2 = LayerContext<Double>()
            let xBack = try layer.inverse(f.output, context: &channels2)
            let yAgain = try layer.forward(xBack.output, context: &channels2)
            #expect(try (yAgain.output - f.output).maxAbs <= spec.tolerance * scale, "round trip y→x→y \(label)")

            // Backward passes: finite, right shapes, finite parameter gradients.
            layer.zeroGradients()
            let dy = Matrix<Double>.randomNormal(rows: batch, columns: layer.outputFeatures, using: &rng)
            let dld = (0..<batch).map { _ in rng.nextNormal(Double.self) }
            var channels3 = LayerContext<Double>(side)
            let dx = try layer.forwardBackward(input: x, output: f.output, outputGradient: dy, logAbsDetGradient: dld,
                                               context: &channels3)
            #expect(dx.rows == batch && dx.columns == layer.inputFeatures && isFinite(dx), "forwardBackward dx \(label)")
            for g in channels3.gradients.values { #expect(isFinite(g), "side-input gradient finite \(label)") }
            let dxIn = Matrix<Double>.randomNormal(rows: batch, columns: layer.inputFeatures, using: &rng)
            var channels4 = LayerContext<Double>()
            let dyBack = try layer.inverseBackward(input: f.output, output: b.output, outputGradient: dxIn,
                                                   logAbsDetGradient: dld, context: &channels4)
            #expect(dyBack.rows == batch && dyBack.columns == layer.outputFeatures && isFinite(dyBack),
                    "inverseBackward dy \(label)")
            for p in layer.parameters {
                #expect(p.gradient.shape == p.value.shape && isFinite(p.gradient), "gradient of \(p.name) \(label)")
            }
            layer.zeroGradients()
        } catch {
            Issue.record("\(label): valid input threw \(error)")
        }
    }
}

/// An empty batch `[0, D]` gives empty results in both directions and both VJPs (shapes
/// `[0, out]`, `[0]`, `[0, in]`) and leaves every parameter gradient at zero.
func checkEmptyBatch(_ layer: any InvertibleLayer<Double>, side: [String: Matrix<Double>], label: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    let nIn = layer.inputFeatures, nOut = layer.outputFeatures
    layer.zeroGradients()
    do {
        var context = LayerContext<Double>(side)
        let f = try layer.forward(Matrix(rows: 0, columns: nIn), context: &context)
        #expect(f.output.shape == [0, nOut] && f.logAbsDet.isEmpty, "\(label): forward gave \(f.output.shape)", sourceLocation: sourceLocation)
        let i = try layer.inverse(Matrix(rows: 0, columns: nOut))
        #expect(i.output.shape == [0, nIn] && i.logAbsDet.isEmpty, "\(label): inverse gave \(i.output.shape)", sourceLocation: sourceLocation)
        var backward = LayerContext<Double>(side)
        let dx = try layer.forwardBackward(input: Matrix(rows: 0, columns: nIn), output: Matrix(rows: 0, columns: nOut),
                                           outputGradient: Matrix(rows: 0, columns: nOut), logAbsDetGradient: [], context: &backward)
        #expect(dx.shape == [0, nIn], "\(label): forwardBackward gave \(dx.shape)", sourceLocation: sourceLocation)
        let dy = try layer.inverseBackward(input: Matrix(rows: 0, columns: nOut), output: Matrix(rows: 0, columns: nIn),
                                           outputGradient: Matrix(rows: 0, columns: nIn), logAbsDetGradient: [])
        #expect(dy.shape == [0, nOut], "\(label): inverseBackward gave \(dy.shape)", sourceLocation: sourceLocation)
        for p in layer.parameters where p.gradient.storage.contains(where: { $0 != 0 }) {
            Issue.record("\(label): \(p.name) has a nonzero gradient after an empty batch", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("\(label): an empty batch threw \(error)", sourceLocation: sourceLocation)
    }
}

/// Kinds of invalid use drawn by ``checkInvalidProperties(_:count:)``.
private enum Misuse: Int, CaseIterable {
    case wrongFeaturesForward, wrongFeaturesInverse, emptyBatch, backwardShapes, nonFiniteForward,
         nonFiniteInverse, outOfDomain, badConstructor, nonFiniteParameter
}

/// Invalid-input properties on ≥ `count` random cases. Shape errors, empty batches, mismatched
/// backward arguments, out-of-domain values and bad constructor arguments must throw an
/// ``InvertNNError``; NaN or Inf in an input or a parameter must not trap (a layer may reject
/// them or propagate them; the flow and the trainer reject them, see their tests).
func checkInvalidProperties(_ spec: LayerProperty, count: Int = 200) async {
    var cases = 0
    defer { #expect(cases >= count, "\(spec.name): ran \(cases) invalid cases") }
    await propertyCheck(count: count, input: Gen.int(in: 1...8), Gen.int(in: 1...9), Gen.uint64(in: 0...UInt64.max),
                        Gen.int(in: 0...(Misuse.allCases.count - 1))) { size, batch, seed, kindIndex in
        cases += 1
        var rng = SeededGenerator(seed: seed)
        let kind = Misuse(rawValue: kindIndex) ?? .emptyBatch
        let label = "\(spec.name) \(kind) size \(size) batch \(batch) seed \(seed)"
        let layer: any InvertibleLayer<Double>
        do { layer = try spec.make(size, &rng) } catch {
            Issue.record("\(label): building the layer threw \(error)")
            return
        }
        let nIn = layer.inputFeatures, nOut = layer.outputFeatures
        let side = spec.sideInputs(layer, batch, &rng)
        func wrongWidth(_ n: Int) -> Int {
            let delta = Int(rng.next() % 5) + 1
            return rng.next() % 2 == 0 || n - delta < 0 ? n + delta : n - delta
        }
        switch kind {
        case .wrongFeaturesForward:
            let x = Matrix<Double>.randomNormal(rows: batch, columns: wrongWidth(nIn), using: &rng)
            expectInvertNNError("forward \(x.shape) \(label)") {
                var ch = LayerContext<Double>(side)
                _ = try layer.forward(x, context: &ch)
            }
        case .wrongFeaturesInverse:
            let y = Matrix<Double>.randomNormal(rows: batch, columns: wrongWidth(nOut), using: &rng)
            expectInvertNNError("inverse \(y.shape) \(label)") { _ = try layer.inverse(y) }
        case .emptyBatch:
            checkEmptyBatch(layer, side: spec.sideInputs(layer, 0, &rng), label: label)
        case .backwardShapes:
            let x = spec.forwardInput(batch, nIn, &rng)
            var ch = LayerContext<Double>(side)
            guard let f = expectNoTrap("forward \(label)", { try layer.forward(x, context: &ch) }) else {
                Issue.record("\(label): valid forward threw")
                return
            }
            let dy = Matrix<Double>.randomNormal(rows: batch, columns: nOut, using: &rng)
            let dld = [Double](repeating: 1, count: batch)
            // One argument broken at a time.
            let variant = Int(rng.next() % 4)
            let badRows = batch + 1 + Int(rng.next() % 3)
            expectInvertNNError("forwardBackward variant \(variant) \(label)") {
                var ch2 = LayerContext<Double>(side)
                switch variant {
                case 0: _ = try layer.forwardBackward(input: x, output: f.output,
                                                      outputGradient: Matrix.randomNormal(rows: badRows, columns: nOut, using: &rng),
                                                      logAbsDetGradient: dld, context: &ch2)
                case 1: _ = try layer.forwardBackward(input: x, output: f.output, outputGradient: dy,
                                                      logAbsDetGradient: [Double](repeating: 1, count: badRows), context: &ch2)
                case 2: _ = try layer.forwardBackward(input: x, output: Matrix(rows: batch, columns: wrongWidth(nOut)),
                                                      outputGradient: dy, logAbsDetGradient: dld, context: &ch2)
                default: _ = try layer.forwardBackward(input: Matrix(rows: batch, columns: wrongWidth(nIn)), output: f.output,
                                                       outputGradient: dy, logAbsDetGradient: dld, context: &ch2)
                }
            }
            expectInvertNNError("inverseBackward variant \(variant) \(label)") {
                let dx = Matrix<Double>.randomNormal(rows: batch, columns: nIn, using: &rng)
                switch variant {
                case 0: _ = try layer.inverseBackward(input: f.output, output: x,
                                                      outputGradient: Matrix.randomNormal(rows: badRows, columns: nIn, using: &rng),
                                                      logAbsDetGradient: dld)
                case 1: _ = try layer.inverseBackward(input: f.output, output: x, outputGradient: dx,
                                                      logAbsDetGradient: [Double](repeating: 1, count: badRows))
                case 2: _ = try layer.inverseBackward(input: f.output, output: Matrix(rows: batch, columns: wrongWidth(nIn)),
                                                      outputGradient: dx, logAbsDetGradient: dld)
                default: _ = try layer.inverseBackward(input: Matrix(rows: batch, columns: wrongWidth(nOut)), output: x,
                                                       outputGradient: dx, logAbsDetGradient: dld)
                }
            }
            layer.zeroGradients()
        case .nonFiniteForward, .nonFiniteInverse:
            let forward = kind == .nonFiniteForward
            var m = forward ? spec.forwardInput(batch, nIn, &rng)
                            : Matrix<Double>.randomNormal(rows: batch, columns: nOut, using: &rng)
            if !forward {
                // Start from a point inside the inverse domain.
                var ch = LayerContext<Double>(side)
                if let y = expectNoTrap("forward \(label)", { try layer.forward(spec.forwardInput(batch, nIn, &rng), context: &ch) }) {
                    m = y.output
                }
            }
            let hits = 1 + Int(rng.next() % 3)
            for _ in 0..<hits where m.count > 0 {
                m.storage[Int(rng.next() % UInt64(m.count))] = nonFiniteValues[Int(rng.next() % UInt64(nonFiniteValues.count))]
            }
            expectNoTrap("non-finite \(forward ? "forward" : "inverse") input \(label)") {
                var ch = LayerContext<Double>(side)
                let out = forward ? try layer.forward(m, context: &ch) : try layer.inverse(m, context: &ch)
                // If accepted, the backward pass must not trap either.
                let dy = Matrix<Double>(rows: batch, columns: out.output.columns, repeating: 1)
                let dld = [Double](repeating: 1, count: batch)
                var ch2 = LayerContext<Double>(side)
                _ = forward
                    ? try layer.forwardBackward(input: m, output: out.output, outputGradient: dy, logAbsDetGradient: dld,
                                                context: &ch2)
                    : try layer.inverseBackward(input: m, output: out.output, outputGradient: dy, logAbsDetGradient: dld,
                                                context: &ch2)
            }
            layer.zeroGradients()
        case .outOfDomain:
            if let make = spec.inverseOutOfDomain {
                let y = make(batch, nOut, &rng)
                expectInvertNNError("inverse outside the domain \(label)") { _ = try layer.inverse(y) }
            }
            if let make = spec.forwardOutOfDomain {
                let x = make(batch, nIn, &rng)
                expectInvertNNError("forward outside the domain \(label)") {
                    var ch = LayerContext<Double>(side)
                    _ = try layer.forward(x, context: &ch)
                }
            }
            if spec.inverseOutOfDomain == nil && spec.forwardOutOfDomain == nil, !spec.badConstructors.isEmpty {
                // Total maps have no domain to leave: test a constructor instead.
                let k = Int(rng.next() % UInt64(spec.badConstructors.count))
                expectInvertNNError("bad constructor #\(k) \(label)") { try spec.badConstructors[k](&rng) }
            }
        case .badConstructor:
            guard !spec.badConstructors.isEmpty else { return }
            let k = Int(rng.next() % UInt64(spec.badConstructors.count))
            expectInvertNNError("bad constructor #\(k) \(label)") { try spec.badConstructors[k](&rng) }
        case .nonFiniteParameter:
            let parameters = layer.parameters
            guard let p = parameters.isEmpty ? nil : parameters[Int(rng.next() % UInt64(parameters.count))], p.count > 0
            else { return }
            p.value.storage[Int(rng.next() % UInt64(p.count))] = nonFiniteValues[Int(rng.next() % 4)]
            let x = spec.forwardInput(batch, nIn, &rng)
            expectNoTrap("forward with a non-finite parameter \(label)") {
                var ch = LayerContext<Double>(side)
                let f = try layer.forward(x, context: &ch)
                var ch2 = LayerContext<Double>(side)
                _ = try layer.forwardBackward(input: x, output: f.output,
                                              outputGradient: Matrix(rows: batch, columns: nOut, repeating: 1),
                                              logAbsDetGradient: [Double](repeating: 1, count: batch), context: &ch2)
            }
            expectNoTrap("inverse with a non-finite parameter \(label)") {
                _ = try layer.inverse(Matrix.randomNormal(rows: batch, columns: nOut, using: &rng))
            }
        }
    }
}
