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
public final class SELU<T: Scalar>: ElementwiseLayer, RebuildableLayer {
    public typealias Element = T

    /// The standard SELU α (Klambauer et al. 2017).
    public static var alpha: T { 1.6732632423543772 }
    /// The standard SELU λ (Klambauer et al. 2017).
    public static var scale: T { 1.0507009873554805 }

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int

    /// A SELU on `features` features.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`.
    public init(features: Int) throws {
        try SizeLimits.features(features, operation: "SELU")
        self.features = features
    }

    public var name: String { "SELU(\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { [] }
    public static var typeName: String { "SELU" }
    public var configuration: FeatureConfiguration { FeatureConfiguration(features: features) }
    /// A layer on `configuration.features` features (see ``init(features:)``).
    public convenience init(configuration: FeatureConfiguration) throws { try self.init(features: configuration.features) }
    var perFeatureParameter: Parameter<T>? { nil }
    func makeMap() -> ScaledELUMap<T> { ScaledELUMap(alpha: Self.alpha, scale: Self.scale) }

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
