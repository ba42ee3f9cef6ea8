import RealModule

/// Preprocessing of discrete data with `K` levels into the continuous space a flow models, and
/// back (DESIGN.md §4).
///
/// 1. **Uniform dequantization** (Theis et al. 2016, "A note on the evaluation of generative
///    models", §3.1; Uria et al. 2013): `x = (k + u) / K` with `u ~ U[0, 1)^D`, so `x ∈ [0, 1)^D`.
///    A density on `x` gives a lower bound on the log-probability of the discrete `k`, and
///    `log P(k) ≥ E_u[log p(x)] - D·log K` (the `1/K` scaling has log-det `-D·log K`, accounted for
///    in ``bitsPerDimension(nllNats:dimensions:levels:)``).
/// 2. **Logit transform** (optional; Dinh et al. 2017, RealNVP, §4.1):
///    `y = logit(α + (1 - 2α)x)` with `logit(p) = log p - log(1 - p)`, which keeps `p` away from
///    0 and 1. Per sample `log|det ∂y/∂x| = Σ_j [log(1 - 2α) - log p_j - log(1 - p_j)]` nats.
///    It is a layer of the library, ``logitLayer(features:)`` (`Inverted(RangeCompression)`).
///
/// The negative log-likelihood of `x` (what bits/dim needs) is then
/// `NLL_x = NLL_y - log|det ∂y/∂x|`.
///
/// Shapes are `[batch, features]`; the logit is elementwise.
public struct Dequantization<T: Scalar>: Sendable {
    /// K, the number of discrete levels (17 for the digits, 256 for 8-bit images).
    public let levels: Int
    /// α of the logit transform, or `nil` to model `x ∈ [0, 1)` directly.
    public let logitAlpha: T?

    /// A preprocessing for integer data in `0..<levels`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `levels < 2` or `logitAlpha`
    ///   is not in `[0, 0.5)` or not finite.
    public init(levels: Int, logitAlpha: T? = 0.05) throws {
        guard levels >= 2 else {
            throw InvertNNError.invalidArgument(operation: "Dequantization", reason: "levels must be ≥ 2, got \(levels)")
        }
        if let alpha = logitAlpha, !(alpha >= 0 && alpha < 0.5) {
            throw InvertNNError.invalidArgument(
                operation: "Dequantization", reason: "logit α must lie in [0, 0.5), got \(alpha)")
        }
        self.levels = levels
        self.logitAlpha = logitAlpha
    }

    /// Dequantizes integer data `k` and applies the logit (if any): the input a flow models.
    ///
    /// - Parameters:
    ///   - data: `[batch, features]` of integers in `0...levels-1` (as floating point).
    ///   - generator: the source of the uniform noise `u` (caller-owned, for reproducibility).
    /// - Returns: `y` `[batch, features]` and `log|det ∂y/∂x|` `[batch]` (zeros without logit).
    /// - Throws: ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for a value that is not an
    ///   integer level in `0...levels-1`, or from the logit (only with α = 0, for a draw of exactly 0).
    @_specialize(where T == Float, G == SeededGenerator)
    @_specialize(where T == Double, G == SeededGenerator)
    public func transform<G: RandomNumberGenerator>(_ data: Matrix<T>, using generator: inout G) throws -> LayerOutput<T> {
        var x = try dequantize(data, using: &generator)
        let logAbsDet = try applyLogit(&x)
        return LayerOutput(output: x, logAbsDet: logAbsDet)
    }

    /// Uniform dequantization only, `x = (k + u) / K` in `[0, 1)`.
    ///
    /// - Returns: `[batch, features]`.
    /// - Throws: as ``transform(_:using:)``.
    @_specialize(where T == Float, G == SeededGenerator)
    @_specialize(where T == Double, G == SeededGenerator)
    public func dequantize<G: RandomNumberGenerator>(_ data: Matrix<T>, using generator: inout G) throws -> Matrix<T> {
        let top = T(levels - 1)
        var x = data
        let columns = max(data.columns, 1)
        var bad: Int? = nil
        let inverseLevels = 1 / Double(levels)
        x.storage.withUnsafeMutableBufferPointer { buffer in
            for i in 0..<buffer.count {
                let k = buffer[i]
                if !(k >= 0 && k <= top && k.rounded(.down) == k) { bad = i; return }
                // The sum is formed in Double so that k + u keeps all of u's bits before rounding.
                let u = Double(generator.next() >> 11) * 0x1.0p-53
                buffer[i] = T((Double(k) + u) * inverseLevels)
            }
        }
        if let bad {
            throw InvertNNError.outOfDomain(
                layer: "Dequantization", value: Double(data.storage[bad]), row: bad / columns, column: bad % columns,
                domain: "integers 0...\(levels - 1)")
        }
        return x
    }

    /// The logit as a layer: `Inverted(RangeCompression)` onto the interval
    /// `(-α/(1 - 2α), (1 - α)/(1 - 2α))`, whose range expansion `log(x - lo) - log(hi - x)` is
    /// exactly `logit(α + (1 - 2α)x)` (both logarithms are those of `p/(1 - 2α)` and
    /// `(1 - p)/(1 - 2α)`), with the log-determinant
    /// `Σ_j [log(1 - 2α) - log p_j - log(1 - p_j)]`. `nil` without logit.
    ///
    /// - Parameter features: the data's width `D` (≥ 1).
    /// - Returns: a layer `[batch, D] → [batch, D]` with no parameters.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`.
    public func logitLayer(features: Int) throws -> Inverted<T>? {
        guard let map = try logitMap() else { return nil }
        return Inverted(try RangeCompression(features: features, map: map))
    }

    /// The range compression whose inverse is the logit, or `nil` without logit.
    private func logitMap() throws -> RangeCompressionMap<T>? {
        guard let alpha = logitAlpha else { return nil }
        let width = 1 - 2 * alpha
        return try RangeCompressionMap(lower: -alpha / width, upper: (1 - alpha) / width)
    }

    /// The logit transform `y = logit(α + (1 - 2α)x)` on `x` `[batch, D]`, through
    /// ``logitLayer(features:)``, returning `log|det ∂y/∂x|` per row (zeros if ``logitAlpha`` is
    /// `nil`, in which case `x` is unchanged).
    ///
    /// - Throws: ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` for a value at or
    ///   outside the interval's ends (with α = 0: `x ∉ (0, 1)`), or NaN/±∞; dequantized data with
    ///   α > 0 never are.
    public func applyLogit(_ x: inout Matrix<T>) throws -> [T] {
        guard x.columns > 0, let logit = try logitLayer(features: x.columns) else {
            return [T](repeating: 0, count: x.rows)
        }
        let y = try logit.forward(x)
        x = y.output
        return y.logAbsDet
    }

    /// Maps the flow's space back to data units in `[0, 1]`: the inverse of the logit (the range
    /// compression of ``logitLayer(features:)``), `x = (σ(y) - α) / (1 - 2α)`, clamped to `[0, 1]`
    /// (the identity without logit, clamped). NaN maps to 0 and ±∞ to the ends, so samples from a
    /// diverged model still render.
    ///
    /// - Returns: `[batch, features]`, continuous values; multiply by ``levels`` for pixel units or
    ///   use ``discretize(_:)``.
    public func dataUnits(_ y: Matrix<T>) -> Matrix<T> {
        var x = y
        // The bounds are valid for every α the initializer accepts.
        let map = try? logitMap()
        x.storage.withUnsafeMutableBufferPointer { values in
            for i in values.indices {
                var v = values[i]
                if let map { v = map.forward(v, feature: 0).value }
                values[i] = v.isNaN ? 0 : Swift.min(Swift.max(v, 0), 1)
            }
        }
        return x
    }

    /// The discrete level of each value of `x ∈ [0, 1]` in data units: `min(⌊x·K⌋, K-1)`, the
    /// inverse of dequantization.
    public func discretize(_ x: Matrix<T>) -> Matrix<T> {
        var k = x
        let top = T(levels - 1)
        for i in 0..<k.count {
            let v = (k.storage[i] * T(levels)).rounded(.down)
            k.storage[i] = v.isNaN ? 0 : Swift.min(Swift.max(v, 0), top)
        }
        return k
    }
}
