import Testing
import Foundation
import CZlib
@testable import InvertNN

/// Hostile files and silent wrong answers through the `invertnn` binary (issue 14): each case
/// must end with one error line and an exit code in 1...127, or with a correct result, never a
/// signal, a clobbered file or a wrong figure with exit 0. Uses the debug binary (see
/// ``CLIErrorTests``).
@Suite(.serialized) struct HostileCLITests {
    static let tiny = ["--couplings", "1", "--hidden-sizes", "8", "--quiet"]

    /// Trains a tiny model on `data` with no epochs into `directory/name` and returns its path.
    static func tinyModel(_ directory: String, data: String = "moons", extra: [String] = [], name: String = "m.safetensors") throws -> String {
        let path = "\(directory)/\(name)"
        let run = try CLIErrorTests.run(
            ["--data", data, "--epochs", "0", "--out", path, "--samples", "\(directory)/train-\(name).png"] + tiny + extra)
        #expect(run.status == 0, "\(run.stderr)")
        return path
    }

    /// A copy of the checkpoint at `path` with every entry of the tensors whose names end in
    /// `suffix` set to `value`, written to `target`.
    static func rewrite(_ path: String, suffix: String, value: Double, to target: String) throws {
        var file = try SafeTensors.read(path: path)
        var touched = 0
        for i in file.tensors.indices where file.tensors[i].name.hasSuffix(suffix) {
            let old = file.tensors[i]
            if old.dtype == .f32 {
                file.tensors[i] = try SafeTensors.Tensor(name: old.name, shape: old.shape, values: [Float](repeating: Float(value), count: old.shape.reduce(1, *)))
            } else {
                file.tensors[i] = try SafeTensors.Tensor(name: old.name, shape: old.shape, values: [Double](repeating: value, count: old.shape.reduce(1, *)))
            }
            touched += 1
        }
        #expect(touched > 0, "no tensor named *\(suffix) in \(file.tensors.map(\.name))")
        try file.write(to: target)
    }

    /// A copy of the checkpoint at `path` with metadata `key` replaced by `transform(old)`.
    static func rewriteMetadata(_ path: String, key: String, to target: String, _ transform: (String) -> String) throws {
        var file = try SafeTensors.read(path: path)
        file.metadata[key] = transform(file.metadata[key] ?? "")
        try file.write(to: target)
    }

    static func expectError(_ run: (status: Int32, stdout: String, stderr: String), _ message: String, _ label: String,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(run.status > 0 && run.status < 128, "\(label): exit \(run.status): \(run.stderr)", sourceLocation: sourceLocation)
        #expect(run.stdout.isEmpty, "\(label): stdout \(run.stdout)", sourceLocation: sourceLocation)
        #expect(run.stderr.split(separator: "\n").count == 1 && run.stderr.hasPrefix("invertnn: error: "),
                "\(label): \(run.stderr)", sourceLocation: sourceLocation)
        #expect(run.stderr.contains(message), "\(label): expected “\(message)” in \(run.stderr)", sourceLocation: sourceLocation)
    }

    /// Item 1 and 9: finite weights whose samples are huge (e^80 in Float) draw a picture with
    /// the points outside the window left out; samples that overflow (e^100) are an error that
    /// writes nothing, as PNG or CSV.
    @Test func hugeAndInfiniteSamples() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-samples") { d in
            let model = try Self.tinyModel(d)
            try Self.rewrite(model, suffix: "logScale", value: 80, to: "\(d)/huge.safetensors")
            try Self.rewrite(model, suffix: "logScale", value: 100, to: "\(d)/inf.safetensors")
            let huge = try CLIErrorTests.run(["--model", "\(d)/huge.safetensors", "--png", "\(d)/h.png", "--count", "200"], command: "sample")
            #expect(huge.status == 0, "exit \(huge.status): \(huge.stderr)")
            #expect(FileManager.default.fileExists(atPath: "\(d)/h.png"))
            for output in [["--png", "\(d)/i.png"], ["--csv", "\(d)/i.csv"]] {
                let run = try CLIErrorTests.run(["--model", "\(d)/inf.safetensors", "--count", "50"] + output, command: "sample")
                Self.expectError(run, "not finite", "\(output)")
                #expect(!FileManager.default.fileExists(atPath: output[1]), "\(output) was written")
            }
        }
    }
}

extension HostileCLITests {
    /// Writes `header` and `rows` rows of three continuous columns to `path`.
    static func writeTable(_ path: String, header: String = "a,b,c", rows: Int = 200) throws {
        let lines = (0..<rows).map { "\(Double($0 % 17) * 0.3),\(Double(($0 * 7) % 13) - 2),\(Double(($0 * 5) % 11) * 0.5)" }
        try writeText(([header] + lines).joined(separator: "\n") + "\n", to: path)
    }

    /// Item 2: column indices read from a checkpoint are checked before use (a -1 or an index
    /// beyond the file used to trap in the Matrix subscript).
    @Test func badSourceColumnsInACheckpointAreAnError() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-columns") { d in
            try Self.writeTable("\(d)/t.csv")
            try Self.writeTable("\(d)/plain.csv", header: "0,0,0")  // no header: positions decide
            let model = try Self.tinyModel(d, data: "\(d)/t.csv", extra: ["--drop-columns", "c"])
            let stored = try #require(try SafeTensors.read(path: model).metadata["dataset"])
            #expect(stored.contains("sourceColumns"), "\(stored)")
            for (label, replacement) in [("negative", "[-1, 1]"), ("beyond", "[0, 7]"), ("repeated", "[1, 1]")] {
                try Self.rewriteMetadata(model, key: "dataset", to: "\(d)/\(label).safetensors") {
                    $0.replacingOccurrences(of: #""sourceColumns"\s*:\s*\[[^\]]*\]"#, with: "\"sourceColumns\": \(replacement)",
                                            options: .regularExpression)
                }
                let run = try CLIErrorTests.run(["--model", "\(d)/\(label).safetensors", "--data", "\(d)/plain.csv"], command: "eval")
                Self.expectError(run, "sourceColumns", label)
            }
        }
    }
}

extension HostileCLITests {
    /// Item 8: `eval` matches columns by the header names of training, so reordered columns or
    /// an extra `id` column first give the same figure as the training file; a missing column is
    /// an error naming it.
    @Test func evalMatchesColumnsByHeaderName() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-header") { d in
            try Self.writeTable("\(d)/t.csv")
            let model = try Self.tinyModel(d, data: "\(d)/t.csv", extra: ["--epochs", "2", "--precision", "double"])
            let text = try String(contentsOfFile: "\(d)/t.csv", encoding: .utf8)
            let rows = text.split(separator: "\n").dropFirst().map { $0.split(separator: ",").map(String.init) }
            try writeText((["c,a,b"] + rows.map { "\($0[2]),\($0[0]),\($0[1])" }).joined(separator: "\n"), to: "\(d)/reordered.csv")
            try writeText(([",a,b,c"] + rows.enumerated().map { "\($0.offset),\($0.element.joined(separator: ","))" }).joined(separator: "\n"),
                          to: "\(d)/indexed.csv")
            try writeText((["a,c"] + rows.map { "\($0[0]),\($0[2])" }).joined(separator: "\n"), to: "\(d)/missing.csv")
            func nll(_ file: String) throws -> (Double?, String) {
                let run = try CLIErrorTests.run(["--model", model, "--data", "\(d)/\(file)", "--json"], command: "eval")
                #expect(run.status == 0, "\(file): \(run.stderr)")
                let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
                let split = (object?["splits"] as? [[String: Any]])?.first
                return (split?["nll"] as? Double, run.stderr)
            }
            let (reference, _) = try nll("t.csv")
            let (reordered, _) = try nll("reordered.csv")
            let (indexed, note) = try nll("indexed.csv")
            #expect(reference != nil && reference!.isFinite)
            #expect(reordered == reference, "reordered \(String(describing: reordered)) vs \(String(describing: reference))")
            #expect(indexed == reference, "indexed \(String(describing: indexed)) vs \(String(describing: reference))")
            #expect(note.contains("ignored the column"), "\(note)")
            let run = try CLIErrorTests.run(["--model", model, "--data", "\(d)/missing.csv"], command: "eval")
            Self.expectError(run, "lacks the column b", "missing")
        }
    }
}

extension HostileCLITests {
    /// Item 8: a first column without a name (pandas' `to_csv` index) gets a note at training.
    @Test func anUnnamedFirstColumnGetsANote() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-index") { d in
            let rows = (0..<100).map { "\($0),\(Double($0 % 17) * 0.3),\(Double(($0 * 7) % 13) - 2)" }
            try writeText(([",a,b"] + rows).joined(separator: "\n"), to: "\(d)/p.csv")
            let run = try CLIErrorTests.run(["--data", "\(d)/p.csv", "--epochs", "0", "--couplings", "1", "--hidden-sizes", "8",
                                             "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png"])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stderr.contains("column 1 of \(d)/p.csv has no name"), "\(run.stderr)")
        }
    }
}

extension HostileCLITests {
    /// Items 5 and 13: only regular files are data or models. A device (a symbolic link to
    /// /dev/zero made here) or a FIFO is a usage error before anything is read (they used to
    /// read 4 GB and abort, or block).
    @Test func onlyRegularFilesAreInputs() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-devices") { d in
            let model = try Self.tinyModel(d)
            try FileManager.default.createSymbolicLink(atPath: "\(d)/zero.csv", withDestinationPath: "/dev/zero")
            #expect(mkfifo("\(d)/fifo.csv", 0o600) == 0)
            for input in ["zero.csv", "fifo.csv"] {
                let path = "\(d)/\(input)"
                let cases: [(String, [String], String)] = [
                    ("train", ["--data", path, "--samples", "\(d)/s.png"], "--data: \(path) is a"),
                    ("eval", ["--model", model, "--data", path], "--data: \(path) is a"),
                    ("density", ["--model", model, "--data", path, "--png", "\(d)/p.png"], "--data: \(path) is a"),
                    ("sample", ["--model", path, "--png", "\(d)/p.png"], "--model: \(path) is a"),
                    ("eval", ["--model", path, "--data", "moons"], "--model: \(path) is a"),
                    ("train", ["--resume", path, "--samples", "\(d)/s.png"], "--resume: \(path) is a"),
                ]
                for (command, arguments, message) in cases {
                    let run = try CLIErrorTests.run(arguments, command: command)
                    Self.expectError(run, message, "\(command) \(arguments)")
                    #expect(run.status == 64, "\(command) \(arguments): exit \(run.status)")
                }
            }
            // The library refuses them too.
            #expect(throws: InvertNNError.self) { try GzipReader.read(path: "\(d)/zero.csv") }
            #expect(throws: CheckpointError.self) { try SafeTensors.read(path: "\(d)/fifo.csv") }
        }
    }

    /// Item 10: `density --data` naming a missing file or a misspelt dataset is an error (it
    /// used to draw the picture without the training points and exit 0).
    @Test func densityRefusesMissingData() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-density") { d in
            let model = try Self.tinyModel(d)
            for (data, message) in [("\(d)/none.csv", "no such data file"), ("moosn", "no such data file: moosn"),
                                    ("digits", "is image data")] {
                let run = try CLIErrorTests.run(["--model", model, "--data", data, "--png", "\(d)/p.png", "--size", "16"], command: "density")
                Self.expectError(run, message, data)
                #expect(!FileManager.default.fileExists(atPath: "\(d)/p.png"))
            }
        }
    }
}

extension HostileCLITests {
    /// Item 7: an output path that is a symbolic link (made here, never the system's /dev) is
    /// written through: the link stays and its target gets the result (it used to be replaced by
    /// a regular file). A link to a FIFO is refused with exit 64, the link intact. Item 13:
    /// stale staging files of our naming, left by a killed run, are removed on the next write;
    /// other files stay.
    @Test func symbolicLinksAreWrittenThrough() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-links") { d in
            let model = try Self.tinyModel(d)
            try FileManager.default.createDirectory(atPath: "\(d)/out", withIntermediateDirectories: true)
            try writeText("x,y\n0,0\n", to: "\(d)/out/target.csv")  // an earlier sample file: ours to replace
            try FileManager.default.createSymbolicLink(atPath: "\(d)/link.csv", withDestinationPath: "out/target.csv")
            #expect(mkfifo("\(d)/fifo", 0o600) == 0)
            try FileManager.default.createSymbolicLink(atPath: "\(d)/pipe.csv", withDestinationPath: "\(d)/fifo")
            // A finished process: its pid names a stale staging file.
            let done = Process()
            done.executableURL = URL(fileURLWithPath: "/bin/true")
            try done.run()
            done.waitUntilExit()
            let stale = "\(d)/out/.target.csv.staged-\(done.processIdentifier)"
            try writeText("stale", to: stale)
            try writeText("keep", to: "\(d)/out/.target.csv.staged-x")

            let run = try CLIErrorTests.run(["--model", model, "--csv", "\(d)/link.csv", "--count", "5"], command: "sample")
            #expect(run.status == 0, "\(run.stderr)")
            let attributes = try FileManager.default.attributesOfItem(atPath: "\(d)/link.csv")
            #expect(attributes[.type] as? FileAttributeType == .typeSymbolicLink, "the link was replaced")
            let written = try String(contentsOfFile: "\(d)/out/target.csv", encoding: .utf8)
            #expect(written.split(separator: "\n").count == 6, "\(written)")
            #expect(!FileManager.default.fileExists(atPath: stale), "the stale staging file is still there")
            #expect(FileManager.default.fileExists(atPath: "\(d)/out/.target.csv.staged-x"))

            for (command, arguments) in [("sample", ["--model", model, "--csv", "\(d)/pipe.csv"]),
                                         ("eval", ["--model", model, "--data", "moons", "--per-row", "\(d)/pipe.csv"])] {
                let refused = try CLIErrorTests.run(arguments, command: command)
                Self.expectError(refused, "FIFO", command)
                #expect(refused.status == 64)
                let kind = try FileManager.default.attributesOfItem(atPath: "\(d)/pipe.csv")[.type] as? FileAttributeType
                #expect(kind == .typeSymbolicLink)
            }
            // The library writes through links too.
            try AtomicFile.write(text: "library", to: "\(d)/link.csv")
            #expect(try String(contentsOfFile: "\(d)/out/target.csv", encoding: .utf8) == "library")
            #expect(throws: InvertNNError.self) { try AtomicFile.write(text: "x", to: "\(d)/pipe.csv") }
        }
    }
}

extension HostileCLITests {
    /// Item 9: a model whose log-densities overflow makes `eval` fail naming the row (it used
    /// to print `NLL nan`/`inf` with exit 0).
    @Test func evalRefusesNonFiniteResults() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-eval-inf") { d in
            let model = try Self.tinyModel(d)
            try Self.rewrite(model, suffix: "logScale", value: -100, to: "\(d)/inf.safetensors")
            for extra in [[String](), ["--json"]] {
                let run = try CLIErrorTests.run(["--model", "\(d)/inf.safetensors", "--data", "moons"] + extra, command: "eval")
                Self.expectError(run, "train row 1: the log-density is", "eval \(extra)")
            }
        }
    }

    /// Item 13: CLI corner cases: a CR-only CSV (classic Mac OS) trains; a header beyond the
    /// safetensors limit names the limit.
    @Test func crOnlyCSVAndHeaderLimit() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-cr") { d in
            let rows = (0..<120).map { "\(Double($0 % 17) * 0.3),\(Double(($0 * 7) % 13) - 2)" }
            try writeText((["a,b"] + rows).joined(separator: "\r"), to: "\(d)/mac.csv")
            let run = try CLIErrorTests.run(["--data", "\(d)/mac.csv", "--epochs", "0", "--out", "\(d)/m.safetensors",
                                             "--samples", "\(d)/s.png", "--json"] + Self.tiny)
            #expect(run.status == 0, "\(run.stderr)")
            let model = try Checkpoint<Float>.read(path: "\(d)/m.safetensors")
            #expect(model.flow.features == 2)
            // 8-byte length of 200 MB followed by a few bytes: the message names the limit.
            var bytes = [UInt8](repeating: 0, count: 64)
            withUnsafeBytes(of: UInt64(200_000_000).littleEndian) { for i in 0..<8 { bytes[i] = $0[i] } }
            try Data(bytes).write(to: URL(fileURLWithPath: "\(d)/big.safetensors"))
            let big = try CLIErrorTests.run(["--model", "\(d)/big.safetensors", "--data", "moons"], command: "eval")
            Self.expectError(big, "beyond the limit of 100000000 bytes", "header")
        }
    }
}

extension HostileCLITests {
    /// Writes `text` gzip-compressed to `path`, `repeats` times (a small file that inflates).
    static func writeGzip(_ text: String, repeats: Int, to path: String) throws {
        let gz = try #require(gzopen(path, "wb9"))
        let bytes = Array(text.utf8)
        for _ in 0..<repeats { _ = bytes.withUnsafeBytes { gzwrite(gz, $0.baseAddress, UInt32($0.count)) } }
        gzclose(gz)
    }

    /// Item 3: a small `.gz` that inflates beyond `--max-data-bytes`, or one line beyond
    /// `--max-line-bytes` (4 MiB by default), fails while reading, naming the limit and the
    /// option; raising the option lets the same file through.
    @Test func decompressedSizeAndLineLengthAreBounded() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-bomb") { d in
            // 100 kB inflated; two alternating rows, since data whose every column is constant are refused.
            try Self.writeGzip(String(repeating: "1,2\n3,5\n", count: 500), repeats: 25, to: "\(d)/bomb.csv.gz")
            try Self.writeGzip(String(repeating: "1,", count: 1000), repeats: 2500, to: "\(d)/line.csv.gz")     // one 5 MB line
            let size = try FileManager.default.attributesOfItem(atPath: "\(d)/line.csv.gz")[.size] as? Int ?? 0
            #expect(size < 100_000)
            let common = ["--epochs", "0", "--samples", "\(d)/s.png"] + Self.tiny
            let bomb = try CLIErrorTests.run(["--data", "\(d)/bomb.csv.gz", "--max-data-bytes", "50000"] + common)
            Self.expectError(bomb, "exceed 50000 bytes (decompressed)", "bomb")
            #expect(bomb.stderr.contains("--max-data-bytes"))
            let line = try CLIErrorTests.run(["--data", "\(d)/line.csv.gz"] + common)
            Self.expectError(line, "line.csv.gz:1: the line is longer than 4194304 bytes", "line")
            #expect(line.stderr.contains("--max-line-bytes"))
            let eval = try CLIErrorTests.run(["--model", try Self.tinyModel(d), "--data", "\(d)/line.csv.gz", "--max-line-bytes", "1000"],
                                             command: "eval")
            Self.expectError(eval, "longer than 1000 bytes", "eval")
            // Raised limits let the same file through.
            let raised = try CLIErrorTests.run(["--data", "\(d)/bomb.csv.gz", "--max-data-bytes", "200000"] + common + ["--out", "\(d)/b.safetensors"])
            #expect(raised.status == 0, "\(raised.stderr)")
        }
        // The library bounds every read, within one chunk of the limit.
        let path = temporaryPath("limits.gz")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Self.writeGzip(String(repeating: "3,4\n", count: 1000), repeats: 200, to: path)
        #expect(throws: InvertNNError.self) { try GzipReader.read(path: path, limits: ReadLimits(maximumBytes: 500_000)) }
        #expect(try GzipReader.read(path: path, limits: ReadLimits(maximumBytes: 800_000, maximumLineBytes: 3)).count == 800_000)
        #expect(throws: InvertNNError.self) { try GzipReader.read(path: path, limits: ReadLimits(maximumLineBytes: 2)) }
    }
}

extension HostileCLITests {
    /// Item 14: `eval --data NAME` and `train` report the same bits/dim per split for the same
    /// model: both draw each split's dequantization noise from
    /// `TrainingConfiguration.evaluationNoiseSeed(split:evaluationSeed:)`.
    @Test func evalAgreesWithTrain() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-agree") { d in
            let trained = try CLIErrorTests.run(["--data", "digits", "--epochs", "0", "--out", "\(d)/m.safetensors",
                                                 "--samples", "\(d)/s.png", "--precision", "double"] + Self.tiny)
            #expect(trained.status == 0, "\(trained.stderr)")
            let train = try #require(try JSONSerialization.jsonObject(with: Data(trained.stdout.utf8)) as? [String: Any])
            let run = try CLIErrorTests.run(["--model", "\(d)/m.safetensors", "--data", "digits", "--json", "--quiet"], command: "eval")
            #expect(run.status == 0, "\(run.stderr)")
            let eval = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
            let splits = try #require(eval["splits"] as? [[String: Any]])
            for split in splits {
                let name = try #require(split["name"] as? String)
                let a = try #require(split["bits_per_dim"] as? Double), b = try #require(train["\(name)_bits_per_dim"] as? Double)
                #expect(abs(a - b) < 1e-9, "\(name): eval \(a), train \(b)")
            }
        }
    }
}

extension HostileCLITests {
    /// Item 21: with `--json` every command prints exactly one JSON object, on one line, with
    /// sorted keys, and nothing else on stdout.
    @Test func jsonEverywhere() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-json") { d in
            let runs: [(String, [String])] = [
                ("train", ["--data", "moons", "--epochs", "1", "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png", "--json"] + Self.tiny),
                ("sample", ["--model", "\(d)/m.safetensors", "--csv", "\(d)/x.csv", "--count", "5", "--json"]),
                ("eval", ["--model", "\(d)/m.safetensors", "--data", "moons", "--json"]),
                ("density", ["--model", "\(d)/m.safetensors", "--png", "\(d)/p.png", "--size", "16", "--json"]),
            ]
            for (command, arguments) in runs {
                let run = try CLIErrorTests.run(arguments, command: command)
                #expect(run.status == 0, "\(command): \(run.stderr)")
                let lines = run.stdout.split(separator: "\n")
                #expect(lines.count == 1, "\(command): stdout \(run.stdout)")
                let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
                #expect(object != nil, "\(command): \(run.stdout)")
                // Keys in sorted order, as JSONEncoder's .sortedKeys writes them.
                let keys = (object ?? [:]).keys.sorted()
                let positions = keys.compactMap { run.stdout.range(of: "\"\($0)\":")?.lowerBound }
                #expect(positions == positions.sorted(), "\(command): keys not sorted in \(run.stdout)")
                #expect(!run.stdout.contains("\\/"), "\(command): escaped slashes")
            }
        }
    }
}

extension HostileCLITests {
    /// Item 18: `train` writes the per-epoch history CSV and a training-curve PNG beside the
    /// model, committed with it; the JSON names the CSV.
    @Test func historyAndCurveBesideTheModel() throws {
        guard CLIErrorTests.executable != nil else { Issue.record("invertnn binary not built"); return }
        try CLIErrorTests.withScratchDirectory("hostile-history") { d in
            let run = try CLIErrorTests.run(["--data", "moons", "--epochs", "3", "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png"] + Self.tiny)
            #expect(run.status == 0, "\(run.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
            #expect(json["history"] as? String == "\(d)/m.history.csv")
            let lines = try String(contentsOfFile: "\(d)/m.history.csv", encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 5, "\(lines)")  // header + epochs 0...3
            #expect(lines.first?.hasPrefix("epoch,steps,train_nll,train_nats_per_dim,validation_nll") == true)
            let rows = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            #expect(rows.map { $0[0] } == ["0", "1", "2", "3"])
            // The validation figure of the best epoch is the JSON's.
            let best = try #require(json["best_epoch"] as? Int)
            let validation = try #require(json["validation_nats_per_dim"] as? Double)
            #expect(abs((Double(rows[best][5]) ?? .nan) - validation) < 1e-12)
            let png = try Data(contentsOf: URL(fileURLWithPath: "\(d)/m.curve.png"))
            #expect(png.count > 100 && png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]))
            #expect(png[16..<24] == Data([0, 0, 2, 0x80, 0, 0, 1, 0xA4]))  // 640 × 420
        }
    }
}
