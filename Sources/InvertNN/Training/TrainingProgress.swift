import RealModule

/// Negative log-likelihood of one data split, with every preprocessing Jacobian included.
public struct SplitEvaluation: Sendable, Equatable, Codable {
    /// `-log p(x)` per sample, in nats, for the dequantized data `x = (k + u)/K ∈ [0, 1)^D`.
    public let negativeLogLikelihood: Double
    /// The same in bits per dimension: of the discrete data (``bitsPerDimension(nllNats:dimensions:levels:)``)
    /// for integer data, `NLL / (D·ln 2)` for continuous data (``Preprocessing/bitsPerDimension(nllNats:dimensions:)``).
    public let bitsPerDimension: Double

    /// ``bitsPerDimension`` in nats per dimension (`× ln 2`), the usual unit for continuous data.
    public var natsPerDimension: Double { bitsPerDimension * Double.log(2) }
}

/// The state of training after one optimizer step, for progress display.
public struct StepProgress: Sendable {
    /// 1-based epoch.
    public let epoch: Int
    /// Epochs of the run.
    public let epochs: Int
    /// 1-based step within the epoch.
    public let step: Int
    /// Optimizer steps per epoch.
    public let stepsPerEpoch: Int
    /// Steps since the start of the run.
    public let globalStep: Int
    /// Mean training NLL of the epoch so far, nats per sample of `x` (preprocessing included).
    public let runningNegativeLogLikelihood: Double
    /// The same in bits per dimension.
    public let runningBitsPerDimension: Double
    /// Training samples per second over the epoch so far (evaluation excluded).
    public let samplesPerSecond: Double
    /// The learning rate of the step.
    public let learningRate: Double
}

/// The evaluation after one epoch.
public struct EpochReport: Sendable, Codable {
    /// 1-based epoch (0 for the evaluation before training).
    public let epoch: Int
    /// Optimizer steps since the start of the run.
    public let steps: Int
    /// The training set, scored with the fixed evaluation noise.
    public let train: SplitEvaluation
    /// The validation set (selects the kept parameters).
    public let validation: SplitEvaluation
    /// `nil` when no test set was given.
    public let test: SplitEvaluation?
    /// Whether this epoch has the lowest validation NLL so far (its parameters are kept).
    public let isBest: Bool
    /// Training samples per second during the epoch.
    public let samplesPerSecond: Double
    /// Seconds since the start of the run.
    public let elapsedSeconds: Double
}

/// What ``Trainer/fit(train:validation:test:trainContext:validationContext:testContext:resumingFrom:stoppingAfterEpoch:control:progress:)`` reports while it runs.
public enum TrainingEvent: Sendable {
    /// After every optimizer step.
    case step(StepProgress)
    /// After the evaluation that closes an epoch (and once before training, epoch 0).
    case epoch(EpochReport)
    /// A step whose loss, gradient or updated parameters were not finite was skipped: the last
    /// good parameters were restored and the learning rate multiplied by
    /// ``TrainingConfiguration/failureLearningRateFactor`` (now `learningRateScale` times the
    /// schedule's rate). `reason` says what was not finite; `consecutiveFailures` counts up to
    /// ``TrainingConfiguration/maxConsecutiveFailures``.
    case recovered(epoch: Int, globalStep: Int, reason: String, consecutiveFailures: Int, learningRateScale: Double)
}

/// The outcome of ``Trainer/fit(train:validation:test:trainContext:validationContext:testContext:resumingFrom:stoppingAfterEpoch:control:progress:)``.
public struct TrainingResult: Sendable {
    /// One report per epoch, starting with epoch 0 (before any step).
    public let history: [EpochReport]
    /// The report of the epoch with the lowest validation NLL, whose parameters the flow holds
    /// at the end.
    public let best: EpochReport
    /// Optimizer steps performed.
    public let steps: Int
    /// Wall-clock seconds of the whole run.
    public let seconds: Double
    /// Why the run ended early (``TrainingControl``), or `nil` when it ran its epochs.
    public var stop: TrainingStop? = nil
}

extension SplitEvaluation {
    /// Checkpoint keys: `nll` and `bits_per_dim`.
    private enum CodingKeys: String, CodingKey { case negativeLogLikelihood = "nll", bitsPerDimension = "bits_per_dim" }
}

extension EpochReport {
    /// Checkpoint keys (snake_case); `test` is `null` when there is no test split.
    private enum CodingKeys: String, CodingKey {
        case epoch, steps, train, validation, test, isBest = "is_best", samplesPerSecond = "samples_per_second"
        case elapsedSeconds = "elapsed_seconds"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(steps, forKey: .steps)
        try c.encode(train, forKey: .train)
        try c.encode(validation, forKey: .validation)
        if let test { try c.encode(test, forKey: .test) } else { try c.encodeNil(forKey: .test) }
        try c.encode(isBest, forKey: .isBest)
        try c.encode(samplesPerSecond, forKey: .samplesPerSecond)
        try c.encode(elapsedSeconds, forKey: .elapsedSeconds)
    }
}
