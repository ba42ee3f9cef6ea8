import RealModule

// The 2D (1x1-convolution) variants of the InvertibleLinear initializers: the same matrix for
// the channel vector of every pixel (Kingma & Dhariwal 2018, "Glow", §3.2).

extension Pixelwise {
    /// The invertible 1x1 convolution with channel-mixing matrix `a` `[channels, channels]`:
    /// `Pixelwise(InvertibleLinear(matrix: a, bias: bias), channels:height:width:)`, log-det
    /// `height · width · log|det A|` nats per sample.
    ///
    /// - Throws: as ``InvertibleLinear/init(matrix:bias:hasBias:singularTolerance:orthogonalityTolerance:)``
    ///   and ``init(_:channels:height:width:)``.
    public static func invertibleLinear(
        matrix a: Matrix<T>, height: Int, width: Int, bias: [T]? = nil, hasBias: Bool = true,
        singularTolerance: T? = nil
    ) throws -> Pixelwise<T> {
        let base = try InvertibleLinear(matrix: a, bias: bias, hasBias: hasBias, singularTolerance: singularTolerance)
        return try Pixelwise(base, channels: a.rows, height: height, width: width)
    }

    /// The data-dependent 1x1 convolution: an ``InvertibleLinear`` fitted by
    /// ``InvertibleLinear/init(whitening:variant:epsilon:)`` to the channel vectors of every pixel
    /// of `images` `[batch, channels·height·width]` (NCHW), so that its inverse whitens the
    /// channels. Statistics use all `batch·height·width` pixel vectors (divisor count − 1).
    ///
    /// - Throws: shape mismatch for images of another size; as
    ///   ``AdaptiveWhitening/statistics(of:)`` and ``InvertibleLinear/init(whitening:variant:epsilon:)``.
    public static func whitening(
        images: Matrix<T>, channels: Int, height: Int, width: Int,
        variant: AdaptiveWhitening<T>.Variant = .zca, epsilon: T = AdaptiveWhitening<T>.defaultEpsilon
    ) throws -> Pixelwise<T> {
        let identity = try Pixelwise(InvertibleLinear<T>(features: max(channels, 1)), channels: channels, height: height, width: width)
        try images.requireColumns(identity.inputFeatures, "Pixelwise.whitening")
        let statistics = try AdaptiveWhitening<T>.statistics(of: identity.pixelRows(images))
        let base = try InvertibleLinear(whitening: statistics, variant: variant, epsilon: epsilon)
        return try Pixelwise(base, channels: channels, height: height, width: width)
    }
}
