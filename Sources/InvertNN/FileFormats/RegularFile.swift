import Foundation

/// The check every input file passes before it is read: only regular files (after following
/// symbolic links) are data or models. A character device (`/dev/zero`, `/dev/urandom`) never
/// ends and a FIFO blocks, so reading either "whole" would exhaust memory or hang.
public enum RegularFile {
    /// Why `path` cannot be read as a file (`"no such file"`, `"a directory"`, `"a FIFO"`, …),
    /// or `nil` when it names a regular file.
    public static func problem(at path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return errno == ENOENT || errno == ENOTDIR ? "no such file" : String(cString: strerror(errno))
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory, not a file"
        case S_IFCHR: return "a character device, not a regular file"
        case S_IFBLK: return "a block device, not a regular file"
        case S_IFIFO: return "a FIFO (named pipe), not a regular file"
        case S_IFSOCK: return "a socket, not a regular file"
        default: return "not a regular file"
        }
    }

    /// Throws unless `path` names a regular file.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` with ``problem(at:)``.
    static func require(_ path: String) throws {
        if let problem = problem(at: path) { throw InvertNNError.io(path: path, reason: "\(problem); only regular files are read") }
    }
}
