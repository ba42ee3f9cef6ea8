import Testing
import Foundation
import InvertNN

/// Whether `python3` with numpy can run the checkpoint check script (CI has both).
let pythonWithNumpy: Bool = {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import numpy"]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}()

/// The JSON architecture of `layer` as a checkpoint writes it.
func architecture<T: Scalar>(of layer: any InvertibleLayer<T>) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try encoder.encode(LayerConfiguration(layer)), as: UTF8.self)
}

@Suite struct CheckpointTests {
    /// A flow of D = 8 using most layer families (containers nested), with every learnable
    /// parameter entry perturbed so that no value is a placeholder.
    static func richFlow<T: Scalar>(_: T.Type, seed: UInt64 = 11) throws -> NormalizingFlow<T> {
        var g = SeededGenerator(seed: seed)
        let d = 8
        let layers: [any InvertibleLayer<T>] = [
            try InvertibleLinear<T>(features: d, using: &g),
            try AffineCoupling<T>(features: d, hiddenSizes: [6], conditioningBlock: .first, using: &g),
            try Permutation<T>.random(features: d, using: &g),
            try Householder<T>(features: d, reflectors: 3, using: &g),
            try Householder<T>(features: d, determinant: .negative, hasBias: false, using: &g),
            try Diagonal<T>(features: d),
            try Pixelwise<T>(try InvertibleLinear<T>(features: 2, using: &g), channels: 2, height: 2, width: 2),
            Inverted<T>(try Sequential<T>([try Diagonal<T>(features: d, hasBias: false), try Bias<T>(features: d)])),
            try PReLU<T>(features: d),
            try Baird<T>(features: d),
            try LeakyReLU<T>(features: d, negativeSlope: 0.2),
            try AffineCoupling<T>(
                features: d, hiddenSizes: [5, 4], conditioningBlock: .second, scaleBound: nil, activation: .tanh,
                firstBlockSize: 3, using: &g),
            try AffineCoupling<T>(features: d, hiddenSizes: [4], activation: .leakyReLU(slope: 0.1), using: &g),
        ]
        let flow = try NormalizingFlow(transform: try Sequential(layers))
        for p in flow.parameters {
            for i in 0..<p.count where p.trainableMask?[i] ?? true {
                p.withUnsafeMutableValue { $0[i] += T(0.1) * g.nextNormal(T.self) }
            }
        }
        return flow
    }

    static func data<T: Scalar>(_: T.Type, rows: Int = 33) -> Matrix<T> {
        var g = SeededGenerator(seed: 5)
        return Matrix<T>.randomNormal(rows: rows, columns: 8, using: &g)
    }

    func roundTrip<T: Scalar>(_: T.Type) throws {
        let flow = try Self.richFlow(T.self)
        let preprocessing = Preprocessing<T>.standardization(
            try Standardization(means: (0..<8).map { T($0) / 3 }, scales: (0..<8).map { T(1) + T($0) / 7 }))
        let path = temporaryPath("rich-\(T.self).safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Checkpoint(flow: flow, preprocessing: preprocessing, dataset: DatasetDescription(name: "test")).write(to: path)
        let loaded = try Checkpoint<T>.read(path: path)
        let x = Self.data(T.self)
        // Bit for bit: the same parameter bytes and a deterministic evaluation.
        #expect(try loaded.flow.logProbability(x) == flow.logProbability(x))
        var g1 = SeededGenerator(seed: 3), g2 = SeededGenerator(seed: 3)
        #expect(try loaded.flow.sample(count: 5, using: &g1) == flow.sample(count: 5, using: &g2))
        #expect(try architecture(of: loaded.flow.transform) == architecture(of: flow.transform))
        guard case let .standardization(s) = loaded.preprocessing, case let .standardization(s0) = preprocessing else {
            Issue.record("preprocessing kind lost"); return
        }
        #expect(s == s0)
        #expect(loaded.dataset?.name == "test")
        let names = try LayerRegistry.namedParameters(of: loaded.flow.transform).map(\.name)
        #expect(Set(names).count == names.count)
        #expect(names.contains("0.U.reflectors") && names.contains("1.dense0.weight") && names.contains("6.0.U.reflectors")
            && names.contains("7.0.0.logScale") && names.contains("7.0.1.bias"))
    }

    @Test func loadingReproducesLogDensitiesBitForBitDouble() throws { try roundTrip(Double.self) }
    @Test func loadingReproducesLogDensitiesBitForBitFloat() throws { try roundTrip(Float.self) }

    /// For discrete data the checkpoint's data-unit log-probability is the dequantization bound on
    /// the mass of each integer row: its mean is minus the trainer's NLL with the same noise, less
    /// `D·log K`; without noise it refuses; its samples are integer levels.
    @Test func discreteDataUnitsMatchTheTrainersFigures() throws {
        let data = try Digits.load(as: Double.self)
        let flow = try FlowPresets.realNVP(features: 64, couplings: 2, hiddenSizes: [16], seed: 3, as: Double.self)
        let preprocessing = Preprocessing<Double>.dequantization(try Dequantization(levels: 17, logitAlpha: 0.05))
        let checkpoint = Checkpoint(flow: flow, preprocessing: preprocessing)
        let trainer = try Trainer(flow: flow, preprocessing: preprocessing, configuration: TrainingConfiguration.plain(epochs: 1))
        let rows = data.test.rows(0..<120)
        var noise = SeededGenerator(seed: 11)
        let perRow = try checkpoint.logProbability(ofData: rows, using: &noise)
        let evaluated = try trainer.evaluate(rows, noiseSeed: 11).negativeLogLikelihood
        let mean = perRow.reduce(0, +) / Double(perRow.count)
        #expect(abs(-mean - (evaluated + 64 * Double.log(17))) <= 1e-10 * abs(mean))
        #expect(perRow.allSatisfy { $0 < 0 && $0.isFinite })  // a probability mass below 1
        #expect(throws: InvertNNError.self) { try checkpoint.logProbability(ofData: rows) }
        let samples = try checkpoint.sample(count: 5, using: &noise)
        #expect(samples.storage.allSatisfy { $0 == $0.rounded() && (0...16).contains($0) })
    }

    @Test func discretePreprocessingRoundTrips() throws {
        let p = Preprocessing<Float>.dequantization(try Dequantization(levels: 17, logitAlpha: 0.05))
        let q = try JSONDecoder().decode(Preprocessing<Float>.self, from: JSONEncoder().encode(p))
        guard case let .dequantization(d) = q else { Issue.record("kind"); return }
        #expect(d.levels == 17 && d.logitAlpha == Float(0.05))
        #expect(throws: InvertNNError.invalidArgument(operation: "Preprocessing", reason: "unknown preprocessing kind \"magic\"")) {
            try JSONDecoder().decode(Preprocessing<Float>.self, from: Data(#"{"kind": "magic"}"#.utf8))
        }
    }

    /// Every registered layer type rebuilds to the same configuration (domain-restricted layers
    /// included, which the density round trip above cannot evaluate on normal data).
    @Test func registryRebuildsEveryLayerType() throws {
        var g = SeededGenerator(seed: 2)
        let layers: [any InvertibleLayer<Double>] = [
            try Sigmoid(features: 4), try Tanh(features: 4), try ELU(features: 4, alpha: 0.5), try SELU(features: 4),
            try RangeCompression(features: 4, lower: -2, upper: 3), try Householder(features: 4, reflectors: 4, parametrization: .general),
            try InvertibleLinear(features: 4, reflectors: 2, using: &g), try Diagonal(features: 4, hasBias: false),
            try Reshape(from: [4], to: [1, 2, 2]), try Reshape(from: [1, 2, 2], to: [4]),
            try PixelUnshuffle(channels: 1, height: 2, width: 2, factor: 2), try PixelShuffle(channels: 4, height: 1, width: 1, factor: 2),
            try ConcatNoise(features: 4, noise: StandardNormal(features: 2)), try ConcatSideInput(features: 6, sideFeatures: 1, channel: "c"),
            try ActNorm(features: 7, initialized: true, initializationDirection: .forward), try LULinear(features: 7, using: &g),
        ]
        let original = try Sequential(layers)
        let json = try architecture(of: original)
        let rebuilt = try LayerRegistry.layer(json: json, as: Double.self)
        #expect(try architecture(of: rebuilt) == json)
        #expect(rebuilt.outputFeatures == 7)
        // Unknown types and AdaptiveWhitening are refused with the layer's position.
        let unknown = #"{"type": "Sequential", "layers": [{"type": "Diagonal", "features": 2, "bias": true}, {"type": "Warp"}]}"#
        #expect(throws: InvertNNError.invalidArgument(operation: "LayerRegistry", reason: "layer 1: unknown layer type \"Warp\"")) {
            _ = try LayerRegistry.layer(json: unknown, as: Double.self)
        }
        let whitening: any InvertibleLayer<Double> = try AdaptiveWhitening(features: 3)
        #expect(throws: InvertNNError.self) { _ = try LayerRegistry.layer(json: try architecture(of: whitening), as: Double.self) }
        // A missing or mistyped field names the layer, its type and the field.
        let missing = #"{"type": "Sequential", "layers": [{"type": "Inverted", "layers": [{"type": "Diagonal", "features": 2}]}]}"#
        #expect(throws: InvertNNError.invalidArgument(operation: "LayerRegistry", reason: "layer 0.0: Diagonal: bias is missing")) {
            _ = try LayerRegistry.layer(json: missing, as: Double.self)
        }
        let mistyped = #"{"type": "Sequential", "layers": [{"type": "Tanh", "features": "4"}]}"#
        #expect(throws: InvertNNError.invalidArgument(operation: "LayerRegistry", reason: "layer 0: Tanh: features must be an integer")) {
            _ = try LayerRegistry.layer(json: mistyped, as: Float.self)
        }
        // Hyper-parameters the layer rejects keep the layer's own error.
        let rejected = #"{"type": "Sequential", "layers": [{"type": "Tanh", "features": 0}]}"#
        #expect(throws: InvertNNError.self) { _ = try LayerRegistry.layer(json: rejected, as: Float.self) }
    }

    /// A coupling writes the keys of format 1 (the transformer's beside its own, `contextFeatures`
    /// only when positive) and rebuilds from them, context width included.
    @Test func couplingConfigurationKeepsFormatOneKeys() throws {
        var g = SeededGenerator(seed: 4)
        let plain = try AffineCoupling<Double>(features: 5, hiddenSizes: [3], scaleBound: 1.5, firstBlockSize: 2, using: &g)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(try architecture(of: plain).utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["type", "features", "firstBlockSize", "conditioningBlock", "hiddenSizes", "activation", "scaleBound"])
        #expect(object["type"] as? String == "AffineCoupling" && (object["scaleBound"] as? NSNumber)?.doubleValue == 1.5)
        let conditional = try AffineCoupling<Double>(
            features: 4, transformer: try AffineTransformer(scaleBound: nil), hiddenSizes: [2], conditioningBlock: .second,
            activation: .tanh, contextFeatures: 3, using: &g)
        let json = try architecture(of: conditional)
        #expect(json.contains(#""contextFeatures":3"#) && !json.contains("scaleBound"))
        let rebuilt = try LayerRegistry.layer(json: json, as: Double.self)
        let coupling = try #require(rebuilt as? AffineCoupling<Double>)
        #expect(coupling.contextFeatures == 3 && coupling.conditioningBlock == .second && coupling.transformer.scaleBound == nil)
        #expect(coupling.conditioner.sizes == conditional.conditioner.sizes)
        #expect(try architecture(of: rebuilt) == json)
        // A conditional coupling with an empty conditioning block (firstBlockSize 0) rebuilds too.
        let regression = try AffineCoupling<Float>(
            features: 2, transformer: try AffineTransformer(), hiddenSizes: [3], firstBlockSize: 0, contextFeatures: 2, using: &g)
        let again = try #require(try LayerRegistry.layer(json: try architecture(of: regression), as: Float.self) as? AffineCoupling<Float>)
        #expect(again.conditioningRange.isEmpty && again.transformedRange == 0..<2 && again.contextFeatures == 2)
    }

    /// Metadata strings with every kind of escape, and doubles that need all 17 digits, survive a
    /// write and read exactly.
    @Test func metadataRoundTripsNumbersAndEscapes() throws {
        let text = "quote \" backslash \\ tab \t é 😀 \u{01} slash /"
        let file = SafeTensors(
            tensors: [try SafeTensors.Tensor(name: "w", shape: [1, 4], values: [0.1, -1e-300, 3, Double(Float(0.1))])],
            metadata: ["s": text, "empty": ""])
        let back = try SafeTensors.decode(try file.encode(), path: "memory")
        #expect(back.metadata == file.metadata)
        #expect(back.tensors[0].values(as: Double.self) == [0.1, -1e-300, 3, Double(Float(0.1))])
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "nul", "1 2", "\"abc"] {
            #expect(throws: CheckpointError.self, "\(bad)") { _ = try SafeTensors.decode(Self.file(header: bad), path: "memory") }
        }
    }

    /// A safetensors file of `header` and no data.
    static func file(header: String) -> [UInt8] {
        var text = Array(header.utf8)
        while text.count % 8 != 0 { text.append(0x20) }
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(text.count).littleEndian) { out.append(contentsOf: $0) }
        return out + text
    }

    // MARK: - Malformed checkpoints

    static func validFile() throws -> (SafeTensors, [UInt8], NormalizingFlow<Double>) {
        let flow = try richFlow(Double.self)
        let file = try Checkpoint(flow: flow, preprocessing: .dequantization(try Dequantization(levels: 4))).safeTensors()
        return (file, try file.encode(), flow)
    }

    /// The file with its JSON header replaced by `transform(header)`, re-padded.
    static func rewritingHeader(_ bytes: [UInt8], _ transform: (inout [String: Any]) -> Void) throws -> [UInt8] {
        let length = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        var header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any])
        transform(&header)
        var text = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while text.count % 8 != 0 { text.append(0x20) }
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(text.count).littleEndian) { out.append(contentsOf: $0) }
        return out + text + bytes[(8 + length)...]
    }

    /// A header naming a key twice in one object is refused with the key: Foundation's JSON
    /// reader accepts it and keeps one value, so these files used to load as whichever copy it kept.
    @Test func duplicateHeaderKeysAreRefused() throws {
        let path = "d.safetensors"
        let one = #"{"dtype":"F64","shape":[1],"data_offsets":[0,8]}"#
        let data = withUnsafeBytes(of: (2.5).bitPattern.littleEndian) { Array($0) }
        let cases: [(header: String, data: [UInt8], key: String, within: [String])] = [
            (#"{"w":\#(one),"w":\#(one)}"#, data, "w", []),
            (#"{"__metadata__":{"format":"pt"},"w":\#(one),"__metadata__":{"format":"np"}}"#, data, "__metadata__", []),
            (#"{"w":\#(one),"\u0077":\#(one)}"#, data, "w", []),  // the same key, escaped ("\u0077" is "w")
            // A surrogate pair is the one scalar it encodes.
            (#"{"__metadata__":{"\#u{1D11E}":"a","\uD834\uDD1E":"b"}}"#, [], "\u{1D11E}", ["__metadata__"]),
            (#"{"__metadata__":{"format":"pt","format":"np"},"w":\#(one)}"#, data, "format", ["__metadata__"]),
            (#"{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8],"shape":[1]}}"#, data, "shape", ["w"]),
        ]
        for (header, data, key, within) in cases {
            // The premise: Foundation parses the text without complaint.
            #expect((try? JSONSerialization.jsonObject(with: Data(header.utf8))) != nil, "\(header)")
            #expect(throws: CheckpointError.duplicateKey(path: path, key: key, within: within), "\(header)") {
                try SafeTensors.decode(Self.file(header: header) + data, path: path)
            }
        }
        #expect(CheckpointError.duplicateKey(path: path, key: "w", within: []).description
            == #"d.safetensors: the safetensors header holds the key "w" twice; a JSON reader would keep one of them silently"#)
        #expect(CheckpointError.duplicateKey(path: path, key: "a\u{1B}", within: ["__metadata__"]).description
            == #"d.safetensors: the object "__metadata__" of the safetensors header holds the key "a\u{1B}" twice; a JSON reader would keep one of them silently"#)
        // Equal keys in different objects, and values equal to keys, are fine.
        let distinct = #"{"__metadata__":{"w":"v"},"v":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"w":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}"#
        let file = try SafeTensors.decode(Self.file(header: distinct) + data + data, path: path)
        #expect(file.tensors.map(\.name) == ["v", "w"] && file.metadata == ["w": "v"])
    }

    /// Metadata values are strings holding JSON, which the header scan cannot see into:
    /// `"means"` twice in `preprocessing` used to load whichever copy `JSONDecoder` kept.
    @Test func duplicateKeysInMetadataJSONAreRefused() throws {
        let flow = try Self.richFlow(Double.self)
        let preprocessing = Preprocessing<Double>.standardization(try Standardization(means: [Double](repeating: 0, count: 8), scales: [Double](repeating: 1, count: 8)))
        let file = try Checkpoint(flow: flow, preprocessing: preprocessing, dataset: DatasetDescription(name: "test")).safeTensors()
        let path = "m.safetensors"
        let means = "[1,2,3,4,5,6,7,8]"
        let cases: [(key: String, value: String, reason: String)] = [
            ("preprocessing", #"{"kind":"standardization","means":\#(means),"scales":[1,1,1,1,1,1,1,1],"means":[0,0,0,0,0,0,0,0]}"#,
             #"its JSON holds the key "means" twice; a JSON reader would keep one of them silently"#),
            ("dataset", #"{"name":"a","kind":"tabular","extra":{"x":1,"x":2}}"#,
             #"its JSON holds the key "x" twice (in the object "extra"); a JSON reader would keep one of them silently"#),
            // A second "type" at the top level, after a blank (values are JSON when they start with { or [).
            ("architecture", #" {"type":"Sequential","# + file.metadata["architecture"]!.dropFirst(),
             #"its JSON holds the key "type" twice; a JSON reader would keep one of them silently"#),
        ]
        for (key, value, reason) in cases {
            var changed = file
            changed.metadata[key] = value
            // The premise: Foundation parses the text without complaint.
            #expect((try? JSONSerialization.jsonObject(with: Data(value.utf8))) != nil, "\(key)")
            #expect(throws: CheckpointError.badMetadata(path: path, key: key, reason: reason), "\(key)") {
                try Checkpoint<Double>(file: changed, path: path)
            }
        }
        #expect(throws: CheckpointError.badMetadata(path: path, key: "preprocessing", reason: #"its JSON holds the key "means" twice; a JSON reader would keep one of them silently"#)) {
            var changed = file
            changed.metadata["preprocessing"] = cases[0].value
            try Checkpoint<Double>.load(changed, into: flow, path: path)
        }
        // The same keys in different objects, and a plain string value, are fine.
        var fine = file
        fine.metadata["note"] = #"means "means" means"#
        fine.metadata["dataset"] = #"{"name":"a","kind":"tabular","extra":{"name":1,"kind":2}}"#
        let loaded = try Checkpoint<Double>(file: fine, path: path)
        #expect(loaded.dataset?.name == "a")
    }

    /// `Parameter.assign` takes NaN and infinities (an experiment may probe them), but a
    /// checkpoint holding them could not be read back: writing refuses it, naming the tensor and
    /// the position, and leaves an existing file as it was.
    @Test func nonFiniteParametersAreRefusedAtWrite() throws {
        let flow = try Self.richFlow(Float.self)
        let preprocessing = Preprocessing<Float>.standardization(try Standardization(means: [Float](repeating: 0, count: 8), scales: [Float](repeating: 1, count: 8)))
        let path = temporaryPath("nonfinite.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Checkpoint(flow: flow, preprocessing: preprocessing).write(to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let named = try LayerRegistry.namedParameters(of: flow.transform)
        let entry = try #require(named.first { $0.name == "1.dense0.weight" })
        var value = entry.parameter.value
        value[1, 2] = .nan
        try entry.parameter.assign(value)  // accepted
        #expect(entry.parameter.value[1, 2].isNaN)
        #expect(throws: CheckpointError.nonFiniteTensor(path: path, tensor: "1.dense0.weight", row: 1, column: 2, value: "nan")) {
            try Checkpoint(flow: flow, preprocessing: preprocessing).write(to: path)
        }
        #expect(throws: CheckpointError.nonFiniteTensor(path: "", tensor: "1.dense0.weight", row: 1, column: 2, value: "nan")) {
            try Checkpoint(flow: flow, preprocessing: preprocessing).safeTensors()
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        value[1, 2] = 0.5
        value[0, 0] = -.infinity
        try entry.parameter.assign(value)
        let error = CheckpointError.nonFiniteTensor(path: path, tensor: "1.dense0.weight", row: 0, column: 0, value: "-inf")
        #expect(throws: error) { try Checkpoint(flow: flow, preprocessing: preprocessing).write(to: path) }
        #expect(error.description == "\(path): cannot write the checkpoint: tensor 1.dense0.weight holds -inf at [0, 0] (0-based); "
            + "a checkpoint stores finite values only, and reading would refuse it")
        // Finite again, it writes and reads back.
        value[0, 0] = 0.25
        try entry.parameter.assign(value)
        try Checkpoint(flow: flow, preprocessing: preprocessing).write(to: path)
        let loaded = try Checkpoint<Float>.read(path: path)
        #expect(try LayerRegistry.namedParameters(of: loaded.flow.transform).first { $0.name == "1.dense0.weight" }?.parameter.value == value)
    }

    /// A stored mean or scale that does not survive the conversion to the model's precision is
    /// reported as stored: a scale of 1e-300 used to be reported as 0.0 in Float.
    @Test func storedScalesBeyondThePrecisionAreReportedAsStored() throws {
        let flow = try Self.richFlow(Float.self)
        let preprocessing = Preprocessing<Float>.standardization(try Standardization(means: [Float](repeating: 0, count: 8), scales: [Float](repeating: 1, count: 8)))
        let file = try Checkpoint(flow: flow, preprocessing: preprocessing).safeTensors()
        let path = "s.safetensors"
        let cases: [(means: String, scales: String, reason: String)] = [
            ("[0,0,0,0,0,0,0,0]", "[1,1,1e-300,1,1,1,1,1]",
             "scale 2 is 1e-300, which underflows to 0 in Float (smallest positive 1e-45)"),
            ("[0,1e300,0,0,0,0,0,0]", "[1,1,1,1,1,1,1,1]", "mean 1 is 1e+300, beyond the range of Float (largest 3.4028235e+38)"),
            ("[0,0,0,0,0,0,0,0]", "[1,1,1,1,1,1,1,-2]", "scale 7 must be positive and finite, got -2.0"),
        ]
        for (means, scales, reason) in cases {
            var changed = file
            changed.metadata["preprocessing"] = #"{"kind":"standardization","means":\#(means),"scales":\#(scales)}"#
            #expect(throws: CheckpointError.badMetadata(path: path, key: "preprocessing", reason: "Standardization: invalid argument: \(reason)")) {
                try Checkpoint<Float>(file: changed, path: path)
            }
        }
        // In Double the same tiny scale is a valid value.
        var tiny = try Checkpoint(flow: try Self.richFlow(Double.self), preprocessing: .standardization(
            try Standardization(means: [Double](repeating: 0, count: 8), scales: [Double](repeating: 1, count: 8)))).safeTensors()
        tiny.metadata["preprocessing"] = #"{"kind":"standardization","means":[0,0,0,0,0,0,0,0],"scales":[1,1,1e-300,1,1,1,1,1]}"#
        guard case let .standardization(s) = try Checkpoint<Double>(file: tiny, path: path).preprocessing else {
            Issue.record("not a standardization"); return
        }
        #expect(s.scales[2] == 1e-300)
    }

    /// The public error enums are `LocalizedError`s: `localizedDescription` is the message, not
    /// Foundation's "The operation couldn’t be completed".
    @Test func errorsHaveTheirMessageAsLocalizedDescription() {
        let errors: [any Error] = [
            InvertNNError.invalidArgument(operation: "op", reason: "why"),
            CheckpointError.badMetadata(path: "p", key: "k", reason: "r"),
            ThreadGroupError.anotherWorkerFailed,
        ]
        #expect(errors.map(\.localizedDescription) == ["op: invalid argument: why", "p: metadata k: r", "another worker thread of the run failed"])
    }

    @Test func malformedFilesThrowTypedErrors() throws {
        let (file, bytes, flow) = try Self.validFile()
        let path = "m.safetensors"
        #expect(try Checkpoint<Double>(file: try SafeTensors.decode(bytes, path: path), path: path).flow.parameterCount == flow.parameterCount)

        // Truncated data section, and a file shorter than the length field.
        #expect(throws: CheckpointError.truncated(path: path, expected: bytes.count, actual: bytes.count - 5)) {
            try SafeTensors.decode(Array(bytes.dropLast(5)), path: path)
        }
        #expect(throws: CheckpointError.truncated(path: path, expected: 8, actual: 3)) { try SafeTensors.decode([1, 2, 3], path: path) }
        // Cut in the middle: the error names the size the whole file needs, on every run (it
        // used to name the first tensor found beyond the end in random dictionary order).
        for _ in 0..<5 {
            #expect(throws: CheckpointError.truncated(path: path, expected: bytes.count, actual: bytes.count / 2)) {
                try SafeTensors.decode(Array(bytes.prefix(bytes.count / 2)), path: path)
            }
        }
        // A header length beyond the file.
        var huge = bytes
        huge.replaceSubrange(0..<8, with: [0, 0, 0, 0, 0, 0, 0, 1])
        #expect(throws: CheckpointError.badHeaderLength(path: path, length: 1 << 56, fileSize: bytes.count)) {
            try SafeTensors.decode(huge, path: path)
        }
        var beyond = bytes
        withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { beyond.replaceSubrange(0..<8, with: $0) }
        #expect(throws: CheckpointError.truncated(path: path, expected: 8 + bytes.count, actual: bytes.count)) {
            try SafeTensors.decode(beyond, path: path)
        }
        // A header that is not JSON.
        var garbled = bytes
        garbled[8] = UInt8(ascii: "x")
        #expect {
            try SafeTensors.decode(garbled, path: path)
        } throws: { error in
            if case .malformedHeader(path, let reason)? = error as? CheckpointError { return reason.contains("not valid JSON") }
            return false
        }
        // An unknown dtype.
        let name = file.tensors[0].name
        let bf16 = try Self.rewritingHeader(bytes) { header in
            var entry = header[name] as! [String: Any]
            entry["dtype"] = "BF16"
            header[name] = entry
        }
        #expect(throws: CheckpointError.unknownDtype(path: path, tensor: name, dtype: "BF16")) { try SafeTensors.decode(bf16, path: path) }
        // Offsets that disagree with the shape.
        let badOffsets = try Self.rewritingHeader(bytes) { header in
            var entry = header[name] as! [String: Any]
            entry["shape"] = [1]
            header[name] = entry
        }
        #expect(throws: CheckpointError.self) { try SafeTensors.decode(badOffsets, path: path) }

        // A missing tensor, an unexpected one, a wrong shape.
        var missing = file
        missing.tensors.remove(at: 3)
        #expect(throws: CheckpointError.missingTensor(path: path, tensor: file.tensors[3].name)) {
            try Checkpoint<Double>(file: try SafeTensors.decode(try missing.encode(), path: path), path: path)
        }
        var extra = file
        extra.tensors.append(try SafeTensors.Tensor(name: "99.ghost", shape: [1, 1], values: [0.0]))
        #expect(throws: CheckpointError.unexpectedTensor(path: path, tensor: "99.ghost")) { try Checkpoint<Double>(file: extra, path: path) }
        var reshaped = file
        let t = file.tensors[0]
        let values: [Double] = t.values()
        reshaped.tensors[0] = try SafeTensors.Tensor(name: t.name, shape: [t.shape[1], t.shape[0]], values: values)
        if t.shape[0] != t.shape[1] {
            #expect(throws: CheckpointError.shapeMismatch(path: path, tensor: t.name, expected: t.shape, actual: [t.shape[1], t.shape[0]])) {
                try Checkpoint<Double>(file: reshaped, path: path)
            }
        }
        var flat = file
        flat.tensors[0] = try SafeTensors.Tensor(name: t.name, shape: [values.count], values: values)
        #expect(throws: CheckpointError.shapeMismatch(path: path, tensor: t.name, expected: t.shape, actual: [values.count])) {
            try Checkpoint<Double>(file: flat, path: path)
        }

        // A different architecture: into another model, and an unbuildable stored one.
        let other = try NormalizingFlow(transform: try Sequential<Double>([try Diagonal(features: 8)]))
        #expect {
            try Checkpoint<Double>.load(file, into: other, path: path)
        } throws: { error in
            if case .architectureMismatch(path, let reason)? = error as? CheckpointError { return reason.contains("architecture.layers") }
            return false
        }
        let before = flow.parameters.map(\.value)
        try Checkpoint<Double>.load(file, into: flow, path: path)
        #expect(flow.parameters.map(\.value) == before)
        var unknownLayer = file
        unknownLayer.metadata["architecture"] = #"{"type":"Sequential","layers":[{"type":"Warp","features":8}]}"#
        #expect(throws: CheckpointError.badArchitecture(path: path, reason: "LayerRegistry: invalid argument: layer 0: unknown layer type \"Warp\"")) {
            try Checkpoint<Double>(file: unknownLayer, path: path)
        }
        // Metadata: version, missing keys, non-JSON values.
        var future = file
        future.metadata["format_version"] = "99"
        #expect(throws: CheckpointError.unsupportedVersion(path: path, version: "99")) { try Checkpoint<Double>(file: future, path: path) }
        var noBase = file
        noBase.metadata["base"] = nil
        #expect(throws: CheckpointError.badMetadata(path: path, key: "base", reason: "missing")) { try Checkpoint<Double>(file: noBase, path: path) }
        var notJSON = file
        notJSON.metadata["preprocessing"] = "{levels: 4"
        #expect(throws: CheckpointError.self) { try Checkpoint<Double>(file: notJSON, path: path) }
        // A missing file.
        #expect(throws: CheckpointError.io(path: "/nonexistent/x.safetensors", reason: "no such file; only regular files are read")) {
            try Checkpoint<Double>.read(path: "/nonexistent/x.safetensors")
        }
    }

    @Test func writesAtomicallyAndAligned() throws {
        let (file, bytes, _) = try Self.validFile()
        let length = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        #expect((8 + length) % 8 == 0)
        let path = temporaryPath("atomic.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try file.write(to: path)
        try file.write(to: path)
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains("atomic.safetensors.tmp") }
        #expect(leftovers.isEmpty)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) == bytes)
    }

    /// The Python check (standard library + numpy only) reads the file: names, shapes, dtypes,
    /// and per-tensor sums that match Swift's.
    @Test(.enabled(if: pythonWithNumpy, "python3 with numpy is not available: the Python checkpoint check is skipped"))
    func pythonReadsTheCheckpoint() throws {
        let flow = try Self.richFlow(Float.self)
        let checkpoint = Checkpoint(flow: flow, preprocessing: .dequantization(try Dequantization(levels: 17)))
        let path = temporaryPath("python.safetensors"), expectedPath = temporaryPath("python-expected.json")
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: expectedPath)
        }
        try checkpoint.write(to: path)
        let named = try LayerRegistry.namedParameters(of: flow.transform)
        let expected: [[String: Any]] = named.map { ["name": $0.name, "dtype": "F32", "shape": $0.parameter.value.shape] }
        try AtomicFile.write(text: String(decoding: try JSONSerialization.data(withJSONObject: expected), as: UTF8.self), to: expectedPath)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("python/check_checkpoint.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, path, expectedPath]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(String(decoding: stderr, as: UTF8.self))")
        let report = try #require(try JSONSerialization.jsonObject(with: stdout) as? [String: Any])
        #expect(report["ok"] as? Bool == true)
        let tensors = report["tensors"] as? [String: [String: Any]]
        for (name, parameter) in named {
            let sum = parameter.value.storage.reduce(0.0) { $0 + Double($1) }
            let reported = (tensors?[name]?["sum"] as? NSNumber)?.doubleValue ?? .nan
            #expect(abs(reported - sum) <= 1e-9 * max(1, abs(sum)), "\(name)")
        }
    }
}
