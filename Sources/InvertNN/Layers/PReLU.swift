import RealModule

/// Parametric ReLU with a learnable, always-positive slope per feature:
/// `y_j = x_j` for `x_j ≥ 0`, `y_j = α_j·x_j` for `x_j < 0`, with `α_j = exp(θ_j)`.
///
/// The slope is stored as its logarithm `θ` (the parameter ``logSlope``), so every optimizer step
/// keeps `α > 0` and the layer invertible; gradients are taken with respect to `θ`
/// (`∂y/∂θ = α·x` for `x < 0`).
///
/// - Shapes: `x`, `y` `[batch, features]`; parameter `logSlope` `[1, features]`.
/// - Inverse: `x_j = y_j` for `y_j ≥ 0`, `y_j / α_j` for `y_j < 0`; defined on all finite reals.
/// - Log-determinant (nats, per sample): `Σ_{j: x_j < 0} θ_j` forward, its negative inverse. At the
///   kink `x = 0` the right derivative 1 is used.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` from the initializer for
///   `features < 1` or a slope that is not positive and finite; from every call, the errors of
///   ``requireValidSlopes()`` when the parameter `logSlope` holds a value whose slope is not;
///   ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for NaN/±∞ inputs in either
///   direction; shape errors as every layer.
/// - Source: He et al. 2015, "Delving deep into rectifiers" (PReLU); DESIGN.md §3.
public final class PReLU<T: Scalar>: ElementwiseLayer, RebuildableLayer {
    public typealias Element = T

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int
    /// `θ = log α`, `[1, features]`.
    public let logSlope: Parameter<T>

    /// A PReLU on `features` features with initial negative-side slopes `slopes`
    /// (default 0.25 for every feature, as in He et al. 2015).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`, `slopes`
    ///   has the wrong length, or a slope is not positive and finite.
    public init(features: Int, slopes: [T]? = nil) throws {
        try SizeLimits.features(features, operation: "PReLU")
        let slopes = slopes ?? [T](repeating: 0.25, count: features)
        guard slopes.count == features else {
            throw InvertNNError.invalidArgument(
                operation: "PReLU", reason: "slopes must have \(features) entries, got \(slopes.count)")
        }
        if let bad = slopes.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw InvertNNError.invalidArgument(
                operation: "PReLU", reason: "slope \(slopes[bad]) at index \(bad) must be positive and finite")
        }
        self.features = features
        self.logSlope = Parameter(name: "logSlope", value: Matrix(row: slopes.map { T.log($0) }))
    }

    /// Throws unless every slope `α = e^θ` is positive and finite: a log-slope of -∞ (slope 0),
    /// NaN, or one whose exponential overflows or underflows (assigned through the parameter, or
    /// reached by an optimizer) would give a log-det of -∞ or NaN and a non-invertible map. Both
    /// errors are ones the trainer's guard recovers from.
    ///
    /// - Throws: ``InvertNNError/nonFinite(operation:row:column:)`` naming the layer, the
    ///   parameter `logSlope` and the entry for a NaN or infinite log-slope;
    ///   ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for a finite one whose slope
    ///   is 0 or infinite in `T`.
    public func requireValidSlopes() throws {
        for (j, theta) in logSlope.value.storage.enumerated() {
            guard theta.isFinite else { throw InvertNNError.nonFinite(operation: "\(name) parameter logSlope", row: 0, column: j) }
            let slope = T.exp(theta)
            guard slope > 0, slope.isFinite else {
                throw InvertNNError.outOfDomain(
                    layer: "\(name) parameter logSlope", value: Double(theta), row: 0, column: j,
                    domain: "log-slopes whose slope e^θ is positive and finite in \(T.self)")
            }
        }
    }

    /// The current slopes `α = exp(θ)`.
    public var slopes: [T] { logSlope.value.storage.map { T.exp($0) } }

    public var name: String { "PReLU(\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { [logSlope] }
    public static var typeName: String { "PReLU" }
    public var configuration: FeatureConfiguration { FeatureConfiguration(features: features) }
    /// A layer on `configuration.features` features (see ``init(features:)``).
    public convenience init(configuration: FeatureConfiguration) throws { try self.init(features: configuration.features) }
    var perFeatureParameter: Parameter<T>? { logSlope }
    func makeMap() -> LeakyMap<T> { LeakyMap(slopes: slopes, logSlopes: logSlope.value.storage) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try requireValidSlopes()
        return try elementwiseForward(x)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try requireValidSlopes()
        return try elementwiseInverse(y)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try requireValidSlopes()
        return try elementwiseForwardBackward(input: input, output: output, outputGradient: outputGradient,
                                       logAbsDetGradient: logAbsDetGradient)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try requireValidSlopes()
        return try elementwiseInverseBackward(input: input, output: output, outputGradient: outputGradient,
                                       logAbsDetGradient: logAbsDetGradient)
    }
}
