/// The two passes of an ``Adam`` step over one parameter's buffers, written so that they vectorize.
///
/// An Adam step reads and writes about 28 bytes per learnable entry (θ, g, m, v) and does a square
/// root and a division each; on models of millions of parameters it is bound by memory bandwidth
/// only if these loops are vectorized. Each entry is computed by the scalar formula of ``Adam`` in
/// the same order of operations, so the result does not depend on the vector width.
enum AdamKernel {
    /// The constants of one step (see ``Adam``): `clip` scales the gradient, `stepScale` is
    /// `η / (1-β₁ᵗ)`, `inverseCorrection2` is `1 / (1-β₂ᵗ)`, `decay` is `η·λ`, `tiny` the smallest
    /// normal magnitude (moments below it are flushed to zero).
    struct Step<T: Scalar> {
        var clip: T, beta1: T, beta2: T, epsilon: T, stepScale: T, inverseCorrection2: T, decay: T, tiny: T
    }

    /// `Σ gᵢ²` accumulated in Double, over whole vectors (8 lanes for Float, 4 + 4 for Double).
    ///
    /// The sum's order is fixed by the buffer alone: lane sums, then the lanes in order, then the
    /// scalar tail.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func sumOfSquares<T: Scalar>(_ g: UnsafeBufferPointer<T>) -> Double {
        guard let base = g.baseAddress, !g.isEmpty else { return 0 }
        if T.self == Float.self {
            return base.withMemoryRebound(to: Float.self, capacity: g.count) { p in
                var low = SIMD4<Double>(), high = SIMD4<Double>()
                var i = 0
                while i + 8 <= g.count {
                    let x = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
                    let a = SIMD4<Double>(Double(x[0]), Double(x[1]), Double(x[2]), Double(x[3]))
                    let b = SIMD4<Double>(Double(x[4]), Double(x[5]), Double(x[6]), Double(x[7]))
                    low += a * a
                    high += b * b
                    i += 8
                }
                var sum = (low + high).sum()
                while i < g.count { let v = Double(p[i]); sum += v * v; i += 1 }
                return sum
            }
        } else if T.self == Double.self {
            return base.withMemoryRebound(to: Double.self, capacity: g.count) { p in
                var low = SIMD4<Double>(), high = SIMD4<Double>()
                var i = 0
                while i + 8 <= g.count {
                    let a = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD4<Double>.self)
                    let b = UnsafeRawPointer(p + i + 4).loadUnaligned(as: SIMD4<Double>.self)
                    low += a * a
                    high += b * b
                    i += 8
                }
                var sum = (low + high).sum()
                while i < g.count { sum += p[i] * p[i]; i += 1 }
                return sum
            }
        } else {
            var sum = 0.0
            for v in g { let d = Double(v); sum += d * d }
            return sum
        }
    }

    /// One Adam update of `theta` in place from the gradient `g`, updating the moments `m` and
    /// `v`; all four buffers have the same count. `factor`, when given, holds 1 for learnable and
    /// 0 for fixed entries (fixed entries keep θ and get m = v = 0).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func update<T: Scalar>(
        theta: UnsafeMutableBufferPointer<T>, gradient g: UnsafeBufferPointer<T>,
        firstMoment m: UnsafeMutableBufferPointer<T>, secondMoment v: UnsafeMutableBufferPointer<T>,
        factor: UnsafeBufferPointer<T>?, _ step: Step<T>
    ) {
        guard let tp = theta.baseAddress, let gp = g.baseAddress, let mp = m.baseAddress,
              let vp = v.baseAddress else { return }
        // Two loops rather than one with an optional factor: the loop vectorizes only when its
        // body has no optional or closure in it.
        if let fp = factor?.baseAddress {
            for i in 0..<theta.count { entry(i, tp, gp, mp, vp, fp[i], step) }
        } else {
            for i in 0..<theta.count { entry(i, tp, gp, mp, vp, 1, step) }
        }
    }

    /// The per-entry work a training step does around the update, done in the update's pass so
    /// that each buffer is read once per step: `previous` receives θ before the update (the
    /// training guard's copy), and `average`, if given, blends that θ into a Polyak average,
    /// `avg ← decay.β·avg + decay.oneMinusβ·θ` (the blend the step before this one owed; see
    /// ``ParameterAverage``; 1-β is rounded from Double, as there).
    struct Companions<T: Scalar> {
        var previous: UnsafeMutablePointer<T>
        var average: UnsafeMutablePointer<T>?
        var decay: (beta: T, oneMinusBeta: T) = (0, 0)
    }

    /// ``update(theta:gradient:firstMoment:secondMoment:factor:_:)`` fused with `companions`.
    ///
    /// - Returns: whether every updated θ is finite.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func update<T: Scalar>(
        theta: UnsafeMutableBufferPointer<T>, gradient g: UnsafeBufferPointer<T>,
        firstMoment m: UnsafeMutableBufferPointer<T>, secondMoment v: UnsafeMutableBufferPointer<T>,
        factor: UnsafeBufferPointer<T>?, _ step: Step<T>, companions c: Companions<T>
    ) -> Bool {
        guard let tp = theta.baseAddress, let gp = g.baseAddress, let mp = m.baseAddress,
              let vp = v.baseAddress else { return true }
        let n = theta.count, keep = c.previous, b = c.decay.beta, oneMinus = c.decay.oneMinusBeta
        // An integer OR over `θ·0 != 0` (true only for NaN and ±∞): unlike a floating-point sum,
        // an integer reduction may be reordered, so the loop stays vectorized. One loop per
        // combination of the optional buffers, for the reason given in the plain update.
        var bad: UInt32 = 0
        @inline(__always) func body(_ i: Int, _ f: T, _ avg: UnsafeMutablePointer<T>?) {
            let old = tp[i]
            keep[i] = old
            if let avg { avg[i] = b * avg[i] + oneMinus * old }
            entry(i, tp, gp, mp, vp, f, step)
            bad |= tp[i] * 0 == 0 ? 0 : 1
        }
        switch (factor?.baseAddress, c.average) {
        case let (fp?, avg?): for i in 0..<n { body(i, fp[i], avg) }
        case let (fp?, nil): for i in 0..<n { body(i, fp[i], nil) }
        case let (nil, avg?): for i in 0..<n { body(i, 1, avg) }
        case (nil, nil): for i in 0..<n { body(i, 1, nil) }
        }
        return bad == 0
    }

    @inline(__always)
    private static func entry<T: Scalar>(
        _ i: Int, _ theta: UnsafeMutablePointer<T>, _ g: UnsafePointer<T>, _ m: UnsafeMutablePointer<T>,
        _ v: UnsafeMutablePointer<T>, _ f: T, _ s: Step<T>
    ) {
        let gi = g[i] * s.clip
        var mi = s.beta1 * m[i] + (1 - s.beta1) * gi
        var vi = s.beta2 * v[i] + (1 - s.beta2) * gi * gi
        // Moments of entries whose gradient stays 0 (dead ReLU units, say) decay geometrically
        // into subnormal numbers, whose arithmetic is two orders of magnitude slower on x86.
        mi = mi.magnitude < s.tiny ? 0 : mi
        vi = vi < s.tiny ? 0 : vi
        m[i] = f * mi
        v[i] = f * vi
        // θ -= η·(m̂/(√v̂ + ε) + λθ) with m̂ = m/c₁, v̂ = v/c₂. v̂ ≥ 0 already; `magnitude` tells
        // the compiler so, which lets it use the vector square root instead of a libm call that
        // sets errno. A select, not a product, for fixed entries: with ε = 0 their step is 0/0.
        let root = (vi * s.inverseCorrection2).magnitude.squareRoot()
        let stepped = theta[i] - (s.stepScale * mi / (root + s.epsilon) + s.decay * theta[i])
        theta[i] = f != 0 ? stepped : theta[i]
    }
}
