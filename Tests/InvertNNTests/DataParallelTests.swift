import Foundation
import Testing
import InvertNN

/// Data-parallel training without MPI: the weighted shares of a batch sum to the whole batch's
/// gradient (the MPI runs themselves are in ``MPITrainingTests``).
@Suite struct DataParallelTests {
    @Test func weightedSharesSumToTheWholeBatchGradient() throws {
        let data = try Digits.load(as: Double.self)
        let flow = try FlowPresets.digits(features: 64, couplings: 2, hiddenSizes: [16], seed: 3, as: Double.self)
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
