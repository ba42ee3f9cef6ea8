import RealModule
/// A composition of invertible layers, `f = f_{L-1} ∘ … ∘ f_1 ∘ f_0`, itself an
/// ``InvertibleLayer``. Log-determinants add up per sample.
///
/// For training there are two ways to get gradients:
/// - **Tape** (default, fastest): ``forwardTaped(_:)`` / ``inverseTaped(_:)`` keep every
///   intermediate batch, then ``backward(_:outputGradient:logAbsDetGradient:)`` walks them back.
///   Activation memory grows with depth.
/// - **Rebuilding** (O(1) activation memory in depth): the protocol methods
///   ``forwardBackward(input:output:outputGradient:logAbsDetGradient:)`` and
///   ``inverseBackward(input:output:outputGradient:logAbsDetGradient:)`` keep only the final output
///   and rebuild each layer's input by inverting on the way back (Gomez et al. 2017, "The
///   reversible residual network").
public final class Sequential<T: Scalar>: InvertibleLayer {
    public typealias Element = T

    /// A record of one taped pass: `activations[0]` is the pass's input and `activations[k+1]` the
    /// output of the k-th layer applied (in application order).
    public struct Tape: Sendable {
        /// Whether the pass was ``Sequential/forward(_:)`` (true) or ``Sequential/inverse(_:)``.
        public let isForward: Bool
        /// The batches between layers, `layers.count + 1` of them.
        public let activations: [Matrix<T>]
    }

    /// The layers in forward (generative) order.
    public let layers: [any InvertibleLayer<T>]

    /// Chains `layers` in forward order.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if the list is empty or a
    ///   layer's output features differ from the next layer's input features.
    public init(_ layers: [any InvertibleLayer<T>]) throws {
        guard !layers.isEmpty else {
            throw InvertNNError.invalidArgument(operation: "Sequential", reason: "needs at least one layer")
        }
        for k in 1..<layers.count where layers[k - 1].outputFeatures != layers[k].inputFeatures {
            throw InvertNNError.invalidArgument(
                operation: "Sequential",
                reason: "layer \(k - 1) (\(layers[k - 1].name)) outputs \(layers[k - 1].outputFeatures) features "
                    + "but layer \(k) (\(layers[k].name)) takes \(layers[k].inputFeatures)")
        }
        self.layers = layers
    }

    public var name: String { "Sequential(\(layers.count) layers)" }
    public var inputFeatures: Int { layers[0].inputFeatures }
    public var outputFeatures: Int { layers[layers.count - 1].outputFeatures }
    public var parameters: [Parameter<T>] { layers.flatMap { $0.parameters } }
    public var configuration: [String: ConfigurationValue] {
        ["type": .string("Sequential"), "layers": .layers(layers.map { $0.configuration })]
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>) throws -> LayerOutput<T> {
        try forwardTaped(x, keepActivations: false).0
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>) throws -> LayerOutput<T> {
        try inverseTaped(y, keepActivations: false).0
    }

    /// ``forward(_:)`` keeping every intermediate batch for ``backward(_:outputGradient:logAbsDetGradient:)``.
    public func forwardTaped(_ x: Matrix<T>) throws -> (LayerOutput<T>, Tape) {
        try forwardTaped(x, keepActivations: true)
    }

    /// ``inverse(_:)`` keeping every intermediate batch for ``backward(_:outputGradient:logAbsDetGradient:)``.
    public func inverseTaped(_ y: Matrix<T>) throws -> (LayerOutput<T>, Tape) {
        try inverseTaped(y, keepActivations: true)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func forwardTaped(_ x: Matrix<T>, keepActivations: Bool) throws -> (LayerOutput<T>, Tape) {
        try x.requireColumns(inputFeatures, "\(name).forward")
        var current = x
        var total = [T](repeating: 0, count: x.rows)
        var activations = keepActivations ? [x] : []
        for layer in layers {
            let step = try layer.forward(current)
            for i in 0..<total.count { total[i] += step.logAbsDet[i] }
            current = step.output
            if keepActivations { activations.append(current) }
        }
        return (LayerOutput(output: current, logAbsDet: total), Tape(isForward: true, activations: activations))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func inverseTaped(_ y: Matrix<T>, keepActivations: Bool) throws -> (LayerOutput<T>, Tape) {
        try y.requireColumns(outputFeatures, "\(name).inverse")
        var current = y
        var total = [T](repeating: 0, count: y.rows)
        var activations = keepActivations ? [y] : []
        for layer in layers.reversed() {
            let step = try layer.inverse(current)
            for i in 0..<total.count { total[i] += step.logAbsDet[i] }
            current = step.output
            if keepActivations { activations.append(current) }
        }
        return (LayerOutput(output: current, logAbsDet: total), Tape(isForward: false, activations: activations))
    }

    /// Backpropagates through a taped pass: returns `dL/d(pass input)` and accumulates every
    /// parameter gradient.
    ///
    /// - Parameters:
    ///   - tape: from ``forwardTaped(_:)`` or ``inverseTaped(_:)`` on this model.
    ///   - outputGradient: `dL/d(pass output)`, `[batch, features]`.
    ///   - logAbsDetGradient: `dL/dlogAbsDet`, `[batch]`; every layer's log-det receives it.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if the tape is not one of
    ///   this model's, or a shape mismatch.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(_ tape: Tape, outputGradient: Matrix<T>, logAbsDetGradient: [T]) throws -> Matrix<T> {
        guard tape.activations.count == layers.count + 1 else {
            throw InvertNNError.invalidArgument(
                operation: "\(name).backward",
                reason: "tape has \(tape.activations.count) activations, expected \(layers.count + 1) (was it recorded by this model with a taped call?)")
        }
        var gradient = outputGradient
        let applied: [any InvertibleLayer<T>] = tape.isForward ? layers : layers.reversed()
        for k in stride(from: applied.count - 1, through: 0, by: -1) {
            let input = tape.activations[k], output = tape.activations[k + 1]
            gradient = tape.isForward
                ? try applied[k].forwardBackward(input: input, output: output, outputGradient: gradient, logAbsDetGradient: logAbsDetGradient)
                : try applied[k].inverseBackward(input: input, output: output, outputGradient: gradient, logAbsDetGradient: logAbsDetGradient)
        }
        return gradient
    }

    /// VJP of ``forward(_:)`` in rebuilding mode: only `output` is used; each layer's input is
    /// rebuilt by inverting it (O(1) activation memory in depth). `input` is only shape-checked.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T]
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: input, inFeatures: inputFeatures, output: output,
                             outFeatures: outputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        var current = output
        var gradient = outputGradient
        for layer in layers.reversed() {
            let layerInput = try layer.inverse(current).output
            gradient = try layer.forwardBackward(
                input: layerInput, output: current, outputGradient: gradient, logAbsDetGradient: logAbsDetGradient)
            current = layerInput
        }
        return gradient
    }

    /// VJP of ``inverse(_:)`` in rebuilding mode: only `output` (the inverse's result, `x`) is used;
    /// each layer's input is rebuilt by applying it forward. `input` is only shape-checked.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T]
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: input, inFeatures: outputFeatures, output: output,
                             outFeatures: inputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        var current = output
        var gradient = outputGradient
        for layer in layers {
            let layerInput = try layer.forward(current).output
            gradient = try layer.inverseBackward(
                input: layerInput, output: current, outputGradient: gradient, logAbsDetGradient: logAbsDetGradient)
            current = layerInput
        }
        return gradient
    }
}
