import ArgumentParser
import Foundation
import InvertNN

/// Checks made on input files before any work starts, so that a missing input is a usage error
/// (exit 64) in every subcommand, as a missing `--data` file is for `train`.
enum InputPath {
    /// Throws a `ValidationError` naming `option` if `path` is not a regular file (missing, a
    /// directory, a device such as /dev/zero, a FIFO): ``RegularFile/problem(at:)``.
    static func requireFile(_ path: String, option: String) throws {
        if let problem = RegularFile.problem(at: path) {
            throw ValidationError(problem == "no such file" ? "\(option): no such file: \(path)" : "\(option): \(path) is \(problem)")
        }
    }
}
