import RealModule

/// The logistic sigmoid as an invertible layer: `y = σ(x) = 1 / (1 + e^{-x})`, elementwise.
///
/// - Shapes: `x`, `y` `[batch, features]`; no parameters.
/// - Inverse: the logit `x = log y - log1p(-y)`, defined on `0 < y < 1`.
/// - Log-determinant (nats, per sample): forward `Σ_j log σ'(x_j)` with
///   `log σ'(x) = -softplus(x) - softplus(-x)`, finite for every finite x (at x = ±100 it is
///   -100, not -∞); inverse `Σ_j -log y_j - log1p(-y_j)`, the exact negative.
/// - Boundary: forward saturates in floating point (`σ(x)` rounds to 1 for x ≳ 36.7 in Double,
///   ≳ 16.6 in Float, and to 0 below about -745 / -104); the forward value and log-det remain
///   correct, but such a saturated output cannot be inverted.
/// - Throws: ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for an inverse input
///   `y ∉ (0, 1)` (including exactly 0 or 1) or NaN/±∞ in either direction, with its position;
///   shape errors as every layer.
/// - Source: DESIGN.md §3 (invertnn's sigmoid activation layer).
public final class Sigmoid<T: Scalar>: ElementwiseLayer, RebuildableLayer {
    public typealias Element = T

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int

    /// A sigmoid layer on `features` features.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`.
    public init(features: Int) throws {
        try SizeLimits.features(features, operation: "Sigmoid")
        self.features = features
    }

    public var name: String { "Sigmoid(\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { [] }
    public static var typeName: String { "Sigmoid" }
    public var configuration: FeatureConfiguration { FeatureConfiguration(features: features) }
    /// A layer on `configuration.features` features (see ``init(features:)``).
    public convenience init(configuration: FeatureConfiguration) throws { try self.init(features: configuration.features) }
    var perFeatureParameter: Parameter<T>? { nil }
    func makeMap() -> SigmoidMap<T> { SigmoidMap() }

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

/// `σ` and its logit inverse; the log-derivative slope is `1 - 2σ(x) = -tanh(x/2)`.
struct SigmoidMap<T: Scalar>: ElementwiseMap {
    @inline(__always)
    func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) {
        (ActivationMath.sigmoid(x), ActivationMath.logSigmoidDerivative(x))
    }

    @inline(__always)
    func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? {
        guard y > 0, y < 1 else { return nil }
        let logY = T.log(y), logOneMinusY = T.log(onePlus: -y)
        return (logY - logOneMinusY, -logY - logOneMinusY)
    }

    @inline(__always)
    func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> {
        let logDerivative = ActivationMath.logSigmoidDerivative(x)
        return ElementwisePartials(
            derivative: T.exp(logDerivative), reciprocalDerivative: T.exp(-logDerivative),
            logDerivativeSlope: -T.tanh(x / 2))
    }

    func inverseDomain(feature: Int) -> String { "(0, 1)" }
}
