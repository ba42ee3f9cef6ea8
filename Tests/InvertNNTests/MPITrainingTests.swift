import Foundation
import Testing
import InvertNN

/// `mpirun`, found on PATH, or nil (the MPI tests are then skipped and say so; `make test`
/// installs openmpi-bin).
let mpirunPath: String? = {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let path = "\(directory)/mpirun"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}()

/// `invertnn train` under Open MPI's `mpirun` on this machine (ranks oversubscribe the cores):
/// 2 ranks train the same model as 1 process with the same global batch, and a rank with bad
/// data ends every rank with a non-zero exit within 10 s. Uses the debug binary (``CLIErrorTests``).
@Suite(.serialized, .enabled(if: mpirunPath != nil, "mpirun is not installed (apt-get install openmpi-bin): the MPI training tests are skipped"))
struct MPITrainingTests {
    /// 3 epochs of the digits with a small model in Double, 1 OpenBLAS thread per rank. Permutation
    /// mixing: with the preset's invertible-linear mixing the reflectors' gradient is zero at the
    /// start (the base density is rotation-invariant) and comes out as rounding noise whose size
    /// depends on how the batch is split; Adam divides it by ε = 1e-8 and the runs drift apart at
    /// ~1e-8 relative (measured 4.7e-8), a property of that start, not of the reduction.
    static let run = ["--couplings", "2", "--hidden-sizes", "16", "--mixing", "permutation", "--precision", "double",
                      "--epochs", "3", "--threads", "1", "--json"]

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
        var seconds: Double
    }

    /// Runs `executable arguments` with output in files (no pipe can fill up), killed after `timeout` s.
    static func launch(_ executable: String, _ arguments: [String], directory: String, timeout: Double) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = "\(directory)/stdout-\(UUID().uuidString)", err = "\(directory)/stderr-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        let start = Date()
        try process.run()
        while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            Issue.record("\(executable) \(arguments.joined(separator: " ")) still ran after \(timeout) s")
        }
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus, stdout: try String(contentsOfFile: out, encoding: .utf8),
            stderr: try String(contentsOfFile: err, encoding: .utf8), seconds: Date().timeIntervalSince(start))
    }

    static func mpirun(_ ranks: [[String]], directory: String, timeout: Double) throws -> Outcome {
        let executable = try #require(CLIErrorTests.executable).path
        // MPMD form `-np 1 A : -np 1 B` when the ranks get different arguments.
        var arguments = ["--allow-run-as-root", "--oversubscribe"]
        for (i, rank) in ranks.enumerated() {
            if i > 0 { arguments.append(":") }
            arguments += ["-np", "1", executable, "train"] + rank
        }
        return try launch(try #require(mpirunPath), arguments, directory: directory, timeout: timeout)
    }

    /// Largest |a - b| over the largest |a| of each parameter, worst over the model.
    static func relativeDifference(_ a: NormalizingFlow<Double>, _ b: NormalizingFlow<Double>) -> Double {
        var worst = 0.0
        for (p, q) in zip(a.parameters, b.parameters) {
            let scale = max(p.value.storage.map(abs).max() ?? 0, 1e-300)
            let difference = zip(p.value.storage, q.value.storage).map { abs($0 - $1) }.max() ?? 0
            worst = max(worst, difference / scale)
        }
        return worst
    }

    static func json(_ line: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test func twoRanksTrainTheModelOfOneProcess() throws {
        guard let executable = CLIErrorTests.executable else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return
        }
        try CLIErrorTests.withScratchDirectory("mpi-equal") { d in
            let one = try Self.launch(
                executable.path, ["train"] + Self.run + ["--out", "\(d)/one.safetensors", "--samples", "\(d)/one.png"],
                directory: d, timeout: 600)
            #expect(one.status == 0, "\(one.stderr)")
            let two = try Self.mpirun(
                Array(repeating: Self.run + ["--out", "\(d)/two.safetensors", "--samples", "\(d)/two.png"], count: 2),
                directory: d, timeout: 600)
            #expect(two.status == 0, "\(two.stderr)")
            let a = try Checkpoint<Double>.read(path: "\(d)/one.safetensors"), b = try Checkpoint<Double>.read(path: "\(d)/two.safetensors")
            let difference = Self.relativeDifference(a.flow, b.flow)
            #expect(difference <= 1e-12, "2 ranks vs 1 process: parameters differ by \(difference) relative")
            // One JSON line (rank 0 alone writes), with the ranks and the same figures.
            let lines = two.stdout.split(separator: "\n")
            #expect(lines.count == 1, "\(two.stdout)")
            let j1 = try Self.json(one.stdout), j2 = try Self.json(String(lines.first ?? ""))
            #expect(j1["ranks"] as? Int == 1 && j2["ranks"] as? Int == 2)
            for key in ["train_bits_per_dim", "validation_bits_per_dim", "test_bits_per_dim"] {
                let x = try #require(j1[key] as? Double), y = try #require(j2[key] as? Double)
                #expect(abs(x - y) <= 1e-12 * abs(x), "\(key): \(x) vs \(y)")
            }
            #expect(two.stderr.contains("2 rank(s) × 1 BLAS thread(s)") && two.stderr.contains("collectives"), "\(two.stderr)")
        }
    }

    @Test func aRankWithBadDataEndsEveryRank() throws {
        guard CLIErrorTests.executable != nil else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return
        }
        try CLIErrorTests.withScratchDirectory("mpi-fail") { d in
            let rows = (0..<40).map { r in (0..<4).map { String((r * 3 + $0 * 5) % 8) }.joined(separator: ",") }
            try writeText(rows.joined(separator: "\n"), to: "\(d)/good.csv")
            try writeText((rows[0..<20] + ["1,2,x,3"] + rows[20...]).joined(separator: "\n"), to: "\(d)/bad.csv")
            // Valid but other data: caught by the ranks' agreement check before the first step.
            try writeText(rows.reversed().joined(separator: "\n"), to: "\(d)/other.csv")
            let common = ["--levels", "8", "--couplings", "1", "--hidden-sizes", "4", "--epochs", "50", "--threads", "1",
                          "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png"]
            let cases: [(String, String)] = [
                ("bad.csv", "bad.csv:21: column 3: \"x\" is not a finite number"),
                ("other.csv", "the ranks disagree on the data"),
            ]
            for (file, message) in cases {
                let run = try Self.mpirun(
                    [["--data", "\(d)/good.csv"] + common, ["--data", "\(d)/\(file)"] + common], directory: d, timeout: 10)
                #expect(run.status != 0 && run.seconds < 10, "\(file): exit \(run.status) after \(run.seconds) s")
                #expect(run.stderr.contains("invertnn: error (rank") && run.stderr.contains(message), "\(file): \(run.stderr)")
                #expect(run.stdout.isEmpty, "\(run.stdout)")
                #expect(!FileManager.default.fileExists(atPath: "\(d)/m.safetensors"))
            }
        }
    }
}
