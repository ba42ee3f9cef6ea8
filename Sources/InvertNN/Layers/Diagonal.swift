import RealModule
/// Elementwise affine map with a log-parametrized scale: `y = exp(s) ⊙ x + b`.
///
/// - Shapes: `x`, `y` `[batch, features]`; parameters `logScale` `[1, features]` and (optionally)
///   `bias` `[1, features]`.
/// - Log-determinant: `Σ_j s_j` (forward), `-Σ_j s_j` (inverse), in nats, the same for every sample.
/// - The scale `exp(s)` is never zero, so the map is always invertible; signs are left to the
///   orthogonal factors (DESIGN.md §3; invertnn's diagonal layer).
public final class Diagonal<T: Scalar>: InvertibleLayer {
    public typealias Element = T

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int
    /// `s`, the log of the per-feature scale, `[1, features]`.
    public let logScale: Parameter<T>
    /// `b`, `[1, features]`, or `nil` for a layer without bias.
    public let bias: Parameter<T>?

    /// A diagonal layer with scale `exp(logScale)` (default: identity) and an optional bias.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or a given
    ///   vector has the wrong length or non-finite entries.
    public init(features: Int, logScale: [T]? = nil, bias: [T]? = nil, hasBias: Bool = true) throws {
        try SizeLimits.features(features, operation: "Diagonal")
        for (label, v) in [("logScale", logScale), ("bias", bias)] {
            if let v, v.count != features || v.contains(where: { !$0.isFinite }) {
                throw InvertNNError.invalidArgument(
                    operation: "Diagonal", reason: "\(label) must have \(features) finite entries, got \(v.count)")
            }
        }
        self.features = features
        self.logScale = Parameter(name: "logScale", value: Matrix(row: logScale ?? [T](repeating: 0, count: features)))
        let biasParameter = (hasBias || bias != nil)
            ? Parameter(name: "bias", value: Matrix(row: bias ?? [T](repeating: 0, count: features))) : nil
        self.bias = biasParameter
        let scaleParameter = self.logScale
        self.parameters = biasParameter.map { [scaleParameter, $0] } ?? [scaleParameter]
    }

    /// A diagonal layer from positive scales `d` (stored as `s = log d`).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if a scale is not positive and finite.
    public convenience init(scales: [T], bias: [T]? = nil) throws {
        if let bad = scales.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw InvertNNError.invalidArgument(
                operation: "Diagonal", reason: "scale \(scales[bad]) at index \(bad) must be positive and finite")
        }
        try self.init(features: scales.count, logScale: scales.map { T.log($0) }, bias: bias, hasBias: bias != nil)
    }

    public var name: String { "Diagonal(\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public let parameters: [Parameter<T>]
    public var configuration: [String: ConfigurationValue] {
        ["type": .string("Diagonal"), "features": .int(features), "bias": .bool(bias != nil)]
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>) throws -> LayerOutput<T> {
        try requireParameterShapes()
        try x.requireColumns(features, "\(name).forward")
        let s = logScale.value.storage
        let scale = s.map { T.exp($0) }
        let b = bias?.value.storage ?? [T](repeating: 0, count: features)
        var y = x
        for r in 0..<x.rows {
            let o = r * features
            for j in 0..<features { y.storage[o + j] = scale[j] * x.storage[o + j] + b[j] }
        }
        let ld = s.reduce(0, +)
        return LayerOutput(output: y, logAbsDet: [T](repeating: ld, count: x.rows))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>) throws -> LayerOutput<T> {
        try requireParameterShapes()
        try y.requireColumns(features, "\(name).inverse")
        let s = logScale.value.storage
        let inverseScale = s.map { T.exp(-$0) }
        let b = bias?.value.storage ?? [T](repeating: 0, count: features)
        var x = y
        for r in 0..<y.rows {
            let o = r * features
            for j in 0..<features { x.storage[o + j] = (y.storage[o + j] - b[j]) * inverseScale[j] }
        }
        let ld = -s.reduce(0, +)
        return LayerOutput(output: x, logAbsDet: [T](repeating: ld, count: y.rows))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input x: Matrix<T>, output y: Matrix<T>, outputGradient dy: Matrix<T>, logAbsDetGradient dld: [T]
    ) throws -> Matrix<T> {
        try requireParameterShapes()
        try validateBackward("forwardBackward", input: x, inFeatures: features, output: y, outFeatures: features,
                             outputGradient: dy, logAbsDetGradient: dld)
        let scale = logScale.value.storage.map { T.exp($0) }
        var dx = dy
        var ds = [T](repeating: dld.reduce(0, +), count: features)
        var db = [T](repeating: 0, count: features)
        for r in 0..<x.rows {
            let o = r * features
            for j in 0..<features {
                let g = dy.storage[o + j]
                dx.storage[o + j] = g * scale[j]
                ds[j] += g * x.storage[o + j] * scale[j]
                db[j] += g
            }
        }
        accumulate(ds, db)
        return dx
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input y: Matrix<T>, output x: Matrix<T>, outputGradient dx: Matrix<T>, logAbsDetGradient dld: [T]
    ) throws -> Matrix<T> {
        try requireParameterShapes()
        try validateBackward("inverseBackward", input: y, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: dx, logAbsDetGradient: dld)
        let inverseScale = logScale.value.storage.map { T.exp(-$0) }
        var dy = dx
        var ds = [T](repeating: -dld.reduce(0, +), count: features)
        var db = [T](repeating: 0, count: features)
        for r in 0..<y.rows {
            let o = r * features
            for j in 0..<features {
                let g = dx.storage[o + j]
                dy.storage[o + j] = g * inverseScale[j]
                // x = (y - b)·e^{-s}: ∂x/∂s = -x, ∂x/∂b = -e^{-s}.
                ds[j] -= g * x.storage[o + j]
                db[j] -= g * inverseScale[j]
            }
        }
        accumulate(ds, db)
        return dy
    }

    private func accumulate(_ ds: [T], _ db: [T]) {
        for j in 0..<features { logScale.gradient.storage[j] += ds[j] }
        if let bias { for j in 0..<features { bias.gradient.storage[j] += db[j] } }
    }
}
