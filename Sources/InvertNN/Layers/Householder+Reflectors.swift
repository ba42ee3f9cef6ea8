import RealModule

// The reflector arithmetic behind ``Householder``: overflow-safe normalization, the compact WY
// form of a product of reflectors, and the public helpers that build reflectors and products of
// arbitrary (not necessarily trapezoidal) vectors.

extension Householder {
    /// The Householder reflector `H(v) = I - 2 v vᵀ / (vᵀv)`, `n × n` for `v` of length `n`, with
    /// `H(0) = I` exactly.
    ///
    /// `vᵀv` is never formed directly: `v` is first divided by `max_j |v_j|`, so vectors whose
    /// squared norm would overflow (Float `3e20`) or underflow (Float `3e-25`) give the same
    /// reflector as a moderately scaled copy (LAPACK's `?nrm2`/`?larfg` use the same idea).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an empty `v`;
    ///   ``InvertNNError/nonFinite(operation:row:column:)`` (row 0, column = index) for a NaN or
    ///   infinite entry.
    public static func reflector(_ v: [T]) throws -> Matrix<T> {
        let n = v.count
        guard n >= 1 else {
            throw InvertNNError.invalidArgument(operation: "Householder.reflector", reason: "empty vector")
        }
        if let bad = v.firstIndex(where: { !$0.isFinite }) {
            throw InvertNNError.nonFinite(operation: "Householder.reflector", row: 0, column: bad)
        }
        var h = Matrix<T>.identity(n)
        var unit = [T](repeating: 0, count: n)
        let norm = v.withUnsafeBufferPointer { pv in
            unit.withUnsafeMutableBufferPointer { pu in normalizeReflector(pv.baseAddress!, n, into: pu.baseAddress!) }
        }
        if norm == 0 { return h }
        for r in 0..<n {
            for c in 0..<n { h.storage[r * n + c] -= 2 * unit[r] * unit[c] }
        }
        return h
    }

    /// The product `W = H(v_1) H(v_2) ⋯ H(v_m)` of the reflectors whose vectors are the rows of
    /// `vectors` `[m, n]` (any vectors: no trapezoidal structure is assumed), as an `n × n`
    /// orthogonal matrix. Zero rows contribute the identity.
    ///
    /// Built through the compact WY form `W = I - U T Uᵀ` (Schreiber & Van Loan 1989, "A
    /// storage-efficient WY representation for products of Householder transformations"; LAPACK
    /// `?larft`): two GEMMs of `O(m n²)` plus an `O(m³)` triangular recurrence.
    /// `m = 0` gives the identity.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `n < 1`;
    ///   ``InvertNNError/nonFinite(operation:row:column:)`` naming the first NaN or infinite entry.
    public static func product(ofReflectors vectors: Matrix<T>) throws -> Matrix<T> {
        guard vectors.columns >= 1 else {
            throw InvertNNError.invalidArgument(
                operation: "Householder.product", reason: "reflectors need at least 1 column, got \(vectors.columns)")
        }
        try vectors.requireFinite("Householder.product reflectors")
        let (units, _) = normalizedRows(vectors.storage, m: vectors.rows, n: vectors.columns)
        return compactWYProduct(units: units, m: vectors.rows, n: vectors.columns)
    }

    // MARK: - Internal kernels

    /// Writes `û = v / ‖v‖` (or zeros for `v = 0`) and returns `‖v‖`. The norm is accumulated on
    /// `v / max|v_j|` so that neither the squares overflow nor underflow.
    @usableFromInline
    static func normalizeReflector(_ v: UnsafePointer<T>, _ n: Int, into unit: UnsafeMutablePointer<T>) -> T {
        var scale: T = 0
        for j in 0..<n { scale = Swift.max(scale, Swift.abs(v[j])) }
        if scale == 0 {
            for j in 0..<n { unit[j] = 0 }
            return 0
        }
        var sumOfSquares: T = 0
        for j in 0..<n {
            let w = v[j] / scale
            unit[j] = w
            sumOfSquares += w * w
        }
        let scaledNorm = sumOfSquares.squareRoot()  // in [1, √n]: no overflow, no underflow
        for j in 0..<n { unit[j] /= scaledNorm }
        return scale * scaledNorm
    }

    /// Normalizes every row of a row-major `[m, n]` array: unit rows (zero rows stay zero) and
    /// their original norms.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    @usableFromInline
    static func normalizedRows(_ vectors: [T], m: Int, n: Int) -> (units: [T], norms: [T]) {
        var units = [T](repeating: 0, count: m * n)
        var norms = [T](repeating: 0, count: m)
        vectors.withUnsafeBufferPointer { pv in
            units.withUnsafeMutableBufferPointer { pu in
                for i in 0..<m {
                    norms[i] = normalizeReflector(pv.baseAddress! + i * n, n, into: pu.baseAddress! + i * n)
                }
            }
        }
        return (units, norms)
    }

    /// `W = H(û_1) ⋯ H(û_m) = I - Ûᵀ T Û` for unit (or zero) rows `û_i` of `units` `[m, n]`.
    ///
    /// `T` (`m × m`, upper triangular) follows LAPACK `?larft` (forward, columnwise) with `τ_i = 2`
    /// (0 for a zero row): `T_ii = τ_i`, `T[0..<i, i] = -τ_i · T[0..<i, 0..<i] · (Û Ûᵀ)[0..<i, i]`,
    /// where the Gram matrix `Û Ûᵀ` comes from one GEMM. Appending `H_i` to `I - U T Uᵀ` gives
    /// `I - U T Uᵀ - τ_i u_i u_iᵀ + τ_i U T (Uᵀ u_i) u_iᵀ`, which is the recurrence above.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    @usableFromInline
    static func compactWYProduct(units: [T], m: Int, n: Int) -> Matrix<T> {
        var w = Matrix<T>.identity(n)
        if m == 0 { return w }
        var gram = [T](repeating: 0, count: m * m)
        var t = [T](repeating: 0, count: m * m)
        var tu = [T](repeating: 0, count: m * n)
        units.withUnsafeBufferPointer { pu in
            let u = pu.baseAddress!
            gram.withUnsafeMutableBufferPointer { pg in
                T._gemm(transposeA: false, transposeB: true, m: m, n: m, k: n, alpha: 1, a: u, lda: n,
                        b: u, ldb: n, beta: 0, c: pg.baseAddress!, ldc: m)
            }
            t.withUnsafeMutableBufferPointer { pt in
                let tp = pt.baseAddress!
                gram.withUnsafeBufferPointer { pg in
                    let g = pg.baseAddress!
                    for i in 0..<m {
                        // A zero row is H = I: τ = 0 leaves column i of T zero.
                        let tau: T = g[i * m + i] > 0 ? 2 : 0
                        tp[i * m + i] = tau
                        guard i > 0, tau != 0 else { continue }
                        // Column i of T (stride m) = -τ T[0..<i, 0..<i] · G[0..<i, i]; G is
                        // symmetric, so G[0..<i, i] is the contiguous row piece G[i, 0..<i].
                        T._gemv(transpose: false, m: i, n: i, alpha: -tau, a: tp, lda: m,
                                x: g + i * m, incx: 1, beta: 0, y: tp + i, incy: m)
                    }
                }
                tu.withUnsafeMutableBufferPointer { ptu in
                    T._gemm(transposeA: false, transposeB: false, m: m, n: n, k: m, alpha: 1, a: tp, lda: m,
                            b: u, ldb: n, beta: 0, c: ptu.baseAddress!, ldc: n)
                    w.storage.withUnsafeMutableBufferPointer { pw in
                        T._gemm(transposeA: true, transposeB: false, m: n, n: n, k: m, alpha: -1, a: u, lda: n,
                                b: ptu.baseAddress!, ldb: n, beta: 1, c: pw.baseAddress!, ldc: n)
                    }
                }
            }
        }
        return w
    }
}
