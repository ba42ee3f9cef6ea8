/// A layer that can be rebuilt from its ``InvertibleLayer/Configuration`` alone, so that a
/// checkpoint can restore it (``LayerRegistry``).
///
/// The rebuilt layer has the structure the configuration describes (sizes, permutations, fixed
/// reflectors, activation) and placeholder parameter values; ``Checkpoint`` then assigns the
/// stored values by name.
public protocol RebuildableLayer: InvertibleLayer {
    /// The layer described by `configuration`, with placeholder parameter values.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for hyper-parameters the
    ///   layer's initializer rejects (as that initializer does).
    init(configuration: Configuration) throws
}
