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
public typealias Tanh<T: Scalar> = Activation<T, TanhMap<T>>

/// `tanh`, `atanh` and `log tanh'` (``Tanh``); the log-derivative slope is `-2·tanh(x)`.
public struct TanhMap<T: Scalar>: ActivationMap {
    public typealias Element = T
    public static var typeName: String { "Tanh" }

    /// The hyperbolic tangent (it has no hyper-parameters).
    public init(configuration: NoConfiguration = .init()) {}

    /// `log tanh'(x) = log(1 - tanh²x) = 2(log 2 - |x| - log1p(e^{-2|x|}))`.
    @inline(__always)
    static func logDerivative(_ x: T) -> T {
        let a = Swift.abs(x)
        return 2 * (T.log(2) - a - T.log(onePlus: T.exp(-2 * a)))
    }

    @inline(__always)
    public func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) {
        (T.tanh(x), Self.logDerivative(x))
    }

    @inline(__always)
    public func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? {
        let a = Swift.abs(y)
        guard a < 1 else { return nil }
        let magnitude = T.log(onePlus: 2 * a / (1 - a)) / 2
        return (y < 0 ? -magnitude : magnitude, -T.log(onePlus: -a) - T.log(onePlus: a))
    }

    @inline(__always)
    public func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> {
        let logDerivative = Self.logDerivative(x)
        return ElementwisePartials(
            derivative: T.exp(logDerivative), reciprocalDerivative: T.exp(-logDerivative),
            logDerivativeSlope: -2 * T.tanh(x))
    }

    public func inverseDomain(feature: Int) -> String { "(-1, 1)" }
}
