import RealModule

/// Ready-made flow architectures.
public enum FlowPresets {
    /// The most parameters (scalars) a model may hold: 500 million, far above the models this
    /// library is for and far below what a machine cannot allocate. The presets, ``MLP``, and
    /// ``Checkpoint`` loading refuse larger models from their sizes alone, before anything is
    /// allocated.
    public static let maximumParameters = SizeLimits.maximumParameters

    /// The feature mixing layer placed before every coupling of ``realNVP(features:couplings:hiddenSizes:scaleBound:mixing:reflectors:whiteningData:context:seed:as:)``.
    public enum Mixing: String, Sendable, CaseIterable {
        /// A fixed random ``Permutation`` (RealNVP-style, no parameters).
        case permutation
        /// A learnable ``InvertibleLinear`` (orthogonal · diagonal · orthogonal with bias, like
        /// Glow's invertible 1×1 convolution on a single pixel), from random orthogonal factors.
        case invertibleLinear
    }

    /// α of the logit preprocessing the RealNVP preset's defaults are meant for on the 8×8 digits
    /// (``Dequantization``).
    ///
    /// A small α stretches the logit interval of the extreme levels (level 0 covers
    /// `[logit α, logit(α + (1-2α)/K)]`, width 4.2 at α = 1e-3 and K = 17 against 0.78 at 0.05),
    /// so the many background pixels that are always 0 get a wide, easily fitted interval; the
    /// logit's log-det pays for the stretch, so the likelihood stays exact. On the digits it gives
    /// a better test likelihood than α = 0.05 and samples with dark backgrounds instead of grey
    /// speckle (docs/PRESETS.md).
    public static let logitAlpha = 1e-3

    /// The RealNVP preset's coupling count, that of the 8×8 digits recipe (`invertnn train`'s default).
    public static let defaultCouplings = 8
    /// The RealNVP preset's conditioner hidden widths, those of the 8×8 digits recipe.
    public static let defaultHiddenSizes = [256, 256]

    /// A RealNVP flow (Dinh et al. 2017, "Density estimation using Real NVP"): `couplings` blocks
    /// of a feature mixing layer followed by an ``AffineCoupling`` whose conditioner is an MLP with
    /// `hiddenSizes` (ReLU) and a log-scale bounded by `scaleBound`, conditioning on alternating
    /// halves; the conditioner's last layer starts at zero, so the initial flow is a pure feature
    /// mixing (volume preserving). The mixing layer is a learnable ``InvertibleLinear`` from random
    /// orthogonal factors (default) or a random ``Permutation``.
    ///
    /// The defaults (8 couplings, hidden 256, 256) are the 8×8 digits recipe (64 dimensions,
    /// modelled in logit space with α = ``logitAlpha``; 2.16 test bits/dim with the CLI's
    /// training defaults); ``tabular(features:couplings:hiddenSizes:scaleBound:mixing:reflectors:whiteningData:context:seed:as:)``
    /// is the same architecture sized for tabular data.
    ///
    /// - Parameters:
    ///   - features: D, ≥ 2.
    ///   - couplings: number of coupling blocks, ≥ 1.
    ///   - hiddenSizes: the conditioner's hidden widths.
    ///   - scaleBound: `c` of `s = c·tanh(ŝ/c)`.
    ///   - mixing: the layer before each coupling.
    ///   - reflectors: Householder reflectors per orthogonal factor of each ``InvertibleLinear``
    ///     mixing layer (`nil`: D, a full orthogonal group; fewer is cheaper, O(B·D·m) per call).
    ///   - whiteningData: if given, `[samples, D]` of (preprocessed) training data: a last layer
    ///     ``InvertibleLinear/init(whiteningData:variant:epsilon:)`` (ZCA) is appended, the first layer
    ///     the data meets on its way to the latent space, initialized so that it whitens the data
    ///     (a data-dependent initialization as in Glow, Kingma & Dhariwal 2018, §3.1; trained on
    ///     afterwards like any layer).
    ///   - context: for a conditional flow `p(x | c)`, how the context is encoded; every coupling's
    ///     conditioner then also reads the encoded context (`nil`: unconditional).
    ///   - seed: seed of the random initialization (permutations, conditioner weights).
    ///   - as: the scalar type of the flow (`Float` or `Double`).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for bad sizes or more than
    ///   ``maximumParameters`` parameters (checked before anything is allocated); the
    ///   errors of the whitening initializer.
    public static func realNVP<T: Scalar>(
        features: Int, couplings: Int = defaultCouplings, hiddenSizes: [Int] = defaultHiddenSizes, scaleBound: Double = 2,
        mixing: Mixing = .invertibleLinear, reflectors: Int? = nil, whiteningData: Matrix<T>? = nil,
        context: ContextEncoder<T>? = nil, seed: UInt64 = 0, as _: T.Type = T.self
    ) throws -> NormalizingFlow<T> {
        try affineFlow(
            operation: "FlowPresets.realNVP", features: features, couplings: couplings, hiddenSizes: hiddenSizes,
            scaleBound: scaleBound, mixing: mixing, reflectors: reflectors, whiteningData: whiteningData, context: context, seed: seed)
    }

    /// The RealNVP preset under its old name, with the digits' 64 features as the default.
    @available(*, deprecated, renamed: "realNVP(features:couplings:hiddenSizes:scaleBound:mixing:reflectors:whiteningData:context:seed:as:)")
    public static func digits<T: Scalar>(
        features: Int = 64, couplings: Int = 8, hiddenSizes: [Int] = [256, 256], scaleBound: Double = 2,
        mixing: Mixing = .invertibleLinear, reflectors: Int? = nil, whiteningData: Matrix<T>? = nil,
        context: ContextEncoder<T>? = nil, seed: UInt64 = 0, as _: T.Type = T.self
    ) throws -> NormalizingFlow<T> {
        try affineFlow(
            operation: "FlowPresets.digits", features: features, couplings: couplings, hiddenSizes: hiddenSizes,
            scaleBound: scaleBound, mixing: mixing, reflectors: reflectors, whiteningData: whiteningData, context: context, seed: seed)
    }

    /// The flow to start with on tabular data: `D` continuous columns, standardized (a few hundred
    /// to a few hundred thousand rows, `[samples, D]`). It is the model `invertnn train` builds for
    /// a CSV without `--levels`: a ``realNVP(features:couplings:hiddenSizes:scaleBound:mixing:reflectors:whiteningData:context:seed:as:)``
    /// flow of 6 affine couplings with conditioners of 64, 64 hidden units and an
    /// ``InvertibleLinear`` before each coupling (train it with the CLI's tabular recipe:
    /// `whiteningData`, batch 32, rate 2e-2, 80 epochs).
    ///
    /// Why this shape: the columns of a table are mostly linearly correlated with each other, and a
    /// learnable D×D mixing layer before every coupling fits those correlations directly (pass
    /// `whiteningData`, the standardized training rows, and the flow starts as the full-covariance
    /// Gaussian of the data, which it then improves on); the couplings add the non-linear,
    /// non-Gaussian structure. Conditioners of 64, 64 units (about 6·(64·(1.5·D + 64) + 2·D²)
    /// parameters in all) stay small enough for tables of a few thousand rows, and the bounded log-scale
    /// (`c = 2`) keeps training stable on heavy-tailed columns. On columns with multimodal or
    /// sharply bounded marginals, ``neuralSplineFlow(features:couplings:hiddenSizes:bins:tailBound:minimumBinSize:minimumDerivative:activation:mixing:reflectors:whiteningData:context:seed:as:)``
    /// (same sizes, splines on [-3, 3] of the standardized data) is the more flexible choice
    /// (Durkan et al. 2019 report it ahead of RealNVP on the UCI tables), at 23 conditioner
    /// outputs per transformed feature against 2.
    ///
    /// - Parameters: as ``realNVP(features:couplings:hiddenSizes:scaleBound:mixing:reflectors:whiteningData:context:seed:as:)``.
    /// - Throws: as ``realNVP(features:couplings:hiddenSizes:scaleBound:mixing:reflectors:whiteningData:context:seed:as:)``.
    public static func tabular<T: Scalar>(
        features: Int, couplings: Int = 6, hiddenSizes: [Int] = [64, 64], scaleBound: Double = 2,
        mixing: Mixing = .invertibleLinear, reflectors: Int? = nil, whiteningData: Matrix<T>? = nil,
        context: ContextEncoder<T>? = nil, seed: UInt64 = 0, as _: T.Type = T.self
    ) throws -> NormalizingFlow<T> {
        try affineFlow(
            operation: "FlowPresets.tabular", features: features, couplings: couplings, hiddenSizes: hiddenSizes,
            scaleBound: scaleBound, mixing: mixing, reflectors: reflectors, whiteningData: whiteningData, context: context, seed: seed)
    }

    /// A neural spline flow (Durkan et al. 2019, "Neural Spline Flows", RQ-NSF (C)): `couplings`
    /// blocks of a feature mixing layer followed by a ``SplineCoupling`` (``RationalQuadraticSpline``
    /// with `bins` bins on `[-tailBound, tailBound]`, identity tails) whose conditioner is an MLP
    /// with `hiddenSizes` (`activation`, ReLU by default), conditioning on alternating halves. Each coupling starts as the
    /// identity (zero last layer, unit knot derivatives), so the initial flow is the mixing alone.
    ///
    /// Choose `tailBound` to cover the (preprocessed) data: 3 for standardized tabular data,
    /// where values beyond 3σ pass through the identity tails.
    ///
    /// - Parameters:
    ///   - features: D, ≥ 2.
    ///   - couplings: number of coupling blocks, ≥ 1.
    ///   - hiddenSizes: the conditioner's hidden widths.
    ///   - bins: `K`, the spline's bins (conditioner outputs `(3K - 1)` per transformed feature).
    ///   - tailBound: `B` of the spline's interval `[-B, B]`.
    ///   - minimumBinSize: `m_w = m_h`, the smallest bin width and height as a fraction of `2B`
    ///     (default 1e-3; `K·m_w < 1`).
    ///   - minimumDerivative: `m_δ`, the smallest inner knot derivative (default 1e-3).
    ///   - activation: the conditioners' hidden nonlinearity (default ReLU).
    ///   - mixing: the layer before each coupling.
    ///   - reflectors: as in ``realNVP(features:couplings:hiddenSizes:scaleBound:mixing:reflectors:whiteningData:context:seed:as:)``.
    ///   - whiteningData: as in ``realNVP(features:couplings:hiddenSizes:scaleBound:mixing:reflectors:whiteningData:context:seed:as:)``.
    ///   - context: for a conditional flow `p(x | c)`, how the context is encoded (`nil`: unconditional).
    ///   - seed: seed of the random initialization.
    ///   - as: the scalar type of the flow (`Float` or `Double`).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for bad sizes or spline
    ///   hyper-parameters; the errors of the whitening initializer.
    public static func neuralSplineFlow<T: Scalar>(
        features: Int, couplings: Int = 6, hiddenSizes: [Int] = [64, 64], bins: Int = 8, tailBound: Double = 3,
        minimumBinSize: Double = 1e-3, minimumDerivative: Double = 1e-3, activation: MLPActivation = .relu,
        mixing: Mixing = .invertibleLinear, reflectors: Int? = nil, whiteningData: Matrix<T>? = nil,
        context: ContextEncoder<T>? = nil, seed: UInt64 = 0, as _: T.Type = T.self
    ) throws -> NormalizingFlow<T> {
        try couplingFlow(
            operation: "FlowPresets.neuralSplineFlow", features: features, couplings: couplings, mixing: mixing,
            reflectors: reflectors, whiteningData: whiteningData, context: context, seed: seed
        ) { block, generator in
            // A spline per coupling: each keeps its own scratch workspace.
            let spline = try RationalQuadraticSpline<T>(
                bins: bins, tailBound: T(tailBound), minimumBinWidth: T(minimumBinSize), minimumBinHeight: T(minimumBinSize),
                minimumDerivative: T(minimumDerivative))
            return try SplineCoupling<T>(
                features: features, spline: spline, hiddenSizes: hiddenSizes, conditioningBlock: block, activation: activation,
                contextFeatures: context?.encodedFeatures ?? 0, using: &generator)
        }
    }

    /// The affine coupling flow of the RealNVP and tabular presets.
    private static func affineFlow<T: Scalar>(
        operation: String, features: Int, couplings: Int, hiddenSizes: [Int], scaleBound: Double, mixing: Mixing,
        reflectors: Int?, whiteningData: Matrix<T>?, context: ContextEncoder<T>?, seed: UInt64
    ) throws -> NormalizingFlow<T> {
        try SizeLimits.requireParameterCount(
            realNVPParameterCount(features: features, couplings: couplings, hiddenSizes: hiddenSizes, mixing: mixing,
                                  reflectors: reflectors, whitening: whiteningData != nil),
            operation: operation)
        return try couplingFlow(
            operation: operation, features: features, couplings: couplings, mixing: mixing, reflectors: reflectors,
            whiteningData: whiteningData, context: context, seed: seed
        ) { block, generator in
            try AffineCoupling<T>(
                features: features, hiddenSizes: hiddenSizes, conditioningBlock: block, scaleBound: T(scaleBound),
                contextFeatures: context?.encodedFeatures ?? 0, using: &generator)
        }
    }

    /// Mixing layer, coupling, mixing layer, coupling on the other block, …, then the optional
    /// whitening layer: the structure both presets share.
    private static func couplingFlow<T: Scalar>(
        operation: String, features: Int, couplings: Int, mixing: Mixing, reflectors: Int?, whiteningData: Matrix<T>?,
        context: ContextEncoder<T>?, seed: UInt64, coupling: (CouplingBlock, inout SeededGenerator) throws -> any InvertibleLayer<T>
    ) throws -> NormalizingFlow<T> {
        guard features >= 2, couplings >= 1 else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "need features ≥ 2 and couplings ≥ 1, got \(features) and \(couplings)")
        }
        var generator = SeededGenerator(seed: seed)
        var layers = [any InvertibleLayer<T>]()
        var block = CouplingBlock.first
        for _ in 0..<couplings {
            switch mixing {
            case .permutation:
                layers.append(try Permutation<T>.random(features: features, using: &generator))
            case .invertibleLinear:
                layers.append(try InvertibleLinear<T>(
                    features: features, reflectors: reflectors.map { min($0, features) }, using: &generator))
            }
            layers.append(try coupling(block, &generator))
            block = block.other
        }
        if let whiteningData {
            layers.append(try InvertibleLinear<T>(whiteningData: whiteningData))
        }
        return try NormalizingFlow(transform: try Sequential(layers), contextEncoder: context)
    }

    /// The scalars ``realNVP(features:couplings:hiddenSizes:scaleBound:mixing:reflectors:whiteningData:context:seed:as:)``
    /// would allocate (the count a checkpoint of it is checked against), computed without
    /// building anything; saturates at `Int.max`.
    public static func realNVPParameterCount(
        features: Int, couplings: Int, hiddenSizes: [Int], mixing: Mixing = .invertibleLinear, reflectors: Int? = nil,
        whitening: Bool = false
    ) -> Int {
        let m = min(reflectors ?? features, features)
        let linear = ArchitectureSizes(type: "InvertibleLinear", features: features, bias: true, reflectorsU: m, reflectorsV: m)
        let mixingLayer = mixing == .permutation ? ArchitectureSizes(type: "Permutation", features: features) : linear
        var total = 0
        var block = CouplingBlock.first
        for _ in 0..<max(couplings, 0) {
            let coupling = ArchitectureSizes(
                type: "AffineCoupling", features: features, firstBlockSize: features / 2, conditioningBlock: block.rawValue,
                hiddenSizes: hiddenSizes)
            // Two couplings in a row alternate their blocks; the counts of both kinds repeat.
            let (sum, overflow) = total.addingReportingOverflow(
                SizeLimits.parameterCount(of: mixingLayer) &+ SizeLimits.parameterCount(of: coupling))
            if overflow || sum < 0 { return Int.max }
            total = sum
            if total > SizeLimits.maximumParameters { return total }
            block = block.other
        }
        if whitening { total = total &+ SizeLimits.parameterCount(of: linear) }
        return total < 0 ? Int.max : total
    }

    /// How the orders of a ``maskedAutoregressiveFlow(features:layers:hiddenSizes:scaleBound:orders:whiteningData:context:seed:as:)`` change from layer to layer.
    public enum AutoregressiveOrders: String, Sendable, CaseIterable {
        /// Identity, reversed, identity, … (Papamakarios et al. 2017 §4: "reversing the order of
        /// the inputs" between MADEs); with 2 features, every feature then conditions the other.
        case alternating
        /// A fresh seeded random permutation for every layer.
        case random
    }

    /// A masked autoregressive flow (Papamakarios et al. 2017, "Masked Autoregressive Flow for
    /// Density Estimation", MAF with affine MADEs): `layers` ``AffineMaskedAutoregressive`` layers,
    /// each a ``MADE`` with `hiddenSizes` (ReLU) and a log-scale bounded by `scaleBound`, with the
    /// orders changing between layers as `orders` says. Density (training by maximum likelihood)
    /// costs one MADE pass per layer; sampling `D` passes per layer. Each layer starts as the
    /// identity (zero last layer). For sampling in one pass per layer, wrap the transform in
    /// ``Inverted`` (an IAF: then density costs `D` passes).
    ///
    /// - Parameters:
    ///   - features: D, ≥ 1.
    ///   - layers: number of autoregressive layers, ≥ 1.
    ///   - hiddenSizes: the MADEs' hidden widths (each ≥ D - 1 so every degree occurs).
    ///   - scaleBound: `c` of `s = c·tanh(ŝ/c)`.
    ///   - orders: how orders change between layers.
    ///   - whiteningData: if given, `[samples, D]` of (preprocessed) training data: a last layer
    ///     ``InvertibleLinear/init(whiteningData:variant:epsilon:)`` (ZCA) is appended, the first layer
    ///     data meet in the density direction, so that the flow starts as the full-covariance
    ///     Gaussian of the data (every MADE layer starts as the identity) and the autoregressive
    ///     layers model what a Gaussian cannot.
    ///   - context: for a conditional flow `p(x | c)`, how the context is encoded (`nil`: unconditional).
    ///   - seed: seed of the random initialization (orders, MADE weights).
    ///   - as: the scalar type of the flow (`Float` or `Double`).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for bad sizes; the errors of
    ///   the whitening initializer.
    public static func maskedAutoregressiveFlow<T: Scalar>(
        features: Int, layers: Int = 5, hiddenSizes: [Int] = [64, 64], scaleBound: Double = 2,
        orders: AutoregressiveOrders = .alternating, whiteningData: Matrix<T>? = nil, context: ContextEncoder<T>? = nil,
        seed: UInt64 = 0, as _: T.Type = T.self
    ) throws -> NormalizingFlow<T> {
        try autoregressiveFlow(
            operation: "FlowPresets.maskedAutoregressiveFlow", features: features, layers: layers, orders: orders,
            whiteningData: whiteningData, context: context, seed: seed
        ) { order, generator in
            try AffineMaskedAutoregressive<T>(
                features: features, transformer: try AffineTransformer(scaleBound: T(scaleBound)), hiddenSizes: hiddenSizes,
                order: order, contextFeatures: context?.encodedFeatures ?? 0, using: &generator)
        }
    }

    /// `layers` autoregressive layers built by `layer` from each layer's order, the orders
    /// changing as `orders` says, then the optional whitening layer: the structure of every MAF preset.
    static func autoregressiveFlow<T: Scalar>(
        operation: String, features: Int, layers: Int, orders: AutoregressiveOrders, whiteningData: Matrix<T>?,
        context: ContextEncoder<T>?, seed: UInt64,
        layer: ([Int], inout SeededGenerator) throws -> any InvertibleLayer<T>
    ) throws -> NormalizingFlow<T> {
        guard features >= 1, layers >= 1 else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "need features ≥ 1 and layers ≥ 1, got \(features) and \(layers)")
        }
        var generator = SeededGenerator(seed: seed)
        var stack = [any InvertibleLayer<T>]()
        for k in 0..<layers {
            let order: [Int]
            switch orders {
            case .alternating: order = k % 2 == 0 ? Array(0..<features) : Array((0..<features).reversed())
            case .random: order = MADE<T>.randomOrder(features: features, using: &generator)
            }
            stack.append(try layer(order, &generator))
        }
        if let whiteningData {
            stack.append(try InvertibleLinear<T>(whiteningData: whiteningData))
        }
        return try NormalizingFlow(transform: try Sequential(stack), contextEncoder: context)
    }
}
