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

    /// A table of fewer than 200 training rows whose rows form clusters starts as the
    /// 3-component full-covariance mixture of its standardized training rows (it beats their
    /// Gaussian on the validation rows); `--base gaussian` keeps the whitening preset.
    @Test func aSmallClusteredTableStartsAsItsMixture() throws {
        guard CLIErrorTests.executable != nil else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return
        }
        var g = SeededGenerator(seed: 11)
        let centres: [[Double]] = [[-3, 0, 1, 0], [3, 1, 0, 0], [0, -3, 0, 2]]
        var text = "a,b,c,d\n"
        for r in 0..<160 {
            let c = centres[r % 3]
            text += c.map { String(format: "%.6f", $0 + 0.6 * g.nextNormal(Double.self)) }.joined(separator: ",") + "\n"
        }
        let csv = temporaryPath("tabular-small-clusters.csv")
        try AtomicFile.write(text: text, to: csv)
        defer { try? FileManager.default.removeItem(atPath: csv) }
        try CLIErrorTests.withScratchDirectory("tabular-small-preset") { d in
            func run(_ extra: [String]) throws -> (json: [String: Any], stderr: String) {
                let result = try CLIErrorTests.run([
                    "--data", csv, "--hidden-sizes", "8", "--couplings", "2", "--epochs", "0", "--precision", "double",
                    "--out", "\(d)/m.safetensors", "--samples", "\(d)/s.png"] + extra)
                #expect(result.status == 0, "\(result.stderr)")
                let line = try #require(result.stdout.split(separator: "\n").last)
                return (try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]), result.stderr)
            }
            let data = try TabularDataset<Double>.csv(path: csv)
            #expect(data.train.rows == 120)
            let mixture = try run([])
            #expect(mixture.stderr.contains("3-component full-covariance mixture"), "\(mixture.stderr)")
            let checkpoint = try Checkpoint<Double>.read(path: "\(d)/m.safetensors")
            let base = try #require(checkpoint.flow.base as? FullCovarianceMixture<Double>)
            #expect(base.components == 3 && base.floor == 0.1)
            // Untrained, the flow is the mixture fitted to the standardized training rows (the
            // initial mixing is a rotation, and the floor λI is the same in every rotation).
            let standardization = try Standardization(fitting: data.train)
            let fitted = try FullCovarianceMixture<Double>(
                fitting: try standardization.standardize(data.train).output, components: 3, floor: 0.1, seed: 0)
            let logScales = standardization.scales.reduce(0.0) { $0 + Double.log($1) }
            let expected = -(try fitted.logProbability(try standardization.standardize(data.test).output)).reduce(0, +) / Double(data.test.rows) / 4
                + logScales / 4
            let flow = try #require(mixture.json["test_nats_per_dim"] as? Double)
            let gaussian = try #require(mixture.json["gaussian_test_nats_per_dim"] as? Double)
            #expect(abs(flow - expected) < 1e-6, "flow \(flow) vs mixture \(expected)")
            #expect(flow < gaussian - 0.2, "flow \(flow) vs Gaussian \(gaussian)")
            let plain = try run(["--base", "gaussian"])
            #expect(!plain.stderr.contains("mixture"))
            let whitened = try Checkpoint<Double>.read(path: "\(d)/m.safetensors")
            #expect(whitened.flow.base is StandardNormal<Double>)
            // The whitening layer is the one layer the mixture's flow goes without.
            #expect(whitened.flow.transform.layers.count == checkpoint.flow.transform.layers.count + 1)
            #expect(abs((try #require(plain.json["test_nats_per_dim"] as? Double)) - gaussian) < 1e-3)
        }
    }
}

extension TabularPresetCLITests {
    /// A table whose training split has one row is refused as a usage error before anything is
    /// fitted; one with no more training rows than columns trains with a note saying so.
    @Test func tinyTrainingSplitsAreRefusedOrFlagged() throws {
        guard CLIErrorTests.executable != nil else {
            Issue.record("invertnn binary not built; run `swift build --build-tests`")
            return
        }
        try CLIErrorTests.withScratchDirectory("tiny-tables") { d in
            func table(_ rows: Int) throws -> String {
                let path = "\(d)/t\(rows).csv"
                var text = "a,b,c,d\n"
                for r in 0..<rows { text += (0..<4).map { "\(Double((r * 7 + $0 * 3) % 11) + 0.5 * Double($0))" }.joined(separator: ",") + "\n" }
                try text.write(toFile: path, atomically: true, encoding: .utf8)
                return path
            }
            // 3 rows: 1 train, 1 validation, 1 test.
            let one = try CLIErrorTests.run(["--data", try table(3), "--epochs", "1", "--out", "\(d)/a.safetensors", "--samples", "\(d)/a.png"])
            #expect(one.status == 64 && one.stderr.contains("1 training row; training needs at least 2"), "\(one.stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(d)/a.safetensors"))
            // 6 rows: 4 train for 4 columns.
            let few = try CLIErrorTests.run([
                "--data", try table(6), "--epochs", "1", "--hidden-sizes", "8", "--couplings", "1",
                "--out", "\(d)/b.safetensors", "--samples", "\(d)/b.png"])
            #expect(few.stderr.contains("only 4 training rows for 4 dimensions"), "\(few.stderr)")
        }
    }
}
