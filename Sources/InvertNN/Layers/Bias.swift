import RealModule

/// A learnable translation: `y = x + b`, the same `b` for every sample.
///
/// - Shapes: `x`, `y` `[batch, features]`; parameter `bias` `[1, features]`.
/// - Inverse: `x = y - b`. Log-determinant 0 in both directions (a translation preserves volume).
/// - Gradients: forward `dL/dx = dL/dy`, `dL/db += Σ_i dL/dy_i`; inverse `dL/dy = dL/dx`,
///   `dL/db -= Σ_i dL/dx_i`.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` from the initializer for
///   `features < 1` or a wrong-length or non-finite `bias`; shape errors as every layer.
/// - Source: DESIGN.md §3 (structural layers; invertnn's bias layer).
public final class Bias<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int
    /// `b`, `[1, features]`.
    public let bias: Parameter<T>

    /// A bias layer with initial value `bias` (default zeros).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or `bias`
    ///   has the wrong length or non-finite entries.
    public init(features: Int, bias: [T]? = nil) throws {
        try SizeLimits.features(features, operation: "Bias")
        let bias = bias ?? [T](repeating: 0, count: features)
        guard bias.count == features, bias.allSatisfy({ $0.isFinite }) else {
            throw InvertNNError.invalidArgument(
                operation: "Bias", reason: "bias must have \(features) finite entries, got \(bias.count)")
        }
        self.features = features
        self.bias = Parameter(name: "bias", value: Matrix(row: bias))
    }

    public var name: String { "Bias(\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { [bias] }
    public static var typeName: String { "Bias" }
    public var configuration: FeatureConfiguration { FeatureConfiguration(features: features) }
    /// A layer on `configuration.features` features (see ``init(features:bias:)``).
    public convenience init(configuration: FeatureConfiguration) throws { try self.init(features: configuration.features) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        return LayerOutput(output: translated(x, by: 1), logAbsDet: [T](repeating: 0, count: x.rows))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(features, "\(name).inverse")
        return LayerOutput(output: translated(y, by: -1), logAbsDet: [T](repeating: 0, count: y.rows))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: input, inFeatures: features, output: output,
                             outFeatures: features, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        accumulateColumnSums(of: outputGradient, sign: 1)
        return outputGradient
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: input, inFeatures: features, output: output,
                             outFeatures: features, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        accumulateColumnSums(of: outputGradient, sign: -1)
        return outputGradient
    }

    /// `m + sign·b` broadcast over rows.
    private func translated(_ m: Matrix<T>, by sign: T) -> Matrix<T> {
        var out = m
        let b = bias.value.storage
        for r in 0..<m.rows {
            let o = r * features
            for j in 0..<features { out.storage[o + j] += sign * b[j] }
        }
        return out
    }

    private func accumulateColumnSums(of g: Matrix<T>, sign: T) {
        var sums = [T](repeating: 0, count: features)
        for r in 0..<g.rows {
            let o = r * features
            for j in 0..<features { sums[j] += g.storage[o + j] }
        }
        for j in 0..<features { bias.gradient.storage[j] += sign * sums[j] }
    }
}
