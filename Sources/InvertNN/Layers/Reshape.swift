import RealModule

/// A change of declared shape: the identity on each sample's flat (NCHW, row-major) data.
///
/// Batches are always `[batch, features]` matrices, so reshaping moves no data; the layer records
/// how the features of a sample are to be read (e.g. `[4, 2, 2]` → `[16]`, or `[1, 8, 8]` →
/// `[4, 4, 4]` before a channel-mixing layer) so that a model's architecture, and its checkpoint,
/// state where the interpretation changes. Use ``PixelUnshuffle`` / ``PixelShuffle`` to move pixels
/// between channels and space; this layer never permutes.
///
/// - Shapes: `x` `[batch, Π inputShape]`, `y` `[batch, Π outputShape]` with equal products.
/// - Log-determinant 0 in both directions; the VJPs pass the gradient through unchanged.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` from the initializer if a shape
///   is empty, has an entry < 1, or the element counts differ; shape errors as every layer.
/// - Source: DESIGN.md §3 (structural layers; invertnn's reshape layer).
public final class Reshape<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// The per-sample shape of `x`, e.g. `[channels, height, width]`.
    public let inputShape: [Int]
    /// The per-sample shape of `y`.
    public let outputShape: [Int]

    /// A reshape from `inputShape` to `outputShape` (per sample, batch dimension excluded).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if a shape is empty, has an
    ///   entry < 1, or `inputShape` and `outputShape` hold different numbers of elements.
    public init(from inputShape: [Int], to outputShape: [Int]) throws {
        for (label, shape) in [("inputShape", inputShape), ("outputShape", outputShape)]
        where shape.isEmpty || shape.contains(where: { $0 < 1 }) {
            throw InvertNNError.invalidArgument(
                operation: "Reshape", reason: "\(label) \(shape) must be non-empty with every entry ≥ 1")
        }
        let inputCount = try SizeLimits.product(inputShape, operation: "Reshape", what: "inputShape")
        let outputCount = try SizeLimits.product(outputShape, operation: "Reshape", what: "outputShape")
        guard inputCount == outputCount else {
            throw InvertNNError.invalidArgument(
                operation: "Reshape",
                reason: "\(inputShape) holds \(inputCount) elements but \(outputShape) holds \(outputCount)")
        }
        self.inputShape = inputShape
        self.outputShape = outputShape
    }

    public var name: String { "Reshape(\(inputShape) → \(outputShape))" }
    public var inputFeatures: Int { inputShape.reduce(1, *) }
    public var outputFeatures: Int { inputFeatures }
    public var parameters: [Parameter<T>] { [] }
    /// The hyper-parameters: the two shapes.
    public struct Configuration: Codable, Sendable, Equatable {
        /// The shape of a sample on the way in.
        public var inputShape: [Int]
        /// The shape of a sample on the way out.
        public var outputShape: [Int]
    }
    public static var typeName: String { "Reshape" }
    public var configuration: Configuration { Configuration(inputShape: inputShape, outputShape: outputShape) }
    public convenience init(configuration c: Configuration) throws { try self.init(from: c.inputShape, to: c.outputShape) }

    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(inputFeatures, "\(name).forward")
        return LayerOutput(output: x, logAbsDet: [T](repeating: 0, count: x.rows))
    }

    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(outputFeatures, "\(name).inverse")
        return LayerOutput(output: y, logAbsDet: [T](repeating: 0, count: y.rows))
    }

    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: input, inFeatures: inputFeatures, output: output,
                             outFeatures: outputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        return outputGradient
    }

    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: input, inFeatures: outputFeatures, output: output,
                             outFeatures: inputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        return outputGradient
    }
}
