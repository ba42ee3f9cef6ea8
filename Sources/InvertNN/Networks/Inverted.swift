import RealModule
/// A layer with its directions swapped: `Inverted(f).forward == f.inverse` and vice versa,
/// log-determinants included. Parameters are shared with the wrapped layer.
///
/// Unlike the original invertnn's inverted module (whose log-det recursed forever), this simply
/// forwards each call to the opposite direction of `base`.
public final class Inverted<T: Scalar>: InvertibleLayer {
    public typealias Element = T

    /// The wrapped layer.
    public let base: any InvertibleLayer<T>

    /// Wraps `base`, swapping its directions.
    public init(_ base: any InvertibleLayer<T>) { self.base = base }

    public var name: String { "Inverted(\(base.name))" }
    public var inputFeatures: Int { base.outputFeatures }
    public var outputFeatures: Int { base.inputFeatures }
    public var parameters: [Parameter<T>] { base.parameters }
    public func releaseBuffers() { base.releaseBuffers() }
    public var configuration: [String: ConfigurationValue] {
        ["type": .string("Inverted"), "layers": .layers([base.configuration])]
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
