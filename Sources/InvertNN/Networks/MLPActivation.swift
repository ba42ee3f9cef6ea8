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

    /// The name used in layer configurations: `"relu"`, `"leakyReLU"` or `"tanh"` (the slope of a
    /// leaky ReLU is stored beside it, see ``slope``).
    public var configurationName: String {
        switch self {
        case .relu: return "relu"
        case .leakyReLU: return "leakyReLU"
        case .tanh: return "tanh"
        }
    }

    /// The negative-side slope of a leaky ReLU, `nil` for the other activations.
    public var slope: Double? {
        if case let .leakyReLU(slope) = self { return slope }
        return nil
    }

    /// Rebuilds an activation from ``configurationName`` and ``slope`` (for checkpoints).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an unknown name or a
    ///   leaky ReLU without a finite, non-negative slope.
    public init(configurationName name: String, slope: Double? = nil) throws {
        switch name {
        case "relu": self = .relu
        case "tanh": self = .tanh
        case "leakyReLU":
            guard let slope, slope >= 0, slope.isFinite else {
                throw InvertNNError.invalidArgument(
                    operation: "MLPActivation", reason: "leakyReLU needs a finite slope ≥ 0, got \(String(describing: slope))")
            }
            self = .leakyReLU(slope: slope)
        default:
            throw InvertNNError.invalidArgument(
                operation: "MLPActivation", reason: "unknown activation \"\(name)\" (expected relu, leakyReLU or tanh)")
        }
    }
}
