import RealModule
import Foundation

/// Whole-file writes that readers never see half done.
public enum AtomicFile {
    /// Writes `bytes` to `path` atomically: they go to a temporary file in the same directory
    /// (same file system), which is then renamed over `path` with POSIX `rename`, atomic on
    /// POSIX file systems. A failed write leaves any previous file at `path` untouched.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` if the file cannot be written or renamed.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        do {
            try Data(bytes).write(to: temporary)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw InvertNNError.io(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
        if rename(temporary.path, url.path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw InvertNNError.io(path: path, reason: "cannot rename the temporary file into place: \(reason)")
        }
    }

    /// Writes UTF-8 `text` to `path` atomically (see ``write(_:to:)``).
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)``.
    public static func write(text: String, to path: String) throws {
        try write(Array(text.utf8), to: path)
    }

    /// The bytes of the regular file at `path`.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` if it is not a regular file
    ///   (``RegularFile/require(_:)``) or cannot be read.
    public static func read(path: String) throws -> [UInt8] {
        try RegularFile.require(path)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InvertNNError.io(path: path, reason: "cannot read (no permission)")
        }
        return [UInt8](data)
    }
}
