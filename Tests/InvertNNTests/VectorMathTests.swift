import Testing
@testable import InvertNN

/// The vectorized `exp` against `libm` (through swift-numerics): at most 2 ulp on every finite
/// result, and exactly `libm`'s value wherever a lane falls back (overflow, underflow to
/// subnormals or 0, infinities, NaN).
@Suite struct VectorMathTests {
    /// Distance in units in the last place of `expected`.
    private func ulps<T: Scalar>(_ actual: T, _ expected: T) -> Double {
        Double(abs(actual - expected) / expected.ulp)
    }

    private func check<T: Scalar>(_ inputs: [T], maxULP: Double) {
        var values = inputs
        VectorMath.exp(&values)
        var worst = 0.0
        for (x, y) in zip(inputs, values) {
            let expected = T.exp(x)
            if expected.isNaN {
                #expect(y.isNaN, "exp(\(x))")
            } else if expected.isInfinite || expected == 0 || expected.isSubnormal {
                #expect(y == expected, "exp(\(x)) = \(y), libm \(expected)")
            } else {
                worst = max(worst, ulps(y, expected))
            }
        }
        #expect(worst <= maxULP, "worst error \(worst) ulp")
    }

    @Test func sweepFloat() {
        // Every count 0…19 exercises the 8-lane body and the tail; the sweep covers [-100, 100].
        for count in 0..<20 { check((0..<count).map { Float($0) * 0.37 - 3 }, maxULP: 2) }
        check((0..<200_001).map { Float($0) * 1e-3 - 100 }, maxULP: 2)
        var rng = SeededGenerator(seed: 1)
        check((0..<100_000).map { _ in Float.random(in: -1...1, using: &rng) }, maxULP: 2)
    }

    @Test func sweepDouble() {
        for count in 0..<10 { check((0..<count).map { Double($0) * 0.37 - 3 }, maxULP: 2) }
        check((0..<300_001).map { Double($0) * 5e-3 - 750 }, maxULP: 2)
        var rng = SeededGenerator(seed: 2)
        check((0..<100_000).map { _ in Double.random(in: -1...1, using: &rng) }, maxULP: 2)
    }

    @Test func specialValuesFallBackToLibm() {
        let specials: [Double] = [0, -0.0, 1, -1, 1e-300, -1e-300, 709.7, 710, -745, -746, -708.5, 708.5,
                                  .infinity, -.infinity, .nan, .greatestFiniteMagnitude, -.greatestFiniteMagnitude]
        check(specials, maxULP: 2)
        check(specials.map { Float($0) } + [88.7, 89, -87.5, -103, -104], maxULP: 2)
        var one: [Double] = [0, 1, 2, 3]
        VectorMath.exp(&one)
        #expect(one[0] == 1)
        #expect(abs(one[1] - 2.718281828459045) <= 4.5e-16)
    }
}
