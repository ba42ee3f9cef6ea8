import Testing
import Foundation
import InvertNN

/// Seeded mutation fuzzing of whole commands (issue 14, acceptance): checkpoints of a trained 2-D
/// flow, mutated by byte flips, truncation, edits of the header's shapes, dtypes and offsets, edits
/// of the numbers in the architecture and the other metadata (huge, negative, NaN; conditioners
/// widened to [15000, 15000], under the parameter cap but far beyond the file), a re-encoding
/// of tensors in the other dtype, and NaN/Inf/huge tensor values, go through `invertnn sample
/// --png --csv` and `invertnn eval` as separate processes. Every run must exit with 0, 1 or 64
/// (never a signal) within 20 s and 1 GB of resident memory. Default: 16 files (32 runs, a few
/// seconds); `FUZZ_SCALE=10` runs 160 files of four models (RealNVP, NSF and MAF on moons, RealNVP
/// on the 8×8 digits, whose samples are drawn as an image grid).
@Suite struct CheckpointCLIFuzzTests {
    static let scale = max(1, Int(ProcessInfo.processInfo.environment["FUZZ_SCALE"] ?? "") ?? 1)

    /// One process run: how it ended, how long it took and its peak resident set.
    struct Measured {
        var exitCode: Int32?
        var signal: Int32?
        var seconds: Double
        var maxResidentKilobytes: Int
        var stderr: String
    }

    /// Runs the `invertnn` binary with `arguments` through `posix_spawn` and `wait4`, so that the
    /// child's own peak resident set (`ru_maxrss`) is known; kills it after `timeout` seconds.
    static func runMeasured(_ arguments: [String], scratch: String, timeout: Double = 60) throws -> Measured {
        guard let executable = CLIErrorTests.executable?.path else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "invertnn binary not found next to the tests"])
        }
        let errPath = "\(scratch)/stderr.txt"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let start = Date()
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else { throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "posix_spawn: \(spawned)"]) }
        var status: Int32 = 0
        var usage = rusage()
        while true {
            let done = wait4(pid, &status, WNOHANG, &usage)
            if done == pid { break }
            if done < 0 && errno != EINTR { throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "wait4: \(errno)"]) }
            if Date().timeIntervalSince(start) > timeout { kill(pid, SIGKILL) }
            usleep(2000)
        }
        let seconds = Date().timeIntervalSince(start)
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        // wait(2)'s encoding: the low 7 bits are the terminating signal, 0 for a normal exit.
        let signal = status & 0x7F
        return Measured(exitCode: signal == 0 ? (status >> 8) & 0xFF : nil, signal: signal == 0 ? nil : signal,
                        seconds: seconds, maxResidentKilobytes: Int(usage.ru_maxrss), stderr: stderr)
    }

    /// The parts of a safetensors file: its header object and data section.
    struct Parts {
        var header: [String: Any]
        var data: [UInt8]

        init(_ bytes: [UInt8]) throws {
            let length = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any])
            data = Array(bytes[(8 + length)...])
        }

        func encoded() throws -> [UInt8] {
            let json = Array(try JSONSerialization.data(withJSONObject: header))
            return (0..<8).map { UInt8(truncatingIfNeeded: json.count >> (8 * $0)) } + json + data
        }

        var tensorNames: [String] { header.keys.filter { $0 != "__metadata__" }.sorted() }
    }

    static let hostileNumbers = ["40000", "2147483648", "-1", "0", "NaN", "1e308", "-1e308", "99999999999999999999", "1.5",
                                 "Infinity", "-0", "4611686018427387904", "1e-300", "15000"]
    static let hostileValues: [Float] = [.nan, .infinity, -.infinity, 3e38, -3e38, 1e30, 1e-45]

    /// One mutation of a valid checkpoint; `kind` picks the family.
    static func mutate(_ seed: [UInt8], kind: Int, _ rng: inout SeededGenerator) throws -> [UInt8] {
        func pick<C: Collection>(_ c: C) -> C.Element { c[c.index(c.startIndex, offsetBy: Int(rng.next() % UInt64(c.count)))] }
        switch kind {
        case 0: // bit flips anywhere
            var b = seed
            for _ in 0..<(1 + Int(rng.next() % 8)) { b[Int(rng.next() % UInt64(b.count))] ^= UInt8(1 << (rng.next() % 8)) }
            return b
        case 1: // truncation
            return Array(seed.prefix(Int(rng.next() % UInt64(seed.count))))
        case 2, 3, 4: // a tensor's shape, dtype or offsets
            var parts = try Parts(seed)
            let name = pick(parts.tensorNames)
            var entry = try #require(parts.header[name] as? [String: Any])
            let shape = entry["shape"] as? [Int] ?? [1]
            switch kind {
            case 2: entry["shape"] = pick([[0], [-1, 2], [Int(Int32.max), 2], [shape.reduce(1, *)], Array(shape.reversed()),
                                            shape + [1], [1 << 40, 1 << 40], [40000, 40000], []] as [[Int]])
            case 3: entry["dtype"] = pick(["F64", "F32", "BF16", "I32", "F16", "", "f32"])
            default:
                let offsets = entry["data_offsets"] as? [Int] ?? [0, 0]
                entry["data_offsets"] = pick([[offsets[1], offsets[0]], [0, Int.max], [-4, offsets[1]], [offsets[0], offsets[1] * 2],
                                              [0, 0], [offsets[0] + 1, offsets[1] + 1]] as [[Int]])
            }
            parts.header[name] = entry
            return try parts.encoded()
        case 5: // numbers inside the metadata (architecture, base, preprocessing, dataset, dtype)
            var parts = try Parts(seed)
            var metadata = try #require(parts.header["__metadata__"] as? [String: String])
            let key = pick(["architecture", "architecture", "architecture", "base", "preprocessing", "dataset", "dtype"])
            guard var text = metadata[key] else { return seed }
            if key == "dtype" {
                text = pick(["F64", "F16", "", "F32"])
            } else if key == "architecture" && rng.next() % 4 == 0 {
                // Every conditioner wide: under the parameter cap, far beyond the file's tensors.
                let hidden = try NSRegularExpression(pattern: "\"hiddenSizes\":\\[[0-9,]*\\]")
                text = hidden.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text),
                                                       withTemplate: pick(["\"hiddenSizes\":[15000,15000]", "\"hiddenSizes\":[40000]"]))
            } else {
                let numbers = try NSRegularExpression(pattern: "-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?")
                let matches = numbers.matches(in: text, range: NSRange(text.startIndex..., in: text))
                guard !matches.isEmpty else { return seed }
                let range = try #require(Range(pick(matches).range, in: text))
                text.replaceSubrange(range, with: pick(hostileNumbers))
            }
            metadata[key] = text
            parts.header["__metadata__"] = metadata
            return try parts.encoded()
        case 6: // every tensor, or one, stored in the other dtype (a valid file otherwise)
            let file = try SafeTensors.decode(seed, path: "seed")
            let one = rng.next() % 2 == 0 ? pick(file.tensors).name : nil
            let tensors = try file.tensors.map { t -> SafeTensors.Tensor in
                guard one == nil || t.name == one else { return t }
                return t.dtype == .f32
                    ? try SafeTensors.Tensor(name: t.name, shape: t.shape, values: t.values(as: Double.self))
                    : try SafeTensors.Tensor(name: t.name, shape: t.shape, values: t.values(as: Float.self))
            }
            var metadata = file.metadata
            if rng.next() % 3 == 0 { metadata["dtype"] = nil }
            return try SafeTensors(tensors: tensors, metadata: metadata).encode()
        default: // tensor values set to NaN, ±Inf or huge
            let parts = try Parts(seed)
            let headerLength = seed.count - parts.data.count
            var b = seed
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let element = Int(rng.next() % UInt64(parts.data.count / 4))
                let bits = pick(hostileValues).bitPattern
                for k in 0..<4 { b[headerLength + 4 * element + k] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k))) }
            }
            return b
        }
    }

    @Test func mutatedCheckpointsNeverCrashSampleOrEval() throws {
        try CLIErrorTests.withScratchDirectory("checkpoint-cli-fuzz") { d in
            let models = Self.scale > 1
                ? [("moons", "realnvp"), ("moons", "nsf"), ("moons", "maf"), ("digits", "realnvp")] : [("moons", "realnvp")]
            var seeds = [(bytes: [UInt8], data: String)]()
            for (data, flow) in models {
                let model = "\(d)/\(data)-\(flow).safetensors"
                let train = try CLIErrorTests.run(["--data", data, "--flow", flow, "--epochs", "1", "--couplings", "2",
                                                   "--hidden-sizes", "8", "--out", model, "--samples", "\(d)/s.png", "--quiet"])
                try #require(train.status == 0, "\(train.stderr)")
                seeds.append((Array(try Data(contentsOf: URL(fileURLWithPath: model))), data))
            }
            var rng = SeededGenerator(seed: 0xC11F)
            let total = 16 * Self.scale
            var runs = 0, failures = 0, maxSeconds = 0.0, maxKilobytes = 0
            var exitCodes = [Int32: Int]()
            for i in 0..<total {
                let kind = i % 8
                let seed = seeds[(i / 8) % seeds.count]
                let bytes = try Self.mutate(seed.bytes, kind: kind, &rng)
                let path = "\(d)/m\(i % 4).safetensors"
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                let commands: [[String]] = [
                    ["sample", "--model", path, "--count", "50", "--png", "\(d)/out.png", "--csv", "\(d)/out.csv", "--seed", "\(i)"],
                    ["eval", "--model", path, "--data", seed.data],
                ]
                for arguments in commands {
                    let m = try Self.runMeasured(arguments, scratch: d)
                    runs += 1
                    maxSeconds = max(maxSeconds, m.seconds)
                    maxKilobytes = max(maxKilobytes, m.maxResidentKilobytes)
                    let ok = m.signal == nil && [0, 1, 64].contains(m.exitCode ?? -1) && m.seconds < 20
                        && m.maxResidentKilobytes < 1 << 20
                    if let code = m.exitCode { exitCodes[code, default: 0] += 1 }
                    if !ok {
                        failures += 1
                        let keep = "\(d)/../invertnn-fuzz-failure-\(i).safetensors"
                        try? Data(bytes).write(to: URL(fileURLWithPath: keep))
                        Issue.record("file \(i) (kind \(kind), kept at \(keep)) \(arguments[0]): exit \(m.exitCode.map(String.init) ?? "-") signal \(m.signal.map(String.init) ?? "-"), \(m.seconds) s, \(m.maxResidentKilobytes) kB: \(m.stderr.suffix(400))")
                    }
                    // An error is one line naming the problem, not a stack trace.
                    if m.exitCode == 1 || m.exitCode == 64 { #expect(m.stderr.contains("error"), "\(arguments[0]) on file \(i): \(m.stderr)") }
                }
            }
            print("CheckpointCLIFuzzTests: \(runs) runs, \(failures) failures, max \(String(format: "%.2f", maxSeconds)) s, max RSS \(maxKilobytes) kB, exit codes \(exitCodes.sorted { $0.key < $1.key })")
            #expect(failures == 0)
            #expect(exitCodes[0, default: 0] > 0 && exitCodes[1, default: 0] > 0, "mutations exercise both outcomes: \(exitCodes)")
        }
    }
}
