import Testing
import Foundation
@testable import InvertNN

/// The bytes of a `.npy` file written by hand, as numpy.save lays it out: magic, version,
/// header length (2 bytes in 1.0, 4 in 2.0/3.0), the header dict padded with spaces to a
/// multiple of 64 and ended by a newline, then `data`.
func npyBytes(header: String, data: [UInt8], major: UInt8 = 1, pad: Bool = true) -> [UInt8] {
    let lengthBytes = major == 1 ? 2 : 4
    var text = Array(header.utf8)
    if pad {
        let prefix = 8 + lengthBytes
        while (prefix + text.count + 1) % 64 != 0 { text.append(UInt8(ascii: " ")) }
    }
    text.append(UInt8(ascii: "\n"))
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, 0]
    for k in 0..<lengthBytes { bytes.append(UInt8(truncatingIfNeeded: text.count >> (8 * k))) }
    return bytes + text + data
}

/// Little-endian bytes of `values`.
func littleEndian<I: FixedWidthInteger>(_ values: [I]) -> [UInt8] {
    values.flatMap { v in (0..<MemoryLayout<I>.size).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

/// Data options of issue 14 item 20 in the library: `.npy` arrays, quoted CSV, split fractions
/// and separate files for the held-out splits.
@Suite struct DataFormatTests {
    // MARK: .npy

    @Test func npyFloat64Version1LoadsTheMatrix() throws {
        let values: [Double] = [1.5, -2, 3, 4.25, 5e-3, 6e10]
        let bytes = npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", data: littleEndian(values.map(\.bitPattern)))
        let m = try NumPyArray.parse(bytes, source: "a.npy")
        #expect(m.rows == 3 && m.columns == 2)
        #expect(m.storage == values)
    }

    @Test func npyBigEndianIntegersAndOtherVersions() throws {
        // '>i2', 1-D: one column; sign extension of -2 and a value above one byte.
        let be: [UInt8] = [0x00, 0x01, 0xFF, 0xFE, 0x01, 0x2C]
        let column = try NumPyArray.parse(npyBytes(header: "{'descr': '>i2', 'fortran_order': False, 'shape': (3,), }", data: be), source: "b.npy")
        #expect(column.rows == 3 && column.columns == 1 && column.storage == [1, -2, 300])
        // Version 2.0, '|u1'.
        let u8 = try NumPyArray.parse(
            npyBytes(header: "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", data: [0, 255, 7, 128], major: 2), source: "c.npy")
        #expect(u8.storage == [0, 255, 7, 128])
        // Version 3.0, '<f4', unpadded header with double quotes and Python 2 long dimensions.
        let floats: [Float] = [0.5, -1.25]
        let f4 = try NumPyArray.parse(
            npyBytes(header: "{\"shape\": (1L, 2L), \"fortran_order\": False, \"descr\": \"<f4\"}", data: littleEndian(floats.map(\.bitPattern)),
                     major: 3, pad: false), source: "d.npy")
        #expect(f4.rows == 1 && f4.storage == [0.5, -1.25])
        // '<i8' minimum and '>u8' maximum, '<i1'.
        let i8 = try NumPyArray.parse(npyBytes(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", data: littleEndian([Int64.min])), source: "e")
        #expect(i8.storage == [-9.223372036854775808e18])
        let u64 = try NumPyArray.parse(npyBytes(header: "{'descr': '>u8', 'fortran_order': False, 'shape': (1,), }", data: [UInt8](repeating: 0xFF, count: 8)), source: "f")
        #expect(u64.storage == [Double(UInt64.max)])
        let i1 = try NumPyArray.parse(npyBytes(header: "{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }", data: [0x80, 0x7F]), source: "g")
        #expect(i1.storage == [-128, 127])
    }

    @Test func hostileNpyFilesAreTypedErrors() throws {
        let good = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }"
        let data = littleEndian([Double](repeating: 1, count: 4).map(\.bitPattern))
        let cases: [(String, [UInt8], String)] = [
            ("truncated data", Array(npyBytes(header: good, data: data).dropLast(3)), "needs 32 bytes of data, the file holds 29"),
            ("truncated header", Array(npyBytes(header: good, data: data).prefix(30)), "ends inside the header"),
            ("huge shape", npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 1000000000000), }", data: data),
             "more than"),
            ("shape beyond Int", npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999, 1), }", data: data),
             "a dimension beyond"),
            ("object dtype", npyBytes(header: "{'descr': '|O', 'fortran_order': False, 'shape': (4,), }", data: data), "element type '|O' is not supported"),
            ("complex dtype", npyBytes(header: "{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }", data: data), "'<c16' is not supported"),
            ("float16", npyBytes(header: "{'descr': '<f2', 'fortran_order': False, 'shape': (16,), }", data: data), "'<f2' is not supported"),
            ("Fortran order", npyBytes(header: "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", data: data), "Fortran"),
            ("3-D", npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2, 2), }", data: data), "shape (1, 2, 2)"),
            ("scalar", npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", data: Array(data.prefix(8))), "shape ()"),
            ("unknown key", npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), 'x': 1}", data: data), "unknown key 'x'"),
            ("missing key", npyBytes(header: "{'descr': '<f8', 'shape': (2, 2), }", data: data), "lacks 'fortran_order'"),
            ("repeated key", npyBytes(header: "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 2)}", data: data), "appears twice"),
            ("not a dict", npyBytes(header: "[1, 2]", data: data), "expected '{'"),
            ("unterminated string", npyBytes(header: "{'descr: 1", data: data), "unexpected byte"),
            ("bad magic", Array("NUMPY".utf8) + data, "not a .npy file"),
            ("version 4", npyBytes(header: good, data: data, major: 4), "version 4.0 is not supported"),
        ]
        for (label, bytes, message) in cases {
            do {
                _ = try NumPyArray.parse(bytes, source: "h.npy")
                Issue.record("\(label): no error")
            } catch let error as InvertNNError {
                guard case .malformedData = error else { Issue.record("\(label): \(error)"); continue }
                #expect("\(error)".contains(message), "\(label): \(error)")
            }
        }
        // A header longer than the limit is refused before it is read.
        let long = npyBytes(header: good + String(repeating: " ", count: 5000), data: data, major: 2, pad: false)
        #expect(throws: InvertNNError.self) { try NumPyArray.parse(long, source: "i.npy", maximumHeaderBytes: 4096) }
        #expect(try NumPyArray.parse(long, source: "i.npy", maximumHeaderBytes: 8192).storage == [1, 1, 1, 1])
    }

    /// A NaN or infinity in a float array is refused with the file, the row and the column (it
    /// used to load, and failed only later with a position in the shuffled split, without the file).
    @Test func npyNonFiniteValuesNameFileRowAndColumn() throws {
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }"
        for (bad, shown) in [(Double.nan, "nan"), (.infinity, "inf"), (-.infinity, "-inf")] {
            let values: [Double] = [1, 2, 3, 4, 5, bad]
            let bytes = npyBytes(header: header, data: littleEndian(values.map(\.bitPattern)))
            #expect(throws: InvertNNError.malformedData(source: "n.npy", line: 3, reason: "row 3, column 2: \(shown) is not a finite number")) {
                try NumPyArray.parse(bytes, source: "n.npy")
            }
        }
        // float32, through the file reader: the message names the path.
        let path = temporaryPath("nan32.npy")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let floats: [Float] = [0.5, .nan, 2, 3]
        try Data(npyBytes(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", data: littleEndian(floats.map(\.bitPattern))))
            .write(to: URL(fileURLWithPath: path))
        do {
            _ = try DataTable.read(path: path)
            Issue.record("a NaN in a float32 .npy loaded")
        } catch let error as InvertNNError {
            #expect(error == .malformedData(source: path, line: 1, reason: "row 1, column 2: nan is not a finite number"))
            #expect("\(error)" == "\(path):1: row 1, column 2: nan is not a finite number")
        }
    }

    /// A NaN in an excluded `.npy` column (a label) loads, as text in an excluded CSV column does;
    /// the same NaN in a kept column is refused by its row and column (it was refused either way).
    @Test func npyNonFiniteValuesInExcludedColumnsLoad() throws {
        let path = temporaryPath("nan-label.npy")
        defer { try? FileManager.default.removeItem(atPath: path) }
        // 8 rows of (x, y, label); the label of row 3 is NaN.
        var values = [Double]()
        for r in 0..<8 { values += [Double(r), Double(r * r) / 7, r == 2 ? .nan : Double(r % 2)] }
        try Data(npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (8, 3), }", data: littleEndian(values.map(\.bitPattern))))
            .write(to: URL(fileURLWithPath: path))
        let dataset = try TabularDataset<Double>.csv(path: path, labelColumn: "3")
        #expect(dataset.columnNames == ["1", "2"] && dataset.sourceColumns == [0, 1])
        #expect(dataset.train.rows + dataset.validation.rows + dataset.test.rows == 8)
        let table = try DataTable.read(path: path, skipping: { names in [names.count - 1] })
        #expect(table.values.rows == 8 && table.values[2, 0] == 2 && table.values[2, 1] == 4.0 / 7 && table.values[2, 2].isNaN)
        #expect(throws: InvertNNError.malformedData(source: path, line: 3, reason: "row 3, column 3: nan is not a finite number")) {
            try DataTable.read(path: path, skipping: { _ in [0] })
        }
    }

    @Test func npyFileThroughDataTable() throws {
        let path = temporaryPath("t.npy")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let values: [Double] = [1, 2, 3, 4, 5, 6]
        try Data(npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", data: littleEndian(values.map(\.bitPattern))))
            .write(to: URL(fileURLWithPath: path))
        let table = try DataTable.read(path: path)
        #expect(table.columnNames == ["1", "2", "3"] && !table.hasHeader && table.values.storage == values && table.recordLines == [1, 2])
    }

    // MARK: quoted CSV

    @Test func quotedHeaderAndFieldsThroughCSVSwift() throws {
        let text = "\"a,b\",c,\"d \"\"q\"\"\"\r\n\"1.5\",2,3\r\n\r\n4,\"5\",\" 6e-1 \"\r\n"
        let table = try CSVReader.table(Array(text.utf8), source: "q.csv")
        #expect(table.columnNames == ["a,b", "c", "d \"q\""])
        #expect(table.hasHeader)
        #expect(table.values.rows == 2 && table.values.storage == [1.5, 2, 3, 4, 5, 0.6])
        #expect(table.recordLines == [2, 4])
        // A text column with a comma inside quotes is skipped by name, and a line break inside
        // quotes moves the line numbers of later records.
        let labelled = "x,name,y\n1,\"Smith, J.\",2\n3,\"two\nlines\",4\n5,z,6\n"
        let skipped = try CSVReader.table(Array(labelled.utf8), source: "l.csv") { names in [names.firstIndex(of: "name")!] }
        #expect(skipped.values.storage == [1, 0, 2, 3, 0, 4, 5, 0, 6])
        #expect(skipped.recordLines == [2, 3, 5])
        // The plain numeric path gives the same matrix as the quoted one.
        let plain: Matrix<Double> = try CSVReader.parse(Array("1.5,2,3\n4,5,0.6\n".utf8), source: "p")
        let quoted: Matrix<Double> = try CSVReader.parse(Array("\"1.5\",2,3\n4,\"5\",0.6\n".utf8), source: "p")
        #expect(plain.storage == quoted.storage)
    }

    @Test func badQuotedCSVNamesTheLine() throws {
        let cases: [(String, String)] = [
            ("a,b\n1,2\n\"3,4\n5,6\n", "q.csv:3: a quoted field opened here is never closed"),
            ("a,b\n1,\"x\"\n", "q.csv:2: column 2: \"x\" is not a finite number"),
            // Control characters (a terminal escape from a binary file) are shown escaped.
            ("a,b\n1,x\u{1B}[2J\n", "q.csv:2: column 2: \"x\\u{1B}[2J\" is not a finite number"),
            ("a,b\n1,\"0x10\"\n", "q.csv:2: column 2: \"0x10\" is not a decimal number"),
            ("a,b\n\"1\",2\n3,4,5\n", "q.csv:3: expected 2 columns as in the header, found 3"),
            ("a,b,c\n\"1\",2\n3,4,5\n", "q.csv:2: expected 3 columns as in the header, found 2"),
        ]
        for (text, message) in cases {
            do {
                _ = try CSVReader.table(Array(text.utf8), source: "q.csv")
                Issue.record("no error for \(text)")
            } catch let error as InvertNNError {
                #expect("\(error)".contains(message), "\(error)")
            }
        }
    }

    // MARK: split fractions

    @Test func splitFractionsGiveExactCounts() throws {
        let split = try SplitFractions(parsing: "0.8,0.1,0.1")
        #expect(try split.counts(rows: 100) == (80, 10, 10))
        #expect(try SplitFractions(parsing: " 0.5 , 0.25, 0.25 ").counts(rows: 7) == (3, 2, 2))
        #expect(try SplitFractions(parsing: "1,0,0").counts(rows: 5) == (5, 0, 0))
        // The default is the historical rounding: validation max(1, round(0.10 n)), test max(1, round(0.15 n)).
        for n in [3, 10, 99, 1797, 3000] {
            let v = max(1, Int((Double(n) * 0.10).rounded())), t = max(1, Int((Double(n) * 0.15).rounded()))
            #expect(try SplitFractions.default.counts(rows: n) == (n - v - t, v, t))
        }
        // Rescaled over the splits a file still gives: --test alone splits 0.75 : 0.10.
        let kept = try SplitFractions.default.keeping(validation: true, test: false)
        #expect(Swift.abs(kept.train - 0.75 / 0.85) < 1e-15 && kept.test == 0)
        for bad in ["0.8,0.1", "0.8,0.1,0.2", "nan,0,1", "-0.1,0.6,0.5", "0,0.5,0.5", "0x1p-1,0.25,0.25", "inf,0,0", "a,b,c", ""] {
            #expect(throws: InvertNNError.self, "\(bad)") { try SplitFractions(parsing: bad) }
        }
        #expect(throws: InvertNNError.self) { try SplitFractions(parsing: "0.9,0,0.1").keeping(validation: true, test: true) }
        #expect(throws: InvertNNError.self) { try SplitFractions.default.counts(rows: 2) }
    }

    @Test func defaultSplitIsTheHistoricalOne() throws {
        // The rows of TabularDataset's default split: the seeded shuffle and 75/10/15 rounding as before.
        var values = Matrix<Double>(rows: 41, columns: 2)
        for r in 0..<41 { values[r, 0] = Double(r); values[r, 1] = Double(r * r) }
        let data = try TabularDataset<Double>(name: "t", values: values, columnNames: ["a", "b"])
        var order = Array(0..<41)
        var generator = SeededGenerator(seed: 1998)
        order.shuffle(using: &generator)
        #expect((0..<data.train.rows).map { Int(data.train[$0, 0]) } == Array(order[0..<31]))
        #expect((0..<data.validation.rows).map { Int(data.validation[$0, 0]) } == Array(order[31..<35]))
        #expect((0..<data.test.rows).map { Int(data.test[$0, 0]) } == Array(order[35...]))
    }

    // MARK: separate files

    @Test func companionFilesMatchByHeaderOrPosition() throws {
        let directory = temporaryPath("splits")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try writeText("a,b,label\n1,2,x\n3,4,y\n5,6,z\n", to: "\(directory)/train.csv")
        try writeText("label,b,a\nq,20,10\n", to: "\(directory)/val.csv")   // reordered columns
        try writeText("7,8,0\n9,10,0\n", to: "\(directory)/test.csv")      // no header: by position
        let splits = try DataSplits.read(
            path: "\(directory)/train.csv", validationPath: "\(directory)/val.csv", testPath: "\(directory)/test.csv", excluding: ["label"])
        #expect(splits.columnNames == ["a", "b"])
        #expect(splits.train.storage == [1, 2, 3, 4, 5, 6])      // whole, in file order
        #expect(splits.validation.storage == [10, 20])
        #expect(splits.test.storage == [7, 8, 9, 10])
        // --validation alone: the training file gives train and test, 0.75 : 0.15 of its rows.
        var text = "a,b\n"
        for r in 0..<30 { text += "\(r),\(2 * r)\n" }
        try writeText(text, to: "\(directory)/big.csv")
        try writeText("b,a\n20,10\n", to: "\(directory)/val2.csv")
        let partial = try DataSplits.read(path: "\(directory)/big.csv", validationPath: "\(directory)/val2.csv", excluding: [])
        #expect(partial.train.rows == 25 && partial.validation.rows == 1 && partial.test.rows == 5)

        try writeText("a,c\n1,2\n", to: "\(directory)/other.csv")
        try writeText("a,b,label,extra\n1,2,x,3\n", to: "\(directory)/extra.csv")
        try writeText("1,2\n", to: "\(directory)/narrow.csv")
        let mismatches: [(String, String)] = [
            ("other.csv", "has a column 'c' (column 2) that the training file lacks"),
            ("extra.csv", "has a column 'extra' (column 4)"),
            ("narrow.csv", "has 2 columns where the training file has 3: column 3 is missing"),
        ]
        for (file, message) in mismatches {
            do {
                _ = try DataSplits.read(path: "\(directory)/train.csv", validationPath: "\(directory)/\(file)", excluding: ["label"])
                Issue.record("\(file): no error")
            } catch let error as InvertNNError {
                #expect("\(error)".contains(message) && "\(error)".contains(file), "\(error)")
            }
        }
        try writeText("a,label\n1,x\n", to: "\(directory)/lacking.csv")
        #expect(throws: InvertNNError.self) {
            try DataSplits.read(path: "\(directory)/train.csv", testPath: "\(directory)/lacking.csv", excluding: ["label"])
        }
    }
}
