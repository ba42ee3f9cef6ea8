import Foundation
import InvertNN
import Testing

/// Checkpoints written by an earlier build (format_version 1, before the Codable rewrite) must
/// keep loading and give the same results: bit for bit on the BLAS kernels that wrote them, to a
/// few ulps on others; a file written now reads back to bit-identical results.
///
/// Fixtures/ holds three files written by `invertnn train` (digits in Float, moons in Double with
/// averaging, rings with `--save-state`) and two hand-made architectures per precision covering
/// every registered layer type. Each `<name>.expected.csv` was computed by that earlier build:
/// `log_density,row,bits` lines (``NormalizingFlow/logProbability(_:)`` of ``fixedInput``) for
/// trained models, `output,row,column,bits` and `log_abs_det,row,bits` lines (the transform's
/// forward with a context seeded by 11) for the hand-made ones; bits are the `Double` bit pattern
/// in hex (a Float widens exactly). `INVERTNN_WRITE_FIXTURES=<folder>` regenerates the hand-made
/// checkpoints and every expectation file there (only for a new fixture: the point of the files is
/// that the code which wrote them is gone).
@Suite struct FixtureCheckpointTests {
    static let trained = ["digits_float", "moons_double", "rings_state"]
    static let handMade = ["layers_float", "layers_double", "images_float", "images_double"]

    /// `x[i, j] = 0.9 sin(1.3 i + 0.7 j + 0.1)`, `[5, columns]`: inside every layer's domain.
    static func fixedInput<T: Scalar>(columns: Int, as _: T.Type) throws -> Matrix<T> {
        let values = (0..<(5 * columns)).map { k -> T in
            let (i, j) = (k / columns, k % columns)
            return T(0.9 * Foundation.sin(1.3 * Double(i) + 0.7 * Double(j) + 0.1))
        }
        return try Matrix(rows: 5, columns: columns, storage: values)
    }

    /// Every learnable entry moved off its placeholder, so a lost or misplaced tensor shows.
    static func perturb<T: Scalar>(_ layer: any InvertibleLayer<T>, seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        for p in layer.parameters {
            for i in 0..<p.count where p.trainableMask?[i] ?? true { p.withUnsafeMutableValue { $0[i] += T(0.2) * g.nextNormal(T.self) } }
        }
    }

    /// D = 4: every elementwise layer (each activation and its inverse), the linear families and
    /// the affine coupling in each of its configurations.
    static func layersFlow<T: Scalar>(_: T.Type) throws -> NormalizingFlow<T> {
        var g = SeededGenerator(seed: 21)
        let d = 4
        let layers: [any InvertibleLayer<T>] = [
            try Diagonal<T>(features: d),
            try Diagonal<T>(features: d, hasBias: false),
            try Bias<T>(features: d),
            try Householder<T>(features: d, reflectors: 3, using: &g),
            try Householder<T>(features: d, determinant: .negative, hasBias: false, using: &g),
            try Householder<T>(features: d, reflectors: 2, parametrization: .general, using: &g),
            try InvertibleLinear<T>(features: d, using: &g),
            try InvertibleLinear<T>(features: d, determinant: .negative, hasBias: false, using: &g),
            try InvertibleLinear<T>(features: d, reflectors: 2, parametrization: .general, using: &g),
            try AffineCoupling<T>(features: d, hiddenSizes: [5], using: &g),
            try AffineCoupling<T>(
                features: d, hiddenSizes: [3, 4], conditioningBlock: .second, scaleBound: nil, activation: .tanh,
                firstBlockSize: 1, using: &g),
            try AffineCoupling<T>(
                features: d, hiddenSizes: [], scaleBound: 1.5, activation: .leakyReLU(slope: 0.2), firstBlockSize: 3, using: &g),
            try Permutation<T>(features: d, permutation: [2, 0, 3, 1]),
            try Sigmoid<T>(features: d), Inverted<T>(try Sigmoid<T>(features: d)),
            try Tanh<T>(features: d), Inverted<T>(try Tanh<T>(features: d)),
            try RangeCompression<T>(features: d, lower: -1, upper: 2), Inverted<T>(try RangeCompression<T>(features: d, lower: -1, upper: 2)),
            try LeakyReLU<T>(features: d, negativeSlope: 0.3),
            try PReLU<T>(features: d),
            try ELU<T>(features: d, alpha: 0.7),
            try SELU<T>(features: d),
            try Baird<T>(features: d),
            Inverted<T>(try Sequential<T>([try Baird<T>(features: d), try PReLU<T>(features: d)])),
        ]
        let flow = try NormalizingFlow(transform: try Sequential(layers))
        perturb(flow.transform, seed: 22)
        return flow
    }

    /// D = 8 as 2 channels of 2 × 2 pixels: the shape layers, `Pixelwise` and the side channels.
    static func imagesFlow<T: Scalar>(_: T.Type) throws -> NormalizingFlow<T> {
        var g = SeededGenerator(seed: 31)
        let layers: [any InvertibleLayer<T>] = [
            try PixelUnshuffle<T>(channels: 2, height: 2, width: 2, factor: 2),
            try PixelShuffle<T>(channels: 8, height: 1, width: 1, factor: 2),
            try Reshape<T>(from: [2, 4], to: [4, 2]),
            try Pixelwise<T>(try InvertibleLinear<T>(features: 2, using: &g), channels: 2, height: 2, width: 2),
            try Pixelwise<T>(try Sequential<T>([try Diagonal<T>(features: 2), try Tanh<T>(features: 2)]), channels: 2, height: 2, width: 2),
            try ConcatNoise<T>(features: 8, noise: StandardNormal<T>(features: 1), channel: "n"),
            try AffineCoupling<T>(features: 9, hiddenSizes: [4], using: &g),
            Inverted<T>(try ConcatSideInput<T>(features: 8, sideFeatures: 1, channel: "n")),
        ]
        let flow = try NormalizingFlow(transform: try Sequential(layers))
        perturb(flow.transform, seed: 32)
        return flow
    }

    static func bits<T: Scalar>(_ v: T) -> String { String(Double(v).bitPattern, radix: 16) }

    /// The expectation lines of a trained model.
    static func densityLines<T: Scalar>(_ flow: NormalizingFlow<T>) throws -> [String] {
        try flow.logProbability(fixedInput(columns: flow.features, as: T.self)).enumerated().map { "log_density,\($0.offset),\(bits($0.element))" }
    }

    /// The expectation lines of a hand-made architecture.
    static func forwardLines<T: Scalar>(_ flow: NormalizingFlow<T>) throws -> [String] {
        var context = LayerContext<T>(generator: SeededGenerator(seed: 11))
        let result = try flow.transform.forward(fixedInput(columns: flow.features, as: T.self), context: &context)
        var lines = [String]()
        for i in 0..<result.output.rows {
            for j in 0..<result.output.columns { lines.append("output,\(i),\(j),\(bits(result.output[i, j]))") }
            lines.append("log_abs_det,\(i),\(bits(result.logAbsDet[i]))")
        }
        return lines
    }

    static func lines<T: Scalar>(_ name: String, _ flow: NormalizingFlow<T>) throws -> [String] {
        try handMade.contains(name) ? forwardLines(flow) : densityLines(flow)
    }

    static func fixturesFolder() throws -> URL {
        try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    }

    /// Writes the hand-made checkpoints and every expectation file into `folder`.
    static func writeFixtures(to folder: String) throws {
        func save<T: Scalar>(_ name: String, _ flow: NormalizingFlow<T>) throws {
            let preprocessing = Preprocessing<T>.standardization(
                try Standardization(means: [T](repeating: 0, count: flow.features), scales: [T](repeating: 1, count: flow.features)))
            try Checkpoint(flow: flow, preprocessing: preprocessing).write(to: "\(folder)/\(name).safetensors")
        }
        try save("layers_float", try layersFlow(Float.self))
        try save("layers_double", try layersFlow(Double.self))
        try save("images_float", try imagesFlow(Float.self))
        try save("images_double", try imagesFlow(Double.self))
        for name in trained + handMade {
            let path = "\(folder)/\(name).safetensors"
            let text: [String]
            if try Checkpoint<Float>.storedDType(of: SafeTensors.read(path: path), path: path) == .f64 {
                text = try lines(name, Checkpoint<Double>.read(path: path).flow)
            } else {
                text = try lines(name, Checkpoint<Float>.read(path: path).flow)
            }
            try (text.joined(separator: "\n") + "\n").write(toFile: "\(folder)/\(name).expected.csv", atomically: true, encoding: .utf8)
        }
    }

    @Test func regenerateWhenAsked() throws {
        guard let folder = ProcessInfo.processInfo.environment["INVERTNN_WRITE_FIXTURES"] else { return }
        try Self.writeFixtures(to: folder)
    }

    func check<T: Scalar>(_ name: String, as _: T.Type) throws {
        let folder = try Self.fixturesFolder()
        let path = folder.appendingPathComponent("\(name).safetensors").path
        let expected = try String(contentsOf: folder.appendingPathComponent("\(name).expected.csv"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        let checkpoint = try Checkpoint<T>.read(path: path)
        let actual = try Self.lines(name, checkpoint.flow)
        #expect(!expected.isEmpty)
        // Bit for bit on the BLAS kernels that wrote the files (OpenBLAS's Cooperlake kernels,
        // AMD EPYC); other kernels (SkylakeX on an Intel Xeon) round the GEMMs differently, within
        // a few ulps of the inputs' scale.
        let tolerance = T.self == Float.self ? 2e-5 : 1e-12
        #expect(Self.agree(actual, expected, tolerance: tolerance),
                "\(name): results differ from those of the build that wrote the file: \(Self.largestDifference(actual, expected))")
        // The stored architecture equals the rebuilt flow's (format 1 wrote explicit nulls, which
        // equal absent members), so the file also loads into an existing flow.
        try Checkpoint<T>.load(try SafeTensors.read(path: path), into: checkpoint.flow, path: path)
        // And a file written now reads back to the same results.
        let copy = temporaryPath("fixture-\(name).safetensors")
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try checkpoint.write(to: copy)
        #expect(try Self.lines(name, Checkpoint<T>.read(path: copy).flow) == actual)
    }

    /// The value of a `…,bits` line (a `Double` bit pattern in hex) and the line's key before it.
    static func parse(_ line: String) -> (key: Substring, value: Double)? {
        guard let comma = line.lastIndex(of: ","), let bits = UInt64(line[line.index(after: comma)...], radix: 16) else { return nil }
        return (line[..<comma], Double(bitPattern: bits))
    }

    /// Whether two result files have the same keys and values within `tolerance · (1 + |expected|)`.
    static func agree(_ actual: [String], _ expected: [String], tolerance: Double) -> Bool {
        guard actual.count == expected.count else { return false }
        for (a, e) in zip(actual, expected) {
            guard let a = parse(a), let e = parse(e), a.key == e.key,
                  abs(a.value - e.value) <= tolerance * (1 + abs(e.value)) else { return false }
        }
        return true
    }

    /// The largest `|actual - expected| / (1 + |expected|)` over matching lines, for messages.
    static func largestDifference(_ actual: [String], _ expected: [String]) -> Double {
        zip(actual, expected).compactMap { a, e -> Double? in
            guard let a = parse(a), let e = parse(e) else { return nil }
            return abs(a.value - e.value) / (1 + abs(e.value))
        }.max() ?? .nan
    }

    @Test(arguments: ["digits_float", "rings_state", "layers_float", "images_float"])
    func floatFixturesGiveIdenticalResults(_ name: String) throws { try check(name, as: Float.self) }

    @Test(arguments: ["moons_double", "layers_double", "images_double"])
    func doubleFixturesGiveIdenticalResults(_ name: String) throws { try check(name, as: Double.self) }

    /// The saved training state reads back and survives a write/read with the current writer.
    @Test func trainingStateFixtureRoundTrips() throws {
        let path = try Self.fixturesFolder().appendingPathComponent("rings_state.safetensors").path
        let checkpoint = try Checkpoint<Float>.read(path: path)
        let state = try #require(checkpoint.trainingState)
        #expect(state.epoch == 2)
        #expect(state.configuration.parameterAveraging == 0.9)
        #expect(state.history.count == 3)  // epoch 0 (the initialization) and 2 epochs
        let copy = temporaryPath("rings-state-copy.safetensors")
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try checkpoint.write(to: copy)
        let again = try Checkpoint<Float>.read(path: copy)
        let reread = try #require(again.trainingState)
        #expect(reread.configuration == state.configuration)
        #expect(reread.history.map(\.validation) == state.history.map(\.validation) && reread.history.map(\.epoch) == state.history.map(\.epoch))
        #expect(reread.shuffleState == state.shuffleState && reread.noiseState == state.noiseState)
        #expect(reread.firstMoments == state.firstMoments && reread.average == state.average)
        #expect(reread.averageWeight == state.averageWeight && reread.bestValidation == state.bestValidation)
        #expect(try again.flow.logProbability(Self.fixedInput(columns: 2, as: Float.self))
                == checkpoint.flow.logProbability(Self.fixedInput(columns: 2, as: Float.self)))
    }
}
