import RealModule

// Orthogonal matrix ⇄ trapezoidal reflectors, and Haar-random orthogonal layers.
//
// Why the positive-diagonal QR (LAPACK ?geqrfp) and not ?geqrf: with trapezoidal reflectors
// (`v_i` zero before position `i`), `H(v_{i+1}) ⋯ H(v_n)` fixes `e_1 … e_i`, so column `i` of
// `W = H(v_1) ⋯ H(v_n)` is decided by `v_1 … v_i` alone and the representation of an orthogonal
// Q is unique: at every step `v_i` must send the current column to `+e_i`, i.e. R = I. ?geqrf
// sends it to `-sign(α) e_i` (a diagonal of R with either sign, which cannot be absorbed into
// the reflectors after the fact: moving a coordinate flip to the left through a reflector
// destroys its trapezoidal shape), while ?geqrfp's ?larfgp chooses `R[i, i] ≥ 0` with the
// cancellation-free formula. Applied to an orthogonal Q it therefore returns exactly the
// reflectors we need: `Q = H_1 ⋯ H_n R` with R = I up to rounding, `H_i = I - τ_i w_i w_iᵀ`,
// `w_i = (0, …, 0, 1, tail)`. The last step works on a 1×1 block: `τ_n = 0` (`R[n, n] = +1`
// already, v_n = 0) or `τ_n = 2` with `w_n = e_n` (the flip), which is precisely the layer's
// fixed last reflector; `det Q = (-1)^(number of τ_i ≠ 0)`.

extension Householder {
    /// The default tolerance for ``orthogonalityDefect(_:)`` when a matrix is taken as orthogonal:
    /// `100 · n · ε` (`ε = T.ulpOfOne`), e.g. `5.7e-12` for a Double `256 × 256` matrix and `9.3e-3`
    /// for a Float `784 × 784` one. LAPACK's orthogonal factors (SVD, eigenvectors, QR) have a
    /// defect of a few `n·ε`, so they pass; a matrix that is merely close to orthogonal does not.
    public static func defaultOrthogonalityTolerance(features n: Int) -> T {
        T(100 * Swift.max(n, 1)) * T.ulpOfOne
    }

    /// `max_ij |(QᵀQ - I)_ij|`, the defect that decides whether `q` is orthogonal (one GEMM,
    /// `2n³` flops). `|det Q| = 1` alone proves nothing: `diag(2, 0.5, 1)` has defect 3.
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if `q` is not square
    ///   or empty; ``InvertNNError/nonFinite(operation:row:column:)`` for NaN or infinite entries.
    public static func orthogonalityDefect(_ q: Matrix<T>) throws -> T {
        guard q.rows == q.columns, q.rows >= 1 else {
            throw InvertNNError.shapeMismatch(
                operation: "Householder.orthogonalityDefect", expected: "a square matrix [n, n], n ≥ 1", actual: "\(q.shape)")
        }
        try q.requireFinite("Householder.orthogonalityDefect")
        var gram = try BLAS.matmul(q, transposeA: true, q)
        for i in 0..<q.rows { gram[i, i] -= 1 }
        return gram.maxAbs
    }

    /// The trapezoidal reflectors `v_1 … v_n` (rows of an `[n, n]` matrix, `v_i` zero before
    /// position `i`, `v_n ∈ {0, e_n}`) with `H(v_1) ⋯ H(v_n) = Q`, from LAPACK's QR with a
    /// non-negative diagonal (`?geqrfp`, see ``LAPACK/qrNonNegativeDiagonal(_:)``): for an
    /// orthogonal Q that factorization has R = I, so its reflectors are the answer (Golub & Van
    /// Loan 2013, "Matrix Computations", §5.2.2; Mathiasen et al. 2020, "What if neural networks
    /// had SVDs?", §2). Returned with the determinant sign `(-1)^(number of nonzero v_i)`.
    ///
    /// `v_i = w_i = (0, …, 0, 1, tail)` as LAPACK stores it, or 0 where `τ_i = 0` (the current
    /// column is already `+e_i`). Cost: `O(n³)` (the check's GEMM and one QR).
    ///
    /// - Parameters:
    ///   - q: a square orthogonal matrix `[n, n]`.
    ///   - tolerance: the largest accepted ``orthogonalityDefect(_:)``; default
    ///     ``defaultOrthogonalityTolerance(features:)``.
    /// - Throws: ``InvertNNError/singular(operation:detail:)`` reporting `max|QᵀQ - I|` if `q` is
    ///   not orthogonal within `tolerance`; shape and non-finite errors as
    ///   ``orthogonalityDefect(_:)``; ``InvertNNError/invalidArgument(operation:reason:)`` for a
    ///   negative or NaN tolerance; ``InvertNNError/lapack(routine:info:meaning:)`` if LAPACK fails.
    public static func trapezoidalReflectors(
        ofOrthogonal q: Matrix<T>, tolerance: T? = nil
    ) throws -> (reflectors: Matrix<T>, determinant: Determinant) {
        try trapezoidalReflectors(ofOrthogonal: q, tolerance: tolerance, checksGram: true)
    }

    /// ``trapezoidalReflectors(ofOrthogonal:tolerance:)``; with `checksGram: false` (for factors
    /// that LAPACK returned as orthogonal: SVD, eigenvectors) the `2n³` Gram check is replaced by
    /// the `O(n²)` certificate `max|R - I| ≤ tolerance / 4` on the QR's own R. Since
    /// `QᵀQ = RᵀR = I + E + Eᵀ + EᵀE` for `E = R - I`, that certificate bounds the defect by
    /// `tolerance/2 + n·(tolerance/4)²` plus the QR's rounding; if it fails, the Gram check
    /// decides and its value is reported. This keeps the initialization of a 784×784 layer close
    /// to the cost of its SVD.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func trapezoidalReflectors(
        ofOrthogonal q: Matrix<T>, tolerance: T?, checksGram: Bool
    ) throws -> (reflectors: Matrix<T>, determinant: Determinant) {
        let operation = "Householder(orthogonal:)"
        guard q.rows == q.columns, q.rows >= 1 else {
            throw InvertNNError.shapeMismatch(operation: operation, expected: "a square matrix [n, n], n ≥ 1", actual: "\(q.shape)")
        }
        try q.requireFinite(operation)
        let n = q.rows
        let limit = tolerance ?? defaultOrthogonalityTolerance(features: n)
        guard limit >= 0 else {
            throw InvertNNError.invalidArgument(operation: operation, reason: "tolerance must be ≥ 0, got \(limit)")
        }
        func requireGram() throws {
            let defect = try orthogonalityDefect(q)
            guard defect <= limit else {
                throw InvertNNError.singular(
                    operation: operation,
                    detail: "the \(n)×\(n) matrix is not orthogonal: max|QᵀQ - I| = \(defect) > tolerance \(limit)")
            }
        }
        if checksGram { try requireGram() }
        let (factors, tau) = try LAPACK.qrNonNegativeDiagonal(q)
        if !checksGram {
            var deviation: T = 0
            for i in 0..<n {
                for j in i..<n { deviation = Swift.max(deviation, Swift.abs(factors[i, j] - (i == j ? 1 : 0))) }
            }
            if !(deviation <= limit / 4) { try requireGram() }
        }
        var vectors = Matrix<T>(rows: n, columns: n)
        var nonzero = 0
        for i in 0..<n where tau[i] != 0 {
            nonzero += 1
            vectors[i, i] = 1
            for j in (i + 1)..<n { vectors[i, j] = factors[j, i] }
        }
        return (vectors, nonzero % 2 == 0 ? .positive : .negative)
    }

    /// A trapezoidal layer with `m = n` reflectors whose matrix is the orthogonal `q`
    /// (`y = Q x + b`), through ``trapezoidalReflectors(ofOrthogonal:tolerance:)``. The fixed
    /// last reflector (`0` or `e_n`) is the one the factorization ends with, so the layer's
    /// determinant is `det Q`; ``matrix()`` reproduces `q` to `O(n·ε)`.
    ///
    /// - Throws: as ``trapezoidalReflectors(ofOrthogonal:tolerance:)``, and
    ///   ``InvertNNError/invalidArgument(operation:reason:)`` for a bias of the wrong length.
    public convenience init(orthogonal q: Matrix<T>, tolerance: T? = nil, bias: [T]? = nil, hasBias: Bool = true) throws {
        try self.init(orthogonal: q, tolerance: tolerance, bias: bias, hasBias: hasBias, reflectorsName: "reflectors")
    }

    /// ``init(orthogonal:tolerance:bias:hasBias:)`` with a parameter name chosen by a container.
    convenience init(
        orthogonal q: Matrix<T>, tolerance: T?, bias: [T]?, hasBias: Bool, reflectorsName: String, checksGram: Bool = true
    ) throws {
        let (vectors, _) = try Self.trapezoidalReflectors(ofOrthogonal: q, tolerance: tolerance, checksGram: checksGram)
        try self.init(
            features: q.rows, reflectors: q.rows, determinant: nil, parametrization: .trapezoidal,
            values: vectors, bias: bias, hasBias: hasBias, reflectorsName: reflectorsName)
    }

    /// Sets the reflectors so that ``matrix()`` is the orthogonal `q` (the bias is kept).
    ///
    /// Needs `reflectorCount == features`. The representation is unique (see
    /// ``trapezoidalReflectors(ofOrthogonal:tolerance:)``), so for a trapezoidal layer the fixed
    /// last reflector it needs must be the layer's own ``fixedLastReflector``; a `.general`
    /// layer accepts any `q`.
    ///
    /// - Throws: as ``trapezoidalReflectors(ofOrthogonal:tolerance:)``;
    ///   ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if `q` is not
    ///   `[features, features]`; ``InvertNNError/invalidArgument(operation:reason:)`` if the layer
    ///   has fewer reflectors than features or its fixed last reflector does not match `q`. On
    ///   error the layer is unchanged.
    public func setOrthogonal(_ q: Matrix<T>, tolerance: T? = nil) throws {
        let operation = "\(name).setOrthogonal"
        guard q.rows == features, q.columns == features else {
            throw InvertNNError.shapeMismatch(operation: operation, expected: "[\(features), \(features)]", actual: "\(q.shape)")
        }
        guard reflectorCount == features else {
            throw InvertNNError.invalidArgument(
                operation: operation,
                reason: "a layer with \(reflectorCount) < \(features) reflectors cannot represent every orthogonal matrix")
        }
        let (vectors, _) = try Self.trapezoidalReflectors(ofOrthogonal: q, tolerance: tolerance)
        if let fixed = fixedLastReflector {
            let needed: FixedReflector = vectors[features - 1, features - 1] != 0 ? .flip : .zero
            guard needed == fixed else {
                throw InvertNNError.invalidArgument(
                    operation: operation,
                    reason: "the matrix needs the fixed last reflector \(needed.rawValue) but the layer's is \(fixed.rawValue) (its determinant sign cannot change); build a new layer with Householder(orthogonal:)")
            }
        }
        reflectors.value = vectors
    }

    /// The trapezoidal reflectors of a Haar-distributed random orthogonal matrix: the `Q` of the
    /// QR factorization with positive diagonal of an `n × n` matrix of N(0, 1) draws (Mezzadri
    /// 2007, "How to generate random matrices from the classical compact groups", §5; ?geqrfp's
    /// `R[i, i] ≥ 0` is the sign fix that plain QR lacks, and its reflectors are used as they
    /// are, never forming Q). With a `determinant`, a draw of the other sign has its last
    /// reflector toggled between `0` and `e_n`, i.e. `Q ↦ Q·diag(1, …, 1, -1)`; right
    /// multiplication by a fixed orthogonal matrix preserves Haar measure, so the result is Haar
    /// on the requested component of O(n).
    static func haarReflectors(
        features n: Int, determinant: Determinant?, using generator: inout some RandomNumberGenerator
    ) throws -> Matrix<T> {
        guard n >= 1 else {
            throw InvertNNError.invalidArgument(operation: "Householder.haarRandom", reason: "features must be ≥ 1, got \(n)")
        }
        let gaussian = Matrix<T>.randomNormal(rows: n, columns: n, using: &generator)
        let (factors, tau) = try LAPACK.qrNonNegativeDiagonal(gaussian)
        var vectors = Matrix<T>(rows: n, columns: n)
        var nonzero = 0
        for i in 0..<n where tau[i] != 0 {
            nonzero += 1
            vectors[i, i] = 1
            for j in (i + 1)..<n { vectors[i, j] = factors[j, i] }
        }
        if let determinant, (nonzero % 2 == 1) != (determinant == .negative) {
            vectors[n - 1, n - 1] = vectors[n - 1, n - 1] == 0 ? 1 : 0
        }
        return vectors
    }

    /// A trapezoidal layer (`m = n`) whose matrix is a Haar-distributed random orthogonal matrix
    /// (uniform on O(n), or on the component of the given `determinant`), with zero bias. See
    /// the internal `haarReflectors(features:determinant:using:)` for the construction (QR of a Gaussian
    /// matrix with the sign fix, Mezzadri 2007). Unlike the Gaussian-reflector initializer, whose
    /// product is not Haar, every orthogonal matrix is equally likely.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`;
    ///   ``InvertNNError/lapack(routine:info:meaning:)`` if LAPACK fails.
    public static func haarRandom(
        features: Int, determinant: Determinant? = nil, hasBias: Bool = true,
        using generator: inout some RandomNumberGenerator
    ) throws -> Householder<T> {
        try haarRandom(features: features, determinant: determinant, hasBias: hasBias, reflectorsName: "reflectors",
                       using: &generator)
    }

    static func haarRandom(
        features: Int, determinant: Determinant?, hasBias: Bool, reflectorsName: String,
        using generator: inout some RandomNumberGenerator
    ) throws -> Householder<T> {
        let vectors = try haarReflectors(features: features, determinant: determinant, using: &generator)
        return try Householder(
            features: features, reflectors: features, determinant: nil, parametrization: .trapezoidal,
            values: vectors, bias: nil, hasBias: hasBias, reflectorsName: reflectorsName)
    }
}
