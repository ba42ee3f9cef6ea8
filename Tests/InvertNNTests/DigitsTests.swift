import Testing
import InvertNN

@Suite struct DigitsTests {
    @Test func tableShapeAndValues() throws {
        let (pixels, labels) = try Digits.table()
        #expect(pixels.shape == [1797, 64])
        #expect(labels.count == 1797)
        #expect(pixels.storage.allSatisfy { $0 >= 0 && $0 <= 16 && $0.rounded() == $0 })
        #expect(pixels.storage.contains(16) && pixels.storage.contains(0))
        #expect(Set(labels) == Set(0...9))
        // The first record of scikit-learn's digits.csv.gz is a 0.
        #expect(labels[0] == 0)
        #expect(pixels.row(0).prefix(8) == [0, 0, 5, 13, 9, 1, 0, 0])
    }

    @Test func fixedSplit() throws {
        let data: DiscreteDataset<Float> = try Digits.load()
        #expect(data.train.shape == [1300, 64])
        #expect(data.validation.shape == [200, 64])
        #expect(data.test.shape == [297, 64])
        #expect(data.levels == 17 && data.imageHeight == 8 && data.imageWidth == 8)
        #expect(data.trainLabels.count == 1300 && data.validationLabels.count == 200 && data.testLabels.count == 297)
        // The three splits partition the table: same multiset of rows.
        let (pixels, _) = try Digits.table()
        let all = (0..<pixels.rows).map { pixels.row($0).map { Float($0) } }
        var split = [[Float]]()
        for m in [data.train, data.validation, data.test] { for r in 0..<m.rows { split.append(m.row(r)) } }
        #expect(all.sorted { $0.lexicographicallyPrecedes($1) } == split.sorted { $0.lexicographicallyPrecedes($1) })
        // Deterministic.
        let again: DiscreteDataset<Float> = try Digits.load()
        #expect(again.test == data.test && again.trainLabels == data.trainLabels)
        // Every digit appears in every split.
        #expect(Set(data.validationLabels) == Set(0...9) && Set(data.testLabels) == Set(0...9))
    }
}
