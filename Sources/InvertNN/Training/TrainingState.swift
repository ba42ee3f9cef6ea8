import RealModule

/// Everything a ``Trainer`` needs, beyond the selected model, to continue a run exactly where it
/// stopped: the optimizer, the iterate, the Polyak average, the model selection so far, the
/// training guard and the random streams. ``Trainer/trainingState`` holds it after a run;
/// ``Trainer/fit(train:validation:test:trainContext:validationContext:testContext:resumingFrom:stoppingAfterEpoch:control:progress:)`` continues from it; a
/// ``Checkpoint`` stores it next to the model.
///
/// Arrays of parameter values (``iterate``, ``lastGood``, ``average``, the moments) follow the
/// order of ``NormalizingFlow/parameters``, one row-major array per parameter.
///
/// Continuation is exact: `k` epochs, save, resume to `N` gives bit for bit the parameters and
/// figures of an uninterrupted `N`-epoch run with the same configuration, data and thread count
/// (every stored value is kept bit for bit, and the shuffle and noise streams continue).
public struct TrainingState<T: Scalar> {
    /// Version of the layout written to a checkpoint's `training_state` metadata.
    public static var formatVersion: Int { 1 }

    /// The configuration of the saved run (its seed, batch size, schedule, averaging, …).
    public var configuration: TrainingConfiguration
    /// Epochs completed; a resumed run starts with epoch `epoch + 1`.
    public var epoch: Int
    /// Optimizer steps attempted so far (the schedule's position; failed steps count).
    public var globalStep: Int
    /// Adam's update count t (bias correction).
    public var optimizerStep: Int
    /// Adam's first-moment estimates m.
    public var firstMoments: [[T]]
    /// Adam's second-moment estimates v (all ≥ 0).
    public var secondMoments: [[T]]
    /// The parameters of the last step (the training iterate), which differ from the selected,
    /// best-validation parameters the model holds.
    public var iterate: [[T]]
    /// Training guard: the parameters last known to give a finite loss and gradient.
    public var lastGood: [[T]]
    /// The selected (best-validation) parameters; a checkpoint stores them as its model and does
    /// not repeat them.
    public var best: [[T]]
    /// The uncorrected exponential moving average of the parameters, or `nil` without averaging.
    public var average: [[T]]?
    /// `1 - βᵗ`, the bias correction of ``average`` (0 before the first step).
    public var averageWeight: Double
    /// The per-epoch history so far, epoch 0 first.
    public var history: [EpochReport]
    /// The index in ``history`` of the selected epoch.
    public var bestIndex: Int
    /// Training guard: consecutive failed steps at the end of the saved run.
    public var consecutiveFailures: Int
    /// Training guard: the factor applied to the schedule's learning rate (1 until a failure).
    public var learningRateScale: Double
    /// Rows of the training set (the shuffle permutes `0..<trainingRows`).
    public var trainingRows: Int
    /// The xoshiro256** words of the shuffling generator after ``epoch`` shuffles.
    public var shuffleState: [UInt64]
    /// The xoshiro256** words of the training-noise generator.
    public var noiseState: [UInt64]

    /// The lowest validation NLL so far (nats per sample), that of `history[bestIndex]`.
    public var bestValidation: Double { history.indices.contains(bestIndex) ? history[bestIndex].validation.negativeLogLikelihood : .infinity }

    /// Checks that the state fits `parameters` (counts and sizes) and is internally consistent.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` naming the first problem.
    public func validate(for parameters: [Parameter<T>]) throws {
        func invalid(_ reason: String) -> InvertNNError { .invalidArgument(operation: "TrainingState", reason: reason) }
        try configuration.validate()
        guard epoch >= 0, globalStep >= 0, optimizerStep >= 0, optimizerStep <= globalStep else {
            throw invalid("epoch \(epoch), global step \(globalStep) and optimizer step \(optimizerStep) must be ≥ 0 with optimizer step ≤ global step")
        }
        guard history.count == epoch + 1, history.indices.contains(bestIndex) else {
            throw invalid("a history of \(history.count) epochs (best \(bestIndex)) for \(epoch) completed epochs")
        }
        guard consecutiveFailures >= 0, learningRateScale > 0, learningRateScale <= 1 else {
            throw invalid("training-guard state out of range: \(consecutiveFailures) failures, learning-rate scale \(learningRateScale)")
        }
        guard averageWeight >= 0, averageWeight <= 1 else { throw invalid("average weight \(averageWeight) outside [0, 1]") }
        guard trainingRows >= 1, shuffleState.count == 4, noiseState.count == 4 else {
            throw invalid("\(trainingRows) training rows, generator states of \(shuffleState.count) and \(noiseState.count) words (expected 4)")
        }
        var sets: [(String, [[T]])] = [("first moments", firstMoments), ("second moments", secondMoments),
                                       ("iterate", iterate), ("last good parameters", lastGood), ("best parameters", best)]
        if let average { sets.append(("average", average)) }
        for (what, arrays) in sets {
            guard arrays.count == parameters.count else {
                throw invalid("\(what) for \(arrays.count) parameters, the model has \(parameters.count)")
            }
            for (values, p) in zip(arrays, parameters) {
                guard values.count == p.count else { throw invalid("\(what) of \(p.name): \(values.count) entries, expected \(p.count)") }
                if let i = values.firstIndex(where: { !$0.isFinite }) { throw invalid("\(what) of \(p.name): entry \(i) is \(values[i])") }
            }
        }
        for (values, p) in zip(secondMoments, parameters) {
            if let i = values.firstIndex(where: { $0 < 0 }) { throw invalid("second moments of \(p.name): entry \(i) is negative (\(values[i]))") }
        }
    }
}

extension SeededGenerator {
    /// The four xoshiro256** state words, for saving and restoring a stream mid-way.
    var words: [UInt64] {
        get { [state.0, state.1, state.2, state.3] }
        set { if newValue.count == 4 { state = (newValue[0], newValue[1], newValue[2], newValue[3]) } }
    }
}
