import RealModule
import Foundation

/// Whole-file writes that readers never see half done.
public enum AtomicFile {
    /// Writes `bytes` to `path` atomically: they go to a temporary file in the same directory
    /// (same file system), which is then renamed over the destination with POSIX `rename`,
    /// atomic on POSIX file systems. A failed write leaves any previous file untouched.
    ///
    /// A symbolic link is written through: the file it points to is replaced and the link stays
    /// (``destination(of:)``). Stale temporary files of this naming left by a killed run are
    /// removed first (``removeStaleTemporaries(of:)``).
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` if the path resolves to something other than
    ///   a regular file (a device, a FIFO, a directory), or the file cannot be written or renamed.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let target = try destination(of: path)
        removeStaleTemporaries(of: target)
        let url = URL(fileURLWithPath: target)
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

    /// The file a write to `path` replaces: `path` itself, or, for a symbolic link, the path it
    /// finally points to (relative links resolved against the link's directory), so that
    /// renaming a finished file into place never replaces a link we did not create (renaming
    /// over `/dev/stdout` would replace the system's link by a regular file).
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` if the destination exists and is not a
    ///   regular file (a character device such as /dev/stdout's terminal or /dev/null, a FIFO or
    ///   pipe, a socket, a directory: none can be replaced atomically), or for a loop of links.
    public static func destination(of path: String) throws -> String {
        var current = path
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0 else { return current }  // a new file
            switch info.st_mode & S_IFMT {
            case S_IFREG: return current
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let count = readlink(current, &buffer, buffer.count - 1)
                guard count > 0 else {
                    throw InvertNNError.io(path: path, reason: "cannot read the symbolic link \(current): \(String(cString: strerror(errno)))")
                }
                let link = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                current = link.hasPrefix("/") ? link
                    : URL(fileURLWithPath: current).deletingLastPathComponent().appendingPathComponent(link).path
            default:
                let kind = RegularFile.problem(at: current) ?? "not a regular file"
                let through = current == path ? "" : " (the symbolic link \(path) points to \(current))"
                throw InvertNNError.io(
                    path: path, reason: "is \(kind)\(through); outputs are written to regular files only: give a file path")
            }
        }
        throw InvertNNError.io(path: path, reason: "too many levels of symbolic links")
    }

    /// Removes the temporary files a killed run left beside `destination`: hidden files named
    /// `.<name>.tmp-<pid>` or `.<name>.staged-<pid>` (the names this library and the CLI give
    /// their temporaries) whose process no longer runs. Other files are never touched.
    public static func removeStaleTemporaries(of destination: String) {
        let url = URL(fileURLWithPath: destination)
        let directory = url.deletingLastPathComponent().path
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for suffix in [".tmp-", ".staged-"] {
            let prefix = ".\(url.lastPathComponent)\(suffix)"
            for entry in entries where entry.hasPrefix(prefix) {
                guard let pid = Int32(entry.dropFirst(prefix.count)), pid > 0, pid != getpid() else { continue }
                // kill(pid, 0) fails with ESRCH only when no such process exists.
                if kill(pid, 0) != 0 && errno == ESRCH {
                    var info = stat()
                    let path = directory + "/" + entry
                    if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG { unlink(path) }
                }
            }
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
    static func read(path: String) throws -> [UInt8] {
        try RegularFile.require(path)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InvertNNError.io(path: path, reason: "cannot read (no permission)")
        }
        return [UInt8](data)
    }
}
