import RealModule
/// Elementwise affine map with a log-parametrized scale: `y = exp(s) ⊙ x + b`.
///
/// - Shapes: `x`, `y` `[batch, features]`; parameters `logScale` `[1, features]` and (optionally)
///   `bias` `[1, features]`.
/// - Log-determinant: `Σ_j s_j` (forward), `-Σ_j s_j` (inverse), in nats, the same for every sample.
/// - The scale `exp(s)` is never zero, so the map is always invertible; signs are left to the
///   orthogonal factors (DESIGN.md §3; invertnn's diagonal layer).
public final class Diagonal<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int
    /// `s`, the log of the per-feature scale, `[1, features]`.
    public let logScale: Parameter<T>
    /// `b`, `[1, features]`, or `nil` for a layer without bias.
    public let bias: Parameter<T>?

    /// A diagonal layer with scale `exp(logScale)` (default: identity) and an optional bias.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1` or a given
    ///   vector has the wrong length or non-finite entries.
    public init(features: Int, logScale: [T]? = nil, bias: [T]? = nil, hasBias: Bool = true) throws {
        try SizeLimits.features(features, operation: "Diagonal")
        for (label, v) in [("logScale", logScale), ("bias", bias)] {
            if let v, v.count != features || v.contains(where: { !$0.isFinite }) {
                throw InvertNNError.invalidArgument(
                    operation: "Diagonal", reason: "\(label) must have \(features) finite entries, got \(v.count)")
            }
        }
        self.features = features
        self.logScale = Parameter(name: "logScale", value: Matrix(row: logScale ?? [T](repeating: 0, count: features)))
        let biasParameter = (hasBias || bias != nil)
            ? Parameter(name: "bias", value: Matrix(row: bias ?? [T](repeating: 0, count: features))) : nil
        self.bias = biasParameter
        let scaleParameter = self.logScale
        self.parameters = biasParameter.map { [scaleParameter, $0] } ?? [scaleParameter]
    }

    /// A diagonal layer from positive scales `d` (stored as `s = log d`).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if a scale is not positive and finite.
    public convenience init(scales: [T], bias: [T]? = nil) throws {
        if let bad = scales.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw InvertNNError.invalidArgument(
                operation: "Diagonal", reason: "scale \(scales[bad]) at index \(bad) must be positive and finite")
        }
        try self.init(features: scales.count, logScale: scales.map { T.log($0) }, bias: bias, hasBias: bias != nil)
    }

    public var name: String { "Diagonal(\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public let parameters: [Parameter<T>]
    /// The hyper-parameters: the feature count and whether there is a bias.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// Whether the layer has a bias.
        public var bias: Bool
    }
    public static var typeName: String { "Diagonal" }
    public var configuration: Configuration { Configuration(features: features, bias: bias != nil) }
    public convenience init(configuration c: Configuration) throws { try self.init(features: c.features, hasBias: c.bias) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        return map(x, sign: 1, workspace: context.buffers(for: self))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(features, "\(name).inverse")
        return map(y, sign: -1, workspace: context.buffers(for: self))
    }

    /// Forward (`sign = 1`): `y = e^s ⊙ x + b`, log-det `Σ s`. Inverse (`sign = -1`):
    /// `x = (y - b) ⊙ e^{-s}`, log-det `-Σ s`. Buffers are borrowed from `workspace` (slots in
    /// ``DiagonalSlot``).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func map(_ input: Matrix<T>, sign: T, workspace: LayerBuffers<T>) -> LayerOutput<T> {
        let n = features, rows = input.rows
        var factors = workspace.take(DiagonalSlot.factors, count: n)
        var shift = workspace.take(DiagonalSlot.shift, count: n)
        let outputSlot = sign > 0 ? DiagonalSlot.output : DiagonalSlot.inverseOutput  // one per direction
        var out = workspace.matrix(outputSlot, rows: rows, columns: n)
        var ld: T = 0
        logScale.value.storage.withUnsafeBufferPointer { ps in
            factors.withUnsafeMutableBufferPointer { f in
                shift.withUnsafeMutableBufferPointer { t in
                    for j in 0..<n {
                        f[j] = T.exp(sign * ps[j])
                        ld += ps[j]
                        t[j] = bias?.value.storage[j] ?? 0
                    }
                }
            }
        }
        input.storage.withUnsafeBufferPointer { pin in
            out.storage.withUnsafeMutableBufferPointer { po in
                factors.withUnsafeBufferPointer { f in
                    shift.withUnsafeBufferPointer { t in
                        for r in 0..<rows {
                            let o = r * n
                            if sign > 0 {
                                for j in 0..<n { po[o + j] = f[j] * pin[o + j] + t[j] }
                            } else {
                                for j in 0..<n { po[o + j] = (pin[o + j] - t[j]) * f[j] }
                            }
                        }
                    }
                }
            }
        }
        let logDet = workspace.filled(DiagonalSlot.logDet, count: rows, with: sign * ld)
        workspace.keep(DiagonalSlot.factors, factors)
        workspace.keep(DiagonalSlot.shift, shift)
        workspace.keep(outputSlot, out)
        workspace.keep(DiagonalSlot.logDet, logDet)
        return LayerOutput(output: out, logAbsDet: logDet)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input x: Matrix<T>, output y: Matrix<T>, outputGradient dy: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: x, inFeatures: features, output: y, outFeatures: features,
                             outputGradient: dy, logAbsDetGradient: dld)
        // dx = g e^s, dL/ds = Σ_rows g x e^s + Σ dld, dL/db = Σ_rows g.
        return backward(gradient: dy, point: x, sign: 1, logDetGradientSum: dld.reduce(0, +), workspace: context.buffers(for: self))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input y: Matrix<T>, output x: Matrix<T>, outputGradient dx: Matrix<T>, logAbsDetGradient dld: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: y, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: dx, logAbsDetGradient: dld)
        // x = (y - b)·e^{-s}: dy = g e^{-s}, ∂x/∂s = -x, ∂x/∂b = -e^{-s}:
        // dL/ds = -Σ_rows g x - Σ dld, dL/db = -Σ_rows g e^{-s}.
        return backward(gradient: dx, point: x, sign: -1, logDetGradientSum: dld.reduce(0, +), workspace: context.buffers(for: self))
    }

    /// Both VJPs: with `f = e^{sign·s}`, the input gradient is `g ⊙ f`; the log-scale gradient
    /// adds `sign·(Σ_rows g ⊙ point ⊙ (sign > 0 ? f : 1) + Σ dld)` and the bias gradient
    /// `sign·Σ_rows g ⊙ (sign > 0 ? 1 : f)`, where `point` is the forward input `x` (forward)
    /// or the inverse's output `x` (inverse). Buffers are borrowed from `workspace`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func backward(
        gradient g: Matrix<T>, point: Matrix<T>, sign: T, logDetGradientSum: T, workspace: LayerBuffers<T>
    ) -> Matrix<T> {
        let n = features, rows = g.rows
        var factors = workspace.take(DiagonalSlot.factors, count: n)
        var scaleSums = workspace.filled(DiagonalSlot.scaleSums, count: n, with: 0)
        var biasSums = workspace.filled(DiagonalSlot.biasSums, count: n, with: 0)
        var out = workspace.matrix(DiagonalSlot.inputGradient, rows: rows, columns: n)
        let forward = sign > 0
        logScale.value.storage.withUnsafeBufferPointer { ps in
            factors.withUnsafeMutableBufferPointer { f in
                for j in 0..<n { f[j] = T.exp(sign * ps[j]) }
            }
        }
        g.storage.withUnsafeBufferPointer { pg in
            point.storage.withUnsafeBufferPointer { px in
                out.storage.withUnsafeMutableBufferPointer { po in
                    factors.withUnsafeBufferPointer { f in
                        scaleSums.withUnsafeMutableBufferPointer { ds in
                            biasSums.withUnsafeMutableBufferPointer { db in
                                for r in 0..<rows {
                                    let o = r * n
                                    for j in 0..<n {
                                        let gf = pg[o + j] * f[j]
                                        po[o + j] = gf
                                        ds[j] += (forward ? gf : pg[o + j]) * px[o + j]
                                        db[j] += forward ? pg[o + j] : gf
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        for j in 0..<n { logScale.gradient.storage[j] += sign * (scaleSums[j] + logDetGradientSum) }
        if let bias { for j in 0..<n { bias.gradient.storage[j] += sign * biasSums[j] } }
        workspace.keep(DiagonalSlot.factors, factors)
        workspace.keep(DiagonalSlot.scaleSums, scaleSums)
        workspace.keep(DiagonalSlot.biasSums, biasSums)
        workspace.keep(DiagonalSlot.inputGradient, out)
        return out
    }
}

/// The ``LayerBuffers`` slots of ``Diagonal``.
enum DiagonalSlot {
    static let output = 0, logDet = 1, factors = 2, shift = 3, scaleSums = 4, biasSums = 5
    static let inverseOutput = 6, inputGradient = 7
}
