import ArgumentParser
import InvertNN

/// The `--base` choices of `invertnn train`: the latent distribution `p_Z` of the flow.
///
/// `gaussian` is the fixed standard normal; `diagonal` a learnable `N(μ, diag(σ²))`
/// (``DiagonalGaussian``); `mixture[:K]` a learnable mixture of K diagonal Gaussians
/// (``GaussianMixture``, K in 1...1024, default 8). The learnable bases train with the flow
/// and are stored in the checkpoint, so `eval`, `sample` and `density` need no option.
enum BaseOption: Equatable, ExpressibleByArgument {
    case gaussian
    case diagonal
    case mixture(components: Int)

    /// Components of `mixture` without `:K`.
    static let defaultComponents = 8

    init?(argument: String) {
        switch argument {
        case "gaussian": self = .gaussian
        case "diagonal": self = .diagonal
        case "mixture": self = .mixture(components: Self.defaultComponents)
        default:
            let prefix = "mixture:"
            guard argument.hasPrefix(prefix), let k = Int(argument.dropFirst(prefix.count)), (1...1024).contains(k) else { return nil }
            self = .mixture(components: k)
        }
    }

    static var allValueStrings: [String] { ["gaussian", "diagonal", "mixture", "mixture:K (K in 1...1024)"] }

    /// The base distribution of `features` dimensions; a mixture's means are drawn from `seed`.
    ///
    /// - Throws: the errors of the distributions' initializers.
    func distribution<T: Scalar>(features: Int, seed: UInt64) throws -> any BaseDistribution<T> {
        switch self {
        case .gaussian: return StandardNormal<T>(features: features)
        case .diagonal: return try DiagonalGaussian<T>(features: features)
        case let .mixture(components): return try GaussianMixture<T>(features: features, components: components, seed: seed)
        }
    }

    /// `flow` with this base in place of its own (same transform and context encoder).
    ///
    /// - Throws: as ``NormalizingFlow/init(base:transform:contextEncoder:)``.
    func replacingBase<T: Scalar>(of flow: NormalizingFlow<T>, seed: UInt64) throws -> NormalizingFlow<T> {
        if self == .gaussian { return flow }
        return try NormalizingFlow(
            base: distribution(features: flow.features, seed: seed), transform: flow.transform, contextEncoder: flow.contextEncoder)
    }
}
