import RealModule

/// The coupling layer of neural spline flows (Durkan et al. 2019, "Neural Spline Flows", §3.1,
/// "RQ-NSF (C)"): a ``Coupling`` with the ``RationalQuadraticSpline`` transformer.
///
///     h   = MLP(x_a)                       [batch, (3K - 1)(D - d)]: u_w, u_h, u_δ parameter-major
///     y_a = x_a,   y_b[j] = spline(x_b[j]; h[·, j])    log|det ∂y/∂x| = Σ_j log spline'(x_b[j])
///
/// Shapes `[batch, D]`, log-dets `[batch]` in nats; checkpoints name it `SplineCoupling`.
public typealias SplineCoupling<T: Scalar> = Coupling<RationalQuadraticSpline<T>>

extension Coupling {
    /// A spline coupling layer with a new He-initialized MLP conditioner
    /// `d (+ contextFeatures) -> hidden… -> (3K - 1)(D - d)`.
    ///
    /// With `zeroInitializeLastLayer` the output layer's weights start at 0 and its biases at
    /// `u_w = u_h = 0` (equal bins) and `u_δ = log(e^{1 - m_δ} - 1)` (every knot derivative 1),
    /// so the layer starts as the identity.
    ///
    /// - Parameters:
    ///   - features: `D ≥ 2`.
    ///   - hiddenSizes: widths of the conditioner's hidden layers (may be empty).
    ///   - conditioningBlock: which block is `a` (default the first; alternate it in a flow).
    ///   - bins: `K` (default 8).
    ///   - tailBound: `B` (default 3); the spline covers `[-B, B]`, the identity elsewhere.
    ///   - activation: the conditioner's hidden nonlinearity (default ReLU).
    ///   - firstBlockSize: `k` in `1..<D` (default `⌊D/2⌋`).
    ///   - zeroInitializeLastLayer: start as the identity (default true).
    ///   - contextFeatures: width of the conditioning context (default 0).
    ///   - generator: the caller-owned source of randomness.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` as
    ///   ``RationalQuadraticSpline/init(bins:tailBound:minimumBinWidth:minimumBinHeight:minimumDerivative:)``
    ///   and ``init(features:transformer:hiddenSizes:conditioningBlock:activation:firstBlockSize:zeroInitializeLastLayer:contextFeatures:using:)`` do.
    public convenience init<S: Scalar>(
        features: Int, hiddenSizes: [Int], conditioningBlock: CouplingBlock = .first, bins: Int = 8, tailBound: S = 3,
        activation: MLPActivation = .relu, firstBlockSize: Int? = nil, zeroInitializeLastLayer: Bool = true,
        contextFeatures: Int = 0, using generator: inout some RandomNumberGenerator
    ) throws where Transformer == RationalQuadraticSpline<S> {
        try self.init(features: features, spline: try RationalQuadraticSpline<S>(bins: bins, tailBound: tailBound),
                      hiddenSizes: hiddenSizes, conditioningBlock: conditioningBlock, activation: activation,
                      firstBlockSize: firstBlockSize, zeroInitializeLastLayer: zeroInitializeLastLayer,
                      contextFeatures: contextFeatures, using: &generator)
    }

    /// A spline coupling layer with the given `spline` (any bin count, bound and minimums) and a
    /// new He-initialized MLP conditioner `d (+ contextFeatures) -> hidden… -> (3K - 1)(D - d)`.
    ///
    /// With `zeroInitializeLastLayer` the layer starts as the identity, as
    /// ``init(features:hiddenSizes:conditioningBlock:bins:tailBound:activation:firstBlockSize:zeroInitializeLastLayer:contextFeatures:using:)``
    /// (the derivative biases are `log(e^{1 - m_δ} - 1)` for this spline's `m_δ`).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` as
    ///   ``init(features:transformer:hiddenSizes:conditioningBlock:activation:firstBlockSize:zeroInitializeLastLayer:contextFeatures:using:)`` does.
    public convenience init<S: Scalar>(
        features: Int, spline: RationalQuadraticSpline<S>, hiddenSizes: [Int], conditioningBlock: CouplingBlock = .first,
        activation: MLPActivation = .relu, firstBlockSize: Int? = nil, zeroInitializeLastLayer: Bool = true,
        contextFeatures: Int = 0, using generator: inout some RandomNumberGenerator
    ) throws where Transformer == RationalQuadraticSpline<S> {
        try self.init(features: features, transformer: spline, hiddenSizes: hiddenSizes, conditioningBlock: conditioningBlock,
                      activation: activation, firstBlockSize: firstBlockSize, zeroInitializeLastLayer: zeroInitializeLastLayer,
                      contextFeatures: contextFeatures, using: &generator)
        if zeroInitializeLastLayer, let bias = conditioner.biases.last {
            let m = transformedRange.count, bins = spline.bins, unitDerivative = S.log(S.exp(1 - spline.minimumDerivative) - 1)
            for column in (2 * bins * m)..<((3 * bins - 1) * m) { bias.value[0, column] = unitDerivative }
        }
    }
}
