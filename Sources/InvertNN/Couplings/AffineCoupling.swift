import RealModule

/// The affine coupling layer of RealNVP (Dinh et al. 2017, "Density estimation using Real NVP",
/// eqs. 4-9) with a smoothly bounded log-scale: a ``Coupling`` with the ``AffineTransformer``.
///
///     h      = MLP(x_a)                    (one trunk, 2(D - d) outputs: ŝ = h[0..<D-d], t = h[D-d..<2(D-d)])
///     s      = c · tanh(ŝ / c)             (or s = ŝ when the bound c is switched off)
///     y_a    = x_a
///     y_b    = x_b ⊙ exp(s) + t            log|det ∂y/∂x| = Σ_j s_j
///     x_b    = (y_b - t) ⊙ exp(-s)         log|det ∂x/∂y| = -Σ_j s_j      (s, t from y_a = x_a)
///
/// Shapes `[batch, D]`, log-dets `[batch]` in nats; checkpoints name it `AffineCoupling`.
public typealias AffineCoupling<T: Scalar> = Coupling<AffineTransformer<T>>

extension Coupling {
    /// An affine coupling layer around a ready conditioner `d -> 2(D - d)` (log-scale
    /// pre-activations `ŝ` first, then the shifts `t`).
    ///
    /// - Parameters:
    ///   - features: `D ≥ 2`.
    ///   - conditioner: an MLP from `d` to `2(D - d)` features.
    ///   - conditioningBlock: which block is `a` (default the first).
    ///   - scaleBound: `c > 0` (default 2), or `nil` to switch the bound off.
    ///   - firstBlockSize: `k` in `1..<D` (default `⌊D/2⌋`).
    ///   - contextFeatures: width of the conditioning context appended to the conditioner's input
    ///     (default 0: unconditional); the conditioner then maps `d + contextFeatures` features.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `D < 2`, `k` is out of
    ///   range, `c` is not positive and finite, or the conditioner's sizes do not fit the split.
    public convenience init<S: Scalar>(
        features: Int, conditioner: MLP<S>, conditioningBlock: CouplingBlock = .first,
        scaleBound: S? = 2, firstBlockSize: Int? = nil, contextFeatures: Int = 0
    ) throws where Transformer == AffineTransformer<S> {
        try self.init(features: features, transformer: try AffineTransformer(scaleBound: scaleBound), conditioner: conditioner,
                      conditioningBlock: conditioningBlock, firstBlockSize: firstBlockSize, contextFeatures: contextFeatures)
    }

    /// An affine coupling layer with a new He-initialized MLP conditioner `d -> hidden… -> 2(D - d)`.
    ///
    /// - Parameters:
    ///   - features: `D ≥ 2`.
    ///   - hiddenSizes: widths of the conditioner's hidden layers (may be empty: affine conditioner).
    ///   - conditioningBlock: which block is `a` (default the first; alternate it in a flow).
    ///   - scaleBound: `c > 0` (default 2), or `nil` to switch the bound off.
    ///   - activation: the conditioner's hidden nonlinearity (default ReLU).
    ///   - firstBlockSize: `k` in `1..<D` (default `⌊D/2⌋`).
    ///   - zeroInitializeLastLayer: start the conditioner's output layer at 0 so the layer starts as
    ///     the identity (default true).
    ///   - contextFeatures: width of the conditioning context (default 0: unconditional).
    ///   - generator: the caller-owned source of randomness.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` as the initializer above and
    ///   ``MLP/init(sizes:activation:zeroInitializeLastLayer:using:)`` do.
    public convenience init<S: Scalar>(
        features: Int, hiddenSizes: [Int], conditioningBlock: CouplingBlock = .first, scaleBound: S? = 2,
        activation: MLPActivation = .relu, firstBlockSize: Int? = nil, zeroInitializeLastLayer: Bool = true,
        contextFeatures: Int = 0, using generator: inout some RandomNumberGenerator
    ) throws where Transformer == AffineTransformer<S> {
        try self.init(features: features, transformer: try AffineTransformer(scaleBound: scaleBound), hiddenSizes: hiddenSizes,
                      conditioningBlock: conditioningBlock, activation: activation, firstBlockSize: firstBlockSize,
                      zeroInitializeLastLayer: zeroInitializeLastLayer, contextFeatures: contextFeatures, using: &generator)
    }

}
