import Testing
import Foundation
import InvertNN

/// `invertnn train --resume` as a user meets it: a continued run equals an uninterrupted one and
/// may overwrite its own checkpoint; every bad checkpoint is one line, a non-zero exit and no
/// output. Uses the debug binary (see ``CLIErrorTests``).
@Suite(.serialized) struct ResumeCLITests {
    static let tiny = ["--couplings", "1", "--hidden-sizes", "8", "--precision", "double", "--quiet"]

    @Test func resumeContinuesExactlyAndRejectsBadCheckpoints() throws {
        guard let d = try CLIErrorTests.scratchDirectory("resume-cli") else { return }
        defer { try? FileManager.default.removeItem(atPath: d) }
        func train(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try CLIErrorTests.run(arguments)
        }
        func drop(_ json: String) -> String { json.replacingOccurrences(of: #""seconds":[0-9.e-]+,"#, with: "", options: .regularExpression) }

        // 2 epochs at once, and 1 epoch (the schedule spanning 2) + resume into the same file.
        let whole = try train(Self.tiny + ["--epochs", "2", "--out", "\(d)/whole.safetensors", "--samples", "\(d)/w.png"])
        #expect(whole.status == 0, "\(whole.stderr)")
        let part = try train(Self.tiny + ["--epochs", "2", "--stop-after", "1", "--out", "\(d)/run.safetensors", "--samples", "\(d)/p.png"])
        #expect(part.status == 0, "\(part.stderr)")
        let resumed = try train(["--resume", "\(d)/run.safetensors", "--out", "\(d)/run.safetensors", "--samples", "\(d)/r.png", "--couplings", "3"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("--couplings ignored") && resumed.stderr.contains("resuming"), "\(resumed.stderr)")
        #expect(drop(resumed.stdout).replacingOccurrences(of: "run.safetensors", with: "whole.safetensors")
            .replacingOccurrences(of: "run.history.csv", with: "whole.history.csv") == drop(whole.stdout))
        let a = try Checkpoint<Double>.read(path: "\(d)/whole.safetensors"), b = try Checkpoint<Double>.read(path: "\(d)/run.safetensors")
        #expect(a.flow.parameters.map(\.value) == b.flow.parameters.map(\.value))
        #expect(a.trainingState == nil && b.trainingState?.epoch == 2)
        // The CLI's digits run is the library's recipe: its defaults are TrainingConfiguration's.
        #expect(b.trainingState?.configuration == TrainingConfiguration(epochs: 2))

        // A model-only checkpoint resumes with a fresh optimizer and says so.
        let fresh = try train(["--resume", "\(d)/whole.safetensors", "--epochs", "1", "--out", "\(d)/fresh.safetensors", "--samples", "\(d)/f.png"])
        #expect(fresh.status == 0 && fresh.stderr.contains("no training state"), "\(fresh.stderr)")

        // Bad checkpoints: a corrupted optimizer tensor, a truncated file, another dimension.
        var file = try SafeTensors.read(path: "\(d)/run.safetensors")
        let index = try #require(file.tensors.firstIndex { $0.name.hasPrefix("optimizer.v.") })
        let old = file.tensors[index]
        file.tensors[index] = try SafeTensors.Tensor(
            name: old.name, shape: old.shape, values: [Double.nan] + old.values(as: Double.self).dropFirst())
        try file.write(to: "\(d)/nan.safetensors")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(d)/run.safetensors"))
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: "\(d)/cut.safetensors"))
        try writeText("previous", to: "\(d)/out.safetensors")
        // Other data of the same kind and dimension as the digits (64 columns, 17 levels).
        let other = (0..<60).map { r in (0..<64).map { String((r * 7 + $0) % 17) }.joined(separator: ",") }
        try writeText(other.joined(separator: "\n"), to: "\(d)/other.csv")
        let cases: [([String], String)] = [
            (["--resume", "\(d)/missing.safetensors"], "no such checkpoint file"),
            (["--resume", "\(d)/nan.safetensors"], "bad training state: tensor optimizer.v."),
            (["--resume", "\(d)/cut.safetensors"], "truncated"),
            (["--resume", "\(d)/run.safetensors", "--data", "moons"], "the checkpoint models 64 dimensions, --data moons has 2"),
            // A training state belongs to its run's data and epochs.
            (["--resume", "\(d)/run.safetensors", "--data", "\(d)/other.csv", "--levels", "17"],
             "holds the training state of a run on digits, but --data is \(d)/other.csv"),
            (["--resume", "\(d)/run.safetensors", "--epochs", "1"], "--epochs 1 is below the 2 epochs"),
        ]
        for (arguments, message) in cases {
            let (status, stdout, stderr) = try train(arguments + ["--out", "\(d)/out.safetensors", "--samples", "\(d)/x.png"])
            #expect(status > 0 && status < 128, "\(arguments): exit \(status)")
            #expect(stdout.isEmpty && stderr.split(separator: "\n").count == 1, "\(arguments): \(stderr)")
            #expect(stderr.hasPrefix("invertnn: error: ") && stderr.contains(message), "\(arguments): \(stderr)")
            #expect(try String(contentsOfFile: "\(d)/out.safetensors", encoding: .utf8) == "previous")
            #expect(!FileManager.default.fileExists(atPath: "\(d)/x.png"))
        }
    }
}
