import Foundation
import RealModule
/// The errors thrown by the public API of InvertNN.
///
/// Every case carries enough context to say what was wrong and where: the operation, the
/// offending shapes or values and, for elementwise problems, the `[row, column]` position.
public enum InvertNNError: Error, Equatable, CustomStringConvertible, Sendable {
    /// An input had the wrong shape. `expected` and `actual` are human-readable shapes such as
    /// `"[batch, 64]"` and `"[32, 63]"`.
    case shapeMismatch(operation: String, expected: String, actual: String)
    /// An argument is invalid (empty batch, bad option, non-permutation, …).
    case invalidArgument(operation: String, reason: String)
    /// A value is NaN or infinite at `[row, column]` of `operation`'s input.
    case nonFinite(operation: String, row: Int, column: Int)
    /// A value lies outside the domain of a layer's map, e.g. `|y| ≥ 1` for an inverse tanh.
    case outOfDomain(layer: String, value: Double, row: Int, column: Int, domain: String)
    /// A LAPACK routine returned `info != 0`.
    case lapack(routine: String, info: Int, meaning: String)
    /// A matrix that must be invertible (or orthogonal) is not, with the measured defect.
    case singular(operation: String, detail: String)
    /// Reading or writing a file failed.
    case io(path: String, reason: String)
    /// A data file is malformed at a given line (1-based; 0 if unknown).
    case malformedData(source: String, line: Int, reason: String)
    /// Training produced a non-finite loss or gradient.
    case diverged(step: Int, detail: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(operation, expected, actual):
            return "\(operation): shape mismatch, expected \(expected), got \(actual)"
        case let .invalidArgument(operation, reason):
            return "\(operation): invalid argument: \(reason)"
        case let .nonFinite(operation, row, column):
            return "\(operation): non-finite value (NaN or Inf) at [\(row), \(column)]"
        case let .outOfDomain(layer, value, row, column, domain):
            return "\(layer): value \(value) at [\(row), \(column)] is outside the domain \(domain)"
        case let .lapack(routine, info, meaning):
            return "LAPACK \(routine) failed with info = \(info): \(meaning)"
        case let .singular(operation, detail):
            return "\(operation): \(detail)"
        case let .io(path, reason):
            return "\(path): \(reason)"
        case let .malformedData(source, line, reason):
            return line > 0 ? "\(source):\(line): \(reason)" : "\(source): \(reason)"
        case let .diverged(step, detail):
            return "training diverged at step \(step): \(detail)"
        }
    }
}

extension InvertNNError: LocalizedError {
    /// ``description``, so that `localizedDescription` (and Foundation's error reporting) gives
    /// the message instead of "The operation couldn’t be completed".
    public var errorDescription: String? { description }
}
