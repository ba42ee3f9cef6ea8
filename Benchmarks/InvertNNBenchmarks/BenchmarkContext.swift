import InvertNN

/// Settings shared by every suite, from the command line.
struct BenchmarkContext {
    var batchSizes: [Int]
    var featureSizes: [Int]
    var repeats: Int
    var warmup: Int
    var blasCore: String
    var quick = false

    func record<T: Scalar>(
        suite: String, case name: String, precision _: T.Type, batch: Int, features: Int, reflectors: Int?,
        mode: String, timing: PairedTiming, flops: Double, note: String? = nil
    ) -> BenchmarkRecord {
        let seconds = timing.caseSeconds
        return BenchmarkRecord(
            suite: suite, case: name, precision: T.self == Float.self ? "float" : "double", batch: batch,
            features: features, reflectors: reflectors, mode: mode,
            medianMilliseconds: seconds * 1e3, referenceMilliseconds: timing.referenceSeconds * 1e3,
            ratio: timing.ratio, gflops: flops / seconds / 1e9,
            samplesPerSecond: Double(batch) / seconds, blasCore: blasCore, note: note)
    }
}
