import Foundation

/// The parameter cap: a model read from a file or built from options may hold at most
/// ``SizeLimits/maximumParameters`` scalars, checked on its configuration before any layer
/// allocates (a 3 KB checkpoint whose architecture says hidden sizes [40000, 40000] used to
/// allocate 6 GB for four minutes and abort).
extension SizeLimits {
    /// 500 million scalars (2 GB in Float, 4 GB in Double, before optimizer state): far above
    /// the models this library is for, far below what a machine cannot allocate.
    public static let maximumParameters = 500_000_000

    /// The number of scalars the layer described by `configuration` (the JSON form of a
    /// ``LayerConfiguration``, as a checkpoint's `architecture` holds it) allocates for its
    /// parameters and fixed matrices, computed from the sizes alone. Saturates at `Int.max`;
    /// unknown layer types count their `features`.
    ///
    /// Per type: `Sequential`/`Inverted`/`Pixelwise` the sum of their `layers`; `Diagonal`
    /// D (2D with bias); `Bias`, `PReLU`, `Permutation` D; `Householder` D·reflectors (+D);
    /// `InvertibleLinear` D·(reflectorsU + reflectorsV) + D + D² (its cached dense matrix, +D with
    /// bias); `AffineCoupling`/`Coupling` the conditioner MLP `[d + context, hidden…, 2·(D − d)]`,
    /// Σ n_k·n_{k+1} + n_{k+1}.
    public static func parameterCount(of configuration: ConfigurationTree) -> Int {
        saturated(count(configuration))
    }

    /// The scalars of an MLP with layer widths `sizes` (`[in, hidden…, out]`): Σ n_k·n_{k+1} + n_{k+1},
    /// saturating at `Int.max`.
    public static func mlpParameterCount(sizes: [Int]) -> Int {
        saturated(mlpCount(sizes.map(Double.init)))
    }

    /// Throws if `count` exceeds ``maximumParameters``.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` naming the count and the limit.
    public static func requireParameterCount(_ count: Int, operation: String) throws {
        guard count <= maximumParameters else {
            throw InvertNNError.invalidArgument(
                operation: operation,
                reason: "the model would hold about \(count) parameters, beyond the limit of \(maximumParameters) (SizeLimits.maximumParameters)")
        }
    }

    /// ``requireParameterCount(_:operation:)`` of ``parameterCount(of:)``.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)``.
    public static func requireParameterCount(of configuration: ConfigurationTree, operation: String) throws {
        try requireParameterCount(parameterCount(of: configuration), operation: operation)
    }

    /// ``parameterCount(of:)`` of a layer's configuration (through its JSON form), or `nil` if
    /// it cannot be encoded.
    public static func parameterCount<T: Scalar>(of configuration: LayerConfiguration<T>) -> Int? {
        guard let data = try? JSONEncoder().encode(configuration),
              let tree = try? JSONDecoder().decode(ConfigurationTree.self, from: data) else { return nil }
        return parameterCount(of: tree)
    }

    /// `value` rounded up as an `Int`, `Int.max` from 2⁶³ on (or NaN).
    private static func saturated(_ value: Double) -> Int {
        value < 9.223372036854775807e18 ? Int(value.rounded(.up)) : Int.max
    }

    private static func mlpCount(_ sizes: [Double]) -> Double {
        zip(sizes, sizes.dropFirst()).reduce(0) { $0 + $1.0 * $1.1 + $1.1 }
    }

    private static func count(_ tree: ConfigurationTree) -> Double {
        guard case let .object(c) = tree else { return 0 }
        func int(_ key: String) -> Double {
            if case let .number(v)? = c[key], v.isFinite { return max(v, 0) }
            return 0
        }
        func flag(_ key: String) -> Bool { if case let .bool(v)? = c[key] { return v }; return false }
        let d = int("features")
        let type: String
        if case let .string(t)? = c["type"] { type = t } else { type = "" }
        switch type {
        case "Sequential", "Inverted", "Pixelwise":
            guard case let .array(children)? = c["layers"] else { return 0 }
            return children.reduce(0) { $0 + count($1) }
        case "Diagonal": return flag("bias") ? 2 * d : d
        case "Householder": return d * int("reflectors") + (flag("bias") ? d : 0)
        case "InvertibleLinear": return d * (int("reflectorsU") + int("reflectorsV")) + d + d * d + (flag("bias") ? d : 0)
        case "AffineCoupling", "Coupling":
            let k = c["firstBlockSize"] == nil ? (d / 2).rounded(.down) : int("firstBlockSize")
            var first = true
            if case let .string(block)? = c["conditioningBlock"] { first = block == "first" }
            let a = first ? k : d - k, b = d - a
            var hidden = [Double]()
            if case let .array(sizes)? = c["hiddenSizes"] {
                hidden = sizes.map { if case let .number(v) = $0, v.isFinite { return max(v, 0) }; return 0 }
            }
            return mlpCount([a + int("contextFeatures")] + hidden + [2 * b])
        default: return d
        }
    }
}

/// Any JSON value, decoded without knowing the layer types: what ``SizeLimits/parameterCount(of:)``
/// reads a layer configuration as, before any layer is built.
public indirect enum ConfigurationTree: Decodable, Sendable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([ConfigurationTree]), object([String: ConfigurationTree])

    public init(from decoder: any Decoder) throws {
        if var list = try? decoder.unkeyedContainer() {
            var items = [ConfigurationTree]()
            while !list.isAtEnd { items.append(try list.decode(ConfigurationTree.self)) }
            self = .array(items)
            return
        }
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            var members = [String: ConfigurationTree]()
            for key in object.allKeys { members[key.stringValue] = try object.decode(ConfigurationTree.self, forKey: key) }
            self = .object(members)
            return
        }
        let value = try decoder.singleValueContainer()
        if value.decodeNil() { self = .null }
        else if let b = try? value.decode(Bool.self) { self = .bool(b) }
        else if let n = try? value.decode(Double.self) { self = .number(n) }
        else { self = .string(try value.decode(String.self)) }
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
