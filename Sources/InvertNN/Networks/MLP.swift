import RealModule

/// A multilayer perceptron (not invertible), used as the conditioner of coupling layers.
///
/// With `sizes = [n₀, n₁, …, n_L]` it applies `L` dense layers to a whole batch at once:
/// `h₀ = x`, `z_k = h_{k-1} W_kᵀ + b_k`, `h_k = σ(z_k)` for the hidden layers `k < L`, and the
/// output `z_L` without activation.
///
/// - Shapes: `x` `[batch, n₀]` -> output `[batch, n_L]`. Dense layer `k` (0-based) owns
///   `weight` `[n_{k+1}, n_k]` and `bias` `[1, n_{k+1}]` (the PyTorch `nn.Linear` layout, so
///   `y = x Wᵀ + b`), named `"dense<k>.weight"` and `"dense<k>.bias"`.
/// - Cost: one GEMM per dense layer forward (`2·B·n_k·n_{k+1}` flops) and two backward; hidden
///   activations are one pass over memory (the performance model of DESIGN.md §6).
/// - `sizes = [n₀, n₁]` (no hidden layer) is the affine map `x Wᵀ + b`.
///
/// Forward returns a ``Trace`` with what the hand-written backward needs. Besides its parameters
/// the MLP keeps only buffers it reuses from call to call (taken and handed back under a lock; a
/// call that finds one in use allocates its own), so it may serve several concurrent forward
/// passes.
public final class MLP<T: Scalar> {
    /// What ``MLP/backward(_:outputGradient:)`` needs from one forward pass.
    ///
    /// Only the inputs of each dense layer are kept (the batch `x` and the hidden
    /// post-activations `h_k`): every ``MLPActivation`` has a derivative that is a function of
    /// its output, so the pre-activations `z_k` need not be stored.
    public struct Trace: Sendable {
        /// `layerInputs[0] = x` `[batch, n₀]`, `layerInputs[k] = h_k` `[batch, n_k]` for `k ≥ 1`.
        public let layerInputs: [Matrix<T>]
        /// The MLP's output `[batch, n_L]`.
        public let output: Matrix<T>

        /// The batch the MLP was applied to.
        public var input: Matrix<T> { layerInputs[0] }
        /// The hidden post-activations `h_1 … h_{L-1}`.
        public var hidden: ArraySlice<Matrix<T>> { layerInputs.dropFirst() }
    }

    /// `[n₀, n₁, …, n_L]`: input features, hidden widths, output features.
    public let sizes: [Int]
    /// The hidden nonlinearity.
    public let activation: MLPActivation
    /// `W_k`, `[n_{k+1}, n_k]` each.
    public let weights: [Parameter<T>]
    /// `b_k`, `[1, n_{k+1}]` each.
    public let biases: [Parameter<T>]
    /// The leaky-ReLU slope in `T` (0 for the other activations), converted once.
    private let negativeSlope: T

    /// An MLP with He-initialized weights (He et al. 2015): `W_k ~ N(0, g²/n_k)` with the gain of
    /// ``MLPActivation/initializationGainSquared`` for hidden layers and `g = 1` for the output
    /// layer; biases start at 0.
    ///
    /// - Parameters:
    ///   - sizes: `[in, hidden…, out]`, at least two entries, all `≥ 1`.
    ///   - activation: the hidden nonlinearity (default ReLU).
    ///   - zeroInitializeLastLayer: start the output layer's weight at 0, so the MLP outputs 0 and a
    ///     coupling layer built on it starts as the identity (Dinh et al. 2017 §3.7 discuss
    ///     initialization; Kingma & Dhariwal 2018 §3.3 zero the last layer for this reason).
    ///   - generator: the caller-owned source of randomness.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for fewer than two sizes, a
    ///   size `< 1`, more than ``FlowPresets/maximumParameters`` parameters, or a leaky-ReLU slope
    ///   that is negative or not finite.
    public init(
        sizes: [Int], activation: MLPActivation = .relu, zeroInitializeLastLayer: Bool = false,
        using generator: inout some RandomNumberGenerator
    ) throws {
        try Self.validate(sizes: sizes, activation: activation)
        try SizeLimits.requireParameterCount(SizeLimits.mlpParameterCount(sizes: sizes), operation: "MLP")
        var weights = [Parameter<T>](), biases = [Parameter<T>]()
        let last = sizes.count - 2
        for k in 0...last {
            let fanIn = sizes[k], fanOut = sizes[k + 1]
            let gainSquared = k == last ? 1 : activation.initializationGainSquared
            let w: Matrix<T> = (k == last && zeroInitializeLastLayer)
                ? Matrix(rows: fanOut, columns: fanIn)
                : .randomNormal(rows: fanOut, columns: fanIn,
                                standardDeviation: T((gainSquared / Double(fanIn)).squareRoot()), using: &generator)
            weights.append(Parameter(name: "dense\(k).weight", value: w))
            biases.append(Parameter(name: "dense\(k).bias", value: Matrix(rows: 1, columns: fanOut)))
        }
        self.sizes = sizes
        self.activation = activation
        self.weights = weights
        self.fixedEntries = [[Int]](repeating: [], count: weights.count)
        self.biases = biases
        self.parameters = zip(weights, biases).flatMap { [$0.0, $0.1] }
        self.negativeSlope = T(activation.slope ?? 0)
    }

    /// An MLP with explicit weights and biases.
    ///
    /// - Parameters:
    ///   - weights: `W_k` `[n_{k+1}, n_k]`, consecutive shapes chained (`y = x Wᵀ + b`).
    ///   - biases: `b_k` with `n_{k+1}` entries each.
    ///   - activation: the hidden nonlinearity (default ReLU; none after the last layer).
    ///   - trainableMasks: empty (every entry learnable) or one entry per weight: `nil` or a
    ///     row-major flag per entry of `W_k` (``Parameter/trainableMask``). Fixed entries must be 0
    ///     (a masked network, MADE); ``backward(_:outputGradient:accumulatingParameterGradients:buffers:)``
    ///     keeps their gradient at exactly 0, so the mask holds through training.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if there is no layer, the
    ///   shapes do not chain, a bias has the wrong length, an entry is not finite, the slope of
    ///   a leaky ReLU is negative or not finite, or a mask has the wrong length or fixes a nonzero entry.
    public init(weights: [Matrix<T>], biases: [[T]], activation: MLPActivation = .relu, trainableMasks: [[Bool]?] = []) throws {
        guard !weights.isEmpty, weights.count == biases.count else {
            throw InvertNNError.invalidArgument(
                operation: "MLP", reason: "needs ≥ 1 weight and as many biases, got \(weights.count) and \(biases.count)")
        }
        var sizes = [weights[0].columns]
        for (k, (w, b)) in zip(weights, biases).enumerated() {
            guard w.columns == sizes[k] else {
                throw InvertNNError.invalidArgument(
                    operation: "MLP", reason: "weight \(k) is [\(w.rows), \(w.columns)] but its input has \(sizes[k]) features")
            }
            guard b.count == w.rows else {
                throw InvertNNError.invalidArgument(
                    operation: "MLP", reason: "bias \(k) has \(b.count) entries, weight \(k) has \(w.rows) rows")
            }
            guard w.firstNonFinite() == nil, b.allSatisfy({ $0.isFinite }) else {
                throw InvertNNError.invalidArgument(operation: "MLP", reason: "dense layer \(k) has a non-finite entry")
            }
            sizes.append(w.rows)
        }
        try Self.validate(sizes: sizes, activation: activation)
        guard trainableMasks.isEmpty || trainableMasks.count == weights.count else {
            throw InvertNNError.invalidArgument(
                operation: "MLP", reason: "needs no masks or one per weight (\(weights.count)), got \(trainableMasks.count)")
        }
        var fixed = [[Int]](repeating: [], count: weights.count)
        for (k, mask) in trainableMasks.enumerated() {
            guard let mask else { continue }
            guard mask.count == weights[k].count else {
                throw InvertNNError.invalidArgument(
                    operation: "MLP", reason: "mask \(k) has \(mask.count) flags, weight \(k) has \(weights[k].count) entries")
            }
            fixed[k] = mask.indices.filter { !mask[$0] }
            if let i = fixed[k].first(where: { weights[k].storage[$0] != 0 }) {
                throw InvertNNError.invalidArgument(
                    operation: "MLP", reason: "weight \(k) entry \(i) is fixed by its mask but holds \(weights[k].storage[i]), not 0")
            }
        }
        self.fixedEntries = fixed
        self.sizes = sizes
        self.activation = activation
        self.weights = weights.enumerated().map {
            Parameter(name: "dense\($0.offset).weight", value: $0.element,
                      trainableMask: trainableMasks.isEmpty ? nil : trainableMasks[$0.offset])
        }
        self.biases = biases.enumerated().map { Parameter(name: "dense\($0.offset).bias", value: Matrix(row: $0.element)) }
        self.parameters = zip(self.weights, self.biases).flatMap { [$0.0, $0.1] }
        self.negativeSlope = T(activation.slope ?? 0)
    }

    private static func validate(sizes: [Int], activation: MLPActivation) throws {
        guard sizes.count >= 2 else {
            throw InvertNNError.invalidArgument(
                operation: "MLP", reason: "sizes must list input and output features (≥ 2 entries), got \(sizes)")
        }
        guard sizes.allSatisfy({ $0 >= 1 }) else {
            throw InvertNNError.invalidArgument(operation: "MLP", reason: "every size must be ≥ 1, got \(sizes)")
        }
        // Each weight is a fanOut × fanIn matrix.
        for k in 0..<(sizes.count - 1) {
            _ = try SizeLimits.product([sizes[k + 1], sizes[k]], operation: "MLP", what: "weight \(k) (out × in)")
        }
        if case let .leakyReLU(s) = activation, !(s >= 0 && s.isFinite) {
            throw InvertNNError.invalidArgument(
                operation: "MLP", reason: "leaky ReLU slope must be finite and ≥ 0, got \(s)")
        }
    }

    /// Per weight, the row-major indices its ``Parameter/trainableMask`` fixes (at 0).
    let fixedEntries: [[Int]]

    /// Input features `n₀`.
    public var inputFeatures: Int { sizes[0] }
    /// Output features `n_L`.
    public var outputFeatures: Int { sizes[sizes.count - 1] }
    /// Hidden widths `n₁ … n_{L-1}` (empty for an affine map).
    public var hiddenSizes: [Int] { Array(sizes.dropFirst().dropLast()) }
    /// Number of dense layers `L`.
    public var layerCount: Int { weights.count }
    /// The parameters in a stable order: `dense0.weight, dense0.bias, dense1.weight, …`.
    public let parameters: [Parameter<T>]
    /// Total number of scalar parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Empties the trace list kept in `buffers` (list slot 0) once the trace that used it was
    /// dropped, so the batches it referenced (a coupling's conditioner input) are unshared before
    /// they are borrowed again. Buffer slots: `k` holds dense layer `k`'s output, `layerCount + k`
    /// the backward's gradient with respect to its input, `2·layerCount` a discarded bias sum.
    func recycleTrace(in buffers: StepBuffers<T>?) {
        LayerBuffers(buffers, owner: self).emptyList(0)
    }

    /// Applies the MLP to a batch and keeps what ``backward(_:outputGradient:)`` needs.
    ///
    /// - Parameters:
    ///   - x: `[batch, n₀]`.
    ///   - buffers: the step's buffers the activations are written into (a container lends them
    ///     during a taped pass); `nil` allocates them.
    /// - Returns: the ``Trace`` whose `output` is `[batch, n_L]`.
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if `x` does not have
    ///   `n₀` columns. An empty batch gives an empty trace.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, buffers: StepBuffers<T>? = nil) throws -> Trace {
        try x.requireColumns(inputFeatures, "MLP.forward")
        let workspace = LayerBuffers(buffers, owner: self)
        var inputs = workspace.takeList(0, capacity: layerCount)
        var current = x
        for k in 0..<layerCount {
            let z = try dense(k, current, activated: k < layerCount - 1, workspace: workspace)
            inputs.append(current)
            current = z
        }
        workspace.keepList(0, inputs)
        return Trace(layerInputs: inputs, output: current)
    }

    /// The output alone, `[batch, n_L]`; see ``forward(_:buffers:)``.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Matrix<T>) throws -> Matrix<T> {
        try forward(x).output
    }

    /// The vector-Jacobian product of ``forward(_:buffers:)``: returns `dL/dx` and *adds* `dL/dW_k`,
    /// `dL/db_k` into the parameters' gradients.
    ///
    /// With `g_L = dL/d(output)`: `dL/dW_k += g_kᵀ h_{k-1}`, `dL/db_k += Σ_rows g_k`,
    /// `g_{k-1} = (g_k W_k) ⊙ σ'(h_{k-1})`, and `dL/dx = g_1 W_1`, each a GEMM on the whole batch.
    ///
    /// - Parameters:
    ///   - trace: the result of ``forward(_:buffers:)`` with the current parameter values.
    ///   - outputGradient: `dL/d(output)`, `[batch, n_L]`.
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if the trace does not
    ///   come from this MLP's shapes or `outputGradient` does not match its output.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(_ trace: Trace, outputGradient: Matrix<T>) throws -> Matrix<T> {
        try backward(trace, outputGradient: outputGradient, accumulatingParameterGradients: true)
    }

    /// ``backward(_:outputGradient:)`` writing its gradients into the step's `buffers` (`nil`
    /// allocates them).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(_ trace: Trace, outputGradient: Matrix<T>, buffers: StepBuffers<T>?) throws -> Matrix<T> {
        try backward(trace, outputGradient: outputGradient, accumulatingParameterGradients: true, buffers: buffers)
    }

    /// ``backward(_:outputGradient:)``, optionally without touching the parameters' gradients
    /// (`accumulatingParameterGradients == false`: only `dL/dx`, one GEMM per layer instead of two;
    /// the fixed-point iteration of ``MaskedAutoregressive`` needs input gradients alone).
    ///
    /// The gradient of every entry a weight's ``Parameter/trainableMask`` fixes stays exactly 0.
    /// `buffers` are the step's buffers the gradients are written into (`nil` allocates them).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(
        _ trace: Trace, outputGradient: Matrix<T>, accumulatingParameterGradients: Bool, buffers: StepBuffers<T>? = nil
    ) throws -> Matrix<T> {
        let workspace = LayerBuffers(buffers, owner: self)
        let batch = trace.output.rows
        guard trace.layerInputs.count == layerCount,
              zip(trace.layerInputs, sizes).allSatisfy({ $0.0.columns == $0.1 && $0.0.rows == batch }),
              trace.output.columns == outputFeatures
        else {
            throw InvertNNError.shapeMismatch(
                operation: "MLP.backward", expected: "a trace of sizes \(sizes)",
                actual: "layer inputs \(trace.layerInputs.map { $0.shape }), output \(trace.output.shape)")
        }
        guard outputGradient.rows == batch, outputGradient.columns == outputFeatures else {
            throw InvertNNError.shapeMismatch(
                operation: "MLP.backward outputGradient", expected: "[\(batch), \(outputFeatures)]",
                actual: "[\(outputGradient.rows), \(outputGradient.columns)]")
        }
        // The passes below write through pointers sized by `sizes`; the parameters' shapes are
        // fixed (their values and gradients cannot be reshaped from outside the module).
        var g = outputGradient
        let parameterGradients = accumulatingParameterGradients
        if parameterGradients { g.addColumnSums(into: &biases[layerCount - 1].gradient.storage) }
        for k in stride(from: layerCount - 1, through: 0, by: -1) {
            let input = trace.layerInputs[k]
            if parameterGradients {
                try BLAS.gemm(g, transposeA: true, input, beta: 1, into: &weights[k].gradient)
                if !fixedEntries[k].isEmpty {
                    weights[k].gradient.storage.withUnsafeMutableBufferPointer { gp in
                        for i in fixedEntries[k] { gp[i] = 0 }
                    }
                }
            }
            var gIn = workspace.matrix(layerCount + k, rows: batch, columns: sizes[k])
            try BLAS.gemm(g, weights[k].value, into: &gIn)
            // One pass applies σ' and sums the result into the previous layer's bias gradient.
            if k > 0 {
                if parameterGradients {
                    multiplyByActivationDerivative(&gIn, output: input, addingColumnSumsInto: &biases[k - 1].gradient)
                } else {
                    var unused = workspace.matrix(2 * layerCount, rows: 1, columns: sizes[k])
                    multiplyByActivationDerivative(&gIn, output: input, addingColumnSumsInto: &unused)
                    workspace.keep(2 * layerCount, unused)
                }
            }
            workspace.keep(layerCount + k, gIn)
            g = gIn
        }
        return g
    }

    /// `z = σ(input W_kᵀ + b_k)` (σ only when `activated`): one GEMM with `beta = 0` into
    /// uninitialized storage, then one pass that adds the bias and applies σ, so each entry of
    /// `z` is written by the GEMM and touched once more. The ReLU family is written with
    /// `max`/`min` and the backward with a 0/1 (or slope) factor, not `if`: a branch on the sign
    /// of random activations mispredicts half the time and cost 7 ns an entry, more than the
    /// GEMM's share (0.2-0.4 ns branch-free, vectorized). A NaN pre-activation stays NaN.
    /// `z` is borrowed from `workspace`'s slot `k`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func dense(_ k: Int, _ input: Matrix<T>, activated: Bool, workspace: LayerBuffers<T>) throws -> Matrix<T> {
        let width = sizes[k + 1], rows = input.rows
        var z = workspace.matrix(k, rows: rows, columns: width)
        try BLAS.gemm(input, weights[k].value, transposeB: true, into: &z)
        defer { workspace.keep(k, z) }
        let slope = negativeSlope
        biases[k].value.storage.withUnsafeBufferPointer { b in
            z.storage.withUnsafeMutableBufferPointer { out in
                for r in 0..<rows {
                    let row = UnsafeMutableBufferPointer(rebasing: out[(r * width)..<((r + 1) * width)])
                    switch activated ? activation : nil {
                    case nil:
                        for j in 0..<width { row[j] += b[j] }
                    case .relu?:
                        for j in 0..<width { row[j] = Swift.max(row[j] + b[j], 0) }
                    case .leakyReLU?:
                        for j in 0..<width {
                            let v = row[j] + b[j]
                            row[j] = Swift.max(v, 0) + slope * Swift.min(v, 0)
                        }
                    case .tanh?:
                        for j in 0..<width { row[j] = T.tanh(row[j] + b[j]) }
                    }
                }
            }
        }
        return z
    }

    /// `g ⊙ σ'(z)` with σ' written through the activation's output `h = σ(z)`, adding the
    /// column sums of the result (the previous layer's bias gradient) into `biasGradient`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func multiplyByActivationDerivative(
        _ g: inout Matrix<T>, output h: Matrix<T>, addingColumnSumsInto biasGradient: inout Matrix<T>
    ) {
        let slope = negativeSlope, width = g.columns
        h.storage.withUnsafeBufferPointer { hp in
            g.storage.withUnsafeMutableBufferPointer { gp in
                biasGradient.storage.withUnsafeMutableBufferPointer { sums in
                    for r in 0..<g.rows {
                        let o = r * width
                        switch activation {
                        case .relu:
                            for j in 0..<width {
                                let v = gp[o + j] * (hp[o + j] > 0 ? 1 : 0)
                                gp[o + j] = v
                                sums[j] += v
                            }
                        case .leakyReLU:
                            for j in 0..<width {
                                let v = gp[o + j] * (hp[o + j] > 0 ? 1 : slope)
                                gp[o + j] = v
                                sums[j] += v
                            }
                        case .tanh:
                            for j in 0..<width {
                                let v = gp[o + j] * (1 - hp[o + j] * hp[o + j])
                                gp[o + j] = v
                                sums[j] += v
                            }
                        }
                    }
                }
            }
        }
    }
}
