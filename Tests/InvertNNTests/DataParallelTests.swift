import Foundation
import Testing
import InvertNN

/// Data-parallel training without MPI: the weighted shares of a batch sum to the whole batch's
/// gradient (the MPI runs themselves are in ``MPITrainingTests``).
@Suite struct DataParallelTests {
    @Test func weightedSharesSumToTheWholeBatchGradient() throws {
        let data = try Digits.load(as: Double.self)
        let flow = try FlowPresets.realNVP(features: 64, couplings: 2, hiddenSizes: [16], seed: 3, as: Double.self)
        var noise = SeededGenerator(seed: 5)
        let batch = try Dequantization<Double>(levels: 17, logitAlpha: 0.05).transform(data.train.rows(0..<33), using: &noise).output
        flow.zeroGradients()
        let whole = try flow.accumulateNegativeLogLikelihoodGradient(batch)
        let expected = flow.parameters.map { $0.gradient.storage }
        var loss = 0.0
        var summed = flow.parameters.map { [Double](repeating: 0, count: $0.count) }
        for rank in 0..<2 {
            let share = DataParallelShareProbe(rank: rank, size: 2).share(of: 33)
            flow.zeroGradients()
            let l = try flow.accumulateNegativeLogLikelihoodGradient(batch.rows(share))
            let w = Double(share.count) / 33
            loss += w * l
            for (i, p) in flow.parameters.enumerated() { for j in 0..<p.count { summed[i][j] += w * p.gradient.storage[j] } }
        }
        #expect(abs(loss - whole) <= 1e-13 * abs(whole))
        // Against the largest entry of the whole gradient: the reflectors' gradient is zero at
        // this start up to rounding (the base density is rotation-invariant), so its own scale is noise.
        let scale = expected.joined().map(abs).max() ?? 0
        #expect(scale > 1e-3)
        for (i, p) in flow.parameters.enumerated() {
            let worst = zip(summed[i], expected[i]).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-13 * scale, "\(p.name): \(worst / scale)")
        }
    }
}

/// A group that only answers ``DataParallelGroup/share(of:)``.
final class DataParallelShareProbe: DataParallelGroup {
    let rank: Int, size: Int
    init(rank: Int, size: Int) { (self.rank, self.size) = (rank, size) }
    func sum(_ values: UnsafeMutableBufferPointer<Double>) throws {}
    func sum(_ values: UnsafeMutableBufferPointer<Float>) throws {}
}

extension DataParallelTests {
    @Test func sharesCoverEveryRowOnce() {
        for count in [0, 1, 5, 32, 33, 1000] {
            for size in [1, 2, 3, 7] {
                let shares = (0..<size).map { DataParallelShareProbe(rank: $0, size: size).share(of: count) }
                #expect(shares.first?.lowerBound == 0 && shares.last?.upperBound == count)
                #expect(zip(shares, shares.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
                #expect(shares.allSatisfy { $0.count == count / size || $0.count == count / size + 1 })
            }
        }
    }
}

/// Rank 0 of 2 whose partner contributes the same values as this rank, except that at one
/// training step (counted over gradient reductions) the partner reports a failed share.
final class FailingPartnerGroup: DataParallelGroup {
    let rank = 0, size = 2
    let failingStep: Int
    private(set) var gradientReductions = 0
    init(failingStep: Int) { self.failingStep = failingStep }
    func sum(_ values: UnsafeMutableBufferPointer<Double>) throws {
        for i in values.indices { values[i] *= 2 }
        // A step's summary after its gradient: [losses, failed shares, Σ g², one slot per rank].
        if values.count == 3 + size, gradientReductions == failingStep { values[1] += 1 }
    }
    func sum(_ values: UnsafeMutableBufferPointer<Float>) throws {}
    func reduceScatter(_ values: UnsafeMutableBufferPointer<Double>) throws {
        gradientReductions += 1
        try sum(values)
    }
    func reduceScatter(_ values: UnsafeMutableBufferPointer<Float>) throws {}
    // The partner's shard is what this rank would have computed: nothing to copy.
    func allGather(_ values: UnsafeMutableBufferPointer<Double>) throws {}
    func allGather(_ values: UnsafeMutableBufferPointer<Float>) throws {}
}

extension DataParallelTests {
    /// A failure on another rank reaches the training guard of every rank: the step is skipped,
    /// the rate halved and the run goes on, exactly as for a local failure.
    @Test func anotherRanksFailureIsSkippedByTheTrainingGuard() throws {
        let train = TrainerTests.toyData(seed: 1), validation = TrainerTests.toyData(seed: 2, rows: 20)
        let trainer = try TrainerTests.makeTrainer(seed: 3, epochs: 2)
        let group = FailingPartnerGroup(failingStep: 3)
        trainer.group = group
        var recovered = [(step: Int, reason: String, scale: Double)]()
        let result = try trainer.fit(train: train, validation: validation) { event in
            if case let .recovered(_, step, reason, _, scale) = event { recovered.append((step, reason, scale)) }
        }
        #expect(group.gradientReductions == 8)
        #expect(recovered.count == 1)
        #expect(recovered.first?.step == 3 && recovered.first?.scale == 0.5)
        #expect(recovered.first?.reason.contains("another rank") == true, "\(recovered)")
        #expect(result.steps == 8)
    }
}
