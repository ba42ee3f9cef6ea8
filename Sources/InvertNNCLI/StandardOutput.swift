import Foundation
import InvertNN

/// Results go to standard output, and a result that cannot be written is an error: `print`
/// ignores a failed write, so `invertnn train > /dev/full` used to lose its JSON and exit 0.
enum StandardOutput {
    /// Writes `text` and a newline to standard output, retrying short and interrupted writes.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` naming standard output and the system's
    ///   reason when the write fails (a full disk, a closed descriptor).
    static func line(_ text: String) throws {
        let bytes = Array((text + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw InvertNNError.io(path: "standard output", reason: "cannot write the result: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }
}
