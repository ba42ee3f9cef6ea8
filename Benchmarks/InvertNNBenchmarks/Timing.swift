import Foundation

/// Wall-clock seconds of one call of `body`.
func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
}

/// The result of ``interleavedMedians(repeats:warmup:case:reference:)``.
struct PairedTiming {
    /// Median seconds of the case and of the reference.
    let caseSeconds: Double
    let referenceSeconds: Double
    /// Median over groups of two consecutive pairs (case, reference, reference, case) of their
    /// summed case time over their summed reference time (not the ratio of the medians).
    let ratio: Double
}

/// Medians of at least `repeats` interleaved (case, reference) pairs after `warmup` unmeasured
/// pairs, and a drift-cancelling ratio.
///
/// Interleaving puts both measurements under the same machine conditions (this machine is shared
/// and noisy), so their ratio is meaningful even when absolute times drift. Pairs alternate their
/// order (case first, then reference first), and the ratio is the median over consecutive pairs
/// taken together, `(c₁ + c₂) / (r₁ + r₂)`: each such group runs case, reference, reference,
/// case, so a linear drift of machine speed and any advantage of running first or second cancel
/// within it. (The ratio of the two medians could pick them from different machine speeds: one
/// run reported a coupling forward at 0.76 of the GEMMs it contains; a median of single-pair
/// ratios over an odd number of alternating pairs picks one order's value: a cached-W inference,
/// one GEMM against the same GEMM, came out at 1.10.) The pair count is even. Short cases get
/// more pairs, up to 32 or about 0.2 s of reference time: with 7 pairs of a millisecond-scale
/// case, one burst of another process moved a ratio by 0.2 between runs.
func interleavedMedians(
    repeats: Int, warmup: Int, case measured: () throws -> Void, reference: () throws -> Void
) rethrows -> PairedTiming {
    var warmupReference = Double.infinity
    for _ in 0..<warmup {
        try measured()
        warmupReference = Swift.min(warmupReference, try seconds(reference))
    }
    let wanted = Swift.max(repeats, Swift.min(32, warmupReference.isFinite ? Int(0.2 / Swift.max(warmupReference, 1e-6)) : repeats))
    let pairs = wanted + wanted % 2
    var caseTimes = [Double](), referenceTimes = [Double]()
    for i in 0..<pairs {
        // Alternate which goes first so cache warmth does not favour one side.
        if i % 2 == 0 {
            caseTimes.append(try seconds(measured))
            referenceTimes.append(try seconds(reference))
        } else {
            referenceTimes.append(try seconds(reference))
            caseTimes.append(try seconds(measured))
        }
    }
    var ratios = [Double]()
    for i in stride(from: 0, to: pairs, by: 2) {
        let caseSum: Double = caseTimes[i] + caseTimes[i + 1]
        let referenceSum: Double = referenceTimes[i] + referenceTimes[i + 1]
        ratios.append(caseSum / referenceSum)
    }
    return PairedTiming(caseSeconds: median(caseTimes), referenceSeconds: median(referenceTimes), ratio: median(ratios))
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// Peak resident set size of this process so far, in MiB (from /proc/self/status VmHWM).
func peakResidentMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
        return kb / 1024
    }
    return .nan
}
