/// The configuration of a layer whose only hyper-parameter is its feature count (`Bias`,
/// `Sigmoid`, `Tanh`, `PReLU`, `SELU`, `Baird`): `{"features": D}`.
public struct FeatureConfiguration: Codable, Sendable, Equatable {
    /// `D`, the features of `[batch, D]`.
    public var features: Int

    /// The configuration of a layer on `features` features.
    public init(features: Int) { self.features = features }
}
