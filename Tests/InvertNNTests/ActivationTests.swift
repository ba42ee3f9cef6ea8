import Foundation
import Testing
import InvertNN

/// N(0, σ²) entries pushed at least `gap` away from 0, so central differences (h = 1e-6) never
/// straddle the kink of the piecewise activations.
private func awayFromZero(rows: Int, features: Int, scale: Double, gap: Double = 1e-3,
                          using generator: inout SeededGenerator) -> Matrix<Double> {
    var m = Matrix<Double>.randomNormal(rows: rows, columns: features, standardDeviation: scale, using: &generator)
    m.withUnsafeMutableBufferPointer { m in
        for i in m.indices where abs(m[i]) < gap { m[i] = m[i] < 0 ? -gap : gap }
    }
    return m
}

private func normalRow<T: Scalar>(_ count: Int, scale: Double, seed: UInt64, _: T.Type) -> [T] {
    var rng = SeededGenerator(seed: seed)
    return (0..<count).map { _ in T(scale * rng.nextNormal(Double.self)) }
}

struct SigmoidFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try Sigmoid<T>(features: features)
    }
    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double> {
        Matrix.randomNormal(rows: rows, columns: features, standardDeviation: 1.5, using: &generator)
    }
}

struct TanhFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try Tanh<T>(features: features)
    }
}

struct LeakyReLUFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try LeakyReLU<T>(features: features, negativeSlope: T(0.05 + 0.1 * Double(seed % 5)))
    }
    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double> {
        awayFromZero(rows: rows, features: features, scale: 1, using: &generator)
    }
}

struct PReLUFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try PReLU<T>(features: features, slopes: normalRow(features, scale: 0.7, seed: seed, Double.self).map { T(exp($0)) })
    }
    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double> {
        awayFromZero(rows: rows, features: features, scale: 1, using: &generator)
    }
}

struct ELUFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try ELU<T>(features: features, alpha: T(0.5 + 0.25 * Double(seed % 4)))
    }
    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double> {
        awayFromZero(rows: rows, features: features, scale: 1.2, using: &generator)
    }
}

struct SELUFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try SELU<T>(features: features)
    }
    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double> {
        awayFromZero(rows: rows, features: features, scale: 1.2, using: &generator)
    }
}

/// Baird with random shifts. With `wide`, odd columns get N(0, 15²) entries, most of them beyond
/// |x| = 8 where the layer switches to its overflow-free scaled form, so both branches are under
/// the contract. Even columns stay N(0, 2²) on purpose: out there ∂y/∂c = sech(y) ~ 1e-7…1e-19,
/// below the rounding noise of a central difference of an O(|x|) loss (|L|·ε/h ≈ 4e-9 at
/// |x| ≈ 40), so a layer whose only entries were large would fail the 1e-9 absolute floor of
/// the contract's gradient check through noise in the reference, not in the layer.
struct BairdFactory: LayerFactory {
    var wide = false
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try Baird<T>(features: features, shift: normalRow(features, scale: 1.5, seed: seed, T.self))
    }
    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double> {
        var m = Matrix<Double>.randomNormal(rows: rows, columns: features, standardDeviation: 2, using: &generator)
        if wide { for r in 0..<rows { for j in stride(from: 1, to: features, by: 2) { m[r, j] *= 7.5 } } }
        return m
    }
}

struct RangeCompressionFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try RangeCompression<T>(features: features, lower: -2, upper: 3)
    }
    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double> {
        Matrix.randomNormal(rows: rows, columns: features, standardDeviation: 1.5, using: &generator)
    }
}

/// The opposite direction, range expansion from (-2, 3) onto the reals, through `Inverted`.
struct RangeExpansionFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        Inverted(try RangeCompression<T>(features: features, lower: -2, upper: 3))
    }
    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double> {
        var m = Matrix<Double>.randomUniform(rows: rows, columns: features, using: &generator)
        m.withUnsafeMutableBufferPointer { m in for i in m.indices { m[i] = -2 + 5 * (0.03 + 0.94 * m[i]) } }
        return m
    }
}

/// Expects `body` to throw exactly `.outOfDomain` at `[row, column]` with `value`.
private func expectOutOfDomain(
    row: Int, column: Int, value: Double, layerPrefix: String,
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected outOfDomain, nothing thrown", sourceLocation: sourceLocation)
    } catch let InvertNNError.outOfDomain(layer, v, r, c, domain) {
        #expect(layer.hasPrefix(layerPrefix), "layer \(layer)", sourceLocation: sourceLocation)
        #expect(r == row && c == column, "position [\(r), \(c)]", sourceLocation: sourceLocation)
        #expect(v == value || (v.isNaN && value.isNaN), "value \(v)", sourceLocation: sourceLocation)
        #expect(!domain.isEmpty, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected outOfDomain, got \(error)", sourceLocation: sourceLocation)
    }
}

private func close(_ a: Double, _ b: Double, relative: Double) -> Bool {
    abs(a - b) <= relative * max(abs(b), 1e-300)
}

@Suite struct ActivationTests {
    // MARK: The DESIGN.md §5 contract

    @Test func sigmoidContract() throws { try checkLayerContract(SigmoidFactory()) }
    @Test func tanhContract() throws { try checkLayerContract(TanhFactory()) }
    @Test func leakyReLUContract() throws { try checkLayerContract(LeakyReLUFactory()) }
    @Test func preluContract() throws { try checkLayerContract(PReLUFactory()) }
    @Test func eluContract() throws { try checkLayerContract(ELUFactory()) }
    @Test func seluContract() throws { try checkLayerContract(SELUFactory()) }
    @Test func bairdContract() throws { try checkLayerContract(BairdFactory()) }
    @Test func bairdContractLargeInputs() throws { try checkLayerContract(BairdFactory(wide: true)) }
    @Test func rangeCompressionContract() throws { try checkLayerContract(RangeCompressionFactory()) }
    @Test func rangeExpansionContract() throws { try checkLayerContract(RangeExpansionFactory()) }

    // MARK: Known values

    @Test func sigmoidKnownValues() throws {
        let layer = try Sigmoid<Double>(features: 3)
        let out = try layer.forward(Matrix(row: [0, 0, 0]))
        #expect(out.output.storage == [0.5, 0.5, 0.5])
        #expect(abs(out.logAbsDet[0] - 3 * -log(4.0)) <= 1e-12)
        // Stability: log σ'(±100) = -100 - 2·log1p(e^{-100}) = -100 to rounding, never -∞.
        let far = try layer.forward(Matrix(row: [100, -100, 20]))
        #expect(far.output.storage[0] == 1 && far.output.storage[1] > 0)
        #expect(abs(far.logAbsDet[0] - (-100 - 100 - 20.0000000041223)) <= 1e-9)
        // x = -100 is invertible in Double (σ(-100) ≈ 3.7e-44) and gives back the exact log-det.
        let back = try Sigmoid<Double>(features: 1).inverse(Matrix(row: [far.output.storage[1]]))
        #expect(abs(back.output.storage[0] + 100) <= 1e-12)
        #expect(abs(back.logAbsDet[0] - 100) <= 1e-12)
    }

    @Test func sigmoidFloatKnownValues() throws {
        let layer = try Sigmoid<Float>(features: 1)
        let logits = try layer.inverse(Matrix([[1e-7], [1e-8]])).output.storage
        #expect(close(Double(logits[0]), -16.1180955393, relative: 1e-6))
        #expect(close(Double(logits[1]), -18.4206807400, relative: 1e-6))
        let lds = try layer.forward(Matrix([[20], [-20], [-100]])).logAbsDet
        #expect(close(Double(lds[0]), -20.0000000041, relative: 1e-6))
        #expect(close(Double(lds[1]), -20.0000000041, relative: 1e-6))
        #expect(close(Double(lds[2]), -100, relative: 1e-6))
    }

    @Test func tanhKnownValues() throws {
        let layer = try Tanh<Double>(features: 2)
        let back = try layer.inverse(Matrix(row: [0.5, -0.5]))
        #expect(abs(back.output.storage[0] - atanh(0.5)) <= 1e-15)
        #expect(abs(back.output.storage[1] + atanh(0.5)) <= 1e-15)
        #expect(abs(back.logAbsDet[0] - 2 * -log(0.75)) <= 1e-14)
        let out = try layer.forward(Matrix(row: [0, 0]))
        #expect(out.output.storage == [0, 0] && out.logAbsDet[0] == 0)
    }

    @Test func tanhFloatKnownValues() throws {
        let layer = try Tanh<Float>(features: 1)
        let x = try layer.inverse(Matrix(row: [0.999999])).output.storage[0]
        #expect(close(Double(x), 7.2477328317, relative: 1e-6))
        let out = try layer.forward(Matrix([[10], [20], [-20], [1e4], [-1e4]]))
        #expect(close(Double(out.logAbsDet[0]), -18.6137056430, relative: 1e-6))
        #expect(close(Double(out.logAbsDet[1]), -38.6137056389, relative: 1e-6))
        #expect(close(Double(out.logAbsDet[2]), -38.6137056389, relative: 1e-6))
        #expect(out.logAbsDet.allSatisfy { $0.isFinite })
        #expect(out.output.storage.allSatisfy { $0 >= -1 && $0 <= 1 })
    }

    @Test func leakyReLUKnownValues() throws {
        let layer = try LeakyReLU<Double>(features: 4, negativeSlope: 0.1)
        let out = try layer.forward(Matrix(row: [-2, 3, -0.5, 0]))
        let expected: [Double] = [-0.2, 3, -0.05, 0]
        for j in 0..<4 { #expect(abs(out.output.storage[j] - expected[j]) <= 1e-12) }
        #expect(abs(out.logAbsDet[0] - -4.6051701860) <= 1e-10)
        #expect(abs(out.logAbsDet[0] - 2 * log(0.1)) <= 1e-12)
        let back = try layer.inverse(out.output)
        for j in 0..<4 { #expect(abs(back.output.storage[j] - [-2, 3, -0.5, 0][j]) <= 1e-12) }
        #expect(throws: InvertNNError.self) { try LeakyReLU<Double>(features: 4, negativeSlope: 0) }
        #expect(throws: InvertNNError.self) { try LeakyReLU<Double>(features: 4, negativeSlope: -0.1) }
        #expect(throws: InvertNNError.self) { try LeakyReLU<Double>(features: 4, negativeSlope: .nan) }
    }

    @Test func preluKeepsSlopePositiveAndLearns() throws {
        let layer = try PReLU<Double>(features: 2, slopes: [0.5, 2])
        #expect(layer.logSlope.value.storage == [log(0.5), log(2)])
        let out = try layer.forward(Matrix(row: [-1, -1]))
        #expect(abs(out.output.storage[0] + 0.5) <= 1e-15 && abs(out.output.storage[1] + 2) <= 1e-15)
        #expect(abs(out.logAbsDet[0]) <= 1e-15)  // log 0.5 + log 2
        // Even a huge negative step on θ leaves the slope positive: the map stays invertible.
        layer.logSlope.withUnsafeMutableValue { $0[0] = -50 }
        #expect(layer.slopes[0] > 0)
        let y = try layer.forward(Matrix(row: [-3, 4])).output
        #expect(abs(try layer.inverse(y).output.storage[0] + 3) <= 1e-12)
        #expect(throws: InvertNNError.self) { try PReLU<Double>(features: 2, slopes: [0.5, 0]) }
        #expect(throws: InvertNNError.self) { try PReLU<Double>(features: 2, slopes: [0.5]) }
    }

    @Test func eluAndSELUKnownValues() throws {
        let elu = try ELU<Double>(features: 3, alpha: 2)
        let out = try elu.forward(Matrix(row: [1.5, -1, 0]))
        #expect(abs(out.output.storage[0] - 1.5) <= 1e-15)
        #expect(abs(out.output.storage[1] - 2 * (exp(-1) - 1)) <= 1e-15)
        #expect(out.output.storage[2] == 0)
        #expect(abs(out.logAbsDet[0] - (log(2) - 1)) <= 1e-15)
        let back = try elu.inverse(Matrix(row: [1.5, -1, -1.999]))
        #expect(abs(back.output.storage[1] - log1p(-0.5)) <= 1e-15)
        #expect(abs(back.output.storage[2] - log1p(-1.999 / 2)) <= 1e-13)

        let selu = try SELU<Double>(features: 2)
        let lambda = 1.0507009873554805, alpha = 1.6732632423543772
        let s = try selu.forward(Matrix(row: [2, -0.5]))
        #expect(abs(s.output.storage[0] - 2 * lambda) <= 1e-15)
        #expect(abs(s.output.storage[1] - lambda * alpha * expm1(-0.5)) <= 1e-15)
        #expect(abs(s.logAbsDet[0] - (log(lambda) + log(lambda * alpha) - 0.5)) <= 1e-14)
        #expect(throws: InvertNNError.self) { try ELU<Double>(features: 3, alpha: 0) }
    }

    @Test func rangeCompressionKnownValues() throws {
        let layer = try RangeCompression<Double>(features: 2, lower: -2, upper: 3)
        let out = try layer.forward(Matrix(row: [0, log(4.0)]))
        #expect(abs(out.output.storage[0] - 0.5) <= 1e-15)   // -2 + 5·½
        #expect(abs(out.output.storage[1] - 2) <= 1e-15)     // -2 + 5·0.8
        #expect(abs(out.logAbsDet[0] - (2 * log(5.0) + log(0.25) + log(0.16))) <= 1e-14)
        // The opposite direction as a layer: expansion of (−2, 3) onto the reals.
        let expand = Inverted(layer)
        let e = try expand.forward(Matrix(row: [0.5, 2]))
        #expect(abs(e.output.storage[0]) <= 1e-15 && abs(e.output.storage[1] - log(4.0)) <= 1e-14)
        #expect(abs(e.logAbsDet[0] + out.logAbsDet[0]) <= 1e-14)
        #expect(throws: InvertNNError.self) { try RangeCompression<Double>(features: 2, lower: 1, upper: 1) }
        #expect(throws: InvertNNError.self) {
            try RangeCompression<Double>(features: 2, lower: -.greatestFiniteMagnitude, upper: .greatestFiniteMagnitude)
        }
    }

    @Test func bairdKnownValuesAndStability() throws {
        let layer = try Baird<Double>(features: 4, shift: [0.7, -1.3, 2, 0.7])
        // Direct definition where it does not overflow.
        let x: [Double] = [0.3, -1.1, 9.5, -12]
        let out = try layer.forward(Matrix(row: x))
        var logDet = 0.0
        for j in 0..<4 {
            let c = [0.7, -1.3, 2, 0.7][j]
            let y = asinh(sinh(x[j]) + c)
            #expect(abs(out.output.storage[j] - y) <= 1e-13 * max(1, abs(y)), "feature \(j)")
            logDet += log(cosh(x[j]) / cosh(y))
        }
        #expect(abs(out.logAbsDet[0] - logDet) <= 1e-12)
        // c = 0 is the identity.
        let identity = try Baird<Double>(features: 2)
        #expect(try identity.forward(Matrix(row: [0.4, -30])).output.storage == [0.4, -30])

        // x = ±800: sinh overflows Double, the layer does not; invertible and log-det ≈ 0.
        let far = try layer.forward(Matrix(row: [800, -800, 800, -800]))
        #expect(far.output.storage.allSatisfy { $0.isFinite } && far.logAbsDet[0].isFinite)
        #expect(abs(far.output.storage[0] - 800) <= 1e-12 && abs(far.output.storage[1] + 800) <= 1e-12)
        #expect(abs(far.logAbsDet[0]) <= 1e-12)
        let back = try layer.inverse(far.output)
        #expect(try (back.output - Matrix(row: [800, -800, 800, -800])).maxAbs <= 1e-12)
        // Beyond the threshold at moderate x the asymptotic form agrees with the definition:
        // at x = 30, y = x + log1p(2c e^{-x} - e^{-2x}) + O(e^{-2x}).
        let thirty = try Baird<Double>(features: 1, shift: [3]).forward(Matrix(row: [30])).output.storage[0]
        #expect(abs(thirty - asinh(sinh(30) + 3)) <= 1e-13 * 30)

        // Float: sinh overflows beyond 89.
        let floatLayer = try Baird<Float>(features: 2, shift: [0.5, -0.5])
        let f = try floatLayer.forward(Matrix(row: [100, -100]))
        #expect(f.output.storage == [100, -100] && f.logAbsDet[0].isFinite)
        #expect(try floatLayer.inverse(f.output).output.storage == [100, -100])
    }

    // MARK: Domain errors

    @Test func inverseOutOfDomainNamesLayerValueAndPosition() throws {
        let tanh = try Tanh<Double>(features: 3)
        expectOutOfDomain(row: 1, column: 2, value: 1, layerPrefix: "Tanh") {
            _ = try tanh.inverse(Matrix([[0.1, 0.2, 0.3], [0.5, -0.99, 1]]))
        }
        expectOutOfDomain(row: 0, column: 0, value: -1.5, layerPrefix: "Tanh") {
            _ = try tanh.inverse(Matrix([[-1.5, 0.2, 0.3]]))
        }
        let sigmoid = try Sigmoid<Float>(features: 2)
        expectOutOfDomain(row: 0, column: 1, value: 0, layerPrefix: "Sigmoid") {
            _ = try sigmoid.inverse(Matrix([[0.5, 0]]))
        }
        expectOutOfDomain(row: 2, column: 0, value: 1, layerPrefix: "Sigmoid") {
            _ = try sigmoid.inverse(Matrix([[0.5, 0.2], [0.5, 0.2], [1, 0.5]]))
        }
        let elu = try ELU<Double>(features: 2, alpha: 1.5)
        expectOutOfDomain(row: 0, column: 1, value: -1.5, layerPrefix: "ELU") {
            _ = try elu.inverse(Matrix([[-1.4, -1.5]]))
        }
        let selu = try SELU<Double>(features: 1)
        expectOutOfDomain(row: 0, column: 0, value: -1.76, layerPrefix: "SELU") {
            _ = try selu.inverse(Matrix([[-1.76]]))
        }
        let range = try RangeCompression<Double>(features: 1, lower: -2, upper: 3)
        expectOutOfDomain(row: 1, column: 0, value: 3, layerPrefix: "RangeCompression") {
            _ = try range.inverse(Matrix([[0], [3]]))
        }
        // NaN is rejected in both directions, even by layers defined on all of ℝ.
        let baird = try Baird<Double>(features: 2)
        expectOutOfDomain(row: 0, column: 1, value: .nan, layerPrefix: "Baird") {
            _ = try baird.inverse(Matrix([[0, .nan]]))
        }
        let leaky = try LeakyReLU<Double>(features: 2, negativeSlope: 0.2)
        expectOutOfDomain(row: 0, column: 0, value: .infinity, layerPrefix: "LeakyReLU") {
            _ = try leaky.forward(Matrix([[.infinity, 0]]))
        }
        expectOutOfDomain(row: 0, column: 1, value: .nan, layerPrefix: "Tanh") {
            _ = try tanh.forward(Matrix([[0, .nan, 0]]))
        }
        // The error message carries the same information.
        do {
            _ = try tanh.inverse(Matrix([[0, 0, -1]]))
        } catch let error as InvertNNError {
            #expect(error.description.contains("-1.0") && error.description.contains("[0, 2]")
                    && error.description.contains("(-1, 1)"))
        }
    }

    @Test func rejectsBadShapesAndArguments() throws {
        let layers: [any InvertibleLayer<Double>] = [
            try Sigmoid(features: 3), try Tanh(features: 3), try LeakyReLU(features: 3, negativeSlope: 0.2),
            try PReLU(features: 3), try ELU(features: 3), try SELU(features: 3), try Baird(features: 3),
            try RangeCompression(features: 3),
        ]
        for layer in layers {
            #expect(throws: InvertNNError.self) { try layer.forward(Matrix(rows: 2, columns: 4)) }
            #expect(throws: Never.self) { _ = try layer.inverse(Matrix(rows: 0, columns: 3)) }  // an empty batch gives an empty result
            let x = Matrix<Double>(rows: 2, columns: 3, repeating: 0.25)
            #expect(throws: InvertNNError.self) {
                try layer.forwardBackward(input: x, output: x, outputGradient: x, logAbsDetGradient: [1])
            }
        }
        #expect(throws: InvertNNError.self) { try Sigmoid<Double>(features: 0) }
        #expect(throws: InvertNNError.self) { try Baird<Double>(features: 2, shift: [1, .infinity]) }
    }

    // MARK: Composition

    @Test func activationsComposeInSequential() throws {
        // Baird → PReLU → SELU → compression to (0, 1) → logit (inverted sigmoid) → tanh.
        let layers: [any InvertibleLayer<Double>] = [
            try Baird(features: 3, shift: [0.3, -0.2, 1]), try PReLU(features: 3, slopes: [0.5, 1.5, 2]),
            try SELU(features: 3), try RangeCompression(features: 3), Inverted(try Sigmoid<Double>(features: 3)),
            try Tanh(features: 3),
        ]
        let model = try Sequential(layers)
        let x = try Matrix<Double>([[0.4, -1.2, 0.8]])
        let out = try model.forward(x)
        let back = try model.inverse(out.output)
        #expect(try (back.output - x).maxAbs <= 1e-12)
        #expect(abs(out.logAbsDet[0] + back.logAbsDet[0]) <= 1e-12)
        let fd = try finiteDifferenceLogAbsDet(x.row(0), step: 1e-6) { try model.forward($0).output }
        #expect(abs(fd - out.logAbsDet[0]) <= 1e-6 * max(1, abs(fd)))
    }
}
