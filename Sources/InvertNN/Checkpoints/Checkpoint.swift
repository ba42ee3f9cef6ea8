import Foundation

/// A trained model as one safetensors file (DESIGN.md §4): the flow's parameters as tensors and,
/// in `__metadata__`, everything needed to rebuild and use it without other files.
///
/// Tensors: one per parameter, named by ``LayerRegistry/namedParameters(of:)`` (layer position,
/// then the parameter's name, e.g. `"1.dense0.weight"`), shape `[rows, columns]` of the
/// parameter's matrix, dtype `F32` or `F64` as the model's precision.
///
/// `__metadata__` (every value a string, as the format requires; JSON where structured):
/// - `format`: `"invertnn"`, `format_version`: ``formatVersion``;
/// - `architecture`: the transform's ``LayerConfiguration`` (`{"type": "Sequential", "layers": […]}`);
/// - `base`: the base distribution, `{"type": "StandardNormal", "features": D}`;
/// - `preprocessing`: the ``Preprocessing`` (levels and logit α, or feature means and scales);
/// - `dataset`: a ``DatasetDescription`` of the training data (name, kind, image shape, column
///   names) that tools use to display and score data, or `null`;
/// - `dtype`: `"F32"` or `"F64"`;
/// - `context` (conditional flows only): the context width, its encoding (identity,
///   standardization with means and scales, or one-hot classes) and the embedding network's sizes
///   and activation; the embedding's tensors are named `context.embedding.<parameter>`;
/// - `training_state` (optional, with ``trainingState``): see ``TrainingState`` and
///   `Checkpoint+TrainingState.swift`; its tensors are named `optimizer.m.<parameter>`,
///   `optimizer.v.<parameter>`, `trainer.iterate.<parameter>`, `trainer.last_good.<parameter>`
///   and `trainer.average.<parameter>`. Files without it load as models only.
///
/// Files are written atomically (``AtomicFile``). A loaded model computes bit-identical
/// log-densities: the parameter bytes are stored exactly and every computation is deterministic.
public struct Checkpoint<T: Scalar> {
    /// The version written into, and required of, `format_version`.
    public static var formatVersion: String { "1" }

    /// The model.
    public let flow: NormalizingFlow<T>
    /// The data preprocessing the model was trained with.
    public let preprocessing: Preprocessing<T>
    /// The description of the training data, or `nil`.
    public let dataset: DatasetDescription?
    /// The state to continue training from (``Trainer/trainingState``), or `nil` for a model
    /// only. Its ``TrainingState/best`` parameters are the model's and are not stored twice.
    public let trainingState: TrainingState<T>?

    /// A checkpoint of `flow` trained on data preprocessed by `preprocessing`, optionally with
    /// the state to resume training.
    public init(
        flow: NormalizingFlow<T>, preprocessing: Preprocessing<T>, dataset: DatasetDescription? = nil,
        trainingState: TrainingState<T>? = nil
    ) {
        self.flow = flow
        self.preprocessing = preprocessing
        self.dataset = dataset
        self.trainingState = trainingState
    }

    /// The safetensors file of this checkpoint.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if the base distribution is
    ///   not one the checkpoint can rebuild (``StandardNormal``, ``DiagonalGaussian``,
    ///   ``GaussianMixture``, ``FullCovarianceMixture``) or parameter names collide;
    ///   ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if the preprocessing does not
    ///   fit the flow's width (``Preprocessing/requireFeatures(_:)``), so that such a file is
    ///   refused when written rather than at its first use;
    ///   ``CheckpointError/nonFiniteTensor(path:tensor:row:column:value:)`` (empty path) naming
    ///   the first parameter that holds NaN or an infinity (``Parameter/assign(_:)`` accepts such
    ///   values; a checkpoint cannot hold them); a training state with non-finite values is
    ///   refused by ``TrainingState/validate(for:)``.
    public func safeTensors() throws -> SafeTensors {
        try preprocessing.requireFeatures(flow.features)
        let baseType = flow.base.checkpointType
        guard BaseDescription.types.contains(baseType.name),
              baseType.name != "StandardNormal" || flow.base is StandardNormal<T> else {
            throw InvertNNError.invalidArgument(
                operation: "Checkpoint", reason: "a base of type \(type(of: flow.base)) cannot be saved (supported: \(BaseDescription.types.joined(separator: ", ")))")
        }
        let named = try Self.namedParameters(of: flow)
        // Reading refuses non-finite tensors; a file that cannot be read back is not written.
        for entry in named {
            let value = entry.parameter.value
            if let (r, c) = value.firstNonFinite() {
                throw CheckpointError.nonFiniteTensor(path: "", tensor: entry.name, row: r, column: c, value: "\(value[r, c])")
            }
        }
        var tensors = try named.map { entry in
            try SafeTensors.Tensor(name: entry.name, shape: entry.parameter.value.shape, values: entry.parameter.value.storage)
        }
        var metadata: [String: String] = [
            "format": "invertnn",
            "format_version": Self.formatVersion,
            "architecture": try JSONCoding.encode(LayerConfiguration(flow.transform), operation: "Checkpoint"),
            "base": try JSONCoding.encode(
                BaseDescription(
                    type: baseType.name, features: flow.features, components: baseType.components,
                    floor: (flow.base as? FullCovarianceMixture<T>)?.floor), operation: "Checkpoint"),
            "preprocessing": try JSONCoding.encode(preprocessing, operation: "Checkpoint"),
            "dataset": try JSONCoding.encode(dataset, operation: "Checkpoint"),
            "dtype": T.dtypeName,
        ]
        if let encoder = flow.contextEncoder { metadata[ContextDescription.key] = try ContextDescription(encoder).json() }
        if let trainingState {
            let saved = try Self.encode(trainingState, named: named, flow: flow)
            tensors += saved.tensors
            metadata[Self.trainingStateKey] = try JSONCoding.encode(saved.metadata, operation: "Checkpoint")
        }
        return SafeTensors(tensors: tensors, metadata: metadata)
    }

    /// Writes the checkpoint to `path` atomically (temporary file + rename). Nothing is written
    /// if the checkpoint cannot be encoded; an existing file at `path` is then left as it was.
    ///
    /// - Throws: as ``safeTensors()``, with ``CheckpointError/nonFiniteTensor(path:tensor:row:column:value:)``
    ///   naming `path`; ``CheckpointError/io(path:reason:)``.
    public func write(to path: String) throws {
        let file: SafeTensors
        do { file = try safeTensors() } catch let CheckpointError.nonFiniteTensor(_, tensor, row, column, value) {
            throw CheckpointError.nonFiniteTensor(path: path, tensor: tensor, row: row, column: column, value: value)
        }
        try file.write(to: path)
    }

    /// Reads the checkpoint at `path`, rebuilding the flow from its metadata. A file stored in
    /// the other precision is converted as a whole (then results are no longer bit-identical);
    /// a file whose tensors disagree on their dtype is refused
    /// (``CheckpointError/mixedDtype(path:tensor:dtype:stored:)``).
    ///
    /// - Throws: every ``CheckpointError`` of ``SafeTensors/read(path:)`` and ``init(file:path:)``.
    public static func read(path: String) throws -> Checkpoint<T> {
        try Checkpoint(file: try SafeTensors.read(path: path), path: path)
    }

    /// Rebuilds a checkpoint from a parsed file.
    ///
    /// - Parameters:
    ///   - file: the parsed safetensors file (``SafeTensors/read(path:)``).
    ///   - path: names the file in errors.
    /// - Throws: ``CheckpointError/badMetadata(path:key:reason:)`` for a missing or malformed
    ///   entry, or one whose JSON names a key twice in one object;
    ///   ``CheckpointError/unsupportedVersion(path:version:)``;
    ///   ``CheckpointError/mixedDtype(path:tensor:dtype:stored:)`` for a tensor whose dtype is not
    ///   the file's (``storedDType(of:path:)``);
    ///   ``CheckpointError/badArchitecture(path:reason:)`` if the layers cannot be rebuilt, would
    ///   hold more than ``FlowPresets/maximumParameters``, or would hold more than twice the values
    ///   the file's tensors store plus 2²⁰ (both checked before any is built); and the
    ///   errors of ``load(_:into:path:)`` (missing or unexpected tensors, wrong shapes);
    ///   ``CheckpointError/badTrainingState(path:reason:)`` for a malformed training state.
    public init(file: SafeTensors, path: String) throws {
        let meta = file.metadata
        func text(_ key: String) throws -> String {
            guard let text = meta[key] else { throw CheckpointError.badMetadata(path: path, key: key, reason: "missing") }
            return text
        }
        /// A metadata entry decoded as `V`; errors name the key and what is wrong where.
        func decode<V: Decodable>(_ type: V.Type, _ key: String) throws -> V {
            do { return try JSONCoding.decode(type, from: try text(key), source: key) } catch let error as CheckpointError {
                throw error
            } catch let InvertNNError.malformedData(_, _, reason) {
                throw CheckpointError.badMetadata(path: path, key: key, reason: "not valid JSON (\(reason))")
            } catch {
                throw CheckpointError.badMetadata(path: path, key: key, reason: "\(error)")
            }
        }
        guard meta["format"] == "invertnn" else {
            throw CheckpointError.badMetadata(path: path, key: "format", reason: "expected \"invertnn\", got \(meta["format"].map { "\"\($0)\"" } ?? "nothing")")
        }
        guard let version = meta["format_version"] else {
            throw CheckpointError.badMetadata(path: path, key: "format_version", reason: "missing")
        }
        guard version == Self.formatVersion else { throw CheckpointError.unsupportedVersion(path: path, version: version) }
        try Self.requireUniqueKeys(in: meta, path: path)
        let architecture = try text("architecture")
        let storedDType = try Self.requireOneDType(file, path: path)
        try Self.requireParameterCap(architecture: architecture, storedValues: file.tensors.reduce(0) {
            $0 + $1.bytes.count / $1.dtype.byteCount
        }, storedDType: storedDType, path: path)
        let baseText = try text("base")
        guard let base = try? decode(BaseDescription.self, "base"), BaseDescription.types.contains(base.type) else {
            throw CheckpointError.badMetadata(
                path: path, key: "base",
                reason: "expected {\"type\": \"StandardNormal\" (or DiagonalGaussian, GaussianMixture, FullCovarianceMixture), \"features\": D}, got \(baseText.prefix(80))")
        }
        let features = base.features
        let preprocessing = try decode(Preprocessing<T>.self, "preprocessing")
        let dataset = meta["dataset"] == nil ? nil : try decode(DatasetDescription?.self, "dataset")
        let transform: Sequential<T>
        do {
            let layer: any InvertibleLayer<T> = try LayerRegistry.layer(json: architecture)
            guard let sequential = layer as? Sequential<T> else {
                throw CheckpointError.badArchitecture(path: path, reason: "the root layer must be a Sequential, got \(layer.name)")
            }
            transform = sequential
        } catch let InvertNNError.malformedData(_, _, reason) {
            throw CheckpointError.badMetadata(path: path, key: "architecture", reason: "not valid JSON (\(reason))")
        } catch let error as InvertNNError {
            throw CheckpointError.badArchitecture(path: path, reason: "\(error)")
        }
        let flow: NormalizingFlow<T>
        do {
            guard features == transform.inputFeatures else {
                throw InvertNNError.invalidArgument(
                    operation: "Checkpoint", reason: "the base has \(features) features, the transform \(transform.inputFeatures)")
            }
            flow = try NormalizingFlow(
                base: try base.distribution(T.self), transform: transform, contextEncoder: try Self.contextEncoder(meta, path: path))
        } catch let error as InvertNNError {
            throw CheckpointError.badArchitecture(path: path, reason: "\(error)")
        }
        try Self.assign(Self.modelPart(of: file), to: flow, path: path)
        let state = try Self.decodeTrainingState(file, flow: flow, path: path)
        self.init(flow: flow, preprocessing: preprocessing, dataset: dataset, trainingState: state)
    }

    /// Loads the parameter values of a checkpoint file into an existing `flow` of the same
    /// architecture (for example to continue training).
    ///
    /// - Throws: ``CheckpointError/architectureMismatch(path:reason:)`` naming the first
    ///   difference between the stored and the flow's architecture;
    ///   ``CheckpointError/badMetadata(path:key:reason:)`` without an architecture; and the tensor
    ///   errors of ``init(file:path:)``. On error the flow keeps its values.
    public static func load(_ file: SafeTensors, into flow: NormalizingFlow<T>, path: String) throws {
        try requireUniqueKeys(in: file.metadata, path: path)
        guard let text = file.metadata["architecture"],
              let stored = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
            throw CheckpointError.badMetadata(path: path, key: "architecture", reason: "missing or not valid JSON")
        }
        let ownText: String
        do { ownText = try JSONCoding.encode(LayerConfiguration(flow.transform), operation: "Checkpoint") } catch {
            throw CheckpointError.badArchitecture(path: path, reason: "\(error)")
        }
        let own = try JSONSerialization.jsonObject(with: Data(ownText.utf8), options: [.fragmentsAllowed])
        if let difference = firstDifference(stored, own, at: "architecture") {
            throw CheckpointError.architectureMismatch(path: path, reason: difference)
        }
        let storedContext = try contextEncoder(file.metadata, path: path).map { ContextDescription($0) }
        guard storedContext == flow.contextEncoder.map({ ContextDescription($0) }) else {
            throw CheckpointError.architectureMismatch(
                path: path, reason: "the context encoders differ (checkpoint: \((try? storedContext?.json()) ?? "none"), model: \((try? flow.contextEncoder.map { try ContextDescription($0).json() }) ?? "none"))")
        }
        try assign(modelPart(of: file), to: flow, path: path)
    }

    /// Throws unless every metadata value that holds JSON (its first non-blank character `{` or
    /// `[`) names each key once per object. The safetensors header is checked so when it is
    /// read (``SafeTensors/decode(_:path:)``), but these values are strings inside it, and
    /// `JSONDecoder` keeps one of two repeated keys silently: `"means"` twice in `preprocessing`
    /// would load whichever copy the parser kept.
    ///
    /// - Throws: ``CheckpointError/badMetadata(path:key:reason:)`` naming the metadata key (the
    ///   first in sorted order), the repeated key and the objects that enclose it.
    static func requireUniqueKeys(in metadata: [String: String], path: String) throws {
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            guard let first = value.utf8.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }),
                  first == UInt8(ascii: "{") || first == UInt8(ascii: "[") else { continue }
            guard let duplicate = Array(value.utf8).withUnsafeBufferPointer({ JSONDuplicateKeys.first(in: $0) }) else { continue }
            // Quoted with escapes, so a key holding control characters cannot drive a terminal.
            let place = duplicate.within.isEmpty ? "" : " (in the object \(duplicate.within.map(\.debugDescription).joined(separator: " → ")))"
            throw CheckpointError.badMetadata(
                path: path, key: key,
                reason: "its JSON holds the key \(duplicate.key.debugDescription) twice\(place); a JSON reader would keep one of them silently")
        }
    }

    /// Assigns every tensor to the parameter of the same name after checking names and shapes
    /// (all checks first, so a failure leaves the flow unchanged).
    static func assign(_ file: SafeTensors, to flow: NormalizingFlow<T>, path: String) throws {
        let named: [(name: String, parameter: Parameter<T>)]
        do { named = try Self.namedParameters(of: flow) } catch {
            throw CheckpointError.badArchitecture(path: path, reason: "\(error)")
        }
        var byName = [String: SafeTensors.Tensor]()
        for t in file.tensors { byName[t.name] = t }
        var values = [Matrix<T>]()
        for (name, parameter) in named {
            guard let tensor = byName.removeValue(forKey: name) else { throw CheckpointError.missingTensor(path: path, tensor: name) }
            let expected = parameter.value.shape
            guard tensor.shape == expected else {
                throw CheckpointError.shapeMismatch(path: path, tensor: name, expected: expected, actual: tensor.shape)
            }
            let matrix = try Matrix(rows: expected[0], columns: expected[1], storage: tensor.values(as: T.self))
            if let (r, c) = matrix.firstNonFinite() {
                throw CheckpointError.badOffsets(path: path, tensor: name, reason: "non-finite value at [\(r), \(c)]")
            }
            // Structurally fixed entries (the zeros of trapezoidal reflectors, the fixed last
            // reflector 0 or e_n) must keep their pattern: zero where the rebuilt layer has zero,
            // nonzero where it has e_n. The stored value itself is kept, not the placeholder, for
            // bit-identical results (parameter averaging can round a fixed 1 to 0.9999995, which
            // reflects identically because H(v) depends on v/|v| only).
            if let mask = parameter.trainableMask {
                for i in 0..<mask.count where !mask[i] && (matrix.storage[i] == 0) != (parameter.value.storage[i] == 0) {
                    throw CheckpointError.badOffsets(
                        path: path, tensor: name,
                        reason: "entry \(i) is structurally \(parameter.value.storage[i] == 0 ? "zero" : "nonzero") but the file holds \(matrix.storage[i])")
                }
            }
            values.append(matrix)
        }
        if let extra = byName.keys.sorted().first { throw CheckpointError.unexpectedTensor(path: path, tensor: extra) }
        for ((_, parameter), value) in zip(named, values) { parameter.value = value }
    }

    /// A readable path to the first place two parsed JSON values (`JSONSerialization` trees)
    /// differ, or `nil` if they are equal; a member that is `null` equals a missing one.
    static func firstDifference(_ a: Any, _ b: Any, at path: String) -> String? {
        func show(_ v: Any?) -> String {
            guard let v, !(v is NSNull) else { return "null" }
            let s = (try? JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed, .sortedKeys]))
                .map { String(decoding: $0, as: UTF8.self) } ?? "\(v)"
            return s.count > 60 ? String(s.prefix(60)) + "…" : s
        }
        switch (a, b) {
        case let (x as [String: Any], y as [String: Any]):
            for key in Set(x.keys).union(y.keys).sorted() {
                let (u, v) = (x[key].flatMap { $0 is NSNull ? nil : $0 }, y[key].flatMap { $0 is NSNull ? nil : $0 })
                switch (u, v) {
                case (nil, nil): continue
                case (nil, _?): return "\(path).\(key) is only in the model (\(show(v)))"
                case (_?, nil): return "\(path).\(key) is only in the checkpoint (\(show(u)))"
                case let (u?, v?): if let d = firstDifference(u, v, at: "\(path).\(key)") { return d }
                }
            }
            return nil
        case let (x as [Any], y as [Any]):
            if x.count != y.count { return "\(path) has \(x.count) entries in the checkpoint, \(y.count) in the model" }
            for (i, (u, v)) in zip(x, y).enumerated() {
                if let d = firstDifference(u, v, at: "\(path)[\(i)]") { return d }
            }
            return nil
        default:
            if (a as? NSObject)?.isEqual(b) == true { return nil }
            return "\(path) is \(show(a)) in the checkpoint, \(show(b)) in the model"
        }
    }

    /// The precision a checkpoint file stores (its `dtype` metadata, else its first tensor's).
    ///
    /// - Throws: ``CheckpointError/badMetadata(path:key:reason:)`` if neither says, or if the
    ///   `dtype` metadata names neither `F32` nor `F64`.
    public static func storedDType(of file: SafeTensors, path: String) throws -> SafeTensors.DType {
        if let name = file.metadata["dtype"] {
            guard let dtype = SafeTensors.DType(rawValue: name) else {
                throw CheckpointError.badMetadata(path: path, key: "dtype", reason: "expected F32 or F64, got \"\(name.prefix(40))\"")
            }
            return dtype
        }
        if let first = file.tensors.first { return first.dtype }
        throw CheckpointError.badMetadata(path: path, key: "dtype", reason: "missing, and the file has no tensors")
    }
}

/// The `base` metadata: `{"type": "StandardNormal", "features": D}`; a learnable base names its
/// type (`DiagonalGaussian`, `GaussianMixture` with `components`, or `FullCovarianceMixture` with
/// `components` and its covariance `floor`) and stores its parameters as tensors `base.<name>`.
struct BaseDescription: Codable {
    var type: String
    var features: Int
    var components: Int? = nil
    var floor: Double? = nil

    static let types = ["StandardNormal", "DiagonalGaussian", "GaussianMixture", "FullCovarianceMixture"]

    /// The distribution with placeholder parameters (the tensors replace them).
    func distribution<T: Scalar>(_: T.Type) throws -> any BaseDistribution<T> {
        guard features >= 1, features <= SizeLimits.maximumElements else {
            throw InvertNNError.invalidArgument(operation: "base", reason: "features must be ≥ 1, got \(features)")
        }
        switch type {
        case "DiagonalGaussian": return try DiagonalGaussian<T>(features: features)
        case "GaussianMixture":
            guard let components else {
                throw InvertNNError.invalidArgument(operation: "base", reason: "a GaussianMixture needs components")
            }
            guard Double(components) * Double(features) <= Double(SizeLimits.maximumElements) else {
                throw InvertNNError.invalidArgument(operation: "base", reason: "\(components) components of \(features) features is too large")
            }
            return try GaussianMixture<T>(features: features, components: components)
        case "FullCovarianceMixture":
            guard let components, let floor else {
                throw InvertNNError.invalidArgument(operation: "base", reason: "a FullCovarianceMixture needs components and floor")
            }
            guard Double(components) * Double(features) * Double(features) <= Double(SizeLimits.maximumElements) else {
                throw InvertNNError.invalidArgument(operation: "base", reason: "\(components) components of \(features)² factors is too large")
            }
            return try FullCovarianceMixture<T>(features: features, components: components, floor: floor)
        default: return StandardNormal<T>(features: features)
        }
    }
}
