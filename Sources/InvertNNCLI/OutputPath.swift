import ArgumentParser
import Foundation
import InvertNN
import InvertNNPlots

/// Checks made on output paths before any work starts, so that a run that cannot write its
/// result fails at once with a usage error instead of after training or sampling.
enum OutputPath {
    /// Throws a `ValidationError` naming `option` if `path` is empty, names an existing directory
    /// or other non-regular file, or its directory is missing or not writable.
    static func requireWritableDirectory(_ path: String, option: String) throws {
        guard !path.isEmpty else { throw ValidationError("\(option) needs a file path") }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ValidationError("\(option): \(path) is a directory, not a file path")
        }
        // A symbolic link is written through to its target, which must be a regular file or new.
        let target: String
        do { target = try AtomicFile.destination(of: path) } catch let InvertNNError.io(_, reason) {
            throw ValidationError("\(option): \(path) \(reason)")
        }
        let directory = URL(fileURLWithPath: target).deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("\(option): the directory \(directory) does not exist")
        }
        guard FileManager.default.isWritableFile(atPath: directory) else {
            throw ValidationError("\(option): the directory \(directory) is not writable")
        }
    }

    /// What an output file is, for recognizing an existing file as one this tool wrote.
    enum Kind {
        /// A safetensors checkpoint with the `architecture` metadata entry of ours.
        case checkpoint
        /// A PNG image as ``PNGWriter`` writes it: 8-bit greyscale, then its `Software` text
        /// chunk (or, as earlier versions wrote it, the image data right after the header).
        case png
        /// A CSV file whose first line is one of the given headers.
        case csv(headers: [String])
    }

    /// Throws a `ValidationError` naming `option` if `path` (through symbolic links) is an
    /// existing file that does not look like a `kind` file this tool writes: outputs replace
    /// their own earlier results, never a file we did not create (a notes file given as `--out`
    /// by mistake, a data file of other columns given as `--csv`, a picture made elsewhere). A
    /// missing or empty file is fine; an existing one that cannot be read is refused.
    static func requireReplaceable(_ path: String, option: String, kind: Kind) throws {
        guard let target = try? AtomicFile.destination(of: path), FileManager.default.fileExists(atPath: target) else { return }
        guard let handle = FileHandle(forReadingAtPath: target) else {
            throw ValidationError("\(option): \(path) exists and cannot be read; not replacing it (remove it or give another path)")
        }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 1 << 16)) ?? Data())
        // An empty file holds nothing to lose (a placeholder made with `touch`).
        guard !head.isEmpty else { return }
        let recognized: Bool
        let what: String
        switch kind {
        case .png:
            what = "a PNG image written by invertnn"
            recognized = isOurPNG(head)
        case .checkpoint:
            what = "a checkpoint written by invertnn"
            // The 8-byte header length, then a JSON header naming the architecture; a header
            // longer than what was read is judged by its first 64 kB.
            let text = head.count > 8 ? String(decoding: head[8...], as: UTF8.self) : ""
            recognized = text.hasPrefix("{") && text.contains("\"__metadata__\"") && text.contains("\"architecture\"")
        case .csv(let headers):
            what = "a CSV file with the header \(headers[0]) written by invertnn"
            let firstLine = String(decoding: head.prefix { $0 != 0x0A && $0 != 0x0D }, as: UTF8.self)
            recognized = headers.contains(firstLine)
        }
        guard recognized else {
            throw ValidationError(
                "\(option): \(path) exists and is not \(what); not replacing it (remove it or give another path)")
        }
    }

    /// Whether `bytes` start a PNG as ``PNGWriter`` writes it: the signature, an `IHDR` of bit
    /// depth 8 and colour type 0, then the `Software` text chunk, or (earlier versions) `IDAT`.
    static func isOurPNG(_ bytes: [UInt8]) -> Bool {
        guard bytes.starts(with: PNGWriter.signature), bytes.count >= 8 + 25 + 8 else { return false }
        func type(at offset: Int) -> String { String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self) }
        guard type(at: 8) == "IHDR", bytes[8 + 8 + 8] == 8, bytes[8 + 8 + 9] == 0 else { return false }
        let second = 8 + 25  // the signature, then IHDR: length, type, 13 bytes, CRC
        switch type(at: second) {
        case "IDAT": return true
        case "tEXt":
            let text = Array("Software".utf8) + [0] + Array(PNGWriter.software.utf8)
            return bytes.count >= second + 8 + text.count && Array(bytes[(second + 8)..<(second + 8 + text.count)]) == text
        default: return false
        }
    }

    /// Throws a `ValidationError` if an output names the same file as an input (writing it would
    /// replace the data or model being read): equal paths after resolving symbolic links, or
    /// the same device and inode (a hard link). Inputs that are not files (a named dataset such
    /// as `digits`) never match.
    static func requireNotInputs(_ outputs: [(option: String, path: String)], inputs: [(option: String, path: String)]) throws {
        for (outputOption, output) in outputs {
            for (inputOption, input) in inputs where sameFile(output, input) {
                throw ValidationError(
                    "\(outputOption) \(output) is the \(inputOption) file; writing it would replace the input: give another path")
            }
        }
    }

    /// Whether two paths name one file: equal after resolving symbolic links, or, when both
    /// exist, the same device and inode.
    static func sameFile(_ a: String, _ b: String) -> Bool {
        func resolved(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }
        if resolved(a) == resolved(b) { return true }
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// Throws a `ValidationError` if two of the given outputs resolve to the same file (the
    /// second write would silently replace the first).
    static func requireDistinct(_ outputs: [(option: String, path: String)]) throws {
        var seen = [String: String]()
        for (option, path) in outputs {
            let resolved = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
            if let other = seen[resolved] {
                throw ValidationError("\(other) and \(option) name the same file \(path); give them different paths")
            }
            seen[resolved] = option
        }
    }
}

/// Several output files written as one unit: each is first written to a staging file beside its
/// destination, and only when all of them are written are they renamed into place. A failure
/// while producing any output therefore leaves every existing destination file untouched.
final class OutputStaging {
    private var staged = [(staging: String, destination: String)]()

    /// The path to write `destination`'s content to; ``commit()`` moves it into place.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` if `destination` resolves to something other
    ///   than a regular file (``AtomicFile/destination(of:)``: a symbolic link is written through).
    func path(for destination: String) throws -> String {
        let target = try AtomicFile.destination(of: destination)
        AtomicFile.removeStaleTemporaries(of: target)
        let url = URL(fileURLWithPath: target)
        let staging = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).staged-\(ProcessInfo.processInfo.processIdentifier)").path
        staged.append((staging, target))
        return staging
    }

    /// Renames every staged file onto its destination (POSIX `rename`, atomic per file).
    ///
    /// - Throws: `InvertNNError.io` naming the destination if a rename fails; the staged files
    ///   not yet moved are removed.
    func commit() throws {
        defer { discard() }
        while !staged.isEmpty {
            let (staging, destination) = staged.removeFirst()
            guard rename(staging, destination) == 0 else {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(atPath: staging)
                throw InvertNNError.io(path: destination, reason: "cannot move the finished output into place: \(reason)")
            }
        }
    }

    /// Runs `write` with the staging path for `destination` and returns its message; errors and
    /// the message name `destination`, not the staging file.
    @discardableResult
    func write(_ destination: String, _ write: (String) throws -> String) throws -> String {
        let staging = try path(for: destination)
        do {
            return try write(staging).replacingOccurrences(of: staging, with: destination)
        } catch let InvertNNError.io(path, reason) where path == staging {
            throw InvertNNError.io(path: destination, reason: reason)
        }
    }

    /// As ``write(_:_:)``, but a failure costs only this output: its staged file is removed and
    /// will not be committed, the outputs staged before stay staged, and the error is returned
    /// (for a note) instead of thrown.
    func writeIfPossible(_ destination: String, _ write: (String) throws -> String) -> Result<String, any Error> {
        let before = staged.count
        do {
            return .success(try self.write(destination, write))
        } catch {
            while staged.count > before { try? FileManager.default.removeItem(atPath: staged.removeLast().staging) }
            return .failure(error)
        }
    }

    /// Removes staged files that were not committed.
    func discard() {
        for (staging, _) in staged { try? FileManager.default.removeItem(atPath: staging) }
        staged.removeAll()
    }

    deinit { discard() }
}
