import RealModule

/// The additive transformer of NICE (Dinh et al. 2014, "NICE: Non-linear Independent Components
/// Estimation", §3.2 eq. 4): `y = x + t`, volume preserving (log-derivative 0).
///
/// - Conditioner outputs (`P = 1`): the shift `t`, laid out `h[row, j]`.
/// - The inverse is `x = y - t` on all reals; gradients: `dL/dx = dL/dy`, `dL/dt = dL/dy`
///   forward, `dL/dt = -dL/dx` inverse.
public struct AdditiveTransformer<T: Scalar>: CouplingTransformer {
    public typealias Element = T

    /// No hyper-parameters.
    public struct Configuration: Codable, Sendable, Equatable {
        public init() {}
    }

    /// The additive transformer (it has no hyper-parameters).
    public init() {}

    /// The additive transformer (the configuration is empty).
    public init(configuration: Configuration) {}

    public var parametersPerFeature: Int { 1 }
    public var configuration: Configuration { Configuration() }
    public var name: String { "additive" }
    public static var couplingTypeName: String { "AdditiveCoupling" }

    public func forward(_ x: T, parameters θ: TransformerParameters<T>) -> (value: T, logDerivative: T) { (x + θ[0], 0) }

    public func inverse(_ y: T, parameters θ: TransformerParameters<T>) -> (value: T, logDerivative: T)? { (y - θ[0], 0) }

    public func forwardBackward(
        _ x: T, parameters θ: TransformerParameters<T>, outputGradient g: T, logDerivativeGradient ℓ: T,
        parameterGradient dθ: TransformerParameterGradient<T>
    ) -> T {
        dθ[0] = g
        return g
    }

    public func inverseBackward(
        _ y: T, parameters θ: TransformerParameters<T>, outputGradient g: T, logDerivativeGradient ℓ: T,
        parameterGradient dθ: TransformerParameterGradient<T>
    ) -> T {
        dθ[0] = -g
        return g
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func apply(
        _ data: UnsafeMutablePointer<T>, block: TransformedBlock, parameters h: UnsafePointer<T>,
        logAbsDet: UnsafeMutablePointer<T>, inverse: Bool
    ) -> (row: Int, feature: Int, value: T)? {
        let m = block.features, sign: T = inverse ? -1 : 1
        for r in 0..<block.rows {
            let o = block.index(r, 0), ho = r * m
            for j in 0..<m { data[o + j] += sign * h[ho + j] }
            logAbsDet[r] = 0
        }
        return nil
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(
        input: UnsafePointer<T>, block: TransformedBlock, parameters h: UnsafePointer<T>,
        gradient: UnsafeMutablePointer<T>, logAbsDetGradient: UnsafePointer<T>,
        parameterGradient dh: UnsafeMutablePointer<T>, inverse: Bool
    ) {
        let m = block.features, sign: T = inverse ? -1 : 1
        for r in 0..<block.rows {
            let o = block.index(r, 0), ho = r * m
            for j in 0..<m { dh[ho + j] = sign * gradient[o + j] }
        }
    }
}
