import Testing
import Foundation
import InvertNN

/// Initialized ActNorm layers with random parameters (the contract checks the affine map; the
/// data-dependent initialization has its own tests below).
struct ActNormFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        let s = (0..<features).map { _ in T(0.5 * rng.nextNormal(Double.self)) }
        let b = (0..<features).map { _ in T(rng.nextNormal(Double.self)) }
        return try ActNorm<T>(logScale: s, bias: b)
    }
}

/// The per-channel ActNorm of 3×2×3 images.
struct PixelwiseActNormFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        let s = (0..<3).map { _ in T(0.5 * rng.nextNormal(Double.self)) }
        let b = (0..<3).map { _ in T(rng.nextNormal(Double.self)) }
        return try Pixelwise(try ActNorm<T>(logScale: s, bias: b), channels: 3, height: 2, width: 3)
    }
}

@Suite struct ActNormTests {
    /// Columns with mean `3 + j` and standard deviation `0.5 + j` (before sampling noise).
    static func data(rows: Int, features: Int, seed: UInt64 = 4) -> Matrix<Double> {
        var g = SeededGenerator(seed: seed)
        var m = Matrix<Double>.randomNormal(rows: rows, columns: features, using: &g)
        for r in 0..<rows { for j in 0..<features { m[r, j] = 3 + Double(j) + (0.5 + Double(j)) * m[r, j] } }
        return m
    }

    /// Mean and standard deviation (divisor n) of column `j`, computed independently.
    static func moments(_ m: Matrix<Double>, column j: Int) -> (mean: Double, deviation: Double) {
        let values = (0..<m.rows).map { m[$0, j] }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
        return (mean, variance.squareRoot())
    }

    /// Every column of `m` has mean 0 and standard deviation 1 within 1e-12.
    static func expectStandardized(_ m: Matrix<Double>, sourceLocation: SourceLocation = #_sourceLocation) {
        for j in 0..<m.columns {
            let (mean, sd) = moments(m, column: j)
            #expect(abs(mean) <= 1e-12 && abs(sd - 1) <= 1e-12, "column \(j): mean \(mean), sd \(sd)",
                    sourceLocation: sourceLocation)
        }
    }

    @Test func contract() throws {
        try checkLayerContract(ActNormFactory())
    }

    @Test func pixelwiseContract() throws {
        try checkLayerContract(PixelwiseActNormFactory(), features: [18])
    }

    @Test func firstInverseBatchIsNormalizedAndSetsTheParameters() throws {
        let layer = try ActNorm<Double>(features: 4)
        #expect(!layer.isInitialized)
        let y = Self.data(rows: 50, features: 4)
        let x = try layer.inverse(y).output
        #expect(layer.isInitialized)
        Self.expectStandardized(x)
        for j in 0..<4 {
            let (my, sy) = Self.moments(y, column: j)
            #expect(abs(layer.bias.value[0, j] - my) <= 1e-12)
            #expect(abs(layer.logScale.value[0, j] - log(sy)) <= 1e-12)
        }
        // The forward direction is the generative map y = σ x + μ: it returns the batch.
        #expect(try (layer.forward(x).output - y).maxAbs <= 1e-12)
        // Later batches, in either direction, leave the parameters alone.
        let before = layer.parameters.map { $0.value }
        _ = try layer.inverse(Self.data(rows: 9, features: 4, seed: 8))
        #expect(layer.parameters.map { $0.value } == before)
    }

    @Test func forwardInitializationNormalizesTheForwardOutput() throws {
        let layer = try ActNorm<Double>(features: 3, initializationDirection: .forward)
        // Inverse calls before the forward one do not initialize.
        _ = try layer.inverse(Self.data(rows: 5, features: 3, seed: 1))
        #expect(!layer.isInitialized)
        let x = Self.data(rows: 40, features: 3)
        let y = try layer.forward(x).output
        #expect(layer.isInitialized)
        Self.expectStandardized(y)
        #expect(try (layer.inverse(y).output - x).maxAbs <= 1e-12)
    }

    @Test func degenerateFirstBatchesAreFinite() throws {
        // One row: every deviation is 0, so every scale stays 1 and the output is exactly 0.
        let single = try ActNorm<Double>(features: 3)
        let out = try single.inverse(Matrix(row: [2, -1, 5]))
        #expect(out.output.storage == [0, 0, 0] && out.logAbsDet == [0])
        #expect(single.logScale.value.storage == [0, 0, 0] && single.bias.value.storage == [2, -1, 5])
        // A constant feature among varying ones, in both directions and in Float.
        for direction in [ActNorm<Float>.InitializationDirection.inverse, .forward] {
            let layer = try ActNorm<Float>(features: 2, initializationDirection: direction)
            let batch = try Matrix<Float>([[7, 1], [7, 2], [7, 4]])
            let r = direction == .inverse ? try layer.inverse(batch) : try layer.forward(batch)
            #expect(r.output.firstNonFinite() == nil && r.logAbsDet.allSatisfy { $0.isFinite })
            #expect(layer.logScale.value[0, 0] == 0 && r.output[0, 0] == 0 && r.output[2, 0] == 0)
            let (m, sd) = Self.moments(r.output.converted(to: Double.self), column: 1)
            #expect(abs(m) <= 1e-6 && abs(sd - 1) <= 1e-6)
        }
    }

    @Test func nonFiniteFirstBatchThrowsAndDoesNotInitialize() throws {
        let layer = try ActNorm<Double>(features: 2)
        #expect(throws: InvertNNError.nonFinite(operation: "ActNorm(2) initialization", row: 1, column: 0)) {
            try layer.inverse(try Matrix([[1, 2], [.nan, 3]]))
        }
        #expect(!layer.isInitialized && layer.logScale.value.storage == [0, 0])
        #expect(throws: InvertNNError.self) { try layer.inverse(Matrix(rows: 2, columns: 3)) }
        #expect(throws: InvertNNError.self) { try ActNorm<Double>(features: 0) }
        #expect(throws: InvertNNError.self) { try ActNorm<Double>(logScale: [0, 1], bias: [0]) }
    }

    @Test func pixelwiseStatisticsArePerChannelOverBatchAndPixels() throws {
        let (c, h, w) = (2, 3, 4)
        let layer = try Pixelwise<Double>.actNorm(channels: c, height: h, width: w)
        let images = Self.data(rows: 6, features: c * h * w)
        let out = try layer.inverse(images)
        for channel in 0..<c {
            var values = [Double]()
            for b in 0..<6 { for p in 0..<(h * w) { values.append(out.output[b, channel * h * w + p]) } }
            let mean = values.reduce(0, +) / Double(values.count)
            let sd = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
            #expect(abs(mean) <= 1e-12 && abs(sd - 1) <= 1e-12, "channel \(channel)")
        }
        // Log-det per sample: -H·W·Σ_c s_c.
        let s = (layer.base as! ActNorm<Double>).logScale.value.storage
        #expect(abs(out.logAbsDet[0] + Double(h * w) * s.reduce(0, +)) <= 1e-12)
    }

    /// Saved after initialization, a flow reloads initialized (no second initialization on new
    /// data, bit-identical densities); saved before, it reloads uninitialized.
    func checkpointRoundTrip<T: Scalar>(_: T.Type) throws {
        let d = 8
        func makeFlow() throws -> NormalizingFlow<T> {
            try NormalizingFlow(transform: try Sequential<T>([
                try ActNorm<T>(features: d),
                try Pixelwise<T>.actNorm(channels: 2, height: 2, width: 2),
            ]))
        }
        let trained = try makeFlow()
        let data = Self.data(rows: 20, features: d).converted(to: T.self)
        _ = try trained.logProbability(data)  // initializes both layers from this batch
        let path = temporaryPath("actnorm-\(T.self).safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let preprocessing = Preprocessing<T>.standardization(
            try Standardization(means: [T](repeating: 0, count: d), scales: [T](repeating: 1, count: d)))
        try Checkpoint(flow: trained, preprocessing: preprocessing).write(to: path)
        let loaded = try Checkpoint<T>.read(path: path).flow
        let layers = loaded.transform.layers
        #expect((layers[0] as? ActNorm<T>)?.isInitialized == true)
        #expect(((layers[1] as? Pixelwise<T>)?.base as? ActNorm<T>)?.isInitialized == true)
        let other = Self.data(rows: 7, features: d, seed: 99).converted(to: T.self)
        #expect(try loaded.logProbability(other) == trained.logProbability(other))
        #expect(try loaded.logProbability(data) == trained.logProbability(data))

        let fresh = try makeFlow()
        try Checkpoint(flow: fresh, preprocessing: preprocessing).write(to: path)
        let reloaded = try Checkpoint<T>.read(path: path).flow
        #expect((reloaded.transform.layers[0] as? ActNorm<T>)?.isInitialized == false)
    }

    @Test func checkpointKeepsTheInitializedStateDouble() throws { try checkpointRoundTrip(Double.self) }
    @Test func checkpointKeepsTheInitializedStateFloat() throws { try checkpointRoundTrip(Float.self) }
}
