import RealModule

/// The scaled exponential linear unit as an invertible layer: `y = λ·ELU_α(x)`, i.e.
/// `y = λ·x` for `x ≥ 0` and `y = λα·(eˣ - 1)` for `x < 0`, elementwise, with the standard
/// constants `α = 1.6732632423543772`, `λ = 1.0507009873554805`.
///
/// - Shapes: `x`, `y` `[batch, features]`; no parameters.
/// - Range and inverse: outputs lie in `(-λα, ∞) = (-1.7580993408…, ∞)`; `x = y/λ` for `y ≥ 0` and
///   `x = log1p(y/(λα))` for `-λα < y < 0`.
/// - Log-determinant (nats, per sample): `Σ_j log λ` over `x_j ≥ 0` plus `Σ_j (log(λα) + x_j)` over
///   `x_j < 0`, forward; its negative inverse. At the kink `x = 0` the right derivative λ is used.
/// - Boundary: as for ``ELU``, outputs that round to `-λα` (very negative x) cannot be inverted.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for `features < 1`;
///   ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for an inverse input
///   `y ≤ -λα` or NaN/±∞ in either direction, with its position.
/// - Source: Klambauer et al. 2017, "Self-normalizing neural networks" (the SELU definition with
///   its fixed-point constants α₀₁, λ₀₁); DESIGN.md §3.
public typealias SELU<T: Scalar> = Activation<T, SELUMap<T>>

extension Activation where Map == SELUMap<T> {
    /// The standard SELU α (Klambauer et al. 2017).
    public static var alpha: T { SELUMap<T>.alpha }
    /// The standard SELU λ (Klambauer et al. 2017).
    public static var scale: T { SELUMap<T>.scale }
}

/// The SELU map, λ·ELU_α with the fixed-point constants (``SELU``).
public struct SELUMap<T: Scalar>: ActivationMap {
    public typealias Element = T
    public static var typeName: String { "SELU" }
    /// The standard SELU α (Klambauer et al. 2017).
    public static var alpha: T { 1.6732632423543772 }
    /// The standard SELU λ (Klambauer et al. 2017).
    public static var scale: T { 1.0507009873554805 }

    let core = ScaledExponentialLinear<T>(alpha: SELUMap.alpha, scale: SELUMap.scale)

    /// The SELU (its constants are fixed).
    public init(configuration: NoConfiguration = .init()) {}

    @inline(__always)
    public func forward(_ x: T, feature: Int) -> (value: T, logDerivative: T) { core.forward(x) }
    @inline(__always)
    public func inverse(_ y: T, feature: Int) -> (value: T, logDerivative: T)? { core.inverse(y) }
    @inline(__always)
    public func partials(input x: T, output y: T, feature: Int) -> ElementwisePartials<T> { core.partials(x) }
    public func inverseDomain(feature: Int) -> String { core.inverseDomain }
}
