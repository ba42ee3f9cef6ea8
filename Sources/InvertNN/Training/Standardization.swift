import RealModule

/// Per-feature standardization of continuous data, `y_j = (x_j - μ_j) / σ_j`, fitted on a
/// training set; the preprocessing of tabular data (``Preprocessing/standardization(_:)``).
///
/// It is an affine bijection, so a flow's density of `y` gives the density of the original `x`
/// by the change of variables: `log p(x) = log p(y) + log|det ∂y/∂x|` with the constant
/// `log|det ∂y/∂x| = -Σ_j log σ_j` nats per sample. Reported densities include it, so they are
/// in the units of the data as given.
///
/// `μ` is the training mean and `σ` the standard deviation with divisor `n` (maximum likelihood);
/// a constant column gets `σ = 1` so the map stays invertible.
public struct Standardization<T: Scalar>: Sendable, Equatable {
    /// `μ`, one per feature.
    public let means: [T]
    /// `σ > 0`, one per feature.
    public let scales: [T]

    /// A standardization with given means and scales.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if the counts differ, are 0,
    ///   or a value is not finite or a scale not positive.
    public init(means: [T], scales: [T]) throws {
        guard !means.isEmpty, means.count == scales.count else {
            throw InvertNNError.invalidArgument(
                operation: "Standardization", reason: "need as many means as scales (≥ 1), got \(means.count) and \(scales.count)")
        }
        if let j = means.firstIndex(where: { !$0.isFinite }) {
            throw InvertNNError.invalidArgument(operation: "Standardization", reason: "mean \(j) is \(means[j])")
        }
        if let j = scales.firstIndex(where: { !($0 > 0 && $0.isFinite) }) {
            throw InvertNNError.invalidArgument(operation: "Standardization", reason: "scale \(j) must be positive and finite, got \(scales[j])")
        }
        self.means = means
        self.scales = scales
    }

    /// A standardization from means and scales stored as Doubles (a checkpoint's), each checked
    /// before it is converted to `T`, so that errors report the stored value rather than what
    /// the conversion made of it (1e-300 becomes 0 in Float).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` as ``init(means:scales:)``
    ///   (0-based index `j`), and for a finite value beyond the range of `T` or a positive scale
    ///   that underflows to 0 in `T`.
    init(storedMeans means: [Double], scales: [Double]) throws {
        func invalid(_ reason: String) -> InvertNNError { .invalidArgument(operation: "Standardization", reason: reason) }
        for (what, values) in [("mean", means), ("scale", scales)] {
            for (j, value) in values.enumerated() where value.isFinite {
                let converted = T(value)
                if !converted.isFinite {
                    throw invalid("\(what) \(j) is \(value), beyond the range of \(T.self) (largest \(T.greatestFiniteMagnitude))")
                }
                if what == "scale", value > 0, converted == 0 {
                    throw invalid("scale \(j) is \(value), which underflows to 0 in \(T.self) (smallest positive \(T.leastNonzeroMagnitude))")
                }
            }
        }
        try self.init(means: means.map { T($0) }, scales: scales.map { T($0) })
    }

    /// Fits `μ` and `σ` (divisor `n`) to `data` `[n, D]`, computed in Double.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an empty matrix,
    ///   ``InvertNNError/nonFinite(operation:row:column:)`` for NaN or infinite data.
    public init(fitting data: Matrix<T>) throws {
        guard data.rows >= 1, data.columns >= 1 else {
            throw InvertNNError.invalidArgument(operation: "Standardization", reason: "cannot fit to a \(data.rows)×\(data.columns) matrix")
        }
        try data.requireFinite("Standardization data")
        let n = data.rows, d = data.columns
        var mean = [Double](repeating: 0, count: d), variance = [Double](repeating: 0, count: d)
        for r in 0..<n { for j in 0..<d { mean[j] += Double(data[r, j]) } }
        for j in 0..<d { mean[j] /= Double(n) }
        for r in 0..<n { for j in 0..<d { let e = Double(data[r, j]) - mean[j]; variance[j] += e * e } }
        let scales = variance.map { v -> T in
            let s = T((v / Double(n)).squareRoot())
            return s > 0 && s.isFinite ? s : 1
        }
        try self.init(means: mean.map { T($0) }, scales: scales)
    }

    /// D, the number of features.
    public var features: Int { means.count }

    /// `-Σ_j log σ_j`, the log-det of ``standardize(_:)`` per sample, in nats.
    public var logAbsDet: T { -scales.reduce(T(0)) { $0 + T.log($1) } }

    /// `y = (x - μ) / σ` per row, with `log|det ∂y/∂x|` per sample.
    ///
    /// - Throws: shape mismatch (an empty batch gives an empty result); ``InvertNNError/nonFinite(operation:row:column:)``.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func standardize(_ x: Matrix<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "Standardization.standardize")
        try x.requireFinite("Standardization.standardize")
        var y = x
        let d = features
        for r in 0..<x.rows {
            for j in 0..<d { y.storage[r * d + j] = (x.storage[r * d + j] - means[j]) / scales[j] }
        }
        return LayerOutput(output: y, logAbsDet: [T](repeating: logAbsDet, count: x.rows))
    }

    /// `x = μ + σ·y` per row: back to the data's units.
    ///
    /// - Throws: shape mismatch.
    public func destandardize(_ y: Matrix<T>) throws -> Matrix<T> {
        guard y.columns == features else {
            throw InvertNNError.shapeMismatch(operation: "Standardization.destandardize", expected: "[batch, \(features)]", actual: "[\(y.rows), \(y.columns)]")
        }
        var x = y
        let d = features
        for r in 0..<y.rows {
            for j in 0..<d { x.storage[r * d + j] = means[j] + scales[j] * y.storage[r * d + j] }
        }
        return x
    }
}
