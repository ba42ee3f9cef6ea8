/// Densities and samples in the units of the data as given: a checkpoint holds the flow and its
/// ``Preprocessing``, so it applies the preprocessing and adds its log-determinant itself.
extension Checkpoint {
    /// The log-density of each row of `data` as given, in nats.
    ///
    /// - Continuous data (standardization): `log p(x) = log p_flow(s(x)) + log|det ∂s/∂x|`, exact.
    /// - Discrete data (dequantization, `K` levels): `log p_flow(y) + log|det ∂y/∂v| - D·log K`
    ///   with `v = (k + u)/K` and one uniform draw `u` per entry from `generator`: a one-sample
    ///   estimate of the dequantization bound `E_u[…] ≤ log P(k)` on the probability mass of the
    ///   integer row (Theis et al. 2016, §3.1). The mean over a split is minus the NLL that
    ///   ``Trainer/evaluate(_:context:noiseSeed:)`` reports, in these units (`invertnn eval
    ///   --per-row` writes the same figures).
    ///
    /// - Parameters:
    ///   - data: `[n, features]`: integer levels (discrete) or raw values (continuous).
    ///   - context: `[n, contextFeatures]` for a conditional flow, `nil` otherwise.
    ///   - generator: the dequantization noise (unused for continuous data).
    /// - Returns: `n` log-densities (nats; NaN or infinite only for points the model cannot score).
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` for another width;
    ///   ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for a value that is not a
    ///   level; the flow's errors (a missing or extra context).
    @_specialize(where T == Float, G == SeededGenerator)
    @_specialize(where T == Double, G == SeededGenerator)
    public func logProbability<G: RandomNumberGenerator>(
        ofData data: Matrix<T>, context: Matrix<T>? = nil, using generator: inout G
    ) throws -> [Double] {
        try data.requireColumns(flow.features, "Checkpoint.logProbability(ofData:)")
        let pre = try preprocessing.transform(data, using: &generator)
        let logP = try flow.logProbability(pre.output, context: context)
        return (0..<data.rows).map {
            preprocessing.dataLogDensity(Double(logP[$0]) + Double(pre.logAbsDet[$0]), dimensions: data.columns)
        }
    }

    /// The exact log-density of each row of continuous `data` as given, in nats (see
    /// ``logProbability(ofData:context:using:)``).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for a model of discrete data,
    ///   whose figure needs dequantization noise (pass a generator); otherwise as
    ///   ``logProbability(ofData:context:using:)``.
    public func logProbability(ofData data: Matrix<T>, context: Matrix<T>? = nil) throws -> [Double] {
        guard !preprocessing.isDiscrete else {
            throw InvertNNError.invalidArgument(
                operation: "Checkpoint.logProbability(ofData:)",
                reason: "the model is of discrete data: its log-probability bound needs dequantization noise (pass `using:` a generator)")
        }
        var unused = SeededGenerator(seed: 0)
        return try logProbability(ofData: data, context: context, using: &unused)
    }

    /// `count` samples in the units of the data: the flow's samples mapped back through the
    /// preprocessing (destandardized, or the logit inverted and rounded down to integer levels).
    ///
    /// - Returns: `[count, features]`.
    /// - Throws: as ``NormalizingFlow/sample(count:context:temperature:using:)``.
    public func sample<G: RandomNumberGenerator>(
        count: Int, context: Matrix<T>? = nil, temperature: T = 1, using generator: inout G
    ) throws -> Matrix<T> {
        try preprocessing.dataUnits(try flow.sample(count: count, context: context, temperature: temperature, using: &generator))
    }
}
