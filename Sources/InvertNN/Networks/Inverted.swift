import RealModule
/// A layer with its directions swapped: `Inverted(f).forward == f.inverse` and vice versa,
/// log-determinants included. Parameters are shared with the wrapped layer.
///
/// Unlike the original invertnn's inverted module (whose log-det recursed forever), this simply
/// forwards each call to the opposite direction of `base`.
public final class Inverted<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// The wrapped layer.
    public let base: any InvertibleLayer<T>

    /// Wraps `base`, swapping its directions.
    public init(_ base: any InvertibleLayer<T>) { self.base = base }

    public var name: String { "Inverted(\(base.name))" }
    public var inputFeatures: Int { base.outputFeatures }
    public var outputFeatures: Int { base.inputFeatures }
    public var parameters: [Parameter<T>] { base.parameters }
    /// The hyper-parameters: the inverted layer (a one-element `layers`).
    public struct Configuration: Codable, Sendable {
        /// The children's configurations, in order.
        public var layers: [LayerConfiguration<T>]
    }
    public static var typeName: String { "Inverted" }
    public var configuration: Configuration { Configuration(layers: [LayerConfiguration(base)]) }
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` unless `layers` holds exactly one layer.
    public convenience init(configuration c: Configuration) throws {
        guard c.layers.count == 1 else {
            throw InvertNNError.invalidArgument(operation: "Inverted", reason: "wraps exactly one layer, got \(c.layers.count)")
        }
        self.init(try c.layers[0].makeLayer())
    }

    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try base.inverse(x, context: &context)
    }

    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try base.forward(y, context: &context)
    }

    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try base.inverseBackward(input: input, output: output, outputGradient: outputGradient,
                                 logAbsDetGradient: logAbsDetGradient, context: &context)
    }

    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try base.forwardBackward(input: input, output: output, outputGradient: outputGradient,
                                 logAbsDetGradient: logAbsDetGradient, context: &context)
    }
}
