import RealModule

extension Pixelwise {
    /// Glow's per-channel ActNorm on NCHW images (Kingma & Dhariwal 2018, §3.1):
    /// `Pixelwise(ActNorm(features: channels), channels:height:width:)`. One log-scale and bias
    /// per channel; the data-dependent initialization takes each channel's mean and standard
    /// deviation over every pixel of every image of the first batch (the `batch·height·width`
    /// rows the wrapped layer sees). Log-det `height · width · Σ_c s_c` nats per sample (forward).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for sizes below 1.
    public static func actNorm(
        channels: Int, height: Int, width: Int,
        initializationDirection: ActNorm<T>.InitializationDirection = .inverse
    ) throws -> Pixelwise<T> {
        let base = try ActNorm<T>(features: channels, initializationDirection: initializationDirection)
        return try Pixelwise(base, channels: channels, height: height, width: width)
    }
}
