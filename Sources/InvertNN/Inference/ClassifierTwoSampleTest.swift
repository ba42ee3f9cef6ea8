import RealModule

/// The classifier two-sample test (C2ST; Lopez-Paz & Oquab 2017), as the sbibm benchmark scores
/// posterior samples (Lueckmann et al. 2021, §3): a classifier learns to tell the rows of `a`
/// from those of `b`; its held-out accuracy is 0.5 when the two samples come from the same
/// distribution and 1 when they do not overlap.
///
/// As in sbibm: both samples are z-scored by the mean and standard deviation of `a`; the
/// classifier is an MLP with two hidden layers of `10·D` ReLU units and a logistic output,
/// trained by Adam (learning rate 1e-3, mini-batches of 200) until the training loss has not
/// improved by 1e-4 for 10 epochs (at most `maxEpochs`); the score is the mean accuracy over
/// `folds` shuffled folds.
public enum ClassifierTwoSampleTest {
    /// The mean held-out accuracy in `[0, 1]`.
    ///
    /// - Parameters:
    ///   - a: `[n, D]` samples, `n ≥ folds`.
    ///   - b: `[m, D]` samples, `m ≥ folds`.
    ///   - folds: cross-validation folds (default 5).
    ///   - maxEpochs: a cap on the classifier's training epochs per fold.
    ///   - seed: seeds the shuffle and the classifier's initialization.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for samples of different
    ///   widths, too few rows, or non-finite values.
    public static func accuracy(
        _ a: Matrix<Double>, _ b: Matrix<Double>, folds: Int = 5, maxEpochs: Int = 500, seed: UInt64 = 0
    ) throws -> Double {
        func invalid(_ reason: String) -> InvertNNError { .invalidArgument(operation: "ClassifierTwoSampleTest", reason: reason) }
        guard a.columns == b.columns, a.columns >= 1 else { throw invalid("the samples have \(a.columns) and \(b.columns) columns") }
        guard folds >= 2, a.rows >= folds, b.rows >= folds else { throw invalid("need ≥ \(folds) rows in each sample and ≥ 2 folds") }
        try a.requireFinite("ClassifierTwoSampleTest a")
        try b.requireFinite("ClassifierTwoSampleTest b")
        let d = a.columns
        let scaler = try Standardization<Double>(fitting: a)
        let za = try scaler.standardize(a).output, zb = try scaler.standardize(b).output
        let data = try Matrix(rows: a.rows + b.rows, columns: d, storage: za.storage + zb.storage)
        let labels = [Double](repeating: 0, count: a.rows) + [Double](repeating: 1, count: b.rows)
        var generator = SeededGenerator(seed: seed)
        var order = Array(0..<data.rows)
        order.shuffle(using: &generator)
        var total = 0.0
        for fold in 0..<folds {
            let lower = fold * data.rows / folds, upper = (fold + 1) * data.rows / folds
            let held = Array(order[lower..<upper]), kept = Array(order[..<lower] + order[upper...])
            let mlp = try MLP<Double>(sizes: [d, 10 * d, 10 * d, 1], using: &generator)
            try train(mlp, data.rows(at: kept), kept.map { labels[$0] }, maxEpochs: maxEpochs, generator: &generator)
            let logits = try mlp(data.rows(at: held))
            var correct = 0
            for (k, row) in held.enumerated() where (logits[k, 0] > 0) == (labels[row] == 1) { correct += 1 }
            total += Double(correct) / Double(held.count)
        }
        return total / Double(folds)
    }

    /// Logistic regression of `labels` (0 or 1) on the MLP's output logit.
    private static func train(
        _ mlp: MLP<Double>, _ x: Matrix<Double>, _ labels: [Double], maxEpochs: Int, generator: inout SeededGenerator
    ) throws {
        let optimizer = try Adam(parameters: mlp.parameters, learningRate: 1e-3)
        let batchSize = min(200, x.rows)
        var order = Array(0..<x.rows)
        var best = Double.infinity, stale = 0
        let buffers = StepBuffers<Double>()  // this training loop's, reused from step to step
        for _ in 0..<maxEpochs {
            order.shuffle(using: &generator)
            var loss = 0.0
            var start = 0
            while start < x.rows {
                let rows = Array(order[start..<min(start + batchSize, x.rows)])
                start += batchSize
                for p in mlp.parameters { p.zeroGradient() }
                let trace = try mlp.forward(x.rows(at: rows), buffers: buffers)
                var gradient = Matrix<Double>(rows: rows.count, columns: 1)
                for (k, row) in rows.enumerated() {
                    // Binary cross-entropy of σ(z) written stably: log(1 + e^z) - y z.
                    let z = trace.output[k, 0], y = labels[row]
                    loss += max(z, 0) + Double.log(1 + Double.exp(-abs(z))) - y * z
                    gradient[k, 0] = (1 / (1 + Double.exp(-z)) - y) / Double(rows.count)
                }
                _ = try mlp.backward(trace, outputGradient: gradient, buffers: buffers)
                _ = try optimizer.update()
            }
            loss /= Double(x.rows)
            if loss < best - 1e-4 { best = loss; stale = 0 } else { stale += 1 }
            if stale >= 10 { break }
        }
    }
}
