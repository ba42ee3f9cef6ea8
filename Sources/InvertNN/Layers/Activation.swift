import RealModule

/// An elementwise activation as an invertible layer: the scalar bijection `Map` applied to every
/// entry, `y_ij = f(x_ij; θ_j)`, with an optional learnable per-feature parameter `θ`. The
/// activations of the library are this class over their maps (``Sigmoid``, ``Tanh``,
/// ``LeakyReLU``, ``PReLU``, ``ELU``, ``SELU``, ``Baird``, ``RangeCompression``); a new one is an
/// ``ActivationMap`` and one ``LayerRegistry`` line.
///
/// The Jacobian is diagonal, so `logAbsDet[i] = Σ_j log|f'(x_ij)|` (nats, per sample).
/// Vector-Jacobian products, with upstream `g = dL/d(output)` and `d = dL/dlogAbsDet[i]`, and the
/// partials `f'`, `s = (log f')'`, `p = ∂f/∂θ`, `l = ∂ log f'/∂θ` at the matching pair `(x, y)`
/// (``ElementwisePartials``):
/// - forward:  `dL/dx = g·f' + d·s`, `dL/dθ_j += Σ_i g·p + d·l`;
/// - inverse (`x = f⁻¹(y)`, log-det `-log f'(x)`): `dL/dy = (g - d·s) / f'`,
///   `dL/dθ_j += Σ_i -p·dL/dy - d·l` (from `∂x/∂θ = -p/f'`).
///
/// - Shapes: `x`, `y` `[batch, features]`; the parameter (if the map has one) `[1, features]`.
/// - Checkpoints: `{"type": Map.typeName, "features": D, …the map's configuration}`, and the
///   parameter under ``ActivationMap/parameterName``.
/// - Throws: ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` with the layer's name,
///   the value and its `[row, feature]` position for a non-finite input in either direction or an
///   inverse input outside the map's inverse domain; ``InvertNNError/nonFinite(operation:row:column:)``
///   naming the parameter and entry if a parameter value is NaN or infinite, and whatever
///   ``ActivationMap/bound(to:layer:)`` throws; shape errors as every layer.
public final class Activation<T: Scalar, Map: ActivationMap>: InvertibleLayer, RebuildableLayer where Map.Element == T {
    public typealias Element = T

    /// The feature count of every sample, `[batch, features]`.
    public let features: Int
    /// The bijection with its hyper-parameters (bound to the parameter values at each call).
    public let map: Map
    /// The per-feature parameter `θ` `[1, features]`, or `nil` if the map has none.
    public let parameter: Parameter<T>?
    public let parameters: [Parameter<T>]

    /// An activation on `features` features with initial parameter values `parameter` (default
    /// ``ActivationMap/initialParameter`` for every feature; only for a map with a parameter).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`, or
    ///   `parameter` is given for a map without one, has the wrong length or non-finite entries.
    public init(features: Int, map: Map, parameter values: [T]? = nil) throws {
        try SizeLimits.features(features, operation: Map.typeName)
        if let name = Map.parameterName {
            let values = values ?? [T](repeating: Map.initialParameter, count: features)
            guard values.count == features, values.allSatisfy({ $0.isFinite }) else {
                throw InvertNNError.invalidArgument(
                    operation: Map.typeName, reason: "\(name) must have \(features) finite entries, got \(values)")
            }
            parameter = Parameter(name: name, value: Matrix(row: values))
        } else {
            guard values == nil else {
                throw InvertNNError.invalidArgument(operation: Map.typeName, reason: "the map has no parameter")
            }
            parameter = nil
        }
        self.features = features
        self.map = map
        self.parameters = parameter.map { [$0] } ?? []
    }

    public var name: String { map.layerName(features: features) }
    public var inputFeatures: Int { features }
    public var outputFeatures: Int { features }

    /// The feature count and the map's hyper-parameters, written as one object
    /// `{"features": D, …the map's fields}`.
    public struct Configuration: Codable, Sendable, Equatable {
        /// `D`, the features of `[batch, D]`.
        public var features: Int
        /// The map's hyper-parameters.
        public var map: Map.Configuration

        /// The configuration of an activation on `features` features.
        public init(features: Int, map: Map.Configuration) {
            self.features = features
            self.map = map
        }

        private enum Keys: String, CodingKey { case features }

        public init(from decoder: any Decoder) throws {
            features = try decoder.container(keyedBy: Keys.self).decode(Int.self, forKey: .features)
            map = try Map.Configuration(from: decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(features, forKey: .features)
            try map.encode(to: encoder)  // the map's fields join "features" in the same object
        }
    }

    public static var typeName: String { Map.typeName }
    public var configuration: Configuration { Configuration(features: features, map: map.configuration) }

    /// The activation described by `configuration`, with the initial parameter values.
    ///
    /// - Throws: as ``init(features:map:parameter:)`` and ``ActivationMap/init(configuration:)``.
    public convenience init(configuration: Configuration) throws {
        try self.init(features: configuration.features, map: try Map(configuration: configuration.map))
    }

    /// The map bound to the current parameter values, after checking that they are finite.
    @inline(__always)
    func boundMap() throws -> Map {
        guard let parameter else { return map }
        let values = parameter.value.storage
        if let j = values.firstIndex(where: { !$0.isFinite }) {
            throw InvertNNError.nonFinite(operation: "\(name) parameter \(parameter.name)", row: 0, column: j)
        }
        return try map.bound(to: values, layer: name)
    }

    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try apply(x, inverse: false)
    }

    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try apply(y, inverse: true)
    }

    public func forwardBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try backward(input: input, output: output, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient, inverse: false)
    }

    public func inverseBackward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient: [T], context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try backward(input: input, output: output, outputGradient: outputGradient, logAbsDetGradient: logAbsDetGradient, inverse: true)
    }

    // The two kernels are specialized on every map of the library, so that their loops inline
    // each map's per-entry code (the maps mark it @inline(__always)); `inverse` is loop-invariant.

    /// ``forward(_:context:)`` or, with `inverse`, ``inverse(_:context:)`` of `input` `[B, features]`.
    @_specialize(where T == Float, Map == SigmoidMap<Float>)
    @_specialize(where T == Double, Map == SigmoidMap<Double>)
    @_specialize(where T == Float, Map == TanhMap<Float>)
    @_specialize(where T == Double, Map == TanhMap<Double>)
    @_specialize(where T == Float, Map == LeakyReLUMap<Float>)
    @_specialize(where T == Double, Map == LeakyReLUMap<Double>)
    @_specialize(where T == Float, Map == PReLUMap<Float>)
    @_specialize(where T == Double, Map == PReLUMap<Double>)
    @_specialize(where T == Float, Map == ELUMap<Float>)
    @_specialize(where T == Double, Map == ELUMap<Double>)
    @_specialize(where T == Float, Map == SELUMap<Float>)
    @_specialize(where T == Double, Map == SELUMap<Double>)
    @_specialize(where T == Float, Map == BairdMap<Float>)
    @_specialize(where T == Double, Map == BairdMap<Double>)
    @_specialize(where T == Float, Map == RangeCompressionMap<Float>)
    @_specialize(where T == Double, Map == RangeCompressionMap<Double>)
    func apply(_ input: Matrix<T>, inverse: Bool) throws -> LayerOutput<T> {
        let operation = inverse ? "inverse" : "forward"
        try input.requireColumns(features, "\(name).\(operation)")
        let map = try boundMap()
        let n = features
        var output = input
        var logAbsDet = [T](repeating: 0, count: input.rows)
        try input.storage.withUnsafeBufferPointer { source in
            try output.storage.withUnsafeMutableBufferPointer { target in
                for r in 0..<input.rows {
                    var sum: T = 0
                    for j in 0..<n {
                        let value = source[r * n + j]
                        let result = !value.isFinite ? nil
                            : inverse ? map.inverse(value, feature: j) : map.forward(value, feature: j)
                        guard let (mapped, logDerivative) = result else {
                            throw InvertNNError.outOfDomain(
                                layer: "\(name).\(operation)", value: Double(value), row: r, column: j,
                                domain: value.isFinite ? map.inverseDomain(feature: j) : ActivationMath.realLine)
                        }
                        target[r * n + j] = mapped
                        sum += logDerivative
                    }
                    logAbsDet[r] = sum
                }
            }
        }
        return LayerOutput(output: output, logAbsDet: logAbsDet)
    }

    /// ``forwardBackward(input:output:outputGradient:logAbsDetGradient:context:)`` or, with
    /// `inverse`, ``inverseBackward(input:output:outputGradient:logAbsDetGradient:context:)``.
    @_specialize(where T == Float, Map == SigmoidMap<Float>)
    @_specialize(where T == Double, Map == SigmoidMap<Double>)
    @_specialize(where T == Float, Map == TanhMap<Float>)
    @_specialize(where T == Double, Map == TanhMap<Double>)
    @_specialize(where T == Float, Map == LeakyReLUMap<Float>)
    @_specialize(where T == Double, Map == LeakyReLUMap<Double>)
    @_specialize(where T == Float, Map == PReLUMap<Float>)
    @_specialize(where T == Double, Map == PReLUMap<Double>)
    @_specialize(where T == Float, Map == ELUMap<Float>)
    @_specialize(where T == Double, Map == ELUMap<Double>)
    @_specialize(where T == Float, Map == SELUMap<Float>)
    @_specialize(where T == Double, Map == SELUMap<Double>)
    @_specialize(where T == Float, Map == BairdMap<Float>)
    @_specialize(where T == Double, Map == BairdMap<Double>)
    @_specialize(where T == Float, Map == RangeCompressionMap<Float>)
    @_specialize(where T == Double, Map == RangeCompressionMap<Double>)
    func backward(
        input: Matrix<T>, output: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient dld: [T], inverse: Bool
    ) throws -> Matrix<T> {
        try validateBackward(inverse ? "inverseBackward" : "forwardBackward", input: input, inFeatures: features,
                             output: output, outFeatures: features, outputGradient: outputGradient, logAbsDetGradient: dld)
        let map = try boundMap()
        // The partials are those of the forward map at its pair (x, y = f(x)).
        let (x, y) = inverse ? (output, input) : (input, output)
        let n = features
        var inputGradient = outputGradient
        var dTheta = [T](repeating: 0, count: parameter == nil ? 0 : n)
        for r in 0..<input.rows {
            let d = dld[r]
            for j in 0..<n {
                let k = r * n + j
                let p = map.partials(input: x.storage[k], output: y.storage[k], feature: j)
                let g = outputGradient.storage[k]
                if inverse {
                    let dy = p.reciprocalDerivative * (g - d * p.logDerivativeSlope)
                    inputGradient.storage[k] = dy
                    if parameter != nil { dTheta[j] -= p.parameterSlope * dy + d * p.logDerivativeParameterSlope }
                } else {
                    inputGradient.storage[k] = g * p.derivative + d * p.logDerivativeSlope
                    if parameter != nil { dTheta[j] += g * p.parameterSlope + d * p.logDerivativeParameterSlope }
                }
            }
        }
        if let parameter { for j in 0..<n { parameter.gradient.storage[j] += dTheta[j] } }
        return inputGradient
    }
}

extension Activation where Map.Configuration == NoConfiguration {
    /// An activation on `features` features whose map has no hyper-parameters, with the map's
    /// initial parameter values if it has a parameter.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `features < 1`.
    public convenience init(features: Int) throws {
        try self.init(features: features, map: try Map(configuration: NoConfiguration()))
    }
}
