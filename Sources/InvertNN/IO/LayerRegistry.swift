import RealModule

/// Rebuilds layers from their ``InvertibleLayer/configuration`` (as JSON), and names their
/// parameters uniquely by position: the two halves of a checkpoint.
///
/// Rebuilt layers have their structure (sizes, permutations, fixed reflectors, activation) from
/// the configuration and placeholder parameter values; ``Checkpoint`` then assigns the stored
/// values by name. Containers (`Sequential`, `Inverted`, `Pixelwise`) nest their children under
/// `"layers"`.
///
/// Supported types: Sequential, Inverted, Pixelwise, Diagonal, Bias, Householder,
/// InvertibleLinear, AffineCoupling, Permutation, PixelShuffle, PixelUnshuffle, Reshape, Sigmoid,
/// Tanh, LeakyReLU, PReLU, ELU, SELU, Baird, RangeCompression, ConcatNoise (standard normal
/// noise), ConcatSideInput. `AdaptiveWhitening` is not: its state is fitted statistics, not
/// parameters.
public enum LayerRegistry {
    /// The layer described by `configuration` (the JSON form of ``InvertibleLayer/configuration``).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` naming the layer path (e.g.
    ///   `"3.0"`) for an unknown type, a missing or mistyped field, or hyper-parameters the layer's
    ///   initializer rejects.
    public static func build<T: Scalar>(_ configuration: JSONValue, as _: T.Type = T.self) throws -> any InvertibleLayer<T> {
        try build(configuration, path: "")
    }

    static func build<T: Scalar>(_ c: JSONValue, path: String) throws -> any InvertibleLayer<T> {
        let at = path.isEmpty ? "the root layer" : "layer \(path)"
        func bad(_ reason: String) -> InvertNNError {
            .invalidArgument(operation: "LayerRegistry", reason: "\(at): \(reason)")
        }
        guard let type = c["type"]?.stringValue else { throw bad("no \"type\"") }
        func int(_ key: String) throws -> Int {
            guard let v = c[key]?.intValue else { throw bad("\(type) needs an integer \"\(key)\"") }
            return v
        }
        func optionalInt(_ key: String) throws -> Int? {
            switch c[key] {
            case nil, .null?: return nil
            default: return try int(key)
            }
        }
        func double(_ key: String) throws -> Double {
            guard let v = c[key]?.doubleValue else { throw bad("\(type) needs a number \"\(key)\"") }
            return v
        }
        func optionalDouble(_ key: String) throws -> Double? {
            switch c[key] {
            case nil, .null?: return nil
            default: return try double(key)
            }
        }
        func string(_ key: String) throws -> String {
            guard let v = c[key]?.stringValue else { throw bad("\(type) needs a string \"\(key)\"") }
            return v
        }
        func optionalString(_ key: String) throws -> String? {
            switch c[key] {
            case nil, .null?: return nil
            default: return try string(key)
            }
        }
        func bool(_ key: String) throws -> Bool {
            guard let v = c[key]?.boolValue else { throw bad("\(type) needs a Boolean \"\(key)\"") }
            return v
        }
        func ints(_ key: String) throws -> [Int] {
            guard let list = c[key]?.arrayValue else { throw bad("\(type) needs a list of integers \"\(key)\"") }
            let values = list.compactMap { $0.intValue }
            guard values.count == list.count else { throw bad("\(type) needs a list of integers \"\(key)\"") }
            return values
        }
        func children() throws -> [any InvertibleLayer<T>] {
            guard let list = c["layers"]?.arrayValue, !list.isEmpty else { throw bad("\(type) needs a non-empty \"layers\" list") }
            return try list.enumerated().map { try build($0.element, path: path.isEmpty ? "\($0.offset)" : "\(path).\($0.offset)") }
        }
        func single() throws -> any InvertibleLayer<T> {
            let list = try children()
            guard list.count == 1 else { throw bad("\(type) wraps exactly one layer, got \(list.count)") }
            return list[0]
        }
        func determinant(_ key: String) throws -> Householder<T>.Determinant? {
            // Placeholder reflectors are zero, so the fixed last reflector alone sets det W.
            switch try optionalString(key) {
            case nil: return nil
            case "zero"?: return .positive
            case "flip"?: return .negative
            case let other?: throw bad("\(key) must be zero, flip or null, got \(other)")
            }
        }
        func parametrization() throws -> Householder<T>.Parametrization {
            let name = try string("parametrization")
            guard let p = Householder<T>.Parametrization(rawValue: name) else { throw bad("unknown parametrization \(name)") }
            return p
        }

        do {
            switch type {
            case "Sequential": return try Sequential<T>(try children())
            case "Inverted": return Inverted<T>(try single())
            case "Pixelwise":
                return try Pixelwise<T>(try single(), channels: try int("channels"), height: try int("height"), width: try int("width"))
            case "Diagonal": return try Diagonal<T>(features: try int("features"), hasBias: try bool("bias"))
            case "Bias": return try Bias<T>(features: try int("features"))
            case "Householder":
                let features = try int("features")
                return try Householder<T>(
                    features: features, reflectors: try int("reflectors"), determinant: try determinant("fixedLastReflector"),
                    parametrization: try parametrization(), hasBias: try bool("bias"))
            case "InvertibleLinear":
                let features = try int("features")
                let p = try parametrization()
                let u = try Householder<T>(
                    features: features, reflectors: try int("reflectorsU"), determinant: try determinant("fixedLastReflectorU"),
                    parametrization: p, hasBias: false)
                let v = try Householder<T>(
                    features: features, reflectors: try int("reflectorsV"), determinant: try determinant("fixedLastReflectorV"),
                    parametrization: p, hasBias: false)
                return try InvertibleLinear<T>(u: u, logScale: [T](repeating: 0, count: features), v: v, hasBias: try bool("bias"))
            case "AffineCoupling":
                let blockName = try string("conditioningBlock")
                guard let block = CouplingBlock(rawValue: blockName) else { throw bad("unknown conditioningBlock \(blockName)") }
                let activation = try MLPActivation(configurationName: try string("activation"), slope: try optionalDouble("activationSlope"))
                var generator = SeededGenerator(seed: 0)
                return try AffineCoupling<T>(
                    features: try int("features"), hiddenSizes: try ints("hiddenSizes"), conditioningBlock: block,
                    scaleBound: try optionalDouble("scaleBound").map { T($0) }, activation: activation,
                    firstBlockSize: try int("firstBlockSize"), zeroInitializeLastLayer: true,
                    contextFeatures: try optionalInt("contextFeatures") ?? 0, using: &generator)
            case "Permutation": return try Permutation<T>(features: try int("features"), permutation: try ints("permutation"))
            case "PixelShuffle":
                return try PixelShuffle<T>(channels: try int("channels"), height: try int("height"), width: try int("width"), factor: try int("factor"))
            case "PixelUnshuffle":
                return try PixelUnshuffle<T>(channels: try int("channels"), height: try int("height"), width: try int("width"), factor: try int("factor"))
            case "Reshape": return try Reshape<T>(from: try ints("inputShape"), to: try ints("outputShape"))
            case "Sigmoid": return try Sigmoid<T>(features: try int("features"))
            case "Tanh": return try Tanh<T>(features: try int("features"))
            case "LeakyReLU": return try LeakyReLU<T>(features: try int("features"), negativeSlope: T(try double("negativeSlope")))
            case "PReLU": return try PReLU<T>(features: try int("features"))
            case "ELU": return try ELU<T>(features: try int("features"), alpha: T(try double("alpha")))
            case "SELU": return try SELU<T>(features: try int("features"))
            case "Baird": return try Baird<T>(features: try int("features"))
            case "RangeCompression":
                return try RangeCompression<T>(features: try int("features"), lower: T(try double("lower")), upper: T(try double("upper")))
            case "ConcatNoise":
                let noise = try optionalString("noise") ?? "StandardNormal"
                guard noise == "StandardNormal" else { throw bad("unsupported noise distribution \(noise)") }
                return try ConcatNoise<T>(
                    features: try int("features"), noise: StandardNormal<T>(features: try int("noiseFeatures")), channel: try string("channel"))
            case "ConcatSideInput":
                return try ConcatSideInput<T>(features: try int("features"), sideFeatures: try int("sideFeatures"), channel: try string("channel"))
            case "AdaptiveWhitening":
                throw bad("AdaptiveWhitening cannot be rebuilt from a checkpoint (its state is fitted statistics, not parameters)")
            default:
                throw bad("unknown layer type \"\(type)\"")
            }
        } catch let error as InvertNNError {
            if case .invalidArgument(operation: "LayerRegistry", _) = error { throw error }
            throw bad("\(type): \(error)")
        }
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
        } else {
            for p in layer.parameters { out.append(("\(prefix)\(p.name)", p)) }
        }
    }
}
