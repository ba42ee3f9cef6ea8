import RealModule

/// Leaky ReLU with a fixed positive slope: `y = x` for `x ≥ 0`, `y = α·x` for `x < 0`, elementwise.
///
/// - Shapes: `x`, `y` `[batch, features]`; no learnable parameters (see ``PReLU`` for a learnable
///   per-feature slope).
/// - Inverse: `x = y` for `y ≥ 0`, `x = y / α` for `y < 0`; defined on all finite reals.
/// - Log-determinant (nats, per sample): `(number of x_j < 0)·log α` forward, its negative inverse.
///   At the kink `x = 0` the right derivative 1 is used (so 0 contributes nothing); the map is not
///   differentiable there, which matters only for finite differences straddling 0.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` from the initializer for
///   `α ≤ 0` or non-finite α (the map would not be invertible);
///   ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for NaN/±∞ inputs in either
///   direction; shape errors as every layer.
/// - Source: Maas et al. 2013, "Rectifier nonlinearities improve neural network acoustic models";
///   DESIGN.md §3 (invertnn's leaky ReLU layer).
public final class LeakyReLU<T: Scalar>: ElementwiseLayer, RebuildableLayer {
    public typealias Element = T

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int
    /// `α > 0`, the slope for negative inputs.
    public let negativeSlope: T

    /// A leaky ReLU on `features` features with slope `negativeSlope` for negative inputs.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or
    ///   `negativeSlope` is not positive and finite.
    public init(features: Int, negativeSlope: T = 0.01) throws {
        try SizeLimits.features(features, operation: "LeakyReLU")
        guard negativeSlope > 0, negativeSlope.isFinite else {
            throw InvertNNError.invalidArgument(
                operation: "LeakyReLU", reason: "negativeSlope must be positive and finite for invertibility, got \(negativeSlope)")
        }
        self.features = features
        self.negativeSlope = negativeSlope
    }

    public var name: String { "LeakyReLU(\(features), α: \(negativeSlope))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { [] }
    /// The hyper-parameters: the feature count and the negative slope.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// The slope for negative inputs.
        public var negativeSlope: Double
    }
    public static var typeName: String { "LeakyReLU" }
    public var configuration: Configuration { Configuration(features: features, negativeSlope: Double(negativeSlope)) }
    public convenience init(configuration c: Configuration) throws {
        try self.init(features: c.features, negativeSlope: T(c.negativeSlope))
    }
    var perFeatureParameter: Parameter<T>? { nil }
    func makeMap() -> LeakyMap<T> {
        LeakyMap(slopes: [T](repeating: negativeSlope, count: features),
                 logSlopes: [T](repeating: T.log(negativeSlope), count: features))
    }

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

/// The leaky ReLU map with per-feature slope `α_j = exp(θ_j)`; shared by ``LeakyReLU`` (fixed
/// slope) and ``PReLU`` (θ learnable). For `x < 0`: `∂y/∂θ = α·x` and `∂ log f'/∂θ = 1`.
struct LeakyMap<T: Scalar>: ElementwiseMap {
    let slopes: [T]
    let logSlopes: [T]

    @inline(__always)
    func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) {
        x >= 0 ? (x, 0) : (slopes[feature] * x, logSlopes[feature])
    }

    @inline(__always)
    func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? {
        y >= 0 ? (y, 0) : (y / slopes[feature], -logSlopes[feature])
    }

    @inline(__always)
    func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> {
        if x >= 0 {
            return ElementwisePartials(derivative: 1, reciprocalDerivative: 1, logDerivativeSlope: 0)
        }
        let slope = slopes[feature]
        return ElementwisePartials(
            derivative: slope, reciprocalDerivative: 1 / slope, logDerivativeSlope: 0,
            parameterSlope: slope * x, logDerivativeParameterSlope: 1)
    }

    func inverseDomain(feature: Int) -> String { "finite reals (-∞, ∞)" }
}
