import Foundation
import Testing
import InvertNN

/// `invertnn train --context-columns`, `eval` and `sample --context` on a table where x | c is a
/// known Gaussian, and the class-conditional digits, as a user runs them (debug binary).
@Suite(.serialized) struct ConditionalCLITests {
    /// A CSV `id,c,x1,x2` with x1 = c + 0.5ε₁, x2 = 1 - c + 0.3ε₂, c ~ U[-2, 2].
    /// Also returns the true mean NLL of x given c of these rows (nats).
    static func table(rows: Int, seed: UInt64) -> (text: String, nll: Double) {
        var rng = SeededGenerator(seed: seed)
        var lines = ["id,c,x1,x2"]
        var nll = 0.0
        for i in 0..<rows {
            let c = Double.random(in: -2...2, using: &rng)
            let e1 = rng.nextNormal(Double.self), e2 = rng.nextNormal(Double.self)
            lines.append("\(i),\(c),\(c + 0.5 * e1),\(1 - c + 0.3 * e2)")
            nll += 0.5 * (e1 * e1 + e2 * e2) + Double.log(2 * Double.pi * 0.5 * 0.3)
        }
        return (lines.joined(separator: "\n") + "\n", nll / Double(rows))
    }

    @Test func tabularContextTrainEvalSample() throws {
        guard let d = try CLIErrorTests.scratchDirectory("conditional-cli") else { return }
        defer { try? FileManager.default.removeItem(atPath: d) }
        try writeText(Self.table(rows: 1500, seed: 3).text, to: "\(d)/t.csv")
        let model = "\(d)/m.safetensors"
        let trained = try CLIErrorTests.run([
            "--data", "\(d)/t.csv", "--drop-columns", "id", "--context-columns", "c", "--couplings", "4",
            "--hidden-sizes", "32,32", "--epochs", "25", "--learning-rate", "3e-3", "--out", model, "--samples", "\(d)/s.png",
            "--quiet",
        ])
        #expect(trained.status == 0, "\(trained.stderr)")
        #expect(trained.stdout.contains("\"context_columns\":[\"c\"]"), "\(trained.stdout)")
        let checkpoint = try Checkpoint<Float>.read(path: model)
        #expect(checkpoint.flow.contextFeatures == 1 && checkpoint.flow.features == 2)

        // eval reads the context column by name, wherever it stands in the file.
        let evaluation = Self.table(rows: 2000, seed: 99)
        try writeText(evaluation.text, to: "\(d)/e.csv")
        let scored = try CLIErrorTests.run(["--model", model, "--data", "\(d)/e.csv", "--json", "--quiet"], command: "eval")
        #expect(scored.status == 0, "\(scored.stderr)")
        let nll = try #require(Self.number("nll", in: scored.stdout))
        #expect(abs(nll - evaluation.nll) < 0.05, "conditional NLL \(nll) vs \(evaluation.nll) analytic")
        try writeText("id,x1,x2\n0,0.1,0.2\n", to: "\(d)/missing.csv")
        let missing = try CLIErrorTests.run(["--model", model, "--data", "\(d)/missing.csv", "--quiet"], command: "eval")
        #expect(missing.status != 0 && missing.status < 128 && missing.stderr.contains("context column 'c'"), "\(missing.stderr)")

        // sample at c = 1.5: x1 ≈ 1.5, x2 ≈ -0.5.
        let sampled = try CLIErrorTests.run(
            ["--model", model, "--context", "1.5", "--count", "2000", "--csv", "\(d)/x.csv", "--quiet"], command: "sample")
        #expect(sampled.status == 0, "\(sampled.stderr)")
        let rows = try String(contentsOfFile: "\(d)/x.csv", encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",").map { Double($0)! } }
        #expect(rows.count == 2000)
        let mean1 = rows.map { $0[0] }.reduce(0, +) / 2000, mean2 = rows.map { $0[1] }.reduce(0, +) / 2000
        #expect(abs(mean1 - 1.5) < 0.1 && abs(mean2 + 0.5) < 0.1, "sample means \(mean1), \(mean2)")

        // --context-file: --count samples per row, the context first in the CSV.
        try writeText("c\n-1\n1\n", to: "\(d)/c.csv")
        let perRow = try CLIErrorTests.run(
            ["--model", model, "--context-file", "\(d)/c.csv", "--count", "3", "--csv", "\(d)/y.csv", "--quiet"], command: "sample")
        #expect(perRow.status == 0, "\(perRow.stderr)")
        let lines = try String(contentsOfFile: "\(d)/y.csv", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 7 && lines[0] == "c,x1,x2" && lines[1].hasPrefix("-1") && lines[6].hasPrefix("1"), "\(lines)")
        // The context file obeys the read limits, which sample takes like train and eval.
        let short = try CLIErrorTests.run(
            ["--model", model, "--context-file", "\(d)/c.csv", "--max-line-bytes", "1", "--csv", "\(d)/y1.csv", "--quiet"], command: "sample")
        #expect(short.status == 1 && short.stderr.contains("--max-line-bytes"), "\(short.status) \(short.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(d)/y1.csv"))

        // Missing or malformed contexts are usage errors.
        for (arguments, message) in [
            (["--model", model, "--csv", "\(d)/z.csv"], "give --context or --context-file"),
            (["--model", model, "--context", "1,2", "--csv", "\(d)/z.csv"], "--context needs 1"),
            (["--model", model, "--context", "nan", "--csv", "\(d)/z.csv"], "--context needs 1"),
            // Finite in Double, infinite in the Float model: refused as NaN is, not as a non-finite batch entry.
            (["--model", model, "--context", "1e300", "--csv", "\(d)/z.csv"],
             "--context: c = 1e+300 does not fit in the model's Float precision (largest 3.4028235e+38)"),
        ] {
            let r = try CLIErrorTests.run(arguments + ["--quiet"], command: "sample")
            #expect(r.status == 64 && r.stderr.contains(message), "\(arguments): \(r.status) \(r.stderr)")
        }
        // In a file, such a value is named by file, line and column, with the exit of a NaN there (a data error, 1).
        try writeText("c\n1\n\n-1e300\n", to: "\(d)/huge-context.csv")
        try writeText("c\n1\nnan\n", to: "\(d)/nan-context.csv")
        try writeText("id,c,x1,x2\n0,0.5,0.1,0.2\n1,0.5,1e39,0.2\n", to: "\(d)/huge-data.csv")
        try writeText("id,c,x1,x2\n0,0.5,0.1,0.2\n1,2e38,0.1,0.2\n2,1e300,0.1,0.2\n", to: "\(d)/huge-eval-context.csv")
        for (arguments, command, message) in [
            (["--model", model, "--context-file", "\(d)/huge-context.csv", "--csv", "\(d)/z.csv"], "sample",
             "huge-context.csv:4: column 1 (c): -1e+300 does not fit in the model's Float precision (largest 3.4028235e+38)"),
            (["--model", model, "--context-file", "\(d)/nan-context.csv", "--csv", "\(d)/z.csv"], "sample",
             "nan-context.csv:3: column 1: \"nan\" is not a finite number"),
            (["--model", model, "--data", "\(d)/huge-data.csv"], "eval",
             "huge-data.csv:3: column 3 (x1): 1e+39 does not fit in the model's Float precision"),
            (["--model", model, "--data", "\(d)/huge-eval-context.csv"], "eval",
             "huge-eval-context.csv:4: column 2 (c): 1e+300 does not fit in the model's Float precision"),
        ] {
            let r = try CLIErrorTests.run(arguments + ["--quiet"], command: command)
            HostileCLITests.expectError(r, message, arguments.joined(separator: " "))
            #expect(r.status == 1, "\(arguments): \(r.status) \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: "\(d)/z.csv"))
        let unknown = try CLIErrorTests.run(["--data", "\(d)/t.csv", "--context-columns", "nope", "--epochs", "1", "--quiet"])
        #expect(unknown.status == 64 && unknown.stderr.contains("no column 'nope'"), "\(unknown.stderr)")
        let everything = try CLIErrorTests.run(
            ["--data", "\(d)/t.csv", "--context-columns", "id,c,x1", "--epochs", "1", "--quiet", "--samples", "\(d)/q.png"])
        #expect(everything.status == 64 && everything.stderr.contains("at least 2"), "\(everything.stderr)")
    }

    /// A `--context-file` of the wrong width names the file and both widths, whether it is a
    /// `.npy` array, a CSV without a header or one whose header lacks a context column (a `.npy`
    /// of 3 columns used to be searched for made-up names and said only "no column 'c2'"); a CSV
    /// whose header names the context among other columns is read, with a note naming the rest.
    @Test func contextFileWidthsAreCheckedAndExtraColumnsNoted() throws {
        guard let d = try CLIErrorTests.scratchDirectory("context-width") else { return }
        defer { try? FileManager.default.removeItem(atPath: d) }
        var rng = SeededGenerator(seed: 5)
        let rows = (0..<40).map { _ in (0..<4).map { _ in String(Double.random(in: -1...1, using: &rng)) }.joined(separator: ",") }
        try writeText((["c1,c2,x1,x2"] + rows).joined(separator: "\n") + "\n", to: "\(d)/t.csv")
        let model = "\(d)/m.safetensors"
        let trained = try CLIErrorTests.run([
            "--data", "\(d)/t.csv", "--context-columns", "c1,c2", "--couplings", "1", "--hidden-sizes", "4", "--epochs", "1",
            "--out", model, "--samples", "\(d)/s.png", "--quiet",
        ])
        try #require(trained.status == 0, "\(trained.stderr)")
        let threeColumns: [Double] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
        try Data(npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", data: littleEndian(threeColumns.map(\.bitPattern))))
            .write(to: URL(fileURLWithPath: "\(d)/ctx.npy"))
        try writeText("0.1\n0.2\n", to: "\(d)/narrow.csv")
        try writeText("c1,x,y\n0.1,1,2\n", to: "\(d)/lacking.csv")
        for (file, message) in [
            ("ctx.npy", "--context-file: \(d)/ctx.npy has 3 columns and no header, but the model's context is 2 columns (c1, c2)"),
            ("narrow.csv", "--context-file: \(d)/narrow.csv has 1 column and no header, but the model's context is 2 columns (c1, c2)"),
            ("lacking.csv", "--context-file: \(d)/lacking.csv has 3 columns and no column 'c2', but the model's context is 2 columns (c1, c2)"),
        ] {
            let r = try CLIErrorTests.run(["--model", model, "--context-file", "\(d)/\(file)", "--csv", "\(d)/o.csv"], command: "sample")
            #expect(r.status == 64 && r.stderr.contains(message), "\(file): \(r.status) \(r.stderr)")
        }
        // Extra named columns: sampled from c2 and c1 by name, with a one-line note on stderr.
        try writeText("id,c2,note,c1\n7,0.5,3,-0.5\n", to: "\(d)/wide.csv")
        let wide = try CLIErrorTests.run(
            ["--model", model, "--context-file", "\(d)/wide.csv", "--count", "2", "--csv", "\(d)/w.csv"], command: "sample")
        #expect(wide.status == 0, "\(wide.stderr)")
        let noteLines = wide.stderr.split(separator: "\n").filter { $0.contains("ignored") }
        #expect(noteLines == ["ignored the columns id, note of \(d)/wide.csv, which are not the model's context (c1, c2)"], "\(wide.stderr)")
        let written = try String(contentsOfFile: "\(d)/w.csv", encoding: .utf8).split(separator: "\n")
        #expect(written.count == 3 && written[0] == "c1,c2,x1,x2" && written[1].hasPrefix("-0.5,0.5,"), "\(written)")
        // --quiet silences the note, as every other note.
        let quiet = try CLIErrorTests.run(
            ["--model", model, "--context-file", "\(d)/wide.csv", "--count", "2", "--csv", "\(d)/w.csv", "--quiet"], command: "sample")
        #expect(quiet.status == 0 && !quiet.stderr.contains("ignored"), "\(quiet.stderr)")
    }

    /// The first number after `"key":` in a JSON line.
    /// A class-conditional digits model: a label outside the model's classes is a usage error
    /// on the command line and a data error (with its row) in a context file; a long bad
    /// `--context` is shown shortened; `eval` finds the features and the label of a CSV by header.
    @Test func classLabelsAreCheckedAndEvalReadsTheLabelColumn() throws {
        guard let d = try CLIErrorTests.scratchDirectory("class-labels") else { return }
        defer { try? FileManager.default.removeItem(atPath: d) }
        let model = "\(d)/m.safetensors"
        let trained = try CLIErrorTests.run([
            "--data", "digits", "--context-columns", "label", "--epochs", "1", "--couplings", "1", "--hidden-sizes", "8",
            "--out", model, "--samples", "\(d)/s.png", "--json", "--quiet"])
        #expect(trained.status == 0, "\(trained.stderr)")
        let outside = try CLIErrorTests.run(["--model", model, "--count", "2", "--context", "12", "--csv", "\(d)/o.csv", "--quiet"], command: "sample")
        #expect(outside.status == 64 && outside.stderr.contains("not a class label"), "\(outside.status) \(outside.stderr)")
        let fraction = try CLIErrorTests.run(["--model", model, "--count", "2", "--context", "3.5", "--csv", "\(d)/o.csv", "--quiet"], command: "sample")
        #expect(fraction.status == 64 && fraction.stderr.contains("not a class label"), "\(fraction.status) \(fraction.stderr)")
        try writeText("label\n3\n11\n", to: "\(d)/ctx.csv")
        let file = try CLIErrorTests.run(["--model", model, "--context-file", "\(d)/ctx.csv", "--csv", "\(d)/o.csv", "--quiet"], command: "sample")
        #expect(file.status == 1 && file.stderr.contains("data row 2") && file.stderr.contains("11"), "\(file.status) \(file.stderr)")
        let long = String(repeating: "1", count: 5000)
        let shortened = try CLIErrorTests.run(["--model", model, "--count", "2", "--context", long, "--csv", "\(d)/o.csv", "--quiet"], command: "sample")
        #expect(shortened.status == 64 && shortened.stderr.contains("(5000 bytes)") && shortened.stderr.utf8.count < 600, "\(shortened.stderr.prefix(300))")
        let good = try CLIErrorTests.run(["--model", model, "--count", "2", "--context", "3", "--csv", "\(d)/o.csv", "--quiet"], command: "sample")
        #expect(good.status == 0, "\(good.stderr)")

        // The same test rows with a header, the label last: eval gives the figure train reported.
        let reference = try CLIErrorTests.run(["--model", model, "--data", "digits", "--json", "--quiet"], command: "eval")
        #expect(reference.status == 0, "\(reference.stderr)")
        let digits = try Digits.table()
        var lines = [(0..<64).map { "p\($0)" }.joined(separator: ",") + ",label"]
        for r in 0..<digits.pixels.rows {
            lines.append((0..<64).map { String(Int(digits.pixels[r, $0])) }.joined(separator: ",") + ",\(digits.labels[r])")
        }
        try writeText(lines.joined(separator: "\n") + "\n", to: "\(d)/all.csv")
        let scored = try CLIErrorTests.run(["--model", model, "--data", "\(d)/all.csv", "--json", "--quiet"], command: "eval")
        #expect(scored.status == 0, "\(scored.stderr)")
        #expect(scored.stdout.contains("\"rows\":1797"), "\(scored.stdout)")
    }

    static func number(_ key: String, in json: String) -> Double? {
        guard let range = json.range(of: "\"\(key)\":") else { return nil }
        let rest = json[range.upperBound...].prefix { "0123456789.eE+-".contains($0) }
        return Double(rest)
    }
}
