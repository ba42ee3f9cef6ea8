import RealModule

/// A fast, seedable, reproducible random number generator (xoshiro256**, Blackman & Vigna 2018),
/// seeded through SplitMix64 so that nearby seeds give unrelated streams.
///
/// Every stochastic API of InvertNN takes a caller-owned generator (`inout some
/// RandomNumberGenerator`); there is no global random state. Two generators made with the same
/// seed produce the same sequence on every platform.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    @usableFromInline var state: (UInt64, UInt64, UInt64, UInt64)

    /// A generator whose stream is fully determined by `seed`.
    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    @inlinable
    func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

extension RandomNumberGenerator {
    /// A uniform draw from `[0, 1)` with 53 (Double) or 24 (Float) random bits.
    @inlinable
    public mutating func nextUniform<T: Scalar>(_: T.Type = T.self) -> T {
        T(Double(next() >> 11) * 0x1.0p-53)
    }

    /// A standard normal draw N(0, 1), by the Box–Muller transform (computed in Double).
    @inlinable
    public mutating func nextNormal<T: Scalar>(_: T.Type = T.self) -> T {
        // u1 in (0, 1] so that log(u1) is finite.
        let u1 = 1.0 - Double(next() >> 11) * 0x1.0p-53
        let u2 = Double(next() >> 11) * 0x1.0p-53
        return T((-2 * Double.log(u1)).squareRoot() * Double.cos(2 * Double.pi * u2))
    }
}

extension Matrix {
    /// A `rows × columns` matrix of independent N(0, 1) draws, scaled by `standardDeviation`.
    public static func randomNormal(
        rows: Int, columns: Int, standardDeviation: T = 1, using generator: inout some RandomNumberGenerator
    ) -> Matrix {
        var m = Matrix(rows: rows, columns: columns)
        for i in 0..<m.count { m.storage[i] = standardDeviation * generator.nextNormal(T.self) }
        return m
    }

    /// A `rows × columns` matrix of independent U[0, 1) draws.
    public static func randomUniform(
        rows: Int, columns: Int, using generator: inout some RandomNumberGenerator
    ) -> Matrix {
        var m = Matrix(rows: rows, columns: columns)
        for i in 0..<m.count { m.storage[i] = generator.nextUniform(T.self) }
        return m
    }
}
