/// The Gaussian baseline of a training run, scored like ``Trainer/evaluate(_:context:noiseSeed:)``.
extension FullCovarianceGaussian {
    /// Fits the Gaussian to the training split and scores each split in the units ``Trainer``
    /// reports a flow in, so that the two compare directly.
    ///
    /// Continuous data (``Preprocessing/standardization(_:)``): the Gaussian of the data as given
    /// (fitted to the standardized values, the standardization's log-det added: the same density).
    /// Integer data (``Preprocessing/dequantization(_:)``): the Gaussian of the dequantized
    /// `x = (k + u)/K ∈ [0, 1)^D` (without the logit), the noise of split `s` drawn from
    /// `SeededGenerator(seed: noiseSeeds[s])` exactly as ``Trainer`` draws it, the training split
    /// with `noiseSeeds[0]`; its ``SplitEvaluation/bitsPerDimension`` is then the same bound on
    /// the discrete data's bits/dim as a flow's.
    ///
    /// - Parameters:
    ///   - preprocessing: the run's preprocessing.
    ///   - splits: `[n_s, D]` raw data of each split; `splits[0]` is the training split.
    ///   - noiseSeeds: one seed per split (``TrainingConfiguration/evaluationNoiseSeed(split:evaluationSeed:)``).
    /// - Returns: one evaluation per split, NLL in nats per sample.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if the counts of splits and
    ///   seeds differ or there is no split; the errors of ``init(fitting:)`` (a constant column:
    ///   ``InvertNNError/singular(operation:detail:)``) and of the preprocessing.
    public static func baseline<T: Scalar>(
        preprocessing: Preprocessing<T>, splits: [Matrix<T>], noiseSeeds: [UInt64]
    ) throws -> (gaussian: FullCovarianceGaussian, evaluations: [SplitEvaluation]) {
        guard !splits.isEmpty, splits.count == noiseSeeds.count else {
            throw InvertNNError.invalidArgument(
                operation: "FullCovarianceGaussian.baseline",
                reason: "needs one noise seed per split and at least one split, got \(splits.count) splits, \(noiseSeeds.count) seeds")
        }
        func input(_ data: Matrix<T>, seed: UInt64) throws -> LayerOutput<T> {
            var noise = SeededGenerator(seed: seed)
            switch preprocessing {
            case let .dequantization(d):
                return LayerOutput(output: try d.dequantize(data, using: &noise), logAbsDet: [T](repeating: 0, count: data.rows))
            case .standardization:
                return try preprocessing.transform(data, using: &noise)
            }
        }
        let inputs = try zip(splits, noiseSeeds).map { try input($0, seed: $1) }
        let gaussian = try FullCovarianceGaussian(fitting: inputs[0].output)
        let evaluations = try inputs.map { split in
            let logDensity = try gaussian.logDensity(split.output)
            var total = 0.0
            for i in 0..<logDensity.count { total -= logDensity[i] + Double(split.logAbsDet[i]) }
            let nll = total / Double(max(split.output.rows, 1))
            return SplitEvaluation(
                negativeLogLikelihood: nll,
                bitsPerDimension: try preprocessing.bitsPerDimension(nllNats: nll, dimensions: split.output.columns))
        }
        return (gaussian, evaluations)
    }
}
