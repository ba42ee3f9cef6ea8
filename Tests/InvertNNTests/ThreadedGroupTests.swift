import Foundation
import Testing
import InvertNN

/// A value shared by the workers of a test (each writes only its own entry, under `lock`).
final class UncheckedBox<Value>: @unchecked Sendable {
    var value: Value
    let lock = NSLock()
    init(_ value: Value) { self.value = value }
}

/// Data-parallel training without MPI (``ThreadGroup``): 2 worker threads train Glow steps (with
/// the data-dependent ActNorm initialization) to the model of one process with the same global
/// batch; runs are bit-identical; a failing worker ends the run with its error, without a hang.
@Suite(.serialized) struct ThreadedGroupTests {
    static func glow(actNorm: Bool = true) throws -> NormalizingFlow<Double> {
        var g = SeededGenerator(seed: 7)
        let steps: [any InvertibleLayer<Double>] = try (0..<2).flatMap { k -> [any InvertibleLayer<Double>] in
            [try AffineCoupling<Double>(features: 4, hiddenSizes: [16], conditioningBlock: k == 0 ? .first : .second, using: &g),
             try LULinear<Double>(features: 4, using: &g)]
                + (actNorm ? [try ActNorm<Double>(features: 4)] : [])
        }
        return try NormalizingFlow(transform: try Sequential(steps))
    }

    static func trainer(_ flow: NormalizingFlow<Double>) throws -> Trainer<Double> {
        try Trainer(
            flow: flow, preprocessing: .standardization(try Standardization<Double>(means: [0, 0, 0, 0], scales: [1, 1, 1, 1])),
            configuration: TrainingConfiguration.plain(
                epochs: 3, batchSize: 32, learningRate: 5e-3, seed: 1, parameterAveraging: 0.9, evaluationBatchSize: 150))
    }

    @Test func twoThreadRanksEqualOneProcess() throws {
        let train = GlowStepTests.data(rows: 400, seed: 1), validation = GlowStepTests.data(rows: 200, seed: 2)
        let single = try Self.trainer(try Self.glow())
        let one = try single.fit(train: train, validation: validation)

        let flows = try (0..<2).map { _ in try Self.glow() }
        let trainers = UncheckedBox(try flows.map { try Self.trainer($0) })
        let results = UncheckedBox([TrainingResult?](repeating: nil, count: 2))
        try ThreadGroup.run(threads: 2) { member in
            let trainer = trainers.value[member.rank]
            trainer.group = member
            let r = try trainer.fit(train: train, validation: validation)
            results.lock.withLock { results.value[member.rank] = r }
        }
        // Both ranks hold the same model, bit for bit; and it is the one process's to rounding.
        for (p, q) in zip(flows[0].parameters, flows[1].parameters) { #expect(p.value == q.value, "\(p.name)") }
        for (p, q) in zip(single.flow.parameters, flows[0].parameters) {
            let scale = max(p.value.storage.map(abs).max() ?? 0, 1e-300)
            let worst = zip(p.value.storage, q.value.storage).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-12 * scale, "\(p.name): \(worst / scale)")
        }
        let two = try #require(results.value[0])
        for (a, b) in zip(one.history, two.history) {
            #expect(abs(a.validation.negativeLogLikelihood - b.validation.negativeLogLikelihood) <= 1e-12 * abs(a.validation.negativeLogLikelihood))
        }
        #expect(one.best.epoch == two.best.epoch)
    }

    @Test func runsAreBitIdenticalAndSumsAreInRankOrder() throws {
        let train = GlowStepTests.data(rows: 300, seed: 3), validation = GlowStepTests.data(rows: 100, seed: 4)
        func threaded(_ threads: Int) throws -> [Matrix<Double>] {
            let flows = UncheckedBox(try (0..<threads).map { _ in try Self.glow() })
            try ThreadGroup.run(threads: threads) { member in
                let trainer = try Self.trainer(flows.value[member.rank])
                trainer.group = member
                _ = try trainer.fit(train: train, validation: validation)
            }
            return flows.value[0].parameters.map(\.value)
        }
        let first = try threaded(3), second = try threaded(3)
        for (a, b) in zip(first, second) { #expect(a == b) }

        // Three workers' Float values summed: each entry is ((v0 + v1) + v2), on every worker.
        let inputs: [[Float]] = [[1e8, 1, -3], [1, 2, 3], [-1e8, 0.5, 0]]
        let outputs = UncheckedBox([[Float]](repeating: [], count: 3))
        try ThreadGroup.run(threads: 3) { member in
            var v = inputs[member.rank]
            try v.withUnsafeMutableBufferPointer { try member.sum($0) }
            outputs.lock.withLock { outputs.value[member.rank] = v }
        }
        let expected: [Float] = (0..<3).map { i in (inputs[0][i] + inputs[1][i]) + inputs[2][i] }
        for o in outputs.value { #expect(o == expected) }
        #expect(expected[0] == 0)  // 1e8 + 1 rounds to 1e8 in Float: the order is visible
    }

    /// Each worker updates only its shard of the parameters; the optimizer moments, the guard's
    /// copy and the parameter average are gathered at the end of each epoch, so a run stopped
    /// after epoch 1 and resumed from worker 0's training state equals the uninterrupted run bit
    /// for bit (3 workers: the shards end inside parameters). No ActNorm: a fresh replica would
    /// initialize it again from data (a checkpoint marks it initialized; a bare state does not).
    @Test func shardedStateResumesBitIdentically() throws {
        let train = GlowStepTests.data(rows: 300, seed: 5), validation = GlowStepTests.data(rows: 100, seed: 6)
        func threaded(stoppingAfter stop: Int?, resuming state: TrainingState<Double>?) throws -> (TrainingState<Double>, [Matrix<Double>]) {
            let flows = UncheckedBox(try (0..<3).map { _ in try Self.glow(actNorm: false) })
            let states = UncheckedBox([TrainingState<Double>?](repeating: nil, count: 3))
            let start = UncheckedBox(state)
            try ThreadGroup.run(threads: 3) { member in
                let trainer = try Self.trainer(flows.value[member.rank])
                trainer.group = member
                _ = try trainer.fit(train: train, validation: validation, resumingFrom: start.value, stoppingAfterEpoch: stop)
                states.lock.withLock { states.value[member.rank] = trainer.trainingState }
            }
            let saved = try #require(states.value[0])
            // Every worker saves the same complete state.
            for other in states.value.dropFirst() {
                #expect(other?.firstMoments == saved.firstMoments && other?.secondMoments == saved.secondMoments)
                #expect(other?.average == saved.average && other?.lastGood == saved.lastGood)
            }
            return (saved, flows.value[0].parameters.map(\.value))
        }
        let (whole, wholeModel) = try threaded(stoppingAfter: nil, resuming: nil)
        let (first, _) = try threaded(stoppingAfter: 1, resuming: nil)
        #expect(first.epoch == 1 && first.secondMoments.joined().allSatisfy { $0 > 0 || $0 == 0 })
        // The gathered moments are not the zeros of unowned entries: every learnable entry moved.
        #expect(first.secondMoments.joined().filter { $0 > 0 }.count > first.secondMoments.joined().count / 2)
        let (resumed, resumedModel) = try threaded(stoppingAfter: nil, resuming: first)
        #expect(resumed.firstMoments == whole.firstMoments && resumed.secondMoments == whole.secondMoments)
        #expect(resumed.average == whole.average && resumed.iterate == whole.iterate)
        for (a, b) in zip(wholeModel, resumedModel) { #expect(a == b) }
    }

    /// A reduce-scatter leaves each worker the rank-order sum of its shard; an all-gather gives
    /// every worker each owner's shard.
    @Test func reduceScatterAndAllGatherMoveShards() throws {
        let inputs: [[Float]] = [[1e8, 1, -3, 4, 5], [1, 2, 3, 4, 5], [-1e8, 0.5, 0, 4, 5]]
        let outputs = UncheckedBox([[Float]](repeating: [], count: 3))
        let gathered = UncheckedBox([[Float]](repeating: [], count: 3))
        try ThreadGroup.run(threads: 3) { member in
            var v = inputs[member.rank]
            try v.withUnsafeMutableBufferPointer { try member.reduceScatter($0) }
            outputs.lock.withLock { outputs.value[member.rank] = v }
            var w = (0..<5).map { Float(10 * member.rank + $0) }
            try w.withUnsafeMutableBufferPointer { try member.allGather($0) }
            gathered.lock.withLock { gathered.value[member.rank] = w }
        }
        let sums: [Float] = (0..<5).map { i in (inputs[0][i] + inputs[1][i]) + inputs[2][i] }
        for rank in 0..<3 {
            let mine = (5 * rank / 3)..<(5 * (rank + 1) / 3)  // [0, 1), [1, 3), [3, 5)
            #expect(Array(outputs.value[rank][mine]) == Array(sums[mine]), "rank \(rank)")
            #expect(gathered.value[rank] == [0, 11, 12, 23, 24], "rank \(rank)")
        }
    }

    @Test func aFailingWorkerEndsTheRunWithItsError() throws {
        let started = Date()
        #expect(throws: InvertNNError.self) {
            try ThreadGroup.run(threads: 2) { member in
                var v = [1.0, 2.0]
                try v.withUnsafeMutableBufferPointer { try member.sum($0) }
                if member.rank == 1 { throw InvertNNError.invalidArgument(operation: "worker", reason: "bad data") }
                // Worker 0 would wait in this sum for ever without the broken barrier.
                try v.withUnsafeMutableBufferPointer { try member.sum($0) }
            }
        }
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(throws: InvertNNError.self) { try ThreadGroup(threads: 0) }
    }

    /// `invertnn train --threads 2` (Double): the figures of one thread to rounding, the same
    /// JSON line in two runs, and `"threads": 2` in it.
    @Test func trainWithTwoThreadsMatchesOne() throws {
        guard let d = try CLIErrorTests.scratchDirectory("threads-cli") else { return }
        defer { try? FileManager.default.removeItem(atPath: d) }
        func run(_ threads: Int, _ tag: String) throws -> String {
            let r = try CLIErrorTests.run([
                "--data", "digits", "--epochs", "2", "--couplings", "2", "--hidden-sizes", "32", "--precision", "double",
                "--threads", "\(threads)", "--out", "\(d)/\(tag).safetensors", "--samples", "\(d)/\(tag).png", "--json", "--quiet"])
            #expect(r.status == 0, "\(r.stderr)")
            return r.stdout
        }
        let one = try run(1, "one"), two = try run(2, "two"), again = try run(2, "again")
        let nll1 = try #require(ConditionalCLITests.number("test_nll", in: one))
        let nll2 = try #require(ConditionalCLITests.number("test_nll", in: two))
        #expect(abs(nll1 - nll2) <= 1e-9 * abs(nll1), "\(nll1) vs \(nll2)")
        #expect(ConditionalCLITests.number("test_nll", in: again) == nll2)
        #expect(two.contains("\"threads\":2") && one.contains("\"threads\":1"), "\(two)")
    }
}
