import RealModule

// Initializers of the SVD-composed layer from a matrix (LAPACK SVD), from Haar-random
// orthogonal factors, and from data (whitening).

extension InvertibleLinear {
    /// The default relative rank tolerance of ``init(matrix:bias:hasBias:singularTolerance:orthogonalityTolerance:)``:
    /// `n · ε` (`ε = T.ulpOfOne`), the rank threshold of LAPACK's users' guide and NumPy's
    /// `matrix_rank`. A matrix with `σ_min ≤ n·ε·σ_max` is singular to working precision: its
    /// inverse would be dominated by rounding. For a Double `256 × 256` matrix this accepts condition
    /// numbers up to `1.8e13`.
    public static func defaultSingularTolerance(features n: Int) -> T {
        T(Swift.max(n, 1)) * T.ulpOfOne
    }

    /// The layer whose matrix is the square matrix `a`: `y = A x + b`.
    ///
    /// LAPACK's SVD (`?gesdd`) gives `A = P · diag(σ) · Rᵀ`; the layer takes `Q_U = Rᵀ`,
    /// `s = log σ` and `Q_V = P`, each orthogonal factor turned into trapezoidal reflectors by
    /// ``Householder/trapezoidalReflectors(ofOrthogonal:tolerance:)`` (QR with R = I), so the
    /// signs of `det A` are carried by the fixed last reflectors (DESIGN.md §3; Zhang et al. 2018,
    /// "Stabilizing gradients for deep neural networks via efficient SVD parameterization";
    /// Mathiasen et al. 2020, "What if neural networks had SVDs?"). Repeated singular values
    /// (the identity, permutations, `diag(2, 2, 1)`) are fine: any SVD the routine returns is
    /// used. The log-determinant is `Σ log σ_j = log|det A|` nats. Cost: one SVD and two QRs,
    /// `O(n³)`.
    ///
    /// - Parameters:
    ///   - a: `[n, n]`, `n ≥ 1`.
    ///   - bias: `b`, `n` entries (default zero).
    ///   - hasBias: whether the layer has a learnable bias (default true; `false` needs no `bias`).
    ///   - singularTolerance: relative; `a` is rejected when `σ_min ≤ singularTolerance · σ_max`.
    ///     Default ``defaultSingularTolerance(features:)`` (`n·ε`).
    ///   - orthogonalityTolerance: passed to the reflector conversion of the SVD factors (checked
    ///     through the QR's R, see ``Householder/trapezoidalReflectors(ofOrthogonal:tolerance:)``).
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` for a non-square or
    ///   empty `a`; ``InvertNNError/nonFinite(operation:row:column:)`` for NaN or infinite entries;
    ///   ``InvertNNError/singular(operation:detail:)`` (with `σ_min`, `σ_max`) for a singular or
    ///   numerically singular `a`; ``InvertNNError/invalidArgument(operation:reason:)`` for a
    ///   negative tolerance or a bad bias; ``InvertNNError/lapack(routine:info:meaning:)`` if the
    ///   SVD does not converge.
    public convenience init(
        matrix a: Matrix<T>, bias: [T]? = nil, hasBias: Bool = true, singularTolerance: T? = nil,
        orthogonalityTolerance: T? = nil
    ) throws {
        let operation = "InvertibleLinear(matrix:)"
        guard a.rows == a.columns, a.rows >= 1 else {
            throw InvertNNError.shapeMismatch(operation: operation, expected: "a square matrix [n, n], n ≥ 1", actual: "\(a.shape)")
        }
        try a.requireFinite(operation)
        let n = a.rows
        let tolerance = singularTolerance ?? Self.defaultSingularTolerance(features: n)
        guard tolerance >= 0 else {
            throw InvertNNError.invalidArgument(operation: operation, reason: "singularTolerance must be ≥ 0, got \(tolerance)")
        }
        let (p, sigma, rt) = try LAPACK.svd(a)
        let largest = sigma.first ?? 0, smallest = sigma.last ?? 0
        guard largest > 0, smallest > tolerance * largest else {
            throw InvertNNError.singular(
                operation: operation,
                detail: "the \(n)×\(n) matrix is singular to working precision: σ_min = \(smallest), σ_max = \(largest), σ_min/σ_max ≤ \(tolerance)")
        }
        // LAPACK's singular vectors are orthogonal by construction: the QR's own R certifies it.
        let u = try Householder<T>(
            orthogonal: rt, tolerance: orthogonalityTolerance, bias: nil, hasBias: false, reflectorsName: "U.reflectors",
            checksGram: false)
        let v = try Householder<T>(
            orthogonal: p, tolerance: orthogonalityTolerance, bias: nil, hasBias: false, reflectorsName: "V.reflectors",
            checksGram: false)
        try self.init(u: u, logScale: sigma.map { T.log($0) }, v: v, bias: bias, hasBias: hasBias, copiesFactors: false)
    }

    /// A layer with Haar-distributed random orthogonal factors (see
    /// ``Householder/haarRandom(features:determinant:hasBias:using:)``: QR of a Gaussian matrix
    /// with the sign fix, Mezzadri 2007), log-scales `logScale` (default 0, an orthogonal map)
    /// and zero bias. With `determinant: nil` both factors are uniform on O(n), so the layer's
    /// matrix is Haar on O(n); with a sign, `Q_U` is uniform on SO(n) and `Q_V` on the requested
    /// component.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or
    ///   `logScale` does not have `features` finite entries.
    public static func haarRandom(
        features: Int, determinant: Householder<T>.Determinant? = nil, logScale: [T]? = nil, hasBias: Bool = true,
        using generator: inout some RandomNumberGenerator
    ) throws -> InvertibleLinear<T> {
        let u = try Householder<T>.haarRandom(
            features: features, determinant: determinant == nil ? nil : .positive, hasBias: false, using: &generator)
        let v = try Householder<T>.haarRandom(features: features, determinant: determinant, hasBias: false, using: &generator)
        if let logScale, logScale.contains(where: { !$0.isFinite }) {
            throw InvertNNError.invalidArgument(operation: "InvertibleLinear.haarRandom", reason: "logScale must be finite")
        }
        return try InvertibleLinear(
            u: u, logScale: logScale ?? [T](repeating: 0, count: features), v: v, hasBias: hasBias)
    }

    /// The data-dependent initialization: the layer whose forward map correlates standard-normal
    /// noise into data with the statistics `statistics` (and whose inverse whitens that data),
    ///
    /// - ZCA: `y = U · diag(√(λ + ε)) · Uᵀ · z + μ` (`Q_U = Uᵀ`, `Q_V = U`),
    /// - PCA: `y = U · diag(√(λ + ε)) · z + μ` (`Q_U = I`, `Q_V = U`),
    ///
    /// with `s_j = ½ log(λ_j + ε)`, so the forward log-det is `½ Σ log(λ_j + ε)` nats, the same
    /// map as a fitted ``AdaptiveWhitening`` (DESIGN.md §3; invertnn's adaptive whitening). In a
    /// flow whose forward direction is latent → data this is the layer next to the data: the
    /// first layer the data meets on its way to the latent space (Kingma & Dhariwal 2018, "Glow",
    /// §3.1, data-dependent initialization).
    ///
    /// - Parameters:
    ///   - statistics: from ``AdaptiveWhitening/statistics(of:)``.
    ///   - variant: ZCA (default) or PCA, as in ``AdaptiveWhitening``.
    ///   - epsilon: added to every eigenvalue (squared data units); must be `> 0` unless every
    ///     eigenvalue is positive. Default ``AdaptiveWhitening/defaultEpsilon``.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for a negative or
    ///   non-finite `epsilon` or eigenvalues that leave `λ + ε ≤ 0`; the errors of
    ///   ``Householder/init(orthogonal:tolerance:bias:hasBias:)`` for eigenvectors that are not
    ///   orthogonal.
    public convenience init(
        whitening statistics: AdaptiveWhitening<T>.Statistics, variant: AdaptiveWhitening<T>.Variant = .zca,
        epsilon: T = AdaptiveWhitening<T>.defaultEpsilon
    ) throws {
        let factors = try AdaptiveWhitening<T>.factors(statistics, variant: variant, epsilon: epsilon)
        try self.init(u: factors.u, logScale: factors.logScale, v: factors.v, bias: statistics.mean)
    }

    /// ``init(whitening:variant:epsilon:)`` with the statistics of `data`
    /// `[samples, features]` (``AdaptiveWhitening/statistics(of:)``: divisor `samples - 1`).
    ///
    /// - Throws: as ``AdaptiveWhitening/statistics(of:)`` and
    ///   ``init(whitening:variant:epsilon:)``.
    public convenience init(
        whiteningData data: Matrix<T>, variant: AdaptiveWhitening<T>.Variant = .zca,
        epsilon: T = AdaptiveWhitening<T>.defaultEpsilon
    ) throws {
        try self.init(whitening: AdaptiveWhitening<T>.statistics(of: data), variant: variant, epsilon: epsilon)
    }
}
