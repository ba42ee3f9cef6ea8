import RealModule
/// Size arithmetic on user-given sizes: a product or sum that overflows `Int`, or a matrix larger
/// than BLAS and LAPACK can index, becomes an ``InvertNNError/invalidArgument(operation:reason:)``
/// instead of an overflow trap or an impossible allocation.
enum SizeLimits {
    /// The largest number of elements of one matrix (a parameter, or one sample's features):
    /// OpenBLAS and LAPACKE (LP64 interface) take sizes and leading dimensions as 32-bit integers.
    static let maximumElements = Int(Int32.max)

    /// The product of `factors` (each required ≥ 1), checked against overflow and
    /// ``maximumElements``.
    ///
    /// - Parameters:
    ///   - factors: the sizes to multiply.
    ///   - operation: the layer or function named in the error.
    ///   - what: what the factors describe, e.g. `"channels × height × width"`.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if a factor is < 1 or the
    ///   product exceeds ``maximumElements``.
    static func product(_ factors: [Int], operation: String, what: String) throws -> Int {
        var total = 1
        for f in factors {
            guard f >= 1 else {
                throw InvertNNError.invalidArgument(operation: operation, reason: "\(what) must all be ≥ 1, got \(factors)")
            }
            let (p, overflow) = total.multipliedReportingOverflow(by: f)
            guard !overflow, p <= maximumElements else {
                throw InvertNNError.invalidArgument(
                    operation: operation,
                    reason: "\(what) = \(factors.map(String.init).joined(separator: " × ")) exceeds the limit of \(maximumElements) elements")
            }
            total = p
        }
        return total
    }

    /// `features` checked to lie in `1...maximumElements`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` otherwise.
    static func features(_ features: Int, operation: String, label: String = "features") throws {
        guard features >= 1, features <= maximumElements else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "\(label) must be in 1...\(maximumElements), got \(features)")
        }
    }
}
