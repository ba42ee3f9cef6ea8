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
        storage.withUnsafeBufferPointer { p in
            target.withUnsafeMutableBufferPointer { t in
                if scale == 1 {
                    for r in 0..<rows {
                        let o = r * n
                        for j in 0..<n { t[j] += p[o + j] }
                    }
                } else {
                    for r in 0..<rows {
                        let o = r * n
                        for j in 0..<n { t[j] += scale * p[o + j] }
                    }
                }
            }
        }
    }
}
