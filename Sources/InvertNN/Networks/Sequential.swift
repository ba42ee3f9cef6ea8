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
public final class Sequential<T: Scalar>: RebuildableLayer {
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
        self.parameters = layers.flatMap { $0.parameters }
        self.retainingLayers = layers.map { $0 as? any RetainingLayer<T> }
    }

    /// Each layer as a ``RetainingLayer``, or `nil`: cast once here, since the dynamic cast to a
    /// parameterized protocol allocates on every call.
    let retainingLayers: [(any RetainingLayer<T>)?]

    /// Whether a taped pass and its ``backward(_:outputGradient:logAbsDetGradient:)`` lend the
    /// step's buffers (outputs, gradients, scratch) to the layers when the caller's context has
    /// none. `true` (default): they come from ``stepBuffers``, so a taped training step allocates
    /// nothing after its first call, and the model holds those buffers between steps (at
    /// [1024, 784], depth 32, Double: about 1.2 GiB at the step's peak against 0.6 GiB without
    /// them; see Benchmarks/PERFORMANCE.md). `false`: layers allocate what they return and the
    /// pool is emptied after each backward, so memory is what the tape itself needs and each step
    /// allocates. Untaped passes and rebuilding mode lend each layer the buffers of
    /// `layerBuffers` for its calls only.
    public var keepsBuffers = true

    /// The buffers this container lends to its layers during a taped pass and its backward when
    /// the caller's context brings none (``NormalizingFlow`` brings its own); also the per-sample
    /// log-det sums of every pass.
    public let stepBuffers = StepBuffers<T>()

    /// The buffers one layer of an untaped pass or of rebuilding mode borrows, emptied once that
    /// layer is done: memory stays flat in depth (nothing of a layer is kept once the next one
    /// has its result), while the calls of one layer (rebuilding an input, then the backward at
    /// it) still share their temporaries.
    let layerBuffers = StepBuffers<T>()

    /// The pool a pass runs on: the caller's, else ``stepBuffers`` unless ``keepsBuffers`` is off.
    func lentBuffers(_ context: LayerContext<T>) -> StepBuffers<T>? {
        context.buffers ?? (keepsBuffers ? stepBuffers : nil)
    }

    public var name: String { "Sequential(\(layers.count) layers)" }
    public var inputFeatures: Int { layers[0].inputFeatures }
    public var outputFeatures: Int { layers[layers.count - 1].outputFeatures }
    /// Every layer's parameters in layer order (collected once: layers keep their parameters).
    public let parameters: [Parameter<T>]
    /// The hyper-parameters: the layers in order.
    public struct Configuration: Codable, Sendable {
        /// The children's configurations, in order.
        public var layers: [LayerConfiguration<T>]
    }
    public static var typeName: String { "Sequential" }
    public var configuration: Configuration { Configuration(layers: layers.map { LayerConfiguration($0) }) }
    /// - Throws: as ``init(_:)`` (an empty list) and the children's rebuilding.
    public convenience init(configuration c: Configuration) throws {
        try self.init(try c.layers.map { try $0.makeLayer() })
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try run(x, forward: true, keepActivations: false, context: &context).0
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try run(y, forward: false, keepActivations: false, context: &context).0
    }

    /// ``forward(_:)`` keeping every intermediate batch for ``backward(_:outputGradient:logAbsDetGradient:)``.
    public func forwardTaped(_ x: Matrix<T>) throws -> (LayerOutput<T>, Tape) {
        var channels = LayerContext<T>()
        return try run(x, forward: true, keepActivations: true, context: &channels)
    }

    /// ``inverse(_:)`` keeping every intermediate batch for ``backward(_:outputGradient:logAbsDetGradient:)``.
    public func inverseTaped(_ y: Matrix<T>) throws -> (LayerOutput<T>, Tape) {
        var channels = LayerContext<T>()
        return try run(y, forward: false, keepActivations: true, context: &channels)
    }

    /// ``forwardTaped(_:)`` with explicit side channels.
    public func forwardTaped(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> (LayerOutput<T>, Tape) {
        try run(x, forward: true, keepActivations: true, context: &context)
    }

    /// ``inverseTaped(_:)`` with explicit side channels.
    public func inverseTaped(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> (LayerOutput<T>, Tape) {
        try run(y, forward: false, keepActivations: true, context: &context)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func run(
        _ input: Matrix<T>, forward isForward: Bool, keepActivations: Bool, context: inout LayerContext<T>
    ) throws -> (LayerOutput<T>, Tape) {
        try input.requireColumns(isForward ? inputFeatures : outputFeatures, "\(name).\(isForward ? "forward" : "inverse")")
        var current = input
        let pool = lentBuffers(context)
        let buffers = LayerBuffers(pool, owner: self)
        var total = buffers.filled(0, count: input.rows, with: 0)
        // Only a taped pass lends the step's pool to the layers: their results stay on the tape
        // anyway, while an untaped pass drops each result once the next layer has run.
        let callerBuffers = context.buffers
        context.buffers = keepActivations ? pool : layerBuffers
        defer { context.buffers = callerBuffers }
        var activations = [Matrix<T>]()
        if keepActivations {
            // The previous tape's list, when the caller dropped that tape.
            activations = buffers.takeList(0, capacity: layers.count + 1)
            activations.append(input)
        }
        let count = layers.count
        for position in 0..<count {
            let index = isForward ? position : count - 1 - position
            let layer = layers[index]
            let step: LayerOutput<T>
            if keepActivations, let retaining = retainingLayers[index] {
                // A taped pass lets layers keep what their backward would recompute.
                step = isForward ? try retaining.forwardRetaining(current, context: &context) : try retaining.inverseRetaining(current, context: &context)
            } else {
                step = isForward
                    ? try layer.forward(current, context: &context)
                    : try layer.inverse(current, context: &context)
            }
            for i in 0..<total.count { total[i] += step.logAbsDet[i] }
            current = step.output
            if keepActivations { activations.append(current) } else { layerBuffers.removeAll() }
        }
        buffers.keep(0, total)
        if keepActivations { buffers.keepList(0, activations) }
        return (LayerOutput(output: current, logAbsDet: total), Tape(isForward: isForward, activations: activations))
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
    public func backward(_ tape: Tape, outputGradient: Matrix<T>, logAbsDetGradient: [T]) throws -> Matrix<T> {
        var channels = LayerContext<T>()
        return try backward(tape, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient, context: &channels)
    }

    /// ``backward(_:outputGradient:logAbsDetGradient:)`` that also accumulates side-input
    /// gradients into `context.gradients`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(
        _ tape: Tape, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        guard tape.activations.count == layers.count + 1 else {
            throw InvertNNError.invalidArgument(
                operation: "\(name).backward",
                reason: "tape has \(tape.activations.count) activations, expected \(layers.count + 1) (was it recorded by this model with a taped call?)")
        }
        var gradient = outputGradient
        let count = layers.count
        let callerBuffers = context.buffers
        context.buffers = lentBuffers(context)
        defer { context.buffers = callerBuffers }
        for k in stride(from: count - 1, through: 0, by: -1) {
            // The k-th layer applied: layers[k] forward, layers[count - 1 - k] inverse.
            let layer = layers[tape.isForward ? k : count - 1 - k]
            let input = tape.activations[k], output = tape.activations[k + 1]
            gradient = tape.isForward
                ? try layer.forwardBackward(
                    input: input, output: output, outputGradient: gradient, logAbsDetGradient: logAbsDetGradient,
                    context: &context)
                : try layer.inverseBackward(
                    input: input, output: output, outputGradient: gradient, logAbsDetGradient: logAbsDetGradient,
                    context: &context)
        }
        if !keepsBuffers { stepBuffers.removeAll() }
        return gradient
    }

    /// VJP of ``forward(_:)`` in rebuilding mode: only `output` is used; each layer's input is
    /// rebuilt by inverting it (O(1) activation memory in depth), which also restores the side
    /// inputs layers consumed. `input` is only shape-checked.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: input, inFeatures: inputFeatures, output: output,
                             outFeatures: outputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        var current = output
        var gradient = outputGradient
        // Rebuilding mode keeps O(1) activation memory in depth: each layer borrows for its own
        // calls only.
        let callerBuffers = context.buffers
        context.buffers = layerBuffers
        defer { context.buffers = callerBuffers }
        for layer in layers.reversed() {
            // Rebuilding the input also restores the side inputs this layer consumed.
            let layerInput = try layer.inverse(current, context: &context).output
            gradient = try layer.forwardBackward(
                input: layerInput, output: current, outputGradient: gradient, logAbsDetGradient: logAbsDetGradient,
                context: &context)
            layerBuffers.removeAll()
            current = layerInput
        }
        return gradient
    }

    /// VJP of ``inverse(_:)`` in rebuilding mode: only `output` (the inverse's result, `x`) is
    /// used; each layer's input is rebuilt by applying it forward. `input` is only shape-checked.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: input, inFeatures: outputFeatures, output: output,
                             outFeatures: inputFeatures, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        var current = output
        var gradient = outputGradient
        let callerBuffers = context.buffers
        context.buffers = layerBuffers
        defer { context.buffers = callerBuffers }
        for layer in layers {
            let layerInput = try layer.forward(current, context: &context).output
            gradient = try layer.inverseBackward(
                input: layerInput, output: current, outputGradient: gradient, logAbsDetGradient: logAbsDetGradient,
                context: &context)
            layerBuffers.removeAll()
            current = layerInput
        }
        return gradient
    }
}
