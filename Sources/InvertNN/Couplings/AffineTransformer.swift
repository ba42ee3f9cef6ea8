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
    /// The block forms' factors buffer, reused from call to call (see ``Workspace``).
    let workspace = Workspace<T>(slots: 1)

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

    /// `e^{±s}` at `[r·m + j]` and `ds/dŝ` at `[count + r·m + j]` for the whole block, with the
    /// per-row log-dets `±Σ_j s_j`: the exponentials of a batch in two vectorized passes.
    func scaleFactors(
        _ h: UnsafePointer<T>, rows: Int, features m: Int, inverse: Bool,
        into factors: UnsafeMutableBufferPointer<T>, logAbsDet: UnsafeMutablePointer<T>?
    ) {
        let count = rows * m
        let bound = scaleBound ?? 0, inverseBound = scaleBound.map { 1 / $0 } ?? 0, bounded = scaleBound != nil
        if bounded {
            for r in 0..<rows {
                for j in 0..<m { factors[r * m + j] = -2 * Swift.abs(h[r * 2 * m + j] * inverseBound) }
            }
            VectorMath.exp(UnsafeMutableBufferPointer(rebasing: factors[0..<count]))
        }
        for r in 0..<rows {
            var sum: T = 0
            for j in 0..<m {
                let i = r * m + j, scaleInput = h[r * 2 * m + j]
                var s = scaleInput
                if bounded {
                    let w = factors[i], q = 1 / (1 + w)
                    s = (scaleInput < 0 ? -bound : bound) * ((1 - w) * q)  // a select, not a branch
                    factors[count + i] = 4 * w * q * q
                } else {
                    factors[count + i] = 1
                }
                sum += s
                factors[i] = inverse ? -s : s
            }
            logAbsDet?[r] = inverse ? -sum : sum
        }
        VectorMath.exp(UnsafeMutableBufferPointer(rebasing: factors[0..<count]))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func apply(
        _ data: UnsafeMutablePointer<T>, block: TransformedBlock, parameters h: UnsafePointer<T>,
        logAbsDet: UnsafeMutablePointer<T>, inverse: Bool
    ) -> (row: Int, feature: Int, value: T)? {
        let rows = block.rows, m = block.features
        workspace.withScratch(0, count: 2 * rows * m) { factors in
            scaleFactors(h, rows: rows, features: m, inverse: inverse, into: factors, logAbsDet: logAbsDet)
            for r in 0..<rows {
                let o = block.index(r, 0), ho = r * 2 * m + m, fo = r * m
                if inverse {
                    for j in 0..<m { data[o + j] = (data[o + j] - h[ho + j]) * factors[fo + j] }
                } else {
                    for j in 0..<m { data[o + j] = data[o + j] * factors[fo + j] + h[ho + j] }
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
        let rows = block.rows, m = block.features, slopes = rows * m
        let sign: T = inverse ? -1 : 1
        workspace.withScratch(0, count: 2 * rows * m) { factors in
            scaleFactors(h, rows: rows, features: m, inverse: inverse, into: factors, logAbsDet: nil)
            for r in 0..<rows {
                let ho = r * 2 * m, o = block.index(r, 0), fo = r * m, ℓ = logAbsDetGradient[r]
                for j in 0..<m {
                    // u is the scaled term of the output: x·e^s forward, (y - t)·e^{-s} inverse.
                    let e = factors[fo + j], slope = factors[slopes + fo + j]
                    let u = (inverse ? input[o + j] - h[ho + m + j] : input[o + j]) * e
                    let g = gradient[o + j], ge = g * e
                    gradient[o + j] = ge
                    dh[ho + j] = sign * (g * u + ℓ) * slope
                    dh[ho + m + j] = inverse ? -ge : g
                }
            }
        }
    }
}
