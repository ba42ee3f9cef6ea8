import RealModule
/// An invertible linear map in SVD form: `y = Q_V · diag(exp(s)) · Q_U · x + b`.
///
/// `Q_U` and `Q_V` are ``Householder`` layers without bias (products of reflectors), `exp(s)` a
/// ``Diagonal`` layer without bias, and `b` one bias; the three factors are exactly an SVD of the
/// layer's matrix (up to the order of the singular values), so the map is invertible for any
/// parameters (invertnn's SVD-composed linear layer; Zhang et al. 2018, "Stabilizing gradients for
/// deep neural networks via efficient SVD parameterization"; DESIGN.md §3).
///
/// - Shapes: `x`, `y` `[batch, features]`. Parameters, in this order: `"U.reflectors"` and
///   `"V.reflectors"` `[m, features]`, `"logScale"` `[1, features]`, `"bias"` `[1, features]`.
/// - Inverse: `x = Q_Uᵀ · diag(exp(-s)) · Q_Vᵀ · (y - b)`.
/// - Log-determinant: `Σ_j s_j` nats (forward), `-Σ_j s_j` (inverse), the same for every sample;
///   the sign of `det` is carried by the orthogonal factors.
/// - Backward chains the three sub-layers' hand-written VJPs (recomputing their intermediates from
///   the input), in both directions.
public final class InvertibleLinear<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// `n`, the size of `x` and `y`.
    public let features: Int
    /// `Q_U`, applied first (parameter `"U.reflectors"`).
    public let orthogonalU: Householder<T>
    /// `diag(exp(s))` (parameter `"logScale"`).
    public let scale: Diagonal<T>
    /// `Q_V`, applied last before the bias (parameter `"V.reflectors"`).
    public let orthogonalV: Householder<T>
    /// `b`, `[1, features]`, or `nil` for a layer without bias.
    public let bias: Parameter<T>?

    /// Batches with at least `materializeBatchRatio · features` rows use the layer's dense matrix
    /// `A = Q_V diag(e^s) Q_U` (cached until a parameter changes): one GEMM per product, and a
    /// backward of two batch GEMMs plus `O(n³)` work (see
    /// ``forwardBackward(input:output:outputGradient:logAbsDetGradient:)``). Smaller batches chain
    /// the three factors. The choice depends on the batch size and the parameters only, never on
    /// earlier calls, so a batch gets the same bits however often the layer ran before.
    /// Default 1 (the flop crossover of the two, DESIGN.md §6); `.infinity` always chains.
    public var materializeBatchRatio: Double = 1

    /// The dense matrices of one set of parameter values: `A` and, once needed, the inverse
    /// direction's `C = Q_V diag(e^{-s}) Q_U` (rows: `X = (Y - b) C`).
    struct DenseCache {
        let keys: ParameterVersions
        var forwardMatrix: Matrix<T>
        var inverseMatrix: Matrix<T>?
    }
    var denseCache: DenseCache?
    /// A previous inverse matrix whose storage the next one may reuse.
    var recycledInverse: Matrix<T>?

    /// The identity map (zero reflectors, unit scales, zero bias).
    ///
    /// Zero reflectors are stationary points of the Householder parametrization (see
    /// ``Householder``): trained from here only the scales and the bias move. Use the random
    /// initializer (or one from a matrix) to train the orthogonal factors.
    ///
    /// - Parameters:
    ///   - features: `n`, the width of the data, ≥ 1.
    ///   - reflectors: `m` in `1...features` for each orthogonal factor; default `features`.
    ///   - parametrization: the reflectors' parametrization in both orthogonal factors.
    ///   - hasBias: whether the layer has a learnable bias (default true).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or `m` is
    ///   outside `1...features`.
    public convenience init(
        features: Int, reflectors: Int? = nil,
        parametrization: Householder<T>.Parametrization = .trapezoidal, hasBias: Bool = true
    ) throws {
        let u = try Householder<T>(features: features, reflectors: reflectors, parametrization: parametrization, hasBias: false)
        let v = try Householder<T>(features: features, reflectors: reflectors, parametrization: parametrization, hasBias: false)
        try self.init(u: u, logScale: [T](repeating: 0, count: features), v: v, hasBias: hasBias)
    }

    /// Random orthogonal factors (Gaussian reflector entries, see
    /// ``Householder/init(features:reflectors:determinant:parametrization:hasBias:standardDeviation:using:)``),
    /// unit scales and zero bias. `determinant` (trapezoidal with `m = features` only; default
    /// `.positive` there) is the sign of the layer's determinant: `Q_U` gets `+1`, `Q_V` the sign.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for bad sizes or a
    ///   `determinant` where no reflector is fixed.
    public convenience init(
        features: Int, reflectors: Int? = nil, determinant: Householder<T>.Determinant? = nil,
        parametrization: Householder<T>.Parametrization = .trapezoidal, hasBias: Bool = true,
        using generator: inout some RandomNumberGenerator
    ) throws {
        let fixes = parametrization == .trapezoidal && (reflectors ?? features) == features
        let u = try Householder<T>(
            features: features, reflectors: reflectors, determinant: fixes ? .positive : nil,
            parametrization: parametrization, hasBias: false, using: &generator)
        let v = try Householder<T>(
            features: features, reflectors: reflectors, determinant: determinant,
            parametrization: parametrization, hasBias: false, using: &generator)
        try self.init(u: u, logScale: [T](repeating: 0, count: features), v: v, hasBias: hasBias)
    }

    /// The layer `Q_V · diag(exp(logScale)) · Q_U · x + bias` from explicit factors.
    ///
    /// The reflector values and structure of `u` and `v` are copied into new layers whose
    /// parameters are named `"U.reflectors"` and `"V.reflectors"`; `u` and `v` themselves are not
    /// shared.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `u` or `v` has a bias, their
    ///   feature counts differ, or `logScale` (`bias`) does not have `features` entries;
    ///   ``InvertNNError/nonFinite(operation:row:column:)`` for NaN or infinite values.
    public convenience init(u: Householder<T>, logScale: [T], v: Householder<T>, bias: [T]? = nil, hasBias: Bool = true) throws {
        try self.init(u: u, logScale: logScale, v: v, bias: bias, hasBias: hasBias, copiesFactors: true)
    }

    /// The designated initializer. With `copiesFactors: false` the layer adopts `u` and `v`
    /// as they are (they must already be named `"U.reflectors"` / `"V.reflectors"` and not be
    /// used elsewhere); initializers that build fresh factors use it to skip the copies.
    init(u: Householder<T>, logScale: [T], v: Householder<T>, bias: [T]?, hasBias: Bool, copiesFactors: Bool) throws {
        let operation = "InvertibleLinear"
        let n = u.features
        guard v.features == n else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "orthogonal factors have \(n) and \(v.features) features")
        }
        guard u.bias == nil, v.bias == nil else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "the orthogonal factors must not have a bias (the layer has one bias)")
        }
        guard logScale.count == n else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "logScale must have \(n) entries, got \(logScale.count)")
        }
        if let bias {
            guard bias.count == n else {
                throw InvertNNError.invalidArgument(operation: operation, reason: "bias must have \(n) entries, got \(bias.count)")
            }
            if let bad = bias.firstIndex(where: { !$0.isFinite }) {
                throw InvertNNError.nonFinite(operation: "\(operation) bias", row: 0, column: bad)
            }
        }
        func copy(_ h: Householder<T>, _ name: String) throws -> Householder<T> {
            if !copiesFactors && h.reflectors.name == name { return h }
            return try Householder<T>(
                features: n, reflectors: h.reflectorCount, determinant: nil, parametrization: h.parametrization,
                values: h.reflectors.value, bias: nil, hasBias: false, reflectorsName: name)
        }
        self.features = n
        self.orthogonalU = try copy(u, "U.reflectors")
        self.scale = try Diagonal<T>(features: n, logScale: logScale, hasBias: false)
        self.orthogonalV = try copy(v, "V.reflectors")
        let biasParameter = (hasBias || bias != nil)
            ? Parameter(name: "bias", value: Matrix(row: bias ?? [T](repeating: 0, count: n))) : nil
        self.bias = biasParameter
        let core = [orthogonalU.reflectors, scale.logScale, orthogonalV.reflectors]
        self.parameters = biasParameter.map { core + [$0] } ?? core
    }

    public var name: String { "InvertibleLinear(\(features), m: \(orthogonalU.reflectorCount))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public let parameters: [Parameter<T>]
    /// The hyper-parameters: the feature count, the reflector counts and fixed last reflectors of
    /// the two orthogonal factors (as ``Householder/Configuration``), their parametrization, and
    /// whether there is a bias.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// Reflectors of the left factor `U`.
        public var reflectorsU: Int
        /// Reflectors of the right factor `V`.
        public var reflectorsV: Int
        /// `"trapezoidal"` or `"general"`.
        public var parametrization: String
        /// The fixed last reflector of `U`.
        public var fixedLastReflectorU: String?
        /// The fixed last reflector of `V`.
        public var fixedLastReflectorV: String?
        /// Whether the layer has a bias.
        public var bias: Bool
    }
    public static var typeName: String { "InvertibleLinear" }
    public var configuration: Configuration {
        Configuration(
            features: features, reflectorsU: orthogonalU.reflectorCount, reflectorsV: orthogonalV.reflectorCount,
            parametrization: orthogonalU.parametrization.rawValue, fixedLastReflectorU: orthogonalU.fixedLastReflector?.rawValue,
            fixedLastReflectorV: orthogonalV.fixedLastReflector?.rawValue, bias: bias != nil)
    }
    /// - Throws: as ``Householder/init(configuration:)`` for either factor.
    public convenience init(configuration c: Configuration) throws {
        let p = try Householder<T>.parametrization(named: c.parametrization)
        let u = try Householder<T>(
            features: c.features, reflectors: c.reflectorsU,
            determinant: try Householder<T>.determinant(fixedLastReflector: c.fixedLastReflectorU), parametrization: p, hasBias: false)
        let v = try Householder<T>(
            features: c.features, reflectors: c.reflectorsV,
            determinant: try Householder<T>.determinant(fixedLastReflector: c.fixedLastReflectorV), parametrization: p, hasBias: false)
        try self.init(u: u, logScale: [T](repeating: 0, count: c.features), v: v, hasBias: c.bias)
    }

    /// The layer's matrix `Q_V · diag(exp(s)) · Q_U` (`features × features`, without the bias).
    ///
    /// - Throws: as ``Householder/matrix()``.
    public func matrix() throws -> Matrix<T> {
        var scaledU = try orthogonalU.matrix()
        let d = scale.logScale.value.storage.map { T.exp($0) }
        guard d.count == features else {
            throw InvertNNError.shapeMismatch(
                operation: "\(name) logScale", expected: "[1, \(features)]", actual: "\(scale.logScale.value.shape)")
        }
        for r in 0..<features {
            for c in 0..<features { scaledU.storage[r * features + c] *= d[r] }
        }
        return try BLAS.matmul(orthogonalV.matrix(), scaledU)
    }

    // MARK: - Directions

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        let workspace = context.buffers(for: self)
        if usesDenseMatrix(batch: x.rows) {
            let (a, _) = try denseMatrices(inverse: false, pool: context.buffers)
            var y = workspace.matrix(LinearSlot.output, rows: x.rows, columns: features)
            if let bias {
                // The bias rows first, then one GEMM with beta = 1: no second pass over Y.
                y.setEveryRow(to: bias.value.storage)
                try BLAS.gemm(x, a, transposeB: true, beta: 1, into: &y)
            } else {
                try BLAS.gemm(x, a, transposeB: true, into: &y)
            }
            let logDet = workspace.filled(LinearSlot.logDet, count: x.rows, with: try logDeterminant())
            workspace.keep(LinearSlot.output, y)
            workspace.keep(LinearSlot.logDet, logDet)
            return LayerOutput(output: y, logAbsDet: logDet)
        }
        let h1 = try orthogonalU.forward(x, context: &context).output
        let scaled = try scale.forward(h1, context: &context)
        let h3 = try orthogonalV.forward(scaled.output, context: &context).output
        guard bias != nil else { return LayerOutput(output: h3, logAbsDet: scaled.logAbsDet) }
        var y = workspace.copy(LinearSlot.output, of: h3)  // Q_V's result stays Q_V's
        addBias(to: &y, sign: 1)
        workspace.keep(LinearSlot.output, y)
        return LayerOutput(output: y, logAbsDet: scaled.logAbsDet)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(features, "\(name).inverse")
        let workspace = context.buffers(for: self)
        if usesDenseMatrix(batch: y.rows) {
            let (_, c) = try denseMatrices(inverse: true, pool: context.buffers)
            let z = centered(y, workspace: workspace)
            // Each direction has its own output buffer: rebuilding mode maps a layer's inverse
            // result forward again while that result is still in use.
            var x = workspace.matrix(LinearSlot.inverseOutput, rows: y.rows, columns: features)
            try BLAS.gemm(z, c!, into: &x)
            let logDet = workspace.filled(LinearSlot.logDet, count: y.rows, with: -(try logDeterminant()))
            workspace.keep(LinearSlot.inverseOutput, x)
            workspace.keep(LinearSlot.logDet, logDet)
            return LayerOutput(output: x, logAbsDet: logDet)
        }
        let z = centered(y, workspace: workspace)
        let h2 = try orthogonalV.inverse(z, context: &context).output
        let unscaled = try scale.inverse(h2, context: &context)
        let x = try orthogonalU.inverse(unscaled.output, context: &context).output
        return LayerOutput(output: x, logAbsDet: unscaled.logAbsDet)
    }

    // MARK: - Backward

    /// VJP of ``forward(_:)``: recomputes `h1 = Q_U x`, `h2 = diag(exp(s)) h1`, then runs the
    /// sub-layers' forward VJPs from the last to the first; `dL/db = Σ_rows dY`. The log-det
    /// gradient goes to the scale layer, the only factor with a nonzero log-det.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input x: Matrix<T>, output y: Matrix<T>, outputGradient dy: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: x, inFeatures: features, output: y, outFeatures: features,
                             outputGradient: dy, logAbsDetGradient: dld)
        if usesDenseMatrix(batch: x.rows) {
            // `mapOutput` is `y` itself: the bias is taken out of `dYᵀ (y - b)` by a rank-1 update.
            return try denseBackward(
                mapInput: nil, mapOutput: y, outputGradient: dy, logAbsDetGradient: dld, forward: true, pool: context.buffers)
        }
        let workspace = context.buffers(for: self)
        let zeros = workspace.filled(LinearSlot.zeros, count: x.rows, with: 0)
        defer { workspace.keep(LinearSlot.zeros, zeros) }
        let h1 = try orthogonalU.forward(x, context: &context).output
        let h2 = try scale.forward(h1, context: &context).output
        let h3 = centered(y, workspace: workspace)
        let dh2 = try orthogonalV.forwardBackward(input: h2, output: h3, outputGradient: dy, logAbsDetGradient: zeros, context: &context)
        let dh1 = try scale.forwardBackward(input: h1, output: h2, outputGradient: dh2, logAbsDetGradient: dld, context: &context)
        let dx = try orthogonalU.forwardBackward(input: x, output: h1, outputGradient: dh1, logAbsDetGradient: zeros, context: &context)
        accumulateBiasGradient(dy, sign: 1)
        return dx
    }

    /// VJP of ``inverse(_:)``: recomputes `z = y - b`, `h2 = Q_Vᵀ z`, `h1 = diag(exp(-s)) h2`, then
    /// runs the sub-layers' inverse VJPs from `Q_U` back to `Q_V`; `dL/db = -Σ_rows dY`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input y: Matrix<T>, output x: Matrix<T>, outputGradient dx: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: y, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: dx, logAbsDetGradient: dld)
        let workspace = context.buffers(for: self)
        if usesDenseMatrix(batch: y.rows) {
            let z = centered(y, workspace: workspace)
            return try denseBackward(
                mapInput: z, mapOutput: x, outputGradient: dx, logAbsDetGradient: dld, forward: false, pool: context.buffers)
        }
        let zeros = workspace.filled(LinearSlot.zeros, count: y.rows, with: 0)
        defer { workspace.keep(LinearSlot.zeros, zeros) }
        let z = centered(y, workspace: workspace)
        let h2 = try orthogonalV.inverse(z, context: &context).output
        let h1 = try scale.inverse(h2, context: &context).output
        let dh1 = try orthogonalU.inverseBackward(input: h1, output: x, outputGradient: dx, logAbsDetGradient: zeros, context: &context)
        let dh2 = try scale.inverseBackward(input: h2, output: h1, outputGradient: dh1, logAbsDetGradient: dld, context: &context)
        let dy = try orthogonalV.inverseBackward(input: z, output: h2, outputGradient: dh2, logAbsDetGradient: zeros, context: &context)
        accumulateBiasGradient(dy, sign: -1)
        return dy
    }

    // MARK: - Dense path

    /// The dense path multiplies by `A` or by the explicit inverse `C`, whose rounding gives a
    /// backward error of about `κ·ε` (κ = max d / min d, known exactly from the log-scales); the
    /// chained factors are backward stable for any κ. So the dense path is used only while
    /// `κ ≤ denseConditionLimit` (default 1e4: backward error ≲ 1e-12 in Double).
    public var denseConditionLimit: Double = 1e4

    /// Whether a product or a backward pass over `batch` rows takes the dense path: a batch of at
    /// least `materializeBatchRatio · features` rows does, a smaller one chains the factors. The
    /// two round differently in the last bits, so the choice depends on the batch and the
    /// parameters alone, never on earlier calls: a batch gets the same bits on every call.
    func usesDenseMatrix(batch: Int) -> Bool {
        Double(batch) >= materializeBatchRatio * Double(features) && denseIsAccurate()
    }

    /// `κ ≤ denseConditionLimit` for the current log-scales (false for empty or mis-shaped ones,
    /// which the chained path reports).
    func denseIsAccurate() -> Bool {
        let s = scale.logScale.value.storage
        guard let low = s.min(), let high = s.max() else { return false }
        return Double(high - low) <= Double.log(denseConditionLimit)
    }

    /// The versions of the three parameters the dense matrices depend on.
    var currentVersions: ParameterVersions {
        ParameterVersions(orthogonalU.reflectors.version, orthogonalV.reflectors.version, scale.logScale.version)
    }

    /// Throws unless the log-scales hold `features` entries.
    func requireLogScaleShape() throws {
        let s = scale.logScale.value
        guard s.count == features else {
            throw InvertNNError.shapeMismatch(operation: "\(name) logScale", expected: "[1, \(features)]", actual: "\(s.shape)")
        }
    }

    /// `Σ_j s_j`, after checking the shape of the log-scales.
    func logDeterminant() throws -> T {
        let s = scale.logScale.value
        guard s.count == features else {
            throw InvertNNError.shapeMismatch(operation: "\(name) logScale", expected: "[1, \(features)]", actual: "\(s.shape)")
        }
        return s.storage.reduce(0, +)
    }

    /// `A = Q_V D Q_U` and (if `inverse`) `C = Q_V D⁻¹ Q_U`, cached by the parameters'
    /// ``Parameter/version``s and rebuilt into the previous matrices' storage, with the
    /// rebuild's temporaries borrowed from `pool`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func denseMatrices(inverse: Bool, pool: StepBuffers<T>?) throws -> (Matrix<T>, Matrix<T>?) {
        let keys = currentVersions
        if var cache = denseCache, cache.keys == keys {
            if inverse && cache.inverseMatrix == nil {
                denseCache = nil  // so the new inverse can reuse a recycled buffer
                cache.inverseMatrix = try scaledProduct(sign: -1, reusing: &recycledInverse, pool: pool)
                denseCache = cache
            }
            return (cache.forwardMatrix, cache.inverseMatrix)
        }
        _ = try logDeterminant()
        // A parameter changed (every training step): rebuild into the old cache's storage.
        // Move the old matrices out of the cache so their storage is unshared and can be reused.
        var oldForward: Matrix<T>? = nil
        if var old = denseCache {
            denseCache = nil
            oldForward = old.forwardMatrix
            old.forwardMatrix = Matrix(uncheckedRows: 0, columns: 0, storage: [])
            if let inverseMatrix = old.inverseMatrix { recycledInverse = inverseMatrix }
        }
        let forwardMatrix = try scaledProduct(sign: 1, reusing: &oldForward, pool: pool)
        var cache = DenseCache(keys: keys, forwardMatrix: forwardMatrix, inverseMatrix: nil)
        if inverse {
            cache.inverseMatrix = try scaledProduct(sign: -1, reusing: &recycledInverse, pool: pool)
        }
        denseCache = cache
        return (cache.forwardMatrix, cache.inverseMatrix)
    }

    /// `Q_V diag(e^{sign·s}) Q_U` (`[n, n]`), into `recycled`'s storage (written in place unless
    /// something else still holds it), with temporaries borrowed from `pool`.
    ///
    /// `Q_V D` is `Q_V` with scaled columns; `Q_U` then multiplies it from the right as its
    /// compact WY blocks (`X ← X W`, `Σ (4ncp + 2nc²)` flops, about `2n³(1 + 2nb/n)`) rather than
    /// being built (`4/3 n³`) for one more `2n³` GEMM: nothing else on the dense path needs `Q_U`
    /// itself (the backward pushes to its reflectors through its plan). When `Q_U` is already
    /// built, one GEMM is used.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func scaledProduct(sign: T, reusing recycled: inout Matrix<T>?, pool: StepBuffers<T>?) throws -> Matrix<T> {
        let n = features
        try requireLogScaleShape()
        let workspace = LayerBuffers(pool, owner: self)
        let buffersU = LayerBuffers(pool, owner: orthogonalU), buffersV = LayerBuffers(pool, owner: orthogonalV)
        let planU = try orthogonalU.currentPlan(workspace: buffersU)
        var planV = try orthogonalV.currentPlan(workspace: buffersV)
        let wv = try orthogonalV.currentMatrix(&planV, workspace: buffersV)
        // (2n entries, the size the backward takes from this slot, so the slot keeps one buffer;
        // the first n hold e^{sign·s}.)
        var factors = workspace.take(LinearSlot.factors, count: 2 * n)
        defer { workspace.keep(LinearSlot.factors, factors) }
        scale.logScale.value.storage.withUnsafeBufferPointer { ps in
            factors.withUnsafeMutableBufferPointer { f in
                for j in 0..<n { f[j] = T.exp(sign * ps[j]) }
            }
        }
        // Q_V D into `out`.
        func scaleColumns(into out: inout Matrix<T>) {
            factors.withUnsafeBufferPointer { f in
                wv.storage.withUnsafeBufferPointer { pw in
                    out.storage.withUnsafeMutableBufferPointer { po in
                        for r in 0..<n {
                            let o = r * n
                            for c in 0..<n { po[o + c] = pw[o + c] * f[c] }
                        }
                    }
                }
            }
        }
        if let wu = planU.w {
            var scaledV = workspace.matrix(LinearSlot.scaled, rows: n, columns: n)
            scaleColumns(into: &scaledV)
            var product = Matrix.recycling(&recycled, rows: n, columns: n)
            try BLAS.gemm(scaledV, wu, into: &product)
            workspace.keep(LinearSlot.scaled, scaledV)
            return product
        }
        var product = Matrix.recycling(&recycled, rows: n, columns: n)
        scaleColumns(into: &product)
        product.storage.withUnsafeMutableBufferPointer { p in
            Householder<T>.applyBlocks(planU, to: p.baseAddress!, rows: n, n: n, transposed: false,
                                       scratch: buffersU)
        }
        return product
    }

    /// The backward of the bias-free map through the dense matrices (`out = in Aᵀ` forward,
    /// `out = in C` inverse). With `K_V = (dL/dQ_V) Q_Vᵀ`, `K_U = (dL/dQ_U) Q_Uᵀ`:
    /// forward `K_V = dYᵀ Y0` and `K_U = D (Q_Vᵀ K_V Q_V) D⁻¹`; inverse `K_V = Zᵀ dZ` and
    /// `K_U = D⁻¹ (Q_Vᵀ K_V Q_V) D`. The log-scale gradient is `± diag(K_U)` (plus `± Σ dld`), and
    /// each K goes to its factor's reflectors through the blocked push. Besides the two batch
    /// GEMMs (`dX`, `K_V`) this is `O(n³)`: two GEMMs for `Q_Vᵀ K_V Q_V` and two pushes.
    /// Forward, `mapOutput` is the layer output `Y = Y0 + 1bᵀ`; the bias is removed from `K_V` by
    /// a rank-1 update. Both directions add the bias gradient here. Buffers are borrowed from
    /// `pool`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func denseBackward(
        mapInput: Matrix<T>?, mapOutput: Matrix<T>, outputGradient g: Matrix<T>, logAbsDetGradient dld: [T], forward: Bool,
        pool: StepBuffers<T>?
    ) throws -> Matrix<T> {
        let n = features
        let (a, c) = try denseMatrices(inverse: !forward, pool: pool)
        let workspace = LayerBuffers(pool, owner: self)
        let buffersU = LayerBuffers(pool, owner: orthogonalU), buffersV = LayerBuffers(pool, owner: orthogonalV)
        var dIn = workspace.matrix(LinearSlot.inputGradient, rows: g.rows, columns: n)
        var kv = workspace.matrix(LinearSlot.kv, rows: n, columns: n)
        var ku = workspace.matrix(LinearSlot.ku, rows: n, columns: n)
        var product = workspace.matrix(LinearSlot.product, rows: n, columns: n)
        var sums = workspace.take(LinearSlot.sums, count: n)
        var factors = workspace.take(LinearSlot.factors, count: 2 * n)
        var gradV = workspace.filled(LinearSlot.gradV, count: orthogonalV.reflectorCount * n, with: 0)
        var gradU = workspace.filled(LinearSlot.gradU, count: orthogonalU.reflectorCount * n, with: 0)
        defer {
            workspace.keep(LinearSlot.inputGradient, dIn)
            workspace.keep(LinearSlot.kv, kv)
            workspace.keep(LinearSlot.ku, ku)
            workspace.keep(LinearSlot.product, product)
            workspace.keep(LinearSlot.sums, sums)
            workspace.keep(LinearSlot.factors, factors)
            workspace.keep(LinearSlot.gradV, gradV)
            workspace.keep(LinearSlot.gradU, gradU)
        }
        if forward {
            try BLAS.gemm(g, a, into: &dIn)                               // dX = dY A
            try BLAS.gemm(g, transposeA: true, mapOutput, into: &kv)      // dYᵀ Y
            if let bias {
                // dYᵀ (Y - 1bᵀ) = dYᵀ Y - (Σ_rows dY) bᵀ: no centered copy of Y, and the column
                // sums are the bias gradient as well.
                sums.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                g.addColumnSums(into: &sums)
                try BLAS.ger(alpha: -1, sums, bias.value.storage, into: &kv)
                for j in 0..<n { bias.gradient.storage[j] += sums[j] }
            }
        } else {
            try BLAS.gemm(g, c!, transposeB: true, into: &dIn)            // dZ = dX Cᵀ
            try BLAS.gemm(mapInput!, transposeA: true, dIn, into: &kv)    // Zᵀ dZ
        }
        var planV = try orthogonalV.currentPlan(workspace: buffersV)
        let wv = try orthogonalV.currentMatrix(&planV, workspace: buffersV)
        let planU = try orthogonalU.currentPlan(workspace: buffersU)
        try BLAS.gemm(wv, transposeA: true, kv, into: &product)
        try BLAS.gemm(product, wv, into: &ku)
        // K_U = D K D⁻¹ (forward) or D⁻¹ K D (inverse): row factors e^{±s_r}, column factors e^{∓s_c}.
        try requireLogScaleShape()
        scale.logScale.value.storage.withUnsafeBufferPointer { ps in
            factors.withUnsafeMutableBufferPointer { f in
                for j in 0..<n {
                    f[j] = T.exp(forward ? ps[j] : -ps[j])
                    f[n + j] = T.exp(forward ? -ps[j] : ps[j])
                }
            }
        }
        factors.withUnsafeBufferPointer { f in
            ku.storage.withUnsafeMutableBufferPointer { k in
                for r in 0..<n {
                    let rf = f[r], o = r * n
                    for col in 0..<n { k[o + col] *= rf * f[n + col] }
                }
            }
        }
        // Log-scales: ± diag(K_U) ± Σ_rows dld.
        let ldSum = dld.reduce(0, +)
        if scale.logScale.gradient.count == n {
            for j in 0..<n { scale.logScale.gradient.storage[j] += forward ? ku[j, j] + ldSum : -ku[j, j] - ldSum }
        }
        try orthogonalV.pushWeightGradient(k: &kv, plan: planV, gradUnits: &gradV, workspace: buffersV)
        try orthogonalV.accumulateUnitGradients(gradV, plan: planV)
        try orthogonalU.pushWeightGradient(k: &ku, plan: planU, gradUnits: &gradU, workspace: buffersU)
        try orthogonalU.accumulateUnitGradients(gradU, plan: planU)
        if !forward { accumulateBiasGradient(dIn, sign: -1) }
        return dIn
    }

    // MARK: - Internals

    /// Adds `sign · b` to every row of `m` (nothing without bias).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func addBias(to m: inout Matrix<T>, sign: T) {
        guard let bias else { return }
        m.addToEveryRow(bias.value.storage, scaledBy: sign)
    }

    /// `y - 1bᵀ` in a buffer of `workspace` (`y` itself without bias).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func centered(_ y: Matrix<T>, workspace: LayerBuffers<T>) -> Matrix<T> {
        workspace.centered(LinearSlot.centered, y, bias: bias)
    }

    /// Adds `sign · Σ_rows g` to the bias gradient.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func accumulateBiasGradient(_ g: Matrix<T>, sign: T) {
        guard let bias, bias.gradient.count == features, g.columns == features else { return }
        g.addColumnSums(scaledBy: sign, into: &bias.gradient.storage)
    }
}

/// The ``LayerBuffers`` slots of ``InvertibleLinear``'s dense path.
enum LinearSlot {
    static let output = 0, logDet = 1, centered = 2, scaled = 3, inputGradient = 4, kv = 5, ku = 6
    static let product = 7, sums = 8, factors = 9, gradV = 10, gradU = 11, zeros = 12
    static let inverseOutput = 13
}
