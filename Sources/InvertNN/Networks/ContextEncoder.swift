import RealModule

/// How the raw context `c` of a conditional flow becomes the input of every conditioner:
/// an encoding (identity, standardization or one-hot classes), then an optional embedding network
/// applied once per batch and shared by all layers (as the `embedding_net` of the sbi package).
///
/// Shapes: the raw context is `[batch, features]`; the encoded context the conditioners read is
/// `[batch, encodedFeatures]` (``encodedFeatures``: the embedding's output width, or the width
/// after the encoding when there is no embedding).
///
/// The embedding's parameters are trained with the flow (``parameters``); its gradient comes
/// from the conditioners' `dL/dc` (``LayerContext/conditioningGradient``).
public final class ContextEncoder<T: Scalar> {
    /// How raw context columns are mapped before the embedding.
    public enum Encoding: Sendable, Equatable {
        /// The context is used as given.
        case identity
        /// Per-column `(c - μ) / σ`, fitted on the training contexts (fixed, not learned).
        case standardization(Standardization<T>)
        /// One integer class label per row (one raw column), `0..<classes`, as a one-hot row of
        /// `classes` columns (class-conditional flows).
        case oneHot(classes: Int)
    }

    /// Raw context columns per row.
    public let features: Int
    /// The fixed encoding applied first.
    public let encoding: Encoding
    /// The learned embedding after the encoding, or `nil`.
    public let embedding: MLP<T>?

    /// A context encoder for `features` raw columns.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`, a
    ///   standardization has another width, one-hot encoding is asked for more than one raw column
    ///   or fewer than 2 classes, or the embedding's input width differs from the encoded width.
    public init(features: Int, encoding: Encoding = .identity, embedding: MLP<T>? = nil) throws {
        func invalid(_ reason: String) -> InvertNNError { .invalidArgument(operation: "ContextEncoder", reason: reason) }
        guard features >= 1, features <= SizeLimits.maximumElements else { throw invalid("features must be ≥ 1, got \(features)") }
        let encodedWidth: Int
        switch encoding {
        case .identity:
            encodedWidth = features
        case let .standardization(s):
            guard s.features == features else { throw invalid("the standardization has \(s.features) columns, the context \(features)") }
            encodedWidth = features
        case let .oneHot(classes):
            guard features == 1 else { throw invalid("one-hot encoding reads one label column, the context has \(features)") }
            guard classes >= 2, classes <= 1 << 20 else { throw invalid("one-hot encoding needs 2...\(1 << 20) classes, got \(classes)") }
            encodedWidth = classes
        }
        if let embedding, embedding.inputFeatures != encodedWidth {
            throw invalid("the embedding takes \(embedding.inputFeatures) features, the encoded context has \(encodedWidth)")
        }
        self.features = features
        self.encoding = encoding
        self.embedding = embedding
    }

    /// Width after the encoding, before the embedding.
    public var encodingWidth: Int {
        if case let .oneHot(classes) = encoding { return classes }
        return features
    }

    /// Width of the context every conditioner reads.
    public var encodedFeatures: Int { embedding?.outputFeatures ?? encodingWidth }

    /// The embedding's parameters (empty without an embedding).
    public var parameters: [Parameter<T>] { embedding?.parameters ?? [] }

    /// What ``backward(_:gradient:buffers:)`` needs from ``encode(_:buffers:)``.
    public struct Trace: Sendable {
        /// The encoded context the conditioners read, `[batch, encodedFeatures]`.
        public let output: Matrix<T>
        let embedding: MLP<T>.Trace?
    }

    /// The encoded context of `c` `[batch, features]`.
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` for another width;
    ///   ``InvertNNError/nonFinite(operation:row:column:)`` for NaN or infinity;
    ///   ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for a class label that is not an integer
    ///   in `0..<classes`.
    /// The embedding's activations are written into the step's `buffers` (`nil` allocates them).
    public func encode(_ c: Matrix<T>, buffers: StepBuffers<T>? = nil) throws -> Trace {
        try c.requireColumns(features, "ContextEncoder.encode")
        try c.requireFinite("ContextEncoder.encode")
        var encoded: Matrix<T>
        switch encoding {
        case .identity:
            encoded = c
        case let .standardization(s):
            encoded = try s.standardize(c).output
        case let .oneHot(classes):
            encoded = Matrix(rows: c.rows, columns: classes)
            for i in 0..<c.rows {
                let label = c[i, 0]
                guard label >= 0, label < T(classes), label == label.rounded(.towardZero) else {
                    throw InvertNNError.outOfDomain(
                        layer: "ContextEncoder", value: Double(label), row: i, column: 0,
                        domain: "class labels are integers in 0..<\(classes)")
                }
                encoded[i, Int(label)] = 1
            }
        }
        guard let embedding, c.rows > 0 else { return Trace(output: encoded, embedding: nil) }
        let trace = try embedding.forward(encoded, buffers: buffers)
        return Trace(output: trace.output, embedding: trace)
    }

    /// `dL/dc` `[batch, features]` for `gradient = dL/d(encoded)`; *adds* the embedding's parameter
    /// gradients. One-hot labels are discrete: their gradient is `nil`. The embedding's gradients
    /// are written into the step's `buffers` (`nil` allocates them).
    ///
    /// - Throws: shape mismatches.
    public func backward(_ trace: Trace, gradient: Matrix<T>, buffers: StepBuffers<T>? = nil) throws -> Matrix<T>? {
        var g = gradient
        if let embedding, let t = trace.embedding { g = try embedding.backward(t, outputGradient: gradient, buffers: buffers) }
        switch encoding {
        case .identity:
            return g
        case let .standardization(s):
            for i in 0..<g.rows {
                for j in 0..<g.columns { g[i, j] /= s.scales[j] }
            }
            return g
        case .oneHot:
            return nil
        }
    }
}
