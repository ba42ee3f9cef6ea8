import RealModule

/// Range compression: squeezes the reals into an open interval,
/// `y = lo + (hi - lo)·σ(x)` elementwise, with the logistic sigmoid σ and fixed bounds `lo < hi`.
///
/// The opposite direction (range expansion, `x = log(y - lo) - log(hi - y)` from `(lo, hi)` onto
/// the reals, e.g. the logit preprocessing of bounded data) is the same layer's inverse (``Activation/inverse(_:context:)``),
/// and is available as a layer in its own right as `Inverted(RangeCompression(...))`.
///
/// - Shapes: `x`, `y` `[batch, features]`; no parameters.
/// - Log-determinant (nats, per sample): forward `Σ_j log(hi - lo) + log σ'(x_j)` with the stable
///   `log σ'(x) = -|x| - 2·log1p(e^{-|x|})`; inverse `Σ_j log(hi - lo) - log(y_j - lo) - log(hi - y_j)`,
///   the exact negative.
/// - Boundary: `y` is computed from the nearer bound (`hi - (hi-lo)σ(-x)` for x ≥ 0), so it never
///   leaves `[lo, hi]`; it rounds onto a bound for large |x| (as ``Sigmoid`` saturates), and such an
///   output cannot be inverted.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` from the initializer unless
///   `lo < hi` with `lo`, `hi` and `hi - lo` finite;
///   ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for an inverse input outside
///   `(lo, hi)` (bounds included) or NaN/±∞ in either direction, with its position.
/// - Source: DESIGN.md §3 (invertnn's forward and backward range-compression layers).
public typealias RangeCompression<T: Scalar> = Activation<T, RangeCompressionMap<T>>

extension Activation where Map == RangeCompressionMap<T> {
    /// A range compression of `features` features onto `(lower, upper)` (default `(0, 1)`).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or the
    ///   bounds are not finite with `lower < upper` and a finite width.
    public convenience init(features: Int, lower: T = 0, upper: T = 1) throws {
        try self.init(features: features, map: try RangeCompressionMap(lower: lower, upper: upper))
    }

    /// The lower bound `lo` of the output range.
    public var lower: T { map.lower }
    /// The upper bound `hi` of the output range.
    public var upper: T { map.upper }
}

/// `lo + (hi - lo)σ(x)` and its inverse (``RangeCompression``); the log-derivative slope is
/// `-tanh(x/2)` as for σ.
public struct RangeCompressionMap<T: Scalar>: ActivationMap {
    public typealias Element = T
    public static var typeName: String { "RangeCompression" }

    /// The checkpointed hyper-parameters: the target interval.
    public struct Configuration: Codable, Sendable, Equatable {
        /// The lower end of the output interval.
        public var lower: Double
        /// The upper end of the output interval.
        public var upper: Double
    }

    /// `lo`.
    public let lower: T
    /// `hi`.
    public let upper: T
    let width: T
    let logWidth: T

    /// The compression onto `(lower, upper)`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` unless the bounds are finite
    ///   with `lower < upper` and a finite width.
    public init(lower: T, upper: T) throws {
        guard lower.isFinite, upper.isFinite, lower < upper, (upper - lower).isFinite else {
            throw InvertNNError.invalidArgument(
                operation: "RangeCompression",
                reason: "bounds must be finite with lower < upper and a finite width, got (\(lower), \(upper))")
        }
        self.lower = lower
        self.upper = upper
        self.width = upper - lower
        self.logWidth = T.log(upper - lower)
    }

    public init(configuration: Configuration) throws { try self.init(lower: T(configuration.lower), upper: T(configuration.upper)) }
    public var configuration: Configuration { Configuration(lower: Double(lower), upper: Double(upper)) }
    public func layerName(features: Int) -> String { "RangeCompression(\(features), (\(lower), \(upper)))" }

    @inline(__always)
    public func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) {
        let tail = ActivationMath.sigmoid(-Swift.abs(x))
        let y = x >= 0 ? upper - width * tail : lower + width * tail
        return (y, logWidth + ActivationMath.logSigmoidDerivative(x))
    }

    @inline(__always)
    public func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? {
        guard y > lower, y < upper else { return nil }
        let logBelow = T.log(y - lower), logAbove = T.log(upper - y)
        return (logBelow - logAbove, logWidth - logBelow - logAbove)
    }

    @inline(__always)
    public func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> {
        let logDerivative = logWidth + ActivationMath.logSigmoidDerivative(x)
        return ElementwisePartials(
            derivative: T.exp(logDerivative), reciprocalDerivative: T.exp(-logDerivative),
            logDerivativeSlope: -T.tanh(x / 2))
    }

    public func inverseDomain(feature: Int) -> String { "(\(lower), \(upper))" }
}
