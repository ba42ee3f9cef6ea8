import Foundation
import Testing
import InvertNN

// The three worked examples of Sources/InvertNN/InvertNN.docc/WritingALayer.md, verbatim: if this
// file stops compiling or its contracts fail, the article is wrong. Keep the two in step.

// MARK: Example 1, an activation: its map only

/// Softsign, `y = x / (1 + |x|)`, a bijection of the reals onto (-1, 1):
/// `f'(x) = 1/(1 + |x|)²`, `x = y / (1 - |y|)`, `1 + |x| = 1 / (1 - |y|)`.
struct SoftsignMap<T: Scalar>: ActivationMap {
    typealias Element = T
    static var typeName: String { "Softsign" }

    init(configuration: NoConfiguration = .init()) {}

    @inline(__always)
    func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) {
        let a = 1 + abs(x)
        return (x / a, -2 * T.log(a))
    }

    @inline(__always)
    func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? {
        guard abs(y) < 1 else { return nil }
        let b = 1 - abs(y)
        return (y / b, -2 * T.log(b))
    }

    @inline(__always)
    func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> {
        let a = 1 + abs(x)
        return ElementwisePartials(
            derivative: 1 / (a * a), reciprocalDerivative: a * a, logDerivativeSlope: (x < 0 ? 2 : -2) / a)
    }

    func inverseDomain(feature: Int) -> String { "(-1, 1)" }
}

typealias Softsign<T: Scalar> = Activation<T, SoftsignMap<T>>

// MARK: Example 2, a coupling transformer

/// Glow's affine transformer (Kingma & Dhariwal 2018, the sigmoid scale of the authors' code):
/// `y = x·σ(ŝ + 2) + t`, log-derivative `log σ(ŝ + 2)`. The scale lies in (0, 1), so one step
/// never expands a feature, and σ(2) ≈ 0.88 starts the coupling near the identity.
/// Conditioner outputs (`P = 2`): `ŝ` then `t`.
struct SigmoidAffineTransformer<T: Scalar>: CouplingTransformer {
    typealias Element = T

    init(configuration: NoConfiguration = .init()) {}

    var parametersPerFeature: Int { 2 }
    var configuration: NoConfiguration { NoConfiguration() }
    var name: String { "sigmoid-affine" }
    static var couplingTypeName: String { "SigmoidAffineCoupling" }

    /// `σ(ŝ + 2)` and `log σ(ŝ + 2) = -softplus(-(ŝ + 2))`, without overflow.
    @inline(__always)
    func scale(_ ŝ: T) -> (scale: T, logScale: T) {
        let u = ŝ + 2, e = T.exp(-abs(u))
        let softplus = max(-u, 0) + T.log(onePlus: e)
        return (u >= 0 ? 1 / (1 + e) : e / (1 + e), -softplus)
    }

    func forward(_ x: T, parameters θ: TransformerParameters<T>) -> (value: T, logDerivative: T) {
        let (s, logS) = scale(θ[0])
        return (x * s + θ[1], logS)
    }

    func inverse(_ y: T, parameters θ: TransformerParameters<T>) -> (value: T, logDerivative: T)? {
        let (s, logS) = scale(θ[0])
        return ((y - θ[1]) / s, -logS)
    }

    // d log σ(u)/du = 1 - σ(u), dσ/du = σ(1 - σ).
    func forwardBackward(
        _ x: T, parameters θ: TransformerParameters<T>, outputGradient g: T, logDerivativeGradient ℓ: T,
        parameterGradient dθ: TransformerParameterGradient<T>
    ) -> T {
        let s = scale(θ[0]).scale
        dθ[0] = (g * x * s + ℓ) * (1 - s)
        dθ[1] = g
        return g * s
    }

    // x = (y - t)/σ: ∂x/∂y = 1/σ, ∂x/∂t = -1/σ, ∂x/∂ŝ = -x(1 - σ); log-derivative -log σ.
    func inverseBackward(
        _ y: T, parameters θ: TransformerParameters<T>, outputGradient g: T, logDerivativeGradient ℓ: T,
        parameterGradient dθ: TransformerParameterGradient<T>
    ) -> T {
        let s = scale(θ[0]).scale, x = (y - θ[1]) / s
        dθ[0] = -(g * x + ℓ) * (1 - s)
        dθ[1] = -g / s
        return g / s
    }
}

typealias SigmoidAffineCoupling<T: Scalar> = Coupling<SigmoidAffineTransformer<T>>

// MARK: Example 3, a layer with parameters

/// `y = e^a·x + b`: one learnable log-scale `a` shared by every feature and a per-feature bias `b`.
/// Shapes `[batch, D]`; parameters `logScale` `[1, 1]`, `bias` `[1, D]`; `log|det| = D·a` per
/// sample. Gradients: forward `dL/dx = e^a·g`, `dL/da = Σ g·e^a·x + D·Σ d`, `dL/db = Σ_rows g`;
/// inverse (`x = (y - b)e^{-a}`) `dL/dy = e^{-a}·g`, `dL/da = -Σ g·x - D·Σ d`, `dL/db = -Σ_rows e^{-a}·g`.
final class SharedScale<T: Scalar>: InvertibleLayer, RebuildableLayer {
    typealias Element = T
    struct Configuration: Codable, Sendable, Equatable { var features: Int }
    static var typeName: String { "SharedScale" }

    let features: Int
    let logScale: Parameter<T>
    let bias: Parameter<T>
    let parameters: [Parameter<T>]

    init(features: Int, logScale a: T = 0, bias b: [T]? = nil) throws {
        let b = b ?? [T](repeating: 0, count: max(features, 0))
        guard features >= 1, b.count == features, a.isFinite, b.allSatisfy({ $0.isFinite }) else {
            throw InvertNNError.invalidArgument(
                operation: "SharedScale", reason: "need features ≥ 1 and finite values, got \(features), \(a), \(b.count) biases")
        }
        self.features = features
        logScale = Parameter(name: "logScale", value: Matrix(row: [a]))
        bias = Parameter(name: "bias", value: Matrix(row: b))
        parameters = [logScale, bias]
    }

    convenience init(configuration: Configuration) throws { try self.init(features: configuration.features) }
    var configuration: Configuration { Configuration(features: features) }
    var name: String { "SharedScale(\(features))" }
    var inputFeatures: Int { features }
    var outputFeatures: Int { features }

    func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        let a = logScale.value[0, 0], s = T.exp(a)
        var y = x
        for r in 0..<x.rows { for j in 0..<features { y[r, j] = s * x[r, j] + bias.value[0, j] } }
        return LayerOutput(output: y, logAbsDet: [T](repeating: T(features) * a, count: x.rows))
    }

    func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(features, "\(name).inverse")
        let a = logScale.value[0, 0], s = T.exp(-a)
        var x = y
        for r in 0..<y.rows { for j in 0..<features { x[r, j] = (y[r, j] - bias.value[0, j]) * s } }
        return LayerOutput(output: x, logAbsDet: [T](repeating: -T(features) * a, count: y.rows))
    }

    func forwardBackward(
        input x: Matrix<T>, output y: Matrix<T>, outputGradient g: Matrix<T>, logAbsDetGradient d: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: x, inFeatures: features, output: y, outFeatures: features,
                             outputGradient: g, logAbsDetGradient: d)
        let s = T.exp(logScale.value[0, 0])
        var dx = g, da: T = 0, db = [T](repeating: 0, count: features)
        for r in 0..<x.rows {
            da += T(features) * d[r]
            for j in 0..<features {
                dx[r, j] = s * g[r, j]
                da += g[r, j] * s * x[r, j]
                db[j] += g[r, j]
            }
        }
        // Backward passes add into the gradients, in place (their shapes are fixed).
        bias.withUnsafeMutableGradient { for j in 0..<features { $0[j] += db[j] } }
        logScale.withUnsafeMutableGradient { $0[0] += da }
        return dx
    }

    func inverseBackward(
        input y: Matrix<T>, output x: Matrix<T>, outputGradient g: Matrix<T>, logAbsDetGradient d: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: y, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: g, logAbsDetGradient: d)
        let s = T.exp(-logScale.value[0, 0])
        var dy = g, da: T = 0, db = [T](repeating: 0, count: features)
        for r in 0..<y.rows {
            da -= T(features) * d[r]
            for j in 0..<features {
                dy[r, j] = s * g[r, j]
                da -= g[r, j] * x[r, j]
                db[j] -= s * g[r, j]
            }
        }
        bias.withUnsafeMutableGradient { for j in 0..<features { $0[j] += db[j] } }
        logScale.withUnsafeMutableGradient { $0[0] += da }
        return dy
    }
}

// MARK: The examples under the DESIGN.md §5 contract

/// Softsign inputs kept 1e-3 away from its kink at 0 (central differences must not straddle it).
struct SoftsignFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try Softsign<T>(features: features)
    }
    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double> {
        var m = Matrix<Double>.randomNormal(rows: rows, columns: features, standardDeviation: 1.5, using: &generator)
        m.withUnsafeMutableBufferPointer { m in
            for i in m.indices where abs(m[i]) < 1e-3 { m[i] = m[i] < 0 ? -1e-3 : 1e-3 }
        }
        return m
    }
}

struct SigmoidAffineCouplingFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        return try SigmoidAffineCoupling<T>(
            features: features, transformer: SigmoidAffineTransformer(), hiddenSizes: [16],
            zeroInitializeLastLayer: false, using: &rng)
    }
}

struct SharedScaleFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        let bias = (0..<features).map { _ in T(rng.nextNormal(Double.self)) }
        return try SharedScale<T>(features: features, logScale: T(0.3 * rng.nextNormal(Double.self)), bias: bias)
    }
}

@Suite struct WritingALayerExamplesTests {
    @Test func softsignContract() throws { try checkLayerContract(SoftsignFactory()) }

    @Test func softsignKnownValues() throws {
        let layer = try Softsign<Double>(features: 3)
        let out = try layer.forward(Matrix(row: [1, -3, 0]))
        #expect(out.output == Matrix(row: [0.5, -0.75, 0]))
        // log f' = -2 log 2 - 2 log 4 - 0.
        #expect(abs(out.logAbsDet[0] + 2 * Double.log(8)) < 1e-15)
        #expect(layer.name == "Softsign(3)" && Softsign<Double>.typeName == "Softsign")
        #expect(throws: InvertNNError.self) { try layer.inverse(Matrix(row: [0.5, 1, 0])) }
    }

    @Test func sigmoidAffineCouplingContract() throws {
        try checkLayerContract(SigmoidAffineCouplingFactory(), features: [2, 3, 17], batches: [1, 7])
    }

    @Test func sigmoidAffineTransformerKnownValue() throws {
        // The zero-initialized conditioner gives ŝ = t = 0: y_b = x_b·σ(2), log-derivative log σ(2).
        var rng = SeededGenerator(seed: 0)
        let layer = try SigmoidAffineCoupling<Double>(
            features: 2, transformer: SigmoidAffineTransformer(), hiddenSizes: [4], using: &rng)
        let out = try layer.forward(Matrix(row: [0.3, 2]))
        let sigma2 = 1 / (1 + Double.exp(-2))
        #expect(abs(out.output[0, 1] - 2 * sigma2) < 1e-15 && out.output[0, 0] == 0.3)
        #expect(abs(out.logAbsDet[0] - Double.log(sigma2)) < 1e-15)
    }

    @Test func sharedScaleContract() throws { try checkLayerContract(SharedScaleFactory()) }

    @Test func sharedScaleRebuildsFromItsConfiguration() throws {
        let layer = try SharedScale<Double>(features: 4, logScale: 0.5)
        let data = try JSONEncoder().encode(layer.configuration)
        let rebuilt = try SharedScale<Double>(configuration: try JSONDecoder().decode(SharedScale<Double>.Configuration.self, from: data))
        #expect(rebuilt.features == 4 && rebuilt.parameters.map(\.name) == ["logScale", "bias"])
        let out = try layer.forward(Matrix(row: [1, 2, 3, 4]))
        #expect(out.logAbsDet == [4 * 0.5])
    }

    /// The article shows this file's three examples letter for letter.
    @Test func articleShowsTheseExamples() throws {
        let here = URL(fileURLWithPath: #filePath)
        let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let article = try String(contentsOf: root.appendingPathComponent("Sources/InvertNN/InvertNN.docc/WritingALayer.md"), encoding: .utf8)
        let source = try String(contentsOf: here, encoding: .utf8)
        let cuts = [("/// Softsign, `y", "// MARK: Example 2"), ("/// Glow's affine transformer", "// MARK: Example 3"),
                    ("/// `y = e^a·x + b`", "// MARK: The examples under")]
        for (start, end) in cuts {
            let a = try #require(source.range(of: start)), b = try #require(source.range(of: end))
            let example = source[a.lowerBound..<b.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(article.contains("```swift\n" + example + "\n```"), "example starting \(start)")
        }
    }
}
