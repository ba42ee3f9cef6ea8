import Testing
import Foundation

/// Outputs replace only files of their own kind (fresh-user testing found `--out notes.txt`
/// silently replaced by a checkpoint): an existing file that is not a checkpoint, a PNG or a CSV
/// with the expected header is a usage error (exit 64) and stays as it was.
@Suite struct OutputReplacementCLITests {
    @Test func foreignFilesAreNeverReplaced() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("replace") { d in
            let notes = "my notes, not a model\n"
            for name in ["notes.txt", "picture.png", "rows.csv", "density.csv"] {
                try notes.write(toFile: "\(d)/\(name)", atomically: true, encoding: .utf8)
            }
            let common = ["--data", "moons", "--epochs", "1", "--couplings", "1", "--hidden-sizes", "8"]
            let intoNotes = try CLIErrorTests.run(common + ["--out", "\(d)/notes.txt", "--samples", "\(d)/s.png"])
            #expect(intoNotes.status == 64 && intoNotes.stderr.contains("not replacing"), "\(intoNotes.stderr)")
            let intoPicture = try CLIErrorTests.run(common + ["--out", "\(d)/m.safetensors", "--samples", "\(d)/picture.png"])
            #expect(intoPicture.status == 64, "\(intoPicture.stderr)")
            for name in ["notes.txt", "picture.png"] {
                #expect(try String(contentsOfFile: "\(d)/\(name)", encoding: .utf8) == notes, "\(name) was changed")
            }

            // Our own outputs are replaced on the next run, and a touched empty file is fine.
            FileManager.default.createFile(atPath: "\(d)/m.safetensors", contents: Data())
            let first = try CLIErrorTests.run(common + ["--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png"])
            #expect(first.status == 0, "\(first.stderr)")
            let again = try CLIErrorTests.run(common + ["--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png"])
            #expect(again.status == 0, "\(again.stderr)")

            let csv = try CLIErrorTests.run(["--model", "\(d)/m.safetensors", "--count", "5", "--csv", "\(d)/rows.csv"], command: "sample")
            #expect(csv.status == 64 && csv.stderr.contains("not replacing"), "\(csv.stderr)")
            let perRow = try CLIErrorTests.run(
                ["--model", "\(d)/m.safetensors", "--data", "moons", "--per-row", "\(d)/density.csv"], command: "eval")
            #expect(perRow.status == 64, "\(perRow.stderr)")
            for name in ["rows.csv", "density.csv"] {
                #expect(try String(contentsOfFile: "\(d)/\(name)", encoding: .utf8) == notes, "\(name) was changed")
            }
            let samples = try CLIErrorTests.run(["--model", "\(d)/m.safetensors", "--count", "5", "--csv", "\(d)/new.csv"], command: "sample")
            #expect(samples.status == 0, "\(samples.stderr)")
            let resampled = try CLIErrorTests.run(["--model", "\(d)/m.safetensors", "--count", "7", "--csv", "\(d)/new.csv"], command: "sample")
            #expect(resampled.status == 0, "\(resampled.stderr)")

            // The whole first line must match: a data file whose header merely starts like ours
            // stays, and so does a PNG another tool made (RGB here).
            let sampleHeader = try String(contentsOfFile: "\(d)/new.csv", encoding: .utf8).split(separator: "\n")[0]
            let longer = "\(sampleHeader),z\n1,2,3\n"
            try longer.write(toFile: "\(d)/longer.csv", atomically: true, encoding: .utf8)
            let intoLonger = try CLIErrorTests.run(["--model", "\(d)/m.safetensors", "--count", "5", "--csv", "\(d)/longer.csv"], command: "sample")
            #expect(intoLonger.status == 64, "\(intoLonger.stderr)")
            #expect(try String(contentsOfFile: "\(d)/longer.csv", encoding: .utf8) == longer)
            var foreign = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13])
            foreign += Data("IHDR".utf8) + Data([0, 0, 0, 4, 0, 0, 0, 4, 8, 2, 0, 0, 0, 0, 0, 0, 0])
            foreign += Data([0, 0, 0, 0]) + Data("IEND".utf8) + Data([0xAE, 0x42, 0x60, 0x82])
            try foreign.write(to: URL(fileURLWithPath: "\(d)/foreign.png"))
            let intoForeign = try CLIErrorTests.run(["--model", "\(d)/m.safetensors", "--count", "5", "--png", "\(d)/foreign.png"], command: "sample")
            #expect(intoForeign.status == 64, "\(intoForeign.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(d)/foreign.png")) == foreign)
        }
    }

    /// A sample CSV has the training table's header, so the header rule alone would let
    /// `sample --csv` replace the data the model was trained on; it is refused by name.
    @Test func samplesNeverReplaceTheTrainingData() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("replace-data") { d in
            let rows = (0..<80).map { i in "\(Double(i % 9) * 0.3),\(Double(i % 7) * -0.2 + Double(i) * 0.01)" }
            let table = "x,y\n" + rows.joined(separator: "\n") + "\n"
            try table.write(toFile: "\(d)/xy.csv", atomically: true, encoding: .utf8)
            let trained = try CLIErrorTests.run(
                ["--data", "\(d)/xy.csv", "--epochs", "1", "--couplings", "1", "--hidden-sizes", "8",
                 "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png"])
            #expect(trained.status == 0, "\(trained.stderr)")
            let over = try CLIErrorTests.run(["--model", "\(d)/m.safetensors", "--count", "3", "--csv", "\(d)/xy.csv"], command: "sample")
            #expect(over.status == 64 && over.stderr.contains("is the training data"), "\(over.status): \(over.stderr)")
            #expect(try String(contentsOfFile: "\(d)/xy.csv", encoding: .utf8) == table)
            // Another file of the same header is an earlier sample file as far as the rule can tell.
            let beside = try CLIErrorTests.run(["--model", "\(d)/m.safetensors", "--count", "3", "--csv", "\(d)/other.csv"], command: "sample")
            #expect(beside.status == 0, "\(beside.stderr)")
        }
    }

    @Test func imageGridsAreBounded() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("grid") { d in
            let trained = try CLIErrorTests.run(
                ["--data", "digits", "--epochs", "1", "--couplings", "1", "--hidden-sizes", "8", "--out", "\(d)/m.safetensors",
                 "--samples", "\(d)/s.png"])
            #expect(trained.status == 0, "\(trained.stderr)")
            let huge = try CLIErrorTests.run(["--model", "\(d)/m.safetensors", "--count", "5000", "--png", "\(d)/g.png"], command: "sample")
            #expect(huge.status == 64 && huge.stderr.contains("at most 4096 images"), "\(huge.stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(d)/g.png"))
            let csv = try CLIErrorTests.run(["--model", "\(d)/m.safetensors", "--count", "5000", "--csv", "\(d)/g.csv"], command: "sample")
            #expect(csv.status == 0, "\(csv.stderr)")
        }
    }
}
