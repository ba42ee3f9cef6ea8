import Testing
import InvertNN

/// Data with an exactly known sample covariance: `N` rows whose centered sample covariance is
/// `Q diag(σ²) Qᵀ` (σ² evenly spread over [0.5, 3.5], so eigenvalue gaps are ≥ 3/n and Float and
/// Double eigenvectors agree), plus a mean. Built from the orthonormal left singular vectors of a
/// centered Gaussian matrix.
func whiteningData(features n: Int, samples: Int, seed: UInt64) throws -> Matrix<Double> {
    var rng = SeededGenerator(seed: seed)
    var z = Matrix<Double>.randomNormal(rows: samples, columns: n, using: &rng)
    for j in 0..<n {
        var mean = 0.0
        for r in 0..<samples { mean += z[r, j] }
        for r in 0..<samples { z[r, j] -= mean / Double(samples) }
    }
    let u = try LAPACK.svd(z).u.columns(0..<n)  // centered, orthonormal columns
    let q = try RandomMatrices.orthogonal(n, negative: false, using: &rng)
    var basis = q.transposed()
    for k in 0..<n {
        let sigma = (0.5 + 3 * Double(k) / Double(max(n - 1, 1))).squareRoot() * Double(samples - 1).squareRoot()
        for c in 0..<n { basis[k, c] *= sigma }
    }
    var x = try BLAS.matmul(u, basis)
    for r in 0..<samples { for j in 0..<n { x[r, j] += Double(j % 5) - 1.5 } }
    return x
}

struct WhiteningFactory: LayerFactory {
    var variant: AdaptiveWhitening<Double>.Variant

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        let data = try whiteningData(features: features, samples: 2 * features + 10, seed: seed)
        let layer = try AdaptiveWhitening<T>(
            features: features, variant: variant == .zca ? .zca : .pca, epsilon: T(1e-3))
        try layer.fit(data.converted(to: T.self))
        return layer
    }
}

/// Issue 4, items 3 and 5.
@Suite struct AdaptiveWhiteningTests {
    @Test func contractZCA() throws { try checkLayerContract(WhiteningFactory(variant: .zca)) }
    @Test func contractPCA() throws { try checkLayerContract(WhiteningFactory(variant: .pca)) }

    /// 10,000 samples of a 10-dimensional Gaussian with a random covariance.
    @Test func statistics() throws {
        var rng = SeededGenerator(seed: 404)
        let n = 10, samples = 10_000
        let b = Matrix<Double>.randomNormal(rows: n, columns: n, using: &rng)
        var sigma = try BLAS.matmul(b, b, transposeB: true, alpha: 0.3)
        for j in 0..<n { sigma[j, j] += 0.2 }
        let mean = (0..<n).map { _ in 3 * rng.nextNormal(Double.self) }
        let z = Matrix<Double>.randomNormal(rows: samples, columns: n, using: &rng)
        var x = try BLAS.matmul(z, b, transposeB: true, alpha: 0.3.squareRoot())
        // x = √0.3 B z + √0.2 w + μ has covariance 0.3 B Bᵀ + 0.2 I = Σ.
        let w = Matrix<Double>.randomNormal(rows: samples, columns: n, using: &rng)
        for r in 0..<samples { for j in 0..<n { x[r, j] += 0.2.squareRoot() * w[r, j] + mean[j] } }

        var worst = (whitened: 0.0, dewhitened: 0.0, roundTrip: 0.0)
        for variant in [AdaptiveWhitening<Double>.Variant.zca, .pca] {
            let layer = try AdaptiveWhitening<Double>(features: n, variant: variant)
            try layer.fit(x)
            // Whitened data: covariance within 0.05 of I (max entry).
            let white = try layer.inverse(x).output
            let whiteCovariance = try covariance(white)
            let whiteError = try (whiteCovariance - Matrix<Double>.identity(n)).maxAbs
            #expect(whiteError <= 0.05, "\(variant) whitened covariance off I by \(whiteError)")
            worst.whitened = max(worst.whitened, whiteError)
            // De-whitened standard-normal samples: covariance within 0.1 relative of Σ, entry by
            // entry relative to the scale √(Σ_ii Σ_jj) of that entry.
            let noise = Matrix<Double>.randomNormal(rows: samples, columns: n, using: &rng)
            let colored = try covariance(layer.forward(noise).output)
            var relative = 0.0
            for i in 0..<n {
                for j in 0..<n {
                    relative = max(relative, abs(colored[i, j] - sigma[i, j]) / (sigma[i, i] * sigma[j, j]).squareRoot())
                }
            }
            #expect(relative <= 0.1, "\(variant) de-whitened covariance relative error \(relative)")
            worst.dewhitened = max(worst.dewhitened, relative)
            // Exact inverse.
            let back = try layer.forward(white).output
            let roundTrip = try (back - x).maxAbs / x.maxAbs
            #expect(roundTrip <= 1e-12, "\(variant) round trip \(roundTrip)")
            let again = try layer.inverse(layer.forward(noise).output).output
            let roundTrip2 = try (again - noise).maxAbs / noise.maxAbs
            #expect(roundTrip2 <= 1e-12, "\(variant) round trip z→y→z \(roundTrip2)")
            worst.roundTrip = max(worst.roundTrip, roundTrip, roundTrip2)
            // Log-det ½ Σ log(λ + ε) = log|det| of the layer's matrix (getrf).
            let stats = try #require(layer.statistics)
            let expected = stats.eigenvalues.reduce(0) { $0 + Double.log($1 + layer.epsilon) / 2 }
            let out = try layer.forward(noise.rows(0..<2))
            #expect(abs(out.logAbsDet[0] - expected) <= 1e-12 * max(1, abs(expected)))
            let lu = try LAPACK.logAbsDeterminant(layer.linear.matrix())
            #expect(abs(lu.logAbsDet - expected) <= 1e-12 * max(1, abs(expected)))
            for j in 0..<n { #expect(abs(stats.mean[j] - mean[j]) <= 0.1) }
            #expect(stats.eigenvalues == stats.eigenvalues.sorted(by: >))
            #expect(stats.sampleCount == samples)
            if variant == .zca {
                let m = try layer.linear.matrix()
                #expect(try (m - m.transposed()).maxAbs <= 1e-12 * m.maxAbs, "ZCA matrix is symmetric")
            } else {
                // PCA: whitened coordinate j is principal component j: U_jᵀ (x - μ) / √(λ_j + ε).
                for j in [0, n - 1] {
                    var value = 0.0
                    for i in 0..<n { value += stats.eigenvectors[i, j] * (x[0, i] - stats.mean[i]) }
                    #expect(abs(white[0, j] - value / (stats.eigenvalues[j] + layer.epsilon).squareRoot()) <= 1e-12)
                }
            }
        }
        print("AdaptiveWhitening worst: whitened covariance off I \(worst.whitened), de-whitened relative \(worst.dewhitened), round trip \(worst.roundTrip)")
    }

    /// The covariance of the rows with divisor N - 1 (reference, plain loops).
    func covariance(_ x: Matrix<Double>) throws -> Matrix<Double> {
        let n = x.columns, rows = x.rows
        var mean = [Double](repeating: 0, count: n)
        for r in 0..<rows { for j in 0..<n { mean[j] += x[r, j] / Double(rows) } }
        var c = Matrix<Double>(rows: n, columns: n)
        for r in 0..<rows {
            for i in 0..<n { for j in 0..<n { c[i, j] += (x[r, i] - mean[i]) * (x[r, j] - mean[j]) } }
        }
        return 1 / Double(rows - 1) * c
    }

    @Test func memoryAndRefitSchedule() throws {
        var rng = SeededGenerator(seed: 6)
        let batches = (0..<5).map { k in
            var m = Matrix<Double>.randomNormal(rows: 20, columns: 3, using: &rng)
            for r in 0..<20 { m[r, 0] += Double(k) }
            return m
        }
        let layer = try AdaptiveWhitening<Double>(features: 3, memorySize: 2, refitInterval: 2)
        #expect(!layer.isFitted)
        let x = Matrix<Double>.randomNormal(rows: 4, columns: 3, using: &rng)
        let identity = try layer.forward(x)
        #expect(identity.output == x && identity.logAbsDet.allSatisfy { $0 == 0 }, "identity before the first fit")
        try layer.observe(batches[0])
        #expect(!layer.isFitted)
        try layer.observe(batches[1])
        #expect(layer.isFitted && layer.rememberedSamples == 40)
        let firstMean = try #require(layer.statistics).mean[0]
        #expect(abs(firstMean - meanOfColumn0(batches[0], batches[1])) <= 1e-12)
        try layer.observe(batches[2])
        #expect(try #require(layer.statistics).mean[0] == firstMean, "no refit after the third observation")
        #expect(layer.rememberedSamples == 40, "memory holds 2 batches")
        try layer.observe(batches[3])
        #expect(abs(try #require(layer.statistics).mean[0] - meanOfColumn0(batches[2], batches[3])) <= 1e-12,
                "refit on the last two batches")
        #expect(layer.observationCount == 4)

        let manual = try AdaptiveWhitening<Double>(features: 3, memorySize: 3, refitInterval: nil)
        for b in batches { try manual.observe(b) }
        #expect(!manual.isFitted)
        try manual.refit()
        #expect(abs(try #require(manual.statistics).mean[0] - meanOfColumn0(batches[2], batches[3], batches[4])) <= 1e-12)
        #expect(try #require(manual.statistics).sampleCount == 60)
    }

    func meanOfColumn0(_ batches: Matrix<Double>...) -> Double {
        var total = 0.0, count = 0
        for b in batches { for r in 0..<b.rows { total += b[r, 0]; count += 1 } }
        return total / Double(count)
    }

    /// The data-dependent init of InvertibleLinear is the same map as the fitted whitening layer,
    /// and its 1x1-conv form whitens the channels of images.
    @Test func dataDependentInit() throws {
        let data = try whiteningData(features: 6, samples: 200, seed: 3)
        for variant in [AdaptiveWhitening<Double>.Variant.zca, .pca] {
            let layer = try AdaptiveWhitening<Double>(features: 6, variant: variant)
            try layer.fit(data)
            let linear = try InvertibleLinear<Double>(whiteningData: data, variant: variant)
            #expect(try (linear.matrix() - layer.linear.matrix()).maxAbs <= 1e-14)
            let white = try linear.inverse(data)
            #expect(try (covariance(white.output) - Matrix<Double>.identity(6)).maxAbs <= 1e-5, "ε = 1e-6 shrinks by ~1e-6")
            #expect(try (layer.inverse(data).output - white.output).maxAbs <= 1e-12)
        }
        var rng = SeededGenerator(seed: 4)
        let (c, h, w) = (3, 4, 4)
        var images = Matrix<Double>.randomNormal(rows: 50, columns: c * h * w, using: &rng)
        for b in 0..<50 { for p in 0..<(h * w) { images[b, h * w + p] += 2 * images[b, p] } }  // correlate channels 0, 1
        let conv = try Pixelwise<Double>.whitening(images: images, channels: c, height: h, width: w)
        let white = try conv.inverse(images).output
        var pixels = Matrix<Double>(rows: 50 * h * w, columns: c)
        for b in 0..<50 { for p in 0..<(h * w) { for k in 0..<c { pixels[b * h * w + p, k] = white[b, k * h * w + p] } } }
        #expect(try (covariance(pixels) - Matrix<Double>.identity(c)).maxAbs <= 1e-5)
    }

    @Test func rankDeficientAndBadInput() throws {
        var data = try whiteningData(features: 4, samples: 30, seed: 1)
        for r in 0..<30 { data[r, 3] = 7 }  // a constant feature: λ = 0
        let strict = try AdaptiveWhitening<Double>(features: 4, epsilon: 0)
        #expect(throws: InvertNNError.self) { try strict.fit(data) }
        #expect(!strict.isFitted, "a failed fit leaves the layer unfitted")
        let regularized = try AdaptiveWhitening<Double>(features: 4, epsilon: 1e-4)
        try regularized.fit(data)
        let x = try regularized.inverse(data).output
        #expect(try (regularized.forward(x).output - data).maxAbs <= 1e-10)

        #expect(throws: InvertNNError.self) { try AdaptiveWhitening<Double>(features: 0) }
        #expect(throws: InvertNNError.self) { try AdaptiveWhitening<Double>(features: 2, memorySize: 0) }
        #expect(throws: InvertNNError.self) { try AdaptiveWhitening<Double>(features: 2, refitInterval: 0) }
        #expect(throws: InvertNNError.self) { try AdaptiveWhitening<Double>(features: 2, epsilon: -1) }
        #expect(throws: InvertNNError.self) { try AdaptiveWhitening<Double>(features: 2, epsilon: .nan) }
        let layer = try AdaptiveWhitening<Double>(features: 2)
        #expect(throws: InvertNNError.self) { try layer.fit(Matrix([[1, 2]])) }  // one sample
        #expect(throws: InvertNNError.self) { try layer.fit(Matrix([[1, 2, 3], [4, 5, 6]])) }
        #expect(throws: InvertNNError.self) { try layer.observe(Matrix([[1, .nan], [0, 1]])) }
        #expect(throws: Never.self) { _ = try layer.forward(Matrix(rows: 0, columns: 2)) }  // an empty batch gives an empty result
        #expect(throws: InvertNNError.self) { try layer.inverse(Matrix(rows: 1, columns: 3)) }
        var stats = try AdaptiveWhitening<Double>.statistics(of: data)
        stats.eigenvectors[0, 0] += 0.1  // not orthogonal
        #expect(throws: InvertNNError.self) { try regularized.fit(statistics: stats) }
        #expect(layer.parameters.isEmpty)
        #expect(regularized.configuration.variant == "zca")
    }
}
