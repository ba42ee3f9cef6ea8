import RealModule

/// Ready-made flow architectures.
public enum FlowPresets {
    /// α of the logit preprocessing the digits preset is meant for (``Dequantization``).
    public static let logitAlpha = 0.05

    /// The default flow for the 8×8 digits (64 dimensions, logit space with α = 0.05).
    ///
    /// Placeholder until the coupling and orthogonal layers land: a single learnable
    /// ``Diagonal`` with bias (an independent Gaussian per logit-pixel).
    ///
    /// - Parameters:
    ///   - features: D (64 for the digits).
    ///   - seed: seed of the random initialization.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 2`.
    public static func digits<T: Scalar>(features: Int = 64, seed: UInt64 = 0, as _: T.Type = T.self) throws -> NormalizingFlow<T> {
        guard features >= 2 else {
            throw InvertNNError.invalidArgument(operation: "FlowPresets.digits", reason: "features must be ≥ 2, got \(features)")
        }
        let layers: [any InvertibleLayer<T>] = [try Diagonal<T>(features: features)]
        return try NormalizingFlow(transform: try Sequential(layers))
    }
}
