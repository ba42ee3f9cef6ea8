import RealModule

/// Parametric ReLU with a learnable, always-positive slope per feature:
/// `y_j = x_j` for `x_j ≥ 0`, `y_j = α_j·x_j` for `x_j < 0`, with `α_j = exp(θ_j)`.
///
/// The slope is stored as its logarithm `θ` (the parameter `logSlope`), so every optimizer step
/// keeps `α > 0` and the layer invertible; gradients are taken with respect to `θ`
/// (`∂y/∂θ = α·x` for `x < 0`).
///
/// - Shapes: `x`, `y` `[batch, features]`; parameter `logSlope` `[1, features]`.
/// - Inverse: `x_j = y_j` for `y_j ≥ 0`, `y_j / α_j` for `y_j < 0`; defined on all finite reals.
/// - Log-determinant (nats, per sample): `Σ_{j: x_j < 0} θ_j` forward, its negative inverse. At the
///   kink `x = 0` the right derivative 1 is used.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` from the initializer for
///   `features < 1` or a slope that is not positive and finite; from every call,
///   ``InvertNNError/nonFinite(operation:row:column:)`` or
///   ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` naming the parameter `logSlope`
///   and the entry when a log-slope (assigned, or reached by an optimizer) is not finite or its
///   slope `e^θ` is 0 or infinite in `T` (errors the trainer's guard recovers from);
///   ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for NaN/±∞ inputs in either
///   direction; shape errors as every layer.
/// - Source: He et al. 2015, "Delving deep into rectifiers" (PReLU); DESIGN.md §3.
public typealias PReLU<T: Scalar> = Activation<T, PReLUMap<T>>

extension Activation where Map == PReLUMap<T> {
    /// A PReLU on `features` features with initial negative-side slopes `slopes` (``init(features:)``
    /// starts every slope at 0.25, as in He et al. 2015).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`, `slopes`
    ///   has the wrong length, or a slope is not positive and finite.
    public convenience init(features: Int, slopes: [T]) throws {
        if let bad = slopes.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw InvertNNError.invalidArgument(
                operation: "PReLU", reason: "slope \(slopes[bad]) at index \(bad) must be positive and finite")
        }
        try self.init(features: features, map: PReLUMap(), parameter: slopes.map { T.log($0) })
    }

    /// `θ = log α`, `[1, features]`.
    public var logSlope: Parameter<T> { parameters[0] }
    /// The current slopes `α = exp(θ)`.
    public var slopes: [T] { logSlope.value.storage.map { T.exp($0) } }

    /// Throws unless every slope `α = e^θ` is positive and finite (checked by every call).
    ///
    /// - Throws: ``InvertNNError/nonFinite(operation:row:column:)`` naming the layer, the
    ///   parameter `logSlope` and the entry for a NaN or infinite log-slope;
    ///   ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for a finite one whose slope
    ///   is 0 or infinite in `T`.
    public func requireValidSlopes() throws { _ = try boundMap() }
}

/// The leaky ReLU map with a learnable per-feature slope `α_j = exp(θ_j)` (``PReLU``). For `x < 0`:
/// `∂y/∂θ = α·x` and `∂ log f'/∂θ = 1`.
public struct PReLUMap<T: Scalar>: ActivationMap {
    public typealias Element = T
    public static var typeName: String { "PReLU" }
    public static var parameterName: String? { "logSlope" }
    public static var initialParameter: T { T.log(0.25) }

    /// `α_j` and `θ_j = log α_j` of the call (empty until bound).
    let slopes: [T]
    let logSlopes: [T]

    init(slopes: [T], logSlopes: [T]) {
        self.slopes = slopes
        self.logSlopes = logSlopes
    }

    /// The PReLU map (its slopes are the layer's parameter).
    public init(configuration: NoConfiguration = .init()) { self.init(slopes: [], logSlopes: []) }

    /// The map with slopes `e^θ`.
    ///
    /// - Throws: ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` naming the parameter
    ///   and entry for a log-slope whose slope is 0 or infinite in `T`.
    public func bound(to parameter: [T], layer: String) throws -> PReLUMap<T> {
        let slopes = parameter.map { T.exp($0) }
        if let j = slopes.firstIndex(where: { !($0 > 0 && $0.isFinite) }) {
            throw InvertNNError.outOfDomain(
                layer: "\(layer) parameter logSlope", value: Double(parameter[j]), row: 0, column: j,
                domain: "log-slopes whose slope e^θ is positive and finite in \(T.self)")
        }
        return PReLUMap(slopes: slopes, logSlopes: parameter)
    }

    @inline(__always)
    public func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) {
        x >= 0 ? (x, 0) : (slopes[feature] * x, logSlopes[feature])
    }

    @inline(__always)
    public func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? {
        y >= 0 ? (y, 0) : (y / slopes[feature], -logSlopes[feature])
    }

    @inline(__always)
    public func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> {
        if x >= 0 {
            return ElementwisePartials(derivative: 1, reciprocalDerivative: 1, logDerivativeSlope: 0)
        }
        let slope = slopes[feature]
        return ElementwisePartials(
            derivative: slope, reciprocalDerivative: 1 / slope, logDerivativeSlope: 0,
            parameterSlope: slope * x, logDerivativeParameterSlope: 1)
    }
}
