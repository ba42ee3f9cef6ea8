import Testing
import InvertNN

@Suite struct Conv2DTests {
    /// The definition, one output entry at a time (the reference the GEMM form must match).
    static func directConvolution(_ conv: Conv2D<Double>, _ x: Matrix<Double>) -> Matrix<Double> {
        let (ci, co, k, h, w) = (conv.inputChannels, conv.outputChannels, conv.kernelSize, conv.height, conv.width)
        let pad = (k - 1) / 2
        var out = Matrix<Double>(rows: x.rows, columns: co * h * w)
        for b in 0..<x.rows {
            for o in 0..<co {
                for r in 0..<h {
                    for c in 0..<w {
                        var sum = conv.bias.value[0, o]
                        for channel in 0..<ci {
                            for i in 0..<k {
                                for j in 0..<k {
                                    let sr = r + i - pad, sc = c + j - pad
                                    guard sr >= 0, sr < h, sc >= 0, sc < w else { continue }
                                    sum += conv.weight.value[o, (channel * k + i) * k + j] * x[b, (channel * h + sr) * w + sc]
                                }
                            }
                        }
                        out[b, (o * h + r) * w + c] = sum
                    }
                }
            }
        }
        return out
    }

    /// (C_in, C_out, k, H, W, batch) cases: both kernel sizes, non-square images, a 1-pixel-wide
    /// image (every 3×3 neighbour but the centre column is padding), batch 1, and a 5×5 kernel
    /// wider and taller than its 2×1 image; then the same kinds with at least 8 input channels,
    /// which run as shifted GEMMs over padded planes instead of im2col (k > 1).
    static let cases = [(2, 3, 3, 4, 5, 3), (3, 2, 1, 3, 4, 2), (1, 4, 3, 1, 6, 2), (2, 2, 3, 5, 1, 1), (4, 3, 3, 3, 3, 2), (1, 2, 5, 2, 1, 2),
                        (8, 3, 3, 4, 5, 3), (9, 2, 1, 3, 4, 2), (8, 4, 3, 1, 6, 2), (10, 2, 3, 5, 1, 1), (8, 3, 5, 2, 1, 2), (12, 5, 3, 3, 3, 1)]

    static func make(_ c: (Int, Int, Int, Int, Int, Int), seed: UInt64) throws -> (Conv2D<Double>, Matrix<Double>) {
        var g = SeededGenerator(seed: seed)
        let conv = try Conv2D<Double>(
            inputChannels: c.0, outputChannels: c.1, kernelSize: c.2, height: c.3, width: c.4, using: &g)
        for i in 0..<conv.bias.count { conv.bias.withUnsafeMutableValue { $0[i] = g.nextNormal(Double.self) } }
        return (conv, Matrix.randomNormal(rows: c.5, columns: conv.inputFeatures, using: &g))
    }

    @Test func matchesTheDirectLoopInDoubleAndFloat() throws {
        for (n, c) in Self.cases.enumerated() {
            let (conv, x) = try Self.make(c, seed: UInt64(n + 1))
            let expected = Self.directConvolution(conv, x)
            let got = try conv(x)
            #expect(try (got - expected).maxAbs <= 1e-12 * max(1, expected.maxAbs), "case \(c)")
            let float = try Conv2D<Float>(
                weight: conv.weight.value.converted(to: Float.self), bias: conv.bias.value.storage.map { Float($0) },
                inputChannels: c.0, kernelSize: c.2, height: c.3, width: c.4)
            let gotFloat = try float(x.converted(to: Float.self)).converted(to: Double.self)
            #expect(try (gotFloat - expected).maxAbs <= 1e-5 * max(1, expected.maxAbs), "Float case \(c)")
        }
    }

    /// `L = Σ dO ⊙ out`: the input, weight and bias gradients against central differences.
    @Test func backwardMatchesFiniteDifferences() throws {
        for (n, c) in Self.cases.enumerated() {
            let (conv, x) = try Self.make(c, seed: UInt64(n + 10))
            var g = SeededGenerator(seed: UInt64(n + 100))
            let dOut = Matrix<Double>.randomNormal(rows: x.rows, columns: conv.outputFeatures, using: &g)
            let dx = try conv.backward(try conv.forward(x), outputGradient: dOut)
            try checkNetworkGradients(input: x, outputGradient: dOut, inputGradient: dx, parameters: conv.parameters,
                                      label: "case \(c)") { try conv($0) }
            // Gradients accumulate: a second backward doubles them.
            let once = conv.weight.gradient
            _ = try conv.backward(try conv.forward(x), outputGradient: dOut)
            #expect(try (conv.weight.gradient - 2 * once).maxAbs <= 1e-12 * max(1, once.maxAbs))
        }
    }

    @Test func zeroInitializedConvolutionOutputsZeroButStillLearns() throws {
        var g = SeededGenerator(seed: 3)
        let conv = try Conv2D<Float>(inputChannels: 2, outputChannels: 4, kernelSize: 3, height: 4, width: 4,
                                     zeroInitialize: true, name: "last", using: &g)
        #expect(conv.parameters.map(\.name) == ["last.weight", "last.bias"])
        let x = Matrix<Float>.randomNormal(rows: 2, columns: 32, using: &g)
        let trace = try conv.forward(x)
        #expect(trace.output.storage.allSatisfy { $0 == 0 })
        let dx = try conv.backward(trace, outputGradient: Matrix(rows: 2, columns: 64, repeating: 1))
        #expect(dx.storage.allSatisfy { $0 == 0 })
        #expect(conv.weight.gradient.maxAbs > 0 && conv.bias.gradient.storage.allSatisfy { $0 == 32 })
        // The same with the padded-plane form (8 input channels).
        let wide = try Conv2D<Float>(inputChannels: 8, outputChannels: 4, kernelSize: 3, height: 4, width: 4,
                                     zeroInitialize: true, using: &g)
        let wideTrace = try wide.forward(Matrix<Float>.randomNormal(rows: 2, columns: 128, using: &g))
        #expect(wideTrace.output.storage.allSatisfy { $0 == 0 })
        let wideDx = try wide.backward(wideTrace, outputGradient: Matrix(rows: 2, columns: 64, repeating: 1))
        #expect(wideDx.storage.allSatisfy { $0 == 0 })
        #expect(wide.weight.gradient.maxAbs > 0 && wide.bias.gradient.storage.allSatisfy { $0 == 32 })
    }

    /// A trace keeps its values when the convolution runs again on another batch with the same
    /// step buffers before the backward pass (a buffer still held is never written), in both forms.
    @Test func aTraceSurvivesALaterForward() throws {
        for c in [(2, 3, 3, 4, 5, 3), (8, 3, 3, 4, 5, 3)] {
            let (conv, x) = try Self.make(c, seed: 7)
            let pool = StepBuffers<Double>()
            var g = SeededGenerator(seed: 8)
            let dOut = Matrix<Double>.randomNormal(rows: x.rows, columns: conv.outputFeatures, using: &g)
            // Snapshots as fresh arrays, so that a write into shared storage would show.
            let expected = try conv.backward(try conv.forward(x, buffers: pool), outputGradient: dOut, buffers: pool).storage.map { $0 }
            let trace = try conv.forward(x, buffers: pool)
            let output = trace.output.storage.map { $0 }
            let other = try conv.forward(Matrix<Double>.randomNormal(rows: x.rows, columns: conv.inputFeatures, using: &g), buffers: pool)
            #expect(other.output.storage != output, "case \(c)")
            #expect(trace.output.storage == output, "case \(c)")
            #expect(try conv.backward(trace, outputGradient: dOut, buffers: pool).storage == expected, "case \(c)")
        }
    }

    @Test func rejectsBadShapes() throws {
        var g = SeededGenerator(seed: 1)
        #expect(throws: InvertNNError.self) {
            try Conv2D<Double>(inputChannels: 1, outputChannels: 1, kernelSize: 2, height: 3, width: 3, using: &g)
        }
        #expect(throws: InvertNNError.self) {
            try Conv2D<Double>(inputChannels: 0, outputChannels: 1, kernelSize: 1, height: 3, width: 3, using: &g)
        }
        #expect(throws: InvertNNError.self) {
            try Conv2D<Double>(weight: Matrix(rows: 2, columns: 8), bias: [0, 0], inputChannels: 1, kernelSize: 3, height: 2, width: 2)
        }
        let conv = try Conv2D<Double>(inputChannels: 1, outputChannels: 2, kernelSize: 3, height: 2, width: 2, using: &g)
        #expect(throws: InvertNNError.self) { try conv(Matrix(rows: 1, columns: 5)) }
        #expect(throws: InvertNNError.self) { try conv(Matrix(rows: 0, columns: 4)) }
        let trace = try conv.forward(Matrix(rows: 2, columns: 4))
        #expect(throws: InvertNNError.self) { try conv.backward(trace, outputGradient: Matrix(rows: 1, columns: 8)) }
        #expect(throws: InvertNNError.self) { try conv.weight.assign(Matrix(rows: 2, columns: 3)) }
        #expect(throws: Never.self) { _ = try conv(Matrix(rows: 1, columns: 4)) }
    }
}
