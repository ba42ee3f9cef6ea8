import Testing
@testable import InvertNN

/// The training step's fused pass (Adam, the guard's copy, the deferred Polyak blend and the
/// finiteness check in one pass over memory) must equal the separate passes it replaces bit for
/// bit, in the vector body and the tail, with and without a mask and an average.
@Suite struct FusedOptimizerStepTests {
    @Test(arguments: [1, 7, 8, 37, 1029])
    func fusedPassEqualsTheSeparatePasses(count: Int) throws {
        func check<T: Scalar>(_: T.Type, averaging: Bool) throws {
            var generator = SeededGenerator(seed: UInt64(count) &+ 11)
            func random(_ range: ClosedRange<Double>) -> [T] {
                (0..<count).map { _ in T(Double.random(in: range, using: &generator)) }
            }
            let start = random(-2...2)
            let mask = (0..<count).map { $0 % 5 != 2 }
            func parameters() -> [Parameter<T>] {
                [Parameter(name: "plain", value: Matrix(row: start)),
                 Parameter(name: "masked", value: Matrix(row: start), trainableMask: mask)]
            }
            let separate = parameters(), fused = parameters()
            let reference = try Adam(parameters: separate, learningRate: 0.05, maxGradientNorm: 0.5, weightDecay: 0.01)
            let optimizer = try Adam(parameters: fused, learningRate: 0.05, maxGradientNorm: 0.5, weightDecay: 0.01)
            let beta = 0.9
            var referenceAverage = ParameterAverage(beta: beta, parameters: separate)
            var average = ParameterAverage(beta: beta, parameters: fused)
            var previous = fused.map(\.value.storage)
            for step in 1...3 {
                let g = random(-3...3)
                for p in separate + fused { p.gradient = Matrix(row: g) }
                let before = separate.map(\.value)
                let norm = try reference.update()
                if averaging { referenceAverage.update(separate, shard: nil) }
                let result: (norm: Double, finite: Bool)
                if averaging, let decay = average.takeOwedBlend() {
                    result = try optimizer.update(savingInto: &previous, average: &average.values, averageDecay: decay)
                } else {
                    var none = [[T]]()
                    result = try optimizer.update(savingInto: &previous, average: &none, averageDecay: nil)
                }
                average.owesBlend = averaging
                #expect(result.finite && result.norm == norm)
                #expect(previous == before.map(\.storage), "the saved parameters of step \(step)")
                #expect(fused.map(\.value) == separate.map(\.value), "step \(step)")
                #expect(optimizer.moments.first == reference.moments.first && optimizer.moments.second == reference.moments.second)
            }
            average.settle(fused, shard: nil)
            #expect(average.values == referenceAverage.values && average.weight == referenceAverage.weight)
            #expect(!average.owesBlend)
        }
        for averaging in [false, true] {
            try check(Float.self, averaging: averaging)
            try check(Double.self, averaging: averaging)
        }
    }

    /// A NaN or infinite updated entry at any position (vector lanes and the scalar tail) clears
    /// the pass's finiteness flag; finite entries elsewhere do not hide it.
    @Test func nonFiniteUpdatedEntryIsReportedAtEveryPosition() throws {
        let count = 37
        for position in 0..<count {
            for bad in [Float.nan, .infinity, -.infinity] {
                var values = [Float](repeating: 0.5, count: count)
                values[position] = bad
                let p = Parameter<Float>(name: "theta", value: Matrix(row: values))
                p.gradient = Matrix(row: [Float](repeating: 0.1, count: count))
                let optimizer = try Adam(parameters: [p], learningRate: 0.01)
                var previous = [p.value.storage], none = [[Float]]()
                let result = try optimizer.update(savingInto: &previous, average: &none, averageDecay: nil)
                #expect(!result.finite, "\(bad) at \(position)")
                #expect(previous[0][position].isNaN == bad.isNaN)
            }
        }
        let p = Parameter<Float>(name: "theta", value: Matrix(row: [Float](repeating: 0.5, count: count)))
        p.gradient = Matrix(row: [Float](repeating: 0.1, count: count))
        var previous = [p.value.storage], none = [[Float]]()
        #expect(try Adam(parameters: [p], learningRate: 0.01).update(savingInto: &previous, average: &none, averageDecay: nil).finite)
    }

    /// A non-finite gradient throws before the pass writes anything.
    @Test func nonFiniteGradientWritesNothing() throws {
        let p = Parameter<Double>(name: "theta", value: Matrix(row: [1, 2, 3]))
        p.gradient = Matrix(row: [0, .nan, 0])
        let optimizer = try Adam(parameters: [p], learningRate: 0.1)
        var previous = [[7.0, 7, 7]], average = [[Double]([9, 9, 9])]
        #expect(throws: InvertNNError.self) {
            try optimizer.update(savingInto: &previous, average: &average, averageDecay: (0.5, 0.5))
        }
        #expect(p.value.storage == [1, 2, 3] && previous[0] == [7, 7, 7] && average[0] == [9, 9, 9])
        #expect(optimizer.step == 0)
    }
}
