import RealModule

/// The hidden-layer nonlinearity of an ``MLP`` (the output layer has none).
///
/// Every choice here has a derivative that is a function of the activation's *output* `h`
/// (ReLU and leaky ReLU: `h > 0` exactly when the pre-activation is positive, since the slope is
/// non-negative; tanh: `1 - h²`), so an ``MLP`` keeps only post-activations for its backward pass.
public enum MLPActivation: Equatable, Sendable {
    /// `max(0, z)`; the default, cheapest on large batches (Nair & Hinton 2010).
    case relu
    /// `z` for `z > 0`, `slope · z` otherwise (Maas et al. 2013). `slope` must be finite and
    /// `≥ 0`; ``MLP`` initializers throw otherwise.
    case leakyReLU(slope: Double)
    /// `tanh(z)`.
    case tanh

    /// The gain of He initialization for this nonlinearity: weights of a layer followed by it are
    /// drawn from `N(0, gain² / fanIn)` (He et al. 2015, eq. 10; `2/(1 + slope²)` for leaky ReLU,
    /// and 1 for tanh, as in LeCun initialization).
    public var initializationGainSquared: Double {
        switch self {
        case .relu: return 2
        case let .leakyReLU(slope): return 2 / (1 + slope * slope)
        case .tanh: return 1
        }
    }

    /// A JSON-compatible description (`"relu"`, `"leakyReLU(0.01)"`, `"tanh"`).
    public var configurationName: String {
        switch self {
        case .relu: return "relu"
        case let .leakyReLU(slope): return "leakyReLU(\(slope))"
        case .tanh: return "tanh"
        }
    }
}
