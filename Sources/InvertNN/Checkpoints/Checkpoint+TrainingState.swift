import RealModule

/// The optional training state of a checkpoint: what `invertnn train --resume` needs to continue
/// a run exactly (``TrainingState``).
///
/// Tensors, in the model's dtype and each parameter's shape (names unique, so numpy and the
/// reference `safetensors` reader load them like any other tensor):
/// `optimizer.m.<parameter>` and `optimizer.v.<parameter>` (Adam's moments, Kingma & Ba 2015,
/// Algorithm 1), `trainer.iterate.<parameter>` (the last step's parameters),
/// `trainer.last_good.<parameter>` (the training guard's fallback) and, with Polyak averaging,
/// `trainer.average.<parameter>` (the uncorrected moving average). The selected parameters are
/// the model tensors themselves.
///
/// Metadata `training_state`, a JSON object: `version` (``TrainingState/formatVersion``),
/// `epoch`, `global_step`, `optimizer_step`, `average_weight`, `best_index`,
/// `best_validation_nll`, `consecutive_failures`, `learning_rate_scale`, `training_rows`,
/// `shuffle_state` and `noise_state` (four 16-digit hex words each), `configuration` (the run's
/// hyper-parameters; 64-bit seeds as hex strings) and `history` (one object per epoch). Numbers
/// are written in the shortest form that reads back to the same Double, so the state is exact.
extension Checkpoint {
    /// The metadata key of the training state.
    public static var trainingStateKey: String { "training_state" }

    static var statePrefixes: [String] { ["optimizer.m.", "optimizer.v.", "trainer.iterate.", "trainer.last_good.", "trainer.average."] }

    /// The model tensors of `file`: without a `training_state` entry all of them (so stray
    /// state tensors are reported as unexpected), else those not named like state tensors.
    static func modelPart(of file: SafeTensors) -> SafeTensors {
        guard file.metadata[trainingStateKey] != nil else { return file }
        let model = file.tensors.filter { t in !statePrefixes.contains { t.name.hasPrefix($0) } }
        return SafeTensors(tensors: model, metadata: file.metadata)
    }

    static func encode(
        _ state: TrainingState<T>, named: [(name: String, parameter: Parameter<T>)], flow: NormalizingFlow<T>
    ) throws -> (tensors: [SafeTensors.Tensor], metadata: StateMetadata) {
        let parameters = flow.parameters
        try state.validate(for: parameters)
        // Names in flow.parameters order (the order of every array of the state).
        let names: [String] = try parameters.map { p in
            guard let entry = named.first(where: { $0.parameter === p }) else {
                throw InvertNNError.invalidArgument(operation: "Checkpoint", reason: "parameter \(p.name) has no checkpoint name")
            }
            return entry.name
        }
        var tensors = [SafeTensors.Tensor]()
        func add(_ prefix: String, _ arrays: [[T]]) throws {
            for (index, values) in arrays.enumerated() {
                tensors.append(try SafeTensors.Tensor(name: prefix + names[index], shape: parameters[index].value.shape, values: values))
            }
        }
        try add("optimizer.m.", state.firstMoments)
        try add("optimizer.v.", state.secondMoments)
        try add("trainer.iterate.", state.iterate)
        try add("trainer.last_good.", state.lastGood)
        if let average = state.average { try add("trainer.average.", average) }
        let metadata = StateMetadata(
            version: TrainingState<T>.formatVersion, epoch: state.epoch, globalStep: state.globalStep,
            optimizerStep: state.optimizerStep, averageWeight: state.averageWeight, bestIndex: state.bestIndex,
            bestValidationNLL: state.bestValidation, consecutiveFailures: state.consecutiveFailures,
            learningRateScale: state.learningRateScale, trainingRows: state.trainingRows,
            shuffleState: state.shuffleState.map(HexWord.init), noiseState: state.noiseState.map(HexWord.init),
            configuration: state.configuration, history: state.history)
        return (tensors, metadata)
    }

    /// The training state of `file`, or `nil` if it has none (a model only).
    ///
    /// - Throws: ``CheckpointError/badTrainingState(path:reason:)`` naming the first problem.
    static func decodeTrainingState(_ file: SafeTensors, flow: NormalizingFlow<T>, path: String) throws -> TrainingState<T>? {
        guard let text = file.metadata[trainingStateKey] else { return nil }
        func bad(_ reason: String) -> CheckpointError { .badTrainingState(path: path, reason: reason) }
        let bytes = Array(text.utf8)
        let version: Int
        do { version = try JSONCoding.decode(StateVersion.self, from: bytes, source: trainingStateKey).version } catch {
            throw bad(Self.reason(error))
        }
        guard version == TrainingState<T>.formatVersion else {
            throw bad("version \(version) is not supported (this library reads \(TrainingState<T>.formatVersion))")
        }
        let root: StateMetadata
        do { root = try JSONCoding.decode(StateMetadata.self, from: bytes, source: trainingStateKey) } catch { throw bad(Self.reason(error)) }
        guard root.shuffleState.count == 4 else { throw bad("\"shuffle_state\" must list 4 hex words") }
        guard root.noiseState.count == 4 else { throw bad("\"noise_state\" must list 4 hex words") }
        let configuration = root.configuration
        do { try configuration.validate() } catch { throw bad("configuration: \(error)") }
        let history = root.history

        // Tensors, in flow.parameters order, checked for presence, shape and finiteness.
        let named: [(name: String, parameter: Parameter<T>)]
        do { named = try Self.namedParameters(of: flow) } catch { throw bad("\(error)") }
        let parameters = flow.parameters
        var byName = [String: SafeTensors.Tensor]()
        for t in file.tensors where statePrefixes.contains(where: { t.name.hasPrefix($0) }) { byName[t.name] = t }
        func arrays(_ prefix: String) throws -> [[T]] {
            try parameters.map { p in
                guard let name = named.first(where: { $0.parameter === p })?.name else { throw bad("parameter \(p.name) has no name") }
                guard let tensor = byName.removeValue(forKey: prefix + name) else { throw bad("tensor \(prefix + name) is missing") }
                guard tensor.shape == p.value.shape else {
                    throw bad("tensor \(prefix + name) has shape \(tensor.shape), the model expects \(p.value.shape)")
                }
                let values: [T] = tensor.values()
                if let i = values.firstIndex(where: { !$0.isFinite }) { throw bad("tensor \(prefix + name): entry \(i) is \(values[i])") }
                return values
            }
        }
        let first = try arrays("optimizer.m.")
        let second = try arrays("optimizer.v.")
        let iterate = try arrays("trainer.iterate.")
        let lastGood = try arrays("trainer.last_good.")
        let hasAverage = byName.keys.contains { $0.hasPrefix("trainer.average.") }
        let average = hasAverage ? try arrays("trainer.average.") : nil
        if let extra = byName.keys.sorted().first { throw bad("tensor \(extra) matches no parameter of the model") }

        let state = TrainingState<T>(
            configuration: configuration, epoch: root.epoch, globalStep: root.globalStep,
            optimizerStep: root.optimizerStep, firstMoments: first, secondMoments: second, iterate: iterate,
            lastGood: lastGood, best: parameters.map { $0.value.storage }, average: average,
            averageWeight: root.averageWeight, history: history, bestIndex: root.bestIndex,
            consecutiveFailures: root.consecutiveFailures, learningRateScale: root.learningRateScale,
            trainingRows: root.trainingRows, shuffleState: root.shuffleState.map(\.value), noiseState: root.noiseState.map(\.value))
        do { try state.validate(for: parameters) } catch let error as InvertNNError { throw bad("\(error)") }
        return state
    }

    /// The reason of a training-state decoding error: the path and problem for malformed JSON.
    static func reason(_ error: any Error) -> String {
        if case let InvertNNError.malformedData(_, _, reason) = error { return reason }
        return "\(error)"
    }
}

/// The `version` of a training state, read before the rest so that a newer format is reported as such.
struct StateVersion: Decodable {
    let version: Int
}

/// The `training_state` metadata object (keys as documented on the extension above).
struct StateMetadata: Codable {
    var version: Int
    var epoch: Int
    var globalStep: Int
    var optimizerStep: Int
    var averageWeight: Double
    var bestIndex: Int
    var bestValidationNLL: Double
    var consecutiveFailures: Int
    var learningRateScale: Double
    var trainingRows: Int
    var shuffleState: [HexWord]
    var noiseState: [HexWord]
    var configuration: TrainingConfiguration
    var history: [EpochReport]

    enum CodingKeys: String, CodingKey {
        case version, epoch, globalStep = "global_step", optimizerStep = "optimizer_step", averageWeight = "average_weight"
        case bestIndex = "best_index", bestValidationNLL = "best_validation_nll", consecutiveFailures = "consecutive_failures"
        case learningRateScale = "learning_rate_scale", trainingRows = "training_rows", shuffleState = "shuffle_state"
        case noiseState = "noise_state", configuration, history
    }
}
