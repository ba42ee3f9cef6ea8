import Testing
import Foundation
import CZlib
@testable import InvertNN

/// A fresh path in the temporary directory.
func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory
        .appendingPathComponent("invertnn-tests-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))-\(name)").path
}

func writeText(_ text: String, to path: String) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
}

@Suite struct GzipReaderTests {
    @Test func roundTripThroughZlib() throws {
        let path = temporaryPath("round.gz")
        defer { try? FileManager.default.removeItem(atPath: path) }
        // More than one read chunk (256 KiB) of varied bytes.
        let original = (0..<700_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        let file = try #require(gzopen(path, "wb"))
        let written = original.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
        #expect(Int(written) == original.count)
        gzclose(file)
        #expect(try GzipReader.read(path: path) == original)
    }

    @Test func plainFilesReadAsIs() throws {
        let path = temporaryPath("plain.csv")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writeText("1,2\n3,4\n", to: path)
        #expect(try GzipReader.read(path: path) == Array("1,2\n3,4\n".utf8))
    }

    /// Bytes that are not gzip in a file named `.gz` are an error naming the magic bytes, not
    /// text to parse; the same bytes under another name are read as is.
    @Test func gzNameWithoutGzipMagicThrows() throws {
        let gz = temporaryPath("random.csv.gz"), plain = temporaryPath("random.csv")
        defer { for p in [gz, plain] { try? FileManager.default.removeItem(atPath: p) } }
        let bytes = Array("1,2\n3,4\n".utf8)
        for p in [gz, plain] { try Data(bytes).write(to: URL(fileURLWithPath: p)) }
        #expect(try GzipReader.read(path: plain) == bytes)
        do {
            _ = try GzipReader.read(path: gz)
            Issue.record("a .gz file without the gzip header was read")
        } catch let InvertNNError.io(path, reason) {
            #expect(path == gz)
            #expect(reason.contains("not gzip data"), "\(reason)")
        }
        // An empty .gz file reads as no bytes (the loaders then report "no data records").
        try Data().write(to: URL(fileURLWithPath: gz))
        #expect(try GzipReader.read(path: gz) == [])
    }

    @Test func missingAndCorruptFilesThrow() throws {
        #expect(throws: InvertNNError.self) { try GzipReader.read(path: "/nonexistent/dir/file.gz") }
        // A gzip header followed by bytes that are not a deflate stream.
        let path = temporaryPath("corrupt.gz")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bytes: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3] + [UInt8](repeating: 0xFF, count: 64)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: InvertNNError.self) { try GzipReader.read(path: path) }
    }

    @Test func truncatedStreamThrows() throws {
        let full = temporaryPath("full.gz"), cut = temporaryPath("cut.gz")
        defer { for p in [full, cut] { try? FileManager.default.removeItem(atPath: p) } }
        let file = try #require(gzopen(full, "wb"))
        let text = Array(String(repeating: "12,34,56\n", count: 5000).utf8)
        _ = text.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
        gzclose(file)
        let data = try Data(contentsOf: URL(fileURLWithPath: full))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
        #expect(throws: InvertNNError.self) { try GzipReader.read(path: cut) }
    }
}
