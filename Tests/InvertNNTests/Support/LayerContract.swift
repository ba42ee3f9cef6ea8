import Testing
import InvertNN

/// Builds a layer of a given feature count in either precision, for ``checkLayerContract``.
///
/// `make` must build the same layer (same parameter values) for the same `features` and `seed` in
/// Float and Double; the helper also copies the Double parameters into the Float layer.
protocol LayerFactory {
    /// A layer on `features` input features with parameters drawn from `seed` (not the identity:
    /// the checks need non-trivial parameters).
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T>
    /// An input batch inside the layer's forward domain. Default: N(0, 1) entries.
    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double>
    /// The side inputs the forward direction reads (concat layers, given noise). Default: none.
    func sideInputs(rows: Int, using generator: inout SeededGenerator) -> [String: Matrix<Double>]
    /// The conditioning context `[rows, contextFeatures]` of a conditional layer, read in both
    /// directions (its gradient is checked like the input's). Default: none.
    func conditioning(rows: Int, using generator: inout SeededGenerator) -> Matrix<Double>?
}

extension LayerFactory {
    func input(rows: Int, features: Int, using generator: inout SeededGenerator) -> Matrix<Double> {
        Matrix.randomNormal(rows: rows, columns: features, using: &generator)
    }

    func sideInputs(rows: Int, using generator: inout SeededGenerator) -> [String: Matrix<Double>] { [:] }

    func conditioning(rows: Int, using generator: inout SeededGenerator) -> Matrix<Double>? { nil }
}

/// One direction of `layer` as a function of its input, with fixed side inputs for forward.
private func directionMap<T: Scalar>(
    _ layer: any InvertibleLayer<T>, forward: Bool, side: [String: Matrix<T>], conditioning: Matrix<T>? = nil
) -> (Matrix<T>) throws -> LayerOutput<T> {
    { input in
        var channels = LayerContext<T>(forward ? side : [:])
        channels.conditioning = conditioning
        return forward ? try layer.forward(input, context: &channels) : try layer.inverse(input, context: &channels)
    }
}

/// Tolerances of the DESIGN.md §5 test contract; override per layer only with a reason.
struct ContractTolerances {
    var roundTrip = 1e-12
    var logDetCancel = 1e-12
    var finiteDifferenceLogDet = 1e-6
    var gradient = 1e-6
    var floatRoundTrip = 1e-5
    var floatVersusDouble = 1e-4
    /// Step of the central differences.
    var step = 1e-6
}

/// Applies the whole DESIGN.md §5 contract to a layer family:
/// 1. round trips both ways, 2. log-dets cancel, 3. log-det vs a finite-difference Jacobian
/// through LAPACK getrf, 4. VJPs (input and every learnable parameter entry) vs central
/// differences in both directions, 5. Float vs Double, 6. a grid of batch sizes and features.
func checkLayerContract(
    _ factory: some LayerFactory,
    features featureList: [Int] = [1, 2, 3, 17, 64],
    batches: [Int] = [1, 2, 7, 64],
    tolerances tol: ContractTolerances = ContractTolerances(),
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    for (fi, features) in featureList.enumerated() {
        for (bi, batch) in batches.enumerated() {
            let seed = UInt64(1000 * fi + bi + 1)
            var rng = SeededGenerator(seed: seed &* 7919)
            let layer = try factory.make(features: features, seed: seed, Double.self)
            let where_ = "\(layer.name) features \(features) batch \(batch)"
            let x = factory.input(rows: batch, features: layer.inputFeatures, using: &rng)
            let side = factory.sideInputs(rows: batch, using: &rng)
            let c = factory.conditioning(rows: batch, using: &rng)
            let forwardMap = directionMap(layer, forward: true, side: side, conditioning: c)
            let inverseMap = directionMap(layer, forward: false, side: side, conditioning: c)

            // 1 & 2: round trips (side inputs restored as side outputs) and cancelling log-dets.
            let fwd = try forwardMap(x)
            var restored = LayerContext<Double>(conditioning: c)
            let back = try layer.inverse(fwd.output, context: &restored)
            let xScale = max(1, x.maxAbs)
            #expect(try (back.output - x).maxAbs <= tol.roundTrip * xScale,
                    "round trip x→y→x \(where_)", sourceLocation: sourceLocation)
            for (name, value) in side {
                let got = restored[name] ?? Matrix(rows: 0, columns: 0)
                #expect(try got.shape == value.shape && ((got - value).maxAbs) <= tol.roundTrip * max(1, value.maxAbs),
                        "side input '\(name)' restored by inverse \(where_)", sourceLocation: sourceLocation)
            }
            #expect(fwd.logAbsDet.count == batch && back.logAbsDet.count == batch,
                    "log-det shape [batch] \(where_)", sourceLocation: sourceLocation)
            for i in 0..<batch {
                let scale = max(1, abs(fwd.logAbsDet[i]))
                #expect(abs(fwd.logAbsDet[i] + back.logAbsDet[i]) <= tol.logDetCancel * scale,
                        "log-dets cancel row \(i) \(where_): \(fwd.logAbsDet[i]) vs \(back.logAbsDet[i])",
                        sourceLocation: sourceLocation)
            }
            let x2 = factory.input(rows: batch, features: layer.inputFeatures, using: &rng)
            let y2 = try forwardMap(x2).output
            var channels2 = LayerContext<Double>(conditioning: c)
            let x2back = try layer.inverse(y2, context: &channels2).output
            let again = try layer.forward(x2back, context: &channels2).output
            #expect(try (again - y2).maxAbs <= tol.roundTrip * max(1, y2.maxAbs),
                    "round trip y→x→y \(where_)", sourceLocation: sourceLocation)

            let small = features <= 17 && batch <= 7
            // 3: log-det against a finite-difference Jacobian (one sample, square layers).
            if small && batch == 1 && layer.inputFeatures == layer.outputFeatures {
                let fdForward = try finiteDifferenceLogAbsDet(x.row(0), step: tol.step) { try forwardMap($0).output }
                #expect(abs(fdForward - fwd.logAbsDet[0]) <= tol.finiteDifferenceLogDet * max(1, abs(fwd.logAbsDet[0])),
                        "forward log-det \(fwd.logAbsDet[0]) vs finite differences \(fdForward) \(where_)",
                        sourceLocation: sourceLocation)
                let fdInverse = try finiteDifferenceLogAbsDet(fwd.output.row(0), step: tol.step) { try inverseMap($0).output }
                #expect(abs(fdInverse - back.logAbsDet[0]) <= tol.finiteDifferenceLogDet * max(1, abs(back.logAbsDet[0])),
                        "inverse log-det \(back.logAbsDet[0]) vs finite differences \(fdInverse) \(where_)",
                        sourceLocation: sourceLocation)
            }

            // 4: gradients in both directions.
            if small {
                try checkGradients(layer, input: x, isForward: true, side: side, conditioning: c, tolerance: tol,
                                   rng: &rng, label: where_, sourceLocation: sourceLocation)
                try checkGradients(layer, input: fwd.output, isForward: false, side: [:], conditioning: c, tolerance: tol,
                                   rng: &rng, label: where_, sourceLocation: sourceLocation)
            }

            // 5: Float against the Double reference, same parameters.
            let floatLayer = try factory.make(features: features, seed: seed, Float.self)
            let doubleParameters = layer.parameters, floatParameters = floatLayer.parameters
            #expect(doubleParameters.count == floatParameters.count, "parameter lists agree \(where_)",
                    sourceLocation: sourceLocation)
            for (p, q) in zip(doubleParameters, floatParameters) { try q.assign(p.value.converted(to: Float.self)) }
            let xf = x.converted(to: Float.self)
            let sideFloat = side.mapValues { $0.converted(to: Float.self) }
            let cf = c?.converted(to: Float.self)
            let ff = try directionMap(floatLayer, forward: true, side: sideFloat, conditioning: cf)(xf)
            let yScale = max(1, fwd.output.maxAbs)
            #expect(try (ff.output.converted(to: Double.self) - fwd.output).maxAbs <= tol.floatVersusDouble * yScale,
                    "Float forward vs Double \(where_)", sourceLocation: sourceLocation)
            for i in 0..<batch {
                #expect(abs(Double(ff.logAbsDet[i]) - fwd.logAbsDet[i]) <= tol.floatVersusDouble * max(1, abs(fwd.logAbsDet[i])),
                        "Float log-det vs Double row \(i) \(where_)", sourceLocation: sourceLocation)
            }
            let fb = try directionMap(floatLayer, forward: false, side: [:], conditioning: cf)(ff.output)
            #expect(Double(try (fb.output - xf).maxAbs) <= tol.floatRoundTrip * xScale * max(1, yScale / xScale),
                    "Float round trip \(where_)", sourceLocation: sourceLocation)
            let fi = try directionMap(floatLayer, forward: false, side: [:], conditioning: cf)(fwd.output.converted(to: Float.self))
            #expect(try (fi.output.converted(to: Double.self) - x).maxAbs <= tol.floatVersusDouble * xScale * max(1, yScale / xScale),
                    "Float inverse vs Double \(where_)", sourceLocation: sourceLocation)
        }
    }
}

/// `log|det J|` of `map` at `point` from a central-difference Jacobian, through LAPACK getrf.
func finiteDifferenceLogAbsDet(
    _ point: [Double], step: Double, _ map: (Matrix<Double>) throws -> Matrix<Double>
) throws -> Double {
    let n = point.count
    var jacobian = Matrix<Double>(rows: n, columns: n)
    for j in 0..<n {
        var plus = point, minus = point
        plus[j] += step
        minus[j] -= step
        let fp = try map(Matrix(row: plus)).storage, fm = try map(Matrix(row: minus)).storage
        for i in 0..<n { jacobian[i, j] = (fp[i] - fm[i]) / (2 * step) }
    }
    return try LAPACK.logAbsDeterminant(jacobian).logAbsDet
}

/// Checks one direction's VJP against central differences of
/// `L = Σ dY ⊙ out + Σ dld ⊙ logAbsDet`, for the input and every learnable parameter entry
/// (at most 150 entries per parameter, chosen at random), the side inputs and the conditioning
/// context, and that fixed entries get exactly 0.
func checkGradients(
    _ layer: any InvertibleLayer<Double>, input: Matrix<Double>, isForward: Bool, side: [String: Matrix<Double>],
    conditioning: Matrix<Double>? = nil,
    tolerance tol: ContractTolerances, rng: inout SeededGenerator, label: String, sourceLocation: SourceLocation
) throws {
    var sideValues = side
    var contextValue = conditioning
    let run: (Matrix<Double>) throws -> LayerOutput<Double> = { input in
        var channels = LayerContext<Double>(sideValues)
        channels.conditioning = contextValue
        return isForward ? try layer.forward(input, context: &channels) : try layer.inverse(input, context: &channels)
    }
    let result = try run(input)
    let dy = Matrix<Double>.randomNormal(rows: result.output.rows, columns: result.output.columns, using: &rng)
    let dld = (0..<input.rows).map { _ in rng.nextNormal(Double.self) }
    func loss(_ x: Matrix<Double>) throws -> Double {
        let r = try run(x)
        var total = 0.0
        for i in 0..<r.output.count { total += dy.storage[i] * r.output.storage[i] }
        for i in 0..<r.logAbsDet.count { total += dld[i] * r.logAbsDet[i] }
        return total
    }
    layer.zeroGradients()
    var channels = LayerContext<Double>(sideValues)
    channels.conditioning = conditioning
    let dx = isForward
        ? try layer.forwardBackward(input: input, output: result.output, outputGradient: dy, logAbsDetGradient: dld,
                                    context: &channels)
        : try layer.inverseBackward(input: input, output: result.output, outputGradient: dy, logAbsDetGradient: dld,
                                    context: &channels)
    let direction = isForward ? "forward" : "inverse"

    var numeric = [Double](repeating: 0, count: input.count)
    for k in 0..<input.count {
        var plus = input, minus = input
        plus.withUnsafeMutableBufferPointer { $0[k] += tol.step }
        minus.withUnsafeMutableBufferPointer { $0[k] -= tol.step }
        numeric[k] = (try loss(plus) - loss(minus)) / (2 * tol.step)
    }
    let inputError = zip(dx.storage, numeric).map { abs($0 - $1) }.max() ?? 0
    let inputScale = max(numeric.map(abs).max() ?? 0, 1e-3)
    #expect(inputError <= tol.gradient * inputScale,
            "\(direction) input gradient error \(inputError) (scale \(inputScale)) \(label)", sourceLocation: sourceLocation)

    for (name, value) in side {
        let analytic = channels.gradients[name] ?? Matrix(rows: value.rows, columns: value.columns)
        var worst = 0.0, scale = 1e-3
        for k in 0..<value.count {
            sideValues[name]!.withUnsafeMutableBufferPointer { $0[k] = value.storage[k] + tol.step }
            let lp = try loss(input)
            sideValues[name]!.withUnsafeMutableBufferPointer { $0[k] = value.storage[k] - tol.step }
            let lm = try loss(input)
            sideValues[name] = value
            let fd = (lp - lm) / (2 * tol.step)
            worst = max(worst, abs(fd - analytic.storage[k]))
            scale = max(scale, abs(fd))
        }
        #expect(worst <= tol.gradient * scale, "\(direction) gradient of side input '\(name)': error \(worst) \(label)",
                sourceLocation: sourceLocation)
    }

    if let conditioning {
        let analytic = channels.conditioningGradient ?? Matrix(rows: conditioning.rows, columns: conditioning.columns)
        #expect(analytic.shape == conditioning.shape, "\(direction) context gradient shape \(label)", sourceLocation: sourceLocation)
        var worst = 0.0, scale = 1e-3
        for k in 0..<conditioning.count {
            contextValue!.withUnsafeMutableBufferPointer { $0[k] = conditioning.storage[k] + tol.step }
            let lp = try loss(input)
            contextValue!.withUnsafeMutableBufferPointer { $0[k] = conditioning.storage[k] - tol.step }
            let lm = try loss(input)
            contextValue = conditioning
            let fd = (lp - lm) / (2 * tol.step)
            worst = max(worst, abs(fd - analytic.storage[k]))
            scale = max(scale, abs(fd))
        }
        #expect(worst <= tol.gradient * scale, "\(direction) gradient of the context: error \(worst) (scale \(scale)) \(label)",
                sourceLocation: sourceLocation)
    }

    for parameter in layer.parameters {
        let analytic = parameter.gradient.storage
        var entries = [Int]()
        for k in 0..<parameter.count {
            if let mask = parameter.trainableMask, !mask[k] {
                #expect(analytic[k] == 0, "fixed entry \(k) of \(parameter.name) has gradient \(analytic[k]) \(label)",
                        sourceLocation: sourceLocation)
            } else {
                entries.append(k)
            }
        }
        if entries.count > 150 { entries.shuffle(using: &rng); entries = Array(entries.prefix(150)) }
        var worst = 0.0, scale = 1e-3
        for k in entries {
            let saved = parameter.value.storage[k]
            parameter.withUnsafeMutableValue { $0[k] = saved + tol.step }
            let lp = try loss(input)
            parameter.withUnsafeMutableValue { $0[k] = saved - tol.step }
            let lm = try loss(input)
            parameter.withUnsafeMutableValue { $0[k] = saved }
            let fd = (lp - lm) / (2 * tol.step)
            worst = max(worst, abs(fd - analytic[k]))
            scale = max(scale, abs(fd))
        }
        #expect(worst <= tol.gradient * scale,
                "\(direction) gradient of \(parameter.name): error \(worst) (scale \(scale)) \(label)",
                sourceLocation: sourceLocation)
    }
    layer.zeroGradients()
}
