import Foundation

/// Progress and notes go to standard error; standard output carries only results.
enum StandardError {
    /// Whether standard error is a terminal (then progress rewrites one line with `\r`).
    static let isTerminal = isatty(STDERR_FILENO) != 0

    static func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func line(_ text: String) {
        write(text + "\n")
    }
}
