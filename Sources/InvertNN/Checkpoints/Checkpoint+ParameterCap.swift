import Foundation

extension Checkpoint {
    /// Refuses an architecture read from a file before any layer is built when its parameter
    /// count exceeds ``SizeLimits/maximumParameters``, or exceeds what the file can fill:
    /// `2·storedValues + 2²⁰` (every parameter needs a stored value; the slack covers the fixed
    /// matrices ``SizeLimits/parameterCount(of:)-(ArchitectureSizes)`` counts but no tensor holds, such as
    /// an `InvertibleLinear`'s cached D² dense matrix). The second bound keeps the memory of a
    /// load proportional to the file: otherwise a 3 KB checkpoint whose architecture says hidden
    /// sizes [15000, 15000] (under the cap) would allocate gigabytes before a tensor's shape is
    /// found wrong. Text that is not JSON is left to the registry, which reports it.
    /// Architectures longer than ``parameterCapTextLimit`` are not pre-read (a second pass would
    /// double the loading time of a 100,000-layer file); their layers are still capped one by
    /// one (``MLP``'s ``SizeLimits/maximumParameters``, ``SizeLimits/maximumElements``).
    ///
    /// - Throws: ``CheckpointError/badArchitecture(path:reason:)`` naming the count and the limit.
    static func requireParameterCap(
        architecture: String, storedValues: Int, storedDType: SafeTensors.DType, path: String
    ) throws {
        guard architecture.utf8.count <= parameterCapTextLimit else { return }
        guard let object = try? JSONSerialization.jsonObject(with: Data(architecture.utf8)),
              let tree = ArchitectureSizes(jsonObject: object) else { return }
        do {
            try SizeLimits.requireParameterCount(of: tree, operation: "Checkpoint")
        } catch let error as InvertNNError {
            throw CheckpointError.badArchitecture(path: path, reason: "\(error)")
        }
        let count = SizeLimits.parameterCount(of: tree)
        let fillable = 2 * storedValues + (1 << 20)
        guard count <= fillable else {
            throw CheckpointError.badArchitecture(
                path: path,
                reason: "the architecture describes about \(count) parameters but the file's tensors hold only \(storedValues) "
                    + "\(storedDType.rawValue) values")
        }
    }

    /// 1 MiB: the presets' architectures are a few kilobytes.
    static var parameterCapTextLimit: Int { 1 << 20 }

    /// The file's dtype (``storedDType(of:path:)``), after checking that every tensor has it.
    ///
    /// - Throws: ``CheckpointError/mixedDtype(path:tensor:dtype:stored:)`` naming the first tensor
    ///   of the other dtype; the errors of ``storedDType(of:path:)``.
    static func requireOneDType(_ file: SafeTensors, path: String) throws -> SafeTensors.DType {
        let stored = try storedDType(of: file, path: path)
        if let other = file.tensors.first(where: { $0.dtype != stored }) {
            throw CheckpointError.mixedDtype(path: path, tensor: other.name, dtype: other.dtype.rawValue, stored: stored.rawValue)
        }
        return stored
    }
}
