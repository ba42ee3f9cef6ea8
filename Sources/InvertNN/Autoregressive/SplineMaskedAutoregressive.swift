import RealModule

/// A MAF layer with the rational-quadratic spline transformer (Durkan et al. 2019, "Neural Spline
/// Flows", RQ-NSF (AR), §3.2): `x_i = spline(u_i; θ_i(x_<i, c))`, the `3K - 1` unconstrained
/// parameters of feature `i` from a ``MADE``. Checkpoints name it `SplineMaskedAutoregressive`.
public typealias SplineMaskedAutoregressive<T: Scalar> = MaskedAutoregressive<RationalQuadraticSpline<T>>

extension MaskedAutoregressive {
    /// A spline autoregressive layer with a new MADE `D (+ contextFeatures) -> hidden… -> (3K - 1)·D`.
    ///
    /// With `zeroInitializeLastLayer` the output layer's weights start at 0 and its biases at equal
    /// bins and unit knot derivatives (`u_δ = log(e^{1 - m_δ} - 1)`), so the layer starts as the identity.
    ///
    /// - Parameters:
    ///   - features: `D ≥ 1`.
    ///   - hiddenSizes: the MADE's hidden widths.
    ///   - bins: `K` (default 8).
    ///   - tailBound: `B` (default 3); the spline covers `[-B, B]`, the identity elsewhere.
    ///   - order: the autoregressive order (default identity).
    ///   - activation: the MADE's hidden nonlinearity (default ReLU).
    ///   - zeroInitializeLastLayer: start as the identity (default true).
    ///   - contextFeatures: width of the conditioning context (default 0).
    ///   - generator: the caller-owned source of randomness.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` as
    ///   ``RationalQuadraticSpline/init(bins:tailBound:minimumBinWidth:minimumBinHeight:minimumDerivative:)``
    ///   and ``MADE/init(features:parametersPerFeature:hiddenSizes:order:contextFeatures:activation:zeroInitializeLastLayer:using:)`` do.
    public convenience init<S: Scalar>(
        features: Int, hiddenSizes: [Int], bins: Int = 8, tailBound: S = 3, order: [Int]? = nil,
        activation: MLPActivation = .relu, zeroInitializeLastLayer: Bool = true, contextFeatures: Int = 0,
        using generator: inout some RandomNumberGenerator
    ) throws where Transformer == RationalQuadraticSpline<S> {
        let spline = try RationalQuadraticSpline<S>(bins: bins, tailBound: tailBound)
        try self.init(features: features, transformer: spline, hiddenSizes: hiddenSizes, order: order, activation: activation,
                      zeroInitializeLastLayer: zeroInitializeLastLayer, contextFeatures: contextFeatures, using: &generator)
        if zeroInitializeLastLayer, let bias = conditioner.network.biases.last {
            let unitDerivative = S.log(S.exp(1 - spline.minimumDerivative) - 1)
            for column in (2 * bins * features)..<((3 * bins - 1) * features) { bias.value[0, column] = unitDerivative }
        }
    }
}
