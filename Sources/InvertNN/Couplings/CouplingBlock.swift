import RealModule

/// Which of the two feature blocks of a coupling layer conditions the other.
///
/// A coupling layer on `D` features splits them at a point `k` (by default `⌊D/2⌋`) into the
/// first block `[0, k)` and the second block `[k, D)`. The conditioning block passes through
/// unchanged and feeds the conditioner; the other block is transformed. Alternate the choice in a
/// flow so every feature is transformed (Dinh et al. 2017, "Density estimation using Real NVP", §3.4).
public enum CouplingBlock: String, Equatable, Sendable, Codable {
    /// The first block `[0, k)` conditions; the second block `[k, D)` is transformed.
    case first
    /// The second block `[k, D)` conditions; the first block `[0, k)` is transformed.
    case second

    /// The other block (the usual choice for the next coupling layer of a flow).
    public var other: CouplingBlock { self == .first ? .second : .first }
}
