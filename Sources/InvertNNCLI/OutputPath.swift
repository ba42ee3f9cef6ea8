import ArgumentParser
import Foundation

/// Checks made on output paths before any work starts, so that a run that cannot write its
/// result fails at once with a usage error instead of after training or sampling.
enum OutputPath {
    /// Throws a `ValidationError` naming `option` if `path` is empty or its directory is missing.
    static func requireWritableDirectory(_ path: String, option: String) throws {
        guard !path.isEmpty else { throw ValidationError("\(option) needs a file path") }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("\(option): the directory \(directory) does not exist")
        }
        guard FileManager.default.isWritableFile(atPath: directory) else {
            throw ValidationError("\(option): the directory \(directory) is not writable")
        }
    }
}
