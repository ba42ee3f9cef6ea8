import Testing
@testable import InvertNN

@Suite struct CSVReaderTests {
    private func parse(_ text: String, header: Bool = false) throws -> Matrix<Double> {
        try CSVReader.parse(Array(text.utf8), source: "t.csv", hasHeader: header)
    }

    /// The line and reason of the malformed-data error thrown for `text`.
    private func failure(_ text: String) -> (line: Int, reason: String)? {
        do {
            _ = try parse(text)
        } catch let InvertNNError.malformedData(source, line, reason) {
            #expect(source == "t.csv")
            return (line, reason)
        } catch {
            Issue.record("unexpected error \(error)")
        }
        return nil
    }

    @Test func parsesNumbersLinesAndHeader() throws {
        let m = try parse("a,b,c\r\n1,2,3\r\n\n-4, 5.5 ,6e-1\n", header: true)
        #expect(m.shape == [2, 3])
        #expect(m.storage == [1, 2, 3, -4, 5.5, 0.6])
        let noFinalNewline = try parse("7,8\n9,10")
        #expect(noFinalNewline.storage == [7, 8, 9, 10])
    }

    @Test func malformedInputNamesLineAndColumn() {
        let notNumber = failure("1,2,3\n4,x5,6\n")
        #expect(notNumber?.line == 2)
        #expect(notNumber?.reason.contains("column 2") == true)
        #expect(notNumber?.reason.contains("x5") == true)

        let empty = failure("1,2,3\n\n4,,6\n")
        #expect(empty?.line == 3)
        #expect(empty?.reason.contains("column 2") == true)

        let ragged = failure("1,2,3\n4,5\n")
        #expect(ragged?.line == 2)
        #expect(ragged?.reason.contains("expected 3 columns as in the first record, found 2") == true)

        // With a header, a short first record is the one blamed (not every record after it).
        do {
            _ = try parse("a,b,c\n1,2\n3,4,5\n6,7,8\n", header: true)
            Issue.record("a record narrower than the header was accepted")
        } catch let InvertNNError.malformedData(_, line, reason) {
            #expect(line == 2)
            #expect(reason == "expected 3 columns as in the header, found 2")
        } catch {
            Issue.record("unexpected error \(error)")
        }

        let notFinite = failure("1,nan\n")
        #expect(notFinite?.line == 1)
        #expect(notFinite?.reason.contains("column 2") == true)

        let trailingComma = failure("1,2,\n")
        #expect(trailingComma?.reason.contains("column 3") == true)

        #expect(failure("\n\n")?.line == 0)

        // A NUL byte inside a cell (Double(String) would stop at it and read "1.5").
        let nul = failure("1,2\n1.5\u{0}garbage,3\n")
        #expect(nul?.line == 2)
        #expect(nul?.reason.contains("column 1") == true)
        #expect(failure("1,2\n7\u{0},3\n")?.line == 2)
    }

    @Test func csvDatasetChecksLevels() throws {
        let path = temporaryPath("levels.csv")
        try writeText("0,1,2\n3,1,0\n1,1,1\n2,2,2\n", to: path)
        let ok = try DiscreteDataset<Float>.csv(path: path, levels: 4)
        #expect(ok.train.rows + ok.validation.rows + ok.test.rows == 4)
        #expect(ok.dimensions == 3)
        do {
            _ = try DiscreteDataset<Float>.csv(path: path, levels: 3)
            Issue.record("level 3 with K = 3 must be rejected")
        } catch let InvertNNError.malformedData(_, line, reason) {
            #expect(line == 2)
            #expect(reason.contains("column 1"))
        }
        let labelled = try DiscreteDataset<Double>.csv(path: path, levels: 4, labelColumn: true)
        #expect(labelled.dimensions == 2)
        #expect((labelled.trainLabels + labelled.validationLabels + labelled.testLabels).sorted() == [0, 1, 2, 2])
        // With a header and a blank line, the reported line is the file's line.
        let headed = temporaryPath("levels-header.csv")
        try writeText("a,b,c\n0,1,2\n\n3,1,0\n1,1,1\n2,2,2\n", to: headed)
        do {
            _ = try DiscreteDataset<Float>.csv(path: headed, levels: 3, hasHeader: true)
            Issue.record("level 3 with K = 3 must be rejected")
        } catch let InvertNNError.malformedData(_, line, reason) {
            #expect(line == 4)
            #expect(reason.contains("column 1"))
        }
    }

    @Test func nonBlankLineNumbers() {
        #expect(CSVReader.nonBlankLineNumbers(Array("a\n\n  \n1,2\r\n\t\n3,4".utf8)) == [1, 4, 6])
        #expect(CSVReader.nonBlankLineNumbers([]) == [])
    }

    @Test func columnNumberOutOfRangeSaysSo() {
        do {
            _ = try TabularDataset<Double>.columnIndex("9", in: ["a", "b", "c", "d"], path: "t.csv")
            Issue.record("column 9 of 4 must be rejected")
        } catch let InvertNNError.invalidArgument(_, reason) {
            #expect(reason.contains("column number 9 is outside 1...4"))
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect((try? TabularDataset<Double>.columnIndex("4", in: ["a", "b", "c", "d"], path: "t.csv")) == 3)
    }
}
