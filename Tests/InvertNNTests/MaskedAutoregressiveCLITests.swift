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

    @Test func couplingOptionsAreRejected() throws {
        guard CLIErrorTests.executable != nil else { return }
        for flag in [["--mixing", "permutation"], ["--reflectors", "2"], ["--bins", "4"]] {
            let result = try CLIErrorTests.run(["--data", "moons", "--epochs", "1", "--flow", "maf"] + flag)
            #expect(result.status == 64 && result.stderr.contains("applies to"), "\(flag): \(result.status) \(result.stderr)")
        }
    }
}
