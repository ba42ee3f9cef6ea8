import Foundation

extension Checkpoint {
    /// Refuses an architecture read from a file whose parameter count exceeds
    /// ``SizeLimits/maximumParameters``, before any layer is built (text that is not JSON is left
    /// to the registry, which reports it).
    ///
    /// - Throws: ``CheckpointError/badArchitecture(path:reason:)`` naming the count and the limit.
    static func requireParameterCap(architecture: String, path: String) throws {
        guard let tree = try? JSONDecoder().decode(ArchitectureSizes.self, from: Data(architecture.utf8)) else { return }
        do {
            try SizeLimits.requireParameterCount(of: tree, operation: "Checkpoint")
        } catch let error as InvertNNError {
            throw CheckpointError.badArchitecture(path: path, reason: "\(error)")
        }
    }
}
