import RealModule

/// Where a coupling's transformed features sit in a row-major batch: `rows` rows of `features`
/// entries, entry `[r, j]` at `offset + r·rowStride + j`.
public struct TransformedBlock: Sendable, Equatable {
    /// Rows of the batch.
    public var rows: Int
    /// Transformed features per row, `m`.
    public var features: Int
    /// Distance between the starts of two rows (the batch's full width).
    public var rowStride: Int
    /// Position of entry `[0, 0]`.
    public var offset: Int

    /// A block of `rows × features` entries inside rows of `rowStride` entries, from `offset`.
    public init(rows: Int, features: Int, rowStride: Int, offset: Int) {
        self.rows = rows
        self.features = features
        self.rowStride = rowStride
        self.offset = offset
    }

    /// Index of entry `[row, feature]` in the batch's storage.
    @inlinable @inline(__always)
    public func index(_ row: Int, _ feature: Int) -> Int { offset + row * rowStride + feature }
}

/// The transformer's parameters for one entry `[row, feature]`: parameter `p` of that feature is
/// `base[p · stride]`, read from a conditioner output laid out parameter-major,
/// `h[row, p·m + feature]` (affine: `[ŝ | t]`).
public struct TransformerParameters<T: Scalar> {
    @usableFromInline let base: UnsafePointer<T>
    @usableFromInline let stride: Int

    @inlinable @inline(__always)
    init(base: UnsafePointer<T>, stride: Int) {
        self.base = base
        self.stride = stride
    }

    /// Parameter `p` of this entry.
    @inlinable @inline(__always)
    public subscript(p: Int) -> T { base[p * stride] }
}

/// Where the gradient with respect to one entry's transformer parameters goes (same layout as
/// ``TransformerParameters``); the transformer overwrites every one of its parameters' slots.
public struct TransformerParameterGradient<T: Scalar> {
    @usableFromInline let base: UnsafeMutablePointer<T>
    @usableFromInline let stride: Int

    @inlinable @inline(__always)
    init(base: UnsafeMutablePointer<T>, stride: Int) {
        self.base = base
        self.stride = stride
    }

    /// `dL/d(parameter p)` of this entry.
    @inlinable @inline(__always)
    public subscript(p: Int) -> T {
        get { base[p * stride] }
        nonmutating set { base[p * stride] = newValue }
    }
}

/// The per-feature bijection of a coupling or autoregressive layer, `y_j = τ(x_j; θ_j)`, whose
/// parameters `θ_j` come per row from a conditioner (zuko's `univariate` transform; Durkan et
/// al. 2019 call it the transformer, Papamakarios et al. 2021 §3.1 survey the family).
///
/// A transformer states its calculus for one entry; ``Coupling`` runs the loops over the block,
/// the conditioner and the backward plumbing. The block forms (``apply(_:block:parameters:logAbsDet:inverse:)``
/// and ``backward(input:block:parameters:gradient:logAbsDetGradient:parameterGradient:inverse:)``)
/// have default implementations from the entry forms; a transformer overrides them only to batch
/// its transcendental functions (``AffineTransformer`` does, for its vectorized `exp`).
///
/// - Conditioner outputs: ``parametersPerFeature`` values `P` per transformed feature, laid out
///   `h[row, p·m + j]` for `m` transformed features.
/// - Log-determinants in nats; the inverse's log-derivative is exactly the negative of the
///   forward one at the matching point.
public protocol CouplingTransformer<Element>: Sendable {
    /// The scalar type, `Float` or `Double`.
    associatedtype Element: Scalar
    /// A Codable description of the transformer's hyper-parameters (for checkpoints).
    associatedtype Configuration: Codable & Sendable & Equatable

    /// `P`: conditioner outputs per transformed feature.
    var parametersPerFeature: Int { get }
    /// The hyper-parameters (not the per-row parameters, which the conditioner produces); a
    /// coupling writes their fields into its own checkpoint object, so their names must differ
    /// from the coupling's (`features`, `hiddenSizes`, …).
    var configuration: Configuration { get }
    /// The transformer described by `configuration` (to rebuild a checkpoint).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for values its initializer rejects.
    init(configuration: Configuration) throws
    /// The checkpoint type name of a ``Coupling`` with this transformer (`"AffineCoupling"`;
    /// register the coupling with ``LayerRegistry`` under it).
    static var couplingTypeName: String { get }
    /// A short name for errors and summaries (e.g. `"affine(bound 2)"`).
    var name: String { get }

    /// `y = τ(x; θ)` and `log|τ'(x; θ)|`.
    func forward(_ x: Element, parameters θ: TransformerParameters<Element>) -> (value: Element, logDerivative: Element)
    /// `x = τ⁻¹(y; θ)` and `log|(τ⁻¹)'(y; θ)| = -log|τ'(x; θ)|`, or `nil` outside the inverse domain.
    func inverse(_ y: Element, parameters θ: TransformerParameters<Element>) -> (value: Element, logDerivative: Element)?

    /// VJP of ``forward(_:parameters:)`` at `x`: given `g = dL/dy` and `ℓ = dL/d(log-derivative)`,
    /// returns `dL/dx` and overwrites `dL/dθ_p` for every `p` in `parameterGradient`.
    func forwardBackward(
        _ x: Element, parameters θ: TransformerParameters<Element>, outputGradient g: Element, logDerivativeGradient ℓ: Element,
        parameterGradient: TransformerParameterGradient<Element>
    ) -> Element
    /// VJP of ``inverse(_:parameters:)`` at `y`: given `g = dL/dx` and `ℓ = dL/d(log-derivative)`,
    /// returns `dL/dy` and overwrites `dL/dθ_p` for every `p`.
    func inverseBackward(
        _ y: Element, parameters θ: TransformerParameters<Element>, outputGradient g: Element, logDerivativeGradient ℓ: Element,
        parameterGradient: TransformerParameterGradient<Element>
    ) -> Element

    /// Transforms the block of `data` in place (forward, or inverse when `inverse`), reading the
    /// parameters from `h` `[rows, P·m]`, and writes each row's log-determinant into `logAbsDet`
    /// (`[rows]`, overwritten). Returns the first `(row, feature, value)` outside the inverse
    /// domain, or `nil`; rows before it are transformed, the rest are unspecified.
    func apply(
        _ data: UnsafeMutablePointer<Element>, block: TransformedBlock, parameters h: UnsafePointer<Element>,
        logAbsDet: UnsafeMutablePointer<Element>, inverse: Bool
    ) -> (row: Int, feature: Int, value: Element)?

    /// Both VJPs on a block. `input` is the direction's input batch (block entries read through
    /// `block`); `gradient` holds `dL/d(output)` on the block on entry and `dL/d(input)` on return
    /// (entries outside the block untouched); `parameterGradient` `[rows, P·m]` is overwritten.
    func backward(
        input: UnsafePointer<Element>, block: TransformedBlock, parameters h: UnsafePointer<Element>,
        gradient: UnsafeMutablePointer<Element>, logAbsDetGradient: UnsafePointer<Element>,
        parameterGradient: UnsafeMutablePointer<Element>, inverse: Bool
    )

    /// Entries of the state ``apply(_:block:parameters:logAbsDet:inverse:retaining:)`` can leave
    /// for a later backward on the same block and parameters; 0 when the transformer keeps none.
    func retainedCount(block: TransformedBlock) -> Int

    /// ``apply(_:block:parameters:logAbsDet:inverse:)``, also writing into `retaining`
    /// (``retainedCount(block:)`` entries) what the matching backward can reuse instead of
    /// recomputing it (a taped training step runs both at the same parameters).
    func apply(
        _ data: UnsafeMutablePointer<Element>, block: TransformedBlock, parameters h: UnsafePointer<Element>,
        logAbsDet: UnsafeMutablePointer<Element>, inverse: Bool, retaining: UnsafeMutablePointer<Element>
    ) -> (row: Int, feature: Int, value: Element)?

    /// ``backward(input:block:parameters:gradient:logAbsDetGradient:parameterGradient:inverse:)``
    /// reading `retained`, the state a successful ``apply(_:block:parameters:logAbsDet:inverse:retaining:)``
    /// left for this `input`, `block`, `h` and direction; the results are those of the plain form.
    func backward(
        input: UnsafePointer<Element>, block: TransformedBlock, parameters h: UnsafePointer<Element>,
        gradient: UnsafeMutablePointer<Element>, logAbsDetGradient: UnsafePointer<Element>,
        parameterGradient: UnsafeMutablePointer<Element>, inverse: Bool, retained: UnsafePointer<Element>
    )
}

extension CouplingTransformer {
    @inlinable
    public func retainedCount(block: TransformedBlock) -> Int { 0 }

    @inlinable
    public func apply(
        _ data: UnsafeMutablePointer<Element>, block: TransformedBlock, parameters h: UnsafePointer<Element>,
        logAbsDet: UnsafeMutablePointer<Element>, inverse: Bool, retaining: UnsafeMutablePointer<Element>
    ) -> (row: Int, feature: Int, value: Element)? {
        apply(data, block: block, parameters: h, logAbsDet: logAbsDet, inverse: inverse)
    }

    @inlinable
    public func backward(
        input: UnsafePointer<Element>, block: TransformedBlock, parameters h: UnsafePointer<Element>,
        gradient: UnsafeMutablePointer<Element>, logAbsDetGradient: UnsafePointer<Element>,
        parameterGradient: UnsafeMutablePointer<Element>, inverse: Bool, retained: UnsafePointer<Element>
    ) {
        backward(input: input, block: block, parameters: h, gradient: gradient, logAbsDetGradient: logAbsDetGradient,
                 parameterGradient: parameterGradient, inverse: inverse)
    }

    @inlinable
    public func apply(
        _ data: UnsafeMutablePointer<Element>, block: TransformedBlock, parameters h: UnsafePointer<Element>,
        logAbsDet: UnsafeMutablePointer<Element>, inverse: Bool
    ) -> (row: Int, feature: Int, value: Element)? {
        let m = block.features, width = parametersPerFeature * m
        for r in 0..<block.rows {
            var sum: Element = 0
            for j in 0..<m {
                let k = block.index(r, j)
                let θ = TransformerParameters(base: h + r * width + j, stride: m)
                if inverse {
                    guard let (x, logDerivative) = self.inverse(data[k], parameters: θ) else { return (r, j, data[k]) }
                    data[k] = x
                    sum += logDerivative
                } else {
                    let (y, logDerivative) = forward(data[k], parameters: θ)
                    data[k] = y
                    sum += logDerivative
                }
            }
            logAbsDet[r] = sum
        }
        return nil
    }

    @inlinable
    public func backward(
        input: UnsafePointer<Element>, block: TransformedBlock, parameters h: UnsafePointer<Element>,
        gradient: UnsafeMutablePointer<Element>, logAbsDetGradient: UnsafePointer<Element>,
        parameterGradient: UnsafeMutablePointer<Element>, inverse: Bool
    ) {
        let m = block.features, width = parametersPerFeature * m
        for r in 0..<block.rows {
            let ℓ = logAbsDetGradient[r]
            for j in 0..<m {
                let k = block.index(r, j)
                let θ = TransformerParameters(base: h + r * width + j, stride: m)
                let dθ = TransformerParameterGradient(base: parameterGradient + r * width + j, stride: m)
                gradient[k] = inverse
                    ? inverseBackward(input[k], parameters: θ, outputGradient: gradient[k], logDerivativeGradient: ℓ, parameterGradient: dθ)
                    : forwardBackward(input[k], parameters: θ, outputGradient: gradient[k], logDerivativeGradient: ℓ, parameterGradient: dθ)
            }
        }
    }
}
