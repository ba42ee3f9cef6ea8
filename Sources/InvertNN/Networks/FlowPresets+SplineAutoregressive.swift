/// The masked autoregressive flow with spline transformers.
extension FlowPresets {
    /// A masked autoregressive flow with rational-quadratic spline transformers (Durkan et al.
    /// 2019, "Neural Spline Flows", RQ-NSF (AR)): `layers` ``SplineMaskedAutoregressive`` layers,
    /// each a ``MADE`` with `hiddenSizes` (ReLU) giving the `3K - 1` spline parameters of every
    /// feature from the features before it, orders changing between layers as `orders` says.
    /// Each layer starts as the identity (equal bins, unit knot derivatives). Density costs one
    /// MADE pass per layer, sampling `D` passes per layer, as with
    /// ``maskedAutoregressiveFlow(features:layers:hiddenSizes:scaleBound:orders:whiteningData:context:seed:as:)``.
    ///
    /// - Parameters:
    ///   - features: D, ≥ 1.
    ///   - layers: number of autoregressive layers, ≥ 1.
    ///   - hiddenSizes: the MADEs' hidden widths (each ≥ D - 1 so every degree occurs).
    ///   - bins: K of each spline, 1...1000.
    ///   - tailBound: B: each spline covers `[-B, B]` of its input, the identity outside.
    ///   - orders: how orders change between layers.
    ///   - whiteningData: as in ``maskedAutoregressiveFlow(features:layers:hiddenSizes:scaleBound:orders:whiteningData:context:seed:as:)``.
    ///   - context: for a conditional flow `p(x | c)`, how the context is encoded (`nil`: unconditional).
    ///   - seed: seed of the random initialization (orders, MADE weights).
    ///   - as: the scalar type (`Float` or `Double`).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for bad sizes or spline
    ///   hyper-parameters; the errors of the whitening initializer.
    public static func splineAutoregressiveFlow<T: Scalar>(
        features: Int, layers: Int = 5, hiddenSizes: [Int] = [64, 64], bins: Int = 8, tailBound: Double = 3,
        orders: AutoregressiveOrders = .alternating, whiteningData: Matrix<T>? = nil, context: ContextEncoder<T>? = nil,
        seed: UInt64 = 0, as _: T.Type = T.self
    ) throws -> NormalizingFlow<T> {
        try autoregressiveFlow(
            operation: "FlowPresets.splineAutoregressiveFlow", features: features, layers: layers, orders: orders,
            whiteningData: whiteningData, context: context, seed: seed
        ) { order, generator in
            try SplineMaskedAutoregressive<T>(
                features: features, hiddenSizes: hiddenSizes, bins: bins, tailBound: T(tailBound), order: order,
                contextFeatures: context?.encodedFeatures ?? 0, using: &generator)
        }
    }
}
