import RealModule

/// A fixed permutation of the features: the gather `y[i] = x[perm[i]]`.
///
/// - Shapes: `x`, `y` `[batch, features]`; log-dets `[batch]`, exactly 0 (a permutation matrix
///   has `|det| = 1`).
/// - Inverse: the gather with the inverse permutation, `x[j] = y[perm⁻¹[j]]`.
/// - No learnable parameters. Used between coupling layers so every feature gets transformed
///   (Dinh et al. 2017 §3.4; Kingma & Dhariwal 2018 §3.2 for the reversal and random variants).
public final class Permutation<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// `perm`: output feature `i` is input feature `perm[i]`.
    public let permutation: [Int]
    /// `perm⁻¹`, with `inversePermutation[perm[i]] = i`.
    public let inversePermutation: [Int]

    /// The permutation `perm` (`y[i] = x[perm[i]]`).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `perm` is empty or is not
    ///   a permutation of `0..<perm.count` (an entry out of range or repeated).
    public init(_ permutation: [Int]) throws {
        guard !permutation.isEmpty else {
            throw InvertNNError.invalidArgument(operation: "Permutation", reason: "needs ≥ 1 feature, got an empty permutation")
        }
        let n = permutation.count
        var inverse = [Int](repeating: -1, count: n)
        for (i, p) in permutation.enumerated() {
            guard p >= 0, p < n else {
                throw InvertNNError.invalidArgument(
                    operation: "Permutation", reason: "entry \(p) at index \(i) is outside 0..<\(n)")
            }
            guard inverse[p] < 0 else {
                throw InvertNNError.invalidArgument(
                    operation: "Permutation", reason: "entry \(p) appears twice (indices \(inverse[p]) and \(i))")
            }
            inverse[p] = i
        }
        self.permutation = permutation
        self.inversePermutation = inverse
    }

    /// An explicit permutation that must have `features` entries.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if the length differs from
    ///   `features` or `permutation` is not a permutation (see ``init(_:)``).
    public convenience init(features: Int, permutation: [Int]) throws {
        guard permutation.count == features else {
            throw InvertNNError.invalidArgument(
                operation: "Permutation", reason: "expected \(features) entries, got \(permutation.count)")
        }
        try self.init(permutation)
    }

    /// The reversal `perm[i] = D - 1 - i` (its own inverse).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`.
    public static func reversed(features: Int) throws -> Permutation {
        try SizeLimits.features(features, operation: "Permutation.reversed")
        return try Permutation(Array((0..<features).reversed()))
    }

    /// A uniformly random permutation of `features` features (Fisher–Yates with `generator`).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`.
    public static func random(features: Int, using generator: inout some RandomNumberGenerator) throws -> Permutation {
        try SizeLimits.features(features, operation: "Permutation.random")
        var perm = Array(0..<features)
        perm.shuffle(using: &generator)
        return try Permutation(perm)
    }

    /// `D`.
    public var features: Int { permutation.count }
    public var name: String { "Permutation(\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { [] }
    /// The hyper-parameters: the feature count and the permutation.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// `y[j] = x[permutation[j]]`.
        public var permutation: [Int]
    }
    public static var typeName: String { "Permutation" }
    public var configuration: Configuration { Configuration(features: features, permutation: permutation) }
    public convenience init(configuration c: Configuration) throws { try self.init(features: c.features, permutation: c.permutation) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try x.requireColumns(features, "\(name).forward")
        let buffers = context.buffers(for: self)
        return LayerOutput(output: gather(x, permutation, PermutationSlot.output, buffers), logAbsDet: zeroLogDets(x.rows, buffers))
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try y.requireColumns(features, "\(name).inverse")
        let buffers = context.buffers(for: self)
        return LayerOutput(
            output: gather(y, inversePermutation, PermutationSlot.inverseOutput, buffers), logAbsDet: zeroLogDets(y.rows, buffers))
    }

    /// VJP of ``forward(_:)``: the transpose of a gather is the scatter `dx[perm[i]] = dy[i]`,
    /// i.e. the gather with the inverse permutation. The log-det gradient does not contribute.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: input, inFeatures: features, output: output,
                             outFeatures: features, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        return gather(outputGradient, inversePermutation, PermutationSlot.forwardGradient, context.buffers(for: self))
    }

    /// VJP of ``inverse(_:)``: `dy = gather(dx, perm)`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: input, inFeatures: features, output: output,
                             outFeatures: features, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient)
        return gather(outputGradient, permutation, PermutationSlot.inverseGradient, context.buffers(for: self))
    }

    /// `[rows]` zeros in the log-det slot of `workspace`.
    private func zeroLogDets(_ rows: Int, _ workspace: LayerBuffers<T>) -> [T] {
        let logDet = workspace.filled(PermutationSlot.logDet, count: rows, with: 0)
        workspace.keep(PermutationSlot.logDet, logDet)
        return logDet
    }

    /// `out[r, i] = m[r, indices[i]]` for every row, in `slot`'s buffer of `workspace`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func gather(_ m: Matrix<T>, _ indices: [Int], _ slot: Int, _ workspace: LayerBuffers<T>) -> Matrix<T> {
        var out = workspace.matrix(slot, rows: m.rows, columns: m.columns)
        let width = features
        indices.withUnsafeBufferPointer { ip in
            m.storage.withUnsafeBufferPointer { src in
                out.storage.withUnsafeMutableBufferPointer { dst in
                    for r in 0..<m.rows {
                        let o = r * width
                        for i in 0..<width { dst[o + i] = src[o + ip[i]] }
                    }
                }
            }
        }
        workspace.keep(slot, out)
        return out
    }
}

/// The ``LayerBuffers`` slots of ``Permutation``: one output per direction and pass, and the log-dets.
enum PermutationSlot {
    static let output = 0, inverseOutput = 1, forwardGradient = 2, inverseGradient = 3, logDet = 4
}
