import RealModule

/// Bits per dimension of discrete data from the negative log-likelihood of its dequantized,
/// `[0, 1)`-scaled version (DESIGN.md §4; Theis et al. 2016, §3.1; Dinh et al. 2017, §4.1):
///
/// `bpd = (NLL_x + D·ln K) / (D·ln 2)`
///
/// where `NLL_x` is `-log p(x)` in nats per sample for `x = (k + u)/K ∈ [0, 1)^D`, with every
/// other preprocessing Jacobian (a logit, say) already included, and `D·ln K` undoes the `1/K`
/// scaling so the result is in bits per dimension of the original discrete data.
///
/// Known value: `D = 3072`, `K = 256`, `NLL_x = -5000` gives `5.6518635402`.
///
/// - Parameters:
///   - nllNats: `NLL_x`, nats per sample.
///   - dimensions: D ≥ 1.
///   - levels: K ≥ 2.
/// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `dimensions < 1` or `levels < 2`.
public func bitsPerDimension(nllNats: Double, dimensions: Int, levels: Int) throws -> Double {
    guard dimensions >= 1, levels >= 2 else {
        throw InvertNNError.invalidArgument(
            operation: "bitsPerDimension", reason: "need dimensions ≥ 1 and levels ≥ 2, got \(dimensions) and \(levels)")
    }
    let d = Double(dimensions)
    return (nllNats + d * Double.log(Double(levels))) / (d * Double.log(2))
}
