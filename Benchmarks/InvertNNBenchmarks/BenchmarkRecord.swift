/// One row of the benchmark's output (`--json` prints an array of these).
struct BenchmarkRecord: Codable {
    var suite: String
    var `case`: String
    var precision: String
    var batch: Int
    var features: Int
    var reflectors: Int?
    /// "forward", "forward+backward", "inference" or "train-step".
    var mode: String
    var medianMilliseconds: Double
    var referenceMilliseconds: Double
    /// median / reference (lower is better; 1 = as fast as the dense GEMM floor).
    var ratio: Double
    var gflops: Double
    var samplesPerSecond: Double
    var blasCore: String
    /// Extra figures (peak memory, targets) where a suite has them.
    var note: String?

    enum CodingKeys: String, CodingKey {
        case suite, `case`, precision, batch, features, reflectors, mode, ratio, gflops, note
        case medianMilliseconds = "median_ms"
        case referenceMilliseconds = "reference_ms"
        case samplesPerSecond = "samples_per_second"
        case blasCore = "blas_core"
    }
}
