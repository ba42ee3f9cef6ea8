import Testing
import Foundation
import InvertNN

/// `invertnn train --flow nsf`: the spline preset trains, its checkpoint records the family so
/// that eval, sample and density rebuild it; spline options without `--flow nsf` are usage errors.
/// Uses the debug binary (see ``CLIErrorTests``).
@Suite(.serialized) struct SplineCLITests {
    @Test func nsfTrainsAndItsCheckpointServesEveryCommand() throws {
        guard CLIErrorTests.executable != nil else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return
        }
        try CLIErrorTests.withScratchDirectory("spline-cli") { d in
            let model = "\(d)/nsf.safetensors"
            let train = try CLIErrorTests.run([
                "--data", "moons", "--flow", "nsf", "--bins", "5", "--tail-bound", "3.5", "--couplings", "2", "--hidden-sizes", "8",
                "--epochs", "1", "--precision", "double", "--quiet", "--out", model, "--samples", "\(d)/s.png"])
            #expect(train.status == 0, "\(train.stderr)")
            let checkpoint = try Checkpoint<Double>.read(path: model)
            let json = try architecture(of: checkpoint.flow.transform)
            #expect(json.contains("\"SplineCoupling\"") && json.contains("\"bins\":5") && json.contains("\"tailBound\":3.5"), "\(json)")
            // The 2-D preset's conditioners and floors.
            #expect(json.contains("\"activation\":\"tanh\"") && json.contains("\"minimumDerivative\":0.01"), "\(json)")
            try expectCheckpointServesEveryCommand(model: model, directory: d)
            // A model-only checkpoint trains on as a spline flow.
            let resumed = try CLIErrorTests.run(["--data", "moons", "--resume", model, "--epochs", "1", "--out", "\(d)/more.safetensors", "--samples", "\(d)/m.png"])
            #expect(resumed.status == 0, "\(resumed.stderr)")
            #expect(try architecture(of: Checkpoint<Double>.read(path: "\(d)/more.safetensors").flow.transform) == json)
        }
    }

    @Test func splineOptionsNeedTheSplineFamily() throws {
        guard CLIErrorTests.executable != nil else { return }
        let cases: [([String], String)] = [
            (["--bins", "4"], "--bins applies to splines"),
            (["--flow", "realnvp", "--tail-bound", "2"], "--tail-bound applies to splines"),
            (["--flow", "nsf", "--scale-bound", "2"], "--scale-bound applies to affine transformers"),
            (["--flow", "nsf", "--bins", "0"], "--bins must be in 1...256"),
            (["--flow", "nsf", "--tail-bound", "-1"], "--tail-bound must lie in (0, 1000]"),
            (["--flow", "iaf"], "--flow"),
        ]
        for (arguments, message) in cases {
            let result = try CLIErrorTests.run(["--data", "moons", "--epochs", "1"] + arguments)
            #expect(result.status == 64 && result.stderr.contains(message), "\(arguments): \(result.status) \(result.stderr)")
        }
    }
}
