import Testing
import Foundation
import InvertNN

/// Issue 14, item 19: early stopping, periodic checkpoints and interruption, in the library and
/// through `invertnn train`.
@Suite(.serialized) struct TrainingControlTests {
    /// A flow whose parameters a 1e-12 step cannot move in Float (all of magnitude 0.5, ulp 6e-8):
    /// the validation NLL is the same every epoch, so patience 2 stops after epoch 2 with epoch 0
    /// selected.
    @Test func patienceStopsWhenValidationStalls() throws {
        let layer = try Diagonal<Float>(features: 2, logScale: [0.5, -0.5], bias: [0.5, 0.5])
        let flow = try NormalizingFlow(transform: try Sequential([layer]))
        var rng = SeededGenerator(seed: 1)
        let data = Matrix<Float>.randomNormal(rows: 64, columns: 2, using: &rng)
        let trainer = try Trainer(
            flow: flow, preprocessing: .standardization(try Standardization(means: [0, 0], scales: [1, 1])),
            configuration: TrainingConfiguration.plain(epochs: 10, batchSize: 16, learningRate: 1e-12))
        var checkpoints = [Int]()
        let control = TrainingControl<Float>(patience: 2, checkpointEvery: 1, checkpoint: { checkpoints.append($0.epoch) })
        let result = try trainer.fit(train: data, validation: data.rows(0..<32), control: control)
        #expect(result.stop == .patience(epoch: 2, patience: 2))
        #expect(result.history.map(\.epoch) == [0, 1, 2] && result.best.epoch == 0)
        #expect(checkpoints == [1, 2])
        #expect(trainer.trainingState?.epoch == 2)
    }

    /// An interruption during epoch 3 leaves the state after epoch 2, whose resumption equals
    /// the uninterrupted run bit for bit.
    @Test func interruptionKeepsTheLastCompleteEpoch() throws {
        func makeTrainer() throws -> Trainer<Double> {
            let flow = try FlowPresets.realNVP(features: 2, couplings: 1, hiddenSizes: [4], as: Double.self)
            return try Trainer(
                flow: flow, preprocessing: .standardization(try Standardization(means: [0, 0], scales: [1, 1])),
                configuration: TrainingConfiguration.plain(epochs: 4, batchSize: 16, learningRate: 1e-2))
        }
        let data = try ToyDensity.moons.dataset(count: 200, as: Double.self)
        let whole = try makeTrainer()
        let reference = try whole.fit(train: data.train, validation: data.validation)

        let interrupted = try makeTrainer()
        var steps = 0
        let stepsPerEpoch = (data.train.rows + 15) / 16
        let control = TrainingControl<Double>(interruptRequested: {
            steps += 1
            return steps == 2 * stepsPerEpoch + 3  // during epoch 3
        })
        let partial = try interrupted.fit(train: data.train, validation: data.validation, control: control)
        #expect(partial.stop == .interrupted(epoch: 3))
        let state = try #require(interrupted.trainingState)
        #expect(state.epoch == 2 && partial.history.last?.epoch == 2)
        // The flow holds the state's best parameters, as a checkpoint stores them.
        #expect(interrupted.flow.parameters.map(\.value.storage) == state.best)

        let resumed = try makeTrainer()
        for (p, v) in zip(resumed.flow.parameters, state.best) { try p.assign(Matrix(rows: p.value.rows, columns: p.value.columns, storage: v)) }
        let finished = try resumed.fit(train: data.train, validation: data.validation, resumingFrom: state)
        #expect(finished.history.map(\.validation.negativeLogLikelihood) == reference.history.map(\.validation.negativeLogLikelihood))
        #expect(resumed.flow.parameters.map(\.value.storage) == whole.flow.parameters.map(\.value.storage))
    }

    /// Through the CLI: `--checkpoint-every 1` writes a resumable file during the run; Ctrl-C
    /// (SIGINT) ends it with exit 1, naming the file that holds the last complete epoch.
    @Test func checkpointEveryAndSIGINT() throws {
        guard let executable = CLIErrorTests.executable else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("control-cli") { d in
            let model = "\(d)/run.safetensors"
            let process = Process()
            process.executableURL = executable
            process.arguments = ["train", "--data", "moons", "--epochs", "100000", "--couplings", "1", "--hidden-sizes", "8",
                                 "--checkpoint-every", "1", "--out", model, "--samples", "\(d)/s.png", "--precision", "double"]
            // stderr to a file: a pipe nobody reads while training fills up and blocks the child.
            FileManager.default.createFile(atPath: "\(d)/err.txt", contents: nil)
            FileManager.default.createFile(atPath: "\(d)/out.txt", contents: nil)
            process.standardError = FileHandle(forWritingAtPath: "\(d)/err.txt")
            process.standardOutput = FileHandle(forWritingAtPath: "\(d)/out.txt")
            try process.run()
            var deadline = Date().addingTimeInterval(60)
            while !FileManager.default.fileExists(atPath: model) && Date() < deadline && process.isRunning { usleep(50_000) }
            #expect(FileManager.default.fileExists(atPath: model), "no checkpoint within 60 s")
            kill(process.processIdentifier, SIGINT)
            deadline = Date().addingTimeInterval(30)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning {
                Issue.record("still running 30 s after SIGINT")
                kill(process.processIdentifier, SIGKILL)
            }
            process.waitUntilExit()
            let stderr = try String(contentsOfFile: "\(d)/err.txt", encoding: .utf8)
            let stdout = try String(contentsOfFile: "\(d)/out.txt", encoding: .utf8)
            #expect(process.terminationStatus == 1, "exit \(process.terminationStatus): \(stderr)")
            #expect(stdout.isEmpty)
            #expect(stderr.contains("interrupted during epoch") && stderr.contains("continue with --resume \(model)"), "\(stderr)")
            #expect(stderr.contains("epoch 1: wrote the model with the training state to \(model)"), "\(stderr)")
            let checkpoint = try Checkpoint<Double>.read(path: model)
            #expect((checkpoint.trainingState?.epoch ?? 0) >= 1)
        }
    }
}
