import RealModule

extension Pixelwise {
    /// Glow's invertible 1×1 convolution in LU form (Kingma & Dhariwal 2018, §3.2):
    /// `Pixelwise(LULinear(features: channels, using:), channels:height:width:)`, the same
    /// `W = P L (U + diag(σ ⊙ exp(s)))` for the channel vector of every pixel of an NCHW image,
    /// started from a random orthogonal matrix. Log-det `height · width · Σ_c s_c` nats per
    /// sample (forward).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for sizes below 1;
    ///   ``InvertNNError/lapack(routine:info:meaning:)`` if LAPACK fails.
    public static func luLinear(
        channels: Int, height: Int, width: Int, hasBias: Bool = true, using generator: inout some RandomNumberGenerator
    ) throws -> Pixelwise<T> {
        let base = try LULinear<T>(features: channels, hasBias: hasBias, using: &generator)
        return try Pixelwise(base, channels: channels, height: height, width: width)
    }
}
