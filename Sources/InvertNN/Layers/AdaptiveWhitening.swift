import RealModule

/// Adaptive (inverse) whitening: an affine bijection fitted to the data it observes, whose
/// forward map correlates standard-normal noise into data-like samples and whose inverse whitens
/// data (invertnn's `AdaptiveInverseWhiteningTransformer`; DESIGN.md §3).
///
/// From the rows of the last ``memorySize`` observed batches: mean `μ`, covariance
/// `C = Σ_i (x_i - μ)(x_i - μ)ᵀ / (N - 1)` (the unbiased divisor `N - 1` for `N` remembered rows),
/// and its eigen-decomposition `C = U diag(λ) Uᵀ` by LAPACK `?syevd`, eigenvalues descending,
/// each eigenvector's largest-magnitude entry made positive (so PCA is deterministic). Negative
/// eigenvalues from rounding are clamped to 0 before `ε` (``epsilon``) is added:
///
/// - ZCA (``Variant/zca``): `y = U diag(√(λ + ε)) Uᵀ z + μ`, inverse `z = U diag(1/√(λ + ε)) Uᵀ (y - μ)`
///   (Bell & Sejnowski 1997, "The independent components of natural scenes are edge filters";
///   Kessy, Lewin & Strimmer 2018, "Optimal whitening and decorrelation");
/// - PCA (``Variant/pca``): `y = U diag(√(λ + ε)) z + μ`, inverse `z = diag(1/√(λ + ε)) Uᵀ (y - μ)`.
///
/// Log-determinant: `½ Σ_j log(λ_j + ε)` nats forward, its negative inverse, the same for every
/// sample. The fitted map is held as an ``InvertibleLinear`` (``linear``): `Q_U = Uᵀ` (ZCA) or `I`
/// (PCA), `s = ½ log(λ + ε)`, `Q_V = U`, bias `μ`; i.e. built from the orthogonal (Householder)
/// and diagonal layers. Its matrix `W` and `W⁻¹ = Q_Uᵀ diag(e^{-s}) Q_Vᵀ` are materialized once per
/// fit, so a direction costs one GEMM.
///
/// - Fitting: ``observe(_:)`` adds a batch to the memory (dropping the oldest beyond
///   ``memorySize``) and re-fits every ``refitInterval`` observations; ``refit()`` fits on demand;
///   ``fit(_:)`` replaces the memory by one batch and fits. Forward and inverse never fit.
///   Before the first fit the layer is the identity (log-det 0).
/// - Parameters: none. The statistics are fitted, not trained (``parameters`` is empty, and
///   backward accumulates nothing); ``statistics`` and ``linear`` hold the fitted state.
/// - Shapes: `x`, `y` `[batch, features]`.
public final class AdaptiveWhitening<T: Scalar>: InvertibleLayer {
    public typealias Element = T

    /// The whitening variant (Kessy, Lewin & Strimmer 2018).
    public enum Variant: String, Sendable, Equatable {
        /// Zero-phase: `W = U diag(√(λ+ε)) Uᵀ`, the symmetric square root of `C + εI`; the whitened
        /// data stays closest to the original coordinates.
        case zca
        /// Principal components: `W = U diag(√(λ+ε))`; whitened coordinate `j` is the `j`-th
        /// principal component (largest variance first).
        case pca
    }

    /// Mean, eigenvalues and eigenvectors of the remembered data.
    public struct Statistics: Sendable, Equatable {
        /// `μ`, `features` entries.
        public var mean: [T]
        /// `λ`, descending, clamped at 0 (squared data units).
        public var eigenvalues: [T]
        /// `U` `[features, features]`, eigenvector `j` in column `j`.
        public var eigenvectors: Matrix<T>
        /// `N`, the number of rows the statistics come from.
        public var sampleCount: Int
    }

    /// The default `ε`: `1e-6` squared data units, small against the variance of data scaled to
    /// about unit range yet enough to keep a constant feature (λ = 0) invertible.
    public static var defaultEpsilon: T { T(1e-6) }

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int
    /// ZCA (rotate back after scaling) or PCA (stay in the eigenbasis).
    public let variant: Variant
    /// How many of the most recent observed batches the statistics come from.
    public let memorySize: Int
    /// Re-fit after every `k`-th call of ``observe(_:)``; `nil`: only ``refit()`` and ``fit(_:)`` fit.
    public let refitInterval: Int?
    /// `ε`, added to every eigenvalue.
    public let epsilon: T
    /// The fitted map as an SVD-composed layer (the identity before the first fit).
    public private(set) var linear: InvertibleLinear<T>
    /// The statistics of the last fit, or `nil` before it.
    public private(set) var statistics: Statistics?
    /// Calls of ``observe(_:)`` so far.
    public private(set) var observationCount = 0

    /// The remembered batches, oldest first.
    private var memory: [Matrix<T>] = []
    /// `W` and `W⁻¹`, `[features, features]`, and the forward log-det, from ``linear``.
    private var forwardMatrix: Matrix<T>
    private var inverseMatrix: Matrix<T>
    private var forwardLogDet: T = 0

    /// An unfitted (identity) whitening layer.
    ///
    /// - Parameters:
    ///   - features: the width of the data, ≥ 1.
    ///   - variant: ZCA (rotate back after whitening, the default) or PCA.
    ///   - memorySize: `N ≥ 1` batches remembered (default 1: the last batch).
    ///   - refitInterval: `k ≥ 1` or `nil` (default 1: re-fit at every observation).
    ///   - epsilon: `ε ≥ 0`, finite (default ``defaultEpsilon``). With `ε = 0` a fit on
    ///     rank-deficient data throws.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for `features < 1`,
    ///   `memorySize < 1`, `refitInterval < 1`, or a bad `epsilon`.
    public init(
        features: Int, variant: Variant = .zca, memorySize: Int = 1, refitInterval: Int? = 1,
        epsilon: T = AdaptiveWhitening<T>.defaultEpsilon
    ) throws {
        let operation = "AdaptiveWhitening"
        // The covariance and the whitening matrices are features × features.
        _ = try SizeLimits.product([features, features], operation: operation, what: "features × features")
        guard memorySize >= 1 else {
            throw InvertNNError.invalidArgument(operation: operation, reason: "memorySize must be ≥ 1, got \(memorySize)")
        }
        if let refitInterval, refitInterval < 1 {
            throw InvertNNError.invalidArgument(operation: operation, reason: "refitInterval must be ≥ 1 or nil, got \(refitInterval)")
        }
        guard epsilon >= 0, epsilon.isFinite else {
            throw InvertNNError.invalidArgument(operation: operation, reason: "epsilon must be finite and ≥ 0, got \(epsilon)")
        }
        self.features = features
        self.variant = variant
        self.memorySize = memorySize
        self.refitInterval = refitInterval
        self.epsilon = epsilon
        self.linear = try InvertibleLinear(features: features)
        self.forwardMatrix = .identity(features)
        self.inverseMatrix = .identity(features)
    }

    /// Whether a fit has happened.
    public var isFitted: Bool { statistics != nil }

    /// Rows currently remembered.
    public var rememberedSamples: Int { memory.reduce(0) { $0 + $1.rows } }

    public var name: String { "AdaptiveWhitening(\(features), \(variant.rawValue))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { [] }
    /// The hyper-parameters (for summaries; the layer cannot be rebuilt from them, its state is
    /// fitted statistics).
    public struct Configuration: Codable, Sendable, Equatable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// The whitening variant.
        public var variant: String
        /// Samples the running statistics remember.
        public var memorySize: Int
        /// Steps between refits, or `nil`.
        public var refitInterval: Int?
        /// The eigenvalue floor.
        public var epsilon: Double
    }
    public static var typeName: String { "AdaptiveWhitening" }
    public var configuration: Configuration {
        Configuration(features: features, variant: variant.rawValue, memorySize: memorySize, refitInterval: refitInterval, epsilon: Double(epsilon))
    }

    // MARK: - Fitting

    /// Remembers `batch` `[rows, features]` (forgetting the oldest batch beyond ``memorySize``),
    /// counts the observation, and re-fits when the count is a multiple of ``refitInterval``.
    ///
    /// An empty batch is not an observation: it is ignored (not remembered or counted).
    ///
    /// - Throws: shape mismatch; ``InvertNNError/nonFinite(operation:row:column:)``;
    ///   the errors of ``refit()`` when it re-fits (the batch stays remembered).
    public func observe(_ batch: Matrix<T>) throws {
        try batch.requireColumns(features, "\(name).observe")
        guard batch.rows > 0 else { return }
        try batch.requireFinite("\(name).observe")
        memory.append(batch)
        if memory.count > memorySize { memory.removeFirst(memory.count - memorySize) }
        observationCount += 1
        if let refitInterval, observationCount % refitInterval == 0 { try refit() }
    }

    /// Fits mean, covariance and the map to the remembered batches (see the type's description).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` with fewer than 2 remembered
    ///   rows; ``InvertNNError/singular(operation:detail:)`` if `ε = 0` and an eigenvalue is 0;
    ///   ``InvertNNError/lapack(routine:info:meaning:)`` if the eigensolver fails. On error the
    ///   previous fit is kept.
    public func refit() throws {
        var all = [T]()
        all.reserveCapacity(rememberedSamples * features)
        for batch in memory { all.append(contentsOf: batch.storage) }
        let data = try Matrix(rows: all.count / features, columns: features, storage: all)
        try fit(statistics: Self.statistics(of: data))
    }

    /// Forgets the memory, remembers only `data` `[samples, features]` and fits to it (does not
    /// count as an observation).
    ///
    /// - Throws: as ``observe(_:)`` and ``refit()``.
    public func fit(_ data: Matrix<T>) throws {
        try data.requireColumns(features, "\(name).fit")
        try data.requireFinite("\(name).fit")
        let statistics = try Self.statistics(of: data)
        memory = [data]
        try fit(statistics: statistics)
    }

    /// Sets the map from given statistics (e.g. restored from a checkpoint). The memory is kept.
    ///
    /// - Throws: as ``InvertibleLinear/init(whitening:variant:epsilon:)``, and a shape mismatch
    ///   for statistics of another size.
    public func fit(statistics: Statistics) throws {
        guard statistics.mean.count == features, statistics.eigenvalues.count == features,
              statistics.eigenvectors.rows == features, statistics.eigenvectors.columns == features else {
            throw InvertNNError.shapeMismatch(
                operation: "\(name).fit(statistics:)", expected: "\(features) features",
                actual: "mean \(statistics.mean.count), eigenvalues \(statistics.eigenvalues.count), eigenvectors \(statistics.eigenvectors.shape)")
        }
        let fitted = try InvertibleLinear(whitening: statistics, variant: variant, epsilon: epsilon)
        let u = try fitted.orthogonalU.matrix(), v = try fitted.orthogonalV.matrix()
        let s = fitted.scale.logScale.value.storage
        // W = Q_V diag(e^s) Q_U and W⁻¹ = Q_Uᵀ diag(e^{-s}) Q_Vᵀ, from the layers' own factors.
        var scaledU = u, scaledVt = v.transposed()
        for r in 0..<features {
            let d = T.exp(s[r]), e = T.exp(-s[r])
            for c in 0..<features {
                scaledU[r, c] *= d
                scaledVt[r, c] *= e
            }
        }
        forwardMatrix = try BLAS.matmul(v, scaledU)
        inverseMatrix = try BLAS.matmul(u, transposeA: true, scaledVt)
        forwardLogDet = s.reduce(0, +)
        linear = fitted
        self.statistics = statistics
    }

    /// Mean, eigenvalues (descending, clamped at 0) and eigenvectors (largest-magnitude entry
    /// positive) of the covariance of `data` `[samples, features]` with divisor `samples - 1`;
    /// the covariance is one GEMM of the centered data, the eigen-decomposition LAPACK `?syevd`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for fewer than 2 samples or
    ///   no features; ``InvertNNError/nonFinite(operation:row:column:)`` for NaN or infinite data;
    ///   ``InvertNNError/lapack(routine:info:meaning:)`` if the eigensolver fails.
    public static func statistics(of data: Matrix<T>) throws -> Statistics {
        let operation = "AdaptiveWhitening.statistics"
        let n = data.columns, samples = data.rows
        guard n >= 1, samples >= 2 else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "need at least 2 samples of at least 1 feature, got \(data.shape)")
        }
        try data.requireFinite(operation)
        var mean = [T](repeating: 0, count: n)
        for r in 0..<samples {
            for j in 0..<n { mean[j] += data.storage[r * n + j] }
        }
        for j in 0..<n { mean[j] /= T(samples) }
        var centered = data
        for r in 0..<samples {
            for j in 0..<n { centered.storage[r * n + j] -= mean[j] }
        }
        let covariance = try BLAS.matmul(centered, transposeA: true, centered, alpha: 1 / T(samples - 1))
        let (ascending, vectors) = try LAPACK.symmetricEigen(covariance)
        var eigenvalues = [T](repeating: 0, count: n)
        var eigenvectors = Matrix<T>(rows: n, columns: n)
        for k in 0..<n {
            let source = n - 1 - k
            eigenvalues[k] = Swift.max(ascending[source], 0)
            var pivot = 0
            for r in 0..<n where Swift.abs(vectors[r, source]) > Swift.abs(vectors[pivot, source]) { pivot = r }
            let sign: T = vectors[pivot, source] < 0 ? -1 : 1
            for r in 0..<n { eigenvectors[r, k] = sign * vectors[r, source] }
        }
        return Statistics(mean: mean, eigenvalues: eigenvalues, eigenvectors: eigenvectors, sampleCount: samples)
    }

    /// The factors `Q_U`, `s`, `Q_V` of the whitening map (see ``InvertibleLinear/init(whitening:variant:epsilon:)``).
    static func factors(
        _ statistics: Statistics, variant: Variant, epsilon: T
    ) throws -> (u: Householder<T>, logScale: [T], v: Householder<T>) {
        let operation = "AdaptiveWhitening"
        let n = statistics.mean.count
        guard n >= 1, statistics.eigenvalues.count == n,
              statistics.eigenvectors.rows == n, statistics.eigenvectors.columns == n else {
            throw InvertNNError.shapeMismatch(
                operation: operation, expected: "mean, eigenvalues and [n, n] eigenvectors of one size n ≥ 1",
                actual: "mean \(n), eigenvalues \(statistics.eigenvalues.count), eigenvectors \(statistics.eigenvectors.shape)")
        }
        guard epsilon >= 0, epsilon.isFinite else {
            throw InvertNNError.invalidArgument(operation: operation, reason: "epsilon must be finite and ≥ 0, got \(epsilon)")
        }
        if let bad = statistics.mean.firstIndex(where: { !$0.isFinite }) {
            throw InvertNNError.nonFinite(operation: "\(operation) mean", row: 0, column: bad)
        }
        var logScale = [T](repeating: 0, count: n)
        for (j, lambda) in statistics.eigenvalues.enumerated() {
            let shifted = lambda + epsilon
            guard shifted > 0, shifted.isFinite else {
                throw InvertNNError.singular(
                    operation: operation,
                    detail: "eigenvalue \(j) is \(lambda) and ε = \(epsilon): λ + ε must be positive and finite (use ε > 0 for rank-deficient data)")
            }
            logScale[j] = T.log(shifted) / 2
        }
        // Statistics may come from outside (a checkpoint), so the eigenvectors get the full check.
        let v = try Householder<T>(orthogonal: statistics.eigenvectors, hasBias: false)
        let u = variant == .zca
            ? try Householder<T>(
                orthogonal: statistics.eigenvectors.transposed(), tolerance: nil, bias: nil, hasBias: false,
                reflectorsName: "reflectors", checksGram: false)
            : try Householder<T>(features: n, hasBias: false)
        return (u, logScale, v)
    }

    // MARK: - Directions

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        var y = Matrix<T>(rows: x.rows, columns: features)
        if let mean = statistics?.mean {
            for r in 0..<x.rows {
                for j in 0..<features { y.storage[r * features + j] = mean[j] }
            }
        }
        try BLAS.gemm(x, forwardMatrix, transposeB: true, beta: 1, into: &y)
        return LayerOutput(output: y, logAbsDet: [T](repeating: forwardLogDet, count: x.rows))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(features, "\(name).inverse")
        var z = y
        if let mean = statistics?.mean {
            for r in 0..<y.rows {
                for j in 0..<features { z.storage[r * features + j] -= mean[j] }
            }
        }
        var x = Matrix<T>(rows: y.rows, columns: features)
        try BLAS.gemm(z, inverseMatrix, transposeB: true, into: &x)
        return LayerOutput(output: x, logAbsDet: [T](repeating: -forwardLogDet, count: y.rows))
    }

    // MARK: - Backward

    /// VJP of ``forward(_:)``: `dX = dY W` (rows; `y = W x + μ`). The log-det is constant.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input x: Matrix<T>, output y: Matrix<T>, outputGradient dy: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: x, inFeatures: features, output: y, outFeatures: features,
                             outputGradient: dy, logAbsDetGradient: dld)
        var dx = Matrix<T>(rows: x.rows, columns: features)
        try BLAS.gemm(dy, forwardMatrix, into: &dx)
        return dx
    }

    /// VJP of ``inverse(_:)``: `dY = dX W⁻¹` (rows; `x = W⁻¹ (y - μ)`). The log-det is constant.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input y: Matrix<T>, output x: Matrix<T>, outputGradient dx: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: y, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: dx, logAbsDetGradient: dld)
        var dy = Matrix<T>(rows: y.rows, columns: features)
        try BLAS.gemm(dx, inverseMatrix, into: &dy)
        return dy
    }
}
