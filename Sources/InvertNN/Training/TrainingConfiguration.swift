import RealModule

/// How the learning rate changes over a run (applied per optimizer step).
public enum LearningRateSchedule: Sendable, Equatable {
    /// The base rate throughout.
    case constant
    /// A linear warm-up from `rate/warmupSteps` to `rate` over `warmupSteps` steps, then a cosine
    /// decay to `finalFraction · rate` at the last step (Loshchilov & Hutter 2017, SGDR, eq. 5,
    /// one cycle without restarts).
    case cosine(finalFraction: Double, warmupSteps: Int)

    /// The rate at 0-based `step` of `totalSteps`.
    public func rate(base: Double, step: Int, totalSteps: Int) -> Double {
        switch self {
        case .constant:
            return base
        case let .cosine(finalFraction, warmupSteps):
            if warmupSteps > 0 && step < warmupSteps { return base * Double(step + 1) / Double(warmupSteps) }
            let span = max(totalSteps - 1 - warmupSteps, 1)
            let progress = min(max(Double(step - warmupSteps) / Double(span), 0), 1)
            let factor = finalFraction + (1 - finalFraction) * 0.5 * (1 + Double.cos(Double.pi * progress))
            return base * factor
        }
    }
}

/// The hyper-parameters of a ``Trainer`` run.
public struct TrainingConfiguration: Sendable, Equatable {
    /// Passes over the training set (≥ 0; 0 only evaluates).
    public var epochs: Int
    /// Samples per optimizer step (the last batch of an epoch may be smaller).
    public var batchSize: Int
    /// Adam's base step size η.
    public var learningRate: Double
    /// Seed of the shuffling and of the training dequantization noise.
    public var seed: UInt64
    /// Global gradient-norm clipping threshold, or `nil` for none.
    public var maxGradientNorm: Double?
    /// Decoupled weight decay λ of Adam (0 = none).
    public var weightDecay: Double
    /// The learning-rate schedule.
    public var schedule: LearningRateSchedule
    /// Decay β of an exponential moving average of the parameters (Polyak & Juditsky 1992;
    /// as used for flows by Kingma & Dhariwal 2018 and Ho et al. 2019), or `nil` for none. With it,
    /// evaluation, model selection and the final parameters use the average
    /// `θ̄ ← βθ̄ + (1-β)θ`, bias-corrected by `1 - βᵗ`, instead of the last iterate.
    public var parameterAveraging: Double?
    /// Rows per evaluation pass (memory only; results do not depend on it beyond rounding).
    public var evaluationBatchSize: Int
    /// Seed of the dequantization noise used for evaluation, fixed so that every epoch (and every
    /// training seed) is scored on the same dequantized data.
    public var evaluationSeed: UInt64
    /// Training guard: after this many consecutive failed steps (non-finite loss, gradient or
    /// updated parameters) training stops with ``InvertNNError/diverged(step:detail:)``.
    public var maxConsecutiveFailures: Int
    /// Training guard: the factor in `(0, 1)` applied to the learning rate after every failed
    /// step, for the rest of the run (default ½: halve it).
    public var failureLearningRateFactor: Double

    /// A configuration. The defaults are the recipe `invertnn train` uses (and tunes per
    /// dataset only in epochs, batch size, learning rate and weight decay): 30 epochs of batch 32
    /// at rate 5e-3, a cosine decay to 2 % after 20 warm-up steps, gradients clipped at norm 100,
    /// no weight decay, and Polyak averaging with β = 0.995 (the RealNVP preset on the 8×8 digits
    /// reaches 2.17 test bits/dim with it).
    public init(
        epochs: Int = 30, batchSize: Int = 32, learningRate: Double = 5e-3, seed: UInt64 = 0,
        maxGradientNorm: Double? = 100, weightDecay: Double = 0,
        schedule: LearningRateSchedule = .cosine(finalFraction: 0.02, warmupSteps: 20),
        parameterAveraging: Double? = 0.995, evaluationBatchSize: Int = 600, evaluationSeed: UInt64 = 0xE7A1,
        maxConsecutiveFailures: Int = 5, failureLearningRateFactor: Double = 0.5
    ) {
        self.maxConsecutiveFailures = maxConsecutiveFailures
        self.failureLearningRateFactor = failureLearningRateFactor
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.seed = seed
        self.maxGradientNorm = maxGradientNorm
        self.weightDecay = weightDecay
        self.schedule = schedule
        self.parameterAveraging = parameterAveraging
        self.evaluationBatchSize = evaluationBatchSize
        self.evaluationSeed = evaluationSeed
    }

    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` naming the first bad field.
    public func validate() throws {
        func invalid(_ reason: String) -> InvertNNError { .invalidArgument(operation: "TrainingConfiguration", reason: reason) }
        guard epochs >= 0 else { throw invalid("epochs must be ≥ 0, got \(epochs)") }
        guard batchSize >= 1 else { throw invalid("batch size must be ≥ 1, got \(batchSize)") }
        guard learningRate > 0, learningRate.isFinite else { throw invalid("learning rate must be positive, got \(learningRate)") }
        guard evaluationBatchSize >= 1 else { throw invalid("evaluation batch size must be ≥ 1, got \(evaluationBatchSize)") }
        guard weightDecay >= 0, weightDecay.isFinite else { throw invalid("weight decay must be ≥ 0, got \(weightDecay)") }
        if let c = maxGradientNorm, !(c > 0 && c.isFinite) { throw invalid("max gradient norm must be positive, got \(c)") }
        guard maxConsecutiveFailures >= 1 else { throw invalid("max consecutive failures must be ≥ 1, got \(maxConsecutiveFailures)") }
        guard failureLearningRateFactor > 0, failureLearningRateFactor < 1 else {
            throw invalid("failure learning-rate factor must lie in (0, 1), got \(failureLearningRateFactor)")
        }
        if let beta = parameterAveraging, !(beta >= 0 && beta < 1) {
            throw invalid("parameter averaging decay must lie in [0, 1), got \(beta)")
        }
        if case let .cosine(finalFraction, warmupSteps) = schedule,
           !(finalFraction >= 0 && finalFraction <= 1) || warmupSteps < 0 {
            throw invalid("cosine schedule needs 0 ≤ finalFraction ≤ 1 and warmupSteps ≥ 0")
        }
    }
}

/// The JSON form stored in a checkpoint's training state: snake_case keys, 64-bit seeds as hex
/// strings, the schedule as `{"type": "constant"}` or `{"type": "cosine", "final_fraction": f,
/// "warmup_steps": n}`, and `null` for an absent norm cap or averaging.
extension TrainingConfiguration: Codable {
    private enum CodingKeys: String, CodingKey {
        case epochs, batchSize = "batch_size", learningRate = "learning_rate", seed, maxGradientNorm = "max_gradient_norm"
        case weightDecay = "weight_decay", schedule, parameterAveraging = "parameter_averaging"
        case evaluationBatchSize = "evaluation_batch_size", evaluationSeed = "evaluation_seed"
        case maxConsecutiveFailures = "max_consecutive_failures", failureLearningRateFactor = "failure_learning_rate_factor"
    }

    private enum ScheduleKeys: String, CodingKey { case type, finalFraction = "final_fraction", warmupSteps = "warmup_steps" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let s = try c.nestedContainer(keyedBy: ScheduleKeys.self, forKey: .schedule)
        let schedule: LearningRateSchedule
        switch try s.decode(String.self, forKey: .type) {
        case "constant": schedule = .constant
        case "cosine":
            schedule = .cosine(finalFraction: try s.decode(Double.self, forKey: .finalFraction), warmupSteps: try s.decode(Int.self, forKey: .warmupSteps))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: s, debugDescription: "must be {\"type\": \"constant\"} or {\"type\": \"cosine\", …}")
        }
        self.init(
            epochs: try c.decode(Int.self, forKey: .epochs), batchSize: try c.decode(Int.self, forKey: .batchSize),
            learningRate: try c.decode(Double.self, forKey: .learningRate), seed: try c.decode(HexWord.self, forKey: .seed).value,
            maxGradientNorm: try c.decodeIfPresent(Double.self, forKey: .maxGradientNorm),
            weightDecay: try c.decode(Double.self, forKey: .weightDecay), schedule: schedule,
            parameterAveraging: try c.decodeIfPresent(Double.self, forKey: .parameterAveraging),
            evaluationBatchSize: try c.decode(Int.self, forKey: .evaluationBatchSize),
            evaluationSeed: try c.decode(HexWord.self, forKey: .evaluationSeed).value,
            maxConsecutiveFailures: try c.decode(Int.self, forKey: .maxConsecutiveFailures),
            failureLearningRateFactor: try c.decode(Double.self, forKey: .failureLearningRateFactor))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(HexWord(seed), forKey: .seed)
        if let maxGradientNorm { try c.encode(maxGradientNorm, forKey: .maxGradientNorm) } else { try c.encodeNil(forKey: .maxGradientNorm) }
        try c.encode(weightDecay, forKey: .weightDecay)
        var s = c.nestedContainer(keyedBy: ScheduleKeys.self, forKey: .schedule)
        switch schedule {
        case .constant: try s.encode("constant", forKey: .type)
        case let .cosine(finalFraction, warmupSteps):
            try s.encode("cosine", forKey: .type)
            try s.encode(finalFraction, forKey: .finalFraction)
            try s.encode(warmupSteps, forKey: .warmupSteps)
        }
        if let parameterAveraging { try c.encode(parameterAveraging, forKey: .parameterAveraging) } else { try c.encodeNil(forKey: .parameterAveraging) }
        try c.encode(evaluationBatchSize, forKey: .evaluationBatchSize)
        try c.encode(HexWord(evaluationSeed), forKey: .evaluationSeed)
        try c.encode(maxConsecutiveFailures, forKey: .maxConsecutiveFailures)
        try c.encode(failureLearningRateFactor, forKey: .failureLearningRateFactor)
    }
}

extension TrainingConfiguration {
    /// The seed of the dequantization noise with which split `split` (0 train, 1 validation,
    /// 2 test) is scored from base seed `evaluationSeed`. ``Trainer`` scores every epoch with it
    /// and `invertnn eval --data NAME` scores a named dataset's splits with it, so the two report
    /// the same figures for the same model.
    public static func evaluationNoiseSeed(split: Int, evaluationSeed: UInt64) -> UInt64 {
        evaluationSeed &+ UInt64(truncatingIfNeeded: split) &* 0xA24B_AED4_963E_E407
    }
}
