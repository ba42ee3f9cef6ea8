import RealModule

/// The Baird activation, a learnable smooth "kink" per feature:
/// `y_j = f_{c_j}(x_j) = asinh(sinh(x_j) + c_j)`, elementwise.
///
/// `f_c` is a strictly increasing bijection of the reals for every real c, with inverse
/// `f_c⁻¹ = f_{-c}`; it is the identity for c = 0, and for large |x| it approaches `x`.
///
/// - Shapes: `x`, `y` `[batch, features]`; parameter `shift` (the `c_j`) `[1, features]`.
/// - Log-determinant (nats, per sample): `Σ_j log f'(x_j)` with
///   `f'(x) = cosh(x) / cosh(y)`, i.e. `log f' = log cosh x - log cosh y`; inverse: its negative.
/// - Gradients: `∂y/∂c = sech(y)`, `∂ log f'/∂x = tanh x - tanh(y)·f'(x)`,
///   `∂ log f'/∂c = -tanh(y)·sech(y)`.
/// - Stability: `sinh(x)` overflows Double beyond |x| ≈ 710 (Float beyond ≈ 89), so for |x| > 8
///   the map is evaluated in a scaled form. With `s = sign x`, `a = e^{-|x|}` and
///   `k = 1 - a² + 2·s·c·a` (so `sinh x + c = s·k/(2a)`):
///   `y = s·(|x| + log k + log((1 + √(1 + w²))/2))` with `w = 2a/k`, and
///   `log f' = log1p(a²) - log k - ½·log1p(w²)`; nothing overflows and `y`, `log f'` stay finite
///   for every finite x (at x = ±800 the map is the identity to rounding). When `k ≤ 0` (only
///   for |c| ≳ sinh|x|, where sinh x is finite) the direct formula is used.
/// - Domain: all finite reals in both directions.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` from the initializer for
///   `features < 1` or a non-finite or wrong-length `shift`;
///   ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for NaN/±∞ inputs in either
///   direction; shape errors as every layer.
/// - Source: Baird, Smalenberger & Ingkiriwang 2005, "One-step neural network inversion with
///   PDF learning and emulation" (IJCNN), in the form written by invertnn; DESIGN.md §3.
public final class Baird<T: Scalar>: ElementwiseLayer, RebuildableLayer {
    public typealias Element = T

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int
    /// `c`, the learnable per-feature shift inside the `asinh`, `[1, features]`.
    public let shift: Parameter<T>

    /// A Baird layer on `features` features with initial shifts `shift` (default 0: the identity).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or `shift`
    ///   has the wrong length or non-finite entries.
    public init(features: Int, shift: [T]? = nil) throws {
        try SizeLimits.features(features, operation: "Baird")
        let shift = shift ?? [T](repeating: 0, count: features)
        guard shift.count == features, shift.allSatisfy({ $0.isFinite }) else {
            throw InvertNNError.invalidArgument(
                operation: "Baird", reason: "shift must have \(features) finite entries, got \(shift.count)")
        }
        self.features = features
        self.shift = Parameter(name: "shift", value: Matrix(row: shift))
    }

    public var name: String { "Baird(\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { [shift] }
    public static var typeName: String { "Baird" }
    public var configuration: FeatureConfiguration { FeatureConfiguration(features: features) }
    /// A layer on `configuration.features` features (see ``init(features:)``).
    public convenience init(configuration: FeatureConfiguration) throws { try self.init(features: configuration.features) }
    var perFeatureParameter: Parameter<T>? { shift }
    func makeMap() -> BairdMap<T> { BairdMap(shifts: shift.value.storage) }

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

/// `f_c(x) = asinh(sinh x + c)` with `log f'`, overflow-free (see ``Baird``).
struct BairdMap<T: Scalar>: ElementwiseMap {
    let shifts: [T]

    /// `f_c(x)` and `log f_c'(x)` for any finite x and c.
    @inline(__always)
    static func evaluate(_ x: T, shift c: T) -> (value: T, logDerivative: T) {
        let magnitude = Swift.abs(x)
        if magnitude > 8 {
            let sign: T = x < 0 ? -1 : 1
            let a = T.exp(-magnitude)
            let k = 1 - a * a + 2 * sign * c * a
            if k > 0 {
                let w = 2 * a / k
                let logK = T.log(k)
                let root = (1 + w * w).squareRoot()
                // log((1 + √(1+w²))/2) = log1p((√(1+w²) - 1)/2) = log1p(w² / (2(1 + √(1+w²)))).
                let y = sign * (magnitude + logK + T.log(onePlus: w * w / (2 * (1 + root))))
                let logDerivative = T.log(onePlus: a * a) - logK - T.log(onePlus: w * w) / 2
                return (y, logDerivative)
            }
        }
        let y = T.asinh(T.sinh(x) + c)
        return (y, ActivationMath.logCosh(x) - ActivationMath.logCosh(y))
    }

    @inline(__always)
    func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) {
        Self.evaluate(x, shift: shifts[feature])
    }

    @inline(__always)
    func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? {
        // f_c⁻¹ = f_{-c}, and log (f_c⁻¹)'(y) = log f_{-c}'(y).
        Self.evaluate(y, shift: -shifts[feature])
    }

    @inline(__always)
    func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> {
        let logDerivative = Self.evaluate(x, shift: shifts[feature]).logDerivative
        let derivative = T.exp(logDerivative)
        let tanhY = T.tanh(y), sechY = ActivationMath.sech(y)
        return ElementwisePartials(
            derivative: derivative, reciprocalDerivative: T.exp(-logDerivative),
            logDerivativeSlope: T.tanh(x) - tanhY * derivative,
            parameterSlope: sechY, logDerivativeParameterSlope: -tanhY * sechY)
    }

    func inverseDomain(feature: Int) -> String { "finite reals (-∞, ∞)" }
}
