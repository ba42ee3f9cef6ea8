import Testing
import Foundation
import InvertNN

/// `invertnn train --flow maf`: the MAF preset trains, its checkpoint rebuilds it for eval, sample
/// and density; coupling-only options are usage errors. Uses the debug binary (see ``CLIErrorTests``).
@Suite(.serialized) struct MaskedAutoregressiveCLITests {
    @Test func mafTrainsAndItsCheckpointServesEveryCommand() throws {
        guard CLIErrorTests.executable != nil else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return
        }
        try CLIErrorTests.withScratchDirectory("maf-cli") { d in
            let model = "\(d)/maf.safetensors"
            let train = try CLIErrorTests.run([
                "--data", "moons", "--flow", "maf", "--couplings", "2", "--hidden-sizes", "8", "--scale-bound", "1.5",
                "--epochs", "1", "--precision", "double", "--quiet", "--out", model, "--samples", "\(d)/s.png"])
            #expect(train.status == 0, "\(train.stderr)")
            let checkpoint = try Checkpoint<Double>.read(path: model)
            let json = try architecture(of: checkpoint.flow.transform)
            #expect(json.contains("\"AffineMaskedAutoregressive\"") && json.contains("\"scaleBound\":1.5")
                && json.contains("\"order\":[1,0]"), "\(json)")
            try expectCheckpointServesEveryCommand(model: model, directory: d)
        }
    }

    /// `--transformer spline`: spline MADE layers, saved and rebuilt; eval of the reloaded model
    /// gives the NLL train reported.
    @Test func splineTransformerTrainsAndReloads() throws {
        guard CLIErrorTests.executable != nil else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return
        }
        try CLIErrorTests.withScratchDirectory("maf-spline-cli") { d in
            let model = "\(d)/maf.safetensors"
            let train = try CLIErrorTests.run([
                "--data", "moons", "--flow", "maf", "--transformer", "spline", "--bins", "5", "--tail-bound", "3.5",
                "--couplings", "2", "--hidden-sizes", "8", "--epochs", "2", "--precision", "double", "--quiet",
                "--out", model, "--samples", "\(d)/s.png"])
            #expect(train.status == 0, "\(train.stderr)")
            let line = try #require(train.stdout.split(separator: "\n").last)
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let reported = try #require(summary["test_nats_per_dim"] as? Double)
            let checkpoint = try Checkpoint<Double>.read(path: model)
            let json = try architecture(of: checkpoint.flow.transform)
            #expect(json.contains("\"SplineMaskedAutoregressive\"") && !json.contains("\"AffineMaskedAutoregressive\"")
                && json.contains("\"bins\":5") && json.contains("\"tailBound\":3.5"), "\(json)")
            let eval = try CLIErrorTests.run(["--model", model, "--data", "moons", "--json"], command: "eval")
            #expect(eval.status == 0, "\(eval.stderr)")
            let evalLine = try #require(eval.stdout.split(separator: "\n").last)
            let splits = try #require(
                (try JSONSerialization.jsonObject(with: Data(evalLine.utf8)) as? [String: Any])?["splits"] as? [[String: Any]])
            let test = try #require(splits.first { $0["name"] as? String == "test" }?["nats_per_dim"] as? Double)
            #expect(abs(test - reported) <= 1e-12 * max(1, abs(test)), "eval \(test) vs train \(reported)")
            try expectCheckpointServesEveryCommand(model: model, directory: d)
        }
    }

    @Test func transformerOptionsAreChecked() throws {
        guard CLIErrorTests.executable != nil else { return }
        for arguments in [["--transformer", "spline"], ["--flow", "nsf", "--transformer", "affine"],
                          ["--flow", "maf", "--transformer", "spline", "--scale-bound", "1"],
                          ["--flow", "maf", "--transformer", "affine", "--bins", "4"], ["--flow", "maf", "--transformer", "cubic"]] {
            let result = try CLIErrorTests.run(["--data", "moons", "--epochs", "1"] + arguments)
            #expect(result.status == 64 && result.stderr.contains("--"), "\(arguments): \(result.status) \(result.stderr)")
        }
    }

    @Test func couplingOptionsAreRejected() throws {
        guard CLIErrorTests.executable != nil else { return }
        for flag in [["--mixing", "permutation"], ["--reflectors", "2"], ["--bins", "4"]] {
            let result = try CLIErrorTests.run(["--data", "moons", "--epochs", "1", "--flow", "maf"] + flag)
            #expect(result.status == 64 && result.stderr.contains("applies to"), "\(flag): \(result.status) \(result.stderr)")
        }
    }
}
