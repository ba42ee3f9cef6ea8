/// The state of a ``Trainer``'s training guard: the parameters last known to give a finite loss
/// and gradient, and how many steps in a row have failed.
///
/// A failed step (a non-finite loss, gradient or updated parameter) puts ``lastGood`` back,
/// multiplies the learning rate by ``TrainingConfiguration/failureLearningRateFactor`` for the
/// rest of the run and is reported; ``TrainingConfiguration/maxConsecutiveFailures`` failures in
/// a row end the run. A sharded run keeps only its rank's shard of the copies current (the other
/// entries are gathered at the end of each epoch).
struct TrainingGuard<T: Scalar> {
    let maxConsecutiveFailures: Int
    let failureFactor: Double
    /// One row-major array per parameter.
    var lastGood: [[T]]
    /// Where the optimizer's pass writes the parameters before the update in progress; swapped
    /// with ``lastGood`` once the update has run.
    var candidate: [[T]]
    var consecutiveFailures = 0
    /// The factor applied to the schedule's learning rate (1 until a failure).
    var rateScale = 1.0

    init(configuration: TrainingConfiguration, parameters: [Parameter<T>]) {
        maxConsecutiveFailures = configuration.maxConsecutiveFailures
        failureFactor = configuration.failureLearningRateFactor
        lastGood = parameters.map { $0.value.storage }
        candidate = lastGood
    }

    /// Takes the guard of a saved run: its copy, failure count and rate factor.
    mutating func resume(from state: TrainingState<T>, parameters: [Parameter<T>]) throws {
        lastGood = try Trainer<T>.matrices(state.lastGood, like: parameters).map(\.storage)
        consecutiveFailures = state.consecutiveFailures
        rateScale = state.learningRateScale
    }

    /// Puts ``lastGood`` back into `parameters`.
    func restore(_ parameters: [Parameter<T>]) {
        for (p, good) in zip(parameters, lastGood) where p.count > 0 {
            p.value.storage.withUnsafeMutableBufferPointer { theta in
                good.withUnsafeBufferPointer { theta.baseAddress!.update(from: $0.baseAddress!, count: theta.count) }
            }
        }
    }

    /// Records a failed step and returns the event to report.
    ///
    /// - Throws: ``InvertNNError/diverged(step:detail:)`` at the
    ///   ``TrainingConfiguration/maxConsecutiveFailures``-th failure in a row.
    mutating func fail(_ reason: String, epoch: Int, globalStep: Int) throws -> TrainingEvent {
        consecutiveFailures += 1
        rateScale *= failureFactor
        if consecutiveFailures >= maxConsecutiveFailures {
            throw InvertNNError.diverged(
                step: globalStep,
                detail: "\(reason) in epoch \(epoch); \(consecutiveFailures) consecutive failed steps "
                    + "(learning rate scaled down to \(rateScale) of the schedule), giving up")
        }
        return .recovered(epoch: epoch, globalStep: globalStep, reason: reason,
                          consecutiveFailures: consecutiveFailures, learningRateScale: rateScale)
    }

    /// Records a successful step.
    mutating func succeed() { consecutiveFailures = 0 }
}
