import Foundation

/// Errors of the MPI transport of data-parallel training.
public enum DistributedError: Error, CustomStringConvertible {
    /// Open MPI cannot be loaded or lacks a symbol; the reason says which.
    case unavailable(String)
    /// An MPI call returned an error code (`function`, the code of mpi.h).
    case call(function: String, code: Int32)

    public var description: String {
        switch self {
        case let .unavailable(reason): return "MPI unavailable: \(reason)"
        case let .call(function, code): return "\(function) failed with MPI error code \(code)"
        }
    }
}

extension DistributedError: LocalizedError {
    /// ``description``, so that `localizedDescription` gives the message.
    public var errorDescription: String? { description }
}
