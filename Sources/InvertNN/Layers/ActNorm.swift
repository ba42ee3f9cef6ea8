import RealModule
import Synchronization

/// Activation normalization (Kingma & Dhariwal 2018, "Glow", §3.1): a per-feature affine map
/// whose scale and bias are set from the first batch it sees, so that batch comes out with zero
/// mean and unit variance per feature; afterwards they are ordinary learnable parameters.
///
/// Parametrization, in the library's direction convention (forward = generative, DESIGN.md §2):
/// - forward `y = exp(s) ⊙ x + b`, log-det `Σ_j s_j` per row;
/// - inverse `x = (y - b) ⊙ exp(-s)`, log-det `-Σ_j s_j` per row.
///
/// The inverse is Glow's ActNorm in its normalizing direction, `(y + b_glow) · exp(s_glow)`, with
/// `b_glow = -b` and `s_glow = -s`; the math (and the VJPs) are those of ``Diagonal``, which this
/// layer wraps.
///
/// **Data-dependent initialization.** While ``isInitialized`` is false, the first call in
/// ``initializationDirection`` (default ``InitializationDirection/inverse``, the density
/// direction through which maximum likelihood trains) sets, from that call's input `v`
/// `[batch, features]`, with the per-feature mean `μ_j` and the standard deviation
/// `σ_j = sqrt(mean((v_j - μ_j)²))` (divisor `batch`, as Glow):
/// - inverse direction: `b_j = μ_j`, `s_j = log σ_j`, so `x = (v - μ)/σ`;
/// - forward direction: `s_j = -log σ_j`, `b_j = -μ_j/σ_j`, so `y = (v - μ)/σ`.
///
/// A feature with `σ_j < minimumStandardDeviation` (a one-row batch, a constant feature) keeps
/// scale 1 (`s_j = 0`) and is only centred: its output is exactly 0 for that batch, finite, never
/// NaN. Calls in the other direction before initialization use the current parameters (the
/// identity by default) and do not initialize. Initialization happens once: the flag is part of
/// ``configuration``, so a layer rebuilt from a checkpoint (``LayerRegistry``) never initializes
/// again. Set ``initializationDirection`` to ``InitializationDirection/forward`` for a layer that
/// sits inside an ``Inverted`` of a density model, or in a model trained through its forward
/// direction (reverse KL).
///
/// This initialization is the one exception to "forward and inverse never change parameters":
/// it writes ``logScale`` and ``bias`` (their ``Parameter/version`` changes).
///
/// - Shapes: `x`, `y` `[batch, features]`; parameters `"logScale"` and `"bias"` `[1, features]`.
///   Its pixelwise form (per-channel statistics over batch and pixels, NCHW) is
///   ``Pixelwise/actNorm(channels:height:width:initializationDirection:)``.
/// - Throws: as ``Diagonal``; ``InvertNNError/nonFinite(operation:row:column:)`` if the batch that
///   would initialize the layer holds NaN or an infinity (nothing is initialized then).
public final class ActNorm<T: Scalar>: RebuildableLayer {
    public typealias Element = T

    /// Which direction's first batch sets the parameters.
    public enum InitializationDirection: String, Codable, Sendable {
        /// The first ``ActNorm/inverse(_:context:)`` call normalizes its output (data → latent).
        case inverse
        /// The first ``ActNorm/forward(_:context:)`` call normalizes its output.
        case forward
    }

    /// Standard deviations below this keep scale 1 at initialization (see the type's notes).
    public static var minimumStandardDeviation: T { T(1e-6) }

    /// The feature count of every sample.
    public var features: Int { diagonal.features }
    /// `s`, the per-feature log-scale, `[1, features]`.
    public var logScale: Parameter<T> { diagonal.logScale }
    /// `b`, the per-feature bias, `[1, features]`.
    public var bias: Parameter<T> { diagonal.bias! }
    /// The direction whose first batch initializes the layer.
    public let initializationDirection: InitializationDirection
    /// Whether the data-dependent initialization has happened (or was declared done).
    public var isInitialized: Bool { initializedFlag.withLock { $0 } }

    /// The affine map itself (its parameters are this layer's).
    let diagonal: Diagonal<T>
    private let initializedFlag: Mutex<Bool>

    /// An ActNorm on `features` features with identity parameters.
    ///
    /// - Parameters:
    ///   - features: the width of the data, ≥ 1.
    ///   - initialized: `true` to skip the data-dependent initialization (a rebuilt checkpoint,
    ///     or parameters set by hand through ``logScale`` and ``bias``).
    ///   - initializationDirection: whose first batch initializes; default `.inverse`.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`.
    public init(features: Int, initialized: Bool = false, initializationDirection: InitializationDirection = .inverse) throws {
        self.diagonal = try Diagonal<T>(features: features, hasBias: true)
        self.initializationDirection = initializationDirection
        self.initializedFlag = Mutex(initialized)
    }

    /// An initialized ActNorm with explicit `logScale` and `bias` (`features` entries each).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for wrong lengths or
    ///   non-finite entries.
    public init(logScale: [T], bias: [T], initializationDirection: InitializationDirection = .inverse) throws {
        self.diagonal = try Diagonal<T>(features: logScale.count, logScale: logScale, bias: bias)
        self.initializationDirection = initializationDirection
        self.initializedFlag = Mutex(true)
    }

    public var name: String { "ActNorm(\(features))" }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }
    public var parameters: [Parameter<T>] { diagonal.parameters }
    /// The hyper-parameters: the feature count, whether the data-dependent initialization has
    /// happened (a rebuilt initialized layer never initializes again) and its direction.
    public struct Configuration: Codable, Sendable, Equatable {
        public var features: Int
        public var initialized: Bool
        public var initializationDirection: InitializationDirection
    }
    public static var typeName: String { "ActNorm" }
    public var configuration: Configuration {
        Configuration(features: features, initialized: isInitialized, initializationDirection: initializationDirection)
    }
    public convenience init(configuration c: Configuration) throws {
        try self.init(features: c.features, initialized: c.initialized, initializationDirection: c.initializationDirection)
    }

    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        if initializationDirection == .forward { try initializeIfNeeded(from: x) }
        return try diagonal.forward(x, context: &context)
    }

    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        if initializationDirection == .inverse { try initializeIfNeeded(from: y) }
        return try diagonal.inverse(y, context: &context)
    }

    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try diagonal.forwardBackward(input: input, output: output, outputGradient: outputGradient,
                                     logAbsDetGradient: logAbsDetGradient, context: &context)
    }

    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try diagonal.inverseBackward(input: input, output: output, outputGradient: outputGradient,
                                     logAbsDetGradient: logAbsDetGradient, context: &context)
    }

    /// Sets the parameters from `batch` (the input of the initializing direction) unless the
    /// layer is already initialized; under the lock, so concurrent first calls initialize once.
    private func initializeIfNeeded(from batch: Matrix<T>) throws {
        try initializedFlag.withLock { done in
            guard !done else { return }
            try batch.requireColumns(features, "\(name) initialization")
            try batch.requireFinite("\(name) initialization")
            let (mean, deviation) = Self.statistics(batch)
            let floor = Self.minimumStandardDeviation
            var s = [T](repeating: 0, count: features), b = mean
            for j in 0..<features {
                let sigma = deviation[j] >= floor ? deviation[j] : 1
                switch initializationDirection {
                case .inverse:
                    s[j] = T.log(sigma)
                case .forward:
                    s[j] = -T.log(sigma)
                    b[j] = -mean[j] / sigma
                }
            }
            logScale.value = Matrix(row: s)
            bias.value = Matrix(row: b)
            done = true
        }
    }

    /// Per-column mean and standard deviation (divisor `rows`, two passes for accuracy).
    static func statistics(_ m: Matrix<T>) -> (mean: [T], deviation: [T]) {
        let n = m.columns
        var mean = [T](repeating: 0, count: n), squares = [T](repeating: 0, count: n)
        m.addColumnSums(scaledBy: 1 / T(m.rows), into: &mean)
        m.storage.withUnsafeBufferPointer { p in
            for r in 0..<m.rows {
                for j in 0..<n {
                    let d = p[r * n + j] - mean[j]
                    squares[j] += d * d
                }
            }
        }
        return (mean, squares.map { ($0 / T(m.rows)).squareRoot() })
    }
}
