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

    /// `--context-columns label` makes every conv conditioner class-conditional: the checkpoint
    /// records the context width, eval reads the labels, and the grid has one row per class
    /// (10 rows of 8×8 digits drawn ×4 with 2 px spacing: 10·34 + 2 = 342 px high).
    @Test func classConditionalGlowOnTheDigits() throws {
        guard CLIErrorTests.executable != nil else { return }
        try CLIErrorTests.withScratchDirectory("glow-cli-context") { d in
            let model = "\(d)/glow.safetensors", png = "\(d)/s.png"
            let train = try CLIErrorTests.run([
                "--data", "digits", "--flow", "glow", "--context-columns", "label", "--steps", "1", "--conv-width", "4",
                "--epochs", "1", "--quiet", "--out", model, "--samples", png])
            #expect(train.status == 0, "\(train.stderr)")
            let flow = try Checkpoint<Float>.read(path: model).flow
            #expect(flow.isConditional && flow.transform.contextWidths == [10])
            #expect(try architecture(of: flow.transform).contains("\"contextFeatures\":10"))
            let eval = try CLIErrorTests.run(["--model", model, "--data", "digits"], command: "eval")
            #expect(eval.status == 0, "\(eval.stderr)")
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: png)))
            let height = bytes[20..<24].reduce(0) { $0 << 8 | Int($1) }
            #expect(height == 10 * 34 + 2, "grid height \(height)")
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
