/// Early-stopping selection: the per-epoch history of a ``Trainer`` run and the parameters of
/// the epoch with the lowest validation NLL so far (epoch 0 is the initial model).
struct EpochSelection<T: Scalar> {
    private(set) var history = [EpochReport]()
    private(set) var bestIndex = 0
    private(set) var bestValidation = Double.infinity
    /// The selected parameters, in the order of ``NormalizingFlow/parameters``.
    private(set) var bestValues: [Matrix<T>]

    init(parameters: [Parameter<T>]) {
        bestValues = parameters.map { $0.value }
    }

    /// Continues the selection of a saved run.
    init(resuming state: TrainingState<T>, parameters: [Parameter<T>]) throws {
        history = state.history
        bestIndex = state.bestIndex
        bestValidation = state.bestValidation
        bestValues = try Trainer<T>.matrices(state.best, like: parameters)
    }

    /// Whether an epoch with this validation NLL (nats per sample) is selected over the best so far.
    func isBest(validation: Double) -> Bool { validation < bestValidation }

    /// Appends `report`; if it is marked best, `parameters` (their current values) become the selection.
    mutating func append(_ report: EpochReport, parameters: [Parameter<T>]) {
        if report.isBest {
            bestValidation = report.validation.negativeLogLikelihood
            bestIndex = history.count
            bestValues = parameters.map { $0.value }
        }
        history.append(report)
    }

    /// Epochs since the selected one (0 if the last epoch is selected).
    var epochsSinceBest: Int { history.count - 1 - bestIndex }

    /// Elapsed seconds of the recorded epochs (0 before the first).
    var elapsedSeconds: Double { history.last?.elapsedSeconds ?? 0 }

    /// Puts the selected parameters into `parameters`.
    func restoreBest(_ parameters: [Parameter<T>]) {
        for (p, v) in zip(parameters, bestValues) { p.value = v }
    }
}
