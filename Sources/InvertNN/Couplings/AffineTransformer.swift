import RealModule

/// The affine transformer of RealNVP (Dinh et al. 2017, eqs. 4-9) with a smoothly bounded
/// log-scale: `y = x·e^s + t`, `s = c·tanh(ŝ/c)` (or `s = ŝ` without a bound), log-derivative `s`.
///
/// - Conditioner outputs (`P = 2`): `ŝ` then `t`, laid out `h[row, j]` and `h[row, m + j]`.
/// - The bound `c` keeps `|s| < c`, so one step scales a feature by at most `e^c`; the same
///   bounded `s` enters forward, inverse and log-det, which keeps the map exactly invertible.
/// - The block forms batch the exponentials through the library's vectorized `exp`:
///   with `w = e^{-2|ŝ/c|}`, `tanh(ŝ/c) = (1 - w)/(1 + w)` and `1 - tanh² = 4w/(1 + w)²`, so two
///   vectorized passes replace a scalar `tanh` and `exp` per entry.
public struct AffineTransformer<T: Scalar>: CouplingTransformer {
    public typealias Element = T

    /// The checkpointed hyper-parameter: the bound `c`, or `nil` for an unbounded log-scale.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `c` of `s = c·tanh(ŝ/c)`, or `nil`.
        public var scaleBound: Double?
    }

    /// `c` of `s = c·tanh(ŝ/c)`, or `nil` for an unbounded log-scale `s = ŝ`.
    public let scaleBound: T?
    /// The block forms' factors buffer: temporaries that never leave a call, reused
    /// from call to call (``ScratchBuffer``).
    let scratch = ScratchBuffer<T>()

    /// An affine transformer with log-scale bound `scaleBound` (default 2; `nil`: unbounded).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if the bound is not positive and finite.
    public init(scaleBound: T? = 2) throws {
        if let c = scaleBound, !(c > 0 && c.isFinite) {
            throw InvertNNError.invalidArgument(
                operation: "AffineCoupling", reason: "scaleBound must be positive and finite (or nil), got \(c)")
        }
        self.scaleBound = scaleBound
    }

    /// An affine transformer with the configured bound.
    ///
    /// - Throws: as ``init(scaleBound:)``.
    public init(configuration: Configuration) throws { try self.init(scaleBound: configuration.scaleBound.map { T($0) }) }

    public var parametersPerFeature: Int { 2 }
    public var configuration: Configuration { Configuration(scaleBound: scaleBound.map { Double($0) }) }
    public var name: String { scaleBound.map { "affine(bound \($0))" } ?? "affine" }
    public static var couplingTypeName: String { "AffineCoupling" }

    /// `s` and `ds/dŝ` for one pre-activation.
    @inline(__always)
    func logScale(_ ŝ: T) -> (s: T, slope: T) {
        guard let c = scaleBound else { return (ŝ, 1) }
        let w = T.exp(-2 * Swift.abs(ŝ / c)), q = 1 / (1 + w)
        return ((ŝ < 0 ? -c : c) * (1 - w) * q, 4 * w * q * q)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: T, parameters θ: TransformerParameters<T>) -> (value: T, logDerivative: T) {
        let s = logScale(θ[0]).s
        return (x * T.exp(s) + θ[1], s)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: T, parameters θ: TransformerParameters<T>) -> (value: T, logDerivative: T)? {
        let s = logScale(θ[0]).s
        return ((y - θ[1]) * T.exp(-s), -s)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        _ x: T, parameters θ: TransformerParameters<T>, outputGradient g: T, logDerivativeGradient ℓ: T,
        parameterGradient dθ: TransformerParameterGradient<T>
    ) -> T {
        let (s, slope) = logScale(θ[0]), e = T.exp(s)
        dθ[0] = (g * x * e + ℓ) * slope
        dθ[1] = g
        return g * e
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        _ y: T, parameters θ: TransformerParameters<T>, outputGradient g: T, logDerivativeGradient ℓ: T,
        parameterGradient dθ: TransformerParameterGradient<T>
    ) -> T {
        let (s, slope) = logScale(θ[0]), e = T.exp(-s)
        let ge = g * e
        dθ[0] = -(ge * (y - θ[1]) + ℓ) * slope
        dθ[1] = -ge
        return ge
    }

    /// Rows per chunk of the block forms: their factors (`2·m` per row) stay in the L1 cache
    /// between the passes over a chunk.
    static func chunkRows(features m: Int) -> Int { Swift.max(1, 1024 / Swift.max(m, 1)) }

    /// `e^{±s}` at `[r·m + j]` and (with `slopes`) `ds/dŝ` at `[rows·m + r·m + j]` for rows
    /// `0..<rows` of `h` `[rows, 2m]`, with the per-row log-dets `±Σ_j s_j` when `logAbsDet` is
    /// given: the exponentials of a chunk in two vectorized passes. Each loop is free of branches
    /// and of checked index arithmetic so that it vectorizes; the log-det sums keep their order.
    func scaleFactors(
        _ h: UnsafePointer<T>, rows: Int, features m: Int, inverse: Bool, slopes: Bool,
        into factors: UnsafeMutablePointer<T>, logAbsDet: UnsafeMutablePointer<T>?
    ) {
        let count = rows * m
        // Forward stores s, inverse -s: negating every term negates their sum exactly.
        let sign: T = inverse ? -1 : 1
        if let c = scaleBound {
            let inverseBound = 1 / c, signedBound = sign * c
            for r in 0..<rows {
                let hr = h + r * 2 * m, fr = factors + r * m
                for j in 0..<m { fr[j] = -2 * Swift.abs(hr[j] * inverseBound) }
            }
            VectorMath.exp(UnsafeMutableBufferPointer(start: factors, count: count))
            for r in 0..<rows {
                let hr = h + r * 2 * m, fr = factors + r * m, sr = factors + count + r * m
                for j in 0..<m {
                    let w = fr[j], q = 1 / (1 + w)
                    // sign·(±c)·((1 - w)q), the same product as s = (±c)·((1 - w)q) negated.
                    fr[j] = (hr[j] < 0 ? -signedBound : signedBound) * ((1 - w) * q)
                    if slopes { sr[j] = 4 * w * q * q }
                }
            }
        } else {
            for r in 0..<rows {
                let hr = h + r * 2 * m, fr = factors + r * m
                for j in 0..<m { fr[j] = sign * hr[j] }
            }
            if slopes { (factors + count).update(repeating: 1, count: count) }
        }
        if let logAbsDet {
            for r in 0..<rows {
                let fr = factors + r * m
                var sum: T = 0
                for j in 0..<m { sum += fr[j] }
                logAbsDet[r] = sum
            }
        }
        VectorMath.exp(UnsafeMutableBufferPointer(start: factors, count: count))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func apply(
        _ data: UnsafeMutablePointer<T>, block: TransformedBlock, parameters h: UnsafePointer<T>,
        logAbsDet: UnsafeMutablePointer<T>, inverse: Bool
    ) -> (row: Int, feature: Int, value: T)? {
        let rows = block.rows, m = block.features, chunk = Self.chunkRows(features: m)
        guard rows > 0, m > 0 else { return nil }
        self.scratch.withScratch(count: Swift.min(chunk, rows) * m) { scratch in
            let factors = scratch.baseAddress!
            for first in stride(from: 0, to: rows, by: chunk) {
                let count = Swift.min(chunk, rows - first), hc = h + first * 2 * m
                scaleFactors(hc, rows: count, features: m, inverse: inverse, slopes: false, into: factors, logAbsDet: logAbsDet + first)
                for r in 0..<count {
                    let x = data + block.index(first + r, 0), t = hc + r * 2 * m + m, f = factors + r * m
                    if inverse {
                        for j in 0..<m { x[j] = (x[j] - t[j]) * f[j] }
                    } else {
                        for j in 0..<m { x[j] = x[j] * f[j] + t[j] }
                    }
                }
            }
        }
        return nil
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(
        input: UnsafePointer<T>, block: TransformedBlock, parameters h: UnsafePointer<T>,
        gradient: UnsafeMutablePointer<T>, logAbsDetGradient: UnsafePointer<T>,
        parameterGradient dh: UnsafeMutablePointer<T>, inverse: Bool
    ) {
        let rows = block.rows, m = block.features, chunk = Self.chunkRows(features: m)
        let sign: T = inverse ? -1 : 1
        guard rows > 0, m > 0 else { return }
        self.scratch.withScratch(count: 2 * Swift.min(chunk, rows) * m) { scratch in
            let factors = scratch.baseAddress!
            for first in stride(from: 0, to: rows, by: chunk) {
                let count = Swift.min(chunk, rows - first), slopes = factors + count * m
                scaleFactors(h + first * 2 * m, rows: count, features: m, inverse: inverse, slopes: true, into: factors, logAbsDet: nil)
                for r in 0..<count {
                    let row = first + r, o = block.index(row, 0), ℓ = logAbsDetGradient[row]
                    let x = input + o, g = gradient + o, t = h + row * 2 * m + m, f = factors + r * m, sl = slopes + r * m
                    let ds = dh + row * 2 * m, dt = ds + m
                    for j in 0..<m {
                        // u is the scaled term of the output: x·e^s forward, (y - t)·e^{-s} inverse.
                        let e = f[j], gj = g[j], ge = gj * e
                        let u = (inverse ? x[j] - t[j] : x[j]) * e
                        g[j] = ge
                        ds[j] = sign * (gj * u + ℓ) * sl[j]
                        dt[j] = inverse ? -ge : gj
                    }
                }
            }
        }
    }
}
