import RealModule

/// The affine coupling layer of RealNVP (Dinh et al. 2017, "Density estimation using Real NVP",
/// eqs. 4-9), with a smoothly bounded log-scale.
///
/// The `D` features split at `k` into two blocks (see ``CouplingBlock``); the conditioning block
/// `a` (`d` features) passes through and the other block `b` (`D - d` features) is transformed:
///
///     h      = MLP(x_a)                    (one trunk, 2(D - d) outputs: ŝ = h[0..<D-d], t = h[D-d..<2(D-d)])
///     s      = c · tanh(ŝ / c)             (or s = ŝ when the bound c is switched off)
///     y_a    = x_a
///     y_b    = x_b ⊙ exp(s) + t            log|det ∂y/∂x| = Σ_j s_j
///     x_b    = (y_b - t) ⊙ exp(-s)         log|det ∂x/∂y| = -Σ_j s_j      (s, t from y_a = x_a)
///
/// - Shapes: `x`, `y` `[batch, D]`, log-dets `[batch]` in nats. Splits need not be even (`D = 3`
///   or `17` work); the log-det always sums the `D - d` scale outputs (the original invertnn read
///   it from the wrong slice for uneven splits).
/// - The bound `c` keeps `|s| < c`, so one step can scale a feature by at most `e^c`; the same
///   bounded `s` enters forward, inverse and log-det, which keeps the map exactly invertible.
/// - Parameters: those of the ``conditioner`` MLP (`dense<k>.weight`, `dense<k>.bias`).
/// - Backward passes recompute the conditioner's forward from the layer input (the layer contract
///   passes only input and output), unless a taped call retained it (``RetainingLayer``: then
///   a training step costs exactly the MLP's own GEMMs), and run the MLP's hand-written backward,
///   so gradients reach `x_a` (resp. `y_a`) both directly and through the conditioner.
public final class AffineCoupling<T: Scalar>: RetainingLayer {
    public typealias Element = T

    /// `D`, the feature count (`≥ 2`).
    public let features: Int
    /// `k`: the first block is `[0, k)`, the second `[k, D)`.
    public let firstBlockSize: Int
    /// Which block conditions the other.
    public let conditioningBlock: CouplingBlock
    /// `c` of `s = c·tanh(ŝ/c)`, or `nil` for an unbounded log-scale `s = ŝ`.
    public let scaleBound: T?
    /// The conditioner, `[batch, d] -> [batch, 2(D - d)]`: the log-scale pre-activations `ŝ`
    /// first, then the shifts `t`.
    public let conditioner: MLP<T>

    /// The feature positions of the conditioning block `a` (`d` of them).
    public let conditioningRange: Range<Int>
    /// The feature positions of the transformed block `b` (`D - d` of them).
    public let transformedRange: Range<Int>

    /// The conditioner trace kept by a retaining call (see ``RetainingLayer``): valid for the
    /// next backward of `isForward`'s direction if that call's input equals `input` and the
    /// parameters' ``Parameter/version``s still equal ``retainedParameterKeys`` (the input check is
    /// O(1) when the caller passes the same storage back).
    struct Retained {
        let isForward: Bool
        let input: [T]
        let trace: MLP<T>.Trace
        /// The backward's transcendental functions, evaluated once by the retaining call (the
        /// layout of ``AffineCoupling/scaleFactors(_:isForward:)``).
        let factors: [T]
    }
    var retained: Retained?
    /// The conditioner's parameter versions at the retaining call, updated in place so a
    /// retaining call allocates nothing.
    var retainedParameterKeys: [UInt64] = []
    /// Reused buffers (see ``Workspace``); the slot numbers are ``Slot``.
    let workspace = Workspace<T>(slots: CouplingSlot.count)

    /// A coupling layer around a ready conditioner.
    ///
    /// - Parameters:
    ///   - features: `D ≥ 2`.
    ///   - conditioner: an MLP from `d` to `2(D - d)` features.
    ///   - conditioningBlock: which block is `a` (default the first).
    ///   - scaleBound: `c > 0` (default 2), or `nil` to switch the bound off.
    ///   - firstBlockSize: `k` in `1..<D` (default `⌊D/2⌋`).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `D < 2`, `k` is out of
    ///   range, `c` is not positive and finite, or the conditioner's sizes do not fit the split.
    public init(
        features: Int, conditioner: MLP<T>, conditioningBlock: CouplingBlock = .first,
        scaleBound: T? = 2, firstBlockSize: Int? = nil
    ) throws {
        let (conditioningRange, transformedRange) = try Self.split(
            features: features, firstBlockSize: firstBlockSize, conditioningBlock: conditioningBlock)
        if let c = scaleBound, !(c > 0 && c.isFinite) {
            throw InvertNNError.invalidArgument(
                operation: "AffineCoupling", reason: "scaleBound must be positive and finite (or nil), got \(c)")
        }
        guard conditioner.inputFeatures == conditioningRange.count,
              conditioner.outputFeatures == 2 * transformedRange.count
        else {
            throw InvertNNError.invalidArgument(
                operation: "AffineCoupling",
                reason: "conditioner must map \(conditioningRange.count) -> \(2 * transformedRange.count) features "
                    + "(log-scales and shifts of \(transformedRange.count) features), got sizes \(conditioner.sizes)")
        }
        self.features = features
        self.firstBlockSize = firstBlockSize ?? features / 2
        self.conditioningBlock = conditioningBlock
        self.scaleBound = scaleBound
        self.conditioner = conditioner
        self.conditioningRange = conditioningRange
        self.transformedRange = transformedRange
    }

    /// A coupling layer with a new He-initialized MLP conditioner `d -> hidden… -> 2(D - d)`.
    ///
    /// - Parameters:
    ///   - features: `D ≥ 2`.
    ///   - hiddenSizes: widths of the conditioner's hidden layers (may be empty: affine conditioner).
    ///   - conditioningBlock: which block is `a` (default the first; alternate it in a flow).
    ///   - scaleBound: `c > 0` (default 2), or `nil` to switch the bound off.
    ///   - activation: the conditioner's hidden nonlinearity (default ReLU).
    ///   - firstBlockSize: `k` in `1..<D` (default `⌊D/2⌋`).
    ///   - zeroInitializeLastLayer: start the conditioner's output layer at 0 so the layer starts as
    ///     the identity (default true).
    ///   - generator: the caller-owned source of randomness.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` as the designated initializer
    ///   and ``MLP/init(sizes:activation:zeroInitializeLastLayer:using:)`` do.
    public convenience init(
        features: Int, hiddenSizes: [Int], conditioningBlock: CouplingBlock = .first, scaleBound: T? = 2,
        activation: MLPActivation = .relu, firstBlockSize: Int? = nil, zeroInitializeLastLayer: Bool = true,
        using generator: inout some RandomNumberGenerator
    ) throws {
        let (a, b) = try Self.split(features: features, firstBlockSize: firstBlockSize, conditioningBlock: conditioningBlock)
        let mlp = try MLP<T>(sizes: [a.count] + hiddenSizes + [2 * b.count], activation: activation,
                             zeroInitializeLastLayer: zeroInitializeLastLayer, using: &generator)
        try self.init(features: features, conditioner: mlp, conditioningBlock: conditioningBlock,
                      scaleBound: scaleBound, firstBlockSize: firstBlockSize)
    }

    private static func split(
        features: Int, firstBlockSize: Int?, conditioningBlock: CouplingBlock
    ) throws -> (conditioning: Range<Int>, transformed: Range<Int>) {
        guard features >= 2 else {
            throw InvertNNError.invalidArgument(
                operation: "AffineCoupling",
                reason: "needs ≥ 2 features to split into a conditioning and a transformed block, got \(features)")
        }
        try SizeLimits.features(features, operation: "AffineCoupling")
        let k = firstBlockSize ?? features / 2
        guard k >= 1, k < features else {
            throw InvertNNError.invalidArgument(
                operation: "AffineCoupling", reason: "firstBlockSize must be in 1..<\(features), got \(k)")
        }
        let first = 0..<k, second = k..<features
        return conditioningBlock == .first ? (first, second) : (second, first)
    }

    public var name: String {
        "AffineCoupling(\(features), \(conditioningBlock.rawValue) block [\(conditioningRange.lowerBound)..<\(conditioningRange.upperBound)] conditions)"
    }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { conditioner.parameters }
    public var configuration: [String: ConfigurationValue] {
        [
            "type": .string("AffineCoupling"),
            "features": .int(features),
            "firstBlockSize": .int(firstBlockSize),
            "conditioningBlock": .string(conditioningBlock.rawValue),
            "hiddenSizes": .ints(conditioner.hiddenSizes),
            "activation": .string(conditioner.activation.configurationName),
            "activationSlope": conditioner.activation.slope.map { .double($0) } ?? .null,
            "scaleBound": scaleBound.map { .double(Double($0)) } ?? .null,
        ]
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try requireParameterShapes()
        try x.requireColumns(features, "\(name).forward")
        return apply(x, conditionerOutput: try conditioner(conditioningColumns(x)), isForward: true).result
    }

    public func forwardRetaining(_ x: Matrix<T>) throws -> LayerOutput<T> {
        try requireParameterShapes()
        try x.requireColumns(features, "\(name).forward")
        let trace = try conditioner.forward(conditioningColumns(x))
        let (result, factors) = apply(x, conditionerOutput: trace.output, isForward: true)
        retain(Retained(isForward: true, input: x.storage, trace: trace, factors: factors))
        return result
    }

    public func inverseRetaining(_ y: Matrix<T>) throws -> LayerOutput<T> {
        try requireParameterShapes()
        try y.requireColumns(features, "\(name).inverse")
        let trace = try conditioner.forward(conditioningColumns(y))
        let (result, factors) = apply(y, conditionerOutput: trace.output, isForward: false)
        retain(Retained(isForward: false, input: y.storage, trace: trace, factors: factors))
        return result
    }

    public func releaseBuffers() {
        workspace.releaseAll()
        conditioner.releaseBuffers()
    }

    /// Drops the conditioner trace kept by a taped pass (``RetainingLayer``).
    public func releaseRetained() { retained = nil }

    /// Keeps `state` and the parameter versions it was computed with.
    private func retain(_ state: Retained) {
        retained = state
        let parameters = conditioner.parameters
        if retainedParameterKeys.count != parameters.count {
            retainedParameterKeys = parameters.map { $0.version }
        } else {
            for i in 0..<parameters.count { retainedParameterKeys[i] = parameters[i].version }
        }
    }

    /// The conditioning block `x_a` `[rows, |a|]` in a reused buffer. The conditioner first drops
    /// its previous trace's references (``MLP/recycleTrace()``) so the buffer can be reused.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func conditioningColumns(_ x: Matrix<T>) -> Matrix<T> {
        conditioner.recycleTrace()
        let rows = x.rows, width = features, d = conditioningRange.count, offset = conditioningRange.lowerBound
        var out = workspace.matrix(CouplingSlot.conditioningColumns, rows: rows, columns: d)
        x.storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    (dst.baseAddress! + r * d).update(from: src.baseAddress! + r * width + offset, count: d)
                }
            }
        }
        workspace.keep(CouplingSlot.conditioningColumns, out)
        return out
    }

    /// The conditioner trace for a backward call at `input`: the retained one if it was taken in
    /// the same direction at the same input with the same parameters, else recomputed. Releases
    /// the retained state either way.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func trace(for input: Matrix<T>, isForward: Bool) throws -> (MLP<T>.Trace, [T]?) {
        defer { retained = nil }
        if let kept = retained, kept.isForward == isForward, kept.input == input.storage,
           retainedParameterKeys.count == conditioner.parameters.count,
           zip(retainedParameterKeys, conditioner.parameters).allSatisfy({ $0.0 == $0.1.version }),
           kept.trace.output.rows == input.rows {
            return (kept.trace, kept.factors)
        }
        return (try conditioner.forward(conditioningColumns(input)), nil)
    }

    /// Both directions on the transformed block, given the conditioner output `h` `[rows, 2m]`:
    /// forward `y_b = x_b ⊙ e^s + t` (log-det `Σ s`), inverse `x_b = (y_b - t) ⊙ e^{-s}` (log-det
    /// `-Σ s`). Also returns the ``scaleFactors(_:isForward:)`` it used, for a retaining call.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func apply(
        _ input: Matrix<T>, conditionerOutput h: Matrix<T>, isForward: Bool
    ) -> (result: LayerOutput<T>, factors: [T]) {
        let rows = input.rows, width = features, m = transformedRange.count, offset = transformedRange.lowerBound
        let (factors, logDet) = scaleFactors(h, isForward: isForward)
        // One output buffer per direction: rebuilding mode maps an inverse result forward again
        // while that result is still in use.
        let outputSlot = isForward ? CouplingSlot.output : CouplingSlot.inverseOutput
        var out = workspace.copy(outputSlot, of: input)
        defer { workspace.keep(outputSlot, out) }
        factors.withUnsafeBufferPointer { fp in
            h.storage.withUnsafeBufferPointer { hp in
                out.storage.withUnsafeMutableBufferPointer { op in
                    for r in 0..<rows {
                        let ho = r * 2 * m + m, o = r * width + offset, fo = r * m
                        if isForward {
                            for j in 0..<m { op[o + j] = op[o + j] * fp[fo + j] + hp[ho + j] }
                        } else {
                            for j in 0..<m { op[o + j] = (op[o + j] - hp[ho + j]) * fp[fo + j] }
                        }
                    }
                }
            }
        }
        return (LayerOutput(output: out, logAbsDet: logDet), factors)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try requireParameterShapes()
        try y.requireColumns(features, "\(name).inverse")
        return apply(y, conditionerOutput: try conditioner(conditioningColumns(y)), isForward: false).result
    }

    /// VJP of ``forward(_:)``. With `g = dL/dy` and `ℓ = dL/dlogAbsDet` per row:
    /// `dL/dx_b = g_b ⊙ e^s`, `dL/dt = g_b`, `dL/ds = g_b ⊙ x_b ⊙ e^s + ℓ`,
    /// `dL/dŝ = dL/ds ⊙ (1 - (s/c)²)`, and `dL/dx_a = g_a + MLP-backward([dL/dŝ, dL/dt])`.
    /// `output` is only shape-checked: everything is recomputed from `input`.
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` on inconsistent shapes.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input x: Matrix<T>, output y: Matrix<T>, outputGradient dy: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try requireParameterShapes()
        try validateBackward("forwardBackward", input: x, inFeatures: features, output: y, outFeatures: features,
                             outputGradient: dy, logAbsDetGradient: dld)
        return try backward(input: x, outputGradient: dy, logAbsDetGradient: dld, isForward: true)
    }

    /// VJP of ``inverse(_:)``. With `g = dL/dx`, `ℓ = dL/dlogAbsDet` and `x_b = (y_b - t) e^{-s}`
    /// recomputed from `input`: `dL/dy_b = g_b ⊙ e^{-s}`, `dL/dt = -g_b ⊙ e^{-s}`,
    /// `dL/ds = -g_b ⊙ x_b - ℓ`, `dL/dŝ = dL/ds ⊙ (1 - (s/c)²)`, and
    /// `dL/dy_a = g_a + MLP-backward([dL/dŝ, dL/dt])`. `output` is only shape-checked.
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` on inconsistent shapes.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input y: Matrix<T>, output x: Matrix<T>, outputGradient dx: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try requireParameterShapes()
        try validateBackward("inverseBackward", input: y, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: dx, logAbsDetGradient: dld)
        return try backward(input: y, outputGradient: dx, logAbsDetGradient: dld, isForward: false)
    }

    /// Both VJPs after their checks: the conditioner trace (kept or recomputed), the elementwise
    /// part, then the conditioner's backward added into the conditioning columns.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func backward(input: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient dld: [T], isForward: Bool) throws -> Matrix<T> {
        let (trace, kept) = try trace(for: input, isForward: isForward)
        var (inputGradient, dh) = blockGradients(
            input: input, conditionerOutput: trace.output, factors: kept, outputGradient: outputGradient,
            logAbsDetGradient: dld, isForward: isForward)
        try addConditionerGradient(trace: trace, dh: dh, into: &inputGradient)
        workspace.keep(CouplingSlot.inputGradient, inputGradient)  // after its last write
        return inputGradient
    }

    /// The elementwise part of both backward passes. With `g` the output gradient of the
    /// transformed block, `e = e^{±s}`, `u = (in_b - t)·e` for the inverse and `in_b·e` forward
    /// (the scaled term of the output) and `σ = ±1` the direction: the input gradient is `g·e` on
    /// the transformed block (the conditioning block passes `g` through), and the conditioner
    /// output gradient is `dL/dŝ = σ(g·u + ℓ)·ds/dŝ` and `dL/dt = g` (forward) or `-g·e` (inverse).
    /// `factors` are the retained ones, or recomputed from `h` when `nil`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func blockGradients(
        input: Matrix<T>, conditionerOutput h: Matrix<T>, factors kept: [T]?, outputGradient: Matrix<T>,
        logAbsDetGradient dld: [T], isForward: Bool
    ) -> (inputGradient: Matrix<T>, conditionerGradient: Matrix<T>) {
        let rows = input.rows, width = features, m = transformedRange.count, offset = transformedRange.lowerBound
        var dIn = workspace.copy(CouplingSlot.inputGradient, of: outputGradient)
        var dh = workspace.matrix(CouplingSlot.conditionerGradient, rows: rows, columns: 2 * m)
        // (The input gradient goes back to its slot after the caller's last write to it.)
        defer { workspace.keep(CouplingSlot.conditionerGradient, dh) }
        let factors = kept ?? scaleFactors(h, isForward: isForward).factors
        let sign: T = isForward ? 1 : -1
        factors.withUnsafeBufferPointer { fp in
            h.storage.withUnsafeBufferPointer { hp in
                input.storage.withUnsafeBufferPointer { ip in
                    dIn.storage.withUnsafeMutableBufferPointer { gp in
                        dh.storage.withUnsafeMutableBufferPointer { dhp in
                            let slopes = rows * m
                            for r in 0..<rows {
                                let ho = r * 2 * m, o = r * width + offset, fo = r * m, ld = dld[r]
                                for j in 0..<m {
                                    let e = fp[fo + j], slope = fp[slopes + fo + j]
                                    let u = (isForward ? ip[o + j] : ip[o + j] - hp[ho + m + j]) * e
                                    let g = gp[o + j], ge = g * e
                                    gp[o + j] = ge
                                    dhp[ho + j] = sign * (g * u + ld) * slope
                                    dhp[ho + m + j] = isForward ? g : -ge
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dIn, dh)
    }

    /// The scale factors of the transformed block from the conditioner output `h` `[rows, 2m]`,
    /// and the per-row log-dets `±Σ_j s_j` (nats).
    ///
    /// `factors` has `2·rows·m` entries: first `e^{±s}` (sign of the direction) at `[r·m + j]`,
    /// then the slopes `ds/dŝ` at `[rows·m + r·m + j]`. Keeping the exponentials contiguous lets
    /// one vectorized `exp` (``VectorMath``) serve the whole batch. With the bound,
    /// `tanh(u) = (1 - w)/(1 + w)` and `1 - tanh²(u) = 4w/(1 + w)²` with `w = e^{-2|u|} ∈ (0, 1]`,
    /// `u = ŝ/c`: one more vectorized `exp` instead of a scalar `tanh` (about 30 ns each here),
    /// accurate to a few ulp of `s` and, without cancellation, of the slope.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func scaleFactors(_ h: Matrix<T>, isForward: Bool) -> (factors: [T], logDet: [T]) {
        let rows = h.rows, m = transformedRange.count, count = rows * m
        let bound = scaleBound ?? 0, inverseBound = scaleBound.map { 1 / $0 } ?? 0, bounded = scaleBound != nil
        var logDet = workspace.take(CouplingSlot.logDet, count: rows)
        var factors = workspace.take(CouplingSlot.factors, count: 2 * count)
        defer {
            workspace.keep(CouplingSlot.logDet, logDet)
            workspace.keep(CouplingSlot.factors, factors)
        }
        factors.withUnsafeMutableBufferPointer { fp in
            h.storage.withUnsafeBufferPointer { hp in
                if bounded {
                    for r in 0..<rows {
                        for j in 0..<m { fp[r * m + j] = -2 * abs(hp[r * 2 * m + j] * inverseBound) }
                    }
                    VectorMath.exp(UnsafeMutableBufferPointer(rebasing: fp[0..<count]))
                }
                for r in 0..<rows {
                    var sum: T = 0
                    for j in 0..<m {
                        let i = r * m + j, scaleInput = hp[r * 2 * m + j]
                        var s = scaleInput
                        if bounded {
                            let w = fp[i], q = 1 / (1 + w)
                            let tanh = (1 - w) * q
                            s = (scaleInput < 0 ? -bound : bound) * tanh  // a select, not a branch
                            fp[count + i] = 4 * w * q * q
                        } else {
                            fp[count + i] = 1
                        }
                        sum += s
                        fp[i] = isForward ? s : -s
                    }
                    logDet[r] = isForward ? sum : -sum
                }
                VectorMath.exp(UnsafeMutableBufferPointer(rebasing: fp[0..<count]))
            }
        }
        return (factors, logDet)
    }

    /// Backpropagates `dh = dL/d(conditioner output)` through the conditioner (accumulating its
    /// parameter gradients) and adds the result into the conditioning columns of `gradient`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func addConditionerGradient(trace: MLP<T>.Trace, dh: Matrix<T>, into gradient: inout Matrix<T>) throws {
        let da = try conditioner.backward(trace, outputGradient: dh)
        let rows = gradient.rows, width = features, d = conditioningRange.count, offset = conditioningRange.lowerBound
        da.storage.withUnsafeBufferPointer { ap in
            gradient.storage.withUnsafeMutableBufferPointer { gp in
                for r in 0..<rows {
                    let o = r * width + offset, ao = r * d
                    for j in 0..<d { gp[o + j] += ap[ao + j] }
                }
            }
        }
    }
}

/// The ``Workspace`` slots of ``AffineCoupling``.
enum CouplingSlot {
    static let conditioningColumns = 0, output = 1, logDet = 2, factors = 3, inputGradient = 4
    static let conditionerGradient = 5, inverseOutput = 6, count = 7
}
