import Foundation
import CHeapSettings
import InvertNN

/// `memory`: peak resident memory of one training step of a deep flow on [1024, 784] (Double),
/// tape mode against rebuilding mode, at depth 8 and 32.
///
/// How it is measured: every (mode, depth) runs in a fresh child process (this executable with
/// the hidden `--memory-child` option), so no other suite's allocations count. The child builds
/// the flow and the batch and reads its resident size (`VmRSS`: parameters and batch). It runs
/// one warm-up step, returns the heap's free memory to the kernel (`malloc_trim`, through
/// `invertnn_return_free_memory` of target `CHeapSettings`), resets the kernel's peak-RSS
/// counter (`echo 5 > /proc/self/clear_refs`, which sets VmHWM to the current RSS), runs one
/// more step and reports `VmHWM - VmRSS(before the warm-up)`: everything training holds beyond the parameters and the
/// batch at the step's peak (activations, tapes, retained traces, temporaries, and the buffers
/// layers keep between steps so that a taped step allocates nothing).
/// The flow is depth/2 × (Householder m = 32, blocked; AffineCoupling [256]). Modes: `tape`
/// (layers keep their reused buffers between steps, the default), `tape-releasing`
/// (`Sequential.keepsBuffers = false`) and `rebuilding`.
func memorySuite(_ context: BenchmarkContext, executable: String) throws -> [BenchmarkRecord] {
    var records = [BenchmarkRecord]()
    var results = [String: (mib: Double, ms: Double)]()
    let depths = context.quick ? [4, 16] : [8, 32]
    for depth in depths {
        for mode in memoryModes {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["--memory-child", mode, "--memory-depth", "\(depth)", "--threads", "1"]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let fields = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace).compactMap { Double($0) }
            guard fields.count == 2 else { throw ValidationErrorMessage("memory child (\(mode), depth \(depth)) printed \(fields)") }
            results["\(mode)\(depth)"] = (fields[0], fields[1])
        }
    }
    for mode in memoryModes {
        let small = results["\(mode)\(depths[0])"]!, large = results["\(mode)\(depths[1])"]!
        records.append(BenchmarkRecord(
            suite: "memory", case: "\(mode) depth \(depths[1])", precision: "double", batch: 1024, features: 784,
            reflectors: 32, mode: "train-step", medianMilliseconds: large.ms,
            referenceMilliseconds: results["tape\(depths[1])"]!.ms, ratio: large.ms / results["tape\(depths[1])"]!.ms,
            gflops: 0, samplesPerSecond: 1024 / (large.ms / 1e3), blasCore: context.blasCore,
            note: String(format: "peak resident memory of a step beyond parameters and batch: %.0f MiB at depth %d, %.0f MiB at depth %d (reference = tape step time)",
                         large.mib, depths[1], small.mib, depths[0])))
    }
    return records
}

/// The child side of ``memorySuite(_:executable:)``: prints "peakIncreaseMiB stepMilliseconds".
func memoryChild(mode: String, depth: Int) throws {
    var rng = SeededGenerator(seed: 6)
    let n = 784, batch = 1024
    var layers = [any InvertibleLayer<Double>]()
    for k in 0..<(depth / 2) {
        let householder = try Householder<Double>(features: n, reflectors: 32, using: &rng)
        householder.strategy = .blocked
        layers.append(householder)
        layers.append(try AffineCoupling<Double>(
            features: n, hiddenSizes: [256], conditioningBlock: k % 2 == 0 ? .first : .second, using: &rng))
    }
    let flow = try Sequential(layers)
    flow.keepsBuffers = mode != "tape-releasing"
    let x = Matrix<Double>.randomNormal(rows: batch, columns: n, standardDeviation: 0.5, using: &rng)
    let rebuilding = mode == "rebuilding"  // "tape" and "tape-releasing" differ in Sequential.keepsBuffers
    invertnn_return_free_memory()
    let before = residentKiB("VmRSS:")
    _ = try trainStep(flow, x, rebuilding: rebuilding, learningRate: 1e-4)
    // Memory the warm-up step freed may stay resident, depending on the heap's layout (it did:
    // 585 MiB against 120 MiB for the same model after an unrelated change); returning it first
    // makes "before" the live memory, parameters and batch.
    invertnn_return_free_memory()
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    let time = try seconds { _ = try trainStep(flow, x, rebuilding: rebuilding, learningRate: 1e-4) }
    let peak = residentKiB("VmHWM:")
    print(String(format: "%.1f %.1f", (peak - before) / 1024, time * 1e3))
}

func residentKiB(_ key: String) -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
    for line in status.split(separator: "\n") where line.hasPrefix(key) {
        return line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
    }
    return .nan
}

struct ValidationErrorMessage: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The training modes the memory suite compares.
let memoryModes = ["tape", "tape-releasing", "rebuilding"]
