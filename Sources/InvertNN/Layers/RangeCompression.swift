import RealModule

/// Range compression: squeezes the reals into an open interval,
/// `y = lo + (hi - lo)·σ(x)` elementwise, with the logistic sigmoid σ and fixed bounds `lo < hi`.
///
/// The opposite direction (range expansion, `x = log(y - lo) - log(hi - y)` from `(lo, hi)` onto
/// the reals, e.g. the logit preprocessing of bounded data) is the same layer's ``inverse(_:)``,
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
public final class RangeCompression<T: Scalar>: ElementwiseLayer, RebuildableLayer {
    public typealias Element = T

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int
    /// The lower bound `lo` of the output range.
    public let lower: T
    /// The upper bound `hi` of the output range.
    public let upper: T

    /// A range compression of `features` features onto `(lower, upper)` (default `(0, 1)`).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or the
    ///   bounds are not finite with `lower < upper` and a finite width.
    public init(features: Int, lower: T = 0, upper: T = 1) throws {
        try SizeLimits.features(features, operation: "RangeCompression")
        guard lower.isFinite, upper.isFinite, lower < upper, (upper - lower).isFinite else {
            throw InvertNNError.invalidArgument(
                operation: "RangeCompression",
                reason: "bounds must be finite with lower < upper and a finite width, got (\(lower), \(upper))")
        }
        self.features = features
        self.lower = lower
        self.upper = upper
    }

    public var name: String { "RangeCompression(\(features), (\(lower), \(upper)))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { [] }
    /// The hyper-parameters: the feature count and the target interval.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// The lower end of the output interval.
        public var lower: Double
        /// The upper end of the output interval.
        public var upper: Double
    }
    public static var typeName: String { "RangeCompression" }
    public var configuration: Configuration { Configuration(features: features, lower: Double(lower), upper: Double(upper)) }
    public convenience init(configuration c: Configuration) throws {
        try self.init(features: c.features, lower: T(c.lower), upper: T(c.upper))
    }
    var perFeatureParameter: Parameter<T>? { nil }
    func makeMap() -> RangeCompressionMap<T> { RangeCompressionMap(lower: lower, upper: upper) }

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

/// `lo + (hi - lo)σ(x)` and its inverse; the log-derivative slope is `-tanh(x/2)` as for σ.
struct RangeCompressionMap<T: Scalar>: ElementwiseMap {
    let lower: T
    let upper: T
    let width: T
    let logWidth: T

    init(lower: T, upper: T) {
        self.lower = lower
        self.upper = upper
        self.width = upper - lower
        self.logWidth = T.log(upper - lower)
    }

    @inline(__always)
    func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) {
        let tail = ActivationMath.sigmoid(-Swift.abs(x))
        let y = x >= 0 ? upper - width * tail : lower + width * tail
        return (y, logWidth + ActivationMath.logSigmoidDerivative(x))
    }

    @inline(__always)
    func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? {
        guard y > lower, y < upper else { return nil }
        let logBelow = T.log(y - lower), logAbove = T.log(upper - y)
        return (logBelow - logAbove, logWidth - logBelow - logAbove)
    }

    @inline(__always)
    func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> {
        let logDerivative = logWidth + ActivationMath.logSigmoidDerivative(x)
        return ElementwisePartials(
            derivative: T.exp(logDerivative), reciprocalDerivative: T.exp(-logDerivative),
            logDerivativeSlope: -T.tanh(x / 2))
    }

    func inverseDomain(feature: Int) -> String { "(\(lower), \(upper))" }
}
