import Testing
@testable import InvertNN

/// `InvertibleLinear` picks the dense matrix or the chained factors from the batch size alone:
/// a batch gets the same bits however often the layer ran before (issue 14, item 16), and
/// training, which changes the parameters between steps, keeps chaining small batches.
@Suite struct DenseReuseTests {
    private func makeLayer(features n: Int, seed: UInt64) throws -> InvertibleLinear<Double> {
        var rng = SeededGenerator(seed: seed)
        let layer = try InvertibleLinear<Double>(features: n, using: &rng)
        layer.scale.logScale.value = Matrix.randomNormal(rows: 1, columns: n, standardDeviation: 0.4, using: &rng)
        layer.bias!.value = Matrix.randomNormal(rows: 1, columns: n, using: &rng)
        return layer
    }

    @Test func resultsDoNotDependOnEarlierCalls() throws {
        func check<T: Scalar>(_: T.Type) throws {
            let n = 40, batch = 8
            var rng = SeededGenerator(seed: 21)
            let layer = try InvertibleLinear<T>(features: n, using: &rng)
            layer.scale.logScale.value = Matrix.randomNormal(rows: 1, columns: n, standardDeviation: 0.4, using: &rng)
            let x = Matrix<T>.randomNormal(rows: batch, columns: n, using: &rng)
            let large = Matrix<T>.randomNormal(rows: 2 * n, columns: n, using: &rng)
            let first = try layer.forward(x), firstInverse = try layer.inverse(first.output)
            for call in 0..<3 {
                if call == 1 { _ = try layer.forward(large); _ = try layer.inverse(large) }  // builds the dense matrices
                let again = try layer.forward(x)
                #expect(again.output.storage == first.output.storage && again.logAbsDet == first.logAbsDet, "\(T.self) call \(call)")
                #expect(try layer.inverse(first.output).output.storage == firstInverse.output.storage, "\(T.self) call \(call)")
            }
            // And the large batch itself: the same bits on every call too.
            let once = try layer.forward(large).output.storage
            #expect(try layer.forward(large).output.storage == once)
        }
        try check(Float.self)
        try check(Double.self)
    }

    @Test func trainingStepsAtSmallBatchesKeepChaining() throws {
        let n = 30, batch = 6
        let layer = try makeLayer(features: n, seed: 23)
        var rng = SeededGenerator(seed: 24)
        let x = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
        let dy = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
        let dld = [Double](repeating: 0.5, count: batch)
        for step in 0..<3 {
            let y = try layer.forward(x)
            _ = try layer.forwardBackward(input: x, output: y.output, outputGradient: dy, logAbsDetGradient: dld)
            // Rebuilding mode's inverse of the same step sees the same parameters once.
            _ = try layer.inverse(y.output)
            #expect(layer.denseCache == nil, "step \(step)")
            layer.scale.logScale.value[0, step] += 0.01  // the optimizer's update
        }
    }

    @Test func infiniteRatioAlwaysChains() throws {
        let layer = try makeLayer(features: 20, seed: 25)
        layer.materializeBatchRatio = .infinity
        var rng = SeededGenerator(seed: 26)
        let x = Matrix<Double>.randomNormal(rows: 4, columns: 20, using: &rng)
        for _ in 0..<3 {
            _ = try layer.forward(x)
            _ = try layer.inverse(x)
        }
        #expect(layer.denseCache == nil)
    }
}

/// The vectorized column sums behind every bias gradient, against a plain Double sum, for shapes
/// that exercise whole vector strips, the scalar tail columns and odd row counts.
@Suite struct ColumnSumTests {
    private func check<T: Scalar>(_: T.Type, tolerance: Double) {
        var rng = SeededGenerator(seed: 27)
        for rows in [1, 2, 7, 300] {
            for n in [1, 5, 8, 16, 17, 40] {
                let m = Matrix<T>.randomNormal(rows: rows, columns: n, using: &rng)
                var target = (0..<n).map { T($0) }
                m.addColumnSums(scaledBy: -2, into: &target)
                for j in 0..<n {
                    var sum = 0.0
                    for r in 0..<rows { sum += Double(m[r, j]) }
                    let expected = Double(j) - 2 * sum
                    #expect(abs(Double(target[j]) - expected) <= tolerance * Double(rows + j),
                            "\(T.self) rows \(rows) n \(n) column \(j)")
                }
            }
        }
    }

    @Test func floatAndDouble() {
        check(Float.self, tolerance: 1e-5)
        check(Double.self, tolerance: 1e-13)
    }

    @Test func emptyAndShortTargetsAreLeftAlone() {
        var target: [Double] = [1, 2]
        Matrix<Double>(rows: 0, columns: 2).addColumnSums(into: &target)
        #expect(target == [1, 2])
        Matrix<Double>(rows: 3, columns: 4).addColumnSums(into: &target)  // target too short
        #expect(target == [1, 2])
    }
}
