import RealModule

/// Local derivatives of one scalar bijection `y = f(x; θ)` at a matching pair `(x, y)`.
///
/// These five numbers are all an ``Activation`` needs for the vector-Jacobian products of both
/// directions: the inverse direction's partials follow from the forward ones by the inverse
/// function theorem (see ``Activation``), so each activation states its calculus once.
public struct ElementwisePartials<T: Scalar>: Sendable {
    /// `f'(x)`.
    public var derivative: T
    /// `1 / f'(x) = (f⁻¹)'(y)`, computed directly (not as `1 / derivative`) so that it stays
    /// accurate where `f'` is tiny.
    public var reciprocalDerivative: T
    /// `d log f'(x) / dx = f''(x) / f'(x)`.
    public var logDerivativeSlope: T
    /// `∂f/∂θ` for the layer's per-feature parameter (0 for parameterless maps).
    public var parameterSlope: T
    /// `∂ log f'(x) / ∂θ` (0 for parameterless maps).
    public var logDerivativeParameterSlope: T

    /// The partials at one point; the parameter slopes default to 0 (a map without a parameter).
    @inlinable @inline(__always)
    public init(derivative: T, reciprocalDerivative: T, logDerivativeSlope: T, parameterSlope: T = 0,
                logDerivativeParameterSlope: T = 0) {
        self.derivative = derivative
        self.reciprocalDerivative = reciprocalDerivative
        self.logDerivativeSlope = logDerivativeSlope
        self.parameterSlope = parameterSlope
        self.logDerivativeParameterSlope = logDerivativeParameterSlope
    }
}

/// The hyper-parameters of an activation that has none besides its feature count (it writes no
/// fields beside `"features"`).
public struct NoConfiguration: Codable, Sendable, Equatable {
    /// The empty configuration.
    public init() {}
    /// Reads nothing.
    public init(from decoder: any Decoder) throws {}
    /// Writes nothing: the activation's `"features"` is the whole object.
    public func encode(to encoder: any Encoder) throws {}
}

/// One scalar bijection `y = f(x; θ_j)` applied to every entry of a batch: all an activation
/// states. ``Activation`` runs the loops, the checks, the log-determinants, both vector-Jacobian
/// products, the optional per-feature parameter `θ` and the checkpoint configuration, and is
/// specialized on the library's maps so that their per-entry code inlines (mark the four entry
/// methods `@inline(__always)`).
///
/// - Required: ``typeName``, ``init(configuration:)`` (a map without hyper-parameters writes
///   `public init(configuration: NoConfiguration = .init()) {}`), ``forward(_:feature:)``,
///   ``inverse(_:feature:)`` and ``partials(input:output:feature:)``.
/// - Optional: ``Configuration`` and ``configuration`` (hyper-parameters such as a fixed slope,
///   stored as `Double`s beside `"features"`), ``inverseDomain(feature:)`` (default all finite
///   reals), ``layerName(features:)``, and a learnable per-feature parameter: ``parameterName``,
///   ``initialParameter`` and ``bound(to:layer:)``, which builds the map for one call from the
///   current values `θ` `[features]` (precomputing per-feature constants, checking them).
/// - Register the layer with one line in ``LayerRegistry`` (`register(Activation<T, MyMap<T>>.self)`).
public protocol ActivationMap<Element>: Sendable {
    /// The scalar type, `Float` or `Double`.
    associatedtype Element: Scalar
    /// Hyper-parameters besides the feature count, written beside `"features"` in a checkpoint.
    associatedtype Configuration: Codable & Sendable & Equatable = NoConfiguration

    /// The checkpoint's `"type"` of the activation (e.g. `"Sigmoid"`).
    static var typeName: String { get }
    /// This map's hyper-parameters.
    var configuration: Configuration { get }
    /// The map described by `configuration`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for hyper-parameters that
    ///   would not give a bijection (a slope ≤ 0).
    init(configuration: Configuration) throws

    /// The name of the per-feature parameter `θ` `[1, features]` (`"logSlope"`), or `nil` for a
    /// map without one (the default).
    static var parameterName: String? { get }
    /// `θ_j` of a new layer when the caller gives none (default 0).
    static var initialParameter: Element { get }
    /// The map for one call with parameter values `θ` (`features` finite entries); the default
    /// returns `self`.
    ///
    /// - Throws: ``InvertNNError`` naming `layer` if a value the optimizer or the caller reached
    ///   does not give a bijection.
    func bound(to parameter: [Element], layer: String) throws -> Self
    /// The layer's name in errors and summaries (default `"Type(features)"`).
    func layerName(features: Int) -> String

    /// `f(x)` and `log f'(x)` for feature `feature`. `x` is finite.
    func forward(_ x: Element, feature: Int) -> (value: Element, logDerivative: Element)
    /// `f⁻¹(y)` and `log (f⁻¹)'(y) = -log f'(f⁻¹(y))`, or `nil` when `y` (finite) lies outside
    /// the inverse domain.
    func inverse(_ y: Element, feature: Int) -> (value: Element, logDerivative: Element)?
    /// The local derivatives at the matching pair `x`, `y = f(x)`.
    func partials(input x: Element, output y: Element, feature: Int) -> ElementwisePartials<Element>
    /// The inverse domain of feature `feature`, for error messages (e.g. `"(-1, 1)"`).
    func inverseDomain(feature: Int) -> String
}

extension ActivationMap {
    public static var parameterName: String? { nil }
    public static var initialParameter: Element { 0 }
    public func bound(to parameter: [Element], layer: String) throws -> Self { self }
    public func layerName(features: Int) -> String { "\(Self.typeName)(\(features))" }
    public func inverseDomain(feature: Int) -> String { ActivationMath.realLine }
}

extension ActivationMap where Configuration == NoConfiguration {
    public var configuration: NoConfiguration { NoConfiguration() }
}

/// Numerically stable scalar building blocks shared by the activations.
enum ActivationMath {
    /// The domain of a map defined on every finite input, for error messages.
    static let realLine = "finite reals (-∞, ∞)"

    /// `softplus(x) = log(1 + eˣ)` without overflow: `max(x, 0) + log1p(e^{-|x|})`.
    @inline(__always)
    static func softplus<T: Scalar>(_ x: T) -> T {
        Swift.max(x, 0) + T.log(onePlus: T.exp(-Swift.abs(x)))
    }

    /// The logistic sigmoid `1 / (1 + e^{-x})`, evaluated so that `e^{±x}` never overflows.
    @inline(__always)
    static func sigmoid<T: Scalar>(_ x: T) -> T {
        let e = T.exp(-Swift.abs(x))
        return x >= 0 ? 1 / (1 + e) : e / (1 + e)
    }

    /// `log σ'(x) = -softplus(x) - softplus(-x) = -|x| - 2·log1p(e^{-|x|})`, finite for every finite x.
    @inline(__always)
    static func logSigmoidDerivative<T: Scalar>(_ x: T) -> T {
        -Swift.abs(x) - 2 * T.log(onePlus: T.exp(-Swift.abs(x)))
    }

    /// `log cosh(x) = |x| - log 2 + log1p(e^{-2|x|})`, finite for every finite x.
    @inline(__always)
    static func logCosh<T: Scalar>(_ x: T) -> T {
        Swift.abs(x) - T.log(2) + T.log(onePlus: T.exp(-2 * Swift.abs(x)))
    }

    /// `sech(x) = 2e^{-|x|} / (1 + e^{-2|x|})`, which underflows to 0 instead of dividing by ∞.
    @inline(__always)
    static func sech<T: Scalar>(_ x: T) -> T {
        let a = T.exp(-Swift.abs(x))
        return 2 * a / (1 + a * a)
    }
}
