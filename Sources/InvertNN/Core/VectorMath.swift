import RealModule

/// Vectorized elementary functions over whole buffers, for the few hot loops that would
/// otherwise spend more time in scalar `libm` calls than in their GEMMs (the coupling layer's
/// log-scales: one `exp` per transformed feature and sample, DESIGN.md §6).
///
/// `exp` uses the classical reduction `x = k·ln 2 + r`, `|r| ≤ ln 2 / 2`, with `ln 2` split into
/// a high part whose products with `k` are exact and a low part (Cody & Waite 1980, as in
/// fdlibm's `e_exp.c`), a Taylor polynomial in `r` (degree 7 for `Float`, 13 for `Double`, whose
/// truncation error is below a quarter ulp on that interval) and `2^k` built in the exponent
/// bits. Lanes with `|x|` beyond the range where `2^k` stays normal, and NaN lanes, take the
/// scalar `exp` instead, so overflow, underflow, subnormals and NaN follow `libm` exactly. Only
/// those lanes do: every other entry gets the polynomial's result whatever its neighbours hold,
/// so an entry's result depends on its value alone (a NaN in one sample of a batch cannot change
/// another sample's last bits).
/// Measured error against `libm` (test `VectorMathTests`): at most 2 ulp in both types.
enum VectorMath {
    /// Replaces every entry `v` of `values` by `e^v` (any count, including 0).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func exp<T: Scalar>(_ values: inout [T]) {
        values.withUnsafeMutableBufferPointer { exp($0) }
    }

    /// Replaces every entry `v` of the buffer by `e^v` (any count, including 0).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func exp<T: Scalar>(_ values: UnsafeMutableBufferPointer<T>) {
        guard let base = values.baseAddress, !values.isEmpty else { return }
        if T.self == Float.self {
            base.withMemoryRebound(to: Float.self, capacity: values.count) { expFloat($0, values.count) }
        } else if T.self == Double.self {
            base.withMemoryRebound(to: Double.self, capacity: values.count) { expDouble($0, values.count) }
        } else {
            for i in values.indices { values[i] = T.exp(values[i]) }
        }
    }

    /// Applies `kernel` to whole vectors of `V.scalarCount` entries (a partial last vector is
    /// padded with zeros) whose lanes all lie in `[-limit, limit]`. In a vector with lanes beyond
    /// it (or NaN), those lanes are replaced by 0 for the kernel and then get `scalar`; the
    /// others keep the kernel's result, so each entry's result is a function of its value alone.
    @inline(__always)
    private static func applyLanes<V: SIMD>(
        _ p: UnsafeMutablePointer<V.Scalar>, _ count: Int, limit: V.Scalar, _ allInside: (V) -> Bool, _ kernel: (V) -> V,
        _ scalar: (V.Scalar) -> V.Scalar
    ) where V.Scalar: BinaryFloatingPoint {
        let lanes = V.scalarCount
        var i = 0
        while i < count {
            let width = Swift.min(lanes, count - i)
            var x = V()
            // Whole vectors move as one unaligned load and store (lane-by-lane insertion cost
            // as much as the polynomial).
            if width == lanes {
                x = UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
            } else {
                for l in 0..<width { x[l] = p[i + l] }
            }
            if allInside(x) {
                let y = kernel(x)
                if width == lanes {
                    UnsafeMutableRawPointer(p + i).storeBytes(of: y, as: V.self)
                } else {
                    for l in 0..<width { p[i + l] = y[l] }
                }
            } else {
                var safe = x
                for l in 0..<width where !(x[l] <= limit && x[l] >= -limit) { safe[l] = 0 }
                let y = kernel(safe)
                for l in 0..<width { p[i + l] = x[l] <= limit && x[l] >= -limit ? y[l] : scalar(x[l]) }
            }
            i += lanes
        }
    }

    // MARK: Float, 8 lanes

    private typealias Float8 = SIMD8<Float>

    private static func expFloat(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
        applyLanes(p, count, limit: 87, allInside8, exp8, Float.exp)
    }

    /// Whether every lane lies in `[-87, 87]` (NaN does not), tested on the bits: `SIMD`
    /// comparisons build their mask lane by lane through memory, which cost more than `exp8`.
    @inline(__always)
    private static func allInside8(_ x: Float8) -> Bool {
        let magnitude = unsafeBitCast(x, to: SIMD8<Int32>.self) & Int32.max
        let margin = SIMD8<Int32>(repeating: Int32(bitPattern: Float(87).bitPattern)) &- magnitude
        return (margin &>> 31).wrappedSum() == 0
    }

    /// `e^x` lane-wise for lanes in `[-87, 87]` (``applyLanes(_:_:limit:_:_:)`` keeps others out).
    @inline(__always)
    private static func exp8(_ x: Float8) -> Float8 {
        // 1.5·2²³: adding it rounds x·log₂e to an integer held in the low mantissa bits.
        let magic = Float8(repeating: 12_582_912)
        let shifted = x * 1.442_695_04 + magic
        let k = shifted - magic
        // ln 2 = 0x1.62e4p-1 (exact times any |k| ≤ 2⁸) + 1.428606820e-6.
        let r = (x - k * 0.693_145_751_953_125) - k * 1.428_606_820_309_417_232_1e-6
        var q = Float8(repeating: 1 / 5040)
        q = q * r + 1 / 720
        q = q * r + 1 / 120
        q = q * r + 1 / 24
        q = q * r + 1 / 6
        q = q * r + 0.5
        q = q * r + 1
        q = q * r + 1
        let kBits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let scale = unsafeBitCast((kBits &+ 127) &<< 23, to: Float8.self)
        return q * scale
    }

    // MARK: Double, 4 lanes

    private typealias Double4 = SIMD4<Double>

    private static func expDouble(_ p: UnsafeMutablePointer<Double>, _ count: Int) {
        applyLanes(p, count, limit: 708, allInside4, exp4, Double.exp)
    }

    /// Whether every lane lies in `[-708, 708]` (NaN does not); see ``allInside8(_:)``.
    @inline(__always)
    private static func allInside4(_ x: Double4) -> Bool {
        let magnitude = unsafeBitCast(x, to: SIMD4<Int64>.self) & Int64.max
        let margin = SIMD4<Int64>(repeating: Int64(bitPattern: Double(708).bitPattern)) &- magnitude
        return (margin &>> 63).wrappedSum() == 0
    }

    /// `e^x` lane-wise for lanes in `[-708, 708]` (``applyLanes(_:_:limit:_:_:)`` keeps others out).
    @inline(__always)
    private static func exp4(_ x: Double4) -> Double4 {
        // 1.5·2⁵²: adding it rounds x·log₂e to an integer held in the low mantissa bits.
        let magic = Double4(repeating: 6_755_399_441_055_744)
        let shifted = x * 1.442_695_040_888_963_407_4 + magic
        let k = shifted - magic
        // fdlibm's split of ln 2: the high part has 32 trailing zero bits, so k·high is exact.
        let r = (x - k * 6.931_471_803_691_238_164_90e-1) - k * 1.908_214_929_270_587_700_02e-10
        var q = Double4(repeating: 1 / 6_227_020_800)
        q = q * r + 1 / 479_001_600
        q = q * r + 1 / 39_916_800
        q = q * r + 1 / 3_628_800
        q = q * r + 1 / 362_880
        q = q * r + 1 / 40_320
        q = q * r + 1 / 5040
        q = q * r + 1 / 720
        q = q * r + 1 / 120
        q = q * r + 1 / 24
        q = q * r + 1 / 6
        q = q * r + 0.5
        q = q * r + 1
        q = q * r + 1
        let kBits = unsafeBitCast(shifted, to: SIMD4<Int64>.self) &- unsafeBitCast(magic, to: SIMD4<Int64>.self)
        let scale = unsafeBitCast((kBits &+ 1023) &<< 52, to: Double4.self)
        return q * scale
    }
}
