import Foundation
import InvertNN

/// Results go to standard output, and a result that cannot be written is an error: `print`
/// ignores a failed write, so `invertnn train > /dev/full` used to lose its JSON and exit 0.
enum StandardOutput {
    /// Writes `text` and a newline to standard output.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` naming standard output when the write fails
    ///   (a full disk, a closed descriptor).
    static func line(_ text: String) throws {
        do {
            try FileHandle.standardOutput.write(contentsOf: Data((text + "\n").utf8))
        } catch {
            throw InvertNNError.io(path: "standard output", reason: "cannot write the result: \(error.localizedDescription)")
        }
    }
}
