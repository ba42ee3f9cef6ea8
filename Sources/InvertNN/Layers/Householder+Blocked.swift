import RealModule

// The BLAS-3 machinery behind ``Householder``: the reflectors cut into blocks of `nb` (compact WY
// per block, Schreiber & Van Loan 1989; LAPACK `?larft`), applied to a batch block by block or
// accumulated into W, and the two backward passes to the reflectors:
//
// * the blocked direct pass, which walks the blocks in reverse and rebuilds each block's input
//   from its output (each block is orthogonal), after Mathiasen et al. 2020, "What if neural
//   networks had SVDs?" (FastH), with per-block gradients of the compact WY factors as in
//   Likhosherstov et al. 2021, "CWY parametrization";
// * the push of a dense gradient of W to the reflectors through the antisymmetric matrix
//   S = K - Kᵀ, K = (dL/dW) Wᵀ, blocked with a two-sided rank-2·nb update per block.
//
// Conventions: U is the `[m, n]` row-major array of unit reflectors û_i (zero rows for v_i = 0).
// Block k holds reflectors [s, s + c); with the trapezoidal parametrization they vanish before
// column s, so every product of the block runs on the window of columns [w, n) with w = s (the
// general parametrization uses w = 0). In the window, Ũ is `[c, p]` with p = n - w, leading
// dimension n. `Q_k = H_s ⋯ H_{s+c-1} = I - Ũᵀ T_k Ũ`, `T_k` upper triangular with
// `T⁻¹ = ½ I + striu(Ũ Ũᵀ)` (Joffrain et al. 2006, "Accumulating Householder transformations,
// revisited"); the larft recurrence builds it. W = Q_1 Q_2 ⋯ Q_K.

extension Householder {
    /// How ``Householder`` evaluates its products.
    public enum Strategy: String, Sendable, Equatable {
        /// Pick per call from a flop model (see ``Householder/blockedPenalty``): materialize W when
        /// the batch is large relative to n or W is already cached, else apply the blocks.
        case automatic
        /// Always build W (cached until the reflectors change) and use one GEMM per product.
        case materialized
        /// Always apply the compact WY blocks to the batch (two thin GEMMs per block).
        case blocked
    }

    /// One block of reflectors: rows `[start, start + count)` of U, window start `window`, and the
    /// offset of its `count × count` factors in ``Plan/triangular`` and ``Plan/gram``.
    struct ReflectorBlock {
        let start: Int
        let count: Int
        let window: Int
        let offset: Int
    }

    /// Everything derived from one set of reflector values; rebuilt when they change.
    struct Plan {
        /// The ``Parameter/version`` of the reflectors this plan was built from.
        let key: UInt64
        let keyRows: Int
        let keyColumns: Int
        let blockSize: Int
        var units: [T]
        var norms: [T]
        let blocks: [ReflectorBlock]
        var triangular: [T]
        var gram: [T]
        /// Σ c·p and Σ c·p² over the blocks (the flop model's counts).
        let sumCP: Double
        let sumCPP: Double
        /// W, built on first need.
        var w: Matrix<T>?
        /// The largest block's reflector count (the scratch buffers' width).
        var maxBlockCount: Int { blocks.reduce(0) { Swift.max($0, $1.count) } }
    }

    /// A zero-filled scratch buffer of `count` entries: from `slot` of `scratch` (the buffers the
    /// layer borrows for this call) when given, else newly allocated. Hand it back with
    /// ``release(_:_:_:)``.
    @inline(__always)
    static func scratchBuffer(_ scratch: LayerBuffers<T>?, _ slot: Int, _ count: Int) -> [T] {
        guard let scratch else { return [T](repeating: 0, count: count) }
        return scratch.filled(slot, count: count, with: 0)
    }

    /// Hands a ``scratchBuffer(_:_:_:)`` back to its slot (nothing without `scratch`).
    @inline(__always)
    static func release(_ scratch: LayerBuffers<T>?, _ slot: Int, _ buffer: [T]) {
        scratch?.keep(slot, buffer)
    }

    // MARK: - Plan

    /// Cuts the unit reflectors into blocks and builds each block's T by the larft recurrence
    /// `T_ii = 2`, `T[0..<i, i] = -2 T[0..<i, 0..<i] G[0..<i, i]` on the block Gram `G = Ũ Ũᵀ`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func makePlan(
        key: UInt64, keyRows: Int, keyColumns: Int, units: [T], norms: [T], m: Int, n: Int, blockSize: Int, trapezoidal: Bool,
        reusing recycled: inout Plan?
    ) -> Plan {
        var old: Plan? = nil
        swap(&old, &recycled)
        let nb = max(1, blockSize)
        var blocks = [ReflectorBlock]()
        var offset = 0
        var start = 0
        var sumCP = 0.0, sumCPP = 0.0
        // A training step changes the values, not the shape: the old plan's block layout and
        // factor storage serve again (no allocation once the first plan exists). The layout
        // depends on m, n, nb and the parametrization, which one layer keeps.
        var reusedTriangular = [T](), reusedGram = [T]()
        // (`old!` in place, not `if var`: a second binding would share the arrays.)
        // (The caller may already have moved the old units and norms out for reuse.)
        if old != nil, old!.blockSize == nb, old!.keyRows == keyRows, old!.keyColumns == keyColumns,
           keyRows == m, keyColumns == n {
            blocks = old!.blocks
            sumCP = old!.sumCP
            sumCPP = old!.sumCPP
            offset = old!.triangular.count
            start = m
            swap(&reusedTriangular, &old!.triangular)
            swap(&reusedGram, &old!.gram)
        }
        old = nil
        while start < m {
            let c = min(nb, m - start)
            let w = trapezoidal ? start : 0
            blocks.append(ReflectorBlock(start: start, count: c, window: w, offset: offset))
            let p = Double(n - w)
            sumCP += Double(c) * p
            sumCPP += Double(c) * p * p
            offset += c * c
            start += c
        }
        var triangular = [T](), gram = [T]()
        swap(&triangular, &reusedTriangular)
        swap(&gram, &reusedGram)
        triangular.prepareForOverwrite(count: offset)
        triangular.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }  // T's lower part must be 0
        gram.prepareForOverwrite(count: offset)  // every block's c × c Gram matrix is written below
        units.withUnsafeBufferPointer { pu in
            triangular.withUnsafeMutableBufferPointer { pt in
                gram.withUnsafeMutableBufferPointer { pg in
                    for block in blocks {
                        let c = block.count, p = n - block.window
                        let u = pu.baseAddress! + block.start * n + block.window
                        let g = pg.baseAddress! + block.offset, t = pt.baseAddress! + block.offset
                        // G = Ũ Ũᵀ is symmetric: SYRK builds the lower triangle (half the
                        // flops of a GEMM; the plan is rebuilt on every step), then a mirror.
                        if p > 0 {
                            T._syrkLower(n: c, k: p, alpha: 1, a: u, lda: n, beta: 0, c: g, ldc: c)
                        } else {
                            for i in 0..<(c * c) { g[i] = 0 }
                        }
                        for i in 0..<c { for j in (i + 1)..<c { g[i * c + j] = g[j * c + i] } }
                        for i in 0..<c {
                            t[i * c + i] = 2
                            // Column i of T (stride c) = -2 T[0..<i, 0..<i] · G[0..<i, i]; G is
                            // symmetric, so G[0..<i, i] is the contiguous row piece G[i, 0..<i].
                            // T is upper triangular: row r sums over s in r..<i. A loop, not a
                            // GEMV per column: c calls of size < c cost more than their flops.
                            let gi = g + i * c
                            for r in 0..<i {
                                var sum: T = 0
                                for s in r..<i { sum += t[r * c + s] * gi[s] }
                                t[r * c + i] = -2 * sum
                            }
                        }
                    }
                }
            }
        }
        return Plan(key: key, keyRows: keyRows, keyColumns: keyColumns, blockSize: nb, units: units, norms: norms,
                    blocks: blocks, triangular: triangular, gram: gram, sumCP: sumCP, sumCPP: sumCPP, w: nil)
    }

    /// `W = Q_1 ⋯ Q_K`, accumulated from the last block: `W[w:, w:] -= Ũᵀ (T (Ũ W[w:, w:]))`.
    /// Blocks after k act only on indices ≥ their start, so block k touches the `p × p` trailing
    /// window only: `Σ_k 4 c p²` flops (`4/3 n³` for a full trapezoidal set, as LAPACK `?orgqr`).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func materialize(_ plan: Plan, n: Int, into recycled: inout Matrix<T>?, scratch: LayerBuffers<T>? = nil) -> Matrix<T> {
        var w = Matrix.recycling(&recycled, rows: n, columns: n)
        w.storage.withUnsafeMutableBufferPointer { p in  // the identity
            p.update(repeating: 0)
            for i in 0..<n { p[i * n + i] = 1 }
        }
        let nb = plan.maxBlockCount
        var c1 = scratchBuffer(scratch, HouseholderSlot.materialize1, nb * n)
        var c2 = scratchBuffer(scratch, HouseholderSlot.materialize2, nb * n)
        defer {
            release(scratch, HouseholderSlot.materialize1, c1)
            release(scratch, HouseholderSlot.materialize2, c2)
        }
        plan.units.withUnsafeBufferPointer { pu in
            plan.triangular.withUnsafeBufferPointer { pt in
                w.storage.withUnsafeMutableBufferPointer { pw in
                    c1.withUnsafeMutableBufferPointer { p1 in
                        c2.withUnsafeMutableBufferPointer { p2 in
                            for k in stride(from: plan.blocks.count - 1, through: 0, by: -1) {
                                let block = plan.blocks[k]
                                let c = block.count, p = n - block.window
                                let u = pu.baseAddress! + block.start * n + block.window
                                let t = pt.baseAddress! + block.offset
                                let win = pw.baseAddress! + block.window * n + block.window
                                rawGemm(false, false, c, p, p, 1, u, n, win, n, 0, p1.baseAddress!, p)
                                rawGemm(false, false, c, p, c, 1, t, c, p1.baseAddress!, p, 0, p2.baseAddress!, p)
                                rawGemm(true, false, p, p, c, -1, u, n, p2.baseAddress!, p, 1, win, n)
                            }
                        }
                    }
                }
            }
        }
        return w
    }

    // MARK: - Applying the blocks to a batch

    /// `X ← X Wᵀ` (`transposed == true`, the forward map: blocks K…1, `X ← X - (X Ũᵀ) Tᵀ Ũ`) or
    /// `X ← X W` (the inverse map: blocks 1…K with T) for `rows` rows of leading dimension n.
    /// `saved` receives the input of every block after the first applied (`rows × n` each);
    /// `projections` receives each block's `A = X Ũᵀ` (`rows × c` at offset `start · rows`),
    /// which spares the retaining backward a GEMM over the outputs per block.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func applyBlocks(
        _ plan: Plan, to x: UnsafeMutablePointer<T>, rows: Int, n: Int, transposed: Bool,
        saving saved: UnsafeMutablePointer<T>? = nil, savingProjections projections: UnsafeMutablePointer<T>? = nil,
        scratch: LayerBuffers<T>? = nil
    ) {
        let nb = plan.maxBlockCount
        var a = scratchBuffer(scratch, HouseholderSlot.applyA, rows * nb)
        var c = scratchBuffer(scratch, HouseholderSlot.applyC, rows * nb)
        defer {
            release(scratch, HouseholderSlot.applyA, a)
            release(scratch, HouseholderSlot.applyC, c)
        }
        plan.units.withUnsafeBufferPointer { pu in
            plan.triangular.withUnsafeBufferPointer { pt in
                a.withUnsafeMutableBufferPointer { pa in
                    c.withUnsafeMutableBufferPointer { pc in
                        let count = plan.blocks.count
                        for index in 0..<count {
                            let block = plan.blocks[transposed ? count - 1 - index : index]
                            // With `saved`, slot index-1 keeps the input of the index-th block applied
                            // (the output of the one before): what the backward would rebuild.
                            if let saved, index > 0 { (saved + (index - 1) * rows * n).update(from: x, count: rows * n) }
                            let k = block.count, p = n - block.window
                            let u = pu.baseAddress! + block.start * n + block.window
                            let t = pt.baseAddress! + block.offset
                            let xw = x + block.window
                            // A = X Ũᵀ, kept (rows × k at row offset `start · rows`) when asked.
                            let pj = projections.map { $0 + block.start * rows } ?? pa.baseAddress!
                            rawGemm(false, true, rows, k, p, 1, xw, n, u, n, 0, pj, k)
                            rawGemm(false, transposed, rows, k, k, 1, pj, k, t, k, 0, pc.baseAddress!, k)
                            rawGemm(false, false, rows, p, k, -1, pc.baseAddress!, k, u, n, 1, xw, n)
                        }
                    }
                }
            }
        }
    }

    // MARK: - Backward, blocked direct

    /// The VJP of ``applyBlocks(_:to:rows:n:transposed:saving:scratch:)`` without W.
    ///
    /// `z` is `[2B, n]`: the gradient of the map's output on rows `0..<B` and the output on rows
    /// `B..<2B`; on return rows `0..<B` hold the input's gradient (the other half is scratch: the
    /// last block visited does not rebuild its input). Unit-vector gradients are *added*
    /// into `gradUnits` `[m, n]` (before the normalization's chain rule).
    ///
    /// Each block is `Y = X - A M Ũ` with `A = X Ũᵀ` and `M = Tᵀ` (forward) or `T` (inverse).
    /// With `P = dY Ũᵀ`: `dX = dY - P Mᵀ Ũ`; `dL/dŨ = -Mᵀ Aᵀ dY - M Pᵀ X`; `dL/dM = -Aᵀ P`. The
    /// block input is rebuilt from its output, `A = (Y Ũᵀ)(I - Mᵀ G)` and `X = Y + A M Ũ`, so
    /// `Pᵀ X = Pᵀ Y + (Pᵀ A) M Ũ`. Stacking `Z = [dY; Y]` makes each block three GEMMs over 2B
    /// rows: `Z Ũᵀ = [P; Y Ũᵀ]`, `dL/dŨ -= [A M; P Mᵀ]ᵀ Z`, `Z += [-P Mᵀ; A M] Ũ` (the last block
    /// visited updates the gradient half only). T depends on
    /// `G = Ũ Ũᵀ` through `T⁻¹ = ½ I + striu(G)`: `dL/dG = striu(-Tᵀ (dL/dT) Tᵀ)` and
    /// `dL/dŨ += (dL/dG + dL/dGᵀ) Ũ`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func backwardBlocks(
        _ plan: Plan, z: UnsafeMutablePointer<T>, rows b: Int, n: Int, transposed: Bool,
        gradUnits: UnsafeMutablePointer<T>, saved: UnsafePointer<T>? = nil, scratch: LayerBuffers<T>? = nil
    ) {
        let nb = plan.maxBlockCount
        // `saved` (a retaining call's buffer) holds the block outputs, then every block's A.
        let projections = saved.map { $0 + (plan.blocks.count - 1) * b * n }
        var l = scratchBuffer(scratch, HouseholderSlot.backwardL, 2 * b * nb)        // [P; Y Ũᵀ]
        var aBuf = scratchBuffer(scratch, HouseholderSlot.backwardA, b * nb)         // A
        var n1 = scratchBuffer(scratch, HouseholderSlot.backwardN1, 2 * b * nb)      // [-P Mᵀ; A M]
        var n2 = scratchBuffer(scratch, HouseholderSlot.backwardN2, 2 * b * nb)      // [A M; P Mᵀ]
        var small = scratchBuffer(scratch, HouseholderSlot.backwardSmall, 6 * nb * nb)
        defer {
            release(scratch, HouseholderSlot.backwardL, l)
            release(scratch, HouseholderSlot.backwardA, aBuf)
            release(scratch, HouseholderSlot.backwardN1, n1)
            release(scratch, HouseholderSlot.backwardN2, n2)
            release(scratch, HouseholderSlot.backwardSmall, small)
        }
        // Backward visits blocks in the reverse of the application order.
        let blockCount = plan.blocks.count
        plan.units.withUnsafeBufferPointer { pu in
            plan.triangular.withUnsafeBufferPointer { pt in
                plan.gram.withUnsafeBufferPointer { pg in
                    l.withUnsafeMutableBufferPointer { pl in
                        aBuf.withUnsafeMutableBufferPointer { pa in
                            n1.withUnsafeMutableBufferPointer { pn1 in
                                n2.withUnsafeMutableBufferPointer { pn2 in
                                    small.withUnsafeMutableBufferPointer { ps in
                                        for index in 0..<blockCount {
                                            let block = plan.blocks[transposed ? index : blockCount - 1 - index]
                                            // The output of this block, kept by a retaining forward
                                            // (slot count-index-1, see applyBlocks), replaces the rebuild.
                                            if let saved, index > 0 {
                                                (z + b * n).update(from: saved + (blockCount - index - 1) * b * n, count: b * n)
                                            }
                                            backwardBlock(
                                                block, u: pu.baseAddress! + block.start * n + block.window,
                                                t: pt.baseAddress! + block.offset, g: pg.baseAddress! + block.offset,
                                                z: z + block.window, rows: b, n: n, transposed: transposed,
                                                gradU: gradUnits + block.start * n + block.window,
                                                l: pl.baseAddress!, a: pa.baseAddress!, n1: pn1.baseAddress!,
                                                n2: pn2.baseAddress!, small: ps.baseAddress!,
                                                projection: projections.map { UnsafePointer($0 + block.start * b) },
                                                rebuild: saved == nil && index + 1 < blockCount)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func backwardBlock(
        _ block: ReflectorBlock, u: UnsafePointer<T>, t: UnsafePointer<T>, g: UnsafePointer<T>,
        z: UnsafeMutablePointer<T>, rows b: Int, n: Int, transposed: Bool, gradU: UnsafeMutablePointer<T>,
        l: UnsafeMutablePointer<T>, a aScratch: UnsafeMutablePointer<T>, n1: UnsafeMutablePointer<T>,
        n2: UnsafeMutablePointer<T>, small: UnsafeMutablePointer<T>, projection: UnsafePointer<T>? = nil, rebuild: Bool
    ) {
        let c = block.count, p = n - block.window, cc = c * c
        // M = Tᵀ (forward) or T (inverse); `mT` says whether op(T) = Tᵀ gives M.
        let mT = transposed
        let e1 = small, gm = small + cc, tmp = small + 2 * cc, gs = small + 3 * cc, tmp2 = small + 4 * cc
        let pm = l  // P
        let a: UnsafePointer<T>
        if let projection {
            // A kept by the retaining forward: only P = dY Ũᵀ (B × c) is needed.
            rawGemm(false, true, b, c, p, 1, z, n, u, n, 0, l, c)
            a = projection
        } else {
            // L = Z Ũᵀ: [P; Y Ũᵀ], 2B × c.
            rawGemm(false, true, 2 * b, c, p, 1, z, n, u, n, 0, l, c)
            // E1 = I - Mᵀ G; Mᵀ = T (forward) or Tᵀ (inverse).
            rawGemm(!mT, false, c, c, c, -1, t, c, g, c, 0, e1, c)
            for i in 0..<c { e1[i * c + i] += 1 }
            // A = (Y Ũᵀ) E1.
            rawGemm(false, false, b, c, c, 1, l + b * c, c, e1, c, 0, aScratch, c)
            a = UnsafePointer(aScratch)
        }
        // n2 = [A M; P Mᵀ], n1 = [-P Mᵀ; A M].
        rawGemm(false, mT, b, c, c, 1, a, c, t, c, 0, n2, c)            // A M
        rawGemm(false, !mT, b, c, c, 1, pm, c, t, c, 0, n2 + b * c, c)  // P Mᵀ
        for i in 0..<(b * c) {
            n1[i] = -n2[b * c + i]
            n1[b * c + i] = n2[i]
        }
        // dL/dŨ -= n2ᵀ Z  (= Mᵀ Aᵀ dY + M Pᵀ Y).
        rawGemm(true, false, c, p, 2 * b, -1, n2, c, z, n, 1, gradU, n)
        // dL/dM = -Aᵀ P; Pᵀ A = -(dL/dM)ᵀ.
        rawGemm(true, false, c, c, b, -1, a, c, pm, c, 0, gm, c)
        // dL/dT = (dL/dM)ᵀ (forward) or dL/dM (inverse), into tmp.
        for i in 0..<c {
            for j in 0..<c { tmp[i * c + j] = mT ? gm[j * c + i] : gm[i * c + j] }
        }
        // dL/dS = -Tᵀ (dL/dT) Tᵀ.
        rawGemm(true, false, c, c, c, 1, t, c, tmp, c, 0, tmp2, c)
        rawGemm(false, true, c, c, c, -1, tmp2, c, t, c, 0, gs, c)
        // Coefficient of Ũ: striu(dL/dS) + its transpose - M (Pᵀ A) M.
        // M (Pᵀ A) M = -M (dL/dM)ᵀ M.
        rawGemm(mT, true, c, c, c, 1, t, c, gm, c, 0, tmp2, c)           // M gmᵀ
        rawGemm(false, mT, c, c, c, 1, tmp2, c, t, c, 0, tmp, c)         // M gmᵀ M
        for i in 0..<c {
            for j in 0..<c {
                let upper = j > i ? gs[i * c + j] : (j < i ? gs[j * c + i] : 0)
                tmp2[i * c + j] = upper + tmp[i * c + j]
            }
        }
        rawGemm(false, false, c, p, c, 1, tmp2, c, u, n, 1, gradU, n)
        // Z += n1 Ũ: propagate the gradient and (except for the last block) rebuild the input.
        rawGemm(false, false, rebuild ? 2 * b : b, p, c, 1, n1, c, u, n, 1, z, n)
    }

    // MARK: - Backward through W

    /// Adds to `gradUnits` the unit-vector gradients of every reflector given `S = K - Kᵀ`
    /// (`[n, n]`, destroyed), `K = (dL/dW) Wᵀ`.
    ///
    /// Per reflector (see ``Householder/accumulateReflectorGradient(antisymmetric:plan:)``),
    /// `dL/dû_i = 2 S_i û_i` with `S_i = P_{i-1}ᵀ S P_{i-1}`, `P_{i-1} = H_1 ⋯ H_{i-1}`. Per block
    /// with `S_s` at its start: `Q_i û_i = ½ Ũᵀ T[:, i]` (the larft column), so with
    /// `M = S_s Ũᵀ` the vectors `S_s Q_i û_i` are the columns of `Y = ½ M T`, and
    /// `Q_iᵀ y_i = y_i - Ũᵀ striu(Tᵀ striu(Ũ Y))[:, i]` (only reflectors before i act). The next
    /// block starts from `Q_kᵀ S_s Q_k = S_s - R Ũ + (R Ũ)ᵀ`, `R = M T - ½ Ũᵀ Tᵀ (Ũ M) T`, needed
    /// only on the next block's window. `Z = Ũ M` serves twice: `Ũ Y = ½ Z T` and `Tᵀ Z T`, and
    /// `M T = 2 Y` is taken from Y before Y is corrected, so each block costs 2·(c × c × p) GEMMs
    /// fewer. `Σ_k (4 c p² + O(c² p))` flops.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func pushAntisymmetric(
        _ plan: Plan, s: UnsafeMutablePointer<T>, n: Int, lastBlock: Int, gradUnits: UnsafeMutablePointer<T>,
        scratch: LayerBuffers<T>? = nil
    ) {
        guard lastBlock >= 0 else { return }
        let nb = plan.maxBlockCount
        var mBuf = scratchBuffer(scratch, HouseholderSlot.pushM, n * nb)
        var yBuf = scratchBuffer(scratch, HouseholderSlot.pushY, n * nb)
        var eBuf = scratchBuffer(scratch, HouseholderSlot.pushE, n * n)
        var small = scratchBuffer(scratch, HouseholderSlot.pushSmall, 4 * nb * nb)
        defer {
            release(scratch, HouseholderSlot.pushM, mBuf)
            release(scratch, HouseholderSlot.pushY, yBuf)
            release(scratch, HouseholderSlot.pushE, eBuf)
            release(scratch, HouseholderSlot.pushSmall, small)
        }
        plan.units.withUnsafeBufferPointer { pu in
            plan.triangular.withUnsafeBufferPointer { pt in
                mBuf.withUnsafeMutableBufferPointer { pmb in
                    yBuf.withUnsafeMutableBufferPointer { pyb in
                        eBuf.withUnsafeMutableBufferPointer { peb in
                            small.withUnsafeMutableBufferPointer { psm in
                                let mm = pmb.baseAddress!, yy = pyb.baseAddress!, ee = peb.baseAddress!
                                for (k, block) in plan.blocks.enumerated() where k <= lastBlock {
                                    let c = block.count, w = block.window, p = n - w, cc = c * c
                                    let u = pu.baseAddress! + block.start * n + w
                                    let t = pt.baseAddress! + block.offset
                                    let sw = s + w * n + w
                                    let f = psm.baseAddress!, h = f + cc, zz = f + 2 * cc, q = f + 3 * cc
                                    let more = k < lastBlock
                                    let next = more ? plan.blocks[k + 1].window : n
                                    let o = next - w, rq = p - o
                                    // M = S_s Ũᵀ (p × c); Y = ½ M T; Z = Ũ M (c × c); F = Ũ Y = ½ Z T.
                                    rawGemm(false, true, p, c, p, 1, sw, n, u, n, 0, mm, c)
                                    rawGemm(false, false, p, c, c, 0.5, mm, c, t, c, 0, yy, c)
                                    rawGemm(false, false, c, c, p, 1, u, n, mm, c, 0, zz, c)
                                    rawGemm(false, false, c, c, c, 0.5, zz, c, t, c, 0, f, c)
                                    if more {
                                        // Q = Tᵀ Z T = 2 Tᵀ F, and R's first term M[o:] T = 2 Y[o:]
                                        // kept in M's buffer (M is spent) before Y changes.
                                        rawGemm(true, false, c, c, c, 2, t, c, f, c, 0, q, c)
                                        let y0 = yy + o * c
                                        for i in 0..<(rq * c) { mm[i] = 2 * y0[i] }
                                    }
                                    // H = striu(Tᵀ striu(F)).
                                    for i in 0..<c { for j in 0...i { f[i * c + j] = 0 } }
                                    rawGemm(true, false, c, c, c, 1, t, c, f, c, 0, h, c)
                                    for i in 0..<c { for j in 0...i { h[i * c + j] = 0 } }
                                    // Y -= Ũᵀ H; the gradient of û_{s+i} is 2 Y[:, i].
                                    rawGemm(true, false, p, c, c, -1, u, n, h, c, 1, yy, c)
                                    for i in 0..<c {
                                        let row = gradUnits + (block.start + i) * n + w
                                        for j in 0..<p { row[j] += 2 * yy[j * c + i] }
                                    }
                                    guard more else { break }
                                    // R[o:] = M[o:] T - ½ Ũ[:, o:]ᵀ Q (rq × c), in M's buffer.
                                    rawGemm(true, false, rq, c, c, -0.5, u + o, n, q, c, 1, mm, c)
                                    // E = R[o:] Ũ[:, o:] (rq × rq); S[next:, next:] += Eᵀ - E.
                                    rawGemm(false, false, rq, rq, c, 1, mm, c, u + o, n, 0, ee, rq)
                                    // Eᵀ - E is antisymmetric: one triangle, mirrored.
                                    let sn = s + next * n + next
                                    for i in 0..<rq {
                                        for j in 0..<i {
                                            let d = ee[j * rq + i] - ee[i * rq + j]
                                            sn[i * n + j] += d
                                            sn[j * n + i] -= d
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `C = alpha · op(A) · op(B) + beta · C` on raw row-major pointers; empty products only
    /// scale C (BLAS rejects k = 0 with some leading dimensions).
    @inline(__always)
    static func rawGemm(
        _ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: T,
        _ a: UnsafePointer<T>, _ lda: Int, _ b: UnsafePointer<T>, _ ldb: Int, _ beta: T,
        _ c: UnsafeMutablePointer<T>, _ ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        T._gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

/// The ``LayerBuffers`` slots of ``Householder`` (its scratch buffers, outputs and gradients).
enum HouseholderSlot {
    static let materialize1 = 0, materialize2 = 1, applyA = 2, applyC = 3
    static let backwardL = 4, backwardA = 5, backwardN1 = 6, backwardN2 = 7, backwardSmall = 8
    static let pushM = 9, pushY = 10, pushE = 11, pushSmall = 12
    static let vectors = 13, output = 14, logDet = 15, gradUnits = 16
    static let inputGradient = 17, weightGradient = 18, stacked = 19, antisymmetric = 20
    static let centered = 21, blockOutputs = 22, inverseOutput = 23
}
