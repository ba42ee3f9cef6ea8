import Foundation
import InvertNN

/// Results go to standard output, and a result that cannot be written is an error: `print`
/// ignores a failed write, so `invertnn train > /dev/full` would lose its JSON and exit 0.
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

    /// Writes `value` as one line of JSON (keys sorted; a non-finite ``SummaryNumber`` is `null`).
    ///
    /// - Throws: as ``line(_:)``; ``InvertNNError/invalidArgument(operation:reason:)`` if the
    ///   value cannot be encoded.
    static func json<V: Encodable>(_ value: V) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do { data = try encoder.encode(value) } catch {
            throw InvertNNError.invalidArgument(operation: "JSON output", reason: "\(error)")
        }
        try line(String(decoding: data, as: UTF8.self))
    }
}

/// A number of a JSON summary: finite values as numbers, others as `null`.
struct SummaryNumber: Encodable {
    let value: Double
    init(_ value: Double) { self.value = value }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if value.isFinite { try c.encode(value) } else { try c.encodeNil() }
    }
}

/// An optional value of a JSON summary written as `null` when absent (rather than left out).
struct Nullable<V: Encodable>: Encodable {
    let value: V?
    init(_ value: V?) { self.value = value }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let value { try c.encode(value) } else { try c.encodeNil() }
    }
}
