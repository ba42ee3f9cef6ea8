import Foundation

extension Checkpoint {
    /// Refuses an architecture read from a file whose parameter count exceeds
    /// ``SizeLimits/maximumParameters``, before any layer is built (text that is not JSON is left
    /// to the registry, which reports it). Architectures longer than
    /// ``parameterCapTextLimit`` are not pre-read (a second pass would double the loading time of
    /// a 100,000-layer file); their layers are still capped one by one (``MLP``'s
    /// ``SizeLimits/maximumParameters``, ``SizeLimits/maximumElements``).
    ///
    /// - Throws: ``CheckpointError/badArchitecture(path:reason:)`` naming the count and the limit.
    static func requireParameterCap(architecture: String, path: String) throws {
        guard architecture.utf8.count <= parameterCapTextLimit else { return }
        guard let object = try? JSONSerialization.jsonObject(with: Data(architecture.utf8)),
              let tree = ArchitectureSizes(jsonObject: object) else { return }
        do {
            try SizeLimits.requireParameterCount(of: tree, operation: "Checkpoint")
        } catch let error as InvertNNError {
            throw CheckpointError.badArchitecture(path: path, reason: "\(error)")
        }
    }

    /// 1 MiB: the presets' architectures are a few kilobytes.
    static var parameterCapTextLimit: Int { 1 << 20 }
}
