/// How a run may end before ``TrainingConfiguration/epochs`` and where it leaves resume points:
/// early stopping, periodic checkpoints and interruption (Ctrl-C in the CLI). Handed to
/// ``Trainer/fit(train:validation:test:trainContext:validationContext:testContext:resumingFrom:stoppingAfterEpoch:control:progress:)``.
public struct TrainingControl<T: Scalar> {
    /// Stop when the validation NLL has not improved for this many epochs (early stopping,
    /// Prechelt 1998), or `nil` to run every epoch. The selected (best) epoch is kept as always.
    public var patience: Int?
    /// Call ``checkpoint`` after every epoch that is a multiple of this, or `nil` for never.
    public var checkpointEvery: Int?
    /// Receives the state to resume from after an epoch (``checkpointEvery``): while it runs,
    /// the flow holds the state's best parameters (what a ``Checkpoint`` stores as the model);
    /// the iterate is put back afterwards. An error it throws ends the run.
    public var checkpoint: ((TrainingState<T>) throws -> Void)?
    /// Polled after every optimizer step; `true` ends the run at once. The trainer then holds,
    /// in ``Trainer/trainingState``, the state after the last complete epoch and the flow that
    /// state's best parameters, so the interruption loses at most the epoch in progress.
    public var interruptRequested: (() -> Bool)?

    /// No early stopping, no periodic checkpoints, no interruption.
    public init(
        patience: Int? = nil, checkpointEvery: Int? = nil, checkpoint: ((TrainingState<T>) throws -> Void)? = nil,
        interruptRequested: (() -> Bool)? = nil
    ) {
        self.patience = patience
        self.checkpointEvery = checkpointEvery
        self.checkpoint = checkpoint
        self.interruptRequested = interruptRequested
    }
}

/// Why a run ended before ``TrainingConfiguration/epochs``.
public enum TrainingStop: Sendable, Equatable {
    /// Early stopping: no improvement of the validation NLL for `patience` epochs, after `epoch`.
    case patience(epoch: Int, patience: Int)
    /// ``TrainingControl/interruptRequested`` during epoch `epoch`; the state is that after
    /// epoch `epoch - 1`.
    case interrupted(epoch: Int)
}
