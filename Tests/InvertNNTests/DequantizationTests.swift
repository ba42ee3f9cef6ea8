import Testing
import InvertNN

@Suite struct DequantizationTests {
    @Test func dequantizedValuesStayInTheirBins() throws {
        let levels = 17
        let pre = try Dequantization<Double>(levels: levels, logitAlpha: nil)
        var rng = SeededGenerator(seed: 3)
        let k = try Matrix<Double>(rows: 4, columns: 17, storage: (0..<68).map { Double($0 % levels) })
        let x = try pre.dequantize(k, using: &rng)
        for i in 0..<x.count {
            #expect(x.storage[i] >= k.storage[i] / 17 && x.storage[i] < (k.storage[i] + 1) / 17)
        }
        // Discretizing gives the levels back exactly.
        #expect(pre.discretize(x) == k)
        // Without logit the transform is the dequantization with zero log-det.
        var again = SeededGenerator(seed: 3)
        let t = try pre.transform(k, using: &again)
        #expect(t.output == x)
        #expect(t.logAbsDet == [0, 0, 0, 0])
    }

    @Test func sameSeedSameNoise() throws {
        let pre = try Dequantization<Float>(levels: 4)
        let k = try Matrix<Float>(rows: 2, columns: 3, storage: [0, 1, 2, 3, 2, 1])
        var a = SeededGenerator(seed: 11), b = SeededGenerator(seed: 11)
        #expect(try pre.transform(k, using: &a).output == pre.transform(k, using: &b).output)
    }

    @Test func logitLogDeterminantMatchesFiniteDifferences() throws {
        let pre = try Dequantization<Double>(levels: 17, logitAlpha: 0.05)
        var rng = SeededGenerator(seed: 5)
        let x = Matrix<Double>.randomUniform(rows: 3, columns: 6, using: &rng)
        var y = x
        let logAbsDet = try pre.applyLogit(&y)
        // The map is elementwise: log|det J| = Σ_j log|dy_j/dx_j|, each from a central difference.
        let h = 1e-6
        for r in 0..<x.rows {
            var expected = 0.0
            for j in 0..<x.columns {
                var plus = Matrix(row: [x[r, j] + h]), minus = Matrix(row: [x[r, j] - h])
                let singlePre = try Dequantization<Double>(levels: 17, logitAlpha: 0.05)
                _ = try singlePre.applyLogit(&plus)
                _ = try singlePre.applyLogit(&minus)
                expected += Double.log(abs((plus[0, 0] - minus[0, 0]) / (2 * h)))
            }
            #expect(abs(logAbsDet[r] - expected) <= 1e-6 * max(1, abs(expected)), "row \(r): \(logAbsDet[r]) vs \(expected)")
        }
        // Known value at x = 0.5: p = 0.5, dy/dx = 0.9 / 0.25 = 3.6 per dimension.
        var half = Matrix<Double>(rows: 1, columns: 2, repeating: 0.5)
        let ld = try pre.applyLogit(&half)
        #expect(abs(ld[0] - 2 * Double.log(3.6)) <= 1e-12)
        #expect(abs(half[0, 0]) <= 1e-15)
    }

    @Test func logitIsTheInvertedRangeCompression() throws {
        let alpha = 1e-4
        let pre = try Dequantization<Double>(levels: 256, logitAlpha: alpha)
        let layer = try #require(try pre.logitLayer(features: 4))
        #expect(layer.name.hasPrefix("Inverted(RangeCompression"))
        var rng = SeededGenerator(seed: 21)
        let x = Matrix<Double>.randomUniform(rows: 6, columns: 4, using: &rng)
        let y = try layer.forward(x)
        // The closed form of RealNVP §4.1, entry by entry.
        for r in 0..<x.rows {
            var logAbsDet = 0.0
            for j in 0..<x.columns {
                let p = alpha + (1 - 2 * alpha) * x[r, j]
                #expect(abs(y.output[r, j] - (Double.log(p) - Double.log(1 - p))) <= 1e-13)
                logAbsDet += Double.log(1 - 2 * alpha) - Double.log(p) - Double.log(1 - p)
            }
            #expect(abs(y.logAbsDet[r] - logAbsDet) <= 1e-12 * abs(logAbsDet))
        }
        #expect(try pre.logitLayer(features: 4) != nil && Dequantization<Double>(levels: 4, logitAlpha: nil).logitLayer(features: 4) == nil)
        // With α = 0 the logit of an exact 0 is -∞: a typed error with its position, not a NaN.
        var edge = try Matrix<Double>(rows: 1, columns: 2, storage: [0.5, 0])
        let bare = try Dequantization<Double>(levels: 4, logitAlpha: 0)
        do {
            _ = try bare.applyLogit(&edge)
            Issue.record("logit(0) with α = 0 should throw")
        } catch let InvertNNError.outOfDomain(_, value, row, column, _) {
            #expect(value == 0 && row == 0 && column == 1)
        }
    }

    @Test func dataUnitsInvertTheLogit() throws {
        let pre = try Dequantization<Double>(levels: 17, logitAlpha: 0.05)
        var rng = SeededGenerator(seed: 9)
        let x = Matrix<Double>.randomUniform(rows: 5, columns: 7, using: &rng)
        var y = x
        _ = try pre.applyLogit(&y)
        #expect(try (pre.dataUnits(y) - x).maxAbs <= 1e-12)
        // Extreme and non-finite flow outputs map into [0, 1] instead of NaN.
        let wild = try Matrix<Double>(rows: 1, columns: 4, storage: [-1e6, 1e6, .nan, .infinity])
        let units = pre.dataUnits(wild)
        #expect(units.storage.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    @Test func rejectsBadInput() throws {
        #expect(throws: InvertNNError.self) { try Dequantization<Double>(levels: 1) }
        #expect(throws: InvertNNError.self) { try Dequantization<Double>(levels: 4, logitAlpha: 0.5) }
        #expect(throws: InvertNNError.self) { try Dequantization<Double>(levels: 4, logitAlpha: -0.1) }
        let pre = try Dequantization<Double>(levels: 4)
        var rng = SeededGenerator(seed: 1)
        #expect(throws: Never.self) { _ = try pre.transform(Matrix(rows: 0, columns: 3), using: &rng) }  // an empty batch gives an empty result
        do {
            _ = try pre.transform(try Matrix(rows: 2, columns: 2, storage: [0, 1, 2, 4]), using: &rng)
            Issue.record("level 4 of K = 4 must be rejected")
        } catch let InvertNNError.outOfDomain(_, value, row, column, _) {
            #expect(value == 4 && row == 1 && column == 1)
        }
        #expect(throws: InvertNNError.self) { try pre.transform(Matrix(row: [0.5, 1]), using: &rng) }
        #expect(throws: InvertNNError.self) { try pre.transform(Matrix(row: [.nan, 1]), using: &rng) }
    }
}
