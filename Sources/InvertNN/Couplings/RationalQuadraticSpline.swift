import RealModule

/// The monotonic rational-quadratic spline transformer of neural spline flows (Durkan et al. 2019,
/// "Neural Spline Flows", §3.1 eqs. 4-8 and appendix A), with linear (identity) tails.
///
/// On `[-B, B]` the map is a spline of `K` bins through knots `(x⁽ᵏ⁾, y⁽ᵏ⁾)`, `k = 0…K`, with
/// `x⁽⁰⁾ = y⁽⁰⁾ = -B`, `x⁽ᴷ⁾ = y⁽ᴷ⁾ = B`, and positive knot derivatives `δ⁽ᵏ⁾`; outside it is the
/// identity, and `δ⁽⁰⁾ = δ⁽ᴷ⁾ = 1` makes the whole map continuously differentiable. In bin `k`,
/// with `w = x⁽ᵏ⁺¹⁾ - x⁽ᵏ⁾`, `h = y⁽ᵏ⁺¹⁾ - y⁽ᵏ⁾`, `s = h/w`, `ξ = (x - x⁽ᵏ⁾)/w` (eq. 4, A.1):
///
///     y      = y⁽ᵏ⁾ + h·(s ξ² + δ⁽ᵏ⁾ ξ(1-ξ)) / (s + (δ⁽ᵏ⁺¹⁾ + δ⁽ᵏ⁾ - 2s) ξ(1-ξ))
///     dy/dx  = s² (δ⁽ᵏ⁺¹⁾ ξ² + 2s ξ(1-ξ) + δ⁽ᵏ⁾ (1-ξ)²) / (s + (δ⁽ᵏ⁺¹⁾ + δ⁽ᵏ⁾ - 2s) ξ(1-ξ))²
///
/// The inverse solves `a ξ² + b ξ + c = 0` (A.3) in the stable form `ξ = 2c / (-b - √(b² - 4ac))`
/// (eq. A.4), which never subtracts nearly equal numbers since `b > 0` wherever `c → 0`.
///
/// - Parametrization (`P = 3K - 1` conditioner outputs per feature, laid out parameter-major
///   `h[row, p·m + j]`): `u_w` (`p < K`), `u_h` (`K ≤ p < 2K`), `u_δ` (`2K ≤ p < 3K - 1`), with
///   bin widths `w = 2B·(m_w + (1 - K·m_w)·softmax(u_w))`, heights likewise with `m_h`, and inner
///   knot derivatives `δ⁽ᵏ⁾ = m_δ + softplus(u_δ[k-1])`, `k = 1…K-1` (as nflows' linear-tail
///   spline, whose boundary derivative is 1 through the tails).
/// - Log-derivatives in nats; the inverse's is exactly the negative of the forward one's at the
///   matching point; in the tails both are 0 and the parameters get no gradient.
/// - The inverse domain is all reals (the map is a bijection of ℝ).
/// - The block forms compute the `2K + (K - 1)` exponentials of a row in one vectorized pass and
///   reuse one scratch buffer (`ScratchBuffer`); the entry forms keep theirs on the stack.
public struct RationalQuadraticSpline<T: Scalar>: CouplingTransformer {
    public typealias Element = T

    /// The checkpointed hyper-parameters.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `K`, the number of bins.
        public var bins: Int
        /// `B`: the spline covers `[-B, B]` in both coordinates.
        public var tailBound: Double
        /// `m_w`, the smallest bin width as a fraction of `2B`.
        public var minimumBinWidth: Double
        /// `m_h`, the smallest bin height as a fraction of `2B`.
        public var minimumBinHeight: Double
        /// `m_δ`, the smallest inner knot derivative.
        public var minimumDerivative: Double
    }

    /// `K`, the number of bins.
    public let bins: Int
    /// `B`: the spline covers `[-B, B]`; the map is the identity outside.
    public let tailBound: T
    /// `m_w`: each bin is at least `2B·m_w` wide.
    public let minimumBinWidth: T
    /// `m_h`: each bin is at least `2B·m_h` high.
    public let minimumBinHeight: T
    /// `m_δ`: each inner knot derivative is at least this.
    public let minimumDerivative: T
    /// The block forms' exponentials and row maxima: temporaries that never leave a call, reused
    /// from call to call (`ScratchBuffer`).
    let scratch = ScratchBuffer<T>()

    /// A spline with `bins` bins on `[-tailBound, tailBound]`.
    ///
    /// - Parameters:
    ///   - bins: `K` in `1...1000` (default 8).
    ///   - tailBound: `B > 0` (default 3: standardized data; the tails are the identity).
    ///   - minimumBinWidth: `m_w` with `0 < K·m_w < 1` (default 1e-3).
    ///   - minimumBinHeight: `m_h` with `0 < K·m_h < 1` (default 1e-3).
    ///   - minimumDerivative: `m_δ > 0` (default 1e-3).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for a value out of range.
    public init(
        bins: Int = 8, tailBound: T = 3, minimumBinWidth: T = 1e-3, minimumBinHeight: T = 1e-3, minimumDerivative: T = 1e-3
    ) throws {
        func bad(_ reason: String) -> InvertNNError { .invalidArgument(operation: "RationalQuadraticSpline", reason: reason) }
        guard bins >= 1, bins <= 1000 else { throw bad("bins must be in 1...1000, got \(bins)") }
        guard tailBound > 0, tailBound.isFinite, (2 * tailBound).isFinite else {
            throw bad("tailBound must be positive and finite, got \(tailBound)")
        }
        for (label, value) in [("minimumBinWidth", minimumBinWidth), ("minimumBinHeight", minimumBinHeight)] {
            guard value > 0, T(bins) * value < 1 else { throw bad("\(label) must lie in (0, 1/bins) = (0, \(1 / Double(bins))), got \(value)") }
        }
        guard minimumDerivative > 0, minimumDerivative.isFinite else {
            throw bad("minimumDerivative must be positive and finite, got \(minimumDerivative)")
        }
        self.bins = bins
        self.tailBound = tailBound
        self.minimumBinWidth = minimumBinWidth
        self.minimumBinHeight = minimumBinHeight
        self.minimumDerivative = minimumDerivative
    }

    /// The spline described by a checkpointed configuration.
    ///
    /// - Throws: as ``init(bins:tailBound:minimumBinWidth:minimumBinHeight:minimumDerivative:)``.
    public init(configuration: Configuration) throws {
        try self.init(bins: configuration.bins, tailBound: T(configuration.tailBound),
                      minimumBinWidth: T(configuration.minimumBinWidth), minimumBinHeight: T(configuration.minimumBinHeight),
                      minimumDerivative: T(configuration.minimumDerivative))
    }

    public var parametersPerFeature: Int { 3 * bins - 1 }
    public var configuration: Configuration {
        Configuration(bins: bins, tailBound: Double(tailBound), minimumBinWidth: Double(minimumBinWidth),
                      minimumBinHeight: Double(minimumBinHeight), minimumDerivative: Double(minimumDerivative))
    }
    public var name: String { "spline(\(bins) bins, bound \(tailBound))" }
    public static var couplingTypeName: String { "SplineCoupling" }

    // MARK: One entry's parameters

    /// One entry's parameters: the unconstrained values `u` (`raw[p·rawStride]`), their
    /// exponentials (`exps[p·expStride]`: `e^{u_w - max u_w}`, `e^{u_h - max u_h}`, `e^{-|u_δ|}`)
    /// and the softmax normalizers `1/Σ e^{u_w - max}`, `1/Σ e^{u_h - max}` (`normalizers[0]`,
    /// `normalizers[normalizerStride]`).
    @usableFromInline
    struct Entry {
        let raw: UnsafePointer<T>
        let rawStride: Int
        let exps: UnsafePointer<T>
        let expStride: Int
        let normalizers: UnsafePointer<T>
        let normalizerStride: Int

        @inline(__always) func u(_ p: Int) -> T { raw[p * rawStride] }
        @inline(__always) func e(_ p: Int) -> T { exps[p * expStride] }
    }

    /// The bin holding a point, with what its formulas and their gradients need.
    struct Bin {
        /// `k`.
        var index: Int
        /// `x⁽ᵏ⁾`, `w`, `y⁽ᵏ⁾`, `h`.
        var left: T, width: T, bottom: T, height: T
        /// `δ⁽ᵏ⁾`, `δ⁽ᵏ⁺¹⁾`.
        var lowerDerivative: T, upperDerivative: T
        /// `Σ_{i<k} softmax(u_w)_i` and `Σ_{i<k} softmax(u_h)_i` (for the knots' gradients).
        var widthBelow: T, heightBelow: T
        /// `1 / Σ_i e^{u_w,i - max}` and `1 / Σ_i e^{u_h,i - max}`.
        var widthNormalizer: T, heightNormalizer: T
    }

    /// The spline's values at `ξ` in a bin.
    struct Local {
        var ξ: T, t: T, s: T, denominator: T, numerator2: T, r: T
        /// `dy/dx`.
        var derivative: T
    }

    /// `δ = m_δ + softplus(u)` from `u` and `e = e^{-|u|}`.
    @inline(__always)
    func knotDerivative(_ u: T, _ e: T) -> T { minimumDerivative + Swift.max(u, 0) + Self.logOnePlus(e) }

    /// `log(1 + e)` for `e ∈ [0, 1]` to a few ulps through `log` (Goldberg 1991, "What every
    /// computer scientist should know about floating-point arithmetic", Theorem 4), several times
    /// cheaper here than glibc's `log1pf`.
    @inline(__always)
    static func logOnePlus(_ e: T) -> T {
        let v = 1 + e
        return v == 1 ? e : T.log(v) * (e / (v - 1))
    }

    /// `sigmoid(u) = dδ/du` from `u` and `e = e^{-|u|}`.
    @inline(__always)
    static func sigmoid(_ u: T, _ e: T) -> T { (u >= 0 ? 1 : e) / (1 + e) }

    /// The bin of `value` (an `x` when `inverse` is false, a `y` otherwise), which lies in `[-B, B]`.
    @inline(__always)
    func locate(_ value: T, inverse: Bool, _ entry: Entry) -> Bin {
        let K = bins, B = tailBound
        let iw = entry.normalizers[0], ih = entry.normalizers[entry.normalizerStride]
        let baseW = 2 * B * minimumBinWidth, baseH = 2 * B * minimumBinHeight
        let scaleW = 2 * B * (1 - T(K) * minimumBinWidth) * iw, scaleH = 2 * B * (1 - T(K) * minimumBinHeight) * ih
        var left = -B, bottom = -B, below: T = 0, belowH: T = 0
        var k = 0
        while k < K - 1 {
            let ew = entry.e(k), eh = entry.e(K + k)
            let right = left + (baseW + scaleW * ew), top = bottom + (baseH + scaleH * eh)
            if value < (inverse ? top : right) { break }
            left = right
            bottom = top
            below += ew * iw
            belowH += eh * ih
            k += 1
        }
        // The last knot is B itself, so the bins tile [-B, B] whatever the rounding.
        let right = k == K - 1 ? B : left + (baseW + scaleW * entry.e(k))
        let top = k == K - 1 ? B : bottom + (baseH + scaleH * entry.e(K + k))
        let lower: T = k == 0 ? 1 : knotDerivative(entry.u(2 * K + k - 1), entry.e(2 * K + k - 1))
        let upper: T = k == K - 1 ? 1 : knotDerivative(entry.u(2 * K + k), entry.e(2 * K + k))
        return Bin(index: k, left: left, width: right - left, bottom: bottom, height: top - bottom,
                   lowerDerivative: lower, upperDerivative: upper, widthBelow: below, heightBelow: belowH,
                   widthNormalizer: iw, heightNormalizer: ih)
    }

    /// Eq. 4 and its derivative at `ξ ∈ [0, 1]` of `bin`.
    @inline(__always)
    static func local(_ bin: Bin, _ ξ: T) -> Local {
        let h = bin.height, d0 = bin.lowerDerivative, d1 = bin.upperDerivative
        let s = h / bin.width, om = 1 - ξ, t = ξ * om
        let denominator = s + (d1 + d0 - 2 * s) * t
        let numerator2 = d1 * ξ * ξ + 2 * s * t + d0 * om * om
        let inverseDenominator = 1 / denominator
        let r = h * (s * ξ * ξ + d0 * t) * inverseDenominator
        let q = s * inverseDenominator
        return Local(ξ: ξ, t: t, s: s, denominator: denominator, numerator2: numerator2, r: r, derivative: q * q * numerator2)
    }

    /// `ξ` of a `y` inside `bin`: the stable root of eq. A.3.
    @inline(__always)
    static func inverseFraction(_ y: T, _ bin: Bin) -> T {
        let h = bin.height, d0 = bin.lowerDerivative, d1 = bin.upperDerivative, s = h / bin.width
        let Δ = Swift.min(Swift.max(y - bin.bottom, 0), h), β = d1 + d0 - 2 * s
        let a = h * (s - d0) + Δ * β, b = h * d0 - Δ * β, c = -s * Δ
        let discriminant = Swift.max(b * b - 4 * a * c, 0)
        return Swift.min(Swift.max(2 * c / (-b - discriminant.squareRoot()), 0), 1)
    }

    @inline(__always)
    func inTails(_ v: T) -> Bool { !(v >= -tailBound && v <= tailBound) }

    /// `g(x)` and `log g'(x)`, or (`inverse`) `g⁻¹(y)` and `-log g'(g⁻¹(y))`.
    @inline(__always)
    func transformEntry(_ v: T, _ entry: Entry, inverse: Bool) -> (value: T, logDerivative: T) {
        if inTails(v) { return (v, 0) }
        let bin = locate(v, inverse: inverse, entry)
        let ξ = inverse ? Self.inverseFraction(v, bin) : Self.forwardFraction(v, bin)
        let l = Self.local(bin, ξ), logDerivative = T.log(l.derivative)
        return inverse ? (bin.left + ξ * bin.width, -logDerivative) : (bin.bottom + l.r, logDerivative)
    }

    /// `ξ` of an `x` inside `bin`.
    @inline(__always)
    static func forwardFraction(_ x: T, _ bin: Bin) -> T { Swift.min(Swift.max((x - bin.left) / bin.width, 0), 1) }

    /// The shared VJP of both directions. With `A` the weight of the output `y = g(x)` and `Λ`
    /// that of `λ = log g'(x)` in the loss, writes `dL/du` for all `P` parameters into
    /// `gradient[p·stride]` and returns `(dL/dx, λ_x)` (`λ_x = ∂λ/∂x`, for the inverse's chain rule).
    ///
    /// The partials of eq. 4 are taken with respect to `ξ`, `s`, `h`, `δ⁽ᵏ⁾`, `δ⁽ᵏ⁺¹⁾`, then
    /// carried to the knots (`x⁽ᵏ⁾ = -B + Σ_{i<k} w_i`, `y⁽ᵏ⁾` likewise) and through the softmax
    /// (`dL/du_j = c·p_j (dL/dw_j - Σ_i p_i dL/dw_i)`, `c = 2B(1 - K m_w)`) and the softplus.
    @inline(__always)
    func parameterGradient(
        _ bin: Bin, _ l: Local, valueWeight A: T, logDerivativeWeight Λ: T, _ entry: Entry,
        into gradient: UnsafeMutablePointer<T>, stride: Int
    ) -> T {
        let K = bins, k = bin.index, B = tailBound
        let ξ = l.ξ, om = 1 - ξ, t = l.t, s = l.s, w = bin.width, h = bin.height
        let d0 = bin.lowerDerivative
        // Reciprocals once: divisions dominate this scalar code.
        let iden = 1 / l.denominator, in2 = 1 / l.numerator2, invW = 1 / w, oneMinus2t = 1 - 2 * t
        // λ = 2 log s + log N - 2 log D.
        let λξ = Self.logDerivativeSlope(bin, l)
        let rs = (h * ξ * ξ - l.r * oneMinus2t) * iden
        let λs = 2 / s + 2 * t * in2 - 2 * oneMinus2t * iden
        let gξ = A * l.derivative * w + Λ * λξ
        let gs = A * rs + Λ * λs
        let gLeft = -gξ * invW
        let gWidth = -(gξ * ξ + gs * s) * invW
        let gBottom = A
        let gHeight = A * (s * ξ * ξ + d0 * t) * iden + gs * invW
        let gd0 = A * t * (h - l.r) * iden + Λ * (om * om * in2 - 2 * t * iden)
        let gd1 = -A * l.r * t * iden + Λ * (ξ * ξ * in2 - 2 * t * iden)

        // dL/du_j = c·p_j·(dL/dw_j - Σ_i p_i dL/dw_i), with dL/dw_j = gLeft below bin k, gWidth
        // at k and 0 above (likewise for the heights).
        let iw = bin.widthNormalizer, ih = bin.heightNormalizer
        let aw = 2 * B * (1 - T(K) * minimumBinWidth) * iw, ah = 2 * B * (1 - T(K) * minimumBinHeight) * ih
        let meanW = gLeft * bin.widthBelow + gWidth * entry.e(k) * iw
        let meanH = gBottom * bin.heightBelow + gHeight * entry.e(K + k) * ih
        let belowW = aw * (gLeft - meanW), belowH = ah * (gBottom - meanH), aboveW = -aw * meanW, aboveH = -ah * meanH
        for j in 0..<k {
            gradient[j * stride] = belowW * entry.e(j)
            gradient[(K + j) * stride] = belowH * entry.e(K + j)
        }
        gradient[k * stride] = aw * (gWidth - meanW) * entry.e(k)
        gradient[(K + k) * stride] = ah * (gHeight - meanH) * entry.e(K + k)
        for j in (k + 1)..<K {
            gradient[j * stride] = aboveW * entry.e(j)
            gradient[(K + j) * stride] = aboveH * entry.e(K + j)
        }
        for i in 0..<(K - 1) { gradient[(2 * K + i) * stride] = 0 }
        if k >= 1 {
            let p = 2 * K + k - 1
            gradient[p * stride] = gd0 * Self.sigmoid(entry.u(p), entry.e(p))
        }
        if k <= K - 2 {
            let p = 2 * K + k
            gradient[p * stride] = gd1 * Self.sigmoid(entry.u(p), entry.e(p))
        }
        return gξ * invW
    }

    /// The VJP of ``transformEntry(_:_:inverse:)`` at `v`: given `g` (`dL/d output`) and `ℓ`
    /// (`dL/d log-derivative`), writes `dL/du` into `gradient[p·stride]` and returns `dL/dv`.
    /// Inverse (implicit differentiation of `g(x) = y`, log-derivative `-λ(x)`): `dL/dy = a =
    /// (g - ℓ λ_x)/g'(x)` and `dL/dθ = -a ∂g/∂θ - ℓ ∂λ/∂θ`. Tails: `dL/dv = g`, no parameter gradient.
    @inline(__always)
    func backwardEntry(
        _ v: T, _ entry: Entry, g: T, ℓ: T, into gradient: UnsafeMutablePointer<T>, stride: Int, inverse: Bool
    ) -> T {
        if inTails(v) {
            for p in 0..<parametersPerFeature { gradient[p * stride] = 0 }
            return g
        }
        let bin = locate(v, inverse: inverse, entry)
        let ξ = inverse ? Self.inverseFraction(v, bin) : Self.forwardFraction(v, bin)
        return backward(at: bin, fraction: ξ, entry, g: g, ℓ: ℓ, into: gradient, stride: stride, inverse: inverse)
    }

    /// ``backwardEntry(_:_:g:ℓ:into:stride:inverse:)`` once the point's bin and `ξ` are known.
    @inline(__always)
    func backward(
        at bin: Bin, fraction ξ: T, _ entry: Entry, g: T, ℓ: T, into gradient: UnsafeMutablePointer<T>, stride: Int, inverse: Bool
    ) -> T {
        let l = Self.local(bin, ξ)
        guard inverse else {
            return parameterGradient(bin, l, valueWeight: g, logDerivativeWeight: ℓ, entry, into: gradient, stride: stride)
        }
        let a = (g - ℓ * Self.logDerivativeSlope(bin, l) / bin.width) / l.derivative
        _ = parameterGradient(bin, l, valueWeight: -a, logDerivativeWeight: -ℓ, entry, into: gradient, stride: stride)
        return a
    }

    /// `∂λ/∂ξ` of `λ = log g' = 2 log s + log N - 2 log D` at a local point (`∂λ/∂x = ∂λ/∂ξ / w`).
    @inline(__always)
    static func logDerivativeSlope(_ bin: Bin, _ l: Local) -> T {
        let ξ = l.ξ, om = 1 - ξ, s = l.s, d0 = bin.lowerDerivative, d1 = bin.upperDerivative, oneMinus2ξ = 1 - 2 * ξ
        let numeratorSlope: T = 2 * (d1 * ξ - d0 * om) + 2 * s * oneMinus2ξ
        let denominatorSlope: T = (d1 + d0 - 2 * s) * oneMinus2ξ
        return numeratorSlope / l.numerator2 - 2 * denominatorSlope / l.denominator
    }
}
