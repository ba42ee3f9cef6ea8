import Foundation
import Testing
import InvertNN

/// Excluded columns (a text label) are not parsed, and a UTF-8 byte-order mark does not stick to
/// the first column name.
@Suite struct CSVExclusionTests {
    func write(_ text: String, bom: Bool = false) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("invertnn-\(UUID().uuidString).csv").path
        var bytes = [UInt8](text.utf8)
        if bom { bytes = [0xEF, 0xBB, 0xBF] + bytes }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func textLabelColumnIsSkipped() throws {
        var rows = ["a,b,species"]
        for i in 0..<40 { rows.append("\(Double(i) * 0.1),\(Double(i % 7) - 3),\(i % 2 == 0 ? "setosa" : "virginica")") }
        let path = try write(rows.joined(separator: "\n") + "\n", bom: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let dataset = try TabularDataset<Double>.csv(path: path, labelColumn: "species")
        #expect(dataset.columnNames == ["a", "b"])
        let total = dataset.train.rows + dataset.validation.rows + dataset.test.rows
        #expect(total == 40)
        // A text cell in a kept column is still an error naming line and column.
        let bad = try write("a,b,species\n1,x,setosa\n")
        defer { try? FileManager.default.removeItem(atPath: bad) }
        #expect(throws: InvertNNError.self) { try TabularDataset<Double>.csv(path: bad, labelColumn: "species") }
        // Without excluding it, the text label is reported.
        #expect(throws: InvertNNError.self) { try TabularDataset<Double>.csv(path: path) }
    }
}
