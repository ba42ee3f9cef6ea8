import RealModule

/// The exponential linear unit as an invertible layer:
/// `y = x` for `x ≥ 0`, `y = α·(eˣ - 1)` for `x < 0`, elementwise, with a fixed `α > 0`.
///
/// - Shapes: `x`, `y` `[batch, features]`; no learnable parameters.
/// - Range and inverse: outputs lie in `(-α, ∞)`; `x = y` for `y ≥ 0` and
///   `x = log1p(y/α)` for `-α < y < 0`.
/// - Log-determinant (nats, per sample): `Σ_{j: x_j < 0} (log α + x_j)` forward, its negative
///   inverse. At the kink `x = 0` the right derivative 1 is used (left derivative α).
/// - Boundary: for very negative x, `α(eˣ - 1)` rounds to `-α` (x ≲ -37 in Double, ≲ -17 in
///   Float); the forward log-det stays correct but such an output cannot be inverted. An inverse
///   input `y ≤ -α` (or one whose `y/α` rounds to -1) is rejected.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` from the initializer for
///   `α ≤ 0` or non-finite α; ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for an
///   inverse input `y ≤ -α` or NaN/±∞ in either direction, with its position.
/// - Source: Clevert et al. 2016, "Fast and accurate deep network learning by exponential linear
///   units (ELUs)"; DESIGN.md §3.
public final class ELU<T: Scalar>: ElementwiseLayer, RebuildableLayer {
    public typealias Element = T

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int
    /// `α > 0`: the negative saturation value is `-α`.
    public let alpha: T

    /// An ELU on `features` features.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or `alpha`
    ///   is not positive and finite.
    public init(features: Int, alpha: T = 1) throws {
        try SizeLimits.features(features, operation: "ELU")
        guard alpha > 0, alpha.isFinite else {
            throw InvertNNError.invalidArgument(operation: "ELU", reason: "alpha must be positive and finite, got \(alpha)")
        }
        self.features = features
        self.alpha = alpha
    }

    public var name: String { "ELU(\(features), α: \(alpha))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { [] }
    /// The hyper-parameters: the feature count and `α`.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// `α`, the saturation value for negative inputs.
        public var alpha: Double
    }
    public static var typeName: String { "ELU" }
    public var configuration: Configuration { Configuration(features: features, alpha: Double(alpha)) }
    public convenience init(configuration c: Configuration) throws { try self.init(features: c.features, alpha: T(c.alpha)) }
    var perFeatureParameter: Parameter<T>? { nil }
    func makeMap() -> ScaledELUMap<T> { ScaledELUMap(alpha: alpha, scale: 1) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> { try elementwiseForward(x) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> { try elementwiseInverse(y) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try elementwiseForwardBackward(input: input, output: output, outputGradient: outputGradient,
                                       logAbsDetGradient: logAbsDetGradient)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try elementwiseInverseBackward(input: input, output: output, outputGradient: outputGradient,
                                       logAbsDetGradient: logAbsDetGradient)
    }
}

/// `y = λ·x` for `x ≥ 0`, `y = λα·expm1(x)` for `x < 0`: ELU (λ = 1) and SELU share it.
struct ScaledELUMap<T: Scalar>: ElementwiseMap {
    let alpha: T
    let scale: T
    let scaleAlpha: T
    let logScale: T
    let logScaleAlpha: T

    init(alpha: T, scale: T) {
        self.alpha = alpha
        self.scale = scale
        self.scaleAlpha = scale * alpha
        self.logScale = T.log(scale)
        self.logScaleAlpha = T.log(scale * alpha)
    }

    @inline(__always)
    func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) {
        x >= 0 ? (scale * x, logScale) : (scaleAlpha * T.expMinusOne(x), logScaleAlpha + x)
    }

    @inline(__always)
    func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? {
        if y >= 0 { return (y / scale, -logScale) }
        // Test the ratio, not y: y > -λα can still give y/(λα) == -1 after rounding (log1p(-1) = -∞).
        let ratio = y / scaleAlpha
        guard ratio > -1 else { return nil }
        let x = T.log(onePlus: ratio)
        return (x, -logScaleAlpha - x)
    }

    @inline(__always)
    func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> {
        if x >= 0 {
            return ElementwisePartials(derivative: scale, reciprocalDerivative: 1 / scale, logDerivativeSlope: 0)
        }
        return ElementwisePartials(
            derivative: scaleAlpha * T.exp(x), reciprocalDerivative: T.exp(-x) / scaleAlpha, logDerivativeSlope: 1)
    }

    func inverseDomain(feature: Int) -> String { "(\(-scaleAlpha), ∞)" }
}
