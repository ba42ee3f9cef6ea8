/// One rank's shard of the parameters in a data-parallel run, and the flat buffer its
/// collectives go through (ZeRO stage 1, Rajbhandari et al. 2020, "ZeRO: Memory Optimizations
/// Toward Training Trillion Parameter Models", §5.1: each rank updates only its shard of the
/// optimizer state).
///
/// The flat layout concatenates the parameters in order: entry `j` of parameter `i` is flat entry
/// `offsets[i] + j`. A step reduce-scatters the weighted gradients, so that each rank holds the
/// summed gradient of its shard ``range`` (the group's ``DataParallelGroup/share(of:)`` of the
/// flat count); the rank updates that shard (Adam, the training guard's copies, the parameter
/// average) and all-gathers the parameters. Every per-parameter pass of a step then costs
/// `1/size` of it on each rank instead of the whole, which is what lets ranks and threads scale.
final class ParameterShard<T: Scalar> {
    let parameters: [Parameter<T>]
    /// `parameters.count + 1` flat offsets, the last one the flat count.
    let offsets: [Int]
    /// This rank's flat entries.
    let range: Range<Int>
    let group: any DataParallelGroup
    /// The flat buffer (gradients, then parameters) of the collectives.
    var flat: [T]

    init(parameters: [Parameter<T>], group: any DataParallelGroup) {
        self.parameters = parameters
        var offsets = [0]
        for p in parameters { offsets.append(offsets[offsets.count - 1] + p.count) }
        self.offsets = offsets
        self.group = group
        range = group.share(of: offsets[parameters.count])
        flat = [T](repeating: 0, count: offsets[parameters.count])
    }

    /// Calls `body(parameter index, entries of that parameter, flat offset of the first)` for each
    /// parameter that `range` covers, in order.
    func forEachSegment(of range: Range<Int>, _ body: (Int, Range<Int>, Int) throws -> Void) rethrows {
        guard !range.isEmpty else { return }
        // The first parameter whose entries reach past range.lowerBound.
        var low = 0, high = parameters.count
        while low < high {
            let mid = (low + high) / 2
            if offsets[mid + 1] <= range.lowerBound { low = mid + 1 } else { high = mid }
        }
        var index = low
        while index < parameters.count && offsets[index] < range.upperBound {
            let lower = max(range.lowerBound, offsets[index]), upper = min(range.upperBound, offsets[index + 1])
            if lower < upper { try body(index, (lower - offsets[index])..<(upper - offsets[index]), lower) }
            index += 1
        }
    }

    /// Writes `weight · gradient` of every parameter into the flat buffer and reduce-scatters
    /// it: afterwards the flat entries ``range`` hold this rank's shard of the summed gradient.
    func reduceScatterGradients(weight: T) throws {
        flat.withUnsafeMutableBufferPointer { b in
            guard var target = b.baseAddress else { return }
            for p in parameters {
                p.gradient.storage.withUnsafeBufferPointer { g in
                    guard let source = g.baseAddress else { return }
                    // No index arithmetic in the body, so that the loop vectorizes.
                    for i in 0..<g.count { target[i] = weight * source[i] }
                }
                target += p.count
            }
        }
        try flat.withUnsafeMutableBufferPointer { try group.collective(.reduceScatter, $0) }
    }

    /// The first parameter with a NaN or infinite entry in this rank's shard, or `nil`.
    func firstNonFiniteParameter() -> Int? {
        var found: Int? = nil
        forEachSegment(of: range) { index, local, _ in
            guard found == nil else { return }
            parameters[index].value.storage.withUnsafeBufferPointer { v in
                // x·0 is 0 for finite x and NaN for NaN or ±∞: one pass without a branch, four
                // independent sums (a single running sum would serialize the loop).
                var a: T = 0, b: T = 0, c: T = 0, d: T = 0
                var i = local.lowerBound
                let base = v.baseAddress!
                while i + 4 <= local.upperBound {
                    a += base[i] * 0
                    b += base[i + 1] * 0
                    c += base[i + 2] * 0
                    d += base[i + 3] * 0
                    i += 4
                }
                while i < local.upperBound { a += base[i] * 0; i += 1 }
                if !(a + b + c + d).isFinite { found = index }
            }
        }
        return found
    }

    /// Copies this rank's shard of `arrays` into the parameters.
    func restore(from arrays: [[T]]) {
        forEachSegment(of: range) { index, local, _ in
            arrays[index].withUnsafeBufferPointer { a in
                parameters[index].value.storage.withUnsafeMutableBufferPointer { v in
                    (v.baseAddress! + local.lowerBound).update(from: a.baseAddress! + local.lowerBound, count: local.count)
                }
            }
        }
    }

    /// All-gathers the parameters: every rank ends with every owner's shard.
    func allGatherParameters() throws {
        try allGather(
            read: { index, body in parameters[index].value.storage.withUnsafeBufferPointer { body($0) } },
            write: { index, body in parameters[index].value.storage.withUnsafeMutableBufferPointer { body($0) } })
    }

    /// All-gathers per-parameter arrays shaped like the parameters (moments, averages, copies).
    func allGather(_ arrays: inout [[T]]) throws {
        try allGather(
            read: { index, body in arrays[index].withUnsafeBufferPointer { body($0) } },
            write: { index, body in arrays[index].withUnsafeMutableBufferPointer { body($0) } })
    }

    /// Packs this rank's shard through `read`, all-gathers the flat buffer and unpacks the other
    /// ranks' entries through `write`.
    private func allGather(
        read: (Int, (UnsafeBufferPointer<T>) -> Void) -> Void,
        write: (Int, (UnsafeMutableBufferPointer<T>) -> Void) -> Void
    ) throws {
        flat.withUnsafeMutableBufferPointer { b in
            forEachSegment(of: range) { index, local, start in
                read(index) { v in (b.baseAddress! + start).update(from: v.baseAddress! + local.lowerBound, count: local.count) }
            }
        }
        try flat.withUnsafeMutableBufferPointer { try group.collective(.allGather, $0) }
        flat.withUnsafeBufferPointer { b in
            for part in [0..<range.lowerBound, range.upperBound..<b.count] {
                forEachSegment(of: part) { index, local, start in
                    write(index) { v in (v.baseAddress! + local.lowerBound).update(from: b.baseAddress! + start, count: local.count) }
                }
            }
        }
    }
}
