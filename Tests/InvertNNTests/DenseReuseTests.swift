import Testing
@testable import InvertNN

/// Repeated small-batch products with unchanged parameters build `InvertibleLinear`'s dense
/// matrix once and use it from the second call on (evaluation or sampling in batches smaller
/// than n); training, which changes the parameters between steps, keeps chaining the factors.
@Suite struct DenseReuseTests {
    private func makeLayer(features n: Int, seed: UInt64) throws -> InvertibleLinear<Double> {
        var rng = SeededGenerator(seed: seed)
        let layer = try InvertibleLinear<Double>(features: n, using: &rng)
        layer.scale.logScale.value = Matrix.randomNormal(rows: 1, columns: n, standardDeviation: 0.4, using: &rng)
        layer.bias!.value = Matrix.randomNormal(rows: 1, columns: n, using: &rng)
        return layer
    }

    @Test func secondSmallBatchCallBuildsTheDenseMatrix() throws {
        let n = 40, batch = 8
        let layer = try makeLayer(features: n, seed: 21)
        var rng = SeededGenerator(seed: 22)
        let x = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
        let chained = try layer.forward(x)
        #expect(layer.denseCache == nil)
        let dense = try layer.forward(x)
        #expect(layer.denseCache?.keys == layer.currentVersions)
        #expect(layer.denseCache?.inverseMatrix == nil)
        #expect(try (dense.output - chained.output).maxAbs <= 1e-12 * max(1, chained.output.maxAbs))
        #expect(dense.logAbsDet == chained.logAbsDet)

        // The inverse direction: its first call chains (C is not built yet), its second builds C.
        let inverseChained = try layer.inverse(dense.output)
        #expect(layer.denseCache?.inverseMatrix == nil)
        let inverseDense = try layer.inverse(dense.output)
        #expect(layer.denseCache?.inverseMatrix != nil)
        #expect(try (inverseDense.output - inverseChained.output).maxAbs <= 1e-12 * max(1, x.maxAbs))
        #expect(try (inverseDense.output - x).maxAbs <= 1e-11 * max(1, x.maxAbs))

        // A parameter change makes the cache stale; the next call chains and does not rebuild it.
        layer.orthogonalU.reflectors.value[2, 5] += 0.01
        let stale = layer.denseCache?.keys
        _ = try layer.forward(x)
        #expect(layer.denseCache?.keys == stale)
        #expect(stale != layer.currentVersions)
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
