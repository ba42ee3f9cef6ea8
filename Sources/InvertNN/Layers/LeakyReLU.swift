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
public typealias LeakyReLU<T: Scalar> = Activation<T, LeakyReLUMap<T>>

extension Activation where Map == LeakyReLUMap<T> {
    /// A leaky ReLU on `features` features with slope `negativeSlope` for negative inputs.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or
    ///   `negativeSlope` is not positive and finite.
    public convenience init(features: Int, negativeSlope: T = 0.01) throws {
        try self.init(features: features, map: try LeakyReLUMap(negativeSlope: negativeSlope))
    }

    /// `α > 0`, the slope for negative inputs.
    public var negativeSlope: T { map.negativeSlope }
}

/// The leaky ReLU map with a fixed slope `α` for negative inputs (``LeakyReLU``).
public struct LeakyReLUMap<T: Scalar>: ActivationMap {
    public typealias Element = T
    public static var typeName: String { "LeakyReLU" }

    /// The checkpointed hyper-parameter.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `α`, the slope for negative inputs.
        public var negativeSlope: Double
    }

    /// `α > 0`.
    public let negativeSlope: T
    let logSlope: T

    /// The map with slope `negativeSlope` for negative inputs.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` unless it is positive and finite.
    public init(negativeSlope: T) throws {
        guard negativeSlope > 0, negativeSlope.isFinite else {
            throw InvertNNError.invalidArgument(
                operation: "LeakyReLU", reason: "negativeSlope must be positive and finite for invertibility, got \(negativeSlope)")
        }
        self.negativeSlope = negativeSlope
        self.logSlope = T.log(negativeSlope)
    }

    public init(configuration: Configuration) throws { try self.init(negativeSlope: T(configuration.negativeSlope)) }
    public var configuration: Configuration { Configuration(negativeSlope: Double(negativeSlope)) }
    public func layerName(features: Int) -> String { "LeakyReLU(\(features), α: \(negativeSlope))" }

    @inline(__always)
    public func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) {
        x >= 0 ? (x, 0) : (negativeSlope * x, logSlope)
    }

    @inline(__always)
    public func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? {
        y >= 0 ? (y, 0) : (y / negativeSlope, -logSlope)
    }

    @inline(__always)
    public func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> {
        x >= 0
            ? ElementwisePartials(derivative: 1, reciprocalDerivative: 1, logDerivativeSlope: 0)
            : ElementwisePartials(derivative: negativeSlope, reciprocalDerivative: 1 / negativeSlope, logDerivativeSlope: 0)
    }
}
