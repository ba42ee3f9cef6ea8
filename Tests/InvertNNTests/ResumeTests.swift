import Testing
import InvertNN

/// Resuming training from a checkpoint's training state (issue 7, deliverable 3): exact
/// continuation, the state's round trip through safetensors, and rejection of malformed states.
@Suite struct ResumeTests {
    static let train = TrainerTests.toyData(seed: 1), validation = TrainerTests.toyData(seed: 2, rows: 20)
    static let test = TrainerTests.toyData(seed: 3, rows: 20)

    /// A small coupling flow (2 couplings with invertible-linear mixing) so that every kind of
    /// parameter, including masked Householder entries, goes through the optimizer.
    static func makeTrainer<T: Scalar>(
        _: T.Type = Double.self, epochs: Int, schedule: LearningRateSchedule = .constant, averaging: Double? = 0.9
    ) throws -> Trainer<T> {
        let flow: NormalizingFlow<T> = try FlowPresets.realNVP(features: 3, couplings: 2, hiddenSizes: [6], seed: 11)
        return try Trainer(
            flow: flow, preprocessing: try Dequantization(levels: 5, logitAlpha: 0.05),
            configuration: TrainingConfiguration.plain(
                epochs: epochs, batchSize: 16, learningRate: 0.01, seed: 5, schedule: schedule, parameterAveraging: averaging))
    }

    static func values<T: Scalar>(_ flow: NormalizingFlow<T>) -> [[T]] { flow.parameters.map { $0.value.storage } }

    /// The checkpoint of a finished trainer, written to bytes and read back.
    static func roundTrip<T: Scalar>(_ trainer: Trainer<T>) throws -> Checkpoint<T> {
        let checkpoint = Checkpoint(flow: trainer.flow, preprocessing: trainer.preprocessing, trainingState: trainer.trainingState)
        let bytes = try checkpoint.safeTensors().encode()
        return try Checkpoint<T>(file: try SafeTensors.decode(bytes, path: "mem"), path: "mem")
    }

    /// N epochs in one run and k epochs + checkpoint + resume to N agree bit for bit (Double):
    /// parameters, Adam's moments, the Polyak average and every reported figure. With the
    /// constant schedule the first run may be configured for k epochs; with the cosine schedule,
    /// whose rate depends on the total step count, the first run spans N and stops after k.
    @Test(arguments: [LearningRateSchedule.constant, .cosine(finalFraction: 0.1, warmupSteps: 3)])
    func resumedRunEqualsUninterruptedRun(schedule: LearningRateSchedule) throws {
        let n = 5, k = 2
        let whole = try Self.makeTrainer(epochs: n, schedule: schedule)
        let a = try whole.fit(train: Self.train, validation: Self.validation, test: Self.test)

        let first = try Self.makeTrainer(epochs: schedule == .constant ? k : n, schedule: schedule)
        _ = try first.fit(train: Self.train, validation: Self.validation, test: Self.test, stoppingAfterEpoch: k)
        let saved = try Self.roundTrip(first)
        let state = try #require(saved.trainingState)
        #expect(state.epoch == k)

        // The resumed trainer starts from the checkpoint's model, not from a fresh initialization.
        let resumed = try Trainer(
            flow: saved.flow, preprocessing: saved.preprocessing,
            configuration: TrainingConfiguration.plain(
                epochs: n, batchSize: 16, learningRate: 0.01, seed: 5, schedule: schedule, parameterAveraging: 0.9))
        let b = try resumed.fit(train: Self.train, validation: Self.validation, test: Self.test, resumingFrom: state)

        #expect(b.history.count == n + 1)
        #expect(b.steps == a.steps)
        #expect(b.history.map(\.validation) == a.history.map(\.validation))
        #expect(b.history.map(\.train) == a.history.map(\.train))
        #expect(b.history.map(\.test) == a.history.map(\.test))
        #expect(b.best.epoch == a.best.epoch)
        #expect(Self.values(resumed.flow) == Self.values(whole.flow))
        let sa = try #require(whole.trainingState), sb = try #require(resumed.trainingState)
        #expect(sa.iterate == sb.iterate)
        #expect(sa.firstMoments == sb.firstMoments && sa.secondMoments == sb.secondMoments)
        #expect(sa.average == sb.average && sa.averageWeight == sb.averageWeight)
        #expect(sa.optimizerStep == sb.optimizerStep && sa.shuffleState == sb.shuffleState && sa.noiseState == sb.noiseState)
        // Training did move the parameters after the resume point.
        #expect(sb.iterate != state.iterate)
    }

    /// Every part of the state survives safetensors bit for bit, in both precisions (F32 and F64
    /// tensors), and a checkpoint without it is a model only.
    @Test func stateRoundTripsThroughACheckpoint() throws {
        func check<T: Scalar>(_: T.Type) throws {
            let trainer = try Self.makeTrainer(T.self, epochs: 2)
            _ = try trainer.fit(train: Self.train.converted(to: T.self), validation: Self.validation.converted(to: T.self))
            let original = try #require(trainer.trainingState)
            let loaded = try #require(try Self.roundTrip(trainer).trainingState)
            #expect(loaded.firstMoments == original.firstMoments && loaded.secondMoments == original.secondMoments)
            #expect(loaded.optimizerStep == original.optimizerStep && loaded.optimizerStep == 2 * 4)
            #expect(loaded.iterate == original.iterate && loaded.lastGood == original.lastGood && loaded.best == original.best)
            #expect(loaded.average != nil && loaded.average == original.average && loaded.averageWeight == original.averageWeight)
            #expect(loaded.configuration == original.configuration)
            #expect(loaded.history.map(\.validation) == original.history.map(\.validation))
            #expect(loaded.bestIndex == original.bestIndex && loaded.bestValidation == original.bestValidation)
            #expect(loaded.shuffleState == original.shuffleState && loaded.noiseState == original.noiseState)
            #expect(loaded.epoch == 2 && loaded.globalStep == 8 && loaded.trainingRows == 60)
            let file = try Checkpoint(flow: trainer.flow, preprocessing: trainer.preprocessing, trainingState: original).safeTensors()
            // 6 parameter-sized tensor sets: model, m, v, iterate, last good, average.
            #expect(file.tensors.count == 6 * trainer.flow.parameters.count)
            #expect(Set(file.tensors.map(\.name)).count == file.tensors.count)
            #expect(file.tensors.allSatisfy { $0.dtype.rawValue == T.dtypeName })
            #expect(file.tensor(named: "optimizer.v." + (try LayerRegistry.namedParameters(of: trainer.flow.transform))[0].name) != nil)
            let modelOnly = try Checkpoint(flow: trainer.flow, preprocessing: trainer.preprocessing).safeTensors()
            #expect(try Checkpoint<T>(file: modelOnly, path: "m").trainingState == nil)
        }
        try check(Double.self)
        try check(Float.self)
    }

    /// A trained checkpoint's file with one change applied.
    static func mutated(_ change: (inout SafeTensors) throws -> Void) throws -> SafeTensors {
        let trainer = try Self.makeTrainer(epochs: 1)
        _ = try trainer.fit(train: Self.train, validation: Self.validation)
        var file = try Checkpoint(flow: trainer.flow, preprocessing: trainer.preprocessing, trainingState: trainer.trainingState).safeTensors()
        try change(&file)
        return try SafeTensors.decode(try file.encode(), path: "bad")
    }

    static func replacing(_ prefix: String, in file: inout SafeTensors, _ transform: ([Double]) -> (shape: [Int]?, values: [Double])) throws {
        let index = try #require(file.tensors.firstIndex { $0.name.hasPrefix(prefix) })
        let old = file.tensors[index]
        let (shape, values) = transform(old.values(as: Double.self))
        file.tensors[index] = try SafeTensors.Tensor(name: old.name, shape: shape ?? old.shape, values: values)
    }

    @Test func malformedStatesAreRejected() throws {
        func expectBadState(_ fragment: String, _ change: (inout SafeTensors) throws -> Void) throws {
            let file = try Self.mutated(change)
            do {
                _ = try Checkpoint<Double>(file: file, path: "bad")
                Issue.record("accepted a checkpoint whose training state has: \(fragment)")
            } catch let error as CheckpointError {
                guard case .badTrainingState = error else { Issue.record("\(fragment): wrong error \(error)"); return }
                #expect(error.description.contains(fragment), "\(error.description)")
                #expect(!error.description.contains("\n"))
            }
        }
        try expectBadState("is missing") { $0.tensors.removeAll { $0.name.hasPrefix("optimizer.v.") } }
        try expectBadState("is nan") { try Self.replacing("optimizer.m.", in: &$0) { v in (nil, [.nan] + v.dropFirst()) } }
        try expectBadState("negative") { try Self.replacing("optimizer.v.", in: &$0) { v in (nil, [-1] + v.dropFirst()) } }
        try expectBadState("has shape") { try Self.replacing("trainer.iterate.", in: &$0) { v in ([v.count], v) } }
        try expectBadState("matches no parameter") { $0.tensors.append(try SafeTensors.Tensor(name: "optimizer.m.99.x", shape: [1], values: [0.0])) }
        try expectBadState("version 2") {
            $0.metadata["training_state"] = $0.metadata["training_state"]!.replacingOccurrences(of: "\"version\":1", with: "\"version\":2")
        }
        try expectBadState("not valid JSON") { $0.metadata["training_state"] = "{\"version\":" }
        try expectBadState("shuffle_state") {
            $0.metadata["training_state"] = $0.metadata["training_state"]!.replacingOccurrences(of: "\"shuffle_state\":[", with: "\"shuffle_state\":[\"zz\",")
        }
        try expectBadState("optimizer step") {
            $0.metadata["training_state"] = $0.metadata["training_state"]!.replacingOccurrences(of: "\"optimizer_step\":4", with: "\"optimizer_step\":-4")
        }
        // State tensors without the metadata entry are not silently ignored.
        let stray = try Self.mutated { $0.metadata["training_state"] = nil }
        #expect(throws: CheckpointError.self) { try Checkpoint<Double>(file: stray, path: "stray") }
    }

    /// A state that does not fit the data or the model is refused before anything changes.
    @Test func stateForOtherDataIsRefused() throws {
        let trainer = try Self.makeTrainer(epochs: 1)
        _ = try trainer.fit(train: Self.train, validation: Self.validation)
        let state = try #require(trainer.trainingState)
        let before = Self.values(trainer.flow)
        let other = try Self.makeTrainer(epochs: 3)
        let initial = Self.values(other.flow)
        #expect(throws: InvertNNError.self) {
            try other.fit(train: TrainerTests.toyData(seed: 1, rows: 59), validation: Self.validation, resumingFrom: state)
        }
        #expect(Self.values(other.flow) == initial)
        var shifted = state
        shifted.configuration.seed = 6  // the replayed shuffle no longer matches the saved stream
        #expect(throws: InvertNNError.self) { try other.fit(train: Self.train, validation: Self.validation, resumingFrom: shifted) }
        let small = try Trainer(
            flow: try NormalizingFlow(transform: Sequential<Double>([try Diagonal(features: 3)])),
            preprocessing: try Dequantization(levels: 5, logitAlpha: 0.05), configuration: TrainingConfiguration.plain(epochs: 2))
        #expect(throws: InvertNNError.self) { try small.fit(train: Self.train, validation: Self.validation, resumingFrom: state) }
        #expect(Self.values(trainer.flow) == before)
    }
}
