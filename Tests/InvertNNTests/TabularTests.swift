import Testing
import Foundation
@testable import InvertNN

@Suite struct TabularTests {
    /// A CSV with a header, 20 feature columns, a label column and an id column: correlated,
    /// non-Gaussian data (three latent factors through squares, exponentials and a sign, with
    /// small noise).
    static func writeCSV(rows: Int, seed: UInt64) throws -> String {
        var g = SeededGenerator(seed: seed)
        let names = (1...20).map { "f\($0)" } + ["label", "id"]
        var text = names.joined(separator: ",") + "\n"
        for r in 0..<rows {
            let z = (0..<3).map { _ in g.nextNormal(Double.self) }
            var values = [Double]()
            for j in 0..<20 {
                let a = z[j % 3], b = z[(j + 1) % 3]
                let v: Double
                switch j % 4 {
                case 0: v = a + 0.5 * b * b
                case 1: v = Double.exp(0.6 * a) - 0.4 * b
                case 2: v = (a > 0 ? 2 : -2) + 0.3 * b
                default: v = a * b
                }
                values.append(v + 0.1 * g.nextNormal(Double.self))
            }
            text += values.map { String(format: "%.6f", $0) }.joined(separator: ",") + ",\(r % 3),\(r)\n"
        }
        let path = temporaryPath("tabular-\(seed).csv")
        try AtomicFile.write(text: text, to: path)
        return path
    }

    /// Mean NLL (nats per sample) of `test` under a full-covariance Gaussian fitted to `train`
    /// (mean and covariance from ``AdaptiveWhitening/statistics(of:)``, eigen-decomposed by LAPACK).
    static func gaussianNLL(train: Matrix<Double>, test: Matrix<Double>) throws -> Double {
        let s = try AdaptiveWhitening<Double>.statistics(of: train)
        let d = train.columns
        let logDet = s.eigenvalues.reduce(0) { $0 + Double.log($1) }
        var total = 0.0
        for r in 0..<test.rows {
            var quadratic = 0.0
            for k in 0..<d {
                var projection = 0.0
                for j in 0..<d { projection += (test[r, j] - s.mean[j]) * s.eigenvectors[j, k] }
                quadratic += projection * projection / s.eigenvalues[k]
            }
            total += 0.5 * (Double(d) * Double.log(2 * Double.pi) + logDet + quadratic)
        }
        return total / Double(test.rows)
    }

    @Test func csvWithHeaderLabelAndDroppedColumns() throws {
        let path = try Self.writeCSV(rows: 40, seed: 3)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let data = try TabularDataset<Double>.csv(path: path, labelColumn: "label", dropColumns: ["22"])
        #expect(data.dimensions == 20)
        #expect(data.columnNames.first == "f1" && data.columnNames.last == "f20")
        #expect(data.train.rows + data.validation.rows + data.test.rows == 40)
        #expect(throws: InvertNNError.self) { try TabularDataset<Double>.csv(path: path, labelColumn: "nope") }
        // Without a header, names are generated.
        let plain = temporaryPath("plain.csv")
        defer { try? FileManager.default.removeItem(atPath: plain) }
        try AtomicFile.write(text: "1,2\n3,4\n5,6.5\n7,8\n", to: plain)
        let table: (columnNames: [String], values: Matrix<Double>) = try CSVReader.parseTable(try GzipReader.read(path: plain), source: plain)
        #expect(table.columnNames == ["column1", "column2"] && table.values.rows == 4)
    }

    /// A finite value beyond Float's range is reported at its file line (not as a NaN/Inf at a
    /// position of the shuffled split); Double takes it.
    @Test func valueTooLargeForFloatNamesItsLine() throws {
        let path = temporaryPath("too-large.csv")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var rows = (0..<20).map { "\($0),\(Double($0) * 0.5),x\($0)" }
        rows[9] = "9,-2e39,x9"
        try AtomicFile.write(text: (["id,value,label", ""] + rows).joined(separator: "\n"), to: path)
        do {
            _ = try TabularDataset<Float>.csv(path: path, labelColumn: "label")
            Issue.record("no error for a value beyond Float's range")
        } catch let InvertNNError.invalidArgument(_, reason) {
            // Header on line 1, a blank line 2, the tenth record on line 12, column 2 of the file.
            #expect(reason.contains("too-large.csv:12: column 2: -2e+39 does not fit in Float"), "\(reason)")
        }
        #expect(try TabularDataset<Double>.csv(path: path, labelColumn: "label").dimensions == 2)
    }

    @Test func standardizationJacobianEntersTheDensity() throws {
        let s = try Standardization<Double>(means: [1, -2], scales: [2, 0.5])
        let x = try Matrix<Double>([[3, -2], [1, -1]])
        let y = try s.standardize(x)
        #expect(y.output == (try Matrix<Double>([[1, 0], [0, 2]])))
        #expect(y.logAbsDet == [-Double.log(2) - Double.log(0.5), -Double.log(2) - Double.log(0.5)])
        #expect(try s.destandardize(y.output) == x)
        let fitted = try Standardization<Double>(fitting: try Matrix([[1, 5], [3, 5]]))
        #expect(fitted.means == [2, 5] && fitted.scales == [1, 1])
        #expect(throws: InvertNNError.self) { try Standardization<Double>(means: [0], scales: [0]) }
    }

    /// A flow on a 20-column CSV of a few hundred rows beats a full-covariance Gaussian fitted to
    /// the same training split, on the test split; the saved model reproduces its test
    /// log-densities bit for bit.
    @Test func flowBeatsAFullCovarianceGaussian() throws {
        let path = try Self.writeCSV(rows: 400, seed: 7)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let data = try TabularDataset<Double>.csv(path: path, labelColumn: "label", dropColumns: ["id"])
        let preprocessing = Preprocessing<Double>.standardization(try Standardization(fitting: data.train))
        let flow: NormalizingFlow<Double> = try FlowPresets.realNVP(
            features: 20, couplings: 6, hiddenSizes: [64], mixing: .invertibleLinear, seed: 1)
        let trainer = try Trainer(
            flow: flow, preprocessing: preprocessing,
            configuration: TrainingConfiguration.plain(
                epochs: 15, batchSize: 32, learningRate: 2e-3, seed: 1,
                schedule: .cosine(finalFraction: 0.05, warmupSteps: 10), parameterAveraging: 0.95))
        let result = try trainer.fit(train: data.train, validation: data.validation, test: data.test)
        let flowNLL = result.best.test!.negativeLogLikelihood
        let gaussianNLL = try Self.gaussianNLL(train: data.train, test: data.test)
        // Recorded for the report: nats per sample on the 60 test rows.
        print("tabular test NLL: flow \(flowNLL), full-covariance Gaussian \(gaussianNLL) nats per sample (20 dims); best epoch \(result.best.epoch)")
        // Observed: 10.22 vs 10.94 nats per sample; the margin keeps a near tie from passing.
        #expect(flowNLL < gaussianNLL - 0.3)
        #expect(abs(result.best.test!.natsPerDimension - flowNLL / 20) < 1e-12)

        let model = temporaryPath("tabular.safetensors")
        defer { try? FileManager.default.removeItem(atPath: model) }
        try Checkpoint(flow: flow, preprocessing: preprocessing, dataset: DatasetDescription(name: path)).write(to: model)
        let loaded = try Checkpoint<Double>.read(path: model)
        var g1 = SeededGenerator(seed: 0), g2 = SeededGenerator(seed: 0)
        let a = try preprocessing.transform(data.test, using: &g1), b = try loaded.preprocessing.transform(data.test, using: &g2)
        #expect(a.output == b.output && a.logAbsDet == b.logAbsDet)
        #expect(try loaded.flow.logProbability(b.output) == flow.logProbability(a.output))
    }

    @Test func toyDensitiesAreSeededAndShaped() throws {
        for toy in ToyDensity.allCases {
            var g1 = SeededGenerator(seed: 4), g2 = SeededGenerator(seed: 4)
            let a: Matrix<Double> = try toy.sample(count: 500, using: &g1)
            let b: Matrix<Double> = try toy.sample(count: 500, using: &g2)
            #expect(a == b)
            #expect(a.maxAbs < 5, "\(toy)")
            let radii = (0..<a.rows).map { (a[$0, 0] * a[$0, 0] + a[$0, 1] * a[$0, 1]).squareRoot() }
            switch toy {
            case .rings: #expect(radii.allSatisfy { r in [1.0, 2, 3].contains { abs(r - $0) < 0.5 } })
            case .mixture: #expect(radii.filter { abs($0 - 3) < 1.2 }.count > 490)
            case .checkerboard:
                #expect((0..<a.rows).allSatisfy { (Int((a[$0, 0] + 4) / 2) + Int((a[$0, 1] + 4) / 2)) % 2 == 0 })
            case .moons: break
            }
        }
        let set = try ToyDensity.moons.dataset(count: 100, as: Float.self)
        #expect(set.train.rows == 75 && set.dimensions == 2)
    }
}
