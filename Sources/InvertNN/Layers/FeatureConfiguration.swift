/// The configuration of a layer whose only hyper-parameter is its feature count (``Bias``):
/// `{"features": D}`. (An ``Activation`` writes the same object when its map has no
/// hyper-parameters.)
public struct FeatureConfiguration: Codable, Sendable, Equatable {
    /// `D`, the features of `[batch, D]`.
    public var features: Int

    /// The configuration of a layer on `features` features.
    public init(features: Int) { self.features = features }
}
