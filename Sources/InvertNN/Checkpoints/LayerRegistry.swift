import Foundation

/// Rebuilds layers from their ``LayerConfiguration`` and names their parameters uniquely by
/// position: the two halves of a checkpoint.
///
/// The registry is a table from ``InvertibleLayer/typeName`` to the layer type's decoder, one
/// registration line per ``RebuildableLayer`` type (the internal registration table). Containers
/// (`Sequential`, `Inverted`, `Pixelwise`, `FactorOut`) nest their children's configurations under
/// `"layers"`; a coupling's transformer adds its own fields to the coupling's object.
/// `AdaptiveWhitening` is not rebuildable: its state is fitted statistics, not parameters.
public enum LayerRegistry {
    /// The most layers (containers included) an architecture read from a file may describe, so
    /// that a small file cannot demand unbounded time and memory. The presets use a few dozen.
    public static let maximumLayers = 100_000

    /// How to decode one layer type's configuration and build the layer in precision `T`.
    struct Entry<T: Scalar>: Sendable {
        let decode: @Sendable (any Decoder) throws -> any Codable & Sendable
        let build: @Sendable (any Codable & Sendable) throws -> any InvertibleLayer<T>
    }

    /// The registration table: one line per rebuildable layer type.
    static func table<T: Scalar>(_: T.Type) -> [String: Entry<T>] {
        var entries = [String: Entry<T>]()
        func register<L: RebuildableLayer>(_: L.Type) where L.Element == T {
            entries[L.typeName] = Entry(
                decode: { try L.Configuration(from: $0) },
                build: { value in
                    guard let configuration = value as? L.Configuration else {
                        throw InvertNNError.invalidArgument(operation: L.typeName, reason: "a configuration of type \(type(of: value))")
                    }
                    return try L(configuration: configuration)
                })
        }
        register(Sequential<T>.self)
        register(Inverted<T>.self)
        register(Pixelwise<T>.self)
        register(Diagonal<T>.self)
        register(ActNorm<T>.self)
        register(Bias<T>.self)
        register(Householder<T>.self)
        register(InvertibleLinear<T>.self)
        register(LULinear<T>.self)
        register(AffineCoupling<T>.self)
        register(SplineCoupling<T>.self)
        register(AdditiveCoupling<T>.self)
        register(AffineMaskedAutoregressive<T>.self)
        register(SplineMaskedAutoregressive<T>.self)
        register(ConvAffineCoupling<T>.self)
        register(ConvSplineCoupling<T>.self)
        register(FactorOut<T>.self)
        register(Permutation<T>.self)
        register(PixelShuffle<T>.self)
        register(PixelUnshuffle<T>.self)
        register(Reshape<T>.self)
        register(Sigmoid<T>.self)
        register(Tanh<T>.self)
        register(LeakyReLU<T>.self)
        register(PReLU<T>.self)
        register(ELU<T>.self)
        register(SELU<T>.self)
        register(Baird<T>.self)
        register(RangeCompression<T>.self)
        register(ConcatNoise<T>.self)
        register(ConcatSideInput<T>.self)
        return entries
    }

    /// A table behind a class, so that finding the one for `T` is one cast (a dictionary cast
    /// would check every entry).
    final class Table<T: Scalar>: Sendable {
        let entries: [String: Entry<T>]
        init() { entries = LayerRegistry.table(T.self) }
    }

    private static let floatTable = Table<Float>()
    private static let doubleTable = Table<Double>()

    /// The table for `T` (built once per precision).
    static func entries<T: Scalar>(_: T.Type) -> [String: Entry<T>] {
        if let table = floatTable as? Table<T> { return table.entries }
        if let table = doubleTable as? Table<T> { return table.entries }
        return table(T.self)
    }

    /// The layer described by `configuration`, with placeholder parameter values.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` (operation `LayerRegistry`)
    ///   naming the layer path (e.g. `"layer 3.0"`) for an unknown type or hyper-parameters the
    ///   layer's initializer rejects.
    public static func build<T: Scalar>(_ configuration: LayerConfiguration<T>) throws -> any InvertibleLayer<T> {
        guard let entry = entries(T.self)[configuration.typeName] else {
            throw unknownType(configuration.typeName, at: configuration.path)
        }
        do {
            return try entry.build(configuration.value)
        } catch let error as InvertNNError {
            if case .invalidArgument(operation: "LayerRegistry", _) = error { throw error }
            throw self.error(at: configuration.path, "\(configuration.typeName): \(error)")
        }
    }

    /// The layer described by a JSON architecture (a ``LayerConfiguration``), reading at most
    /// ``maximumLayers`` layers.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` (operation `LayerRegistry`)
    ///   as ``build(_:)`` and for a missing or mistyped field;
    ///   ``InvertNNError/malformedData(source:line:reason:)`` for text that is not JSON.
    public static func layer<T: Scalar>(json: String, as _: T.Type = T.self) throws -> any InvertibleLayer<T> {
        let counter = LayerCounter()
        let configuration = try JSONCoding.decode(
            LayerConfiguration<T>.self, from: json, source: "architecture", userInfo: [LayerCounter.key: counter])
        return try build(configuration)
    }

    /// Counts the layers of one decoding, to enforce ``maximumLayers``.
    final class LayerCounter: @unchecked Sendable {
        static let key = CodingUserInfoKey(rawValue: "InvertNN.LayerCounter")!
        var count = 0
    }

    /// Decodes the configuration of a layer of type `name` (``LayerConfiguration/init(from:)``).
    static func decodeConfiguration<T: Scalar>(
        named name: String, from decoder: any Decoder, as _: T.Type, path: String
    ) throws -> any Codable & Sendable {
        if let counter = decoder.userInfo[LayerCounter.key] as? LayerCounter {
            counter.count += 1
            guard counter.count <= maximumLayers else {
                throw error(at: path, "the architecture has more than \(maximumLayers) layers (LayerRegistry.maximumLayers)")
            }
        }
        if name == "AdaptiveWhitening" {
            throw error(at: path, "AdaptiveWhitening cannot be rebuilt from a checkpoint (its state is fitted statistics, not parameters)")
        }
        guard let entry = entries(T.self)[name] else { throw unknownType(name, at: path) }
        do {
            return try entry.decode(decoder)
        } catch let error as DecodingError {
            throw self.error(at: path, "\(name): \(JSONCoding.describe(error, below: decoder.codingPath.count))")
        }
    }

    /// `"3.0"` for the coding path `layers[3].layers[0]` (the position of each enclosing child).
    static func layerPath(_ codingPath: [any CodingKey]) -> String {
        codingPath.compactMap { $0.intValue.map(String.init) }.joined(separator: ".")
    }

    static func error(at path: String, _ reason: String) -> InvertNNError {
        .invalidArgument(operation: "LayerRegistry", reason: "\(path.isEmpty ? "the root layer" : "layer \(path)"): \(reason)")
    }

    static func unknownType(_ name: String, at path: String) -> InvertNNError {
        error(at: path, "unknown layer type \"\(name)\"")
    }

    /// Every parameter of `layer` with a name unique within it: the parameter's own name prefixed
    /// by the position of each enclosing child (`"3.dense0.weight"` for the first weight of the
    /// fourth layer of a `Sequential`; `"2.0.bias"` inside an `Inverted` or `Pixelwise` at
    /// position 2). The order is that of ``InvertibleLayer/parameters``.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if two parameters end up with
    ///   the same name (a custom container whose children share names).
    public static func namedParameters<T: Scalar>(of layer: any InvertibleLayer<T>) throws -> [(name: String, parameter: Parameter<T>)] {
        var out = [(name: String, parameter: Parameter<T>)]()
        collect(layer, prefix: "", into: &out)
        var seen = Set<String>()
        for entry in out where !seen.insert(entry.name).inserted {
            throw InvertNNError.invalidArgument(operation: "LayerRegistry.namedParameters", reason: "duplicate parameter name \(entry.name)")
        }
        return out
    }

    static func collect<T: Scalar>(_ layer: any InvertibleLayer<T>, prefix: String, into out: inout [(name: String, parameter: Parameter<T>)]) {
        if let sequential = layer as? Sequential<T> {
            for (k, child) in sequential.layers.enumerated() { collect(child, prefix: "\(prefix)\(k).", into: &out) }
        } else if let inverted = layer as? Inverted<T> {
            collect(inverted.base, prefix: "\(prefix)0.", into: &out)
        } else if let pixelwise = layer as? Pixelwise<T> {
            collect(pixelwise.base, prefix: "\(prefix)0.", into: &out)
        } else if let factorOut = layer as? FactorOut<T> {
            collect(factorOut.inner, prefix: "\(prefix)0.", into: &out)
        } else {
            for p in layer.parameters { out.append(("\(prefix)\(p.name)", p)) }
        }
    }
}
