import RealModule
import CZlib

/// Reads whole files through zlib's gzip stream interface (`gzopen` / `gzread` / `gzclose`;
/// RFC 1952 framing, RFC 1951 deflate).
///
/// zlib reads a file that is not gzip-compressed transparently as is, so the same call loads
/// `data.csv` and `data.csv.gz`; a file whose name ends in `.gz` must start with the gzip magic
/// bytes, so that a damaged or mislabelled archive is reported as such instead of being parsed
/// as text. Concatenated gzip members are read one after the other, as `gunzip` does.
enum GzipReader {
    /// The decompressed bytes of the file at `path`, read in chunks and checked against `limits`
    /// as they arrive (never more than the limit plus one chunk is held).
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` if the path is not a regular file
    ///   (``RegularFile/require(_:)``: a device or FIFO would never end), cannot be opened, if zlib reports
    ///   an error while decompressing (a corrupt or truncated stream, named by zlib's message), or
    ///   if a `.gz` file does not start with the gzip magic bytes `1f 8b`, or if the data exceed
    ///   `limits.maximumBytes` (naming the limit and the CLI's `--max-data-bytes`);
    ///   ``InvertNNError/malformedData(source:line:reason:)`` naming the line that exceeds
    ///   `limits.maximumLineBytes` (and `--max-line-bytes`).
    static func read(path: String, limits: ReadLimits = .default) throws -> [UInt8] {
        try RegularFile.require(path)
        guard let file = gzopen(path, "rb") else {
            throw InvertNNError.io(path: path, reason: "cannot open for reading (no permission)")
        }
        defer { gzclose(file) }
        // A larger internal buffer than zlib's 8 KiB default cuts the number of read calls.
        gzbuffer(file, 1 << 17)
        // gzdirect is 1 when zlib found no gzip header and passes the bytes through; it is
        // decided by the first read, so it is asked after one.
        var first = [UInt8](repeating: 0, count: 1)
        let firstCount = first.withUnsafeMutableBytes { gzread(file, $0.baseAddress, 1) }
        if path.lowercased().hasSuffix(".gz"), firstCount > 0, gzdirect(file) == 1 {
            throw InvertNNError.io(path: path, reason: "not gzip data (the file does not start with the gzip magic bytes 1f 8b)")
        }
        if firstCount < 0 { throw InvertNNError.io(path: path, reason: "gzip read failed: \(errorMessage(file, path: path))") }
        var result = firstCount > 0 ? first : []
        var lines = LineLengthCheck(limit: limits.maximumLineBytes, path: path)
        try lines.scan(result[...])
        let chunk = 1 << 18
        var buffer = [UInt8](repeating: 0, count: chunk)
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in gzread(file, raw.baseAddress, UInt32(chunk)) }
            if count < 0 { throw InvertNNError.io(path: path, reason: "gzip read failed: \(errorMessage(file, path: path))") }
            if count == 0 { break }
            guard result.count + Int(count) <= limits.maximumBytes else {
                throw InvertNNError.io(
                    path: path,
                    reason: "the data exceed \(limits.maximumBytes) bytes (decompressed), the limit for a data file; "
                        + "raise it with --max-data-bytes (ReadLimits.maximumBytes) if the file is genuine")
            }
            try lines.scan(buffer[0..<Int(count)])
            result.append(contentsOf: buffer[0..<Int(count)])
        }
        var code: Int32 = 0
        _ = gzerror(file, &code)
        if code != Z_OK && code != Z_STREAM_END {
            throw InvertNNError.io(path: path, reason: "gzip read failed: \(errorMessage(file, path: path))")
        }
        return result
    }

    /// zlib's message for the last error, without the `path: ` prefix zlib adds (the thrown
    /// error names the path already).
    private static func errorMessage(_ file: gzFile, path: String) -> String {
        var code: Int32 = 0
        guard let message = gzerror(file, &code) else { return "zlib error \(code)" }
        var text = String(cString: message)
        if text.hasPrefix(path + ": ") { text.removeFirst(path.count + 2) }
        // Z_BUF_ERROR at the end of the input: the stream stops before its end.
        if code == Z_BUF_ERROR { text += " (the gzip data is truncated)" }
        return text.isEmpty ? "zlib error \(code)" : text
    }
}

/// Tracks the length of the current line across the chunks of a read.
private struct LineLengthCheck {
    let limit: Int?
    let path: String
    var current = 0
    var line = 1

    mutating func scan(_ bytes: ArraySlice<UInt8>) throws {
        guard let limit else { return }
        try bytes.withUnsafeBufferPointer { buffer in
            for byte in buffer {
                // A CR ends a line too (files with classic Mac OS line ends); lines are counted at LF.
                if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                    current = 0
                    if byte == UInt8(ascii: "\n") { line += 1 }
                    continue
                }
                current += 1
                if current > limit { try fail(limit) }
            }
        }
    }

    private func fail(_ limit: Int) throws -> Never {
        throw InvertNNError.malformedData(
            source: path, line: line,
            reason: "the line is longer than \(limit) bytes, the limit for a line of data; raise it with --max-line-bytes "
                + "(ReadLimits.maximumLineBytes) if the file is genuine")
    }
}
