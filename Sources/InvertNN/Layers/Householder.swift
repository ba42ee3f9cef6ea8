import RealModule
/// Orthogonal layer as a product of Householder reflectors: `y = W x + b`,
/// `W = H(v_1) H(v_2) ⋯ H(v_m)`, `H(v) = I - 2 v vᵀ / (vᵀv)`, `H(0) = I`.
///
/// - Shapes: `x`, `y` `[batch, features]` (batch rows: `Y = X Wᵀ + b`); parameters `reflectors`
///   `[m, features]` (row `i` is `v_i`) and, optionally, `bias` `[1, features]`.
/// - Inverse: `x = Wᵀ (y - b)`. Log-determinant: exactly 0 nats per sample in both directions.
/// - Parametrization (as in invertnn, after Tomczak & Welling 2016, "Improving variational
///   auto-encoders using Householder flow", and Mathiasen et al. 2020, "What if neural networks had
///   SVDs?"): with ``Parametrization-swift.enum/trapezoidal`` `v_i` has zeros before position `i`
///   (the `n × m` matrix `[v_1 ⋯ v_m]` is lower trapezoidal). When `m = n` the last reflector is
///   fixed, to `0` or to `e_n` (``FixedReflector``); since every nonzero reflector has determinant
///   -1, `det W = (-1)^k` for `k` nonzero reflectors, and the fixed one picks the sign: `m = n`
///   reaches every orthogonal matrix of the chosen determinant, `m < n` costs less and reaches
///   fewer. Fixed entries are marked in ``Parameter/trainableMask``, are never read (their
///   structural value is used), and get gradient exactly 0.
///   ``Parametrization-swift.enum/general`` leaves every entry of every `v_i` free.
/// - `v_i = 0` is a stationary point: `H(v)` has no limit as `v → 0`, the layer defines its
///   gradient there as 0, so a reflector that starts at zero stays there. Train from the random
///   initializer; the zero initializer gives a fixed identity (or flip).
/// - Cost per call (all BLAS-3, see ``Strategy-swift.enum``): either W is materialized from
///   compact WY blocks (`4/3 n³` for `m = n`, cached until the reflector values change, so
///   inference is one GEMM, `2 B n²` flops) and backward is two more batch GEMMs plus a blocked
///   `4/3 n³` push to the reflectors; or the blocks of `nb` reflectors are applied to the batch
///   directly (`≈ 4 B Σ c p`, `2 B n²` for a full trapezoidal set) and backward rebuilds each
///   block's input from its output (three GEMMs over `[2B, p]` per block). The automatic rule
///   picks the cheaper from a flop model per call.
public final class Householder<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// The sign of `det W`.
    public enum Determinant: String, Sendable, Equatable {
        /// `det W = +1` (a rotation).
        case positive
        /// `det W = -1` (a rotation followed by a reflection).
        case negative
    }

    /// The value of the fixed last reflector of a trapezoidal layer with `m = n`.
    public enum FixedReflector: String, Sendable, Equatable {
        /// `v_n = 0`: `H(v_n) = I`.
        case zero
        /// `v_n = e_n`: `H(v_n)` flips the sign of the last coordinate.
        case flip
    }

    /// Which entries of the reflector vectors are learnable.
    public enum Parametrization: String, Sendable, Equatable {
        /// `v_i[j] = 0` for `j < i`; with `m = n` the last reflector is fixed (``FixedReflector``).
        case trapezoidal
        /// Every entry of every `v_i` is free (no unique representation; useful for reflectors
        /// given from outside).
        case general
    }

    /// `n`, the size of `x`, `y` and every reflector vector.
    public let features: Int
    /// `m`, the number of reflectors.
    public let reflectorCount: Int
    /// Trapezoidal (zeros above position i in v_i) or general reflectors.
    public let parametrization: Parametrization
    /// The fixed last reflector (trapezoidal, `m = n`), else `nil`.
    public let fixedLastReflector: FixedReflector?
    /// `[v_1; …; v_m]`, `[m, features]`.
    public let reflectors: Parameter<T>
    /// `b`, `[1, features]`, or `nil` for a layer without bias.
    public let bias: Parameter<T>?

    /// The layer with every learnable reflector entry zero: `W = I`, or the flip of the last
    /// coordinate (`W = diag(1, …, 1, -1)`) for `determinant: .negative`.
    ///
    /// - Parameters:
    ///   - features: `n`, the width of the data, ≥ 1.
    ///   - reflectors: `m` in `1...features`; default `features`.
    ///   - determinant: only for a trapezoidal layer with `m = features` (default `.positive`
    ///     there); must be `nil` otherwise, where no reflector is fixed.
    ///   - parametrization: ``Parametrization-swift.enum/trapezoidal`` (default) or
    ///     ``Parametrization-swift.enum/general``.
    ///   - hasBias: whether the layer has a learnable bias `b` (default true).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`, `m` is
    ///   outside `1...features`, or `determinant` is given where no reflector is fixed.
    public convenience init(
        features: Int, reflectors: Int? = nil, determinant: Determinant? = nil,
        parametrization: Parametrization = .trapezoidal, hasBias: Bool = true
    ) throws {
        let m = reflectors ?? features
        let fixes = parametrization == .trapezoidal && m == features
        try self.init(
            features: features, reflectors: reflectors, determinant: determinant ?? (fixes ? .positive : nil),
            parametrization: parametrization, values: nil, bias: nil, hasBias: hasBias, reflectorsName: "reflectors")
    }

    /// A layer whose learnable reflector entries are independent N(0, `standardDeviation`²) draws
    /// from `generator`, with zero bias. With `m = n` (trapezoidal) the fixed last reflector is
    /// chosen so that `det W` has the requested sign (default `.positive`).
    ///
    /// - Throws: as ``init(features:reflectors:determinant:parametrization:hasBias:)``, and
    ///   ``InvertNNError/invalidArgument(operation:reason:)`` for a non-positive or non-finite
    ///   `standardDeviation`.
    public convenience init(
        features: Int, reflectors: Int? = nil, determinant: Determinant? = nil,
        parametrization: Parametrization = .trapezoidal, hasBias: Bool = true, standardDeviation: T = 1,
        using generator: inout some RandomNumberGenerator
    ) throws {
        guard standardDeviation > 0, standardDeviation.isFinite else {
            throw InvertNNError.invalidArgument(
                operation: "Householder", reason: "standardDeviation must be positive and finite, got \(standardDeviation)")
        }
        let m = reflectors ?? features
        let fixes = parametrization == .trapezoidal && m == features
        // Checked before the reflector matrix is allocated (the designated initializer repeats it).
        try SizeLimits.features(features, operation: "Householder")
        guard m >= 1, m <= features else {
            throw InvertNNError.invalidArgument(operation: "Householder", reason: "reflectors must be in 1...\(features), got \(m)")
        }
        _ = try SizeLimits.product([features, features], operation: "Householder", what: "features × features")
        var values = Matrix<T>(rows: m, columns: features)
        for i in 0..<values.rows {
            let isFixed = fixes && i == m - 1
            let start = parametrization == .trapezoidal ? i : 0
            for j in start..<values.columns where !isFixed {
                values[i, j] = standardDeviation * generator.nextNormal(T.self)
            }
        }
        try self.init(
            features: features, reflectors: reflectors, determinant: determinant ?? (fixes ? .positive : nil),
            parametrization: parametrization, values: values, bias: nil, hasBias: hasBias, reflectorsName: "reflectors")
    }

    /// A layer from explicit reflector vectors `values` `[m, features]` (row `i` is `v_i`).
    ///
    /// For a trapezoidal layer the entries before position `i` of row `i` must be zero. With
    /// `m = features` the last row is the fixed reflector: zero, or nonzero only at its last entry
    /// (stored as exactly `e_n`). Given a `determinant`, a zero last row is set to whichever of
    /// `0`, `e_n` gives `det W` that sign; without one, the last row is taken as it is.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an empty matrix, `m`
    ///   outside `1...features`, a nonzero entry outside the trapezoid, a `determinant` that
    ///   contradicts the given last row or is given where no reflector is fixed, or a bias of the
    ///   wrong length; ``InvertNNError/nonFinite(operation:row:column:)`` for NaN or infinite values.
    public convenience init(
        reflectors values: Matrix<T>, determinant: Determinant? = nil,
        parametrization: Parametrization = .trapezoidal, bias: [T]? = nil, hasBias: Bool = true
    ) throws {
        try self.init(
            features: values.columns, reflectors: values.rows, determinant: determinant,
            parametrization: parametrization, values: values, bias: bias, hasBias: hasBias,
            reflectorsName: "reflectors")
    }

    /// The designated initializer; `reflectorsName` lets a container give the parameter a
    /// unique name (``InvertibleLinear`` uses `"U.reflectors"` and `"V.reflectors"`).
    /// Specialized: its O(m·n) validation loops run from unspecialized generic callers.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    init(
        features: Int, reflectors requested: Int?, determinant: Determinant?, parametrization: Parametrization,
        values: Matrix<T>?, bias: [T]?, hasBias: Bool, reflectorsName: String
    ) throws {
        let operation = "Householder"
        try SizeLimits.features(features, operation: operation)
        let m = requested ?? features
        guard m >= 1, m <= features else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "reflectors must be in 1...\(features), got \(m)")
        }
        // W and the reflectors are materialized as n × n and m × n matrices.
        _ = try SizeLimits.product([features, features], operation: operation, what: "features × features")
        let fixesLast = parametrization == .trapezoidal && m == features
        if !fixesLast && determinant != nil {
            throw InvertNNError.invalidArgument(
                operation: operation,
                reason: "the determinant can only be chosen by a trapezoidal layer with reflectors == features (\(features)), got \(m) \(parametrization.rawValue) reflectors")
        }
        if let values { try values.requireFinite("\(operation) reflectors") }
        if let bias {
            guard bias.count == features else {
                throw InvertNNError.invalidArgument(
                    operation: operation, reason: "bias must have \(features) entries, got \(bias.count)")
            }
            if let bad = bias.firstIndex(where: { !$0.isFinite }) {
                throw InvertNNError.nonFinite(operation: "\(operation) bias", row: 0, column: bad)
            }
        }
        var value = values ?? Matrix<T>(rows: m, columns: features)
        var mask: [Bool]? = nil
        var fixed: FixedReflector? = nil
        if parametrization == .trapezoidal {
            for i in 0..<m {
                for j in 0..<i where value[i, j] != 0 {
                    throw InvertNNError.invalidArgument(
                        operation: operation,
                        reason: "trapezoidal reflector \(i) must be zero before position \(i), got \(value[i, j]) at \(j)")
                }
            }
            var flags = [Bool](repeating: false, count: m * features)
            for i in 0..<m {
                for j in i..<features { flags[i * features + j] = !(fixesLast && i == m - 1) }
            }
            mask = flags
            if fixesLast {
                let givenFlip = value[m - 1, m - 1] != 0
                var flip = givenFlip
                if let determinant {
                    // Each nonzero reflector contributes a factor -1 to det W.
                    var nonzero = 0
                    for i in 0..<(m - 1) where (0..<features).contains(where: { value[i, $0] != 0 }) { nonzero += 1 }
                    flip = (nonzero % 2 == 1) != (determinant == .negative)
                    if givenFlip && !flip {
                        throw InvertNNError.invalidArgument(
                            operation: operation,
                            reason: "the given last reflector e_n makes det W = \(nonzero % 2 == 1 ? "+1" : "-1"), but \(determinant.rawValue) was requested")
                    }
                }
                value[m - 1, m - 1] = flip ? 1 : 0
                fixed = flip ? .flip : .zero
            }
        }
        self.features = features
        self.reflectorCount = m
        self.parametrization = parametrization
        self.fixedLastReflector = fixed
        let reflectorParameter = Parameter(name: reflectorsName, value: value, trainableMask: mask)
        let biasParameter = (hasBias || bias != nil)
            ? Parameter(name: "bias", value: Matrix(row: bias ?? [T](repeating: 0, count: features))) : nil
        self.reflectors = reflectorParameter
        self.bias = biasParameter
        self.parameters = biasParameter.map { [reflectorParameter, $0] } ?? [reflectorParameter]
    }

    public var name: String { "Householder(\(features), m: \(reflectorCount))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public let parameters: [Parameter<T>]
    /// The hyper-parameters: the feature and reflector counts, the parametrization, the fixed
    /// last reflector (`"zero"` for det +1, `"flip"` for det -1, or none) and whether there is a bias.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// `m`, the number of reflectors.
        public var reflectors: Int
        /// `"trapezoidal"` or `"general"`.
        public var parametrization: String
        /// `"zero"`, `"flip"` or `nil` (no fixed reflector).
        public var fixedLastReflector: String?
        /// Whether the layer has a bias.
        public var bias: Bool
    }
    public static var typeName: String { "Householder" }
    public var configuration: Configuration {
        Configuration(
            features: features, reflectors: reflectorCount, parametrization: parametrization.rawValue,
            fixedLastReflector: fixedLastReflector?.rawValue, bias: bias != nil)
    }
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an unknown
    ///   parametrization or fixed reflector, or sizes the initializer rejects.
    public convenience init(configuration c: Configuration) throws {
        try self.init(
            features: c.features, reflectors: c.reflectors, determinant: try Self.determinant(fixedLastReflector: c.fixedLastReflector),
            parametrization: try Self.parametrization(named: c.parametrization), hasBias: c.bias)
    }

    /// The determinant a stored fixed last reflector gives placeholder reflectors (which are zero,
    /// so the fixed reflector alone sets det W).
    static func determinant(fixedLastReflector name: String?) throws -> Determinant? {
        switch name {
        case nil: return nil
        case "zero"?: return .positive
        case "flip"?: return .negative
        case let other?:
            throw InvertNNError.invalidArgument(operation: "Householder", reason: "fixedLastReflector must be zero, flip or null, got \(other)")
        }
    }

    static func parametrization(named name: String) throws -> Parametrization {
        guard let p = Parametrization(rawValue: name) else {
            throw InvertNNError.invalidArgument(operation: "Householder", reason: "unknown parametrization \(name)")
        }
        return p
    }

    /// The sign of `det W` for the current parameters: `(-1)^k` for `k` nonzero reflectors (fixed
    /// entries at their structural values). Training keeps it unless a reflector passes exactly
    /// through zero.
    ///
    /// - Throws: as ``matrix()``.
    public func determinantSign() throws -> Determinant {
        let vectors = try structuralVectors(workspace: unpooled)
        var nonzero = 0
        for i in 0..<reflectorCount where vectors[(i * features)..<((i + 1) * features)].contains(where: { $0 != 0 }) {
            nonzero += 1
        }
        return nonzero % 2 == 0 ? .positive : .negative
    }

    /// The orthogonal matrix `W = H(v_1) ⋯ H(v_m)` (`features × features`, without the bias),
    /// built from the current parameter values.
    ///
    /// - Throws: ``InvertNNError/nonFinite(operation:row:column:)`` if the parameter holds NaN or
    ///   infinite values.
    public func matrix() throws -> Matrix<T> {
        var plan = try currentPlan(workspace: unpooled)
        return try currentMatrix(&plan, workspace: unpooled)
    }

    // MARK: - Execution settings and cache

    /// How products are evaluated (default ``Strategy-swift.enum/automatic``). Results agree to
    /// rounding whichever is chosen.
    public var strategy: Strategy = .automatic
    /// `nb`, reflectors per compact WY block: any value ≥ 1 is valid and a last partial block is
    /// normal; `nil` (the default) picks ``defaultBlockSize(features:)``.
    public var blockSize: Int?

    /// The block size used when ``blockSize`` is `nil`: 16 for `n < 128`, 24 for `n < 512`, else
    /// 32. Each block wastes about `c²p` flops on the zero triangle of its trapezoidal window
    /// and adds a `c × c` GEMM per batch, so the waste grows like `nb/n`; smaller blocks won on
    /// the benchmark machine at every measured n (Benchmarks/PERFORMANCE.md), down to the size
    /// where the thin GEMMs stop running at speed.
    public static func defaultBlockSize(features n: Int) -> Int {
        n < 128 ? 16 : n < 512 ? 24 : 32
    }

    /// ``blockSize``, or its default for this layer's feature count.
    var effectiveBlockSize: Int { max(1, blockSize ?? Self.defaultBlockSize(features: features)) }
    /// The factor by which the automatic rule discounts the blocked path's flops against the
    /// materialized one's (thin GEMMs with inner size `nb` run below the square GEMM's rate).
    /// Measured on the benchmark machine (OpenBLAS Prescott kernels); see Benchmarks/PERFORMANCE.md.
    public var blockedPenalty: Double = 1.25

    /// The plan of the current reflector values (unit vectors, norms, block factors, W once
    /// built), rebuilt whenever ``reflectors`` changes value.
    var cachedPlan: Plan?
    /// The previous plan's W, kept for ``currentMatrix(_:)`` to overwrite.
    var recycledMatrix: Matrix<T>?
    /// The block outputs kept by a retaining call for the next blocked backward
    /// (``RetainingLayer``; see `Householder+Retaining.swift`).
    var retainedBlocks: RetainedBlocks?

    // MARK: - Directions

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        let workspace = context.buffers(for: self)
        var plan = try currentPlan(workspace: workspace)
        var y: Matrix<T>
        if prefersMaterialized(plan, batch: x.rows, backward: false) {
            let w = try currentMatrix(&plan, workspace: workspace)
            y = broadcastBias(rows: x.rows, sign: 1, workspace: workspace)
            try BLAS.gemm(x, w, transposeB: true, beta: 1, into: &y)
        } else {
            y = workspace.copy(HouseholderSlot.output, of: x)
            let rows = x.rows, n = features
            y.storage.withUnsafeMutableBufferPointer { py in
                Self.applyBlocks(plan, to: py.baseAddress!, rows: rows, n: n, transposed: true, scratch: workspace)
            }
            addBias(to: &y, sign: 1)
        }
        return output(y, rows: x.rows, workspace: workspace)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(features, "\(name).inverse")
        let workspace = context.buffers(for: self)
        var plan = try currentPlan(workspace: workspace)
        var x: Matrix<T>
        if prefersMaterialized(plan, batch: y.rows, backward: false) {
            let w = try currentMatrix(&plan, workspace: workspace)
            let z = centered(y, workspace: workspace)
            x = workspace.matrix(HouseholderSlot.inverseOutput, rows: y.rows, columns: features)
            try BLAS.gemm(z, w, into: &x)
        } else {
            x = workspace.copy(HouseholderSlot.inverseOutput, of: y)
            addBias(to: &x, sign: -1)
            let rows = y.rows, n = features
            x.storage.withUnsafeMutableBufferPointer { px in
                Self.applyBlocks(plan, to: px.baseAddress!, rows: rows, n: n, transposed: false, scratch: workspace)
            }
        }
        return output(x, rows: y.rows, forward: false, workspace: workspace)
    }

    /// Keeps `y` (fully written) in its direction's slot for the next call (one per direction:
    /// rebuilding mode maps an inverse result forward again while it is still in use) and
    /// returns it with zero log-dets, both in `workspace`.
    @inline(__always)
    func output(_ y: Matrix<T>, rows: Int, forward: Bool = true, workspace: LayerBuffers<T>) -> LayerOutput<T> {
        workspace.keep(forward ? HouseholderSlot.output : HouseholderSlot.inverseOutput, y)
        let zeros = workspace.filled(HouseholderSlot.logDet, count: rows, with: 0)
        workspace.keep(HouseholderSlot.logDet, zeros)
        return LayerOutput(output: y, logAbsDet: zeros)
    }

    // MARK: - Backward

    /// VJP of ``forward(_:)``: `dX = dY W`, `dL/db = Σ_rows dY`, `dL/dW = dYᵀ X` pushed to the
    /// reflectors. The log-det is constant, so `logAbsDetGradient` contributes nothing.
    ///
    /// `output` must be `forward(input).output` (the protocol's contract): both paths use it.
    /// Materialized, `K = (dL/dW) Wᵀ = dYᵀ (Y - b)` is one GEMM and is pushed to the reflectors
    /// blocked; blocked, the block inputs are rebuilt from the output (see
    /// the internal `backwardBlocks(_:z:rows:n:transposed:gradUnits:)`).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input x: Matrix<T>, output y: Matrix<T>, outputGradient dy: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: x, inFeatures: features, output: y, outFeatures: features,
                             outputGradient: dy, logAbsDetGradient: dld)
        let dx = try directionBackward(
            output: y, subtractBias: true, outputGradient: dy, forward: true, workspace: context.buffers(for: self))
        accumulateBiasGradient(dy, sign: 1)
        return dx
    }

    /// VJP of ``inverse(_:)``: with `z = y - b` and `x = Wᵀ z` (rows: `X = Z W`),
    /// `dY = dX Wᵀ`, `dL/db = -Σ_rows dY`, `dL/dW = Zᵀ dX` pushed to the reflectors
    /// (materialized: `K = (dL/dW) Wᵀ = Zᵀ dY`, one GEMM).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input y: Matrix<T>, output x: Matrix<T>, outputGradient dx: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: y, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: dx, logAbsDetGradient: dld)
        let dy = try directionBackward(
            output: x, subtractBias: false, outputGradient: dx, forward: false, mapInput: y, workspace: context.buffers(for: self))
        accumulateBiasGradient(dy, sign: -1)
        return dy
    }

    // MARK: - Internals

    /// The backward of the bias-free map `out = in Wᵀ` (forward) or `out = in W` (inverse), given
    /// its output (`output - b` when `subtractBias`) and output gradient: returns the input
    /// gradient and accumulates reflector gradients. `centeredInput` gives the map's input where
    /// the materialized inverse needs it. Buffers are borrowed from `workspace`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func directionBackward(
        output: Matrix<T>, subtractBias: Bool, outputGradient dOut: Matrix<T>, forward: Bool,
        mapInput: Matrix<T>? = nil, workspace: LayerBuffers<T>
    ) throws -> Matrix<T> {
        defer { retainedBlocks = nil }  // kept block outputs serve one backward call at most
        var plan = try currentPlan(workspace: workspace)
        let n = features, b = output.rows
        var gradUnits = workspace.filled(HouseholderSlot.gradUnits, count: reflectorCount * n, with: 0)
        defer { workspace.keep(HouseholderSlot.gradUnits, gradUnits) }
        var dIn = workspace.matrix(HouseholderSlot.inputGradient, rows: b, columns: n)
        if prefersMaterialized(plan, batch: b, backward: true) {
            let w = try currentMatrix(&plan, workspace: workspace)
            // forward: dX = dY W, K = dYᵀ Y0; inverse: dZ = dX Wᵀ, K = Zᵀ dZ.
            try BLAS.gemm(dOut, w, transposeB: !forward, into: &dIn)
            var k = workspace.matrix(HouseholderSlot.weightGradient, rows: n, columns: n)
            defer { workspace.keep(HouseholderSlot.weightGradient, k) }
            if forward {
                try BLAS.gemm(dOut, transposeA: true, subtractBias ? centered(output, workspace: workspace) : output, into: &k)
            } else {
                let z = mapInput.map { centered($0, workspace: workspace) } ?? output
                try BLAS.gemm(z, transposeA: true, dIn, into: &k)
            }
            try pushWeightGradient(k: &k, plan: plan, gradUnits: &gradUnits, workspace: workspace)
        } else {
            // Z = [dOut; output - b], written once; the first half ends as the input gradient.
            var z = workspace.take(HouseholderSlot.stacked, count: 2 * b * n)
            defer { workspace.keep(HouseholderSlot.stacked, z) }
            z.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress!
                dOut.storage.withUnsafeBufferPointer { pd in base.update(from: pd.baseAddress!, count: b * n) }
                output.storage.withUnsafeBufferPointer { po in (base + b * n).update(from: po.baseAddress!, count: b * n) }
            }
            if subtractBias, let bias {
                bias.value.storage.withUnsafeBufferPointer { pb in
                    z.withUnsafeMutableBufferPointer { pz in
                        for r in 0..<b {
                            let o = (b + r) * n
                            for j in 0..<n { pz[o + j] -= pb[j] }
                        }
                    }
                }
            }
            let kept = keptBlockOutputs(plan: plan, forward: forward, output: output, rows: b)
            z.withUnsafeMutableBufferPointer { pz in
                gradUnits.withUnsafeMutableBufferPointer { pg in
                    if let kept {
                        kept.withUnsafeBufferPointer { ps in
                            Self.backwardBlocks(plan, z: pz.baseAddress!, rows: b, n: n, transposed: forward,
                                                gradUnits: pg.baseAddress!, saved: ps.baseAddress, scratch: workspace)
                        }
                    } else {
                        Self.backwardBlocks(plan, z: pz.baseAddress!, rows: b, n: n, transposed: forward, gradUnits: pg.baseAddress!,
                                            scratch: workspace)
                    }
                }
            }
            // The input gradient is Z's first half (one copy: the stacked buffer keeps its size
            // for the next call).
            z.withUnsafeBufferPointer { pz in
                dIn.storage.withUnsafeMutableBufferPointer { pd in pd.baseAddress!.update(from: pz.baseAddress!, count: b * n) }
            }
        }
        try accumulateUnitGradients(gradUnits, plan: plan)
        workspace.keep(HouseholderSlot.inputGradient, dIn)
        return dIn
    }

    /// Pushes `K = (dL/dW) Wᵀ` (`[n, n]`, destroyed) to the unit-vector gradients through
    /// `S = K - Kᵀ` (see ``accumulateReflectorGradient(antisymmetric:plan:workspace:)``), with
    /// `S` and the push's scratch borrowed from `workspace`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func pushWeightGradient(k: inout Matrix<T>, plan: Plan, gradUnits: inout [T], workspace: LayerBuffers<T>) throws {
        let n = features
        var s = workspace.matrix(HouseholderSlot.antisymmetric, rows: n, columns: n)
        defer { workspace.keep(HouseholderSlot.antisymmetric, s) }
        k.storage.withUnsafeBufferPointer { pk in
            s.storage.withUnsafeMutableBufferPointer { ps in
                // S is antisymmetric: one triangle computed, the other mirrored (half the reads).
                for r in 0..<n {
                    ps[r * n + r] = 0
                    for c in 0..<r {
                        let v = pk[r * n + c] - pk[c * n + r]
                        ps[r * n + c] = v
                        ps[c * n + r] = -v
                    }
                }
            }
        }
        let last = lastLearnableBlock(plan)
        s.storage.withUnsafeMutableBufferPointer { ps in
            gradUnits.withUnsafeMutableBufferPointer { pg in
                Self.pushAntisymmetric(plan, s: ps.baseAddress!, n: n, lastBlock: last, gradUnits: pg.baseAddress!,
                                       scratch: workspace)
            }
        }
    }

    /// The index of the last block holding a reflector with a learnable entry and a nonzero norm
    /// (the push can stop after it), or -1.
    func lastLearnableBlock(_ plan: Plan) -> Int {
        let n = features, mask = reflectors.trainableMask
        // From the last block back: the first hit is the answer (usually the last block).
        for k in stride(from: plan.blocks.count - 1, through: 0, by: -1) {
            let block = plan.blocks[k]
            for i in block.start..<(block.start + block.count) where plan.norms[i] > 0 && plan.norms[i].isFinite {
                if let mask, !(i..<n).contains(where: { mask[i * n + $0] }) { continue }
                return k
            }
        }
        return -1
    }

    /// Chain rule through `û = v/‖v‖`: `dL/dv = (I - ûûᵀ) dL/dû / ‖v‖`, added at learnable
    /// entries only; `v = 0` (where H is not differentiable) gets 0.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func accumulateUnitGradients(_ gradUnits: [T], plan: Plan) throws {
        let n = features, m = reflectorCount
        guard reflectors.gradient.rows == m, reflectors.gradient.columns == n else {
            throw InvertNNError.shapeMismatch(
                operation: "\(name) reflectors.gradient", expected: "[\(m), \(n)]",
                actual: "[\(reflectors.gradient.rows), \(reflectors.gradient.columns)]")
        }
        // A missing mask reads as all-learnable; a mask's flags select per entry (a select, not a
        // branch, so the row loop vectorizes).
        let mask = reflectors.trainableMask ?? []
        let masked = mask.count == m * n
        gradUnits.withUnsafeBufferPointer { pg in
            plan.units.withUnsafeBufferPointer { pu in
                mask.withUnsafeBufferPointer { pm in
                    reflectors.gradient.storage.withUnsafeMutableBufferPointer { out in
                        for i in 0..<m where plan.norms[i] > 0 && plan.norms[i].isFinite {
                            let o = i * n
                            // Four partial sums, as in normalizeReflector: strict FP order would
                            // otherwise serialize the dot product at one add latency per entry.
                            var d0: T = 0, d1: T = 0, d2: T = 0, d3: T = 0
                            var j = 0
                            while j + 4 <= n {
                                d0 += pu[o + j] * pg[o + j]; d1 += pu[o + j + 1] * pg[o + j + 1]
                                d2 += pu[o + j + 2] * pg[o + j + 2]; d3 += pu[o + j + 3] * pg[o + j + 3]
                                j += 4
                            }
                            while j < n { d0 += pu[o + j] * pg[o + j]; j += 1 }
                            let dot = (d0 + d1) + (d2 + d3)
                            let inverseNorm = 1 / plan.norms[i]
                            if masked {
                                for j in 0..<n {
                                    let d = (pg[o + j] - pu[o + j] * dot) * inverseNorm
                                    out[o + j] += pm[o + j] ? d : 0
                                }
                            } else {
                                for j in 0..<n { out[o + j] += (pg[o + j] - pu[o + j] * dot) * inverseNorm }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The flop model behind ``Strategy-swift.enum/automatic``: materialized costs `2Bn²` per
    /// product (forward) or `4Bn² + Σ 4cp²` (backward: `dX`, `K`, the push) plus `Σ 4cp²` to build
    /// W; blocked costs `Σ 4Bcp` (forward) or `Σ 12Bcp` (backward), weighted by
    /// ``blockedPenalty``. The build is counted even when W is cached: the two paths round
    /// differently in the last bits, so the choice must depend on the batch and the reflectors
    /// alone, never on earlier calls.
    func prefersMaterialized(_ plan: Plan, batch: Int, backward: Bool) -> Bool {
        switch strategy {
        case .materialized: return true
        case .blocked: return false
        case .automatic: break
        }
        let b = Double(batch), n = Double(features)
        let build = 4 * plan.sumCPP
        if backward {
            return 4 * b * n * n + 4 * plan.sumCPP + build <= blockedPenalty * 12 * b * plan.sumCP
        }
        return 2 * b * n * n + build <= blockedPenalty * 4 * b * plan.sumCP
    }

    /// The plan of the current reflector values: the cached one if ``reflectors`` still holds the
    /// values it was built from (an O(1) check when the storage was not written since), else a
    /// new one (validating shape and finiteness; the masked reflectors' temporary copy is
    /// borrowed from `workspace`).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func currentPlan(workspace: LayerBuffers<T>) throws -> Plan {
        let value = reflectors.value
        if let plan = cachedPlan, plan.blockSize == effectiveBlockSize, plan.keyRows == value.rows,
           plan.keyColumns == value.columns, plan.key == reflectors.version {
            return plan
        }
        // The old plan's storage (units, norms, block factors, W) is reused for the new values
        // (written in place unless something else still holds it): a training step rebuilds the
        // plan without allocating.
        var old = cachedPlan
        cachedPlan = nil
        var units = [T](), norms = [T]()
        if old != nil {
            swap(&units, &old!.units)
            swap(&norms, &old!.norms)
        }
        if parametrization == .trapezoidal && reflectors.trainableMask != nil {
            try normalizeTrapezoidalRows(units: &units, norms: &norms)
        } else {
            let vectors = try structuralVectors(workspace: workspace)
            Self.normalizeRows(vectors, m: reflectorCount, n: features, units: &units, norms: &norms)
            // (Unmasked reflectors are the parameter's own storage: keeping that would make the
            // optimizer's next in-place update copy it.)
            if reflectors.trainableMask != nil { workspace.keep(HouseholderSlot.vectors, vectors) }
        }
        let oldW = old?.w
        old?.w = nil
        var plan = Self.makePlan(
            key: reflectors.version, keyRows: value.rows, keyColumns: value.columns, units: units, norms: norms,
            m: reflectorCount, n: features, blockSize: effectiveBlockSize, trapezoidal: parametrization == .trapezoidal,
            reusing: &old)
        plan.w = nil
        recycledMatrix = oldW
        cachedPlan = plan
        return plan
    }

    /// W for `plan`, built once (with scratch borrowed from `workspace`) and kept in the cache
    /// with the plan.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func currentMatrix(_ plan: inout Plan, workspace: LayerBuffers<T>) throws -> Matrix<T> {
        if let w = plan.w { return w }
        let w = Self.materialize(plan, n: features, into: &recycledMatrix, scratch: workspace)
        plan.w = w
        if let cached = cachedPlan, cached.key == plan.key { cachedPlan = plan }
        return w
    }

    /// Adds `sign · b` to every row of `m` (nothing without bias).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func addBias(to m: inout Matrix<T>, sign: T) {
        guard let bias else { return }
        m.addToEveryRow(bias.value.storage, scaledBy: sign)
    }

    /// ``structuralVectors()`` and ``normalizeRows(_:m:n:units:norms:)`` in one pass for the
    /// trapezoidal parametrization: row i is normalized on its learnable columns `i..<n` only
    /// (the structural zeros before them are written, not read), the fixed last row is 0 or
    /// `e_n`. Half the reads and no intermediate copy: this runs on every training step.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func normalizeTrapezoidalRows(units: inout [T], norms: inout [T]) throws {
        let value = reflectors.value, m = reflectorCount, n = features
        guard value.rows == m, value.columns == n else {
            throw InvertNNError.shapeMismatch(
                operation: "\(name) reflectors", expected: "[\(m), \(n)]", actual: "[\(value.rows), \(value.columns)]")
        }
        try value.requireFinite("\(name) reflectors")
        units.prepareForOverwrite(count: m * n)  // every row and every norm is written below
        norms.prepareForOverwrite(count: m)
        let fixed = fixedLastReflector
        value.storage.withUnsafeBufferPointer { pv in
            units.withUnsafeMutableBufferPointer { pu in
                norms.withUnsafeMutableBufferPointer { pn in
                    for i in 0..<m {
                        let first = fixed != nil && i == m - 1 ? n : i
                        let row = pu.baseAddress! + i * n
                        row.update(repeating: 0, count: first)
                        pn[i] = first < n ? Self.normalizeReflector(pv.baseAddress! + i * n + first, n - first, into: row + first) : 0
                    }
                    if fixed == .flip {  // the last row is e_n (m = n)
                        pu[n * n - 1] = 1
                        pn[m - 1] = 1
                    }
                }
            }
        }
    }

    /// The reflector vectors as the layer defines them: stored values at learnable entries and
    /// the structural value (0, or 1 for the flip) at fixed ones, so that an optimizer that
    /// wrongly moved a fixed entry cannot change the map. A masked copy is borrowed from
    /// `workspace`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func structuralVectors(workspace: LayerBuffers<T>) throws -> [T] {
        let value = reflectors.value
        guard value.rows == reflectorCount, value.columns == features else {
            throw InvertNNError.shapeMismatch(
                operation: "\(name) reflectors", expected: "[\(reflectorCount), \(features)]",
                actual: "[\(value.rows), \(value.columns)]")
        }
        try value.requireFinite("\(name) reflectors")
        guard let mask = reflectors.trainableMask, mask.count == value.count else { return value.storage }
        var vectors = workspace.take(HouseholderSlot.vectors, count: value.count)
        // Rebuilt on every parameter change (each training step), so written as copies: the
        // trapezoidal mask is row i learnable from column i on (none of the fixed last row),
        // any other mask takes one branch-free pass.
        let count = value.count, n = features, m = reflectorCount
        let trapezoidal = parametrization == .trapezoidal
        vectors.withUnsafeMutableBufferPointer { out in
            value.storage.withUnsafeBufferPointer { v in
                if trapezoidal {
                    for i in 0..<m {
                        let row = out.baseAddress! + i * n
                        let first = fixedLastReflector != nil && i == m - 1 ? n : i
                        row.update(repeating: 0, count: first)
                        if first < n { (row + first).update(from: v.baseAddress! + i * n + first, count: n - first) }
                    }
                } else {
                    mask.withUnsafeBufferPointer { learnable in
                        for k in 0..<count { out[k] = learnable[k] ? v[k] : 0 }
                    }
                }
            }
        }
        if fixedLastReflector == .flip { vectors[features * features - 1] = 1 }
        return vectors
    }

    /// Adds `dL/dv_i` for every learnable entry, given `S = K - Kᵀ` with `K = (dL/dW) Wᵀ`
    /// (`[n, n]`, consumed).
    ///
    /// With `P_i = H_1 ⋯ H_i`, `dL/dH_i = K_i H_i` where `K_i = P_{i-1}ᵀ K P_{i-1}` (because
    /// `H_{i+1} ⋯ H_m = H_i P_{i-1}ᵀ W`). For `H = I - 2ûûᵀ` and `A = dL/dH`,
    /// `dL/dû = -2 (A + Aᵀ) û`; with `A = K_i H_i` and `H_i û = -û` this is
    /// `2 (K_i - K_iᵀ) û + 4 (ûᵀ K_i û) û`, and the chain rule through `û = v/‖v‖`,
    /// `dL/dv = (I - ûûᵀ) dL/dû / ‖v‖`, removes the last term and leaves
    /// `dL/dv_i = 2 S_i û_i / ‖v_i‖` with `S_i = K_i - K_iᵀ = P_{i-1}ᵀ S P_{i-1}`. The sweep over
    /// i runs blocked (``pushAntisymmetric(_:s:n:lastBlock:gradUnits:scratch:)``), BLAS-3, with
    /// its scratch borrowed from `workspace`. `v_i = 0` (where H is not differentiable) gets 0.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func accumulateReflectorGradient(antisymmetric s: inout Matrix<T>, plan: Plan, workspace: LayerBuffers<T>) throws {
        let n = features
        var gradUnits = workspace.filled(HouseholderSlot.gradUnits, count: reflectorCount * n, with: 0)
        defer { workspace.keep(HouseholderSlot.gradUnits, gradUnits) }
        let last = lastLearnableBlock(plan)
        s.storage.withUnsafeMutableBufferPointer { ps in
            gradUnits.withUnsafeMutableBufferPointer { pg in
                Self.pushAntisymmetric(plan, s: ps.baseAddress!, n: n, lastBlock: last, gradUnits: pg.baseAddress!,
                                       scratch: workspace)
            }
        }
        try accumulateUnitGradients(gradUnits, plan: plan)
    }

    /// A `[rows, features]` matrix whose every row is `sign · b` (zeros without bias), in the
    /// output slot of `workspace`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func broadcastBias(rows: Int, sign: T, workspace: LayerBuffers<T>) -> Matrix<T> {
        var out = workspace.matrix(HouseholderSlot.output, rows: rows, columns: features)
        guard let bias else {
            out.storage.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            return out
        }
        out.setEveryRow(to: bias.value.storage, scaledBy: sign)
        return out
    }

    /// `y - b` row by row (a copy of `y` in `workspace` without bias).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func centered(_ y: Matrix<T>, workspace: LayerBuffers<T>) -> Matrix<T> {
        workspace.centered(HouseholderSlot.centered, y, bias: bias)
    }

    /// The buffers of a call without a container's pool (every buffer a new allocation).
    var unpooled: LayerBuffers<T> { LayerBuffers(nil, owner: self) }

    /// Adds `sign · Σ_rows g` to the bias gradient.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func accumulateBiasGradient(_ g: Matrix<T>, sign: T) {
        guard let bias, bias.gradient.count == features, g.columns == features else { return }
        g.addColumnSums(scaledBy: sign, into: &bias.gradient.storage)
    }
}
