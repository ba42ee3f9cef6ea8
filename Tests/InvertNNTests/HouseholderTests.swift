import Testing
import InvertNN

/// Random trapezoidal Householder layers with bias; `reflectors(n)` picks m, `determinant` the
/// fixed last reflector when m = n.
struct HouseholderFactory: LayerFactory {
    var reflectors: (Int) -> Int = { $0 }
    var determinant: Householder<Double>.Determinant? = nil
    var parametrization: Householder<Double>.Parametrization = .trapezoidal
    var hasBias = true
    /// Forces one evaluation path (nil: the automatic rule) and the block size.
    var strategy: Householder<Double>.Strategy? = nil
    var blockSize: Int? = nil

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        let m = reflectors(features)
        // Draw in Double so Float and Double layers start from the same values.
        let probe = try Householder<Double>(
            features: features, reflectors: m, determinant: m == features ? determinant : nil,
            parametrization: parametrization, hasBias: hasBias, using: &rng)
        let bias = hasBias ? (0..<features).map { _ in T(rng.nextNormal(Double.self)) } : nil
        let layer = try Householder<T>(
            reflectors: probe.reflectors.value.converted(to: T.self),
            parametrization: parametrization == .trapezoidal ? .trapezoidal : .general, bias: bias, hasBias: hasBias)
        if let strategy { layer.strategy = Householder<T>.Strategy(rawValue: strategy.rawValue) ?? .automatic }
        if let blockSize { layer.blockSize = blockSize }
        return layer
    }
}

@Suite struct HouseholderTests {
    @Test func contractFullPositive() throws {
        try checkLayerContract(HouseholderFactory(determinant: .positive))
    }

    @Test func contractFullNegative() throws {
        try checkLayerContract(HouseholderFactory(determinant: .negative))
    }

    @Test func contractFewerReflectors() throws {
        // m < n: n/2 and n/4 reflectors (at least 1), and a single one.
        try checkLayerContract(HouseholderFactory(reflectors: { max(1, $0 / 2) }), features: [2, 3, 17, 64])
        try checkLayerContract(HouseholderFactory(reflectors: { max(1, $0 / 4) }, hasBias: false), features: [3, 17, 64])
        try checkLayerContract(HouseholderFactory(reflectors: { _ in 1 }), features: [2, 17])
    }

    /// Both BLAS-3 paths with small blocks, so that most layers have several blocks and a partial
    /// last one (m not a multiple of nb), for m = n, m < n and the general parametrization.
    @Test(arguments: [Householder<Double>.Strategy.blocked, .materialized])
    func contractBlockedPaths(strategy: Householder<Double>.Strategy) throws {
        try checkLayerContract(HouseholderFactory(determinant: .negative, strategy: strategy, blockSize: 4),
                               features: [3, 17, 64])
        try checkLayerContract(HouseholderFactory(reflectors: { max(1, $0 / 3) }, strategy: strategy, blockSize: 5),
                               features: [3, 17, 64])
        try checkLayerContract(HouseholderFactory(reflectors: { max(1, (2 * $0) / 3) }, hasBias: false,
                                                  strategy: strategy, blockSize: 7), features: [17, 64])
        try checkLayerContract(HouseholderFactory(parametrization: .general, strategy: strategy, blockSize: 3),
                               features: [1, 3, 17])
    }

    /// The two paths and every block size give the same outputs and gradients (to rounding) on a
    /// larger layer, m < n and m = n, against the one-block reference (nb ≥ m).
    @Test func pathsAgree() throws {
        for (n, m, batch) in [(50, 50, 9), (50, 13, 40), (33, 33, 70)] {
            var rng = SeededGenerator(seed: UInt64(n * m))
            let x = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
            let dy = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
            let dld = [Double](repeating: 0, count: batch)
            var reference: (y: Matrix<Double>, dx: Matrix<Double>, dv: Matrix<Double>, xi: Matrix<Double>,
                            dyi: Matrix<Double>, dvi: Matrix<Double>)? = nil
            for (strategy, nb) in [(Householder<Double>.Strategy.blocked, 1000), (.blocked, 8), (.blocked, 1),
                                   (.materialized, 6), (.materialized, 1000), (.automatic, 48)] {
                var seeded = SeededGenerator(seed: 5)
                let layer = try Householder<Double>(features: n, reflectors: m, using: &seeded)
                try layer.bias!.assign(Matrix.randomNormal(rows: 1, columns: n, using: &seeded))
                layer.strategy = strategy
                layer.blockSize = nb
                let y = try layer.forward(x).output
                let dx = try layer.forwardBackward(input: x, output: y, outputGradient: dy, logAbsDetGradient: dld)
                let dv = layer.reflectors.gradient
                layer.zeroGradients()
                let xi = try layer.inverse(x).output
                let dyi = try layer.inverseBackward(input: x, output: xi, outputGradient: dy, logAbsDetGradient: dld)
                let dvi = layer.reflectors.gradient
                guard let r = reference else { reference = (y, dx, dv, xi, dyi, dvi); continue }
                let label = "n \(n) m \(m) \(strategy) nb \(nb)"
                for (a, b, what) in [(y, r.y, "y"), (dx, r.dx, "dx"), (dv, r.dv, "dv"), (xi, r.xi, "inverse x"),
                                     (dyi, r.dyi, "inverse dy"), (dvi, r.dvi, "inverse dv")] {
                    #expect(try (a - b).maxAbs <= 1e-11 * max(1, b.maxAbs), "\(what) \(label)")
                }
            }
        }
    }

    /// A taped (retaining) call keeps the block outputs, and its backward uses them instead of
    /// rebuilding: outputs and all gradients agree with the plain calls to rounding, in both
    /// directions, with partial last blocks, one-reflector blocks and m < n. A parameter change
    /// between the calls makes the backward ignore what was kept (it must still be correct).
    @Test func retainingMatchesPlainCalls() throws {
        for (n, m, batch, nb) in [(17, 17, 5, 5), (50, 13, 9, 4), (33, 33, 7, 1), (64, 64, 3, 16)] {
            var rng = SeededGenerator(seed: UInt64(n + m + nb))
            let x = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
            let dy = Matrix<Double>.randomNormal(rows: batch, columns: n, using: &rng)
            let dld = [Double](repeating: 0, count: batch)
            func make() throws -> Householder<Double> {
                var seeded = SeededGenerator(seed: 9)
                let layer = try Householder<Double>(features: n, reflectors: m, using: &seeded)
                try layer.bias!.assign(Matrix.randomNormal(rows: 1, columns: n, using: &seeded))
                layer.strategy = .blocked
                layer.blockSize = nb
                return layer
            }
            let label = "n \(n) m \(m) B \(batch) nb \(nb)"
            for forward in [true, false] {
                func apply(_ layer: Householder<Double>, retaining: Bool) throws -> Matrix<Double> {
                    switch (forward, retaining) {
                    case (true, false): return try layer.forward(x).output
                    case (true, true): return try layer.forwardRetaining(x).output
                    case (false, false): return try layer.inverse(x).output
                    case (false, true): return try layer.inverseRetaining(x).output
                    }
                }
                func backward(_ layer: Householder<Double>, _ y: Matrix<Double>) throws -> Matrix<Double> {
                    try forward
                        ? layer.forwardBackward(input: x, output: y, outputGradient: dy, logAbsDetGradient: dld)
                        : layer.inverseBackward(input: x, output: y, outputGradient: dy, logAbsDetGradient: dld)
                }
                let plain = try make(), taped = try make()
                let yPlain = try apply(plain, retaining: false), yTaped = try apply(taped, retaining: true)
                #expect(try (yTaped - yPlain).maxAbs <= 1e-12 * max(1, yPlain.maxAbs), "output \(label)")
                let gPlain = try backward(plain, yPlain), gTaped = try backward(taped, yTaped)
                for (a, b, what) in [(gTaped, gPlain, "input gradient"),
                                     (taped.reflectors.gradient, plain.reflectors.gradient, "reflector gradient"),
                                     (taped.bias!.gradient, plain.bias!.gradient, "bias gradient")] {
                    #expect(try (a - b).maxAbs <= 1e-11 * max(1, b.maxAbs), "\(what) \(label) forward \(forward)")
                }
                // Kept outputs are not used after the reflectors change: the backward recomputes.
                let stale = try make(), fresh = try make()
                _ = try apply(stale, retaining: true)
                for layer in [stale, fresh] { layer.reflectors.withUnsafeMutableValue { $0[n + 1] += 0.25 } }
                let yFresh = try apply(fresh, retaining: false)
                let gStale = try backward(stale, yFresh), gFresh = try backward(fresh, yFresh)
                #expect(try (gStale - gFresh).maxAbs <= 1e-11 * max(1, gFresh.maxAbs), "stale \(label) forward \(forward)")
                #expect(try (stale.reflectors.gradient - fresh.reflectors.gradient).maxAbs
                        <= 1e-11 * max(1, fresh.reflectors.gradient.maxAbs), "stale reflectors \(label)")
            }
        }
    }

    /// W is cached for inference and rebuilt when the reflector values change.
    @Test func cachedMatrixFollowsParameters() throws {
        var rng = SeededGenerator(seed: 11)
        let layer = try Householder<Double>(features: 20, reflectors: 20, using: &rng)
        layer.strategy = .materialized
        let x = Matrix<Double>.randomNormal(rows: 3, columns: 20, using: &rng)
        let y1 = try layer.forward(x).output
        #expect(try layer.forward(x).output == y1)
        layer.reflectors.withUnsafeMutableValue { $0[3 * 20 + 7] += 0.5 }  // [3, 7]
        let y2 = try layer.forward(x).output
        layer.strategy = .blocked
        let y3 = try layer.forward(x).output
        #expect(try (y2 - y1).maxAbs > 1e-3, "the change reaches the output")
        #expect(try (y2 - y3).maxAbs <= 1e-12, "cached W agrees with the blocked path after the change")
        layer.strategy = .materialized
        try layer.reflectors.assign(layer.reflectors.value)  // same values, new assignment: still valid
        #expect(try (layer.forward(x).output - y2).maxAbs <= 1e-12)
    }

    @Test func contractGeneralParametrization() throws {
        try checkLayerContract(HouseholderFactory(parametrization: .general), features: [1, 3, 17])
    }

    /// Issue 2 known values: W = H(v1) H(v2) H(v3) with non-trapezoidal vectors.
    @Test func knownValues() throws {
        let vectors = try Matrix<Double>([[1, 2, 2], [0, 1, -1], [3, 0, 4]])
        let w = try Householder<Double>.product(ofReflectors: vectors)
        // Independent reference: the explicit product of the three reflector matrices.
        let reference = try BLAS.matmul(
            BLAS.matmul(Householder<Double>.reflector([1, 2, 2]), Householder<Double>.reflector([0, 1, -1])),
            Householder<Double>.reflector([3, 0, 4]))
        #expect(try (w - reference).maxAbs <= 1e-15)
        let y = try BLAS.gemv(w, [1, -1, 0.5])
        for (a, b) in zip(y, [0.7777777778, 0.8555555556, 0.9555555556]) { #expect(abs(a - b) <= 1e-9) }
        let det = try LAPACK.logAbsDeterminant(w)
        #expect(det.sign == -1)
        #expect(abs(det.logAbsDet) <= 1e-12)

        // The same map as a layer (general parametrization keeps the vectors as given).
        let layer = try Householder<Double>(reflectors: vectors, parametrization: .general, bias: [0.5, -1, 2])
        #expect(try (layer.matrix() - w).maxAbs <= 1e-15)
        let batch = try Matrix<Double>([[1, -1, 0.5], [0, 2, -3]])
        let out = try layer.forward(batch)
        let expected = try Matrix<Double>([[1.2777777778, -0.1444444444, 2.9555555556],
                                           [1.4777777778, -3.9644444444, 0.1955555556]])
        #expect(try (out.output - expected).maxAbs <= 1e-9)
        #expect(out.logAbsDet == [0, 0])
        let back = try layer.inverse(out.output)
        #expect(try (back.output - batch).maxAbs <= 1e-12)
        #expect(back.logAbsDet == [0, 0])
        // Without bias the layer gives exactly the gemv above, sample by sample.
        let plain = try Householder<Double>(reflectors: vectors, parametrization: .general, hasBias: false)
        let single = try plain.forward(Matrix(row: [1, -1, 0.5])).output
        for j in 0..<3 { #expect(abs(single[0, j] - y[j]) <= 1e-12) }
    }

    /// Float reflectors of vectors whose squared norm over- or underflows.
    @Test func reflectorScaling() throws {
        let expected = try Matrix<Float>([[0.28, -0.96, 0], [-0.96, -0.28, 0], [0, 0, 1]])
        for v: [Float] in [[3, 4, 0], [3e20, 4e20, 0], [3e-25, 4e-25, 0]] {
            let h = try Householder<Float>.reflector(v)
            #expect(h.firstNonFinite() == nil, "finite for \(v)")
            #expect(try (h - expected).maxAbs <= 1e-6, "reflector of \(v): \(h)")
            let p = try Householder<Float>.product(ofReflectors: Matrix(row: v))
            #expect(try (p - expected).maxAbs <= 1e-6, "product of \(v): \(p)")
        }
        #expect(try Householder<Float>.reflector([0, 0, 0]) == Matrix<Float>.identity(3))
        #expect(try Householder<Double>.product(ofReflectors: Matrix(rows: 2, columns: 4)) == Matrix<Double>.identity(4))
        // A layer whose reflectors are huge is still exactly orthogonal in Float.
        let layer = try Householder<Float>(reflectors: Matrix([[3e20, 4e20, 0], [0, 3e-25, 4e-25]]), hasBias: false)
        let w = try layer.matrix()
        #expect(w.firstNonFinite() == nil)
        let gram = try BLAS.matmul(w, transposeA: true, w)
        #expect(try (gram - Matrix<Float>.identity(3)).maxAbs <= 1e-6)
    }

    @Test func orthogonalAndDeterminant() throws {
        for determinant in [Householder<Double>.Determinant.positive, .negative] {
            for n in [1, 2, 3, 17, 64] {
                var rng = SeededGenerator(seed: UInt64(n))
                let layer = try Householder<Double>(features: n, determinant: determinant, using: &rng)
                let w = try layer.matrix()
                let gram = try BLAS.matmul(w, transposeA: true, w)
                let defect = try (gram - Matrix<Double>.identity(n)).maxAbs
                #expect(defect <= 1e-13 * Double(n), "‖WᵀW - I‖max = \(defect) at n = \(n)")
                let det = try LAPACK.logAbsDeterminant(w)
                #expect(det.sign == (determinant == .positive ? 1 : -1), "det sign n = \(n)")
                #expect(abs(det.logAbsDet) <= 1e-12 * Double(n))
                #expect(try layer.determinantSign() == determinant)
            }
        }
        // The zero-initialized layer is the identity, or the flip of the last coordinate.
        #expect(try Householder<Double>(features: 4).matrix() == Matrix<Double>.identity(4))
        var flip = Matrix<Double>.identity(4)
        flip[3, 3] = -1
        #expect(try Householder<Double>(features: 4, determinant: .negative).matrix() == flip)
    }

    @Test func orthogonalLargeAndFewReflectors() throws {
        for (n, m) in [(256, 256), (256, 64), (64, 7)] {
            var rng = SeededGenerator(seed: 42)
            let layer = try Householder<Double>(features: n, reflectors: m, hasBias: false, using: &rng)
            let w = try layer.matrix()
            let defect = try (BLAS.matmul(w, transposeA: true, w) - Matrix<Double>.identity(n)).maxAbs
            #expect(defect <= 1e-13 * Double(n), "‖WᵀW - I‖max = \(defect) at n = \(n), m = \(m)")
            // Against the reflectors multiplied one by one.
            var reference = Matrix<Double>.identity(n)
            for i in 0..<m { reference = try BLAS.matmul(reference, Householder<Double>.reflector(layer.reflectors.value.row(i))) }
            #expect(try (w - reference).maxAbs <= 1e-13 * Double(n), "WY vs sequential product n = \(n), m = \(m)")
        }
    }

    @Test func trapezoidalStructure() throws {
        var rng = SeededGenerator(seed: 3)
        let layer = try Householder<Double>(features: 5, determinant: .negative, using: &rng)
        let v = layer.reflectors.value
        let mask = try #require(layer.reflectors.trainableMask)
        for i in 0..<5 {
            for j in 0..<5 {
                let trainable = j >= i && i < 4
                #expect(mask[i * 5 + j] == trainable, "mask [\(i), \(j)]")
                if !trainable { #expect(v[i, j] == (i == 4 && j == 4 ? 1 : 0), "fixed value [\(i), \(j)]") }
            }
        }
        #expect(layer.reflectors.trainableCount == 5 * 4 / 2 + 4)
        #expect(layer.fixedLastReflector == .flip)  // four free reflectors: det +1 before the flip
        #expect(try layer.determinantSign() == .negative)
        // A fixed entry moved by a careless optimizer does not change the map.
        let before = try layer.matrix()
        layer.reflectors.withUnsafeMutableValue { v in
            v[2 * 5 + 0] = 7  // [2, 0]
            v[4 * 5 + 4] = -3  // [4, 4]
        }
        #expect(try layer.matrix() == before)
        // With m < n no reflector is fixed.
        let partial = try Householder<Double>(features: 5, reflectors: 3, using: &rng)
        #expect(partial.fixedLastReflector == nil)
        #expect(try partial.determinantSign() == .negative)  // three nonzero reflectors
        #expect(partial.reflectors.trainableCount == 5 + 4 + 3)
        #expect(partial.configuration.reflectors == 3)
    }

    @Test func rejectsBadInput() throws {
        #expect(throws: InvertNNError.self) { try Householder<Double>(features: 0) }
        #expect(throws: InvertNNError.self) { try Householder<Double>(features: 3, reflectors: 0) }
        #expect(throws: InvertNNError.self) { try Householder<Double>(features: 3, reflectors: 4) }
        #expect(throws: InvertNNError.self) { try Householder<Double>(features: 3, reflectors: 2, determinant: .negative) }
        // Not trapezoidal, non-finite, wrong bias, contradicting determinant.
        #expect(throws: InvertNNError.self) { try Householder<Double>(reflectors: Matrix([[1, 2], [3, 0]])) }
        #expect(throws: InvertNNError.self) { try Householder<Double>(reflectors: Matrix([[1, .nan], [0, 0]])) }
        #expect(throws: InvertNNError.self) { try Householder<Double>(reflectors: Matrix([[1, 2], [0, 0]]), bias: [1]) }
        #expect(throws: InvertNNError.self) { try Householder<Double>(reflectors: Matrix([[1, 2], [0, 0]]), bias: [1, .infinity]) }
        #expect(throws: InvertNNError.self) {
            try Householder<Double>(reflectors: Matrix([[1, 2], [0, 5]]), determinant: .negative)
        }
        #expect(throws: InvertNNError.self) { try Householder<Double>(reflectors: Matrix(rows: 0, columns: 0)) }
        #expect(throws: InvertNNError.self) { try Householder<Double>.reflector([]) }
        #expect(throws: InvertNNError.self) { try Householder<Double>.reflector([1, .nan]) }
        #expect(throws: InvertNNError.self) { try Householder<Double>.product(ofReflectors: Matrix([[1, .infinity]])) }
        var rng = SeededGenerator(seed: 1)
        #expect(throws: InvertNNError.self) {
            try Householder<Double>(features: 3, standardDeviation: -1, using: &rng)
        }

        let layer = try Householder<Double>(features: 3)
        #expect(throws: InvertNNError.self) { try layer.forward(Matrix(rows: 2, columns: 4)) }
        #expect(throws: Never.self) { _ = try layer.inverse(Matrix(rows: 0, columns: 3)) }  // an empty batch gives an empty result
        #expect(throws: InvertNNError.self) {
            try layer.forwardBackward(input: Matrix(rows: 2, columns: 3), output: Matrix(rows: 2, columns: 3),
                                      outputGradient: Matrix(rows: 1, columns: 3), logAbsDetGradient: [0, 0])
        }
        // A value of the wrong shape is refused; one with NaN makes the layer throw, not trap.
        #expect(throws: InvertNNError.shapeMismatch(
            operation: "parameter 'reflectors' value", expected: "[3, 3]", actual: "[2, 3]")) {
            try layer.reflectors.assign(Matrix(rows: 2, columns: 3))
        }
        #expect(throws: Never.self) { _ = try layer.forward(Matrix(rows: 1, columns: 3)) }
        try layer.reflectors.assign(Matrix([[1, 0, 0], [0, .nan, 0], [0, 0, 0]]))
        #expect(throws: InvertNNError.self) { try layer.matrix() }
    }
}
