import RealModule

/// A masked autoencoder for distribution estimation (Germain et al. 2015, "MADE: Masked
/// Autoencoder for Distribution Estimation", §4, eqs. 10-13): an ``MLP`` whose weights carry
/// binary masks so that the `P` outputs for feature `i` depend only on the features before `i` in
/// a given order (and on the context), the conditioner of ``MaskedAutoregressive``.
///
/// Degrees (Germain et al. §4.2; the context input of Papamakarios et al. 2017 §3.3):
/// - input feature `i` has degree `m(i)` = its 1-based position in ``order``; context inputs have
///   degree 0 (they reach every hidden unit and every output);
/// - hidden unit `u` of every hidden layer has a degree cycling over `1…D-1` (Germain et al.'s
///   range; all 0 when `D = 1`), or over `0…D-1` when there is a context: a degree-0 unit reads only
///   the context, and without such units the first feature in the order (whose outputs may only
///   read degree-0 units) would not see the context at all;
/// - a hidden weight `W[u, v]` is kept iff `m(u) ≥ m(v)`; the output for (parameter `p`, feature `i`)
///   has degree `m(i)` and keeps `W[(p, i), v]` iff `m(i) > m(v)`.
///
/// Masked entries are stored as exact zeros in the weights and fixed by their
/// ``Parameter/trainableMask``, so each dense layer stays one GEMM (the mask costs nothing in the
/// forward pass) and the MLP's backward keeps their gradients at exactly 0. The Jacobian of the
/// map from features to the outputs of feature `i` is therefore exactly 0 in the columns of `i`
/// and every later feature.
///
/// - Shapes: input `[batch, D + contextFeatures]` (features first, then the context), output
///   `[batch, P·D]` laid out parameter-major: column `p·D + i` holds parameter `p` of feature `i`
///   (the ``TransformerParameters`` layout of a transformed block of all `D` features).
/// - Parameters: those of ``network`` (`dense<k>.weight`, `dense<k>.bias`).
public final class MADE<T: Scalar> {
    /// `D`, the autoregressive features.
    public let features: Int
    /// Width of the context appended to the input (degree 0), 0 for an unconditional MADE.
    public let contextFeatures: Int
    /// `P`, outputs per feature.
    public let parametersPerFeature: Int
    /// The features in autoregressive order: `order[0]` depends on nothing (but the context),
    /// `order[k]` on `order[0..<k]`.
    public let order: [Int]
    /// `m(i)`: the 1-based position of feature `i` in ``order``, `[D]`.
    public let degrees: [Int]
    /// The masked network `D + contextFeatures -> hidden… -> P·D`.
    public let network: MLP<T>

    /// A MADE with He-initialized masked weights (each row's deviation scaled by
    /// `√(fanIn / kept inputs)`, so the masks do not shrink the activations).
    ///
    /// - Parameters:
    ///   - features: `D ≥ 1`.
    ///   - parametersPerFeature: `P ≥ 1`.
    ///   - hiddenSizes: hidden widths (may be empty: a masked affine map); each should be `≥ D - 1`
    ///     so that every degree occurs.
    ///   - order: a permutation of `0..<D` (default the identity order).
    ///   - contextFeatures: width of the context (default 0).
    ///   - activation: the hidden nonlinearity (default ReLU).
    ///   - zeroInitializeLastLayer: start the output layer at 0 (default true: an autoregressive
    ///     layer with an affine or spline transformer then starts as the identity).
    ///   - generator: the caller-owned source of randomness.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for `D < 1`, `P < 1`, an order
    ///   that is not a permutation of `0..<D`, a negative context width, or sizes the ``MLP`` rejects.
    public init(
        features: Int, parametersPerFeature: Int, hiddenSizes: [Int], order: [Int]? = nil, contextFeatures: Int = 0,
        activation: MLPActivation = .relu, zeroInitializeLastLayer: Bool = true, using generator: inout some RandomNumberGenerator
    ) throws {
        guard features >= 1, parametersPerFeature >= 1, contextFeatures >= 0 else {
            throw InvertNNError.invalidArgument(
                operation: "MADE", reason: "needs features ≥ 1, parametersPerFeature ≥ 1 and contextFeatures ≥ 0, got "
                    + "\(features), \(parametersPerFeature), \(contextFeatures)")
        }
        try SizeLimits.features(features, operation: "MADE")
        if contextFeatures > 0 { try SizeLimits.features(contextFeatures, operation: "MADE", label: "contextFeatures") }
        let order = order ?? Array(0..<features)
        guard order.count == features, Set(order) == Set(0..<features) else {
            throw InvertNNError.invalidArgument(
                operation: "MADE", reason: "order must be a permutation of 0..<\(features), got \(order.prefix(20))")
        }
        _ = try SizeLimits.product([parametersPerFeature, features], operation: "MADE", what: "outputs (P·D)")
        var degrees = [Int](repeating: 0, count: features)
        for (position, feature) in order.enumerated() { degrees[feature] = position + 1 }
        let sizes = [features + contextFeatures] + hiddenSizes + [parametersPerFeature * features]
        guard sizes.allSatisfy({ $0 >= 1 }) else {
            throw InvertNNError.invalidArgument(operation: "MADE", reason: "every hidden size must be ≥ 1, got \(hiddenSizes)")
        }
        for k in 0..<(sizes.count - 1) {
            _ = try SizeLimits.product([sizes[k + 1], sizes[k]], operation: "MADE", what: "weight \(k) (out × in)")
        }
        let masks = Self.masks(
            degrees: degrees, contextFeatures: contextFeatures, hiddenSizes: hiddenSizes, parametersPerFeature: parametersPerFeature)
        var weights = [Matrix<T>](), biases = [[T]]()
        let last = sizes.count - 2
        for k in 0...last {
            let fanIn = sizes[k], fanOut = sizes[k + 1]
            var w = Matrix<T>(rows: fanOut, columns: fanIn)
            if !(k == last && zeroInitializeLastLayer) {
                let gainSquared = k == last ? 1 : activation.initializationGainSquared
                for r in 0..<fanOut {
                    let kept = (0..<fanIn).filter { masks[k][r * fanIn + $0] }.count
                    guard kept > 0 else { continue }
                    let deviation = (gainSquared / Double(kept)).squareRoot()
                    for c in 0..<fanIn where masks[k][r * fanIn + c] {
                        w.storage[r * fanIn + c] = T(deviation) * generator.nextNormal(T.self)
                    }
                }
            }
            weights.append(w)
            biases.append([T](repeating: 0, count: fanOut))
        }
        self.features = features
        self.contextFeatures = contextFeatures
        self.parametersPerFeature = parametersPerFeature
        self.order = order
        self.degrees = degrees
        self.network = try MLP(weights: weights, biases: biases, activation: activation, trainableMasks: masks)
    }

    /// The masks of every dense layer, row-major `[n_{k+1}, n_k]` each, `true` where a weight is kept.
    ///
    /// - Parameters:
    ///   - degrees: `m(i)` of each feature, `1…D`.
    ///   - contextFeatures: context inputs (degree 0) after the features.
    ///   - hiddenSizes: hidden widths.
    ///   - parametersPerFeature: `P`.
    public static func masks(degrees: [Int], contextFeatures: Int, hiddenSizes: [Int], parametersPerFeature: Int) -> [[Bool]] {
        let features = degrees.count
        // With a context, degree-0 hidden units (fed by the context alone) let the first feature's
        // outputs depend on c; without one they would be dead weight.
        let lowest = contextFeatures > 0 ? 0 : min(1, features - 1), span = max(1, features - lowest)
        var previous = degrees + [Int](repeating: 0, count: contextFeatures)
        var masks = [[Bool]]()
        for width in hiddenSizes {
            let current = (0..<width).map { lowest + $0 % span }
            var mask = [Bool](repeating: false, count: width * previous.count)
            for u in 0..<width {
                for v in 0..<previous.count { mask[u * previous.count + v] = current[u] >= previous[v] }
            }
            masks.append(mask)
            previous = current
        }
        var mask = [Bool](repeating: false, count: parametersPerFeature * features * previous.count)
        for p in 0..<parametersPerFeature {
            for i in 0..<features {
                let row = p * features + i
                for v in 0..<previous.count { mask[row * previous.count + v] = degrees[i] > previous[v] }
            }
        }
        masks.append(mask)
        return masks
    }

    /// A uniformly random order of `0..<features` (a seeded alternative to the identity order).
    public static func randomOrder(features: Int, using generator: inout some RandomNumberGenerator) -> [Int] {
        Array(0..<max(0, features)).shuffled(using: &generator)
    }

    /// Widths of the hidden layers.
    public var hiddenSizes: [Int] { network.hiddenSizes }
    /// The hidden nonlinearity.
    public var activation: MLPActivation { network.activation }
    /// The parameters of ``network``.
    public var parameters: [Parameter<T>] { network.parameters }

    /// Applies the masked network.
    ///
    /// - Parameters:
    ///   - input: `[batch, D + contextFeatures]`.
    ///   - buffers: the step's buffers the activations are written into; `nil` allocates them.
    /// - Returns: the trace; its output is `[batch, P·D]`.
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` as ``MLP/forward(_:buffers:)``.
    public func forward(_ input: Matrix<T>, buffers: StepBuffers<T>? = nil) throws -> MLP<T>.Trace {
        try network.forward(input, buffers: buffers)
    }

    /// The VJP of ``forward(_:buffers:)``: `dL/d(input)` `[batch, D + contextFeatures]`; adds the parameter
    /// gradients (masked entries stay exactly 0) when `accumulatingParameterGradients`. The
    /// gradients are written into the step's `buffers` (`nil` allocates them).
    ///
    /// - Throws: as ``MLP/backward(_:outputGradient:accumulatingParameterGradients:buffers:)``.
    public func backward(
        _ trace: MLP<T>.Trace, outputGradient: Matrix<T>, accumulatingParameterGradients: Bool = true,
        buffers: StepBuffers<T>? = nil
    ) throws -> Matrix<T> {
        try network.backward(
            trace, outputGradient: outputGradient, accumulatingParameterGradients: accumulatingParameterGradients, buffers: buffers)
    }
}
