/// How a ``ConvCoupling`` splits an NCHW image into a conditioning and a transformed part
/// (Dinh et al. 2017, "Density estimation using Real NVP", §3.4, Figure 3).
public enum ImageMask: String, Equatable, Sendable, Codable {
    /// Channel-wise: the first `⌊C/2⌋` channels form the first block, the others the second
    /// (the ``CouplingBlock`` says which conditions the other). Needs `C ≥ 2`.
    case channels
    /// Spatial checkerboard: pixels with `h + w` even form the first block, odd the second, in
    /// every channel; the conditioner reads the whole image with the transformed pixels set to 0.
    case checkerboard
}
