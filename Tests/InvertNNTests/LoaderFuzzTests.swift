import Testing
import Foundation
import CZlib
@testable import InvertNN

/// Seeded mutation fuzzing of the data loaders (issue 7, item 5): small inputs derived from valid
/// seeds by byte flips, insertions from a CSV-biased alphabet, deletions, duplications and
/// truncations. Each input must either load or throw an ``InvertNNError``; a crash fails the run.
/// Counts: 100,000 CSV inputs through `CSVReader.parse` (and the dataset checks), 20,000 gzip
/// files through `GzipReader.read`, 20,000 safetensors checkpoints through `SafeTensors.decode`
/// and `Checkpoint(file:path:)`. Reproduce a run with its seed; raise `FUZZ_SCALE` in the
/// environment to run longer (e.g. `FUZZ_SCALE=50 swift test --filter LoaderFuzzTests`).
@Suite struct LoaderFuzzTests {
    static let scale = max(1, Int(ProcessInfo.processInfo.environment["FUZZ_SCALE"] ?? "") ?? 1)

    static let csvSeeds: [String] = [
        "1,2,3\n4,5,6\n", "0,15\r\n7,8\r\n", "a,b\n1,2\n", "1.5,-2e3, 4 \n\n5,6,7\n", " 1 ,\t2\n3,4\n",
        "0,0,0,0\n1,1,1,1\n2,2,2,2\n3,3,3,3\n", "1e308,1e309\n", "-0,+0\n", "nan,inf\n", "9999999999999999,1\n",
    ]
    static let alphabet = Array("0123456789,,,\n\n\r .-+eE\tnaif\"x".utf8) + [0, 0xFF, 0xC3]

    /// One mutation of `input`.
    static func mutate(_ input: [UInt8], _ rng: inout SeededGenerator, alphabet: [UInt8], maxLength: Int = 96) -> [UInt8] {
        var b = input
        for _ in 0...Int(rng.next() % 4) {
            let position = b.isEmpty ? 0 : Int(rng.next() % UInt64(b.count + 1))
            switch rng.next() % 6 {
            case 0 where !b.isEmpty: b[min(position, b.count - 1)] ^= UInt8(1 << (rng.next() % 8))
            case 1: b.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: position)
            case 2 where !b.isEmpty: b.remove(at: min(position, b.count - 1))
            case 3 where !b.isEmpty:
                let end = min(b.count, position + Int(rng.next() % 8) + 1)
                if position < end { b.insert(contentsOf: Array(b[position..<end]), at: position) }
            case 4: b = Array(b.prefix(position))
            default: if !b.isEmpty { b[min(position, b.count - 1)] = UInt8(truncatingIfNeeded: rng.next()) }
            }
        }
        return Array(b.prefix(maxLength))
    }

    @Test func csvReaderNeverTraps() {
        var rng = SeededGenerator(seed: 0xC5F)
        var parsed = 0, rejected = 0
        let total = 100_000 * Self.scale
        for i in 0..<total {
            var input = Array(Self.csvSeeds[i % Self.csvSeeds.count].utf8)
            input = Self.mutate(input, &rng, alphabet: Self.alphabet)
            do {
                let m: Matrix<Double> = try CSVReader.parse(input, source: "fuzz", hasHeader: i % 7 == 0)
                parsed += 1
                #expect(m.rows >= 1 && m.columns >= 1 && m.count == m.rows * m.columns)
                #expect(m.firstNonFinite() == nil, "parsed a non-finite value from \(input)")
                // The dataset's own checks (levels, split sizes) on whatever parsed.
                if m.rows >= 3 {
                    _ = try? DiscreteDataset<Float>(name: "fuzz", pixels: m, levels: 16,
                                                    counts: (m.rows - 2, 1, 1), splitSeed: UInt64(i))
                }
            } catch is InvertNNError {
                rejected += 1
            } catch {
                Issue.record("input \(input): unexpected error \(error)")
            }
        }
        #expect(parsed + rejected == total)
        #expect(parsed > total / 20 && rejected > total / 20, "mutations exercise both outcomes: \(parsed) / \(rejected)")
    }

    /// Mutated `.npy` files (issue 14 item 20) through `NumPyArray.parse`, and quoted CSV through
    /// `CSVReader.table` (the CSV.swift path): typed errors or a matrix, never a trap; a parsed
    /// array holds exactly the elements its header's shape names.
    @Test func npyAndQuotedTablesNeverTrap() {
        var rng = SeededGenerator(seed: 0x4E9)
        let npySeeds: [[UInt8]] = [
            npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", data: littleEndian([1.0, -2, 3.5, 4].map(\.bitPattern))),
            npyBytes(header: "{'descr': '>i2', 'fortran_order': False, 'shape': (3,), }", data: [0, 1, 0xFF, 0xFE, 1, 0x2C], major: 2),
            npyBytes(header: "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", data: [1, 2, 3, 4, 5, 6], major: 3, pad: false),
        ]
        let npyAlphabet = Array("{}()'\":, 0123456789<>|fiuTrueFalseLdescrshape".utf8) + [0, 0x93, 0xFF]
        var parsed = 0, rejected = 0
        let total = 20_000 * Self.scale
        for i in 0..<total {
            let input = Self.mutate(npySeeds[i % npySeeds.count], &rng, alphabet: npyAlphabet, maxLength: 200)
            do {
                let m = try NumPyArray.parse(input, source: "fuzz.npy", maximumHeaderBytes: 1024)
                parsed += 1
                #expect(m.count == m.rows * m.columns)
            } catch is InvertNNError {
                rejected += 1
            } catch {
                Issue.record("npy input \(input): unexpected error \(error)")
            }
        }
        #expect(parsed + rejected == total && parsed > 0 && rejected > 0, "\(parsed) / \(rejected)")
        let quotedSeeds = ["\"a,b\",c\n\"1\",2\n3,\"4\"\n", "x,\"y \"\"z\"\"\"\r\n1,2\r\n", "\"1.5\",\"2\"\n\"3\",4\n"]
        for i in 0..<(20_000 * Self.scale) {
            let input = Self.mutate(Array(quotedSeeds[i % quotedSeeds.count].utf8), &rng, alphabet: Self.alphabet)
            do {
                let table = try CSVReader.table(input, source: "fuzz.csv")
                #expect(table.values.firstNonFinite() == nil && table.recordLines.count == table.values.rows)
                #expect(table.columnNames.count == table.values.columns)
            } catch is InvertNNError {
            } catch {
                Issue.record("csv input \(input): unexpected error \(error)")
            }
        }
    }

    /// gzip members of small CSV texts, written by zlib itself.
    static func gzipSeeds() throws -> [[UInt8]] {
        let path = temporaryPath("seed.gz")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var seeds = [[UInt8]]()
        for text in csvSeeds + [String(repeating: "1,2,3,4\n", count: 40)] {
            let file = try #require(gzopen(path, "wb"))
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
            gzclose(file)
            seeds.append(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        }
        return seeds
    }

    @Test func gzipReaderNeverTraps() throws {
        let seeds = try Self.gzipSeeds()
        // /dev/shm keeps the 20,000 file writes off the disk where it exists.
        let directory = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let path = "\(directory)/invertnn-fuzz-\(ProcessInfo.processInfo.processIdentifier).gz"
        defer { unlink(path) }
        var rng = SeededGenerator(seed: 0x6219)
        let binary = Array(0...255).map(UInt8.init)
        var read = 0, rejected = 0
        let total = 20_000 * Self.scale
        for i in 0..<total {
            let input = Self.mutate(seeds[i % seeds.count], &rng, alphabet: binary)
            let written = input.withUnsafeBytes { raw -> Bool in
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
                guard fd >= 0 else { return false }
                defer { close(fd) }
                return raw.count == 0 || write(fd, raw.baseAddress, raw.count) == raw.count
            }
            try #require(written, "cannot write \(path)")
            do {
                let bytes = try GzipReader.read(path: path)
                read += 1
                _ = try? CSVReader.parse(bytes, source: path, as: Double.self)
            } catch is InvertNNError {
                rejected += 1
            } catch {
                Issue.record("input \(input): unexpected error \(error)")
            }
        }
        #expect(read + rejected == total)
        #expect(rejected > total / 20, "truncations and flips are detected: \(rejected) of \(total) rejected")
    }

    /// Mutated checkpoints (a small flow, a few hundred bytes; mutations land mostly in the
    /// 8-byte length and the JSON header): decoding and rebuilding the model either succeed or
    /// throw `CheckpointError` / `InvertNNError`.
    @Test func safetensorsReaderNeverTraps() throws {
        var rng = SeededGenerator(seed: 0x5AFE)
        let flow = try NormalizingFlow(transform: Sequential<Double>([
            try Diagonal(features: 3, logScale: [0.1, -0.2, 0.3]), try Permutation<Double>.reversed(features: 3),
            try Bias(features: 3, bias: [1, 2, 3]),
        ]))
        let seed = try Checkpoint(flow: flow, preprocessing: .dequantization(try Dequantization(levels: 4))).safeTensors().encode()
        let alphabet = Array("{}[]\":,0123456789-.eE \"FD_a".utf8) + Array(0...255).map(UInt8.init)
        var loaded = 0, rejected = 0
        let total = 20_000 * Self.scale
        for _ in 0..<total {
            let input = Self.mutate(seed, &rng, alphabet: alphabet, maxLength: seed.count + 16)
            do {
                let file = try SafeTensors.decode(input, path: "fuzz.safetensors")
                let checkpoint = try Checkpoint<Double>(file: file, path: "fuzz.safetensors")
                _ = try? checkpoint.flow.logProbability(Matrix(rows: 1, columns: checkpoint.flow.features, repeating: 0.5))
                loaded += 1
            } catch is CheckpointError {
                rejected += 1
            } catch is InvertNNError {
                rejected += 1
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
        #expect(loaded + rejected == total)
        #expect(rejected > total / 20, "\(rejected) of \(total) rejected")
    }
}
