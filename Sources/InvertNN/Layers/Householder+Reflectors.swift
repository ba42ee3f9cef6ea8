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
    /// Built through blocked compact WY forms `I - U T Uᵀ` (Schreiber & Van Loan 1989, "A
    /// storage-efficient WY representation for products of Householder transformations"; LAPACK
    /// `?larft`), three GEMMs per block of 48 reflectors, `4 m n²` flops.
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
    /// `v / 2^e` with `2^e ≤ max|v_j| < 2^(e+1)`, so that the squares neither overflow nor
    /// underflow (the scaling of LAPACK `?nrm2`, by an exact power of two).
    @usableFromInline
    static func normalizeReflector(_ v: UnsafePointer<T>, _ n: Int, into unit: UnsafeMutablePointer<T>) -> T {
        // Four partial maxima and sums break the loop-carried dependency (strict FP order
        // otherwise serializes these reductions at one add latency per entry).
        var m0: T = 0, m1: T = 0, m2: T = 0, m3: T = 0
        var j = 0
        while j + 4 <= n {
            m0 = Swift.max(m0, Swift.abs(v[j])); m1 = Swift.max(m1, Swift.abs(v[j + 1]))
            m2 = Swift.max(m2, Swift.abs(v[j + 2])); m3 = Swift.max(m3, Swift.abs(v[j + 3]))
            j += 4
        }
        while j < n { m0 = Swift.max(m0, Swift.abs(v[j])); j += 1 }
        let scale = Swift.max(Swift.max(m0, m1), Swift.max(m2, m3))
        if scale == 0 {
            for j in 0..<n { unit[j] = 0 }
            return 0
        }
        // Scaling by a power of two near `scale` is exact, so `w = v / 2^e` has `|w| < 2` and the
        // sum of squares neither overflows nor underflows. Its reciprocal is a multiply unless
        // 2^-e overflows (subnormal `scale`), where the division is kept.
        let power = T(sign: .plus, exponent: scale.exponent, significand: 1)
        let inverse = 1 / power, multiplies = inverse.isFinite
        var s0: T = 0, s1: T = 0, s2: T = 0, s3: T = 0
        j = 0
        while j + 4 <= n {
            let w0 = multiplies ? v[j] * inverse : v[j] / power, w1 = multiplies ? v[j + 1] * inverse : v[j + 1] / power
            let w2 = multiplies ? v[j + 2] * inverse : v[j + 2] / power, w3 = multiplies ? v[j + 3] * inverse : v[j + 3] / power
            s0 += w0 * w0; s1 += w1 * w1; s2 += w2 * w2; s3 += w3 * w3
            j += 4
        }
        while j < n {
            let w = multiplies ? v[j] * inverse : v[j] / power
            s0 += w * w
            j += 1
        }
        let scaledNorm = ((s0 + s1) + (s2 + s3)).squareRoot()  // in [1/2, 2√n]
        if multiplies {
            let toUnit = inverse / scaledNorm
            for j in 0..<n { unit[j] = v[j] * toUnit }
        } else {
            for j in 0..<n { unit[j] = (v[j] / power) / scaledNorm }
        }
        return scaledNorm * power
    }

    /// Normalizes every row of a row-major `[m, n]` array: unit rows (zero rows stay zero) and
    /// their original norms.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    @usableFromInline
    static func normalizedRows(_ vectors: [T], m: Int, n: Int) -> (units: [T], norms: [T]) {
        var units = [T](), norms = [T]()
        normalizeRows(vectors, m: m, n: n, units: &units, norms: &norms)
        return (units, norms)
    }

    /// ``normalizedRows(_:m:n:)`` into `units` and `norms`, whose storage is reused when it has
    /// the right size and is not shared (a training step's plan rebuild allocates nothing).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func normalizeRows(_ vectors: [T], m: Int, n: Int, units: inout [T], norms: inout [T]) {
        units.prepareForOverwrite(count: m * n)  // every row and every norm is written below
        norms.prepareForOverwrite(count: m)
        vectors.withUnsafeBufferPointer { pv in
            units.withUnsafeMutableBufferPointer { pu in
                norms.withUnsafeMutableBufferPointer { pn in
                    for i in 0..<m {
                        pn[i] = normalizeReflector(pv.baseAddress! + i * n, n, into: pu.baseAddress! + i * n)
                    }
                }
            }
        }
    }

    /// `W = H(û_1) ⋯ H(û_m)` for unit (or zero) rows `û_i` of `units` `[m, n]` (no trapezoidal
    /// structure assumed), accumulated from compact WY blocks of 48 reflectors
    /// (``materialize(_:n:into:scratch:)``): `4 m n²` flops, BLAS-3.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    @usableFromInline
    static func compactWYProduct(units: [T], m: Int, n: Int) -> Matrix<T> {
        if m == 0 { return Matrix<T>.identity(n) }
        var none: Plan? = nil, noMatrix: Matrix<T>? = nil
        let plan = makePlan(key: 0, keyRows: 0, keyColumns: 0, units: units, norms: [T](repeating: 1, count: m),
                            m: m, n: n, blockSize: 48, trapezoidal: false, reusing: &none)
        return materialize(plan, n: n, into: &noMatrix)
    }
}
