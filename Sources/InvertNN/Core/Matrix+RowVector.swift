import RealModule

/// Row-vector broadcasts and column sums: the bias passes of the dense-style layers
/// (``Householder``, ``InvertibleLinear``, ``MLP``), written once with pointer loops so they run
/// as one vectorized pass over memory (DESIGN.md §6).
extension Matrix {
    /// A `[rows, v.count]` matrix whose every row is `scale · v`, written in one pass (no zero
    /// fill first). `rows` must be `≥ 0` and `rows · v.count` a valid size (callers pass a batch
    /// size they already hold).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func broadcasting(row v: [T], scaledBy scale: T = 1, rows: Int) -> Matrix {
        var out = Matrix(uninitializedRows: rows, columns: v.count)
        out.setEveryRow(to: v, scaledBy: scale)
        return out
    }

    /// Overwrites every row with `scale · v`; `v.count` must equal ``columns``.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    mutating func setEveryRow(to v: [T], scaledBy scale: T = 1) {
        let n = v.count, rows = self.rows
        v.withUnsafeBufferPointer { pv in
            storage.withUnsafeMutableBufferPointer { p in
                guard let source = pv.baseAddress, let target = p.baseAddress else { return }
                if scale == 1 {
                    for r in 0..<rows { (target + r * n).update(from: source, count: n) }  // memcpy per row
                } else {
                    for r in 0..<rows {
                        let o = r * n
                        for j in 0..<n { p[o + j] = scale * pv[j] }
                    }
                }
            }
        }
    }

    /// Adds `scale · v` to every row; `v.count` must equal ``columns``.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    mutating func addToEveryRow(_ v: [T], scaledBy scale: T = 1) {
        let n = columns, rows = self.rows
        v.withUnsafeBufferPointer { pv in
            storage.withUnsafeMutableBufferPointer { p in
                for r in 0..<rows {
                    let o = r * n
                    for j in 0..<n { p[o + j] += scale * pv[j] }
                }
            }
        }
    }

    /// Adds `scale · Σ_rows self` (the column sums, a bias gradient) into `target`, which holds
    /// ``columns`` entries.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func addColumnSums(scaledBy scale: T = 1, into target: inout [T]) {
        let n = columns, rows = self.rows
        guard rows > 0, n > 0, target.count >= n else { return }
        storage.withUnsafeBufferPointer { p in
            target.withUnsafeMutableBufferPointer { t in
                let source = p.baseAddress!, sums = t.baseAddress!
                if T.self == Float.self {
                    source.withMemoryRebound(to: Float.self, capacity: rows * n) { s in
                        sums.withMemoryRebound(to: Float.self, capacity: n) { d in
                            Self.addColumnSums(SIMD16<Float>.self, s, rows: rows, columns: n, scale: scale as! Float, into: d)
                        }
                    }
                } else if T.self == Double.self {
                    source.withMemoryRebound(to: Double.self, capacity: rows * n) { s in
                        sums.withMemoryRebound(to: Double.self, capacity: n) { d in
                            Self.addColumnSums(SIMD8<Double>.self, s, rows: rows, columns: n, scale: scale as! Double, into: d)
                        }
                    }
                } else {
                    for r in 0..<rows {
                        for j in 0..<n { sums[j] += scale * source[r * n + j] }
                    }
                }
            }
        }
    }

    /// Adds each row's sum into `target[r]` (``rows`` entries): the bias gradient of a channel-major
    /// `[channels, pixels]` gradient.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func addRowSums(into target: inout [T]) {
        let n = columns, rows = self.rows
        guard rows > 0, n > 0, target.count >= rows else { return }
        storage.withUnsafeBufferPointer { p in
            for r in 0..<rows {
                let row = p.baseAddress! + r * n
                let sum: T
                if T.self == Float.self {
                    sum = row.withMemoryRebound(to: Float.self, capacity: n) { T(Self.sum(SIMD16<Float>.self, $0, count: n)) }
                } else if T.self == Double.self {
                    sum = row.withMemoryRebound(to: Double.self, capacity: n) { T(Self.sum(SIMD8<Double>.self, $0, count: n)) }
                } else {
                    sum = (0..<n).reduce(0) { $0 + row[$1] }
                }
                target[r] += sum
            }
        }
    }

    /// The sum of `count` entries, `V.scalarCount` at a time into two vector accumulators (the
    /// plain loop is one dependent chain of adds, which the compiler may not reorder).
    @inline(__always)
    private static func sum<V: SIMD>(_: V.Type, _ p: UnsafePointer<V.Scalar>, count n: Int) -> V.Scalar
    where V.Scalar: BinaryFloatingPoint {
        let lanes = V.scalarCount
        var even = V(), odd = V()
        var i = 0
        while i + 2 * lanes <= n {
            even += UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
            odd += UnsafeRawPointer(p + i + lanes).loadUnaligned(as: V.self)
            i += 2 * lanes
        }
        var total = (even + odd).sum()
        while i < n {
            total += p[i]
            i += 1
        }
        return total
    }

    /// The column sums a strip of `V.scalarCount` columns at a time, two vector accumulators per
    /// strip (even and odd rows) to hide the add latency; the last `n mod V.scalarCount` columns
    /// one at a time. Written with explicit vectors because the plain row loop does not
    /// vectorize (the compiler cannot rule out that the sums alias the matrix), and every bias
    /// gradient of the library runs through here (Benchmarks/PERFORMANCE.md).
    @inline(__always)
    private static func addColumnSums<V: SIMD>(
        _: V.Type, _ p: UnsafePointer<V.Scalar>, rows: Int, columns n: Int, scale: V.Scalar,
        into t: UnsafeMutablePointer<V.Scalar>
    ) where V.Scalar: BinaryFloatingPoint {
        let lanes = V.scalarCount
        var j = 0
        while j + lanes <= n {
            var even = V(), odd = V()
            var r = 0
            while r + 1 < rows {
                even += UnsafeRawPointer(p + r * n + j).loadUnaligned(as: V.self)
                odd += UnsafeRawPointer(p + (r + 1) * n + j).loadUnaligned(as: V.self)
                r += 2
            }
            if r < rows { even += UnsafeRawPointer(p + r * n + j).loadUnaligned(as: V.self) }
            let previous = UnsafeRawPointer(t + j).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(t + j).storeBytes(of: previous + (even + odd) * scale, as: V.self)
            j += lanes
        }
        while j < n {
            var sum: V.Scalar = 0
            for r in 0..<rows { sum += p[r * n + j] }
            t[j] += scale * sum
            j += 1
        }
    }
}
