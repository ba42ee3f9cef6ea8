import Testing
import InvertNN

/// Orthogonal matrix → trapezoidal reflectors → matrix (issue 4, item 1 and the round-trip line
/// of item 4).
@Suite struct HouseholderOrthogonalTests {
    /// Checks one round trip and returns `max|matrix() - Q|`.
    @discardableResult
    func roundTrip(_ q: Matrix<Double>, tolerance: Double, _ label: String) throws -> Double {
        let n = q.rows
        let layer = try Householder<Double>(orthogonal: q, hasBias: false)
        let v = layer.reflectors.value
        for i in 0..<n { for j in 0..<i { #expect(v[i, j] == 0, "trapezoidal \(label)") } }
        let last = v[n - 1, n - 1]
        #expect(last == 0 || last == 1, "last reflector 0 or e_n \(label)")
        #expect(layer.fixedLastReflector == (last == 0 ? .zero : .flip), "\(label)")
        let error = try (layer.matrix() - q).maxAbs
        #expect(error <= tolerance, "round trip error \(error) \(label)")
        let sign = try LAPACK.logAbsDeterminant(q).sign
        #expect(try layer.determinantSign() == (sign > 0 ? .positive : .negative), "determinant sign \(label)")
        return error
    }

    @Test func randomOrthogonalBothSigns() throws {
        var rng = SeededGenerator(seed: 41)
        var worst = 0.0
        for n in [1, 2, 3, 17, 64, 256] {
            for negative in [false, true] {
                let q = try RandomMatrices.orthogonal(n, negative: negative, using: &rng)
                let e = try roundTrip(q, tolerance: 1e-13 * Double(n), "n = \(n) negative \(negative)")
                worst = max(worst, e / Double(n))
            }
        }
        print("HouseholderOrthogonal: worst round-trip max|W - Q| / n = \(worst)")
    }

    /// Rotations (and reflections) of the plane on a grid of 64 angles over [0, 2π), embedded in
    /// 3×3 and 5×5 around different axes.
    @Test func rotationGrid() throws {
        for k in 0..<64 {
            let t = 2 * Double.pi * Double(k) / 64
            let (c, s) = (Double.cos(t), Double.sin(t))
            try roundTrip(Matrix([[c, -s], [s, c]]), tolerance: 1e-15, "rotation \(k)")
            try roundTrip(Matrix([[c, s], [s, -c]]), tolerance: 1e-15, "reflection \(k)")
            for (a, b) in [(0, 1), (0, 2), (1, 2)] {
                var r = Matrix<Double>.identity(3)
                r[a, a] = c; r[a, b] = -s; r[b, a] = s; r[b, b] = c
                try roundTrip(r, tolerance: 1e-15, "3D rotation \(k) plane \(a)\(b)")
            }
            var r5 = Matrix<Double>.identity(5)
            r5[1, 1] = c; r5[1, 3] = -s; r5[3, 1] = s; r5[3, 3] = c
            r5[4, 4] = -1
            try roundTrip(r5, tolerance: 1e-15, "5D rotation+flip \(k)")
        }
    }

    @Test func permutationsAndIdentity() throws {
        func permutationMatrix(_ p: [Int]) -> Matrix<Double> {
            var m = Matrix<Double>(rows: p.count, columns: p.count)
            for (i, j) in p.enumerated() { m[i, j] = 1 }
            return m
        }
        for p in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            try roundTrip(permutationMatrix(p), tolerance: 1e-15, "permutation \(p)")
        }
        var rng = SeededGenerator(seed: 3)
        for n in [1, 2, 17, 64, 256] {
            var p = Array(0..<n)
            p.shuffle(using: &rng)
            try roundTrip(permutationMatrix(p), tolerance: 1e-15 * Double(n), "random permutation n = \(n)")
            let identity = try Householder<Double>(orthogonal: .identity(n), hasBias: false)
            #expect(identity.reflectors.value.storage.allSatisfy { $0 == 0 }, "identity has zero reflectors")
            #expect(try identity.matrix() == .identity(n))
            try roundTrip(-1 * Matrix<Double>.identity(n), tolerance: 0, "-I n = \(n)")
        }
    }

    @Test func floatRoundTrip() throws {
        var rng = SeededGenerator(seed: 8)
        var worst = 0.0
        for n in [1, 2, 3, 17, 64, 256] {
            for negative in [false, true] {
                let q = try RandomMatrices.orthogonal(n, negative: negative, using: &rng)
                let layer = try Householder<Float>(orthogonal: q.converted(to: Float.self), hasBias: false)
                let error = try (layer.matrix().converted(to: Double.self) - q).maxAbs
                worst = max(worst, error)
                #expect(error <= 1e-4, "Float n = \(n): \(error)")
                #expect(try layer.determinantSign() == (negative ? .negative : .positive))
            }
        }
        print("HouseholderOrthogonal: worst Float round-trip max|W - Q| = \(worst)")
    }

    @Test func rejectsNonOrthogonal() throws {
        let d = try Matrix<Double>([[2, 0, 0], [0, 0.5, 0], [0, 0, 1]])
        #expect(try LAPACK.logAbsDeterminant(d).logAbsDet == 0)  // |det| = 1, still not orthogonal
        do {
            _ = try Householder<Double>(orthogonal: d)
            Issue.record("diag(2, 0.5, 1) accepted")
        } catch let InvertNNError.singular(_, detail) {
            #expect(detail.contains("max|QᵀQ - I| = 3.0"), "\(detail)")
        }
        #expect(try Householder<Double>.orthogonalityDefect(d) == 3)
        var rng = SeededGenerator(seed: 1)
        var q = try RandomMatrices.orthogonal(17, negative: false, using: &rng)
        q[3, 5] += 1e-8
        #expect(throws: InvertNNError.self) { try Householder<Double>(orthogonal: q) }
        // A looser tolerance is the caller's choice.
        #expect(try (Householder<Double>(orthogonal: q, tolerance: 1e-6).matrix() - q).maxAbs <= 1e-7)
        #expect(throws: InvertNNError.self) { try Householder<Double>(orthogonal: Matrix(rows: 2, columns: 3)) }
        #expect(throws: InvertNNError.self) { try Householder<Double>(orthogonal: Matrix(rows: 0, columns: 0)) }
        #expect(throws: InvertNNError.self) { try Householder<Double>(orthogonal: Matrix([[Double.nan]])) }
        #expect(throws: InvertNNError.self) { try Householder<Double>(orthogonal: .identity(2), tolerance: -1) }
    }

    @Test func setOrthogonal() throws {
        var rng = SeededGenerator(seed: 12)
        let q = try RandomMatrices.orthogonal(5, negative: true, using: &rng)
        let needed = try Householder<Double>(orthogonal: q).fixedLastReflector
        let layer = try Householder<Double>(features: 5, bias: nil, needed: needed)
        layer.bias?.withUnsafeMutableValue { $0[2] = 0.5 }
        try layer.setOrthogonal(q)
        #expect(try (layer.matrix() - q).maxAbs <= 1e-14)
        #expect(layer.bias?.value[0, 2] == 0.5, "bias kept")
        let other = try Householder<Double>(features: 5, bias: nil, needed: needed == .zero ? .flip : .zero)
        let before = other.reflectors.value
        #expect(throws: InvertNNError.self) { try other.setOrthogonal(q) }
        #expect(other.reflectors.value == before, "unchanged on error")
        let general = try Householder<Double>(features: 5, parametrization: .general)
        try general.setOrthogonal(q)
        #expect(try (general.matrix() - q).maxAbs <= 1e-14)
        #expect(throws: InvertNNError.self) { try Householder<Double>(features: 5, reflectors: 3).setOrthogonal(q) }
        #expect(throws: InvertNNError.self) { try layer.setOrthogonal(.identity(4)) }
    }

    /// Haar measure: orthogonal, each determinant sign about half the time (or as requested), and
    /// the moments of a uniformly random unit vector: E[Q_ij] = 0, E[Q_ij²] = 1/n, E[Q_ij⁴] = 3/(n(n+2)).
    @Test func haarRandom() throws {
        var rng = SeededGenerator(seed: 77)
        let n = 4, draws = 4000
        var negatives = 0
        var first = 0.0, second = 0.0, fourth = 0.0
        for _ in 0..<draws {
            let q = try Householder<Double>.haarRandom(features: n, hasBias: false, using: &rng).matrix()
            #expect(try RandomMatrices.defect(q) <= 1e-14)
            if try LAPACK.logAbsDeterminant(q).sign < 0 { negatives += 1 }
            let x = q[1, 2]
            first += x; second += x * x; fourth += x * x * x * x
        }
        let d = Double(draws)
        #expect(abs(Double(negatives) / d - 0.5) <= 0.03, "det -1 fraction \(Double(negatives) / d)")
        #expect(abs(first / d) <= 0.03)
        #expect(abs(second / d - 1 / Double(n)) <= 0.02)
        #expect(abs(fourth / d - 3 / Double(n * (n + 2))) <= 0.02)
        for determinant in [Householder<Double>.Determinant.positive, .negative] {
            for size in [1, 2, 17] {
                let h = try Householder<Double>.haarRandom(features: size, determinant: determinant, using: &rng)
                #expect(try h.determinantSign() == determinant)
                let sign = try LAPACK.logAbsDeterminant(h.matrix()).sign
                #expect(sign == (determinant == .positive ? 1 : -1))
            }
        }
        #expect(throws: InvertNNError.self) { try Householder<Double>.haarRandom(features: 0, using: &rng) }
    }
}

extension Householder {
    /// A zero-reflector layer with a given fixed last reflector (test helper).
    convenience init(features: Int, bias: [T]?, needed: FixedReflector?) throws {
        try self.init(features: features, determinant: needed == .flip ? .negative : .positive)
    }
}
