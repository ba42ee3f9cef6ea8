import RealModule

/// The hyperbolic tangent as an invertible layer: `y = tanh(x)`, elementwise.
///
/// - Shapes: `x`, `y` `[batch, features]`; no parameters.
/// - Inverse: `x = atanh(y) = ½·log1p(2y / (1 - y))` (by symmetry for y < 0), defined on
///   `-1 < y < 1`; accurate next to ±1 because `1 - |y|` is exact there.
/// - Log-determinant (nats, per sample): forward `Σ_j log(1 - tanh²x_j)` evaluated as
///   `2(log 2 - |x| - softplus(-2|x|))`, finite for every finite x (-38.6137… at x = 20, never
///   -∞); inverse `Σ_j -log1p(-|y_j|) - log1p(|y_j|)`, the exact negative.
/// - Boundary: forward saturates in floating point (`tanh(x)` rounds to ±1 for |x| ≳ 19.1 in
///   Double, ≳ 9.0 in Float); the value stays in [-1, 1] and the log-det stays correct, but a
///   saturated output cannot be inverted.
/// - Throws: ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for an inverse input
///   with `|y| ≥ 1` or NaN/±∞ in either direction, with its position; shape errors as every layer.
/// - Source: DESIGN.md §3 (invertnn's tanh activation layer).
public final class Tanh<T: Scalar>: ElementwiseLayer, RebuildableLayer {
    public typealias Element = T

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int

    /// A tanh layer on `features` features.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`.
    public init(features: Int) throws {
        try SizeLimits.features(features, operation: "Tanh")
        self.features = features
    }

    public var name: String { "Tanh(\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { [] }
    public static var typeName: String { "Tanh" }
    public var configuration: FeatureConfiguration { FeatureConfiguration(features: features) }
    /// A layer on `configuration.features` features (see ``init(features:)``).
    public convenience init(configuration: FeatureConfiguration) throws { try self.init(features: configuration.features) }
    var perFeatureParameter: Parameter<T>? { nil }
    func makeMap() -> TanhMap<T> { TanhMap() }

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

/// `tanh`, `atanh` and `log tanh'`; the log-derivative slope is `-2·tanh(x)`.
struct TanhMap<T: Scalar>: ElementwiseMap {
    @inline(__always)
    static func logDerivative(_ x: T) -> T {
        let a = Swift.abs(x)
        return 2 * (T.log(2) - a - T.log(onePlus: T.exp(-2 * a)))
    }

    @inline(__always)
    func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) {
        (T.tanh(x), Self.logDerivative(x))
    }

    @inline(__always)
    func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? {
        let a = Swift.abs(y)
        guard a < 1 else { return nil }
        let magnitude = T.log(onePlus: 2 * a / (1 - a)) / 2
        return (y < 0 ? -magnitude : magnitude, -T.log(onePlus: -a) - T.log(onePlus: a))
    }

    @inline(__always)
    func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> {
        let logDerivative = Self.logDerivative(x)
        return ElementwisePartials(
            derivative: T.exp(logDerivative), reciprocalDerivative: T.exp(-logDerivative),
            logDerivativeSlope: -2 * T.tanh(x))
    }

    func inverseDomain(feature: Int) -> String { "(-1, 1)" }
}
