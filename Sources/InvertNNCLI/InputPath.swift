import ArgumentParser
import Foundation

/// Checks made on input files before any work starts, so that a missing input is a usage error
/// (exit 64) in every subcommand, as a missing `--data` file is for `train`.
enum InputPath {
    /// Throws a `ValidationError` naming `option` if `path` does not exist or is a directory.
    static func requireFile(_ path: String, option: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("\(option): no such file: \(path)")
        }
        guard !isDirectory.boolValue else { throw ValidationError("\(option): \(path) is a directory, not a file") }
    }
}
