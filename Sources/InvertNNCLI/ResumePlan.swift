import ArgumentParser
import Foundation
import InvertNN

/// How `invertnn train --resume` continues a checkpoint: the configuration of the continued run
/// and the notes that tell the user which command-line options the checkpoint overrides.
///
/// The checkpoint's architecture and preprocessing always win over the model options. With a
/// training state, its hyper-parameters (batch size, learning rate, seed, weight decay,
/// averaging, schedule) win too, so that the continuation equals an uninterrupted run; only
/// `--epochs` (the total) comes from the command line. Without one, the options and presets
/// apply as for a fresh run and the optimizer starts fresh.
struct ResumePlan<T: Scalar> {
    var configuration: TrainingConfiguration
    var notes: [String] = []

    /// - Throws: ``CheckpointError/architectureMismatch(path:reason:)`` if the checkpoint models
    ///   another number of dimensions or another kind of data (levels) than `--data`; a
    ///   `ValidationError` if it holds a training state for other data (another dataset name) or
    ///   `--epochs` is below the epochs it has trained.
    init(checkpoint: Checkpoint<T>, path: String, command c: TrainCommand, dataset: LoadedData<T>, preset: ModelPreset) throws {
        let features = checkpoint.flow.features
        guard features == dataset.dimensions else {
            throw CheckpointError.architectureMismatch(
                path: path, reason: "the checkpoint models \(features) dimensions, --data \(c.dataOptions.data) has \(dataset.dimensions)")
        }
        guard checkpoint.preprocessing.levels == dataset.levels else {
            func kind(_ levels: Int?) -> String { levels.map { "integer data with \($0) levels" } ?? "continuous data" }
            throw CheckpointError.architectureMismatch(
                path: path, reason: "the checkpoint was trained on \(kind(checkpoint.preprocessing.levels)), --data \(c.dataOptions.data) holds \(kind(dataset.levels))")
        }
        if let name = checkpoint.dataset?.name, name != dataset.name {
            // A training state continues one run: its selection history (best epoch, its
            // validation NLL and parameters) belongs to the old data and would be compared with
            // the new data's figures. Without a state the parameters are simply trained further.
            guard checkpoint.trainingState == nil else {
                throw ValidationError(
                    "--resume \(path) holds the training state of a run on \(name), but --data is \(dataset.name): resume on the same data, or train further from a checkpoint written without --save-state")
            }
            notes.append("note: the checkpoint was trained on \(name), continuing on \(dataset.name)")
        }
        let ignored = [("--couplings", c.couplings != nil), ("--hidden-sizes", c.hiddenSizes != nil), ("--mixing", c.mixing != nil),
                       ("--reflectors", c.reflectors != nil), ("--initialization", c.initialization != nil),
                       ("--scale-bound", c.scaleBound != nil), ("--logit-alpha", c.logitAlpha != nil), ("--flow", c.flowFamily != nil),
                       ("--bins", c.bins != nil), ("--tail-bound", c.tailBound != nil), ("--base", c.base != nil), ("--transformer", c.transformer != nil)]
            .filter { $0.1 }.map { $0.0 }
        if !ignored.isEmpty {
            notes.append("note: \(ignored.joined(separator: ", ")) ignored: the architecture and preprocessing come from \(path)")
        }
        if let state = checkpoint.trainingState {
            var saved = state.configuration
            var overridden = [String]()
            if let b = c.batchSize, b != saved.batchSize { overridden.append("--batch-size \(b) (checkpoint: \(saved.batchSize))") }
            if let r = c.learningRate, r != saved.learningRate { overridden.append("--learning-rate \(r) (checkpoint: \(saved.learningRate))") }
            if c.seed != 0, c.seed != saved.seed { overridden.append("--seed \(c.seed) (checkpoint: \(saved.seed))") }
            if let weightDecay = c.weightDecay, weightDecay != saved.weightDecay {
                overridden.append("--weight-decay \(weightDecay) (checkpoint: \(saved.weightDecay))")
            }
            let averaging = c.averaging > 0 ? c.averaging : nil
            if c.averaging != TrainingConfiguration().parameterAveraging ?? 0, averaging != saved.parameterAveraging {
                overridden.append("--averaging \(c.averaging) (checkpoint: \(saved.parameterAveraging ?? 0))")
            }
            if !overridden.isEmpty {
                notes.append("note: ignored \(overridden.joined(separator: ", ")): a resumed run keeps the checkpoint's hyper-parameters")
            }
            saved.epochs = c.epochs ?? saved.epochs
            if let requested = c.epochs, requested < state.epoch {
                throw ValidationError(
                    "--epochs \(requested) is below the \(state.epoch) epochs \(path) has already trained; give the total, at least \(state.epoch)")
            }
            configuration = saved
            notes.append(
                "resuming \(path) after epoch \(state.epoch) (optimizer step \(state.optimizerStep), best epoch "
                    + "\(state.history[state.bestIndex].epoch)) up to epoch \(saved.epochs)"
                    + (state.epoch >= saved.epochs ? ": nothing left to train" : ""))
        } else {
            configuration = TrainingConfiguration(
                epochs: c.epochs ?? preset.epochs, batchSize: c.batchSize ?? preset.batchSize,
                learningRate: c.learningRate
                    ?? (checkpoint.flow.base is FullCovarianceMixture<T> ? preset.mixtureLearningRate : preset.learningRate),
                seed: c.seed,
                weightDecay: c.weightDecay ?? preset.weightDecay, parameterAveraging: c.averaging > 0 ? c.averaging : nil)
            notes.append(
                "note: \(path) holds no training state (written without --save-state): training its parameters for "
                    + "\(configuration.epochs) more epoch\(configuration.epochs == 1 ? "" : "s") with a fresh optimizer")
        }
    }
}
