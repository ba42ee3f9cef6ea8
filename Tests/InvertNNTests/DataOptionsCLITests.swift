import Testing
import Foundation
import InvertNN

/// `invertnn train --split/--validation/--test`, `.npy` input and quoted CSV through the binary
/// (issue 14 item 20), with hostile variants: a typed error line and exit 1 (bad data) or 64
/// (bad usage), never a crash. Uses the debug binary (see ``CLIErrorTests``).
@Suite(.serialized) struct DataOptionsCLITests {
    static let tiny = ["--couplings", "1", "--hidden-sizes", "8"]

    /// `rows` seeded rows of `columns` values with a header `a,b,…`.
    static func table(rows: Int, columns: Int = 2, seed: UInt64 = 5) -> (header: [String], values: [[Double]]) {
        var g = SeededGenerator(seed: seed)
        let header = (0..<columns).map { String(UnicodeScalar(UInt8(ascii: "a") + UInt8($0))) }
        let values = (0..<rows).map { _ in (0..<columns).map { _ in Double.random(in: -3...3, using: &g) } }
        return (header, values)
    }

    static func csv(_ header: [String]?, _ rows: [[Double]]) -> String {
        (header.map { $0.joined(separator: ",") + "\n" } ?? "") + rows.map { $0.map { "\($0)" }.joined(separator: ",") + "\n" }.joined()
    }

    static func json(_ stdout: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any] ?? [:]
    }

    @Test func splitFractionsGiveTheRowCounts() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("split") { d in
            let t = Self.table(rows: 100)
            try writeText(Self.csv(t.header, t.values), to: "\(d)/t.csv")
            for (split, note) in [(["--split", "0.8,0.1,0.1"], "80/10/10 samples"), ([], "75/10/15 samples"), (["--split", "0.5, 0.2, 0.3"], "50/20/30 samples")] {
                let run = try CLIErrorTests.run(
                    ["--data", "\(d)/t.csv", "--epochs", "0", "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png"] + Self.tiny + split)
                #expect(run.status == 0, "\(run.stderr)")
                #expect(run.stderr.contains("invertnn train: \(d)/t.csv, \(note) of 2 dimensions"), "\(split): \(run.stderr)")
            }
        }
    }

    /// The three splits of one file, written as three files, train the same model to the same
    /// figures: the split is the only difference between the two routes.
    @Test func separateFilesGiveTheSingleFileResults() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("files") { d in
            let t = Self.table(rows: 120, columns: 3)
            try writeText(Self.csv(t.header, t.values), to: "\(d)/whole.csv")
            let splits = try DataSplits.read(path: "\(d)/whole.csv")
            func rows(_ m: Matrix<Double>) -> [[Double]] { (0..<m.rows).map { r in (0..<m.columns).map { m[r, $0] } } }
            try writeText(Self.csv(t.header, rows(splits.train)), to: "\(d)/train.csv")
            // Reordered columns in the validation file (matched by name); no header in the test file.
            try writeText(
                "c,a,b\n" + rows(splits.validation).map { "\($0[2]),\($0[0]),\($0[1])\n" }.joined(), to: "\(d)/validation.csv")
            try writeText(Self.csv(nil, rows(splits.test)), to: "\(d)/test.csv")
            let common = ["--epochs", "2", "--seed", "3", "--precision", "double", "--quiet", "--samples", "\(d)/s.png"] + Self.tiny
            let one = try CLIErrorTests.run(["--data", "\(d)/whole.csv", "--out", "\(d)/one.safetensors"] + common)
            let three = try CLIErrorTests.run(
                ["--data", "\(d)/train.csv", "--validation", "\(d)/validation.csv", "--test", "\(d)/test.csv", "--out", "\(d)/three.safetensors"]
                    + common)
            #expect(one.status == 0 && three.status == 0, "\(one.stderr) \(three.stderr)")
            let a = try Self.json(one.stdout), b = try Self.json(three.stdout)
            let nll = a["test_nll"] as? Double
            #expect(nll != nil && nll == b["test_nll"] as? Double, "\(a) \(b)")
            #expect(a["validation_nats_per_dim"] as? Double == b["validation_nats_per_dim"] as? Double)
            #expect(a["train_nats_per_dim"] as? Double == b["train_nats_per_dim"] as? Double)
        }
    }

    @Test func npyAndQuotedCSVTrainAndEvaluate() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("formats") { d in
            // A 3-column float32 .npy; its third column is dropped by number.
            let t = Self.table(rows: 40, columns: 3)
            let data = littleEndian(t.values.flatMap { $0 }.map { Float($0).bitPattern })
            try Data(npyBytes(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (40, 3), }", data: data))
                .write(to: URL(fileURLWithPath: "\(d)/t.npy"))
            let trained = try CLIErrorTests.run(
                ["--data", "\(d)/t.npy", "--drop-columns", "3", "--epochs", "1", "--out", "\(d)/n.safetensors", "--samples", "\(d)/n.png"] + Self.tiny)
            #expect(trained.status == 0, "\(trained.stderr)")
            #expect(trained.stderr.contains("30/4/6 samples of 2 dimensions"), "\(trained.stderr)")
            let scored = try CLIErrorTests.run(["--model", "\(d)/n.safetensors", "--data", "\(d)/t.npy", "--json", "--quiet"], command: "eval")
            #expect(scored.status == 0, "\(scored.stderr)")
            #expect(scored.stdout.contains("\"rows\":40"), "\(scored.stdout)")

            // Quoted header names with a comma and doubled quotes, quoted numbers, a quoted text label, CRLF.
            var text = "\"width, cm\",\"height \"\"in\"\"\",label\r\n"
            for (k, row) in Self.table(rows: 30).values.enumerated() {
                text += "\"\(row[0])\",\(row[1]),\"Smith, \(k)\"\r\n"
            }
            try writeText(text, to: "\(d)/q.csv")
            let quoted = try CLIErrorTests.run(
                ["--data", "\(d)/q.csv", "--label-column", "label", "--epochs", "1", "--out", "\(d)/q.safetensors", "--samples", "\(d)/q.png"]
                    + Self.tiny)
            #expect(quoted.status == 0, "\(quoted.stderr)")
            let model = try SafeTensors.read(path: "\(d)/q.safetensors")
            #expect(model.metadata["dataset"]?.contains("width, cm") == true, "\(model.metadata["dataset"] ?? "")")
            let evaluated = try CLIErrorTests.run(["--model", "\(d)/q.safetensors", "--data", "\(d)/q.csv", "--json", "--quiet"], command: "eval")
            #expect(evaluated.status == 0 && evaluated.stdout.contains("\"rows\":30"), "\(evaluated.stderr)")
            // Samples written as CSV keep those names as quoted fields, so eval reads its own file.
            let sampled = try CLIErrorTests.run(
                ["--model", "\(d)/q.safetensors", "--count", "20", "--csv", "\(d)/s.csv", "--quiet"], command: "sample")
            #expect(sampled.status == 0, "\(sampled.stderr)")
            let header = try String(contentsOfFile: "\(d)/s.csv", encoding: .utf8).split(separator: "\n").first.map(String.init)
            #expect(header == "\"width, cm\",\"height \"\"in\"\"\"")
            let reread = try CLIErrorTests.run(["--model", "\(d)/q.safetensors", "--data", "\(d)/s.csv", "--json", "--quiet"], command: "eval")
            #expect(reread.status == 0 && reread.stdout.contains("\"rows\":20"), "\(reread.stderr)")
        }
    }

    @Test func hostileDataOptionsAreTypedErrors() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-data") { d in
            let t = Self.table(rows: 30, columns: 2)
            try writeText(Self.csv(t.header, t.values), to: "\(d)/t.csv")
            try writeText("a,c\n1,2\n", to: "\(d)/wrong-name.csv")
            try writeText("1,2,3\n", to: "\(d)/wide.csv")
            try writeText((0..<20).map { "\($0 % 4),\(($0 / 4) % 4)\n" }.joined(), to: "\(d)/levels.csv")
            try writeText("0,1\n7,1\n", to: "\(d)/bad-levels.csv")
            let good = littleEndian([Double](repeating: 1, count: 8).map(\.bitPattern))
            let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 2), }"
            let npys: [(String, [UInt8])] = [
                ("truncated.npy", Array(npyBytes(header: header, data: good).dropLast(5))),
                ("huge.npy", npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", data: good)),
                ("fortran.npy", npyBytes(header: "{'descr': '<f8', 'fortran_order': True, 'shape': (4, 2), }", data: good)),
                ("object.npy", npyBytes(header: "{'descr': '|O', 'fortran_order': False, 'shape': (4, 2), }", data: good)),
                ("notnpy.npy", Array("a,b\n1,2\n".utf8)),
            ]
            for (name, bytes) in npys { try Data(bytes).write(to: URL(fileURLWithPath: "\(d)/\(name)")) }
            let out = ["--epochs", "0", "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png"] + Self.tiny
            let data = ["--data", "\(d)/t.csv"]
            let cases: [(arguments: [String], status: Int32, message: String)] = [
                (data + ["--split", "0.8,0.1"], 64, "--split: expected three fractions"),
                (data + ["--split", "0.8,0.1,0.2"], 64, "sum to"),
                (data + ["--split", "nan,0.5,0.5"], 64, "is not a decimal fraction"),
                (data + ["--split", "-0.2,0.6,0.6"], 64, "not a finite number ≥ 0"),
                (data + ["--split", "0,0.5,0.5"], 64, "the train fraction must be positive"),
                (data + ["--split", "0.9,0,0.1"], 64, "the validation split has fraction 0 and no file of its own"),
                (["--data", "digits", "--split", "0.8,0.1,0.1"], 64, "apply to data files"),
                (["--data", "moons", "--validation", "\(d)/t.csv"], 64, "apply to data files"),
                (data + ["--validation", "\(d)/missing.csv"], 64, "--validation: no such file"),
                (data + ["--validation", "\(d)/t.csv", "--test", "\(d)/t.csv"], 64, "name the same file"),
                (data + ["--validation", "\(d)/wrong-name.csv", "--test", "\(d)/wide.csv", "--split", "0.8,0.1,0.1"], 64, "--split has no effect"),
                (data + ["--validation", "\(d)/wrong-name.csv"], 1, "wrong-name.csv has a column 'c' (column 2) that the training file lacks"),
                (data + ["--test", "\(d)/wide.csv"], 1, "wide.csv has 3 columns where the training file has 2: column 3 has no counterpart"),
                (["--data", "\(d)/truncated.npy"], 1, "needs 64 bytes of data, the file holds 59"),
                (["--data", "\(d)/huge.npy"], 1, "needs more than"),
                (["--data", "\(d)/fortran.npy"], 1, "Fortran"),
                (["--data", "\(d)/object.npy"], 1, "element type '|O' is not supported"),
                (["--data", "\(d)/notnpy.npy"], 1, "not a .npy file"),
                (data + ["--test", "\(d)/truncated.npy"], 1, "truncated.npy: the shape"),
                (["--data", "\(d)/levels.csv", "--levels", "4", "--validation", "\(d)/bad-levels.csv"], 1,
                 "bad-levels.csv:2: column 1: 7.0 is not an integer level in 0...3"),
            ]
            for (arguments, status, message) in cases {
                let run = try CLIErrorTests.run(arguments + out)
                HostileCLITests.expectError(run, message, arguments.joined(separator: " "))
                #expect(run.status == status, "\(arguments): exit \(run.status), expected \(status): \(run.stderr)")
            }
            #expect(!FileManager.default.fileExists(atPath: "\(d)/m.safetensors"))
        }
    }

    /// `--label-column` (and `--drop-columns`) beyond the file's columns is a usage error naming
    /// the option, the value and the column count, on every loading path (one file, separate
    /// splits, integer levels, `.npy`); it used to exit 1 with a library message naming no option.
    @Test func outOfRangeLabelColumnIsAUsageError() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("label-range") { d in
            let t = Self.table(rows: 30, columns: 3)
            try writeText(Self.csv(t.header, t.values), to: "\(d)/t.csv")
            try writeText(Self.csv(nil, t.values), to: "\(d)/plain.csv")
            try writeText((0..<20).map { "\($0 % 4),\(($0 / 4) % 4),1\n" }.joined(), to: "\(d)/levels.csv")
            try Data(npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (10, 3), }",
                              data: littleEndian((0..<30).map { Double($0).bitPattern }))).write(to: URL(fileURLWithPath: "\(d)/a.npy"))
            let out = ["--epochs", "1", "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png", "--quiet"] + Self.tiny
            let cases: [(arguments: [String], message: String)] = [
                (["--data", "\(d)/t.csv", "--label-column", "9"], "--label-column 9: \(d)/t.csv has 3 columns; column number 9 is outside 1...3"),
                (["--data", "\(d)/plain.csv", "--label-column", "4"], "--label-column 4: \(d)/plain.csv has 3 columns; column number 4 is outside 1...3"),
                (["--data", "\(d)/a.npy", "--label-column", "5"], "--label-column 5: \(d)/a.npy has 3 columns; column number 5 is outside 1...3"),
                (["--data", "\(d)/levels.csv", "--levels", "4", "--label-column", "7"],
                 "--label-column 7: \(d)/levels.csv has 3 columns; column number 7 is outside 1...3"),
                (["--data", "\(d)/t.csv", "--validation", "\(d)/t.csv.copy", "--label-column", "9"],
                 "--label-column 9: \(d)/t.csv has 3 columns; column number 9 is outside 1...3"),
                (["--data", "\(d)/t.csv", "--drop-columns", "1,12"], "--drop-columns 12: \(d)/t.csv has 3 columns; column number 12 is outside 1...3"),
                (["--data", "\(d)/t.csv", "--label-column", "z"], "--label-column z: \(d)/t.csv has no column \"z\""),
            ]
            try writeText(Self.csv(t.header, t.values), to: "\(d)/t.csv.copy")
            for (arguments, message) in cases {
                let run = try CLIErrorTests.run(arguments + out)
                #expect(run.status == 64 && run.stderr.contains(message), "\(arguments): exit \(run.status): \(run.stderr)")
            }
            // In range, the same column is excluded and training runs.
            let fine = try CLIErrorTests.run(["--data", "\(d)/t.csv", "--label-column", "3"] + out)
            #expect(fine.status == 0, "\(fine.stderr)")
        }
    }

    /// Empty `--drop-columns` entries and columns named twice are usage errors (they used to be
    /// accepted silently), and so are exclusions that leave nothing to model, with a message that
    /// fits a `.npy` array (it used to exit 1 with a "TabularDataset.csv" prefix).
    @Test func malformedExclusionsAreUsageErrors() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("exclusions") { d in
            let t = Self.table(rows: 30, columns: 3)
            try writeText(Self.csv(t.header, t.values), to: "\(d)/t.csv")
            try Data(npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (10, 3), }",
                              data: littleEndian((0..<30).map { Double($0).bitPattern }))).write(to: URL(fileURLWithPath: "\(d)/a.npy"))
            let out = ["--epochs", "1", "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png", "--quiet"] + Self.tiny
            let cases: [(arguments: [String], message: String)] = [
                (["--data", "\(d)/t.csv", "--drop-columns", ","], "--drop-columns ',': entry 1 of 2 is empty; give comma-separated column names or 1-based numbers"),
                (["--data", "\(d)/t.csv", "--drop-columns", "a,,b"], "--drop-columns 'a,,b': entry 2 of 3 is empty"),
                (["--data", "\(d)/t.csv", "--drop-columns", ""], "--drop-columns '': entry 1 of 1 is empty"),
                (["--data", "\(d)/t.csv", "--drop-columns", "1, 1"], "--drop-columns names column '1' twice; give each column once"),
                (["--data", "\(d)/t.csv", "--label-column", "b", "--drop-columns", "b"], "--label-column and --drop-columns both name column 'b'"),
                (["--data", "\(d)/t.csv", "--drop-columns", "a,1"],
                 "--drop-columns 1 names column 1 ('a') of \(d)/t.csv, which --drop-columns a already excludes; give each column once"),
                (["--data", "\(d)/a.npy", "--drop-columns", "1,2,3"], "--drop-columns excludes all 3 columns of \(d)/a.npy; nothing is left to model"),
                (["--data", "\(d)/a.npy", "--label-column", "2", "--drop-columns", "1,3"],
                 "--label-column and --drop-columns exclude all 3 columns of \(d)/a.npy; nothing is left to model"),
                (["--data", "\(d)/t.csv", "--validation", "\(d)/t.csv.copy", "--drop-columns", "a,b,c"],
                 "--drop-columns excludes all 3 columns of \(d)/t.csv"),
            ]
            try writeText(Self.csv(t.header, t.values), to: "\(d)/t.csv.copy")
            for (arguments, message) in cases {
                let run = try CLIErrorTests.run(arguments + out)
                HostileCLITests.expectError(run, message, arguments.joined(separator: " "))
                #expect(run.status == 64, "\(arguments): exit \(run.status): \(run.stderr)")
            }
            #expect(!FileManager.default.fileExists(atPath: "\(d)/m.safetensors"))
        }
    }

    /// `--data`, `--validation` and `--test` must be three files: the same path, a symbolic link
    /// or a hard link to it are refused before anything is read (the model would be selected or
    /// scored on its training rows); a copy is another file.
    @Test func oneFileAsTwoSplitsIsRefused() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("same-split-file") { d in
            let t = Self.table(rows: 40, columns: 2)
            try writeText(Self.csv(t.header, t.values), to: "\(d)/t.csv")
            try writeText(Self.csv(t.header, Array(t.values.prefix(10))), to: "\(d)/v.csv")
            try FileManager.default.createSymbolicLink(atPath: "\(d)/link.csv", withDestinationPath: "\(d)/t.csv")
            try FileManager.default.linkItem(atPath: "\(d)/v.csv", toPath: "\(d)/hard.csv")
            let out = ["--epochs", "0", "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png", "--quiet"] + Self.tiny
            let cases: [(arguments: [String], message: String)] = [
                (["--data", "\(d)/t.csv", "--validation", "\(d)/t.csv"],
                 "--data and --validation name the same file \(d)/t.csv; the validation rows must be other rows than the training rows: "
                    + "give a different file, or leave --validation out to split \(d)/t.csv"),
                (["--data", "\(d)/t.csv", "--test", "\(d)/../\(URL(fileURLWithPath: d).lastPathComponent)/t.csv"], "--data and --test name the same file"),
                (["--data", "\(d)/t.csv", "--test", "\(d)/link.csv"], "--data and --test name the same file (\(d)/t.csv and \(d)/link.csv)"),
                (["--data", "\(d)/t.csv", "--validation", "\(d)/v.csv", "--test", "\(d)/hard.csv"],
                 "--validation and --test name the same file (\(d)/v.csv and \(d)/hard.csv); the test rows must be other rows than the validation rows"),
            ]
            for (arguments, message) in cases {
                let run = try CLIErrorTests.run(arguments + out)
                HostileCLITests.expectError(run, message, arguments.joined(separator: " "))
                #expect(run.status == 64, "\(arguments): exit \(run.status): \(run.stderr)")
            }
            #expect(!FileManager.default.fileExists(atPath: "\(d)/m.safetensors"))
            let help = try CLIErrorTests.run(["--help"])
            let words = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(words.contains("It must be another file than --data and --test"), "\(help.stdout)")
        }
    }
}
