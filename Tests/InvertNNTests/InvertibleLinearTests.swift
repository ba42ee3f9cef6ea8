import Testing
import InvertNN

/// Random SVD-composed layers: random reflectors for both factors, log-scales N(0, 0.5²), bias.
struct InvertibleLinearFactory: LayerFactory {
    var reflectors: (Int) -> Int = { $0 }
    var determinant: Householder<Double>.Determinant? = nil
    var hasBias = true

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        let m = reflectors(features)
        // Drawn in Double so that the Float and Double layers start from the same values.
        let probe = try InvertibleLinear<Double>(
            features: features, reflectors: m, determinant: m == features ? determinant : nil, hasBias: false,
            using: &rng)
        let logScale = (0..<features).map { _ in T(0.5 * rng.nextNormal(Double.self)) }
        let bias = hasBias ? (0..<features).map { _ in T(rng.nextNormal(Double.self)) } : nil
        let u = try Householder<T>(reflectors: probe.orthogonalU.reflectors.value.converted(to: T.self), hasBias: false)
        let v = try Householder<T>(reflectors: probe.orthogonalV.reflectors.value.converted(to: T.self), hasBias: false)
        return try InvertibleLinear<T>(u: u, logScale: logScale, v: v, bias: bias, hasBias: hasBias)
    }
}

@Suite struct InvertibleLinearTests {
    @Test func contractPositive() throws {
        try checkLayerContract(InvertibleLinearFactory(determinant: .positive))
    }

    @Test func contractNegative() throws {
        try checkLayerContract(InvertibleLinearFactory(determinant: .negative))
    }

    @Test func contractFewerReflectors() throws {
        try checkLayerContract(InvertibleLinearFactory(reflectors: { max(1, $0 / 3) }), features: [2, 3, 17, 64])
        try checkLayerContract(InvertibleLinearFactory(reflectors: { _ in 1 }, hasBias: false), features: [3, 17])
    }

    /// The layer's matrix is Q_V diag(d) Q_U, its forward is that matrix plus the bias, and its
    /// log-det is log|det| of the matrix from LU (getrf).
    @Test func matrixAndLogDeterminant() throws {
        for n in [1, 2, 3, 17, 64] {
            for determinant in [Householder<Double>.Determinant.positive, .negative] {
                let layer = try #require(
                    try InvertibleLinearFactory(determinant: determinant)
                        .make(features: n, seed: UInt64(7 * n), Double.self) as? InvertibleLinear<Double>)
                let a = try layer.matrix()
                // Reference product, factor by factor.
                var diagonal = Matrix<Double>(rows: n, columns: n)
                for j in 0..<n { diagonal[j, j] = Double.exp(layer.scale.logScale.value[0, j]) }
                let reference = try BLAS.matmul(
                    BLAS.matmul(layer.orthogonalV.matrix(), diagonal), layer.orthogonalU.matrix())
                #expect(try (a - reference).maxAbs <= 1e-13 * Double(n) * max(1, reference.maxAbs), "n = \(n)")

                var rng = SeededGenerator(seed: 99)
                let x = Matrix<Double>.randomNormal(rows: 5, columns: n, using: &rng)
                let out = try layer.forward(x)
                var expected = try BLAS.matmul(x, a, transposeB: true)
                let b = try #require(layer.bias).value
                for r in 0..<5 { for j in 0..<n { expected[r, j] += b[0, j] } }
                #expect(try (out.output - expected).maxAbs <= 1e-12 * max(1, expected.maxAbs), "forward = A x + b, n = \(n)")

                let lu = try LAPACK.logAbsDeterminant(a)
                let logDet = layer.scale.logScale.value.storage.reduce(0, +)
                #expect(abs(logDet - lu.logAbsDet) <= 1e-12 * Double(n) * max(1, abs(lu.logAbsDet)),
                        "log-det \(logDet) vs getrf \(lu.logAbsDet), n = \(n)")
                for value in out.logAbsDet { #expect(value == logDet) }
                #expect(lu.sign == (determinant == .positive ? 1 : -1), "det sign n = \(n)")
            }
        }
    }

    /// Issue 4's known value, with the orthogonal factors as products of general reflectors:
    /// W = H([1,2,3]) H([-1,0,2]) H([0,1,1]) · diag(2, 0.25, 3) · H([2,-1,0]) H([1,1,1]) H([0,0,1]).
    @Test func knownValues() throws {
        let left = try Householder<Double>(
            reflectors: Matrix([[1, 2, 3], [-1, 0, 2], [0, 1, 1]]), parametrization: .general, hasBias: false)
        let right = try Householder<Double>(
            reflectors: Matrix([[2, -1, 0], [1, 1, 1], [0, 0, 1]]), parametrization: .general, hasBias: false)
        let layer = try InvertibleLinear<Double>(
            u: right, logScale: [2, 0.25, 3].map { Double.log($0) }, v: left, bias: [0.1, 0.2, 0.3])
        let out = try layer.forward(Matrix(row: [1, 2, -1]))
        let expected = [-0.76, 1.6666666667, -4.5133333333]
        for j in 0..<3 { #expect(abs(out.output[0, j] - expected[j]) <= 1e-9) }
        #expect(abs(out.logAbsDet[0] - 0.4054651081) <= 1e-10)
        #expect(abs(out.logAbsDet[0] - Double.log(1.5)) <= 1e-12)
        let lu = try LAPACK.logAbsDeterminant(layer.matrix())
        #expect(abs(lu.logAbsDet - Double.log(1.5)) <= 1e-12)
        let back = try layer.inverse(out.output)
        for (a, b) in zip(back.output.storage, [1.0, 2, -1]) { #expect(abs(a - b) <= 1e-12) }
        #expect(abs(back.logAbsDet[0] + Double.log(1.5)) <= 1e-12)
    }

    @Test func initializersAndParameters() throws {
        let identity = try InvertibleLinear<Double>(features: 4)
        #expect(try identity.matrix() == Matrix<Double>.identity(4))
        let names = identity.parameters.map(\.name)
        #expect(names == ["U.reflectors", "logScale", "V.reflectors", "bias"])
        #expect(Set(names).count == names.count)
        #expect(identity.configuration.reflectorsU == 4)
        #expect(try InvertibleLinear<Double>(features: 4, hasBias: false).parameters.count == 3)

        var rng = SeededGenerator(seed: 5)
        let random = try InvertibleLinear<Double>(features: 6, reflectors: 3, using: &rng)
        #expect(random.orthogonalU.reflectorCount == 3)
        #expect(random.scale.logScale.value.storage.allSatisfy { $0 == 0 })
        let q = try random.matrix()
        #expect(try (BLAS.matmul(q, transposeA: true, q) - Matrix<Double>.identity(6)).maxAbs <= 1e-13 * 6)

        // The explicit initializer copies the factors: the originals are not shared.
        let u = try Householder<Double>(features: 3, hasBias: false, using: &rng)
        let v = try Householder<Double>(features: 3, determinant: .negative, hasBias: false, using: &rng)
        let layer = try InvertibleLinear<Double>(u: u, logScale: [0.1, 0.2, 0.3], v: v)
        #expect(layer.orthogonalV.fixedLastReflector == v.fixedLastReflector)
        #expect(try layer.orthogonalV.matrix() == v.matrix())
        u.reflectors.withUnsafeMutableValue { $0[0] += 1 }
        #expect(layer.orthogonalU.reflectors.value[0, 0] != u.reflectors.value[0, 0])
    }

    @Test func rejectsBadInput() throws {
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(features: 0) }
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(features: 3, reflectors: 4) }
        var rng = SeededGenerator(seed: 1)
        #expect(throws: InvertNNError.self) {
            try InvertibleLinear<Double>(features: 3, reflectors: 2, determinant: .negative, using: &rng)
        }
        let u = try Householder<Double>(features: 3, hasBias: false)
        let withBias = try Householder<Double>(features: 3)
        let other = try Householder<Double>(features: 4, hasBias: false)
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(u: u, logScale: [0, 0, 0], v: withBias) }
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(u: u, logScale: [0, 0, 0], v: other) }
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(u: u, logScale: [0, 0], v: u) }
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(u: u, logScale: [0, .nan, 0], v: u) }
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(u: u, logScale: [0, 0, 0], v: u, bias: [1, 2]) }
        #expect(throws: InvertNNError.self) {
            try InvertibleLinear<Double>(u: u, logScale: [0, 0, 0], v: u, bias: [1, .infinity, 2])
        }
        let layer = try InvertibleLinear<Double>(features: 3)
        #expect(throws: InvertNNError.self) { try layer.forward(Matrix(rows: 2, columns: 2)) }
        #expect(throws: Never.self) { _ = try layer.inverse(Matrix(rows: 0, columns: 3)) }  // an empty batch gives an empty result
        #expect(throws: InvertNNError.self) {
            try layer.inverseBackward(input: Matrix(rows: 2, columns: 3), output: Matrix(rows: 2, columns: 3),
                                      outputGradient: Matrix(rows: 2, columns: 3), logAbsDetGradient: [0])
        }
        #expect(throws: InvertNNError.self) { try layer.orthogonalV.reflectors.assign(Matrix(rows: 3, columns: 2)) }
        #expect(layer.orthogonalV.reflectors.value.shape == [3, 3])
    }
}

/// The dense-matrix path (large batches) and the chained factors agree, outputs and every
/// gradient, in both directions; the contract also runs with the dense path forced everywhere.
@Suite struct InvertibleLinearPathTests {
    @Test func denseAndChainedAgree() throws {
        for (n, m, batch) in [(23, 23, 30), (40, 11, 12)] {
            var results = [[Matrix<Double>]]()
            for ratio in [0.0, Double.infinity] {
                var rng = SeededGenerator(seed: 9)
                let layer = try InvertibleLinear<Double>(features: n, reflectors: m, using: &rng)
                try layer.scale.logScale.assign(Matrix.randomNormal(rows: 1, columns: n, standardDeviation: 0.4, using: &rng))
                try layer.bias!.assign(Matrix.randomNormal(rows: 1, columns: n, using: &rng))
                layer.materializeBatchRatio = ratio
                let x = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
                let dy = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
                let dld = (0..<batch).map { _ in rng.nextNormal(Double.self) }
                let y = try layer.forward(x)
                let dx = try layer.forwardBackward(input: x, output: y.output, outputGradient: dy, logAbsDetGradient: dld)
                var out = [y.output, Matrix(row: y.logAbsDet), dx] + layer.parameters.map(\.gradient)
                layer.zeroGradients()
                let xi = try layer.inverse(x)
                let dyi = try layer.inverseBackward(input: x, output: xi.output, outputGradient: dy, logAbsDetGradient: dld)
                out += [xi.output, Matrix(row: xi.logAbsDet), dyi] + layer.parameters.map(\.gradient)
                results.append(out)
            }
            for (k, (a, b)) in zip(results[0], results[1]).enumerated() {
                #expect(try (a - b).maxAbs <= 1e-11 * max(1, b.maxAbs), "item \(k) n \(n) m \(m)")
            }
        }
    }
}
