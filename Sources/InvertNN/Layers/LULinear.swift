import RealModule

/// An invertible linear map in LU form (Kingma & Dhariwal 2018, "Glow", §3.2, eq. 10; as nflows'
/// `LULinear`, with Glow's fixed permutation and signs): `y = W x + b` with
/// `W = P · L · (U + diag(σ ⊙ exp(s)))`.
///
/// - `P` is a fixed permutation: `(P v)_i = v_{permutation[i]}`, so row `i` of `W` is row
///   `permutation[i]` of `L · Ũ` (`Ũ = U + diag(σ ⊙ exp(s))`);
/// - `L` unit lower triangular (learnable strictly-lower entries, parameter `"lower"`);
/// - `U` strictly upper triangular (parameter `"upper"`);
/// - `σ` fixed signs (±1), `s` learnable log-magnitudes of the diagonal (parameter `"logScale"`).
///
/// Log-determinant `Σ_j s_j` nats (forward), `-Σ_j s_j` (inverse), the same for every sample:
/// `|det P| = det L = 1` and `|det Ũ| = Π exp(s_j)`. The map is invertible for any parameters.
///
/// - Shapes: `x`, `y` `[batch, features]`. Parameters, in this order: `"lower"` and `"upper"`
///   `[features, features]` (only the strict lower, resp. upper, triangle is learnable: the
///   other entries are fixed by ``Parameter/trainableMask``, kept at 0 and never read),
///   `"logScale"` `[1, features]`, `"bias"` `[1, features]` (optional).
/// - Cost: forward is one GEMM on the dense `W`; inverse `x = Ũ⁻¹ L⁻¹ Pᵀ (y - b)` is two
///   triangular solves (BLAS `trsm`) on the batch. `L`, `Ũ` and `W` are built once per parameter
///   change (`O(n³)`, cached by ``Parameter/version``). Backward: one batch GEMM for the input
///   gradient (forward; two `trsm` in the inverse direction), one for `dL/dW`, then two `n³`
///   GEMMs to push `dL/dW` to `L`, `U` and `s`.
/// - Pixelwise form (Glow's invertible 1×1 convolution):
///   ``Pixelwise/luLinear(channels:height:width:hasBias:using:)``.
public final class LULinear<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// `n`, the size of `x` and `y`.
    public let features: Int
    /// The fixed permutation `P`: row `i` of `W` is row `permutation[i]` of `L · Ũ`.
    public let permutation: [Int]
    /// The fixed signs `σ` of `Ũ`'s diagonal, each `±1`.
    public let signs: [T]
    /// `L`'s strictly lower entries, `[features, features]`.
    public let lower: Parameter<T>
    /// `U`'s strictly upper entries, `[features, features]`.
    public let upper: Parameter<T>
    /// `s`, the log-magnitudes of `Ũ`'s diagonal, `[1, features]`.
    public let logScale: Parameter<T>
    /// `b`, `[1, features]`, or `nil` for a layer without bias.
    public let bias: Parameter<T>?
    public let parameters: [Parameter<T>]

    /// The dense factors of one set of parameter values.
    struct Factors {
        let keys: ParameterVersions
        /// `L` with its unit diagonal and zeros above, `[n, n]`.
        let unitLower: Matrix<T>
        /// `Ũ = U + diag(σ ⊙ exp(s))` with zeros below, `[n, n]`.
        let upperWithDiagonal: Matrix<T>
        /// `W = P L Ũ`, `[n, n]`.
        let weight: Matrix<T>
    }
    var factorsCache: Factors?

    /// The layer from explicit factors.
    ///
    /// - Parameters:
    ///   - permutation: a permutation of `0..<n` (`n ≥ 1`), see ``permutation``.
    ///   - signs: `n` entries, each `1` or `-1`.
    ///   - lower: `[n, n]`; only the strictly lower entries are used.
    ///   - upper: `[n, n]`; only the strictly upper entries are used.
    ///   - logScale: `n` finite entries.
    ///   - bias: `b`, `n` finite entries (default zero).
    ///   - hasBias: whether the layer has a learnable bias (default true).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for a permutation that is
    ///   not one, a sign other than ±1, mis-shaped or non-finite values.
    public init(
        permutation: [Int], signs: [T], lower: Matrix<T>, upper: Matrix<T>, logScale: [T],
        bias: [T]? = nil, hasBias: Bool = true
    ) throws {
        let n = permutation.count
        func bad(_ reason: String) -> InvertNNError { .invalidArgument(operation: "LULinear", reason: reason) }
        try SizeLimits.features(n, operation: "LULinear")
        _ = try SizeLimits.product([n, n], operation: "LULinear", what: "features × features")
        guard Set(permutation) == Set(0..<n) else { throw bad("permutation must hold each of 0..<\(n) once, got \(permutation)") }
        guard signs.count == n, signs.allSatisfy({ $0 == 1 || $0 == -1 }) else {
            throw bad("signs must be \(n) entries of 1 or -1, got \(signs)")
        }
        for (label, m) in [("lower", lower), ("upper", upper)] {
            guard m.rows == n, m.columns == n else { throw bad("\(label) must be [\(n), \(n)], got \(m.shape)") }
            if let (r, c) = m.firstNonFinite() { throw bad("\(label)[\(r), \(c)] is not finite") }
        }
        for (label, v) in [("logScale", logScale), ("bias", bias)] {
            if let v, v.count != n || v.contains(where: { !$0.isFinite }) {
                throw bad("\(label) must have \(n) finite entries, got \(v.count)")
            }
        }
        var strictLower = Matrix<T>(rows: n, columns: n), strictUpper = Matrix<T>(rows: n, columns: n)
        var lowerMask = [Bool](repeating: false, count: n * n), upperMask = lowerMask
        for i in 0..<n {
            for j in 0..<n where i > j {
                strictLower[i, j] = lower[i, j]
                lowerMask[i * n + j] = true
            }
            for j in 0..<n where i < j {
                strictUpper[i, j] = upper[i, j]
                upperMask[i * n + j] = true
            }
        }
        self.features = n
        self.permutation = permutation
        self.signs = signs
        self.lower = Parameter(name: "lower", value: strictLower, trainableMask: lowerMask)
        self.upper = Parameter(name: "upper", value: strictUpper, trainableMask: upperMask)
        self.logScale = Parameter(name: "logScale", value: Matrix(row: logScale))
        let biasParameter = (hasBias || bias != nil)
            ? Parameter(name: "bias", value: Matrix(row: bias ?? [T](repeating: 0, count: n))) : nil
        self.bias = biasParameter
        let core = [self.lower, self.upper, self.logScale]
        self.parameters = biasParameter.map { core + [$0] } ?? core
    }

    /// The identity map (`P = L = I`, `U = 0`, `s = 0`, positive signs), or, with a fixed
    /// `permutation` and `signs`, the structure a checkpoint fills in (``LayerRegistry``).
    ///
    /// - Throws: as ``init(permutation:signs:lower:upper:logScale:bias:hasBias:)``.
    public convenience init(features: Int, permutation: [Int]? = nil, signs: [T]? = nil, hasBias: Bool = true) throws {
        try SizeLimits.features(features, operation: "LULinear")
        if let permutation, permutation.count != features {
            throw InvertNNError.invalidArgument(
                operation: "LULinear", reason: "permutation must have \(features) entries, got \(permutation.count)")
        }
        let zeros = Matrix<T>(rows: features, columns: features)
        try self.init(
            permutation: permutation ?? Array(0..<features), signs: signs ?? [T](repeating: 1, count: features),
            lower: zeros, upper: zeros, logScale: [T](repeating: 0, count: features), hasBias: hasBias)
    }

    /// The layer whose matrix is `a` `[n, n]`: the LU factorization with partial pivoting
    /// (LAPACK `getrf`, `A = P L U`) gives `P`, `L`, and `U`'s diagonal `d` as `σ = sign(d)`,
    /// `s = log|d|`.
    ///
    /// - Throws: shape mismatch if `a` is not square; ``InvertNNError/singular(operation:detail:)``
    ///   for an exactly singular `a` (a zero pivot); ``InvertNNError/invalidArgument(operation:reason:)``
    ///   for non-finite entries.
    public convenience init(matrix a: Matrix<T>, bias: [T]? = nil, hasBias: Bool = true) throws {
        try a.requireFinite("LULinear(matrix:)")
        let (factors, order) = try LAPACK.luFactorization(a)
        let n = a.rows
        var permutation = [Int](repeating: 0, count: n)
        for (i, row) in order.enumerated() { permutation[row] = i }
        var signs = [T](), logScale = [T]()
        for j in 0..<n {
            let d = factors[j, j]
            signs.append(d < 0 ? -1 : 1)
            logScale.append(T.log(Swift.abs(d)))
        }
        try self.init(permutation: permutation, signs: signs, lower: factors, upper: factors, logScale: logScale,
                      bias: bias, hasBias: hasBias)
    }

    /// Glow's initialization: the LU factorization of a Haar-random orthogonal matrix (QR of a
    /// Gaussian matrix with the sign fix, ``Householder/haarRandom(features:determinant:hasBias:using:)``),
    /// so the layer starts as a random rotation or reflection (log-det 0) and zero bias.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`;
    ///   ``InvertNNError/lapack(routine:info:meaning:)`` if LAPACK fails.
    public convenience init(features: Int, hasBias: Bool = true, using generator: inout some RandomNumberGenerator) throws {
        let q = try Householder<T>.haarRandom(features: features, hasBias: false, using: &generator).matrix()
        try self.init(matrix: q, hasBias: hasBias)
    }

    public var name: String { "LULinear(\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    /// The hyper-parameters: the size, the fixed permutation and signs (±1), and whether there
    /// is a bias.
    public struct Configuration: Codable, Sendable, Equatable {
        public var features: Int
        public var permutation: [Int]
        public var signs: [Int]
        public var bias: Bool
    }
    public static var typeName: String { "LULinear" }
    public var configuration: Configuration {
        Configuration(features: features, permutation: permutation, signs: signs.map { $0 < 0 ? -1 : 1 }, bias: bias != nil)
    }
    /// - Throws: as ``init(features:permutation:signs:hasBias:)``; a sign other than ±1 is an
    ///   ``InvertNNError/invalidArgument(operation:reason:)``.
    public convenience init(configuration c: Configuration) throws {
        try self.init(features: c.features, permutation: c.permutation, signs: c.signs.map { T($0) }, hasBias: c.bias)
    }

    /// The layer's matrix `W = P L Ũ` (`features × features`, without the bias).
    public func matrix() throws -> Matrix<T> {
        return try currentFactors().weight
    }

    /// `Σ_j s_j`.
    private var logDeterminant: T { logScale.value.storage.reduce(0, +) }

    /// `L`, `Ũ` and `W` for the current parameter values, rebuilt when a version changed.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func currentFactors() throws -> Factors {
        let keys = ParameterVersions(lower.version, upper.version, logScale.version)
        if let cached = factorsCache, cached.keys == keys { return cached }
        factorsCache = nil
        let n = features
        var unitLower = Matrix<T>(rows: n, columns: n), upperWithDiagonal = Matrix<T>(rows: n, columns: n)
        lower.value.storage.withUnsafeBufferPointer { l in
            upper.value.storage.withUnsafeBufferPointer { u in
                logScale.value.storage.withUnsafeBufferPointer { s in
                    for i in 0..<n {
                        for j in 0..<i { unitLower.storage[i * n + j] = l[i * n + j] }
                        unitLower.storage[i * n + i] = 1
                        upperWithDiagonal.storage[i * n + i] = signs[i] * T.exp(s[i])
                        for j in (i + 1)..<n { upperWithDiagonal.storage[i * n + j] = u[i * n + j] }
                    }
                }
            }
        }
        let product = try BLAS.matmul(unitLower, upperWithDiagonal)
        var weight = Matrix<T>(rows: n, columns: n)
        for i in 0..<n {
            let from = permutation[i] * n
            for j in 0..<n { weight.storage[i * n + j] = product.storage[from + j] }
        }
        let factors = Factors(keys: keys, unitLower: unitLower, upperWithDiagonal: upperWithDiagonal, weight: weight)
        factorsCache = factors
        return factors
    }

    // MARK: - Directions

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        let workspace = context.buffers(for: self)
        try x.requireColumns(features, "\(name).forward")
        let factors = try currentFactors()
        var y = workspace.matrix(LULinearSlot.output, rows: x.rows, columns: features)
        if let bias {
            // The bias rows first, then one GEMM with beta = 1.
            y.setEveryRow(to: bias.value.storage)
            try BLAS.gemm(x, factors.weight, transposeB: true, beta: 1, into: &y)
        } else {
            try BLAS.gemm(x, factors.weight, transposeB: true, into: &y)
        }
        let logDet = workspace.filled(LULinearSlot.logDet, count: x.rows, with: logDeterminant)
        workspace.keep(LULinearSlot.output, y)
        workspace.keep(LULinearSlot.logDet, logDet)
        return LayerOutput(output: y, logAbsDet: logDet)
    }

    /// Rows: `X = (Y - 1bᵀ) P L⁻ᵀ Ũ⁻ᵀ`: the centred rows scattered to `P`'s columns, then two
    /// right-side triangular solves.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        let workspace = context.buffers(for: self)
        try y.requireColumns(features, "\(name).inverse")
        let factors = try currentFactors()
        var x = workspace.matrix(LULinearSlot.inverseOutput, rows: y.rows, columns: features)
        permuteColumns(of: y, into: &x, scatter: true, subtracting: bias?.value.storage)
        try BLAS.trsm(factors.unitLower, side: .right, lower: true, transpose: true, unitDiagonal: true, solving: &x)
        try BLAS.trsm(factors.upperWithDiagonal, side: .right, lower: false, transpose: true, solving: &x)
        let logDet = workspace.filled(LULinearSlot.logDet, count: y.rows, with: -logDeterminant)
        workspace.keep(LULinearSlot.inverseOutput, x)
        workspace.keep(LULinearSlot.logDet, logDet)
        return LayerOutput(output: x, logAbsDet: logDet)
    }

    /// `scatter`: `out[:, permutation[i]] = m[:, i] - c[i]` (the row form of `Pᵀ`); otherwise
    /// `out[:, i] = m[:, permutation[i]]` (the row form of `P`). `c` is `nil` for no shift.
    private func permuteColumns(of m: Matrix<T>, into out: inout Matrix<T>, scatter: Bool, subtracting c: [T]? = nil) {
        let n = features
        m.storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                for r in 0..<m.rows {
                    let o = r * n
                    for i in 0..<n {
                        if scatter {
                            dst[o + permutation[i]] = src[o + i] - (c?[i] ?? 0)
                        } else {
                            dst[o + i] = src[o + permutation[i]]
                        }
                    }
                }
            }
        }
    }

    // MARK: - Backward

    /// VJP of ``forward(_:context:)``: `dX = dY W`, `dL/dW = dYᵀ X`, `dL/db = Σ_rows dY`, and
    /// `dL/dW` pushed to the factors (the internal `accumulateFactorGradients(_:_:logDetGradientSum:)`).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input x: Matrix<T>, output y: Matrix<T>, outputGradient dy: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        let workspace = context.buffers(for: self)
        try validateBackward("forwardBackward", input: x, inFeatures: features, output: y, outFeatures: features,
                             outputGradient: dy, logAbsDetGradient: dld)
        let factors = try currentFactors()
        var dx = workspace.matrix(LULinearSlot.inputGradient, rows: x.rows, columns: features)
        try BLAS.gemm(dy, factors.weight, into: &dx)
        var dW = Matrix<T>(uninitializedRows: features, columns: features)
        try BLAS.gemm(dy, transposeA: true, x, into: &dW)
        if let bias { dy.addColumnSums(into: &bias.gradient.storage) }
        try accumulateFactorGradients(dW, factors, logDetGradientSum: dld.reduce(0, +))
        workspace.keep(LULinearSlot.inputGradient, dx)
        return dx
    }

    /// VJP of ``inverse(_:context:)``: with `z = y - b` and `x = W⁻¹ z`, `dZ = dX W⁻¹`
    /// (rows: two right-side solves `· Ũ⁻¹ · L⁻¹`, then `Pᵀ`), `dL/dy = dZ`, `dL/db = -Σ_rows dZ`,
    /// `dL/dW = -dZᵀ X`; the log-det `-Σ s` gives `dL/ds -= Σ dld`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input y: Matrix<T>, output x: Matrix<T>, outputGradient dx: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        let workspace = context.buffers(for: self)
        try validateBackward("inverseBackward", input: y, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: dx, logAbsDetGradient: dld)
        let factors = try currentFactors()
        var solved = workspace.copy(LULinearSlot.solve, of: dx)
        try BLAS.trsm(factors.upperWithDiagonal, side: .right, lower: false, solving: &solved)
        try BLAS.trsm(factors.unitLower, side: .right, lower: true, unitDiagonal: true, solving: &solved)
        var dz = workspace.matrix(LULinearSlot.inverseInputGradient, rows: y.rows, columns: features)
        permuteColumns(of: solved, into: &dz, scatter: false)
        workspace.keep(LULinearSlot.solve, solved)
        var dW = Matrix<T>(uninitializedRows: features, columns: features)
        try BLAS.gemm(dz, transposeA: true, x, alpha: -1, into: &dW)
        if let bias { dz.addColumnSums(scaledBy: -1, into: &bias.gradient.storage) }
        try accumulateFactorGradients(dW, factors, logDetGradientSum: -dld.reduce(0, +))
        workspace.keep(LULinearSlot.inverseInputGradient, dz)
        return dz
    }

    /// Adds the gradients of `L`, `U` and `s` from `G = dL/dW` (`W = P L Ũ`):
    /// `dL/dL = (Pᵀ G) Ũᵀ` (strict lower part), `dL/dŨ = Lᵀ (Pᵀ G)` (strict upper part to `U`;
    /// its diagonal times `σ_j exp(s_j)` to `s_j`), plus `logDetGradientSum` to every `s_j`
    /// (the log-det's own gradient, `±Σ dld`).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func accumulateFactorGradients(_ g: Matrix<T>, _ factors: Factors, logDetGradientSum: T) throws {
        let n = features
        var unpermuted = Matrix<T>(uninitializedRows: n, columns: n)
        for i in 0..<n {
            let to = permutation[i] * n, from = i * n
            for j in 0..<n { unpermuted.storage[to + j] = g.storage[from + j] }
        }
        let dLower = try BLAS.matmul(unpermuted, factors.upperWithDiagonal, transposeB: true)
        let dUpper = try BLAS.matmul(factors.unitLower, transposeA: true, unpermuted)
        for i in 0..<n {
            for j in 0..<i { lower.gradient.storage[i * n + j] += dLower.storage[i * n + j] }
            for j in (i + 1)..<n { upper.gradient.storage[i * n + j] += dUpper.storage[i * n + j] }
            logScale.gradient.storage[i] += dUpper.storage[i * n + i] * factors.upperWithDiagonal.storage[i * n + i]
                + logDetGradientSum
        }
    }
}

/// The ``LayerBuffers`` slots of ``LULinear``.
enum LULinearSlot {
    static let output = 0, inverseOutput = 1, logDet = 2, inputGradient = 3, inverseInputGradient = 4, solve = 5
}
