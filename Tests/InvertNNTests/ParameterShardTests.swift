import Testing
@testable import InvertNN

/// The flat layout of a rank's parameter shard: segments cover the shard exactly, the
/// finiteness scan finds a bad entry wherever it sits in the shard (and only there), and the
/// guard's save and restore move exactly the shard's entries.
@Suite struct ParameterShardTests {
    /// Parameters of 5, 3 and 9 entries (17 flat entries), values 1, 2, 3, ….
    static func parameters() throws -> [Parameter<Double>] {
        var next = 0.0
        return try [(1, 5), (3, 1), (3, 3)].enumerated().map { index, shape in
            let values = (0..<(shape.0 * shape.1)).map { _ in next += 1; return next }
            return Parameter(name: "p\(index)", value: try Matrix(rows: shape.0, columns: shape.1, storage: values))
        }
    }

    @Test func segmentsCoverEachShardOnce() throws {
        let parameters = try Self.parameters()
        for size in 1...5 {
            var covered = [Int]()
            for rank in 0..<size {
                let shard = ParameterShard(parameters: parameters, group: DataParallelShareProbe(rank: rank, size: size))
                #expect(shard.range == (17 * rank / size)..<(17 * (rank + 1) / size))
                shard.forEachSegment(of: shard.range) { index, entries, flat in
                    #expect(flat == shard.offsets[index] + entries.lowerBound)
                    #expect(entries.upperBound <= parameters[index].count)
                    covered += entries.map { shard.offsets[index] + $0 }
                }
            }
            #expect(covered == Array(0..<17), "size \(size)")
        }
    }

    @Test func finitenessScanSeesOnlyItsShard() throws {
        let size = 3
        for bad in 0..<17 {
            for value in [Double.nan, .infinity, -.infinity] {
                let parameters = try Self.parameters()
                let shard0 = ParameterShard(parameters: parameters, group: DataParallelShareProbe(rank: 0, size: size))
                let index = shard0.offsets.lastIndex { $0 <= bad }!
                parameters[index].value.storage[bad - shard0.offsets[index]] = value
                for rank in 0..<size {
                    let shard = ParameterShard(parameters: parameters, group: DataParallelShareProbe(rank: rank, size: size))
                    #expect(shard.firstNonFiniteParameter() == (shard.range.contains(bad) ? index : nil), "entry \(bad), rank \(rank)")
                }
            }
        }
        // Huge finite values are finite: x·0 is 0 for them.
        let parameters = try Self.parameters()
        parameters[2].value.storage[8] = .greatestFiniteMagnitude
        #expect(ParameterShard(parameters: parameters, group: DataParallelShareProbe(rank: 0, size: 1)).firstNonFiniteParameter() == nil)
    }

    @Test func saveAndRestoreMoveOnlyTheShard() throws {
        let parameters = try Self.parameters()
        let shard = ParameterShard(parameters: parameters, group: DataParallelShareProbe(rank: 1, size: 3))  // flat 5..<11
        var saved = parameters.map { [Double](repeating: -1, count: $0.count) }
        var average = parameters.map { [Double](repeating: 2, count: $0.count) }
        // The optimizer's shard pass saves the shard before updating it (a gradient of 1 moves
        // every entry of the shard by η = 0.5 at the first step) and blends it into the average.
        let optimizer = try Adam(parameters: parameters, learningRate: 0.5, epsilon: 0)
        let gradient = [Double](repeating: 1, count: shard.offsets.last!)
        let finite = gradient.withUnsafeBufferPointer {
            optimizer.update(shard.range, gradient: $0, norm: 1, layout: shard, savingInto: &saved, average: &average, averageDecay: (0.5, 0.5))
        }
        #expect(finite)
        #expect(saved[0] == [-1, -1, -1, -1, -1] && saved[1] == [6, 7, 8] && saved[2] == [9, 10, 11, -1, -1, -1, -1, -1, -1])
        #expect(average[0] == [2, 2, 2, 2, 2] && average[1] == [4, 4.5, 5] && average[2] == [5.5, 6, 6.5, 2, 2, 2, 2, 2, 2])
        #expect(parameters[1].value.storage == [5.5, 6.5, 7.5] && parameters[2].value.storage[3] == 12)
        for p in parameters { for i in 0..<p.count { p.value.storage[i] = 0 } }
        shard.restore(from: saved)
        #expect(parameters.map(\.value.storage) == [[0, 0, 0, 0, 0], [6, 7, 8], [9, 10, 11, 0, 0, 0, 0, 0, 0]])
    }
}
