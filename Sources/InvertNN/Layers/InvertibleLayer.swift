import RealModule
/// The result of one direction of a bijection on a batch.
public struct LayerOutput<T: Scalar>: Sendable {
    /// The mapped batch, `[batch, features]`.
    public var output: Matrix<T>
    /// `log|det J|` of that direction per sample, `[batch]`, in nats.
    public var logAbsDet: [T]

    /// A result from its batch `[batch, features]` and per-sample log-dets `[batch]`.
    public init(output: Matrix<T>, logAbsDet: [T]) {
        self.output = output
        self.logAbsDet = logAbsDet
    }
}

/// A bijection `f` on batches of row vectors, with its log-determinant and hand-written
/// vector-Jacobian products in both directions (DESIGN.md §2, §7).
///
/// A layer implements exactly four methods, each taking the batch and an `inout`
/// ``LayerContext`` (side channels, the noise generator, and what the next layers read):
/// - ``forward(_:context:)`` maps `x` `[batch, inputFeatures]` to `y = f(x)`
///   `[batch, outputFeatures]` with `logAbsDet[i] = log|det ∂y_i/∂x_i|`.
/// - ``inverse(_:context:)`` maps `y` back to `x` with `log|det ∂x_i/∂y_i|`, exactly the negative
///   of the forward one at the matching point.
/// - ``forwardBackward(input:output:outputGradient:logAbsDetGradient:context:)`` and
///   ``inverseBackward(input:output:outputGradient:logAbsDetGradient:context:)`` take that call's
///   input and output and the upstream gradients `dL/d(output)` `[batch, outFeatures]` and
///   `dL/dlogAbsDet` `[batch]`, return `dL/d(input)`, and *add* `dL/dθ` into every parameter's
///   gradient (and the gradients of side inputs into the context).
///
/// The calls without a context (``forward(_:)``, ``inverse(_:)``, …) are extension sugar that pass
/// an empty context; a layer that does not read the context simply ignores it. There are no
/// mutual defaults: a conformer that leaves out one of the four does not compile.
///
/// Layers recompute internally whatever else backward needs (an MLP's hidden activations), so a
/// container may either keep every intermediate on a tape or rebuild inputs by inversion.
/// Forward and inverse never change parameters. All methods throw
/// ``InvertNNError/shapeMismatch(operation:expected:actual:)`` on a wrong feature count or an empty
/// batch, and ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` where a direction is
/// only defined on part of the space.
public protocol InvertibleLayer<Element>: AnyObject {
    /// The scalar type, `Float` or `Double`.
    associatedtype Element: Scalar

    /// A short human-readable name used in errors and summaries (e.g. `"Householder(64, m: 64)"`).
    var name: String { get }
    /// Features of `x` (the forward input).
    var inputFeatures: Int { get }
    /// Features of `y` (the forward output).
    var outputFeatures: Int { get }
    /// The learnable parameters, in a stable order.
    var parameters: [Parameter<Element>] { get }

    /// `y = f(x)` and `log|det ∂y/∂x|` per sample; side inputs are read from `context`, noise is
    /// taken from it or drawn with its generator.
    func forward(_ x: Matrix<Element>, context: inout LayerContext<Element>) throws -> LayerOutput<Element>
    /// `x = f⁻¹(y)` and `log|det ∂x/∂y|` per sample; restored side outputs are written to `context`.
    func inverse(_ y: Matrix<Element>, context: inout LayerContext<Element>) throws -> LayerOutput<Element>
    /// VJP of ``forward(_:context:)`` at `input = x`, `output = f(x)`: returns `dL/dx`,
    /// accumulates `dL/dθ` (and side-input gradients into `context.gradients`).
    func forwardBackward(
        input: Matrix<Element>, output: Matrix<Element>,
        outputGradient: Matrix<Element>, logAbsDetGradient: [Element], context: inout LayerContext<Element>
    ) throws -> Matrix<Element>
    /// VJP of ``inverse(_:context:)`` at `input = y`, `output = f⁻¹(y)`: returns `dL/dy`,
    /// accumulates `dL/dθ`.
    func inverseBackward(
        input: Matrix<Element>, output: Matrix<Element>,
        outputGradient: Matrix<Element>, logAbsDetGradient: [Element], context: inout LayerContext<Element>
    ) throws -> Matrix<Element>

    /// The layer's hyper-parameters (its constructor arguments, not its parameter values), the
    /// Codable half of a checkpoint's architecture (``LayerConfiguration``).
    associatedtype Configuration: Codable & Sendable
    /// The name a checkpoint stores in `"type"` and the ``LayerRegistry`` looks up (e.g.
    /// `"Householder"`).
    static var typeName: String { get }
    /// This layer's configuration, a value of its `Configuration` type.
    var configuration: Configuration { get }
}

extension InvertibleLayer {
    /// ``forward(_:context:)`` with an empty context.
    public func forward(_ x: Matrix<Element>) throws -> LayerOutput<Element> {
        var context = LayerContext<Element>()
        return try forward(x, context: &context)
    }

    /// ``inverse(_:context:)`` with an empty context.
    public func inverse(_ y: Matrix<Element>) throws -> LayerOutput<Element> {
        var context = LayerContext<Element>()
        return try inverse(y, context: &context)
    }

    /// ``forwardBackward(input:output:outputGradient:logAbsDetGradient:context:)`` with an empty context.
    public func forwardBackward(
        input: Matrix<Element>, output: Matrix<Element>, outputGradient: Matrix<Element>, logAbsDetGradient: [Element]
    ) throws -> Matrix<Element> {
        var context = LayerContext<Element>()
        return try forwardBackward(input: input, output: output, outputGradient: outputGradient,
                                   logAbsDetGradient: logAbsDetGradient, context: &context)
    }

    /// ``inverseBackward(input:output:outputGradient:logAbsDetGradient:context:)`` with an empty context.
    public func inverseBackward(
        input: Matrix<Element>, output: Matrix<Element>, outputGradient: Matrix<Element>, logAbsDetGradient: [Element]
    ) throws -> Matrix<Element> {
        var context = LayerContext<Element>()
        return try inverseBackward(input: input, output: output, outputGradient: outputGradient,
                                   logAbsDetGradient: logAbsDetGradient, context: &context)
    }

    /// Total number of scalar parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Resets every parameter's gradient to zero.
    public func zeroGradients() { for p in parameters { p.zeroGradient() } }

    /// Shape and gradient checks shared by the backward passes: `input` `[B, inFeatures]`,
    /// `output` and `outputGradient` `[B, outFeatures]`, `logAbsDetGradient` `[B]`.
    public func validateBackward(
        _ operation: String, input: Matrix<Element>, inFeatures: Int, output: Matrix<Element>,
        outFeatures: Int, outputGradient: Matrix<Element>, logAbsDetGradient: [Element]
    ) throws {
        try input.requireColumns(inFeatures, "\(name).\(operation) input")
        try output.requireColumns(outFeatures, "\(name).\(operation) output")
        try outputGradient.requireColumns(outFeatures, "\(name).\(operation) outputGradient")
        guard output.rows == input.rows, outputGradient.rows == input.rows, logAbsDetGradient.count == input.rows else {
            throw InvertNNError.shapeMismatch(
                operation: "\(name).\(operation)",
                expected: "batch \(input.rows) for output, outputGradient and logAbsDetGradient",
                actual: "\(output.rows), \(outputGradient.rows), \(logAbsDetGradient.count)")
        }
    }
}
