import RealModule

/// How raw data becomes the continuous input a flow models, and back (DESIGN.md §4).
///
/// - ``dequantization(_:)``: integer data with `K` levels (images): uniform dequantization and an
///   optional logit (``Dequantization``); results are reported in **bits per dimension of the
///   discrete data**.
/// - ``standardization(_:)``: continuous data (tabular, 2-D toys): per-feature standardization
///   (``Standardization``); results are reported in **nats per dimension** of the data as given.
///
/// In both cases `transform` returns `log|det ∂y/∂x|`, which the reported densities include:
/// `log p(x) = log p_flow(y) + log|det ∂y/∂x|`.
public enum Preprocessing<T: Scalar>: Sendable, Codable {
    case dequantization(Dequantization<T>)
    case standardization(Standardization<T>)

    /// `K` for discrete data, `nil` for continuous data.
    public var levels: Int? {
        if case let .dequantization(d) = self { return d.levels }
        return nil
    }

    /// Whether the data are integer levels (reported in bits/dim) rather than continuous (nats/dim).
    public var isDiscrete: Bool { levels != nil }

    /// Throws unless the preprocessing fits a flow of `features` inputs: a standardization needs
    /// one mean and one scale per feature (dequantization works on any width).
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` naming both widths.
    public func requireFeatures(_ features: Int) throws {
        if case let .standardization(s) = self, s.features != features {
            throw InvertNNError.shapeMismatch(
                operation: "Preprocessing", expected: "a standardization of \(features) features (the flow's width)",
                actual: "\(s.features) means and scales")
        }
    }

    /// The flow's input `y` for raw data `x` `[batch, D]` and `log|det ∂y/∂x|` `[batch]`, nats.
    /// Discrete data draw their dequantization noise from `generator`; continuous data ignore it.
    ///
    /// - Throws: the errors of ``Dequantization/transform(_:using:)`` or
    ///   ``Standardization/standardize(_:)``.
    @_specialize(where T == Float, G == SeededGenerator)
    @_specialize(where T == Double, G == SeededGenerator)
    public func transform<G: RandomNumberGenerator>(_ data: Matrix<T>, using generator: inout G) throws -> LayerOutput<T> {
        switch self {
        case let .dequantization(d): return try d.transform(data, using: &generator)
        case let .standardization(s): return try s.standardize(data)
        }
    }

    /// Flow outputs `y` mapped back to the data's units: integer levels `0..<K` for discrete data
    /// (``Dequantization/dataUnits(_:)`` then ``Dequantization/discretize(_:)``), `μ + σy` for
    /// continuous data.
    ///
    /// - Throws: shape mismatch (continuous data).
    public func dataUnits(_ y: Matrix<T>) throws -> Matrix<T> {
        switch self {
        case let .dequantization(d): return d.discretize(d.dataUnits(y))
        case let .standardization(s): return try s.destandardize(y)
        }
    }

    /// The per-dimension figure of a mean NLL: bits/dim of the discrete data
    /// (``bitsPerDimension(nllNats:dimensions:levels:)``, `nll` being that of the dequantized
    /// `x ∈ [0, 1)^D`) or `nll / (D·ln 2)` bits per dimension of continuous data.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `dimensions < 1`.
    public func bitsPerDimension(nllNats nll: Double, dimensions: Int) throws -> Double {
        switch self {
        case let .dequantization(d): return try InvertNN.bitsPerDimension(nllNats: nll, dimensions: dimensions, levels: d.levels)
        case .standardization:
            guard dimensions >= 1 else {
                throw InvertNNError.invalidArgument(operation: "Preprocessing.bitsPerDimension", reason: "dimensions must be ≥ 1, got \(dimensions)")
            }
            return nll / (Double(dimensions) * Double.log(2))
        }
    }

    /// The log-probability of the raw data in its own units from the log-density of the
    /// preprocessed `x`: for discrete data `log p(x) - D·log K`, the (dequantization lower bound
    /// on the) log-probability mass of the integer vector; continuous data unchanged.
    public func dataLogDensity(_ logDensity: Double, dimensions: Int) -> Double {
        if let k = levels { return logDensity - Double(dimensions) * Double.log(Double(k)) }
        return logDensity
    }

    private enum CodingKeys: String, CodingKey { case kind, levels, logitAlpha, means, scales }

    /// Writes the description stored in checkpoints: `kind`, then `levels` and `logitAlpha` (or
    /// `null`), or `means` and `scales`; values widened to `Double`, so exactly round-trippable.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case let .dequantization(d):
            try c.encode("dequantization", forKey: .kind)
            try c.encode(d.levels, forKey: .levels)
            if let alpha = d.logitAlpha { try c.encode(Double(alpha), forKey: .logitAlpha) } else { try c.encodeNil(forKey: .logitAlpha) }
        case let .standardization(s):
            try c.encode("standardization", forKey: .kind)
            try c.encode(s.means.map { Double($0) }, forKey: .means)
            try c.encode(s.scales.map { Double($0) }, forKey: .scales)
        }
    }

    /// Rebuilds a preprocessing from its checkpoint description.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` naming the missing or bad
    ///   field (or the error of the preprocessing's initializer).
    public init(from decoder: any Decoder) throws {
        func bad(_ reason: String) -> InvertNNError { .invalidArgument(operation: "Preprocessing", reason: reason) }
        guard let c = try? decoder.container(keyedBy: CodingKeys.self) else { throw bad("not a JSON object") }
        switch try? c.decode(String.self, forKey: .kind) {
        case "dequantization":
            guard let levels = try? c.decode(Int.self, forKey: .levels) else { throw bad("dequantization needs integer levels") }
            let alpha: Double?
            do { alpha = try c.decodeIfPresent(Double.self, forKey: .logitAlpha) } catch { throw bad("logitAlpha must be a number or null") }
            self = .dequantization(try Dequantization(levels: levels, logitAlpha: alpha.map { T($0) }))
        case "standardization":
            guard let means = try? c.decode([Double].self, forKey: .means), let scales = try? c.decode([Double].self, forKey: .scales) else {
                throw bad("standardization needs numeric means and scales")
            }
            self = .standardization(try Standardization<T>(storedMeans: means, scales: scales))
        case let other:
            throw bad("unknown preprocessing kind \(other.map { "\"\($0)\"" } ?? "(none)")")
        }
    }
}
