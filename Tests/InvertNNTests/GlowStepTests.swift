import Testing
import InvertNN

/// Glow's flow step [ActNorm, LU 1×1 mixing, affine coupling] trained by ``Trainer``: the
/// ActNorm layers are initialized by the first evaluated batch of training data and training
/// goes on from there.
@Suite struct GlowStepTests {
    /// Correlated Gaussian data far from standard: means 5…8, scales 0.3…3.
    static func data(rows: Int, seed: UInt64) -> Matrix<Double> {
        var g = SeededGenerator(seed: seed)
        var m = Matrix<Double>.randomNormal(rows: rows, columns: 4, using: &g)
        for r in 0..<rows {
            let shared = m[r, 0]
            for j in 0..<4 { m[r, j] = 5 + Double(j) + (0.3 + 0.9 * Double(j)) * (0.8 * m[r, j] + 0.6 * shared) }
        }
        return m
    }

    @Test func actNormInitializesFromTheTrainingDataAndTrains() throws {
        var g = SeededGenerator(seed: 7)
        // Layers are listed in the generative order: the data meet the last one first.
        let steps: [any InvertibleLayer<Double>] = try (0..<2).flatMap { k -> [any InvertibleLayer<Double>] in
            [try AffineCoupling<Double>(features: 4, hiddenSizes: [16], conditioningBlock: k == 0 ? .first : .second, using: &g),
             try LULinear<Double>(features: 4, using: &g),
             try ActNorm<Double>(features: 4)]
        }
        let flow = try NormalizingFlow(transform: try Sequential(steps))
        let identity = try Standardization<Double>(means: [0, 0, 0, 0], scales: [1, 1, 1, 1])
        let trainer = try Trainer(
            flow: flow, preprocessing: .standardization(identity),
            configuration: TrainingConfiguration.plain(epochs: 6, batchSize: 32, learningRate: 5e-3, seed: 1, evaluationBatchSize: 1000))
        let train = Self.data(rows: 400, seed: 1), validation = Self.data(rows: 200, seed: 2)
        let actNorms = flow.transform.layers.compactMap { $0 as? ActNorm<Double> }
        var inner = Double.nan  // Σ s of the inner ActNorm as initialized, read before any step
        let result = try trainer.fit(train: train, validation: validation) { event in
            if case let .epoch(report) = event, report.epoch == 0 {
                inner = actNorms[0].logScale.value.storage.reduce(0, +)
            }
        }
        #expect(actNorms.count == 2 && actNorms.allSatisfy(\.isInitialized))
        // Epoch 0 (the whole training split in one evaluation batch): the outer ActNorm
        // standardizes it, the LU layers are orthogonal (log-det 0), the couplings the identity,
        // and the inner ActNorm standardizes the rotated batch again, so the latent has mean
        // squared norm D and the train NLL is (D/2)(1 + log 2π) + Σ_j log σ_j (the diagonal
        // Gaussian fitted to the split) + Σ_j s_j of the inner ActNorm.
        var expected = 2 * (1 + Double.log(2 * Double.pi))
        for j in 0..<4 {
            let column = (0..<train.rows).map { train[$0, j] }
            let mean = column.reduce(0, +) / Double(train.rows)
            let variance: Double = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(train.rows)
            expected += 0.5 * Double.log(variance)
        }
        #expect(abs(result.history[0].train.negativeLogLikelihood - (expected + inner)) <= 1e-10,
                "\(result.history[0].train.negativeLogLikelihood) vs \(expected + inner)")
        // Training then improves on that start (the correlation is learnable).
        #expect(result.best.validation.negativeLogLikelihood < result.history[0].validation.negativeLogLikelihood - 0.1)
    }
}
