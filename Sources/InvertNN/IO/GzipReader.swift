import RealModule
import CZlib

/// Reads whole files through zlib's gzip stream interface (`gzopen` / `gzread` / `gzclose`;
/// RFC 1952 framing, RFC 1951 deflate).
///
/// zlib reads a file that is not gzip-compressed transparently as is, so the same call loads
/// `data.csv` and `data.csv.gz`; a file whose name ends in `.gz` must start with the gzip magic
/// bytes, so that a damaged or mislabelled archive is reported as such instead of being parsed
/// as text. Concatenated gzip members are read one after the other, as `gunzip` does.
public enum GzipReader {
    /// The decompressed bytes of the file at `path`.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` if the path is not a regular file
    ///   (``RegularFile/require(_:)``: a device or FIFO would never end), cannot be opened, if zlib reports
    ///   an error while decompressing (a corrupt or truncated stream, named by zlib's message), or
    ///   if a `.gz` file does not start with the gzip magic bytes `1f 8b`.
    public static func read(path: String) throws -> [UInt8] {
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
        let chunk = 1 << 18
        var buffer = [UInt8](repeating: 0, count: chunk)
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in gzread(file, raw.baseAddress, UInt32(chunk)) }
            if count < 0 { throw InvertNNError.io(path: path, reason: "gzip read failed: \(errorMessage(file, path: path))") }
            if count == 0 { break }
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
