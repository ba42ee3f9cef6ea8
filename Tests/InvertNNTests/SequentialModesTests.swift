import Testing
import InvertNN

/// Tape mode (taped pass + `backward`, with retained coupling traces) against rebuilding mode
/// (`forwardBackward` / `inverseBackward`, inputs rebuilt by inversion, nothing retained).
@Suite struct SequentialModesTests {
    /// A small flow of the benchmark's kind: InvertibleLinear and AffineCoupling alternating, plus
    /// a Householder layer on the blocked path with a partial last block.
    func makeFlow(features n: Int, seed: UInt64) throws -> Sequential<Double> {
        var rng = SeededGenerator(seed: seed)
        var layers = [any InvertibleLayer<Double>]()
        for k in 0..<3 {
            let linear = try InvertibleLinear<Double>(features: n, using: &rng)
            try linear.scale.logScale.assign(Matrix.randomNormal(rows: 1, columns: n, standardDeviation: 0.3, using: &rng))
            layers.append(linear)
            layers.append(try AffineCoupling<Double>(
                features: n, hiddenSizes: [16], conditioningBlock: k % 2 == 0 ? .first : .second,
                zeroInitializeLastLayer: false, using: &rng))
        }
        let householder = try Householder<Double>(features: n, reflectors: n - 2, using: &rng)
        householder.strategy = .blocked
        householder.blockSize = 4
        layers.append(householder)
        return try Sequential(layers)
    }

    func gradients(_ flow: Sequential<Double>) -> [Double] { flow.parameters.flatMap { $0.gradient.storage } }

    @Test(arguments: [true, false])
    func rebuildingMatchesTape(isForward: Bool) throws {
        let n = 11, batch = 9
        let flow = try makeFlow(features: n, seed: 3)
        var rng = SeededGenerator(seed: 8)
        let input = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
        let dOut = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
        let dld = (0..<batch).map { _ in rng.nextNormal(Double.self) }

        flow.zeroGradients()
        let (out, tape) = isForward ? try flow.forwardTaped(input) : try flow.inverseTaped(input)
        let dInTape = try flow.backward(tape, outputGradient: dOut, logAbsDetGradient: dld)
        let tapeGradients = gradients(flow)

        flow.zeroGradients()
        let plain = isForward ? try flow.forward(input) : try flow.inverse(input)
        // Not bitwise: W cached by the taped pass's backward can move a Householder to the other path.
        #expect(try (plain.output - out.output).maxAbs <= 1e-12 * max(1, out.output.maxAbs))
        let dInRebuilt = isForward
            ? try flow.forwardBackward(input: input, output: plain.output, outputGradient: dOut, logAbsDetGradient: dld)
            : try flow.inverseBackward(input: input, output: plain.output, outputGradient: dOut, logAbsDetGradient: dld)
        let rebuiltGradients = gradients(flow)

        let inputError = try (dInTape - dInRebuilt).maxAbs / max(dInTape.maxAbs, 1e-300)
        #expect(inputError <= 1e-10, "input gradient relative error \(inputError)")
        let scale = tapeGradients.map(abs).max() ?? 0
        let worst = zip(tapeGradients, rebuiltGradients).map { abs($0 - $1) }.max() ?? 0
        #expect(scale > 0)
        #expect(worst <= 1e-10 * scale, "parameter gradient relative error \(worst / scale)")
    }

    /// A retained conditioner trace is not used after the parameters change or for another input.
    @Test func retainedTraceIsChecked() throws {
        var rng = SeededGenerator(seed: 4)
        let layer = try AffineCoupling<Double>(features: 6, hiddenSizes: [8], zeroInitializeLastLayer: false, using: &rng)
        let x = Matrix<Double>.randomNormal(rows: 5, columns: 6, using: &rng)
        let dy = Matrix<Double>.randomNormal(rows: 5, columns: 6, using: &rng)
        let dld = [Double](repeating: 0.5, count: 5)
        func freshGradient() throws -> Matrix<Double> {
            let y = try layer.forward(x).output
            return try layer.forwardBackward(input: x, output: y, outputGradient: dy, logAbsDetGradient: dld)
        }
        // Same parameters and input: the retained trace gives the recomputed result.
        let y = try layer.forwardRetaining(x).output
        let retained = try layer.forwardBackward(input: x, output: y, outputGradient: dy, logAbsDetGradient: dld)
        #expect(try (retained - freshGradient()).maxAbs <= 1e-14)
        // A parameter changed after the retaining call: the stale trace must not be used.
        _ = try layer.forwardRetaining(x)
        layer.conditioner.weights[0].withUnsafeMutableValue { $0[0] += 0.25 }  // [0, 0]
        let afterChange = try layer.forwardBackward(input: x, output: layer.forward(x).output, outputGradient: dy, logAbsDetGradient: dld)
        #expect(try (afterChange - freshGradient()).maxAbs <= 1e-14)
        // Another input: recomputed too.
        _ = try layer.forwardRetaining(x)
        let x2 = Matrix<Double>.randomNormal(rows: 5, columns: 6, using: &rng)
        let y2 = try layer.forward(x2).output
        let other = try layer.forwardBackward(input: x2, output: y2, outputGradient: dy, logAbsDetGradient: dld)
        let y2b = try layer.forward(x2).output
        #expect(try (other - layer.forwardBackward(input: x2, output: y2b, outputGradient: dy, logAbsDetGradient: dld)).maxAbs <= 1e-14)
    }
}
