import Foundation

/// The parameter cap: a model read from a file or built from options may hold at most
/// ``SizeLimits/maximumParameters`` scalars, checked on its configuration before any layer
/// allocates, so that a 3 KB checkpoint whose architecture says hidden sizes [40000, 40000] is
/// refused at once instead of allocating gigabytes.
extension SizeLimits {
    /// 500 million scalars (2 GB in Float, 4 GB in Double, before optimizer state): far above
    /// the models this library is for, far below what a machine cannot allocate.
    static let maximumParameters = 500_000_000

    /// The number of scalars the layer described by `configuration` (the JSON form of a
    /// ``LayerConfiguration``, as a checkpoint's `architecture` holds it) allocates for its
    /// parameters and fixed matrices, computed from the sizes alone. Saturates at `Int.max`;
    /// unknown layer types count their `features`.
    ///
    /// Per type: `Sequential`/`Inverted`/`Pixelwise` the sum of their `layers`; `Diagonal`
    /// D (2D with bias); `Bias`, `PReLU`, `Permutation` D; `Householder` D·reflectors (+D);
    /// `InvertibleLinear` D·(reflectorsU + reflectorsV) + D + D² (its cached dense matrix, +D with
    /// bias); `AffineCoupling`/`Coupling` the conditioner MLP `[d + context, hidden…, 2·(D − d)]`,
    /// Σ n_k·n_{k+1} + n_{k+1}, and likewise `AdditiveCoupling` (1 output per transformed
    /// feature), `SplineCoupling` (3·bins − 1) and other `…Coupling` types (at least 1);
    /// `…MaskedAutoregressive` the MADE `[D + context, hidden…, P·D]` with P as for the coupling;
    /// `Conv…Coupling` at least its 1×1 convolutions between hidden widths, Σ h_k·h_{k+1} + h_{k+1}
    /// (plus the channels). Other containers (`FactorOut`) add their `layers` to their features.
    static func parameterCount(of configuration: ArchitectureSizes) -> Int {
        saturated(count(configuration))
    }

    /// The scalars of an MLP with layer widths `sizes` (`[in, hidden…, out]`): Σ n_k·n_{k+1} + n_{k+1},
    /// saturating at `Int.max`.
    static func mlpParameterCount(sizes: [Int]) -> Int {
        saturated(mlpCount(sizes.map(Double.init)))
    }

    /// Throws if `count` exceeds ``maximumParameters``.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` naming the count and the limit.
    static func requireParameterCount(_ count: Int, operation: String) throws {
        guard count <= maximumParameters else {
            throw InvertNNError.invalidArgument(
                operation: operation,
                reason: "the model would hold about \(count) parameters, beyond the limit of \(maximumParameters) (FlowPresets.maximumParameters)")
        }
    }

    /// ``requireParameterCount(_:operation:)`` of ``parameterCount(of:)-(ArchitectureSizes)``.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)``.
    static func requireParameterCount(of configuration: ArchitectureSizes, operation: String) throws {
        try requireParameterCount(parameterCount(of: configuration), operation: operation)
    }

    /// ``parameterCount(of:)`` of a layer's configuration (through its JSON form), or `nil` if
    /// it cannot be encoded.
    static func parameterCount<T: Scalar>(of configuration: LayerConfiguration<T>) -> Int? {
        guard let data = try? JSONEncoder().encode(configuration),
              let tree = try? JSONDecoder().decode(ArchitectureSizes.self, from: data) else { return nil }
        return parameterCount(of: tree)
    }

    /// `value` rounded up as an `Int`, `Int.max` from 2⁶³ on (or NaN).
    private static func saturated(_ value: Double) -> Int {
        value < 9.223372036854775807e18 ? Int(value.rounded(.up)) : Int.max
    }

    private static func mlpCount(_ sizes: [Double]) -> Double {
        zip(sizes, sizes.dropFirst()).reduce(0) { $0 + $1.0 * $1.1 + $1.1 }
    }

    private static func count(_ c: ArchitectureSizes) -> Double {
        func value(_ v: Int?) -> Double { Double(max(v ?? 0, 0)) }
        let d = value(c.features)
        switch c.type ?? "" {
        case "Sequential", "Inverted", "Pixelwise": return (c.layers ?? []).reduce(0) { $0 + count($1) }
        case "Diagonal": return c.bias == true ? 2 * d : d
        case "Householder": return d * value(c.reflectors) + (c.bias == true ? d : 0)
        case "InvertibleLinear": return d * (value(c.reflectorsU) + value(c.reflectorsV)) + d + d * d + (c.bias == true ? d : 0)
        case let type where type.hasPrefix("Conv") && type.hasSuffix("Coupling"):
            // A lower bound: the 3×3 first and last convolutions are left out, so that a valid
            // file is never refused by the stored-values check of a checkpoint.
            let hidden = (c.hiddenChannels ?? []).map { value($0) }
            return mlpCount(hidden) + value(c.channels)
        case let type where type.hasSuffix("Coupling"):
            let k = c.firstBlockSize.map { value($0) } ?? (d / 2).rounded(.down)
            let a = c.conditioningBlock == "second" ? d - k : k, b = max(d - a, 0)
            let outputs = transformerOutputs(type, bins: c.bins, coupling: true)
            return mlpCount([a + value(c.contextFeatures)] + (c.hiddenSizes ?? []).map { value($0) } + [outputs * b])
        case let type where type.hasSuffix("MaskedAutoregressive"):
            let outputs = transformerOutputs(type, bins: c.bins, coupling: false)
            return mlpCount([d + value(c.contextFeatures)] + (c.hiddenSizes ?? []).map { value($0) } + [outputs * d])
        default: return d + (c.layers ?? []).reduce(0) { $0 + count($1) }
        }
    }

    /// Conditioner outputs per transformed feature of the transformer a type name names:
    /// 2 for affine (`AffineCoupling`, `Coupling`), 1 for additive, `3·bins − 1` for a spline,
    /// at least 1 for any other.
    private static func transformerOutputs(_ type: String, bins: Int?, coupling: Bool) -> Double {
        let name = coupling ? type : String(type.dropLast("MaskedAutoregressive".count)) + "Coupling"
        switch name {
        case "AffineCoupling", "Coupling": return 2
        case "SplineCoupling": return max(3 * Double(max(bins ?? 1, 1)) - 1, 1)
        default: return 1
        }
    }
}

/// The sizes of a layer configuration that decide its parameter count, read from its JSON
/// form (a checkpoint's `architecture`, or an encoded ``LayerConfiguration``) before any layer
/// is built: what ``SizeLimits/parameterCount(of:)-(ArchitectureSizes)`` takes. Other fields are ignored; a field of
/// an unexpected type reads as absent (the registry reports it when it builds the layer).
struct ArchitectureSizes: Decodable, Sendable, Equatable {
    var type: String?
    var features: Int?
    var bias: Bool?
    var reflectors: Int?
    var reflectorsU: Int?
    var reflectorsV: Int?
    var firstBlockSize: Int?
    var conditioningBlock: String?
    var hiddenSizes: [Int]?
    var contextFeatures: Int?
    /// A spline transformer's bins K.
    var bins: Int?
    /// A convolutional coupling's image channels.
    var channels: Int?
    /// A convolutional coupling's hidden widths.
    var hiddenChannels: [Int]?
    /// The children of a container.
    var layers: [ArchitectureSizes]?

    /// Sizes given directly (presets count their layers this way).
    init(
        type: String, features: Int, bias: Bool? = nil, reflectorsU: Int? = nil, reflectorsV: Int? = nil,
        firstBlockSize: Int? = nil, conditioningBlock: String? = nil, hiddenSizes: [Int]? = nil, layers: [ArchitectureSizes]? = nil
    ) {
        self.type = type
        self.features = features
        self.bias = bias
        self.reflectorsU = reflectorsU
        self.reflectorsV = reflectorsV
        self.firstBlockSize = firstBlockSize
        self.conditioningBlock = conditioningBlock
        self.hiddenSizes = hiddenSizes
        self.layers = layers
    }

    /// The sizes in a JSON object parsed by `JSONSerialization` (`[String: Any]`), or `nil` for
    /// another value. Faster than a `Decodable` pass over a large architecture.
    init?(jsonObject: Any) {
        guard let c = jsonObject as? [String: Any] else { return nil }
        func int(_ key: String) -> Int? {
            guard let n = c[key] as? NSNumber else { return nil }
            let d = n.doubleValue
            return d.isFinite && abs(d) < 9e18 ? Int(d) : nil
        }
        type = c["type"] as? String
        features = int("features")
        bias = (c["bias"] as? NSNumber)?.boolValue
        reflectors = int("reflectors")
        reflectorsU = int("reflectorsU")
        reflectorsV = int("reflectorsV")
        firstBlockSize = int("firstBlockSize")
        conditioningBlock = c["conditioningBlock"] as? String
        func ints(_ key: String) -> [Int]? {
            (c[key] as? [Any])?.map { ($0 as? NSNumber).map { n in n.doubleValue.isFinite && abs(n.doubleValue) < 9e18 ? Int(n.doubleValue) : 0 } ?? 0 }
        }
        hiddenSizes = ints("hiddenSizes")
        contextFeatures = int("contextFeatures")
        bins = int("bins")
        channels = int("channels")
        hiddenChannels = ints("hiddenChannels")
        layers = (c["layers"] as? [Any])?.compactMap { ArchitectureSizes(jsonObject: $0) }
    }

    private enum Keys: String, CodingKey {
        case type, features, bias, reflectors, reflectorsU, reflectorsV, firstBlockSize, conditioningBlock, hiddenSizes
        case contextFeatures, layers, bins, channels, hiddenChannels
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        type = try? c.decodeIfPresent(String.self, forKey: .type)
        features = try? c.decodeIfPresent(Int.self, forKey: .features)
        bias = try? c.decodeIfPresent(Bool.self, forKey: .bias)
        reflectors = try? c.decodeIfPresent(Int.self, forKey: .reflectors)
        reflectorsU = try? c.decodeIfPresent(Int.self, forKey: .reflectorsU)
        reflectorsV = try? c.decodeIfPresent(Int.self, forKey: .reflectorsV)
        firstBlockSize = try? c.decodeIfPresent(Int.self, forKey: .firstBlockSize)
        conditioningBlock = try? c.decodeIfPresent(String.self, forKey: .conditioningBlock)
        hiddenSizes = try? c.decodeIfPresent([Int].self, forKey: .hiddenSizes)
        contextFeatures = try? c.decodeIfPresent(Int.self, forKey: .contextFeatures)
        bins = try? c.decodeIfPresent(Int.self, forKey: .bins)
        channels = try? c.decodeIfPresent(Int.self, forKey: .channels)
        hiddenChannels = try? c.decodeIfPresent([Int].self, forKey: .hiddenChannels)
        layers = try c.decodeIfPresent([ArchitectureSizes].self, forKey: .layers)
    }
}
