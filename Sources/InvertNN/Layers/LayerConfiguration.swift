/// A layer's ``InvertibleLayer/Configuration`` with its ``InvertibleLayer/typeName``: the
/// element of a container's configuration and the `architecture` of a checkpoint, written as
/// one JSON object `{"type": name, …the configuration's fields}`.
///
/// Decoding looks the type name up in the ``LayerRegistry`` (for precision `T`) and decodes the
/// matching configuration; ``makeLayer()`` rebuilds the layer.
public struct LayerConfiguration<T: Scalar>: Codable, Sendable {
    /// The layer's ``InvertibleLayer/typeName``.
    public let typeName: String
    /// The layer's ``InvertibleLayer/configuration``.
    public let value: any Codable & Sendable
    /// Where a decoded configuration sat in its architecture (`"3.0"`; empty for the root or one
    /// made from a layer), for errors.
    let path: String

    /// The configuration of `layer`.
    public init(_ layer: any InvertibleLayer<T>) {
        typeName = type(of: layer).typeName
        value = layer.configuration
        path = ""
    }

    private enum Keys: String, CodingKey { case type }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(typeName, forKey: .type)
        try value.encode(to: encoder)  // the configuration's fields join "type" in the same object
    }

    /// Decodes `{"type": name, …}` with the registry's decoder for `name`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` (operation `LayerRegistry`)
    ///   naming the layer path for an unknown type or a missing or mistyped field; more layers than
    ///   ``LayerRegistry/maximumLayers``.
    public init(from decoder: any Decoder) throws {
        path = LayerRegistry.layerPath(decoder.codingPath)
        let container = try decoder.container(keyedBy: Keys.self)
        guard let name = try? container.decode(String.self, forKey: .type) else {
            throw LayerRegistry.error(at: path, "no \"type\"")
        }
        typeName = name
        value = try LayerRegistry.decodeConfiguration(named: name, from: decoder, as: T.self, path: path)
    }

    /// The layer this configuration describes, with placeholder parameter values.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` (operation `LayerRegistry`)
    ///   naming the layer path, for an unknown type or hyper-parameters the layer rejects.
    public func makeLayer() throws -> any InvertibleLayer<T> {
        try LayerRegistry.build(self)
    }
}
