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
/// - Cost per call: `W` is materialized once through the compact WY form (`O(m n²)`, BLAS-3),
///   then the batch is one GEMM (`2 B n²` flops). Backward adds two GEMMs for the batch, one
///   `n³` GEMM and an `O(m n²)` sweep over the reflectors.
public final class Householder<T: Scalar>: InvertibleLayer {
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
    ///   - reflectors: `m` in `1...features`; default `features`.
    ///   - determinant: only for a trapezoidal layer with `m = features` (default `.positive`
    ///     there); must be `nil` otherwise, where no reflector is fixed.
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
        var values = Matrix<T>(rows: max(m, 0), columns: max(features, 0))
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
    init(
        features: Int, reflectors requested: Int?, determinant: Determinant?, parametrization: Parametrization,
        values: Matrix<T>?, bias: [T]?, hasBias: Bool, reflectorsName: String
    ) throws {
        let operation = "Householder"
        guard features >= 1 else {
            throw InvertNNError.invalidArgument(operation: operation, reason: "features must be ≥ 1, got \(features)")
        }
        let m = requested ?? features
        guard m >= 1, m <= features else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "reflectors must be in 1...\(features), got \(m)")
        }
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
        self.reflectors = Parameter(name: reflectorsName, value: value, trainableMask: mask)
        self.bias = (hasBias || bias != nil)
            ? Parameter(name: "bias", value: Matrix(row: bias ?? [T](repeating: 0, count: features))) : nil
    }

    public var name: String { "Householder(\(features), m: \(reflectorCount))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { bias.map { [reflectors, $0] } ?? [reflectors] }
    public var configuration: [String: ConfigurationValue] {
        [
            "type": .string("Householder"), "features": .int(features), "reflectors": .int(reflectorCount),
            "parametrization": .string(parametrization.rawValue),
            "fixedLastReflector": fixedLastReflector.map { .string($0.rawValue) } ?? .null,
            "bias": .bool(bias != nil),
        ]
    }

    /// The sign of `det W` for the current parameters: `(-1)^k` for `k` nonzero reflectors (fixed
    /// entries at their structural values). Training keeps it unless a reflector passes exactly
    /// through zero.
    ///
    /// - Throws: as ``matrix()``.
    public func determinantSign() throws -> Determinant {
        let vectors = try structuralVectors()
        var nonzero = 0
        for i in 0..<reflectorCount where vectors[(i * features)..<((i + 1) * features)].contains(where: { $0 != 0 }) {
            nonzero += 1
        }
        return nonzero % 2 == 0 ? .positive : .negative
    }

    /// The orthogonal matrix `W = H(v_1) ⋯ H(v_m)` (`features × features`, without the bias),
    /// built from the current parameter values.
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if the parameter was
    ///   replaced by one of another shape; ``InvertNNError/nonFinite(operation:row:column:)`` if it
    ///   holds NaN or infinite values.
    public func matrix() throws -> Matrix<T> {
        try factorization().w
    }

    // MARK: - Directions

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        let w = try factorization().w
        var y = try broadcastBias(rows: x.rows, sign: 1)
        try BLAS.gemm(x, w, transposeB: true, beta: 1, into: &y)
        return LayerOutput(output: y, logAbsDet: [T](repeating: 0, count: x.rows))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>) throws -> LayerOutput<T> {
        try y.requireColumns(features, "\(name).inverse")
        let w = try factorization().w
        let z = try centered(y)
        var x = Matrix<T>(rows: y.rows, columns: features)
        try BLAS.gemm(z, w, into: &x)
        return LayerOutput(output: x, logAbsDet: [T](repeating: 0, count: y.rows))
    }

    // MARK: - Backward

    /// VJP of ``forward(_:)``: `dX = dY W`, `dL/db = Σ_rows dY`, `dL/dW = dYᵀ X` pushed to the
    /// reflectors. The log-det is constant, so `logAbsDetGradient` contributes nothing.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input x: Matrix<T>, output y: Matrix<T>, outputGradient dy: Matrix<T>, logAbsDetGradient dld: [T]
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: x, inFeatures: features, output: y, outFeatures: features,
                             outputGradient: dy, logAbsDetGradient: dld)
        let f = try factorization()
        var dx = Matrix<T>(rows: x.rows, columns: features)
        try BLAS.gemm(dy, f.w, into: &dx)
        var weightGradient = Matrix<T>(rows: features, columns: features)
        try BLAS.gemm(dy, transposeA: true, x, into: &weightGradient)
        try accumulateReflectorGradient(weightGradient, f)
        accumulateBiasGradient(dy, sign: 1)
        return dx
    }

    /// VJP of ``inverse(_:)``: with `z = y - b` and `x = Wᵀ z` (rows: `X = Z W`),
    /// `dY = dX Wᵀ`, `dL/db = -Σ_rows dY`, `dL/dW = Zᵀ dX` pushed to the reflectors.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input y: Matrix<T>, output x: Matrix<T>, outputGradient dx: Matrix<T>, logAbsDetGradient dld: [T]
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: y, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: dx, logAbsDetGradient: dld)
        let f = try factorization()
        var dy = Matrix<T>(rows: y.rows, columns: features)
        try BLAS.gemm(dx, f.w, transposeB: true, into: &dy)
        let z = try centered(y)
        var weightGradient = Matrix<T>(rows: features, columns: features)
        try BLAS.gemm(z, transposeA: true, dx, into: &weightGradient)
        try accumulateReflectorGradient(weightGradient, f)
        accumulateBiasGradient(dy, sign: -1)
        return dy
    }

    // MARK: - Internals

    /// What one call needs: the unit reflectors `û_i` (rows, zero for `v_i = 0`), the norms
    /// `‖v_i‖`, and `W`.
    struct Factorization {
        var units: [T]
        var norms: [T]
        var w: Matrix<T>
    }

    /// The reflector vectors as the layer defines them: stored values at learnable entries and
    /// the structural value (0, or 1 for the flip) at fixed ones, so that an optimizer that
    /// wrongly moved a fixed entry cannot change the map.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func structuralVectors() throws -> [T] {
        let value = reflectors.value
        guard value.rows == reflectorCount, value.columns == features else {
            throw InvertNNError.shapeMismatch(
                operation: "\(name) reflectors", expected: "[\(reflectorCount), \(features)]",
                actual: "[\(value.rows), \(value.columns)]")
        }
        try value.requireFinite("\(name) reflectors")
        guard let mask = reflectors.trainableMask else { return value.storage }
        var vectors = value.storage
        for k in 0..<vectors.count where !mask[k] { vectors[k] = 0 }
        if fixedLastReflector == .flip { vectors[features * features - 1] = 1 }
        return vectors
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func factorization() throws -> Factorization {
        let (units, norms) = Self.normalizedRows(try structuralVectors(), m: reflectorCount, n: features)
        let w = Self.compactWYProduct(units: units, m: reflectorCount, n: features)
        return Factorization(units: units, norms: norms, w: w)
    }

    /// Adds `dL/dv_i` for every learnable entry, given `G = dL/dW`.
    ///
    /// With `P_i = H_1 ⋯ H_i` and `K = G Wᵀ`, `dL/dH_i = K_i H_i` where `K_i = P_{i-1}ᵀ K P_{i-1}`
    /// (because `H_{i+1} ⋯ H_m = H_i P_{i-1}ᵀ W`). For `H = I - 2ûûᵀ` and `A = dL/dH`,
    /// `dL/dû = -2 (A + Aᵀ) û`; with `A = K_i H_i` and `H_i û = -û` this is
    /// `2 (K_i - K_iᵀ) û + 4 (ûᵀ K_i û) û`, and the chain rule through `û = v/‖v‖`,
    /// `dL/dv = (I - ûûᵀ) dL/dû / ‖v‖`, removes the last term and leaves
    /// `dL/dv_i = 2 S_i û_i / ‖v_i‖` with `S_i = K_i - K_iᵀ` (already orthogonal to `û_i`, since
    /// `S_i` is antisymmetric). The antisymmetric part obeys the same recurrence,
    /// `S_{i+1} = H_i S_i H_i = S_i - 2 w ûᵀ + 2 û wᵀ` with `w = S_i û`: one GEMV and two rank-1
    /// updates per reflector, `O(m n²)` in all. `v_i = 0` (where `H` is not differentiable) gets 0.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func accumulateReflectorGradient(_ weightGradient: Matrix<T>, _ f: Factorization) throws {
        let n = features, m = reflectorCount
        guard reflectors.gradient.rows == m, reflectors.gradient.columns == n else {
            throw InvertNNError.shapeMismatch(
                operation: "\(name) reflectors.gradient", expected: "[\(m), \(n)]",
                actual: "[\(reflectors.gradient.rows), \(reflectors.gradient.columns)]")
        }
        var k = Matrix<T>(rows: n, columns: n)
        try BLAS.gemm(weightGradient, f.w, transposeB: true, into: &k)
        var s = k
        for r in 0..<n {
            for c in 0..<n { s.storage[r * n + c] = k.storage[r * n + c] - k.storage[c * n + r] }
        }
        let mask = reflectors.trainableMask
        // The last reflector with learnable entries: the sweep can stop after it.
        var last = -1
        for i in 0..<m where f.norms[i] > 0 && f.norms[i].isFinite {
            if let mask, !(i..<n).contains(where: { mask[i * n + $0] }) { continue }
            last = i
        }
        guard last >= 0 else { return }
        // A blocked BLAS-3 form of this sweep (S updated by a block of reflectors at once through
        // the compact WY factors, Mathiasen et al. 2020; Likhosherstov et al. 2021) belongs here;
        // it is the subject of the performance issue. This GEMV/GER loop is the reference.
        var w = [T](repeating: 0, count: n)
        f.units.withUnsafeBufferPointer { pu in
            s.storage.withUnsafeMutableBufferPointer { ps in
                w.withUnsafeMutableBufferPointer { pw in
                    for i in 0...last where f.norms[i] > 0 && f.norms[i].isFinite {
                        let u = pu.baseAddress! + i * n
                        T._gemv(transpose: false, m: n, n: n, alpha: 1, a: ps.baseAddress!, lda: n,
                                x: u, incx: 1, beta: 0, y: pw.baseAddress!, incy: 1)
                        let factor = 2 / f.norms[i]
                        let start = mask == nil ? 0 : i
                        for j in start..<n where mask?[i * n + j] ?? true {
                            reflectors.gradient.storage[i * n + j] += factor * pw[j]
                        }
                        if i < last {
                            T._ger(m: n, n: n, alpha: -2, x: pw.baseAddress!, incx: 1, y: u, incy: 1,
                                   a: ps.baseAddress!, lda: n)
                            T._ger(m: n, n: n, alpha: 2, x: u, incx: 1, y: pw.baseAddress!, incy: 1,
                                   a: ps.baseAddress!, lda: n)
                        }
                    }
                }
            }
        }
    }

    /// A `[rows, features]` matrix whose every row is `sign · b` (zeros without bias).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func broadcastBias(rows: Int, sign: T) throws -> Matrix<T> {
        var out = Matrix<T>(rows: rows, columns: features)
        guard let bias else { return out }
        try bias.value.requireSameShape(Matrix(rows: 1, columns: features), "\(name) bias")
        let b = bias.value.storage
        for r in 0..<rows {
            for j in 0..<features { out.storage[r * features + j] = sign * b[j] }
        }
        return out
    }

    /// `y - b` row by row (a copy of `y` without bias).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func centered(_ y: Matrix<T>) throws -> Matrix<T> {
        guard let bias else { return y }
        try bias.value.requireSameShape(Matrix(rows: 1, columns: features), "\(name) bias")
        let b = bias.value.storage
        var z = y
        for r in 0..<y.rows {
            for j in 0..<features { z.storage[r * features + j] -= b[j] }
        }
        return z
    }

    /// Adds `sign · Σ_rows g` to the bias gradient.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func accumulateBiasGradient(_ g: Matrix<T>, sign: T) {
        guard let bias, bias.gradient.count == features else { return }
        for r in 0..<g.rows {
            for j in 0..<features { bias.gradient.storage[j] += sign * g.storage[r * features + j] }
        }
    }
}
