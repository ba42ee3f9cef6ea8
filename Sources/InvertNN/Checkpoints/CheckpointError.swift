import Foundation
import RealModule

/// What is wrong with a checkpoint file (``SafeTensors``, ``Checkpoint``).
///
/// Every case names the file and the offending part, so a user can tell a truncated download from
/// a checkpoint of another model.
public enum CheckpointError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The file is shorter than its header says (`expected` bytes, `actual` present).
    case truncated(path: String, expected: Int, actual: Int)
    /// The 8-byte little-endian header length is impossible (larger than the file or than 100 MB).
    case badHeaderLength(path: String, length: UInt64, fileSize: Int)
    /// The header is not valid JSON, or not the JSON object safetensors prescribes.
    case malformedHeader(path: String, reason: String)
    /// The header's JSON names `key` twice in one object (`within`: the keys of the enclosing
    /// objects, outermost first; empty for a tensor name or `__metadata__` at the top level).
    /// A JSON reader keeps one of the two silently, so which tensor or metadata is meant is unknown.
    case duplicateKey(path: String, key: String, within: [String])
    /// A tensor has a dtype other than `F32` or `F64`.
    case unknownDtype(path: String, tensor: String, dtype: String)
    /// A tensor's dtype differs from the checkpoint's precision (`stored`: its `dtype` metadata,
    /// else its first tensor's). A checkpoint holds all its tensors in one precision; reading
    /// it as the other precision converts the whole file, never part of it.
    case mixedDtype(path: String, tensor: String, dtype: String, stored: String)
    /// A tensor's data offsets do not match its shape and dtype, or lie outside the data section.
    case badOffsets(path: String, tensor: String, reason: String)
    /// A parameter of the model has no tensor in the file.
    case missingTensor(path: String, tensor: String)
    /// The file holds a tensor the model has no parameter for.
    case unexpectedTensor(path: String, tensor: String)
    /// A tensor's shape differs from the parameter's.
    case shapeMismatch(path: String, tensor: String, expected: [Int], actual: [Int])
    /// A required `__metadata__` entry is missing or malformed.
    case badMetadata(path: String, key: String, reason: String)
    /// The file's format version is not one this library reads.
    case unsupportedVersion(path: String, version: String)
    /// The stored architecture cannot be rebuilt (unknown layer type, bad hyper-parameter).
    case badArchitecture(path: String, reason: String)
    /// The stored architecture differs from the model it is loaded into.
    case architectureMismatch(path: String, reason: String)
    /// The file cannot be read or written.
    case io(path: String, reason: String)
    /// The optional training state (`training_state` metadata and the `optimizer.*`/`trainer.*`
    /// tensors) is malformed: a missing, misshapen or non-finite tensor, an unknown version, a
    /// missing field.
    case badTrainingState(path: String, reason: String)
    /// A tensor to be written holds NaN or an infinity (`value`: `"nan"`, `"inf"` or `"-inf"`)
    /// at 0-based `[row, column]` of its matrix (a parameter, such as `1.dense0.weight`).
    /// Reading refuses such a file, so
    /// ``Checkpoint/write(to:)`` refuses to write it; `path` is empty when no file is involved
    /// (``Checkpoint/safeTensors()``).
    case nonFiniteTensor(path: String, tensor: String, row: Int, column: Int, value: String)

    public var description: String {
        switch self {
        case let .truncated(path, expected, actual):
            return "\(path): truncated checkpoint, the header promises \(expected) bytes but the file has \(actual)"
        case let .badHeaderLength(path, length, fileSize):
            if length > UInt64(SafeTensors.maximumHeaderLength) {
                return "\(path): the safetensors header is \(length) bytes, beyond the limit of \(SafeTensors.maximumHeaderLength) bytes "
                    + "(SafeTensors.maximumHeaderLength; invertnn writes headers of a few kilobytes)"
            }
            return "\(path): bad safetensors header length \(length) for a file of \(fileSize) bytes"
        case let .malformedHeader(path, reason):
            return "\(path): malformed safetensors header: \(reason)"
        case let .duplicateKey(path, key, within):
            // Quoted with escapes, so a key holding control characters cannot drive a terminal.
            let place = within.isEmpty ? "the safetensors header" : "the object \(within.map(\.debugDescription).joined(separator: " → ")) of the safetensors header"
            return "\(path): \(place) holds the key \(key.debugDescription) twice; a JSON reader would keep one of them silently"
        case let .unknownDtype(path, tensor, dtype):
            return "\(path): tensor \(tensor) has dtype \(dtype); only F32 and F64 are supported"
        case let .mixedDtype(path, tensor, dtype, stored):
            return "\(path): tensor \(tensor) is \(dtype) but the checkpoint stores \(stored) (its dtype metadata"
                + " or first tensor); all tensors of a checkpoint must have one dtype"
        case let .badOffsets(path, tensor, reason):
            return "\(path): tensor \(tensor): \(reason)"
        case let .missingTensor(path, tensor):
            return "\(path): the model's parameter \(tensor) has no tensor in the checkpoint"
        case let .unexpectedTensor(path, tensor):
            return "\(path): the checkpoint holds tensor \(tensor), which the model does not have"
        case let .shapeMismatch(path, tensor, expected, actual):
            return "\(path): tensor \(tensor) has shape \(actual), the model expects \(expected)"
        case let .badMetadata(path, key, reason):
            return "\(path): metadata \(key): \(reason)"
        case let .unsupportedVersion(path, version):
            return "\(path): checkpoint format version \(version) is not supported (this library reads \(Checkpoint<Double>.formatVersion))"
        case let .badArchitecture(path, reason):
            return "\(path): cannot rebuild the architecture: \(reason)"
        case let .architectureMismatch(path, reason):
            return "\(path): the checkpoint's architecture differs from the model's: \(reason)"
        case let .io(path, reason):
            return "\(path): \(reason)"
        case let .badTrainingState(path, reason):
            return "\(path): bad training state: \(reason)"
        case let .nonFiniteTensor(path, tensor, row, column, value):
            return "\(path.isEmpty ? "" : "\(path): ")cannot write the checkpoint: tensor \(tensor) holds \(value) at [\(row), \(column)] "
                + "(0-based); a checkpoint stores finite values only, and reading would refuse it"
        }
    }
}

extension CheckpointError: LocalizedError {
    /// ``description``, so that `localizedDescription` (and Foundation's error reporting) gives
    /// the message instead of "The operation couldn’t be completed".
    public var errorDescription: String? { description }
}
