import RealModule

extension FlowPresets {
    /// Glow's multi-scale architecture (Kingma & Dhariwal 2018, §3 and Figure 2; the multi-scale
    /// scheme of Dinh et al. 2017, §3.6) on NCHW images `[channels, height, width]`.
    ///
    /// In the data → latent direction each of the `levels` levels squeezes the image
    /// (space to depth by 2: `C × H × W → 4C × H/2 × W/2`), applies `steps` flow steps
    /// [per-channel ActNorm, invertible 1×1 convolution in LU form, affine ``ConvCoupling`` with a
    /// channel mask alternating its conditioning half and a `3×3 → 1×1 → 3×3` conditioner of
    /// `hiddenChannels` channels], and, except at the last level, factors out half of the channels
    /// (``FactorOut``) to the N(0, 1) base. With `learnedPrior` the factored half is first
    /// normalized by Glow's split prior, mean and log-scale from the kept half by one
    /// zero-initialized 3×3 convolution (a ``ConvCoupling`` without hidden layers), so the base
    /// sees `(z₂ - μ(z₁))·e^{-log σ(z₁)}`. The latent has the data's dimension `C·H·W`.
    ///
    /// The layers are listed in the generative order (the data meet the last one first), as the
    /// library's flows are; every layer starts at the identity or a rotation except the ActNorms,
    /// which the first training batch initializes.
    ///
    /// - Parameters:
    ///   - channels: `C` of the image shape `C × H × W`.
    ///   - height: `H`, divisible by `2^levels`.
    ///   - width: `W`, divisible by `2^levels`.
    ///   - levels: squeeze levels `L ≥ 1`.
    ///   - steps: flow steps `K ≥ 1` per level.
    ///   - hiddenChannels: the conditioners' width (the PyTorch Glow: 64).
    ///   - scaleBound: `c` of each affine coupling's bounded log-scale `s = c·tanh(ŝ/c)`.
    ///   - learnedPrior: Glow's learned split prior on each factored-out half (default true).
    ///   - context: for a class-conditional flow `p(x | c)` (Glow §5), how the
    ///     context is encoded; every conv conditioner, the split priors' included, then reads the
    ///     encoded context as constant extra input channels (``ConvCoupling``). `nil`: unconditional.
    ///   - seed: seed of the random initialization (1×1 rotations, conditioner weights).
    ///   - as: the scalar type of the flow (`Float` or `Double`).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for sizes below 1 or not
    ///   divisible by `2^levels`; the layers' initializer errors.
    public static func glow<T: Scalar>(
        channels: Int, height: Int, width: Int, levels: Int = 2, steps: Int = 8, hiddenChannels: Int = 64,
        scaleBound: Double = 2, learnedPrior: Bool = true, context: ContextEncoder<T>? = nil, seed: UInt64 = 0,
        as _: T.Type = T.self
    ) throws -> NormalizingFlow<T> {
        guard channels >= 1, levels >= 1, steps >= 1, hiddenChannels >= 1, levels < 30 else {
            throw InvertNNError.invalidArgument(
                operation: "FlowPresets.glow",
                reason: "need channels, levels (< 30), steps and hiddenChannels ≥ 1, got \(channels), \(levels), \(steps), \(hiddenChannels)")
        }
        let scale = 1 << levels
        guard height >= scale, width >= scale, height % scale == 0, width % scale == 0 else {
            throw InvertNNError.invalidArgument(
                operation: "FlowPresets.glow",
                reason: "height \(height) and width \(width) must be divisible by 2^levels = \(scale) for \(levels) squeeze levels")
        }
        var generator = SeededGenerator(seed: seed)
        let transformer = try AffineTransformer<T>(scaleBound: T(scaleBound))
        let layers = try glowLevels(
            channels: channels, height: height, width: width, levels: levels, steps: steps, hiddenChannels: hiddenChannels,
            transformer: transformer, learnedPrior: learnedPrior, contextFeatures: context?.encodedFeatures ?? 0, using: &generator)
        return try NormalizingFlow(transform: try Sequential(layers), contextEncoder: context)
    }

    /// The layers (generative order) of `levels` levels on `[channels, height, width]`.
    private static func glowLevels<T: Scalar>(
        channels: Int, height: Int, width: Int, levels: Int, steps: Int, hiddenChannels: Int,
        transformer: AffineTransformer<T>, learnedPrior: Bool, contextFeatures: Int, using generator: inout SeededGenerator
    ) throws -> [any InvertibleLayer<T>] {
        let c = 4 * channels, h = height / 2, w = width / 2
        // Built in the data → latent order, reversed at the end.
        var layers: [any InvertibleLayer<T>] = [try PixelShuffle<T>(channels: c, height: h, width: w, factor: 2)]
        var block = CouplingBlock.first
        for _ in 0..<steps {
            layers.append(try Pixelwise<T>.actNorm(channels: c, height: h, width: w))
            layers.append(try Pixelwise<T>.luLinear(channels: c, height: h, width: w, using: &generator))
            layers.append(try ConvCoupling(
                channels: c, height: h, width: w, transformer: transformer, hiddenChannels: [hiddenChannels, hiddenChannels],
                mask: .channels, conditioningBlock: block, contextFeatures: contextFeatures, using: &generator))
            block = block.other
        }
        if levels > 1 {
            let kept = c / 2
            if learnedPrior {
                layers.append(try ConvCoupling(
                    channels: c, height: h, width: w, transformer: transformer, hiddenChannels: [], mask: .channels,
                    conditioningBlock: .first, contextFeatures: contextFeatures, using: &generator))
            }
            let inner = try glowLevels(
                channels: kept, height: h, width: w, levels: levels - 1, steps: steps, hiddenChannels: hiddenChannels,
                transformer: transformer, learnedPrior: learnedPrior, contextFeatures: contextFeatures, using: &generator)
            layers.append(try FactorOut(try Sequential(inner), channels: c, height: h, width: w, keptChannels: kept))
        }
        return layers.reversed()
    }
}
