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
/// Error against `libm`: at most 2 ulp in both types (checked by `VectorMathTests`).
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

    /// Applies `K.kernel` to whole vectors of `K.Vector.scalarCount` entries (a partial last
    /// vector is padded with zeros) whose lanes all lie in `[-K.limit, K.limit]`. In a vector with
    /// lanes beyond it (or NaN), those lanes are replaced by 0 for the kernel and then get
    /// `K.scalar`; the others keep the kernel's result, so each entry's result is a function of
    /// its value alone. (A kernel type rather than closures: the specialized loop then inlines the
    /// polynomial, where closure arguments stayed calls that passed every vector through memory.)
    @inline(__always)
    private static func applyLanes<K: LaneKernel>(_: K.Type, _ p: UnsafeMutablePointer<K.Vector.Scalar>, _ count: Int) {
        typealias V = K.Vector
        let lanes = V.scalarCount, limit = K.limit
        var i = 0
        // Whole vectors move as one unaligned load and store (lane-by-lane insertion cost as
        // much as the polynomial). When one pass over the bits finds every entry inside, the
        // vectors skip their own check (a horizontal reduction each).
        if K.allInside(UnsafePointer(p), count) {
            while i + lanes <= count {
                let x = UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
                UnsafeMutableRawPointer(p + i).storeBytes(of: K.kernel(x), as: V.self)
                i += lanes
            }
        }
        while i + lanes <= count {
            let x = UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
            if K.allInside(x) {
                UnsafeMutableRawPointer(p + i).storeBytes(of: K.kernel(x), as: V.self)
            } else {
                var safe = x
                for l in 0..<lanes where !(x[l] <= limit && x[l] >= -limit) { safe[l] = 0 }
                let y = K.kernel(safe)
                for l in 0..<lanes { p[i + l] = x[l] <= limit && x[l] >= -limit ? y[l] : K.scalar(x[l]) }
            }
            i += lanes
        }
        if i < count {
            let width = count - i
            var x = V()
            for l in 0..<width { x[l] = p[i + l] }
            var safe = x
            for l in 0..<width where !(x[l] <= limit && x[l] >= -limit) { safe[l] = 0 }
            let y = K.kernel(safe)
            for l in 0..<width { p[i + l] = x[l] <= limit && x[l] >= -limit ? y[l] : K.scalar(x[l]) }
        }
    }

    // MARK: Float, 16 lanes (four SSE registers: independent chains the CPU overlaps)

    private typealias FloatLanes = SIMD16<Float>

    private static func expFloat(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
        applyLanes(ExpFloatLanes.self, p, count)
    }

    /// `exp` on 16 `Float` lanes for ``applyLanes(_:_:_:)``.
    private enum ExpFloatLanes: LaneKernel {
        static var limit: Float { 87 }
        @inline(__always) static func allInside(_ x: FloatLanes) -> Bool { allInside16(x) }
        @inline(__always) static func allInside(_ p: UnsafePointer<Float>, _ count: Int) -> Bool {
            p.withMemoryRebound(to: Int32.self, capacity: count) { bits in
                // limit - |x| on the bits is negative for a lane beyond 87 or NaN; OR keeps the sign.
                var margins: Int32 = 0
                for i in 0..<count { margins |= Int32(bitPattern: Float(87).bitPattern) &- (bits[i] & Int32.max) }
                return margins >= 0
            }
        }
        @inline(__always) static func kernel(_ x: FloatLanes) -> FloatLanes { exp16(x) }
        @inline(__always) static func scalar(_ x: Float) -> Float { Float.exp(x) }
    }

    /// Whether every lane lies in `[-87, 87]` (NaN does not), tested on the bits: `SIMD`
    /// comparisons build their mask lane by lane through memory, which cost more than `exp16`.
    @inline(__always)
    private static func allInside16(_ x: FloatLanes) -> Bool {
        let magnitude = unsafeBitCast(x, to: SIMD16<Int32>.self) & Int32.max
        let margin = SIMD16<Int32>(repeating: Int32(bitPattern: Float(87).bitPattern)) &- magnitude
        return (margin &>> 31).wrappedSum() == 0
    }

    /// `e^x` lane-wise for lanes in `[-87, 87]` (``applyLanes(_:_:_:)`` keeps others out).
    @inline(__always)
    private static func exp16(_ x: FloatLanes) -> FloatLanes {
        // 1.5·2²³: adding it rounds x·log₂e to an integer held in the low mantissa bits.
        let magic = FloatLanes(repeating: 12_582_912)
        let shifted = x * 1.442_695_04 + magic
        let k = shifted - magic
        // ln 2 = 0x1.62e4p-1 (exact times any |k| ≤ 2⁸) + 1.428606820e-6.
        let r = (x - k * 0.693_145_751_953_125) - k * 1.428_606_820_309_417_232_1e-6
        var q = FloatLanes(repeating: 1 / 5040)
        q = q * r + 1 / 720
        q = q * r + 1 / 120
        q = q * r + 1 / 24
        q = q * r + 1 / 6
        q = q * r + 0.5
        q = q * r + 1
        q = q * r + 1
        let kBits = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
        let scale = unsafeBitCast((kBits &+ 127) &<< 23, to: FloatLanes.self)
        return q * scale
    }

    // MARK: Double, 8 lanes (four SSE registers)

    private typealias DoubleLanes = SIMD8<Double>

    private static func expDouble(_ p: UnsafeMutablePointer<Double>, _ count: Int) {
        applyLanes(ExpDoubleLanes.self, p, count)
    }

    /// `exp` on 8 `Double` lanes for ``applyLanes(_:_:_:)``.
    private enum ExpDoubleLanes: LaneKernel {
        static var limit: Double { 708 }
        @inline(__always) static func allInside(_ x: DoubleLanes) -> Bool { allInside8(x) }
        @inline(__always) static func allInside(_ p: UnsafePointer<Double>, _ count: Int) -> Bool {
            p.withMemoryRebound(to: Int64.self, capacity: count) { bits in
                var margins: Int64 = 0
                for i in 0..<count { margins |= Int64(bitPattern: Double(708).bitPattern) &- (bits[i] & Int64.max) }
                return margins >= 0
            }
        }
        @inline(__always) static func kernel(_ x: DoubleLanes) -> DoubleLanes { exp8(x) }
        @inline(__always) static func scalar(_ x: Double) -> Double { Double.exp(x) }
    }

    /// Whether every lane lies in `[-708, 708]` (NaN does not); see ``allInside16(_:)``.
    @inline(__always)
    private static func allInside8(_ x: DoubleLanes) -> Bool {
        let magnitude = unsafeBitCast(x, to: SIMD8<Int64>.self) & Int64.max
        let margin = SIMD8<Int64>(repeating: Int64(bitPattern: Double(708).bitPattern)) &- magnitude
        return (margin &>> 63).wrappedSum() == 0
    }

    /// `e^x` lane-wise for lanes in `[-708, 708]` (``applyLanes(_:_:_:)`` keeps others out).
    @inline(__always)
    private static func exp8(_ x: DoubleLanes) -> DoubleLanes {
        // 1.5·2⁵²: adding it rounds x·log₂e to an integer held in the low mantissa bits.
        let magic = DoubleLanes(repeating: 6_755_399_441_055_744)
        let shifted = x * 1.442_695_040_888_963_407_4 + magic
        let k = shifted - magic
        // fdlibm's split of ln 2: the high part has 32 trailing zero bits, so k·high is exact.
        let r = (x - k * 6.931_471_803_691_238_164_90e-1) - k * 1.908_214_929_270_587_700_02e-10
        var q = DoubleLanes(repeating: 1 / 6_227_020_800)
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
        let kBits = unsafeBitCast(shifted, to: SIMD8<Int64>.self) &- unsafeBitCast(magic, to: SIMD8<Int64>.self)
        let scale = unsafeBitCast((kBits &+ 1023) &<< 52, to: DoubleLanes.self)
        return q * scale
    }
}

/// One lane-wise function for ``VectorMath``'s loop: the vector kernel, valid for lanes in
/// `[-limit, limit]` (``allInside(_:)`` tells whether a whole vector is), and the scalar function
/// for the other lanes.
private protocol LaneKernel {
    associatedtype Vector: SIMD where Vector.Scalar: BinaryFloatingPoint
    static var limit: Vector.Scalar { get }
    static func allInside(_ x: Vector) -> Bool
    /// Whether all `count` entries from `p` lie in `[-limit, limit]` (none is NaN).
    static func allInside(_ p: UnsafePointer<Vector.Scalar>, _ count: Int) -> Bool
    static func kernel(_ x: Vector) -> Vector
    static func scalar(_ x: Vector.Scalar) -> Vector.Scalar
}
