import Testing
import Foundation

/// Runs `eval`, `sample` and `density` on a trained 2-D model (written by `train` on moons into
/// the scratch directory `directory`) and expects each to succeed: the checkpoint rebuilds the flow.
func expectCheckpointServesEveryCommand(model: String, directory d: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let eval = try CLIErrorTests.run(["--model", model, "--data", "moons"], command: "eval")
    #expect(eval.status == 0, "\(eval.stderr)", sourceLocation: sourceLocation)
    let sample = try CLIErrorTests.run(["--model", model, "--count", "10", "--csv", "\(d)/samples.csv"], command: "sample")
    #expect(sample.status == 0, "\(sample.stderr)", sourceLocation: sourceLocation)
    let density = try CLIErrorTests.run(["--model", model, "--png", "\(d)/density.png", "--size", "32", "--quiet"], command: "density")
    #expect(density.status == 0 && FileManager.default.fileExists(atPath: "\(d)/density.png"), "\(density.stderr)",
            sourceLocation: sourceLocation)
}
