import Testing
import Foundation
import InvertNN

/// `invertnn train --base gaussian|diagonal|mixture[:K]`: the base trains with the flow, the
/// checkpoint stores it, and `eval` of the reloaded model gives the NLL `train` reported; the
/// JSON line carries the full-covariance Gaussian baseline. Uses the debug binary (see ``CLIErrorTests``).
@Suite(.serialized) struct BaseCLITests {
    private func json(_ text: String) throws -> [String: Any] {
        let line = try #require(text.split(separator: "\n").last)
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test(arguments: [("gaussian", "StandardNormal", 0), ("diagonal", "DiagonalGaussian", 4), ("mixture:3", "GaussianMixture", 3 * 2 * 2 + 3)])
    func baseTrainsReloadsAndEvaluatesToTheReportedNLL(option: String, type: String, baseParameters: Int) throws {
        guard CLIErrorTests.executable != nil else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return
        }
        try CLIErrorTests.withScratchDirectory("base-cli") { d in
            let model = "\(d)/m.safetensors"
            let train = try CLIErrorTests.run([
                "--data", "moons", "--base", option, "--couplings", "2", "--hidden-sizes", "8", "--epochs", "2",
                "--precision", "double", "--quiet", "--out", model, "--samples", "\(d)/s.png"])
            #expect(train.status == 0, "\(train.stderr)")
            let summary = try json(train.stdout)
            let trainTest = try #require(summary["test_nats_per_dim"] as? Double)
            let gaussian = try #require(summary["gaussian_test_nats_per_dim"] as? Double)
            // The baseline of the CLI's moons split (3000 points, seed 2024), computed here with the library.
            let moons = try ToyDensity.moons.dataset(count: 3000, seed: 2024, as: Double.self)
            let direct = try FullCovarianceGaussian(fitting: moons.train).logDensity(moons.test)
            let expected = -direct.reduce(0, +) / Double(moons.test.rows) / 2
            #expect(abs(gaussian - expected) < 1e-10 && abs(gaussian - 1.6300) < 1e-4, "\(gaussian) vs \(expected)")

            let checkpoint = try Checkpoint<Double>.read(path: model)
            #expect(checkpoint.flow.base.checkpointType.name == type)
            #expect(checkpoint.flow.base.parameters.reduce(0) { $0 + $1.value.count } == baseParameters)
            // A learnable base moved away from its start (μ = 0, log σ = 0 / zero logits).
            if baseParameters > 0 {
                #expect(checkpoint.flow.base.parameters.contains { $0.value.storage.contains { $0 != 0 } })
            }
            let eval = try CLIErrorTests.run(["--model", model, "--data", "moons", "--json"], command: "eval")
            #expect(eval.status == 0, "\(eval.stderr)")
            let splits = try #require(try json(eval.stdout)["splits"] as? [[String: Any]])
            let test = try #require(splits.first { $0["name"] as? String == "test" }?["nats_per_dim"] as? Double)
            #expect(abs(test - trainTest) <= 1e-12 * max(1, abs(test)), "eval \(test) vs train \(trainTest)")
            try expectCheckpointServesEveryCommand(model: model, directory: d)
        }
    }

    @Test func malformedBaseIsAUsageError() throws {
        guard CLIErrorTests.executable != nil else { return }
        for value in ["uniform", "mixture:0", "mixture:x", "mixture:2000"] {
            let result = try CLIErrorTests.run(["--data", "moons", "--epochs", "1", "--base", value])
            #expect(result.status == 64 && result.stderr.contains("--base"), "\(value): \(result.status) \(result.stderr)")
        }
    }
}
