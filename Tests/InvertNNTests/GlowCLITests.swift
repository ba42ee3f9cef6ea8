import Testing
import Foundation
import InvertNN

/// `invertnn train --flow glow` on the digits: a one-scale, one-step model trains, writes a
/// checkpoint that eval rebuilds, and the glow options are usage errors without `--flow glow`.
/// Uses the debug binary (see ``CLIErrorTests``).
@Suite(.serialized) struct GlowCLITests {
    @Test func glowTrainsOnTheDigitsAndEvalRebuildsIt() throws {
        guard CLIErrorTests.executable != nil else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return
        }
        try CLIErrorTests.withScratchDirectory("glow-cli") { d in
            let model = "\(d)/glow.safetensors"
            let train = try CLIErrorTests.run([
                "--data", "digits", "--flow", "glow", "--steps", "1", "--conv-width", "4", "--epochs", "1", "--quiet",
                "--out", model, "--samples", "\(d)/s.png"])
            #expect(train.status == 0, "\(train.stderr)")
            let json = try architecture(of: Checkpoint<Float>.read(path: model).flow.transform)
            #expect(json.contains("\"ConvAffineCoupling\"") && json.contains("\"hiddenChannels\":[4,4]"), "\(json)")
            let eval = try CLIErrorTests.run(["--model", model, "--data", "digits"], command: "eval")
            #expect(eval.status == 0, "\(eval.stderr)")
        }
    }

    @Test func glowOptionsNeedTheGlowFamily() throws {
        guard CLIErrorTests.executable != nil else { return }
        let cases: [([String], String)] = [
            (["--data", "digits", "--steps", "2"], "--steps applies to --flow glow"),
            (["--data", "digits", "--flow", "glow", "--scales", "4"], "--scales 4 needs the image height 8"),
            (["--data", "moons", "--flow", "glow"], "--flow glow needs image data"),
        ]
        for (arguments, message) in cases {
            let result = try CLIErrorTests.run(["--epochs", "1"] + arguments)
            #expect(result.status == 64 && result.stderr.contains(message), "\(arguments): \(result.status) \(result.stderr)")
        }
    }
}
