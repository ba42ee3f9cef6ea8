import RealModule

/// The ``CouplingTransformer`` requirements of ``RationalQuadraticSpline``: the entry forms on
/// stack storage, the block forms on one reused row buffer with vectorized exponentials.
extension RationalQuadraticSpline {
    /// Runs `body` on the entry of `θ`, its exponentials and normalizers on the stack.
    @inline(__always)
    func withEntry<R>(_ θ: TransformerParameters<T>, _ body: (Entry) -> R) -> R {
        let K = bins, P = parametersPerFeature
        return withUnsafeTemporaryAllocation(of: T.self, capacity: P + 2) { buffer in
            let e = buffer.baseAddress!
            var maxW = θ[0], maxH = θ[K]
            for i in 1..<K {
                maxW = Swift.max(maxW, θ[i])
                maxH = Swift.max(maxH, θ[K + i])
            }
            for i in 0..<K {
                e[i] = T.exp(θ[i] - maxW)
                e[K + i] = T.exp(θ[K + i] - maxH)
            }
            for i in 0..<(K - 1) { e[2 * K + i] = T.exp(-Swift.abs(θ[2 * K + i])) }
            var sumW: T = 0, sumH: T = 0
            for i in 0..<K {
                sumW += e[i]
                sumH += e[K + i]
            }
            e[P] = 1 / sumW
            e[P + 1] = 1 / sumH
            return body(Entry(raw: θ.base, rawStride: θ.stride, exps: UnsafePointer(e), expStride: 1,
                              normalizers: UnsafePointer(e + P), normalizerStride: 1))
        }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: T, parameters θ: TransformerParameters<T>) -> (value: T, logDerivative: T) {
        if inTails(x) { return (x, 0) }
        return withEntry(θ) { transformEntry(x, $0, inverse: false) }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverse(_ y: T, parameters θ: TransformerParameters<T>) -> (value: T, logDerivative: T)? {
        if inTails(y) { return (y, 0) }
        return withEntry(θ) { transformEntry(y, $0, inverse: true) }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forwardBackward(
        _ x: T, parameters θ: TransformerParameters<T>, outputGradient g: T, logDerivativeGradient ℓ: T,
        parameterGradient dθ: TransformerParameterGradient<T>
    ) -> T {
        withEntry(θ) { backwardEntry(x, $0, g: g, ℓ: ℓ, into: dθ.base, stride: dθ.stride, inverse: false) }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func inverseBackward(
        _ y: T, parameters θ: TransformerParameters<T>, outputGradient g: T, logDerivativeGradient ℓ: T,
        parameterGradient dθ: TransformerParameterGradient<T>
    ) -> T {
        withEntry(θ) { backwardEntry(y, $0, g: g, ℓ: ℓ, into: dθ.base, stride: dθ.stride, inverse: true) }
    }

    /// The exponentials of one row's parameters `hr` `[P·m]` into `e[0..<P·m]` (same layout) in one
    /// vectorized `exp` pass, and the per-feature softmax normalizers into `e[P·m..<P·m + 2m]`
    /// (widths, then heights; first used for the maxima of `u_w` and `u_h`).
    @inline(__always)
    func prepareRow(_ hr: UnsafePointer<T>, features m: Int, into scratch: UnsafeMutableBufferPointer<T>) {
        let K = bins, count = parametersPerFeature * m
        let e = scratch.baseAddress!, maxW = e + count, maxH = e + count + m
        maxW.update(from: hr, count: m)
        maxH.update(from: hr + K * m, count: m)
        for p in 1..<K {
            let w = hr + p * m, h = hr + (K + p) * m
            for j in 0..<m {
                maxW[j] = Swift.max(maxW[j], w[j])
                maxH[j] = Swift.max(maxH[j], h[j])
            }
        }
        for p in 0..<K {
            let o = p * m, oh = (K + p) * m
            for j in 0..<m {
                e[o + j] = hr[o + j] - maxW[j]
                e[oh + j] = hr[oh + j] - maxH[j]
            }
        }
        for i in (2 * K * m)..<count { e[i] = -Swift.abs(hr[i]) }
        VectorMath.exp(UnsafeMutableBufferPointer(rebasing: scratch[0..<count]))
        let sumW = maxW, sumH = maxH
        sumW.update(from: e, count: m)
        sumH.update(from: e + K * m, count: m)
        for p in 1..<K {
            let w = e + p * m, h = e + (K + p) * m
            for j in 0..<m {
                sumW[j] += w[j]
                sumH[j] += h[j]
            }
        }
        for j in 0..<m {
            sumW[j] = 1 / sumW[j]
            sumH[j] = 1 / sumH[j]
        }
    }

    /// Fields a retaining block pass keeps per entry (``binFields`` of them, stored field-major
    /// per row after the row's exponentials): the bin index (`-1` in the tails), `x⁽ᵏ⁾`, `w`,
    /// `y⁽ᵏ⁾`, `h`, `δ⁽ᵏ⁾`, `δ⁽ᵏ⁺¹⁾`, the softmax sums below the bin, and `ξ`.
    static var binFields: Int { 10 }

    /// Entries per row of the retained state: the row's exponentials and normalizers
    /// (``prepareRow(_:features:into:)``), then each entry's located bin.
    func retainedRowCount(features m: Int) -> Int { (parametersPerFeature + 2 + Self.binFields) * m }

    public func retainedCount(block: TransformedBlock) -> Int { block.rows * retainedRowCount(features: block.features) }

    /// The block forward or inverse; `retaining` (``retainedCount(block:)`` entries), when given,
    /// receives each row's exponentials and each entry's bin, else one reused row buffer holds the
    /// exponentials.
    @inline(__always)
    func applyBlock(
        _ data: UnsafeMutablePointer<T>, block: TransformedBlock, parameters h: UnsafePointer<T>,
        logAbsDet: UnsafeMutablePointer<T>, inverse: Bool, retaining: UnsafeMutablePointer<T>?
    ) {
        let m = block.features, width = parametersPerFeature * m, rowCount = retainedRowCount(features: m)
        self.scratch.withScratch(count: retaining == nil ? width + 2 * m : 0) { rowScratch in
            for r in 0..<block.rows {
                let hr = h + r * width
                let scratch = retaining.map { UnsafeMutableBufferPointer(start: $0 + r * rowCount, count: width + 2 * m) } ?? rowScratch
                let e = UnsafePointer(scratch.baseAddress!), bins = retaining.map { $0 + r * rowCount + width + 2 * m }
                prepareRow(hr, features: m, into: scratch)
                var sum: T = 0
                for j in 0..<m {
                    let k = block.index(r, j), v = data[k]
                    let entry = Entry(raw: hr + j, rawStride: m, exps: e + j, expStride: m, normalizers: e + width + j, normalizerStride: m)
                    if inTails(v) {
                        bins?[j] = -1
                        continue
                    }
                    let bin = locate(v, inverse: inverse, entry)
                    let ξ = inverse ? Self.inverseFraction(v, bin) : Self.forwardFraction(v, bin)
                    let l = Self.local(bin, ξ), logDerivative = T.log(l.derivative)
                    data[k] = inverse ? bin.left + ξ * bin.width : bin.bottom + l.r
                    sum += inverse ? -logDerivative : logDerivative
                    if let b = bins {
                        b[j] = T(bin.index)
                        b[m + j] = bin.left
                        b[2 * m + j] = bin.width
                        b[3 * m + j] = bin.bottom
                        b[4 * m + j] = bin.height
                        b[5 * m + j] = bin.lowerDerivative
                        b[6 * m + j] = bin.upperDerivative
                        b[7 * m + j] = bin.widthBelow
                        b[8 * m + j] = bin.heightBelow
                        b[9 * m + j] = ξ
                    }
                }
                logAbsDet[r] = sum
            }
        }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func apply(
        _ data: UnsafeMutablePointer<T>, block: TransformedBlock, parameters h: UnsafePointer<T>,
        logAbsDet: UnsafeMutablePointer<T>, inverse: Bool
    ) -> (row: Int, feature: Int, value: T)? {
        applyBlock(data, block: block, parameters: h, logAbsDet: logAbsDet, inverse: inverse, retaining: nil)
        return nil
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func apply(
        _ data: UnsafeMutablePointer<T>, block: TransformedBlock, parameters h: UnsafePointer<T>,
        logAbsDet: UnsafeMutablePointer<T>, inverse: Bool, retaining: UnsafeMutablePointer<T>
    ) -> (row: Int, feature: Int, value: T)? {
        applyBlock(data, block: block, parameters: h, logAbsDet: logAbsDet, inverse: inverse, retaining: retaining)
        return nil
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(
        input: UnsafePointer<T>, block: TransformedBlock, parameters h: UnsafePointer<T>,
        gradient: UnsafeMutablePointer<T>, logAbsDetGradient: UnsafePointer<T>,
        parameterGradient dh: UnsafeMutablePointer<T>, inverse: Bool
    ) {
        let m = block.features, width = parametersPerFeature * m
        self.scratch.withScratch(count: width + 2 * m) { scratch in
            let e = UnsafePointer(scratch.baseAddress!)
            for r in 0..<block.rows {
                let hr = h + r * width, ℓ = logAbsDetGradient[r]
                prepareRow(hr, features: m, into: scratch)
                for j in 0..<m {
                    let k = block.index(r, j)
                    let entry = Entry(raw: hr + j, rawStride: m, exps: e + j, expStride: m, normalizers: e + width + j, normalizerStride: m)
                    let out = dh + r * width + j
                    gradient[k] = backwardEntry(input[k], entry, g: gradient[k], ℓ: ℓ, into: out, stride: m, inverse: inverse)
                }
            }
        }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(
        input: UnsafePointer<T>, block: TransformedBlock, parameters h: UnsafePointer<T>,
        gradient: UnsafeMutablePointer<T>, logAbsDetGradient: UnsafePointer<T>,
        parameterGradient dh: UnsafeMutablePointer<T>, inverse: Bool, retained: UnsafePointer<T>
    ) {
        let m = block.features, width = parametersPerFeature * m, rowCount = retainedRowCount(features: m)
        for r in 0..<block.rows {
            let hr = h + r * width, ℓ = logAbsDetGradient[r]
            let e = retained + r * rowCount, b = e + width + 2 * m
            for j in 0..<m {
                let k = block.index(r, j), out = dh + r * width + j
                guard b[j] >= 0 else {
                    for p in 0..<parametersPerFeature { out[p * m] = 0 }
                    continue  // the tails: dL/dv = g
                }
                let entry = Entry(raw: hr + j, rawStride: m, exps: e + j, expStride: m, normalizers: e + width + j, normalizerStride: m)
                let bin = Bin(index: Int(b[j]), left: b[m + j], width: b[2 * m + j], bottom: b[3 * m + j], height: b[4 * m + j],
                              lowerDerivative: b[5 * m + j], upperDerivative: b[6 * m + j], widthBelow: b[7 * m + j],
                              heightBelow: b[8 * m + j], widthNormalizer: entry.normalizers[0], heightNormalizer: entry.normalizers[m])
                gradient[k] = backward(at: bin, fraction: b[9 * m + j], entry, g: gradient[k], ℓ: ℓ, into: out, stride: m, inverse: inverse)
            }
        }
    }
}
