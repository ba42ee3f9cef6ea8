import RealModule

/// Local derivatives of one scalar bijection `y = f(x; θ)` at a matching pair `(x, y)`.
///
/// These five numbers are all an elementwise layer needs for the vector-Jacobian products of
/// both directions: the inverse direction's partials follow from the forward ones by the inverse
/// function theorem (see ``ElementwiseLayer``), so each activation states its calculus once.
struct ElementwisePartials<T: Scalar> {
    /// `f'(x)`.
    var derivative: T
    /// `1 / f'(x) = (f⁻¹)'(y)`, computed directly (not as `1 / derivative`) so that it stays
    /// accurate where `f'` is tiny.
    var reciprocalDerivative: T
    /// `d log f'(x) / dx = f''(x) / f'(x)`.
    var logDerivativeSlope: T
    /// `∂f/∂θ` for the layer's per-feature parameter (0 for parameterless maps).
    var parameterSlope: T = 0
    /// `∂ log f'(x) / ∂θ` (0 for parameterless maps).
    var logDerivativeParameterSlope: T = 0
}

/// One scalar bijection applied to every entry of a batch, feature `j` possibly with its own
/// parameter. A map is a small value built by its layer for one call (it captures the current
/// parameter values, precomputed per feature), so the generic loops of ``ElementwiseLayer`` are
/// specialized on the concrete map and inline its per-element code (no closures, no existentials).
protocol ElementwiseMap {
    associatedtype Element: Scalar
    /// `f(x)` and `log f'(x)` for feature `feature`. `x` is finite.
    func forward(_ x: Element, feature: Int) -> (value: Element, logDerivative: Element)
    /// `f⁻¹(y)` and `log (f⁻¹)'(y) = -log f'(f⁻¹(y))`, or `nil` when `y` (finite) lies outside
    /// the inverse domain.
    func inverse(_ y: Element, feature: Int) -> (value: Element, logDerivative: Element)?
    /// The local derivatives at the matching pair `x`, `y = f(x)`.
    func partials(input x: Element, output y: Element, feature: Int) -> ElementwisePartials<Element>
    /// The inverse domain of feature `feature`, for error messages (e.g. `"(-1, 1)"`).
    func inverseDomain(feature: Int) -> String
}

/// The shared machinery of the elementwise activations: an ``InvertibleLayer`` whose map acts on
/// each entry independently, so the Jacobian is diagonal and
/// `logAbsDet[i] = Σ_j log|f'(x_ij)|` (nats, per sample).
///
/// Vector-Jacobian products, with upstream `g = dL/d(output)` and `d = dL/dlogAbsDet[i]`, and the
/// partials `f'`, `s = (log f')'`, `p = ∂f/∂θ`, `l = ∂ log f'/∂θ` at the matching pair `(x, y)`:
/// - forward:  `dL/dx = g·f' + d·s`, `dL/dθ_j += Σ_i g·p + d·l`;
/// - inverse (`x = f⁻¹(y)`, log-det `-log f'(x)`): `dL/dy = (g - d·s) / f'`,
///   `dL/dθ_j += Σ_i -p·dL/dy - d·l` (from `∂x/∂θ = -p/f'`).
///
/// Errors: a non-finite input in either direction, or an inverse input outside the map's inverse
/// domain, throws ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` with the layer's
/// name, the value and its `[row, feature]` position.
protocol ElementwiseLayer: InvertibleLayer {
    associatedtype Map: ElementwiseMap where Map.Element == Element
    /// Features per sample (input and output).
    var features: Int { get }
    /// The layer's per-feature learnable parameter `θ` (`[1, features]`), or `nil`.
    var perFeatureParameter: Parameter<Element>? { get }
    /// The map with the current parameter values.
    func makeMap() -> Map
}

extension ElementwiseLayer {
    /// Domain description used for non-finite inputs.
    var finiteDomain: String { "finite reals (-∞, ∞)" }

    func elementwiseForward(_ x: Matrix<Element>) throws -> LayerOutput<Element> {
        try requireParameterShapes()
        try x.requireColumns(features, "\(name).forward")
        let map = makeMap()
        let n = features
        var y = x
        var logAbsDet = [Element](repeating: 0, count: x.rows)
        try x.storage.withUnsafeBufferPointer { source in
            try y.storage.withUnsafeMutableBufferPointer { target in
                for r in 0..<x.rows {
                    var sum: Element = 0
                    for j in 0..<n {
                        let value = source[r * n + j]
                        guard value.isFinite else {
                            throw InvertNNError.outOfDomain(
                                layer: "\(name).forward", value: Double(value), row: r, column: j, domain: finiteDomain)
                        }
                        let (output, logDerivative) = map.forward(value, feature: j)
                        target[r * n + j] = output
                        sum += logDerivative
                    }
                    logAbsDet[r] = sum
                }
            }
        }
        return LayerOutput(output: y, logAbsDet: logAbsDet)
    }

    func elementwiseInverse(_ y: Matrix<Element>) throws -> LayerOutput<Element> {
        try requireParameterShapes()
        try y.requireColumns(features, "\(name).inverse")
        let map = makeMap()
        let n = features
        var x = y
        var logAbsDet = [Element](repeating: 0, count: y.rows)
        try y.storage.withUnsafeBufferPointer { source in
            try x.storage.withUnsafeMutableBufferPointer { target in
                for r in 0..<y.rows {
                    var sum: Element = 0
                    for j in 0..<n {
                        let value = source[r * n + j]
                        guard value.isFinite, let (output, logDerivative) = map.inverse(value, feature: j) else {
                            throw InvertNNError.outOfDomain(
                                layer: "\(name).inverse", value: Double(value), row: r, column: j,
                                domain: value.isFinite ? map.inverseDomain(feature: j) : finiteDomain)
                        }
                        target[r * n + j] = output
                        sum += logDerivative
                    }
                    logAbsDet[r] = sum
                }
            }
        }
        return LayerOutput(output: x, logAbsDet: logAbsDet)
    }

    func elementwiseForwardBackward(
        input x: Matrix<Element>, output y: Matrix<Element>, outputGradient dy: Matrix<Element>,
        logAbsDetGradient dld: [Element]
    ) throws -> Matrix<Element> {
        try requireParameterShapes()
        try validateBackward("forwardBackward", input: x, inFeatures: features, output: y, outFeatures: features,
                             outputGradient: dy, logAbsDetGradient: dld)
        let map = makeMap()
        let n = features
        let parameter = perFeatureParameter
        var dx = dy
        var dTheta = [Element](repeating: 0, count: parameter == nil ? 0 : n)
        for r in 0..<x.rows {
            let d = dld[r]
            for j in 0..<n {
                let k = r * n + j
                let p = map.partials(input: x.storage[k], output: y.storage[k], feature: j)
                let g = dy.storage[k]
                dx.storage[k] = g * p.derivative + d * p.logDerivativeSlope
                if parameter != nil { dTheta[j] += g * p.parameterSlope + d * p.logDerivativeParameterSlope }
            }
        }
        if let parameter { for j in 0..<n { parameter.gradient.storage[j] += dTheta[j] } }
        return dx
    }

    func elementwiseInverseBackward(
        input y: Matrix<Element>, output x: Matrix<Element>, outputGradient dx: Matrix<Element>,
        logAbsDetGradient dld: [Element]
    ) throws -> Matrix<Element> {
        try requireParameterShapes()
        try validateBackward("inverseBackward", input: y, inFeatures: features, output: x, outFeatures: features,
                             outputGradient: dx, logAbsDetGradient: dld)
        let map = makeMap()
        let n = features
        let parameter = perFeatureParameter
        var dy = dx
        var dTheta = [Element](repeating: 0, count: parameter == nil ? 0 : n)
        for r in 0..<y.rows {
            let d = dld[r]
            for j in 0..<n {
                let k = r * n + j
                let p = map.partials(input: x.storage[k], output: y.storage[k], feature: j)
                let g = p.reciprocalDerivative * (dx.storage[k] - d * p.logDerivativeSlope)
                dy.storage[k] = g
                if parameter != nil { dTheta[j] -= p.parameterSlope * g + d * p.logDerivativeParameterSlope }
            }
        }
        if let parameter { for j in 0..<n { parameter.gradient.storage[j] += dTheta[j] } }
        return dy
    }
}

/// Numerically stable scalar building blocks shared by the activations.
enum ActivationMath {
    /// `softplus(x) = log(1 + eˣ)` without overflow: `max(x, 0) + log1p(e^{-|x|})`.
    @inline(__always)
    static func softplus<T: Scalar>(_ x: T) -> T {
        Swift.max(x, 0) + T.log(onePlus: T.exp(-Swift.abs(x)))
    }

    /// The logistic sigmoid `1 / (1 + e^{-x})`, evaluated so that `e^{±x}` never overflows.
    @inline(__always)
    static func sigmoid<T: Scalar>(_ x: T) -> T {
        let e = T.exp(-Swift.abs(x))
        return x >= 0 ? 1 / (1 + e) : e / (1 + e)
    }

    /// `log σ'(x) = -softplus(x) - softplus(-x) = -|x| - 2·log1p(e^{-|x|})`, finite for every finite x.
    @inline(__always)
    static func logSigmoidDerivative<T: Scalar>(_ x: T) -> T {
        -Swift.abs(x) - 2 * T.log(onePlus: T.exp(-Swift.abs(x)))
    }

    /// `log cosh(x) = |x| - log 2 + log1p(e^{-2|x|})`, finite for every finite x.
    @inline(__always)
    static func logCosh<T: Scalar>(_ x: T) -> T {
        Swift.abs(x) - T.log(2) + T.log(onePlus: T.exp(-2 * Swift.abs(x)))
    }

    /// `sech(x) = 2e^{-|x|} / (1 + e^{-2|x|})`, which underflows to 0 instead of dividing by ∞.
    @inline(__always)
    static func sech<T: Scalar>(_ x: T) -> T {
        let a = T.exp(-Swift.abs(x))
        return 2 * a / (1 + a * a)
    }
}
