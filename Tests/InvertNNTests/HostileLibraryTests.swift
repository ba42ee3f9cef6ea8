import Testing
import Foundation
import InvertNN

/// Library-side checks of issue 14: decimal-only CSV cells, CR-only line ends, preprocessing
/// validated when a checkpoint is written.
@Suite struct HostileLibraryTests {
    /// Item 11: hexadecimal and other non-decimal spellings are rejected with the cell named;
    /// decimal forms are still read.
    @Test func onlyDecimalNumbersAreRead() throws {
        for cell in ["0x10", "0x1p3", "1_0", "١٢"] {
            do {
                let _: Matrix<Double> = try CSVReader.parse(Array("1,2\n3,\(cell)\n".utf8), source: "x.csv")
                Issue.record("\(cell) was read")
            } catch let InvertNNError.malformedData(source, line, reason) {
                #expect(source == "x.csv" && line == 2 && reason.hasPrefix("column 2: \"\(cell)\""), "\(reason)")
            }
        }
        do {
            let _: Matrix<Double> = try CSVReader.parse(Array("0x10\n".utf8), source: "x.csv")
        } catch let InvertNNError.malformedData(_, _, reason) {
            #expect(reason.contains("is not a decimal number"), "\(reason)")
        }
        let m: Matrix<Double> = try CSVReader.parse(Array(" -2.5, +3 ,1e-2,.5,7.\n".utf8), source: "x.csv")
        #expect(m.storage == [-2.5, 3, 0.01, 0.5, 7])
    }

    /// Item 13: a file whose lines end in CR alone reads as its records, with file lines in errors.
    @Test func crOnlyLineEnds() throws {
        let table: (columnNames: [String], values: Matrix<Double>) = try CSVReader.parseTable(Array("a,b\r1,2\r3,4\r".utf8), source: "m.csv")
        #expect(table.columnNames == ["a", "b"] && table.values.storage == [1, 2, 3, 4])
        do {
            let _: Matrix<Double> = try CSVReader.parse(Array("1,2\r3,x\r".utf8), source: "m.csv")
            Issue.record("x was read")
        } catch let InvertNNError.malformedData(_, line, _) {
            #expect(line == 2)
        }
        #expect(CSVReader.nonBlankLineNumbers(Array("a\r\rb".utf8)) == [1, 3])
    }

    /// Item 12: a checkpoint whose standardization does not fit the flow's width is refused at
    /// write time, and nothing is written.
    @Test func preprocessingWidthIsCheckedAtWrite() throws {
        var generator = SeededGenerator(seed: 3)
        let flow = try NormalizingFlow<Double>(
            transform: Sequential([try AffineCoupling<Double>(features: 2, hiddenSizes: [4], using: &generator)]))
        let wrong = Preprocessing<Double>.standardization(try Standardization(means: [0, 0, 0], scales: [1, 1, 1]))
        let path = temporaryPath("width.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: InvertNNError.self) { try Checkpoint(flow: flow, preprocessing: wrong).write(to: path) }
        #expect(!FileManager.default.fileExists(atPath: path))
        let right = Preprocessing<Double>.standardization(try Standardization(means: [0, 1], scales: [1, 2]))
        try Checkpoint(flow: flow, preprocessing: right).write(to: path)
        #expect(try Checkpoint<Double>.read(path: path).flow.features == 2)
    }
}
