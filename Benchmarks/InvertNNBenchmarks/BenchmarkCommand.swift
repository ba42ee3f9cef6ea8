import ArgumentParser
import BLASCoreType
import Foundation
import CHeapSettings
import InvertNN

/// `invertnn-bench`: throughput of the library's layers as ratios to the dense GEMM floor measured
/// in the same run (interleaved medians), plus samples/s of whole training steps.
@main
struct BenchmarkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invertnn-bench",
        abstract: "Benchmark InvertNN layers against the dense GEMM floor of the same shape.")

    static let suites: [String: @Sendable (BenchmarkContext, Bool) throws -> [BenchmarkRecord]] = [
        "gemm": { context, isFloat in
            isFloat ? try gemmSuite(context, Float.self) : try gemmSuite(context, Double.self)
        },
        "shapes": { context, isFloat in
            isFloat ? try gemmShapesSuite(context, Float.self) : try gemmShapesSuite(context, Double.self)
        },
        "householder": { context, isFloat in
            isFloat ? try householderSuite(context, Float.self) : try householderSuite(context, Double.self)
        },
        "allocations": { context, isFloat in
            if isFloat { try allocationSuite(context, Float.self) } else { try allocationSuite(context, Double.self) }
            return []
        },
        "probe": { context, isFloat in
            isFloat ? try probeSuite(context, Float.self) : try probeSuite(context, Double.self)
        },
        "coupling": { context, isFloat in
            isFloat ? try couplingSuite(context, Float.self) : try couplingSuite(context, Double.self)
        },
        "conv": { context, isFloat in
            isFloat ? try convSuite(context, Float.self) : try convSuite(context, Double.self)
        },
        "train": { context, isFloat in
            isFloat ? try trainSuite(context, Float.self) : try trainSuite(context, Double.self)
        },
        // Double only (one child process per mode and depth); runs once, for the Double pass.
        "memory": { context, isFloat in
            isFloat ? [] : try memorySuite(context, executable: "/proc/self/exe")
        },
        "svd": { context, isFloat in
            isFloat ? try svdSuite(context, Float.self) : try svdSuite(context, Double.self)
        },
        // Only the initialization case of `svd` (part of it), at the largest size.
        "svd-init": { context, isFloat in
            let n = context.featureSizes.max() ?? 784
            return isFloat ? try svdInitialization(context, Float.self, features: n)
                : try svdInitialization(context, Double.self, features: n)
        },
    ]

    @Option(help: "Suite to run: \(BenchmarkCommand.suites.keys.sorted().joined(separator: ", ")), or all.")
    var suite: String = "all"

    @Option(help: "float, double or both.")
    var precision: String = "both"

    // (Unconditional parsing, so that `--threads -1` reaches the range check instead of being
    // read as an unknown option.)
    @Option(parsing: .unconditional, help: "OpenBLAS threads, 1...1024.")
    var threads: Int = 1

    @Flag(help: "Fewer shapes and repeats (a smoke run).")
    var quick = false

    @Flag(help: "Print one JSON array of records instead of a table.")
    var json = false

    @Option(help: .hidden)
    var memoryChild: String?

    @Option(help: .hidden)
    var memoryDepth: Int = 32

    mutating func validate() throws {
        guard suite == "all" || Self.suites[suite] != nil else {
            throw ValidationError("unknown suite '\(suite)'; choose one of \(Self.suites.keys.sorted().joined(separator: ", ")) or all")
        }
        guard ["float", "double", "both"].contains(precision) else {
            throw ValidationError("--precision must be float, double or both, got '\(precision)'")
        }
        guard threads >= 1, threads <= 1024 else { throw ValidationError("--threads must be in 1...1024, got \(threads)") }
        if suite == "allocations" && json {
            throw ValidationError("--suite allocations prints a table of allocation counts; it has no JSON records")
        }
    }

    func run() throws {
        // OpenBLAS starts its worker threads when it loads; after `openblas_set_num_threads(1)`
        // they still poll (sched_yield, 5-10 % of a core in profiles here), which disturbs
        // single-thread timings on a 2-core machine. Setting the variable before the library
        // loads avoids starting them. The kernels are chosen at load too, as `invertnn` chooses
        // them (SkylakeX where OpenBLAS would fall back to Prescott), so that the benchmark
        // measures what the CLI runs. Both need a re-execution: one, with both set.
        var variables = [String: String]()
        if ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil { variables["OPENBLAS_NUM_THREADS"] = "\(threads)" }
        if let core = BLASCoreSelection.coreToSelect() { variables[BLASCoreSelection.variable] = core }
        if !variables.isEmpty { BLASCoreSelection.reexecute(setting: variables) }  // returns only if execv failed
        BLAS.setThreads(threads)
        if let memoryChild {
            // glibc defaults here: the step's peak must count what it allocates, not reuse.
            try InvertNNBenchmarks.memoryChild(mode: memoryChild, depth: memoryDepth)
            return
        }
        // On stderr too, so that a --json run says which kernels it measured.
        FileHandle.standardError.write(Data("BLAS core: \(BLAS.coreName)\(Self.coreSource), threads: \(threads)\n".utf8))
        // As `invertnn train` does: freed step buffers stay in the heap for the next step.
        invertnn_keep_freed_memory_for_reuse()
        let context = BenchmarkContext(
            batchSizes: quick ? [256, 1024] : [256, 1024, 4096],
            featureSizes: quick ? [64, 256] : [64, 256, 784],
            repeats: 7, warmup: quick ? 1 : 2, blasCore: BLAS.coreName, quick: quick)
        let names = suite == "all" ? Self.suites.keys.sorted().filter { $0 != "probe" && $0 != "svd-init" && $0 != "allocations" } : [suite]
        var records = [BenchmarkRecord]()
        for name in names {
            // The memory suite measures the issue's Double flow only, whatever --precision says.
            for isFloat in name == "memory" ? [false] : precision == "both" ? [true, false] : [precision == "float"] {
                FileHandle.standardError.write(Data("running \(name) (\(isFloat ? "float" : "double"))…\n".utf8))
                records += try Self.suites[name]!(context, isFloat)
            }
        }
        if names == ["allocations"] { return }  // it printed its own table
        let text: String
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            text = String(decoding: try encoder.encode(records), as: UTF8.self)
        } else {
            text = table(records)
        }
        // Not `print`, which ignores a failed write: `> /dev/full` lost the results and exited 0.
        do {
            try FileHandle.standardOutput.write(contentsOf: Data((text + "\n").utf8))
        } catch {
            FileHandle.standardError.write(Data("invertnn-bench: error: cannot write the results to standard output: \(error.localizedDescription)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// How the core came to be used, for the table's header: `" (OPENBLAS_CORETYPE=SkylakeX)"`
    /// when the variable chose it (set by the caller, or by ``BLASCoreSelection`` before the
    /// re-execution), else `" (detected by OpenBLAS)"`.
    static var coreSource: String {
        ProcessInfo.processInfo.environment[BLASCoreSelection.variable].map { " (\(BLASCoreSelection.variable)=\($0))" } ?? " (detected by OpenBLAS)"
    }

    func table(_ records: [BenchmarkRecord]) -> String {
        var lines = ["BLAS core: \(records.first?.blasCore ?? BLAS.coreName)\(Self.coreSource), threads: \(threads)",
                     "| suite | case | precision | B | n | m | mode | ms | reference ms | ratio | GFLOP/s | samples/s | note |",
                     "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in records {
            lines.append(String(
                format: "| %@ | %@ | %@ | %d | %d | %@ | %@ | %.3f | %.3f | %.3f | %.1f | %.0f | %@ |",
                r.suite, r.case, r.precision, r.batch, r.features, r.reflectors.map { "\($0)" } ?? "-", r.mode,
                r.medianMilliseconds, r.referenceMilliseconds, r.ratio, r.gflops, r.samplesPerSecond, r.note ?? ""))
        }
        return lines.joined(separator: "\n")
    }
}
