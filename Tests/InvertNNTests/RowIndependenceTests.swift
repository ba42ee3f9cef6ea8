import Testing
@testable import InvertNN

/// Issue 14, item 16: a sample's results do not depend on the other samples of its batch. A NaN
/// or an overflowing entry in one row used to send the whole SIMD vector of the coupling's
/// exponentials to the scalar `exp`, changing neighbouring rows in the last bits.
@Suite struct RowIndependenceTests {
    /// The bits of `x` (widened exactly to Double; every NaN compares equal).
    static func bits<T: Scalar>(_ x: T) -> UInt64 { x.isNaN ? 0x7FF8_0000_0000_0000 : Double(x).bitPattern }

    /// Every entry of a vectorized `exp` equals the same value's `exp` computed alone, with NaN,
    /// overflowing and underflowing entries mixed into every SIMD vector.
    @Test func vectorExpIsPerEntry() {
        func check<T: Scalar>(_: T.Type) {
            var rng = SeededGenerator(seed: 5)
            var values = (0..<4096).map { _ in T(Double.random(in: -8...8, using: &rng)) }
            for i in stride(from: 3, to: values.count, by: 5) { values[i] = [T.nan, T(1000), T(-1000), T.infinity][(i / 5) % 4] }
            var batch = values
            VectorMath.exp(&batch)
            for (i, v) in values.enumerated() {
                var alone = [v]
                VectorMath.exp(&alone)
                #expect(Self.bits(batch[i]) == Self.bits(alone[0]), "\(T.self) entry \(i): e^\(v) is \(batch[i]) in the batch, \(alone[0]) alone")
                if Self.bits(batch[i]) != Self.bits(alone[0]) { return }
            }
        }
        check(Float.self)
        check(Double.self)
    }

    /// An affine coupling with unbounded scales: rows next to a row whose log-scale overflows (or
    /// is NaN) get exactly the bits they get when that row is replaced by a benign one, in both
    /// directions, outputs and log-dets.
    @Test func affineCouplingRowsAreIndependent() throws {
        func check<T: Scalar>(_: T.Type) throws {
            var rng = SeededGenerator(seed: 9)
            let layer = try AffineCoupling<T>(features: 6, hiddenSizes: [16], scaleBound: nil, zeroInitializeLastLayer: false, using: &rng)
            let benign = Matrix<T>.randomNormal(rows: 64, columns: 6, using: &rng)
            for bad in [T(1e4), T.nan, T(-1e4)] {
                var hostile = benign
                for r in [4, 21, 38] { for c in 0..<3 { hostile[r, c] = bad } }  // the conditioning half of three rows
                for direction in ["forward", "inverse"] {
                    let a = direction == "forward" ? try layer.forward(benign) : try layer.inverse(benign)
                    let b = direction == "forward" ? try layer.forward(hostile) : try layer.inverse(hostile)
                    for r in 0..<64 where ![4, 21, 38].contains(r) {
                        #expect(a.output.row(r).map(Self.bits) == b.output.row(r).map(Self.bits), "\(T.self) \(direction) \(bad) row \(r)")
                        #expect(Self.bits(a.logAbsDet[r]) == Self.bits(b.logAbsDet[r]), "\(T.self) \(direction) \(bad) log-det row \(r)")
                    }
                }
            }
        }
        try check(Float.self)
        try check(Double.self)
    }
}
