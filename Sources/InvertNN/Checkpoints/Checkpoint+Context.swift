import Foundation

/// The `context` metadata entry of a conditional flow's checkpoint: the raw context width, its
/// encoding and the embedding network's shape (its weights are tensors named
/// `context.embedding.<parameter>`). Absent for unconditional flows.
///
///     {"encoding": "standardization", "features": 2, "means": [...], "scales": [...],
///      "embedding": {"activation": "tanh", "sizes": [2, 16, 8]}}
struct ContextDescription: Codable, Equatable {
    /// An embedding MLP's shape.
    struct Embedding: Codable, Equatable {
        var sizes: [Int]
        var activation: String
        var activationSlope: Double?
    }

    var features: Int
    /// `identity`, `standardization` or `one_hot`.
    var encoding: String
    var means: [Double]?
    var scales: [Double]?
    var classes: Int?
    var embedding: Embedding?

    /// The metadata key.
    static let key = "context"

    init<T: Scalar>(_ encoder: ContextEncoder<T>) {
        features = encoder.features
        switch encoder.encoding {
        case .identity:
            encoding = "identity"
        case let .standardization(s):
            encoding = "standardization"
            means = s.means.map { Double($0) }
            scales = s.scales.map { Double($0) }
        case let .oneHot(k):
            encoding = "one_hot"
            classes = k
        }
        embedding = encoder.embedding.map {
            Embedding(sizes: $0.sizes, activation: $0.activation.configurationName, activationSlope: $0.activation.slope)
        }
    }

    /// The encoder this describes, with a fresh embedding whose weights the tensors then replace.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for inconsistent fields.
    func encoder<T: Scalar>(_: T.Type) throws -> ContextEncoder<T> {
        func invalid(_ reason: String) -> InvertNNError { .invalidArgument(operation: "context", reason: reason) }
        guard features >= 1, features <= SizeLimits.maximumElements else { throw invalid("features must be ≥ 1, got \(features)") }
        let kind: ContextEncoder<T>.Encoding
        switch encoding {
        case "identity":
            kind = .identity
        case "standardization":
            guard let means, let scales else { throw invalid("standardization needs means and scales") }
            kind = .standardization(try Standardization<T>(storedMeans: means, scales: scales))
        case "one_hot":
            guard let classes else { throw invalid("one_hot needs classes") }
            kind = .oneHot(classes: classes)
        default:
            throw invalid("unknown encoding \"\(encoding)\" (expected identity, standardization or one_hot)")
        }
        var mlp: MLP<T>? = nil
        if let embedding {
            guard embedding.sizes.count >= 2, embedding.sizes.count <= 64,
                  embedding.sizes.allSatisfy({ $0 >= 1 && $0 <= 1 << 16 }) else {
                throw invalid("embedding sizes must be 2 to 64 widths in 1...65536, got \(embedding.sizes.prefix(8))")
            }
            var generator = SeededGenerator(seed: 0)
            mlp = try MLP<T>(
                sizes: embedding.sizes,
                activation: try MLPActivation(configurationName: embedding.activation, slope: embedding.activationSlope),
                using: &generator)
        }
        return try ContextEncoder(features: features, encoding: kind, embedding: mlp)
    }

    /// The JSON text of this description (sorted keys).
    func json() throws -> String { try JSONCoding.encode(self, operation: "Checkpoint") }

    /// Parses the JSON text of a description.
    static func parse(_ text: String) throws -> ContextDescription {
        try JSONCoding.decode(ContextDescription.self, from: text, source: key)
    }
}

extension Checkpoint {
    /// Every parameter of `flow` with its tensor name: the transform's
    /// (``LayerRegistry/namedParameters(of:)``), then the context embedding's as
    /// `context.embedding.<name>`, then the base distribution's as `base.<name>`, in the order of
    /// ``NormalizingFlow/parameters``.
    static func namedParameters(of flow: NormalizingFlow<T>) throws -> [(name: String, parameter: Parameter<T>)] {
        try LayerRegistry.namedParameters(of: flow.transform)
            + (flow.contextEncoder?.parameters ?? []).map { ("context.embedding.\($0.name)", $0) }
            + flow.base.parameters.map { ("base.\($0.name)", $0) }
    }

    /// The context encoder stored in `metadata`, `nil` if there is none.
    static func contextEncoder(_ metadata: [String: String], path: String) throws -> ContextEncoder<T>? {
        guard let text = metadata[ContextDescription.key] else { return nil }
        do {
            return try ContextDescription.parse(text).encoder(T.self)
        } catch {
            throw CheckpointError.badMetadata(path: path, key: ContextDescription.key, reason: "\(error)")
        }
    }
}
