import Testing
import Foundation
import CZlib
import InvertNN

/// The `invertnn` executable as a new user meets it: every bad input gives exactly one line on
/// stderr, nothing on stdout, an exit code in 1...127, and leaves an existing output untouched.
/// Runs the debug binary next to the test bundle (built by `swift build --build-tests`).
@Suite(.serialized) struct CLIErrorTests {
    static var executable: URL? {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [directory, directory.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent("invertnn")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return nil
    }

    /// A new scratch folder for a test that runs the `invertnn` binary, or `nil` (after
    /// recording an issue) when the binary has not been built; the caller removes it.
    static func scratchDirectory(_ name: String) throws -> String? {
        guard executable != nil else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return nil
        }
        let d = temporaryPath(name)
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// Runs `invertnn <command> <arguments>`; with `standardOutput` (a file handle such as
    /// /dev/full) stdout goes there and the returned stdout is empty.
    static func run(
        _ arguments: [String], command: String = "train", standardOutput: FileHandle? = nil
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        guard let executable = Self.executable else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "invertnn binary not found next to the tests"])
        }
        process.executableURL = executable
        process.arguments = [command] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = standardOutput ?? out
        process.standardError = err
        try process.run()
        let stdout = standardOutput == nil ? out.fileHandleForReading.readDataToEndOfFile() : Data()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    /// Runs `body` with a new scratch directory named after `name`, removed afterwards.
    static func withScratchDirectory(_ name: String, _ body: (String) throws -> Void) throws {
        let directory = temporaryPath(name)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(directory)
    }

    /// Bad inputs and a fragment of the message each must produce.
    static func cases(directory: String) -> [(arguments: [String], message: String)] {
        let d = directory
        return [
            (["--data", "\(d)/missing.csv", "--levels", "16"], "no such data file"),
            (["--data", "\(d)/empty.csv", "--levels", "16"], "no data records"),
            (["--data", "\(d)/ragged.csv", "--levels", "16"], "ragged.csv:3: expected 3 columns"),
            (["--data", "\(d)/text.csv", "--levels", "16"], "text.csv:2: column 2: \"x\" is not a finite number"),
            (["--data", "\(d)/levels.csv", "--levels", "4"], "levels.csv:1: column 2: 7.0 is not an integer level in 0...3"),
            // With a header and a blank line the message names the file's line (4), not the record (2).
            (["--data", "\(d)/headed-levels.csv", "--levels", "4"], "headed-levels.csv:4: column 1: -1.0 is not an integer level in 0...3"),
            (["--data", "\(d)/cut.csv.gz", "--levels", "16"], "gzip data is truncated"),
            (["--data", "\(d)/good.csv", "--levels", "-3"], "--levels must be at least 2, got -3"),
            (["--batch-size", "0"], "--batch-size must be at least 1"),
            (["--learning-rate", "0"], "--learning-rate must lie in [1e-10, 10]"),
            (["--learning-rate", "-1"], "--learning-rate must lie in [1e-10, 10]"),
            (["--learning-rate", "nan"], "--learning-rate must lie in [1e-10, 10]"),
            (["--epochs", "-1"], "--epochs must be in 0...1000000"),
            (["--epochs", "9223372036854775807"], "--epochs must be in 0...1000000"),
            (["--epochs", "2", "--stop-after", "5"], "--stop-after 5 is beyond --epochs 2"),
            (["--data", "\(d)/good.csv", "--levels", "16", "--label-column", "0"], "--label-column: column numbers start at 1, got 0"),
            (["--data", "\(d)/good.csv", "--drop-columns", "2,-1"], "--drop-columns: column numbers start at 1, got -1"),
            (["--samples", "\(d)/no/such/dir/s.png"], "does not exist"),
            (["--threads", "99999999999"], "--threads must be in 1...1024"),
            (["--couplings", "0"], "--couplings must be in"),
            (["--hidden-sizes", "8,x"], "--hidden-sizes must be"),
            (["--temperature", "-2"], "--temperature must lie in (0, 100]"),
            (["--temperature", "1e39"], "--temperature must lie in (0, 100]"),
            (["--seed", "-1"], "--seed"),
            (["--learning-rate", "1e308"], "--learning-rate must lie in [1e-10, 10]"),
            (["--learning-rate", "1e-300"], "--learning-rate must lie in [1e-10, 10]"),
            (["--data", "\(d)/good.csv", "--label-column", "-1"], "--label-column: column numbers start at 1, got -1"),
            (["--hidden-sizes", "-1"], "--hidden-sizes must be comma-separated integers"),
            (["--couplings", "10000", "--hidden-sizes", "65536"], "lower --couplings or --hidden-sizes"),
            (["--scale-bound", "0"], "--scale-bound must lie in (0, 50]"),
            (["--scale-bound", "1e308"], "--scale-bound must lie in (0, 50]"),
            (["--logit-alpha", "0.5"], "--logit-alpha must lie in (0, 0.5)"),
            (["--logit-alpha", "-1e-3"], "--logit-alpha must lie in (0, 0.5)"),
            (["--precision", "half"], "half"),
            (["--no-such-option"], "Unknown option"),
            (["--data", d, "--levels", "16"], "is a directory, not a CSV file"),
            (["--data", "\(d)/random.csv.gz", "--levels", "16"], "not gzip data"),
            (["--out", d], "is a directory, not a file path"),
            (["--samples", d], "is a directory, not a file path"),
            (["--out", "\(d)/samples.png"], "--samples and --out name the same file"),
            // An output must not replace the data it reads.
            (["--data", "\(d)/good.csv", "--levels", "16", "--out", "\(d)/good.csv"], "--out \(d)/good.csv is the --data file"),
            (["--data", "\(d)/good.csv", "--levels", "16", "--samples", "\(d)/good.csv"], "--samples \(d)/good.csv is the --data file"),
        ]
    }

    @Test func everyBadInputIsOneLineAndANonZeroExit() throws {
        guard Self.executable != nil else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return
        }
        try Self.withScratchDirectory("cli") { directory in
            try writeText("", to: "\(directory)/empty.csv")
            try writeText("1,2,3\n4,5,6\n7,8\n", to: "\(directory)/ragged.csv")
            try writeText("1,2\n3,x\n", to: "\(directory)/text.csv")
            try writeText("1,7\n2,3\n1,1\n", to: "\(directory)/levels.csv")
            try writeText("a,b\n0,0\n\n-1,1\n1,1\n0,1\n", to: "\(directory)/headed-levels.csv")
            try writeText("1,2\n3,4\n", to: "\(directory)/random.csv.gz")  // named .gz, not gzip
            let good = (0..<2000).map { "\($0 % 16),\(($0 * 7) % 16),\(($0 * 3) % 16)" }.joined(separator: "\n")
            try writeText(good, to: "\(directory)/good.csv")
            let gz = try #require(gzopen("\(directory)/full.csv.gz", "wb"))
            let bytes = Array(good.utf8)
            _ = bytes.withUnsafeBytes { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
            gzclose(gz)
            let compressed = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/full.csv.gz"))
            try compressed.prefix(compressed.count / 2).write(to: URL(fileURLWithPath: "\(directory)/cut.csv.gz"))

            // An existing output: every failing run must leave it byte for byte as it was.
            let samples = "\(directory)/samples.png"
            try writeText("previous result", to: samples)

            for (arguments, message) in Self.cases(directory: directory) {
                let (status, stdout, stderr) = try Self.run(arguments + (arguments.contains("--samples") ? [] : ["--samples", samples]))
                let lines = stderr.split(separator: "\n")
                #expect(status > 0 && status < 128, "\(arguments): exit \(status)")
                #expect(stdout.isEmpty, "\(arguments): stdout \(stdout)")
                #expect(lines.count == 1, "\(arguments): stderr has \(lines.count) lines: \(stderr)")
                #expect(lines.first?.hasPrefix("invertnn: error: ") == true && stderr.contains(message),
                        "\(arguments): \(stderr)")
                #expect(try String(contentsOfFile: samples, encoding: .utf8) == "previous result", "\(arguments) touched the output")
                #expect(!FileManager.default.fileExists(atPath: "\(directory)/model.safetensors"), "\(arguments) wrote a model")
                #expect(try String(contentsOfFile: "\(directory)/good.csv", encoding: .utf8) == good, "\(arguments) touched the data")
            }
        }
    }

    /// A continuous column that is constant in the training split gets a note naming it (it is
    /// kept with σ = 1, but a constant has no density); training still runs.
    @Test func aConstantColumnIsNamedInANote() throws {
        guard Self.executable != nil else { return }
        try Self.withScratchDirectory("cli-constant") { directory in
            let rows = (0..<300).map { "\(Double($0 % 17) * 0.3),5.5,\(Double(($0 * 7) % 13) - 2)" }
            try writeText((["height,flag,width"] + rows).joined(separator: "\n"), to: "\(directory)/table.csv")
            let (status, _, stderr) = try Self.run([
                "--data", "\(directory)/table.csv", "--epochs", "0", "--couplings", "1", "--hidden-sizes", "8",
                "--out", "\(directory)/m.safetensors", "--samples", "\(directory)/s.png"])
            #expect(status == 0, "exit \(status): \(stderr)")
            #expect(stderr.contains("column flag of \(directory)/table.csv is constant in the training split"), "\(stderr)")
            let note = stderr.split(separator: "\n").first { $0.contains("constant") }.map(String.init) ?? ""
            #expect(!note.contains("height") && !note.contains("width"), "\(note)")
        }
    }

    /// Data whose every column is constant (5, or 3e38 where the plot window used to collapse
    /// to an empty range after training) have no density to learn: a usage error before any
    /// training, nothing written.
    @Test func allConstantColumnsAreRefusedBeforeTraining() throws {
        guard Self.executable != nil else { return }
        try Self.withScratchDirectory("cli-all-constant") { directory in
            for (name, value, shown) in [("five", "5", "5.0"), ("huge", "3e38", "3e+38")] {
                try writeText((["p,q"] + Array(repeating: "\(value),\(value)", count: 80)).joined(separator: "\n"), to: "\(directory)/\(name).csv")
                let run = try Self.run([
                    "--data", "\(directory)/\(name).csv", "--epochs", "2", "--couplings", "1", "--hidden-sizes", "8",
                    "--out", "\(directory)/m.safetensors", "--samples", "\(directory)/s.png"])
                HostileCLITests.expectError(
                    run, "--data \(directory)/\(name).csv: every modelled column is constant in the training split (p = \(shown), q = \(shown)); "
                        + "there is no density to learn: give data whose columns vary", name)
                #expect(run.status == 64, "\(name): exit \(run.status)")
                #expect(!FileManager.default.fileExists(atPath: "\(directory)/m.safetensors"), "\(name)")
            }
        }
    }

    /// A sample picture that cannot be drawn costs the picture, not the trained model: samples
    /// at temperature 100 of a column near Float's limit overflow, and the run still writes the
    /// model (which reads back), says why there is no picture, and exits 0. A constant column of
    /// 3e38 beside a varying one gets a plot window wide enough to draw.
    @Test func aFailedPictureKeepsTheModel() throws {
        guard Self.executable != nil else { return }
        try Self.withScratchDirectory("cli-picture") { directory in
            var g = SeededGenerator(seed: 8)
            let rows = (0..<120).map { _ in "\(3e38 + 1e36 * g.nextNormal(Double.self)),\(g.nextNormal(Double.self))" }
            try writeText((["big,small"] + rows).joined(separator: "\n"), to: "\(directory)/big.csv")
            let model = "\(directory)/m.safetensors", picture = "\(directory)/s.png"
            let run = try Self.run([
                "--data", "\(directory)/big.csv", "--epochs", "1", "--couplings", "1", "--hidden-sizes", "8", "--temperature", "100",
                "--out", model, "--samples", picture])
            #expect(run.status == 0, "exit \(run.status): \(run.stderr)")
            #expect(run.stderr.contains("wrote no sample picture to \(picture) (the model is saved): invertnn: invalid argument: sample (in data units)"), "\(run.stderr)")
            #expect(run.stderr.contains("overflow: the model's weights are extreme. No picture was drawn"), "\(run.stderr)")
            #expect(!FileManager.default.fileExists(atPath: picture))
            #expect(FileManager.default.fileExists(atPath: "\(directory)/m.history.csv"))
            #expect(try Checkpoint<Float>.read(path: model).flow.features == 2)
            #expect(run.stdout.contains("\"model\":"), "\(run.stdout)")

            let constant = (0..<120).map { "3e38,\(Double($0 % 11) - 5)" }
            try writeText((["flat,ramp"] + constant).joined(separator: "\n"), to: "\(directory)/flat.csv")
            let drawn = try Self.run([
                "--data", "\(directory)/flat.csv", "--epochs", "1", "--couplings", "1", "--hidden-sizes", "8",
                "--out", "\(directory)/f.safetensors", "--samples", "\(directory)/f.png"])
            #expect(drawn.status == 0, "exit \(drawn.status): \(drawn.stderr)")
            #expect(drawn.stderr.contains("wrote a scatter plot (flat, ramp)"), "\(drawn.stderr)")
            #expect(FileManager.default.fileExists(atPath: "\(directory)/f.safetensors"))
        }
    }

    /// `--threads` beyond the cores the process may use is a one-line note, and the run goes on.
    @Test func threadsBeyondTheCoresAreNoted() throws {
        guard Self.executable != nil else { return }
        try Self.withScratchDirectory("cli-threads") { directory in
            // The cores of this process's affinity mask, as `train` counts them.
            typealias Affinity = @convention(c) (pid_t, Int, UnsafeMutableRawPointer) -> Int32
            let symbol = try #require(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_getaffinity"))
            var mask = [UInt8](repeating: 0, count: 1024)
            let status = mask.withUnsafeMutableBytes { unsafeBitCast(symbol, to: Affinity.self)(0, $0.count, $0.baseAddress!) }
            #expect(status == 0)
            let cores = mask.reduce(0) { $0 + $1.nonzeroBitCount }
            let run = try Self.run([
                "--data", "moons", "--epochs", "0", "--couplings", "1", "--hidden-sizes", "8", "--threads", "\(cores + 1)",
                "--out", "\(directory)/m.safetensors", "--samples", "\(directory)/s.png"])
            #expect(run.status == 0, "exit \(run.status): \(run.stderr)")
            let notes = run.stderr.split(separator: "\n").filter { $0.contains("--threads") }
            #expect(notes == ["--threads \(cores + 1) exceeds the \(cores) core\(cores == 1 ? "" : "s") available to this process; "
                + "the workers share them, so steps are slower than with --threads \(cores)"], "\(run.stderr)")
            let fits = try Self.run([
                "--data", "moons", "--epochs", "0", "--couplings", "1", "--hidden-sizes", "8", "--threads", "1",
                "--out", "\(directory)/m.safetensors", "--samples", "\(directory)/s.png"])
            #expect(fits.status == 0 && !fits.stderr.contains("exceeds the"), "\(fits.stderr)")
        }
    }

    /// With `--levels`, an excluded text column (a label) is not parsed, as without it.
    @Test func textLabelWithLevelsIsNotParsed() throws {
        guard Self.executable != nil else { return }
        try Self.withScratchDirectory("cli-levels-label") { directory in
            let rows = (0..<60).map { "\($0 % 3),\(($0 * 2) % 3),cat\($0 % 4)" }
            try writeText((["a,b,lab"] + rows).joined(separator: "\n"), to: "\(directory)/l.csv")
            for exclusion in [["--label-column", "lab"], ["--drop-columns", "lab"]] {
                let (status, stdout, stderr) = try Self.run(
                    ["--data", "\(directory)/l.csv", "--levels", "3", "--epochs", "0", "--couplings", "1", "--hidden-sizes", "8",
                     "--quiet", "--out", "\(directory)/m.safetensors", "--samples", "\(directory)/s.png"] + exclusion)
                #expect(status == 0, "\(exclusion): \(stderr)")
                #expect(stdout.contains("\"train_bits_per_dim\""), "\(stdout)")
            }
        }
    }

    /// `eval` on a Float model names the file line of a value beyond Float's range (it used to
    /// turn into an infinity and be reported as non-finite data).
    /// An eval file narrower than the training file, without a header, is the file's problem:
    /// the message says how many columns it has and which (1-based) the model reads, not the
    /// stored 0-based `sourceColumns` entry (that wording is for a damaged checkpoint).
    @Test func aNarrowEvalFileIsDescribedInUserTerms() throws {
        guard Self.executable != nil else { return }
        try Self.withScratchDirectory("cli-eval-narrow") { directory in
            let rows = (0..<60).map { "\($0),\(Double($0 % 17) * 0.3),\(Double(($0 * 7) % 13) - 2),\(Double(($0 * 5) % 11))" }
            try writeText((["id,a,b,c"] + rows).joined(separator: "\n"), to: "\(directory)/train.csv")
            let trained = try Self.run(["--data", "\(directory)/train.csv", "--drop-columns", "id", "--epochs", "0", "--couplings", "1",
                                        "--hidden-sizes", "8", "--quiet", "--out", "\(directory)/m.safetensors", "--samples", "\(directory)/s.png"])
            #expect(trained.status == 0, "\(trained.stderr)")
            try writeText("1,2\n3,4\n", to: "\(directory)/narrow.csv")
            let run = try Self.run(["--model", "\(directory)/m.safetensors", "--data", "\(directory)/narrow.csv"], command: "eval")
            HostileCLITests.expectError(
                run, "\(directory)/narrow.csv has 2 columns and no header naming the model's; the model \(directory)/m.safetensors reads "
                    + "columns 2, 3, 4 of its training file (1-based; its dataset.sourceColumns), so it needs at least 4: give a file "
                    + "with the training file's columns, or exactly 3 in the model's order", "narrow")
            #expect(run.status == 1, "\(run.stderr)")
            #expect(!run.stderr.contains("entry 2 is 3"), "\(run.stderr)")
        }
    }

    @Test func evalNamesTheLineOfAValueBeyondFloat() throws {
        guard Self.executable != nil else { return }
        try Self.withScratchDirectory("cli-eval-range") { directory in
            let rows = (0..<60).map { "\(Double($0 % 17) * 0.3),\(Double(($0 * 7) % 13) - 2)" }
            try writeText((["a,b"] + rows).joined(separator: "\n"), to: "\(directory)/train.csv")
            var bad = rows
            bad[4] = "1e39,1"
            try writeText((["a,b"] + bad).joined(separator: "\n"), to: "\(directory)/bad.csv")
            let trained = try Self.run(["--data", "\(directory)/train.csv", "--epochs", "0", "--couplings", "1", "--hidden-sizes", "8",
                                        "--quiet", "--out", "\(directory)/m.safetensors", "--samples", "\(directory)/s.png"])
            #expect(trained.status == 0, "\(trained.stderr)")
            let (status, _, stderr) = try Self.run(
                ["--model", "\(directory)/m.safetensors", "--data", "\(directory)/bad.csv"], command: "eval")
            #expect(status == 1, "\(stderr)")
            #expect(stderr.contains("bad.csv:6: column 1 (a): 1e+39 does not fit in the model's Float precision"), "\(stderr)")
        }
    }

    /// A value whose square overflows the data's moments is named by file, line and column in
    /// Double too (it used to surface as a NaN eigenvalue of the whitening layer).
    @Test func trainNamesTheLineOfAValueBeyondTheMoments() throws {
        guard Self.executable != nil else { return }
        try Self.withScratchDirectory("cli-moments") { directory in
            var rows = (0..<60).map { "\(Double($0 % 17) * 0.3),\(Double(($0 * 7) % 13) - 2)" }
            rows[5] = "1e300,1"
            try writeText((["a,b"] + rows).joined(separator: "\n"), to: "\(directory)/big.csv")
            let (status, _, stderr) = try Self.run(
                ["--data", "\(directory)/big.csv", "--precision", "double", "--epochs", "1", "--couplings", "1", "--hidden-sizes", "8",
                 "--quiet", "--out", "\(directory)/m.safetensors", "--samples", "\(directory)/s.png"])
            #expect(status == 1, "\(stderr)")
            #expect(stderr.contains(":7: column 1: 1e+300 is too large for the data's variances"), "\(stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/m.safetensors"))
        }
    }

    /// A result that cannot be written to standard output (here /dev/full) is an error, not a
    /// silent exit 0.
    @Test func anUnwritableStandardOutputFails() throws {
        guard Self.executable != nil, let full = FileHandle(forWritingAtPath: "/dev/full") else { return }
        try Self.withScratchDirectory("cli-stdout") { directory in
            let (status, _, stderr) = try Self.run(
                ["--epochs", "0", "--couplings", "1", "--hidden-sizes", "8", "--quiet",
                 "--out", "\(directory)/m.safetensors", "--samples", "\(directory)/s.png"], standardOutput: full)
            #expect(status == 1, "\(stderr)")
            #expect(stderr.hasPrefix("invertnn: error: standard output: cannot write the result"), "\(stderr)")
        }
    }

    /// An output that fails only when it is written, after training (here a picture under
    /// /proc, which accepts no new files), must not cost the trained model: the model and its
    /// history are committed, and the run fails naming the picture (it used to keep the earlier
    /// model and lose the trained one).
    @Test func aFailedOutputLeavesTheOtherOutputUntouched() throws {
        guard Self.executable != nil, FileManager.default.fileExists(atPath: "/proc/self") else { return }
        try Self.withScratchDirectory("cli-staging") { directory in
            let good = (0..<400).map { "\($0 % 16),\(($0 * 7) % 16),\(($0 * 3) % 16)" }.joined(separator: "\n")
            try writeText(good, to: "\(directory)/good.csv")
            let model = "\(directory)/keep.safetensors"
            // An earlier model of the same kind (outputs replace only their own kind of file).
            let earlier = try Self.run([
                "--data", "\(directory)/good.csv", "--levels", "16", "--epochs", "0", "--couplings", "1",
                "--hidden-sizes", "8", "--quiet", "--out", model, "--samples", "\(directory)/earlier.png"])
            #expect(earlier.status == 0, "\(earlier.stderr)")
            try FileManager.default.removeItem(atPath: "\(directory)/earlier.png")
            for suffix in [".history.csv", ".curve.png"] {
                try? FileManager.default.removeItem(atPath: "\(directory)/keep" + suffix)
                try? FileManager.default.removeItem(atPath: model + suffix)
            }
            let previous = try Data(contentsOf: URL(fileURLWithPath: model))
            let (status, stdout, stderr) = try Self.run([
                "--data", "\(directory)/good.csv", "--levels", "16", "--epochs", "1", "--couplings", "1",
                "--hidden-sizes", "8", "--quiet", "--out", model, "--samples", "/proc/invertnn-\(getpid()).png"])
            #expect(status == 1, "exit \(status): \(stderr)")
            #expect(stdout.isEmpty)
            #expect(stderr.contains("/proc/invertnn-") && stderr.contains("the model and its history were written (\(model)), the sample picture was not"),
                    "\(stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: model)) != previous)
            #expect(try Checkpoint<Float>.read(path: model).flow.features == 3)
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
                == ["good.csv", "keep.curve.png", "keep.history.csv", "keep.safetensors"])
        }
    }
}
