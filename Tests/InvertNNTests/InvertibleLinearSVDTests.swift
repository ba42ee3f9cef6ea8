import Testing
import InvertNN

/// SVD-initialized layers for the contract: `A = P diag(σ) Rᵀ` with κ = 10 built in Double (the
/// contract's Float round trip, 1e-5 relative, needs κ·ε_Float well below it; the large-κ cases
/// are in ``InvertibleLinearSVDTests``); the
/// Float layer gets the Double layer's reflectors (the SVD of the Float matrix may choose other
/// signs for the singular vectors, which is another valid but different parametrization).
struct SVDInitializedFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        let a = try RandomMatrices.conditioned(features, condition: 10, scale: 2, using: &rng)
        let bias = (0..<features).map { _ in rng.nextNormal(Double.self) }
        let layer = try InvertibleLinear<Double>(matrix: a, bias: bias)
        let u = try Householder<T>(reflectors: layer.orthogonalU.reflectors.value.converted(to: T.self), hasBias: false)
        let v = try Householder<T>(reflectors: layer.orthogonalV.reflectors.value.converted(to: T.self), hasBias: false)
        return try InvertibleLinear<T>(
            u: u, logScale: layer.scale.logScale.value.storage.map { T($0) }, v: v, bias: bias.map { T($0) })
    }
}

/// Issue 4, items 2 and 4: InvertibleLinear from a matrix through LAPACK's SVD.
@Suite struct InvertibleLinearSVDTests {
    /// Worst ratios error / allowed over all cases, printed for the report.
    struct Worst {
        var reconstruction = 0.0, orthogonality = 0.0, logDet = 0.0, forward = 0.0
        var inverse = 0.0, inverseBackward = 0.0, logDetPerturbed = 0.0
    }

    /// Every tolerance line of item 4 for one matrix; returns the measured errors (already divided
    /// by their size factors: ‖·‖_F/(‖A‖_F n), defect/n, log-det relative/n, relative forward and
    /// inverse).
    func check(_ a: Matrix<Double>, condition: Double, _ label: String, worst: inout Worst) throws {
        let n = a.rows
        var rng = SeededGenerator(seed: UInt64(n) &* 31 &+ UInt64(condition.exponent))
        // The bias is of the size of A x: a bias much larger than A x would make the inverse
        // subtract nearly equal numbers, which no algorithm recovers x from.
        let size = RandomMatrices.frobenius(a) / Double(n).squareRoot()
        let bias = (0..<n).map { _ in size * rng.nextNormal(Double.self) }
        let layer = try InvertibleLinear<Double>(matrix: a, bias: bias)

        let reconstruction = RandomMatrices.frobenius(try layer.matrix() - a) / (RandomMatrices.frobenius(a) * Double(n))
        #expect(reconstruction <= 1e-12, "‖W - A‖_F / (‖A‖_F n) = \(reconstruction) \(label)")
        worst.reconstruction = max(worst.reconstruction, reconstruction)

        for factor in [layer.orthogonalU, layer.orthogonalV] {
            let defect = try RandomMatrices.defect(factor.matrix()) / Double(n)
            #expect(defect <= 1e-13, "‖QᵀQ - I‖_max / n = \(defect) \(label)")
            worst.orthogonality = max(worst.orthogonality, defect)
        }

        let lu = try LAPACK.logAbsDeterminant(a)
        let x = Matrix<Double>.randomNormal(rows: 8, columns: n, using: &rng)
        let out = try layer.forward(x)
        // The layer's log-det is Σ log σ exactly (the sum of its log-scales).
        #expect(out.logAbsDet[0] == layer.scale.logScale.value.storage.reduce(0, +))
        // Against getrf: rounding A (storing it is already a relative perturbation δA of size ε)
        // moves log|det A| by tr(A⁻¹ δA), up to n·κ·ε, for SVD and LU alike; at κ = 1e6 that is
        // ~1e-10, above 1e-12·n·|log|det||. So the bound is 1e-12·n relative plus that
        // first-order perturbation term (which is below the 1e-12 term for κ ≤ ~1e3).
        let logDetError = abs(out.logAbsDet[0] - lu.logAbsDet) / (max(1, abs(lu.logAbsDet)) * Double(n))
        let perturbation = Double(n) * condition * Double.ulpOfOne / (max(1, abs(lu.logAbsDet)) * Double(n))
        #expect(logDetError <= 1e-12 + perturbation, "log-det \(out.logAbsDet[0]) vs getrf \(lu.logAbsDet) \(label)")
        if condition <= 1e3 { worst.logDet = max(worst.logDet, logDetError) }
        worst.logDetPerturbed = max(worst.logDetPerturbed, logDetError / (1e-12 + perturbation))

        var expected = try BLAS.matmul(x, a, transposeB: true)
        for r in 0..<x.rows { for j in 0..<n { expected[r, j] += bias[j] } }
        let forwardError = try (out.output - expected).maxAbs / expected.maxAbs
        #expect(forwardError <= 1e-11, "forward vs A x + b: \(forwardError) \(label)")
        worst.forward = max(worst.forward, forwardError)

        // Inverse: x recovered from y = A x + b. Its error is bounded by κ(A)·ε·(a small
        // multiple), which is below 1e-11 for κ up to 1e4 but reaches ~1e-10 at κ = 1e6 for any
        // backward-stable inverse (the data y itself carries rounding of size ε‖A‖‖x‖). So the
        // forward error of the inverse is held to 1e-11 · max(1, κ/1e4), and its backward error
        // ‖A x̂ + b - y‖ / ‖y‖ (what the algorithm controls) to 1e-11 for every κ.
        let back = try layer.inverse(out.output)
        let inverseError = try (back.output - x).maxAbs / x.maxAbs
        #expect(inverseError <= 1e-11 * max(1, condition / 1e4), "inverse recovers x: \(inverseError) \(label)")
        worst.inverse = max(worst.inverse, inverseError / max(1, condition / 1e4))
        var reapplied = try BLAS.matmul(back.output, a, transposeB: true)
        for r in 0..<x.rows { for j in 0..<n { reapplied[r, j] += bias[j] } }
        let backwardError = try (reapplied - out.output).maxAbs / out.output.maxAbs
        #expect(backwardError <= 1e-11, "inverse backward error \(backwardError) \(label)")
        worst.inverseBackward = max(worst.inverseBackward, backwardError)
        for (f, i) in zip(out.logAbsDet, back.logAbsDet) { #expect(f == -i) }
    }

    @Test func randomConditionedMatrices() throws {
        var rng = SeededGenerator(seed: 2024)
        var worst = Worst()
        for n in [1, 2, 3, 17, 64] {
            for condition in [1.0, 1e3, 1e6] {
                for scale in [1.0, 1e-3, 50] {
                    let a = try RandomMatrices.conditioned(n, condition: condition, scale: scale, using: &rng)
                    try check(a, condition: condition, "n = \(n) κ = \(condition) scale \(scale)", worst: &worst)
                }
            }
            // A plain Gaussian matrix (its κ is whatever it is; measured by the SVD for the bound).
            let g = Matrix<Double>.randomNormal(rows: n, columns: n, using: &rng)
            let s = try LAPACK.svd(g).s
            try check(g, condition: s.first! / s.last!, "Gaussian n = \(n) κ = \(s.first! / s.last!)", worst: &worst)
        }
        // n = 256: two cases only, to keep the debug suite fast.
        for condition in [1.0, 1e6] {
            let a = try RandomMatrices.conditioned(256, condition: condition, using: &rng)
            try check(a, condition: condition, "n = 256 κ = \(condition)", worst: &worst)
        }
        print("InvertibleLinearSVD worst: reconstruction ‖W-A‖_F/(‖A‖_F n) \(worst.reconstruction), orthogonality/n \(worst.orthogonality), log-det rel/n (κ ≤ 1e3) \(worst.logDet), log-det error / (1e-12 + n κ ε) \(worst.logDetPerturbed), forward rel \(worst.forward), inverse rel (÷max(1,κ/1e4)) \(worst.inverse), inverse backward rel \(worst.inverseBackward)")
    }

    /// Float: the same matrices in single precision, within 1e-4 relative. Reconstruction and
    /// forward are well conditioned and are checked for κ up to 1e4 (κ = 1e6 is singular to Float
    /// working precision: the default tolerance n·ε_Float is 2e-6 at n = 17, and the layer rejects
    /// it); the log-det and the inverse depend on the smallest singular values, which Float
    /// resolves only to κ·ε_Float (6e-4 at κ = 1e4, for any algorithm given Float input), so those
    /// two are checked for κ ≤ 100.
    @Test func floatVersions() throws {
        var rng = SeededGenerator(seed: 17)
        var worst = (reconstruction: 0.0, forward: 0.0, logDet: 0.0, inverse: 0.0)
        for n in [1, 2, 3, 17, 64, 256] {
            for condition in n == 256 ? [100.0] : [1.0, 100, 1e4] {
                let a = try RandomMatrices.conditioned(n, condition: condition, scale: 3, using: &rng)
                let layer = try InvertibleLinear<Float>(matrix: a.converted(to: Float.self))
                let label = "Float n = \(n) κ = \(condition)"
                let reconstruction = RandomMatrices.frobenius(try layer.matrix().converted(to: Double.self) - a)
                    / RandomMatrices.frobenius(a)
                #expect(reconstruction <= 1e-4, "\(label): reconstruction \(reconstruction)")
                worst.reconstruction = max(worst.reconstruction, reconstruction)
                let x = Matrix<Double>.randomNormal(rows: 8, columns: n, using: &rng)
                let out = try layer.forward(x.converted(to: Float.self))
                let expected = try BLAS.matmul(x, a, transposeB: true)
                let forward = try (out.output.converted(to: Double.self) - expected).maxAbs / expected.maxAbs
                #expect(forward <= 1e-4, "\(label): forward \(forward)")
                worst.forward = max(worst.forward, forward)
                guard condition <= 100 else { continue }
                let lu = try LAPACK.logAbsDeterminant(a).logAbsDet
                let logDet = abs(Double(out.logAbsDet[0]) - lu) / max(1, abs(lu))
                #expect(logDet <= 1e-4, "\(label): log-det \(logDet)")
                worst.logDet = max(worst.logDet, logDet)
                let back = try layer.inverse(expected.converted(to: Float.self))
                let inverse = try (back.output.converted(to: Double.self) - x).maxAbs / x.maxAbs
                #expect(inverse <= 1e-4, "\(label): inverse \(inverse)")
                worst.inverse = max(worst.inverse, inverse)
            }
        }
        print("InvertibleLinearSVD Float worst: reconstruction \(worst.reconstruction), forward \(worst.forward), log-det (κ≤100) \(worst.logDet), inverse (κ≤100) \(worst.inverse)")
    }

    /// Repeated singular values: any SVD the routine returns works.
    @Test func repeatedSingularValues() throws {
        var cases: [(String, Matrix<Double>)] = [
            ("identity 3", .identity(3)), ("identity 64", .identity(64)), ("-I 4", -1 * Matrix<Double>.identity(4)),
            ("diag(2, 2, 1)", try Matrix([[2, 0, 0], [0, 2, 0], [0, 0, 1]])),
            ("permutation", try Matrix([[0, 1, 0], [0, 0, 1], [1, 0, 0]])),
            ("odd permutation", try Matrix([[0, 1, 0], [1, 0, 0], [0, 0, 1]])),
            ("3·rotation", try Matrix([[0, -3], [3, 0]])),
        ]
        var rng = SeededGenerator(seed: 5)
        var p17 = Array(0..<17)
        p17.shuffle(using: &rng)
        var perm = Matrix<Double>(rows: 17, columns: 17)
        for (i, j) in p17.enumerated() { perm[i, j] = 2 }
        cases.append(("2·permutation 17", perm))
        for (label, a) in cases {
            let n = a.rows
            let layer = try InvertibleLinear<Double>(matrix: a)
            let reconstruction = RandomMatrices.frobenius(try layer.matrix() - a) / (RandomMatrices.frobenius(a) * Double(n))
            #expect(reconstruction <= 1e-12, "\(label): \(reconstruction)")
            let lu = try LAPACK.logAbsDeterminant(a)
            let logDet = layer.scale.logScale.value.storage.reduce(0, +)
            #expect(abs(logDet - lu.logAbsDet) <= 1e-12 * Double(n) * max(1, abs(lu.logAbsDet)), "\(label) log-det")
        }
    }

    @Test func singularMatricesThrow() throws {
        func expectSingular(_ a: Matrix<Double>, _ label: String) {
            do {
                _ = try InvertibleLinear<Double>(matrix: a)
                Issue.record("\(label) accepted")
            } catch let error as InvertNNError {
                if case .singular(_, let detail) = error {
                    #expect(detail.contains("σ_min"), "\(label): \(detail)")
                } else {
                    Issue.record("\(label): wrong error \(error)")
                }
            } catch { Issue.record("\(label): \(error)") }
        }
        expectSingular(Matrix(rows: 3, columns: 3), "zero matrix")
        expectSingular(try Matrix([[1, 2], [2, 4]]), "rank 1")
        expectSingular(try Matrix([[1, 0, 0], [0, 1, 0], [0, 0, 1e-17]]), "σ_min = 1e-17 σ_max")
        var rng = SeededGenerator(seed: 9)
        expectSingular(try RandomMatrices.conditioned(17, condition: 1e17, using: &rng), "κ = 1e17")
        // Just inside the default tolerance n·ε (κ = 1e12 for n = 17 is well conditioned enough).
        #expect(throws: Never.self) { try InvertibleLinear<Double>(matrix: RandomMatrices.conditioned(17, condition: 1e12, using: &rng)) }
        // A stricter caller tolerance rejects a κ = 1e6 matrix.
        let a = try RandomMatrices.conditioned(5, condition: 1e6, using: &rng)
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(matrix: a, singularTolerance: 1e-5) }
        #expect(throws: Never.self) { try InvertibleLinear<Double>(matrix: a, singularTolerance: 1e-7) }
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(matrix: a, singularTolerance: -1) }
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(matrix: Matrix(rows: 2, columns: 3)) }
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(matrix: Matrix(rows: 0, columns: 0)) }
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(matrix: Matrix([[1, .infinity], [0, 1]])) }
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>(matrix: .identity(2), bias: [1]) }
    }

    /// Issue 4's known value: W = U diag(2, 0.25, 3) V with U, V products of the given reflectors,
    /// rebuilt (a) from the orthogonal matrices U and V turned into trapezoidal reflectors and
    /// (b) from the matrix W through the SVD.
    @Test func knownValues() throws {
        let u = try Householder<Double>.product(ofReflectors: Matrix([[1, 2, 3], [-1, 0, 2], [0, 1, 1]]))
        let v = try Householder<Double>.product(ofReflectors: Matrix([[2, -1, 0], [1, 1, 1], [0, 0, 1]]))
        let bias = [0.1, 0.2, 0.3]
        let fromFactors = try InvertibleLinear<Double>(
            u: Householder(orthogonal: v, hasBias: false), logScale: [2, 0.25, 3].map { Double.log($0) },
            v: Householder(orthogonal: u, hasBias: false), bias: bias)
        let w = try fromFactors.matrix()
        let fromMatrix = try InvertibleLinear<Double>(matrix: w, bias: bias)
        let expected = [-0.76, 1.6666666667, -4.5133333333]
        for layer in [fromFactors, fromMatrix] {
            let out = try layer.forward(Matrix(row: [1, 2, -1]))
            // The expected values are given to 10 decimals.
            for j in 0..<3 { #expect(abs(out.output[0, j] - expected[j]) <= 1e-10, "\(out.output)") }
            #expect(abs(out.output[0, 0] + 0.76) <= 1e-12)
            #expect(abs(out.logAbsDet[0] - Double.log(1.5)) <= 1e-12, "\(out.logAbsDet[0])")
            #expect(abs(out.logAbsDet[0] - 0.4054651081) <= 1e-10)
            let back = try layer.inverse(out.output)
            for (a, b) in zip(back.output.storage, [1.0, 2, -1]) { #expect(abs(a - b) <= 1e-12) }
        }
        // The SVD recovers the singular values {3, 2, 0.25}.
        let sigma = fromMatrix.scale.logScale.value.storage.map { Double.exp($0) }
        for (s, t) in zip(sigma, [3.0, 2, 0.25]) { #expect(abs(s - t) <= 1e-14) }
    }

    @Test func contract() throws {
        try checkLayerContract(SVDInitializedFactory())
    }

    /// The 1x1-convolution variant: every pixel's channels map by A, log-det H·W·log|det A|.
    @Test func pixelwiseVariant() throws {
        var rng = SeededGenerator(seed: 23)
        let (c, h, w) = (3, 4, 5)
        let a = try RandomMatrices.conditioned(c, condition: 10, using: &rng)
        let bias = [0.5, -1, 2.0]
        let layer = try Pixelwise<Double>.invertibleLinear(matrix: a, height: h, width: w, bias: bias)
        let x = Matrix<Double>.randomNormal(rows: 2, columns: c * h * w, using: &rng)
        let out = try layer.forward(x)
        let lu = try LAPACK.logAbsDeterminant(a).logAbsDet
        for b in 0..<2 {
            #expect(abs(out.logAbsDet[b] - Double(h * w) * lu) <= 1e-12 * Double(h * w) * max(1, abs(lu)))
            for p in 0..<(h * w) {
                for i in 0..<c {
                    var expected = bias[i]
                    for j in 0..<c { expected += a[i, j] * x[b, j * h * w + p] }
                    #expect(abs(out.output[b, i * h * w + p] - expected) <= 1e-12 * max(1, abs(expected)))
                }
            }
        }
        #expect(try (layer.inverse(out.output).output - x).maxAbs <= 1e-12 * max(1, x.maxAbs))
        #expect(throws: InvertNNError.self) { try Pixelwise<Double>.invertibleLinear(matrix: Matrix(rows: 3, columns: 3), height: 2, width: 2) }
    }

    @Test func haarRandomLayer() throws {
        var rng = SeededGenerator(seed: 31)
        for determinant in [Householder<Double>.Determinant.positive, .negative] {
            let layer = try InvertibleLinear<Double>.haarRandom(features: 17, determinant: determinant, using: &rng)
            let m = try layer.matrix()
            #expect(try RandomMatrices.defect(m) <= 1e-13 * 17)
            #expect(try LAPACK.logAbsDeterminant(m).sign == (determinant == .positive ? 1 : -1))
        }
        let scaled = try InvertibleLinear<Double>.haarRandom(features: 3, logScale: [0.1, 0.2, 0.3], hasBias: false, using: &rng)
        #expect(abs(try LAPACK.logAbsDeterminant(scaled.matrix()).logAbsDet - 0.6) <= 1e-13)
        #expect(scaled.bias == nil)
        #expect(throws: InvertNNError.self) { try InvertibleLinear<Double>.haarRandom(features: 3, logScale: [0, .nan, 0], using: &rng) }
    }
}
