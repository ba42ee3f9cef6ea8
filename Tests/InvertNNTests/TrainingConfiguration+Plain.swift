import InvertNN

extension TrainingConfiguration {
    /// A plain run for tests: constant rate, no averaging, and the fixed sizes the tests were
    /// written against (the library's defaults are the CLI's recipe, which these tests do not
    /// need; their assertions compare runs with each other or with known values).
    static func plain(
        epochs: Int = 20, batchSize: Int = 64, learningRate: Double = 1e-3, seed: UInt64 = 0,
        maxGradientNorm: Double? = 100, weightDecay: Double = 0, schedule: LearningRateSchedule = .constant,
        parameterAveraging: Double? = nil, evaluationBatchSize: Int = 600, evaluationSeed: UInt64 = 0xE7A1,
        maxConsecutiveFailures: Int = 5, failureLearningRateFactor: Double = 0.5
    ) -> TrainingConfiguration {
        TrainingConfiguration(
            epochs: epochs, batchSize: batchSize, learningRate: learningRate, seed: seed, maxGradientNorm: maxGradientNorm,
            weightDecay: weightDecay, schedule: schedule, parameterAveraging: parameterAveraging,
            evaluationBatchSize: evaluationBatchSize, evaluationSeed: evaluationSeed,
            maxConsecutiveFailures: maxConsecutiveFailures, failureLearningRateFactor: failureLearningRateFactor)
    }
}
