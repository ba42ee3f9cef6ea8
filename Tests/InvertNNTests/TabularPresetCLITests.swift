import Testing
import Foundation
import InvertNN

/// The tabular presets of `invertnn train` (a CSV without `--levels`): every family starts as the
/// full-covariance Gaussian of the training rows, and the JSON line's `gaussian_test_nats_per_dim`
/// is that Gaussian's test figure. Uses the debug binary (see ``CLIErrorTests``).
@Suite(.serialized) struct TabularPresetCLITests {
    @Test(arguments: ["realnvp", "nsf", "maf"])
    func everyFamilyStartsAsTheGaussianOfTheTable(family: String) throws {
        guard CLIErrorTests.executable != nil else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return
        }
        let csv = try TabularTests.writeCSV(rows: 400, seed: 7)
        defer { try? FileManager.default.removeItem(atPath: csv) }
        try CLIErrorTests.withScratchDirectory("tabular-preset-\(family)") { d in
            func run(_ extra: [String]) throws -> [String: Any] {
                let result = try CLIErrorTests.run([
                    "--data", csv, "--label-column", "label", "--drop-columns", "id", "--flow", family, "--hidden-sizes", "24",
                    "--couplings", "2", "--epochs", "0", "--precision", "double", "--quiet",
                    "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png"] + extra)
                #expect(result.status == 0, "\(result.stderr)")
                let line = try #require(result.stdout.split(separator: "\n").last)
                return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            }
            // The baseline is the maximum-likelihood Gaussian of the same split; the independent
            // eigen-decomposition of TabularTests uses the divisor n - 1 (1.2e-4 nats/dim apart here).
            let data = try TabularDataset<Double>.csv(path: csv, labelColumn: "label", dropColumns: ["id"])
            let direct = try FullCovarianceGaussian(fitting: data.train).logDensity(data.test)
            let expected = -direct.reduce(0, +) / Double(data.test.rows) / 20
            let unbiased = try TabularTests.gaussianNLL(train: data.train, test: data.test) / 20
            let start = try run([])
            let gaussian = try #require(start["gaussian_test_nats_per_dim"] as? Double)
            #expect(abs(gaussian - expected) < 1e-9 && abs(gaussian - unbiased) < 1e-3, "\(gaussian) vs \(expected), \(unbiased)")
            // Untrained (epoch 0), the whitened flow is that Gaussian up to the whitening's ε.
            let flow = try #require(start["test_nats_per_dim"] as? Double)
            #expect(abs(flow - gaussian) < 1e-3, "\(family): flow \(flow) vs Gaussian \(gaussian)")
            let checkpoint = try Checkpoint<Double>.read(path: "\(d)/m.safetensors")
            #expect(checkpoint.flow.transform.layers.last is InvertibleLinear<Double>)
            // A random start is the standard normal of the standardized, correlated columns: far worse.
            let random = try #require(try run(["--initialization", "random"])["test_nats_per_dim"] as? Double)
            #expect(random > gaussian + 0.05, "\(family): random start \(random) vs Gaussian \(gaussian)")
        }
    }
}
