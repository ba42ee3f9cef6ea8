import Foundation
import Testing
import InvertNN

/// Ranks simulated by threads of one process: each sum waits for every rank's values and gives
/// all of them the sum in rank order (as a deterministic allreduce does).
final class ThreadedGroupBoard: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var deposits: [[Double]]
    private var arrived = 0, generation = 0
    private var result = [Double]()

    init(size: Int) {
        self.size = size
        deposits = Array(repeating: [], count: size)
    }

    /// The group of `rank`.
    func member(_ rank: Int) -> ThreadedGroup { ThreadedGroup(board: self, rank: rank) }

    fileprivate func sum(rank: Int, _ values: UnsafeMutableBufferPointer<Double>) {
        condition.lock()
        defer { condition.unlock() }
        let round = generation
        deposits[rank] = Array(values)
        arrived += 1
        if arrived == size {
            var total = deposits[0]
            for r in 1..<size { for i in total.indices { total[i] += deposits[r][i] } }
            result = total
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            // The next round cannot complete before this rank has read the result and arrived again.
            while generation == round { condition.wait() }
        }
        for i in values.indices { values[i] = result[i] }
    }
}

/// One rank of a ``ThreadedGroupBoard`` (Double runs only).
final class ThreadedGroup: DataParallelGroup {
    let board: ThreadedGroupBoard
    let rank: Int
    var size: Int { board.size }
    init(board: ThreadedGroupBoard, rank: Int) { (self.board, self.rank) = (board, rank) }
    func sum(_ values: UnsafeMutableBufferPointer<Double>) throws { board.sum(rank: rank, values) }
    func sum(_ values: UnsafeMutableBufferPointer<Float>) throws {
        throw InvertNNError.invalidArgument(operation: "ThreadedGroup", reason: "Double only")
    }
}

/// Data-parallel training without MPI: 2 ranks as threads train Glow steps (with the
/// data-dependent ActNorm initialization) to the model of one process with the same global batch.
@Suite(.serialized) struct ThreadedGroupTests {
    static func glow() throws -> NormalizingFlow<Double> {
        var g = SeededGenerator(seed: 7)
        let steps: [any InvertibleLayer<Double>] = try (0..<2).flatMap { k -> [any InvertibleLayer<Double>] in
            [try AffineCoupling<Double>(features: 4, hiddenSizes: [16], conditioningBlock: k == 0 ? .first : .second, using: &g),
             try LULinear<Double>(features: 4, using: &g),
             try ActNorm<Double>(features: 4)]
        }
        return try NormalizingFlow(transform: try Sequential(steps))
    }

    static func trainer(_ flow: NormalizingFlow<Double>) throws -> Trainer<Double> {
        try Trainer(
            flow: flow, preprocessing: .standardization(try Standardization<Double>(means: [0, 0, 0, 0], scales: [1, 1, 1, 1])),
            configuration: TrainingConfiguration(
                epochs: 3, batchSize: 32, learningRate: 5e-3, seed: 1, parameterAveraging: 0.9, evaluationBatchSize: 150))
    }

    @Test func twoThreadRanksEqualOneProcess() throws {
        let train = GlowStepTests.data(rows: 400, seed: 1), validation = GlowStepTests.data(rows: 200, seed: 2)
        let single = try Self.trainer(try Self.glow())
        let one = try single.fit(train: train, validation: validation)

        let board = ThreadedGroupBoard(size: 2)
        let flows = try (0..<2).map { _ in try Self.glow() }
        let trainers = try flows.map { try Self.trainer($0) }
        for (rank, trainer) in trainers.enumerated() { trainer.group = board.member(rank) }
        nonisolated(unsafe) var results = [TrainingResult?](repeating: nil, count: 2)
        nonisolated(unsafe) var errors = [String]()
        let lock = NSLock()
        let done = DispatchGroup()
        for rank in 0..<2 {
            done.enter()
            nonisolated(unsafe) let trainer = trainers[rank]
            Thread {
                do {
                    let r = try trainer.fit(train: train, validation: validation)
                    lock.withLock { results[rank] = r }
                } catch {
                    lock.withLock { errors.append("\(error)") }
                }
                done.leave()
            }.start()
        }
        #expect(done.wait(timeout: .now() + 120) == .success)
        #expect(errors.isEmpty, "\(errors)")
        // Both ranks hold the same model, bit for bit; and it is the one process's to rounding.
        for (p, q) in zip(flows[0].parameters, flows[1].parameters) { #expect(p.value == q.value, "\(p.name)") }
        for (p, q) in zip(single.flow.parameters, flows[0].parameters) {
            let scale = max(p.value.storage.map(abs).max() ?? 0, 1e-300)
            let worst = zip(p.value.storage, q.value.storage).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-12 * scale, "\(p.name): \(worst / scale)")
        }
        let two = try #require(results[0])
        for (a, b) in zip(one.history, two.history) {
            #expect(abs(a.validation.negativeLogLikelihood - b.validation.negativeLogLikelihood) <= 1e-12 * abs(a.validation.negativeLogLikelihood))
        }
        #expect(one.best.epoch == two.best.epoch)
    }
}
