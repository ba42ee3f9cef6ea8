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
    ) throws -> (tensors: [SafeTensors.Tensor], metadata: JSONValue) {
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
        func number(_ v: Double) -> JSONValue { .number(v) }
        func int(_ v: Int) -> JSONValue { .number(Double(v)) }
        func words(_ w: [UInt64]) -> JSONValue { .array(w.map { .string(hex($0)) }) }
        let metadata = JSONValue.object([
            "version": int(TrainingState<T>.formatVersion),
            "epoch": int(state.epoch),
            "global_step": int(state.globalStep),
            "optimizer_step": int(state.optimizerStep),
            "average_weight": number(state.averageWeight),
            "best_index": int(state.bestIndex),
            "best_validation_nll": number(state.bestValidation),
            "consecutive_failures": int(state.consecutiveFailures),
            "learning_rate_scale": number(state.learningRateScale),
            "training_rows": int(state.trainingRows),
            "shuffle_state": words(state.shuffleState),
            "noise_state": words(state.noiseState),
            "configuration": json(state.configuration),
            "history": .array(state.history.map(json)),
        ])
        return (tensors, metadata)
    }

    /// The training state of `file`, or `nil` if it has none (a model only).
    ///
    /// - Throws: ``CheckpointError/badTrainingState(path:reason:)`` naming the first problem.
    static func decodeTrainingState(_ file: SafeTensors, flow: NormalizingFlow<T>, path: String) throws -> TrainingState<T>? {
        guard let text = file.metadata[trainingStateKey] else { return nil }
        func bad(_ reason: String) -> CheckpointError { .badTrainingState(path: path, reason: reason) }
        let root: JSONValue
        do { root = try JSONValue.parse(text, source: trainingStateKey) } catch { throw bad("not valid JSON (\(error))") }
        guard root.objectValue != nil else { throw bad("not a JSON object") }
        guard let version = root["version"]?.intValue else { throw bad("no integer \"version\"") }
        guard version == TrainingState<T>.formatVersion else {
            throw bad("version \(version) is not supported (this library reads \(TrainingState<T>.formatVersion))")
        }
        func int(_ key: String, in object: JSONValue = root) throws -> Int {
            guard let v = object[key]?.intValue else { throw bad("\"\(key)\" must be an integer") }
            return v
        }
        func double(_ key: String, in object: JSONValue = root) throws -> Double {
            guard let v = object[key]?.doubleValue else { throw bad("\"\(key)\" must be a finite number") }
            return v
        }
        func words(_ key: String) throws -> [UInt64] {
            guard let list = root[key]?.arrayValue, list.count == 4 else { throw bad("\"\(key)\" must list 4 hex words") }
            return try list.map {
                guard let s = $0.stringValue, let w = UInt64(s, radix: 16) else { throw bad("\"\(key)\" must list 4 hex words") }
                return w
            }
        }
        guard let configurationJSON = root["configuration"] else { throw bad("no \"configuration\"") }
        let configuration = try decodeConfiguration(configurationJSON, bad: bad)
        guard let historyJSON = root["history"]?.arrayValue else { throw bad("\"history\" must be a list") }
        let history = try historyJSON.map { try decodeReport($0, bad: bad) }

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
            configuration: configuration, epoch: try int("epoch"), globalStep: try int("global_step"),
            optimizerStep: try int("optimizer_step"), firstMoments: first, secondMoments: second, iterate: iterate,
            lastGood: lastGood, best: parameters.map { $0.value.storage }, average: average,
            averageWeight: try double("average_weight"), history: history, bestIndex: try int("best_index"),
            consecutiveFailures: try int("consecutive_failures"), learningRateScale: try double("learning_rate_scale"),
            trainingRows: try int("training_rows"), shuffleState: try words("shuffle_state"), noiseState: try words("noise_state"))
        do { try state.validate(for: parameters) } catch let error as InvertNNError { throw bad("\(error)") }
        return state
    }

    // MARK: JSON of the configuration and the history

    static func json(_ c: TrainingConfiguration) -> JSONValue {
        let schedule: JSONValue
        switch c.schedule {
        case .constant: schedule = .object(["type": .string("constant")])
        case let .cosine(finalFraction, warmupSteps):
            schedule = .object(["type": .string("cosine"), "final_fraction": .number(finalFraction), "warmup_steps": .number(Double(warmupSteps))])
        }
        return .object([
            "epochs": .number(Double(c.epochs)), "batch_size": .number(Double(c.batchSize)),
            "learning_rate": .number(c.learningRate), "seed": .string(hex(c.seed)),
            "max_gradient_norm": c.maxGradientNorm.map { .number($0) } ?? .null, "weight_decay": .number(c.weightDecay),
            "schedule": schedule, "parameter_averaging": c.parameterAveraging.map { .number($0) } ?? .null,
            "evaluation_batch_size": .number(Double(c.evaluationBatchSize)), "evaluation_seed": .string(hex(c.evaluationSeed)),
            "max_consecutive_failures": .number(Double(c.maxConsecutiveFailures)),
            "failure_learning_rate_factor": .number(c.failureLearningRateFactor),
        ])
    }

    static func decodeConfiguration(_ j: JSONValue, bad: (String) -> CheckpointError) throws -> TrainingConfiguration {
        func int(_ key: String) throws -> Int {
            guard let v = j[key]?.intValue else { throw bad("configuration \"\(key)\" must be an integer") }
            return v
        }
        func double(_ key: String) throws -> Double {
            guard let v = j[key]?.doubleValue else { throw bad("configuration \"\(key)\" must be a number") }
            return v
        }
        func optionalDouble(_ key: String) throws -> Double? {
            if case .null? = j[key] { return nil }
            return try double(key)
        }
        func seed(_ key: String) throws -> UInt64 {
            guard let s = j[key]?.stringValue, let v = UInt64(s, radix: 16) else { throw bad("configuration \"\(key)\" must be a hex string") }
            return v
        }
        let schedule: LearningRateSchedule
        switch j["schedule"]?["type"]?.stringValue {
        case "constant": schedule = .constant
        case "cosine":
            guard let f = j["schedule"]?["final_fraction"]?.doubleValue, let w = j["schedule"]?["warmup_steps"]?.intValue else {
                throw bad("configuration \"schedule\": cosine needs final_fraction and warmup_steps")
            }
            schedule = .cosine(finalFraction: f, warmupSteps: w)
        default: throw bad("configuration \"schedule\" must be {\"type\": \"constant\"} or {\"type\": \"cosine\", …}")
        }
        let c = TrainingConfiguration(
            epochs: try int("epochs"), batchSize: try int("batch_size"), learningRate: try double("learning_rate"),
            seed: try seed("seed"), maxGradientNorm: try optionalDouble("max_gradient_norm"), weightDecay: try double("weight_decay"),
            schedule: schedule, parameterAveraging: try optionalDouble("parameter_averaging"),
            evaluationBatchSize: try int("evaluation_batch_size"), evaluationSeed: try seed("evaluation_seed"),
            maxConsecutiveFailures: try int("max_consecutive_failures"),
            failureLearningRateFactor: try double("failure_learning_rate_factor"))
        do { try c.validate() } catch { throw bad("configuration: \(error)") }
        return c
    }

    static func json(_ r: EpochReport) -> JSONValue {
        func split(_ e: SplitEvaluation) -> JSONValue {
            .object(["nll": .number(e.negativeLogLikelihood), "bits_per_dim": .number(e.bitsPerDimension)])
        }
        return .object([
            "epoch": .number(Double(r.epoch)), "steps": .number(Double(r.steps)), "train": split(r.train),
            "validation": split(r.validation), "test": r.test.map(split) ?? .null, "is_best": .bool(r.isBest),
            "samples_per_second": .number(r.samplesPerSecond), "elapsed_seconds": .number(r.elapsedSeconds),
        ])
    }

    static func decodeReport(_ j: JSONValue, bad: (String) -> CheckpointError) throws -> EpochReport {
        func split(_ key: String) throws -> SplitEvaluation? {
            if case .null? = j[key] { return nil }
            guard let nll = j[key]?["nll"]?.doubleValue, let bpd = j[key]?["bits_per_dim"]?.doubleValue else {
                throw bad("history: \"\(key)\" needs finite nll and bits_per_dim")
            }
            return SplitEvaluation(negativeLogLikelihood: nll, bitsPerDimension: bpd)
        }
        guard let epoch = j["epoch"]?.intValue, let steps = j["steps"]?.intValue, let isBest = j["is_best"]?.boolValue,
              let rate = j["samples_per_second"]?.doubleValue, let elapsed = j["elapsed_seconds"]?.doubleValue,
              let train = try split("train"), let validation = try split("validation") else {
            throw bad("history: an entry lacks epoch, steps, train, validation, is_best, samples_per_second or elapsed_seconds")
        }
        return EpochReport(
            epoch: epoch, steps: steps, train: train, validation: validation, test: try split("test"), isBest: isBest,
            samplesPerSecond: rate, elapsedSeconds: elapsed)
    }
}

/// A 64-bit word as 16 lowercase hex digits (JSON numbers hold only 53 bits exactly).
private func hex(_ w: UInt64) -> String {
    let digits = String(w, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
