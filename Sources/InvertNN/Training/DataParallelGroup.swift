/// The processes (ranks) of a data-parallel training run, as the ``Trainer`` needs them: an
/// elementwise sum over all ranks. The library has no MPI dependency; `InvertNNDistributed`
/// implements this protocol over `MPI_Allreduce`, and tests can implement it in memory.
///
/// Data parallelism (synchronous SGD, e.g. Goyal et al. 2017, "Accurate, Large Minibatch SGD"):
/// every rank holds the whole training set and the same parameters, draws the same shuffle and
/// dequantization noise for each global batch of `B` rows, and computes the gradient of its
/// contiguous share `b_r` of the rows (``share(of:)``). The loss is the mean over the global batch,
/// `L = (1/B) Σ_i ℓ_i = Σ_r (b_r/B) · L_r` with `L_r` the mean over rank `r`'s rows, so each rank
/// weights its gradient by `b_r/B` before the sum; every rank then takes the same optimizer step.
///
/// Contract for implementations:
/// - ``sum(_:)-(UnsafeMutableBufferPointer<Double>)`` must give bit-identical results on every rank
///   (the parameters must not drift apart), which a deterministic allreduce such as MPI's does.
/// - Every rank must call the same sums in the same order. A rank that throws from the trainer
///   leaves the others waiting in their next sum: the caller must end the whole group on any
///   error (`MPI_Abort`), as the `invertnn` command does.
public protocol DataParallelGroup: AnyObject {
    /// This process's index, `0..<size`; rank 0 writes the outputs.
    var rank: Int { get }
    /// The number of ranks, at least 1.
    var size: Int { get }
    /// Replaces `values` by their elementwise sum over all ranks (same count on every rank).
    ///
    /// - Throws: an error of the transport (the group is then unusable).
    func sum(_ values: UnsafeMutableBufferPointer<Double>) throws
    /// As ``sum(_:)-(UnsafeMutableBufferPointer<Double>)``, in Float.
    func sum(_ values: UnsafeMutableBufferPointer<Float>) throws
    /// Replaces this rank's shard of `values`, the entries ``share(of:)`` of `values.count`, by
    /// their sum over all ranks; the other entries are left unspecified. Same contract as
    /// ``sum(_:)-(UnsafeMutableBufferPointer<Double>)``: bit-identical for a given rank count.
    ///
    /// A reduce-scatter (half an allreduce's traffic): with ``allGather(_:)-(UnsafeMutableBufferPointer<Double>)``
    /// it lets each rank update only its shard of the parameters. The default implementation
    /// sums the whole buffer.
    ///
    /// - Throws: an error of the transport (the group is then unusable).
    func reduceScatter(_ values: UnsafeMutableBufferPointer<Double>) throws
    /// As ``reduceScatter(_:)-(UnsafeMutableBufferPointer<Double>)``, in Float.
    func reduceScatter(_ values: UnsafeMutableBufferPointer<Float>) throws
    /// Fills every rank's shard of `values` (``share(of:)`` of `values.count` on that rank) with
    /// that rank's entries, so that all ranks end with the same buffer; this rank's shard is
    /// unchanged. The default implementation sums the buffer with the other shards zeroed.
    ///
    /// - Throws: an error of the transport (the group is then unusable).
    func allGather(_ values: UnsafeMutableBufferPointer<Double>) throws
    /// As ``allGather(_:)-(UnsafeMutableBufferPointer<Double>)``, in Float.
    func allGather(_ values: UnsafeMutableBufferPointer<Float>) throws
}

extension DataParallelGroup {
    public func reduceScatter(_ values: UnsafeMutableBufferPointer<Double>) throws { try sum(values) }
    public func reduceScatter(_ values: UnsafeMutableBufferPointer<Float>) throws { try sum(values) }
    public func allGather(_ values: UnsafeMutableBufferPointer<Double>) throws { try gatherBySum(values) }
    public func allGather(_ values: UnsafeMutableBufferPointer<Float>) throws { try gatherBySum(values) }

    /// An all-gather as a sum: every entry outside this rank's shard is zeroed first (`x + 0`
    /// is exact, so the result holds each owner's bits, up to the sign of zeros).
    private func gatherBySum<T: BinaryFloatingPoint>(_ values: UnsafeMutableBufferPointer<T>) throws {
        let mine = share(of: values.count)
        for i in values.indices where !mine.contains(i) { values[i] = 0 }
        if T.self == Double.self {
            try values.withMemoryRebound(to: Double.self) { try sum($0) }
        } else if T.self == Float.self {
            try values.withMemoryRebound(to: Float.self) { try sum($0) }
        }
    }

    /// The contiguous rows of `count` rows (a global batch or an evaluation chunk) that this rank
    /// computes: rank `r` gets `[⌊count·r/size⌋, ⌊count·(r+1)/size⌋)`, so the shares differ by at
    /// most one row and cover every row once. Empty when `count < size` for some ranks.
    public func share(of count: Int) -> Range<Int> {
        // count · (rank + 1) stays far below Int.max for any dataset that fits in memory.
        (count * rank / size)..<(count * (rank + 1) / size)
    }

    /// Sums `values` over all ranks in place (dispatches on the precision).
    func sum<T: Scalar>(_ values: inout [T]) throws {
        try values.withUnsafeMutableBufferPointer { try collective(.sum, $0) }
    }

    /// Runs `operation` on `values` in their precision.
    func collective<T: Scalar>(_ operation: DataParallelCollective, _ values: UnsafeMutableBufferPointer<T>) throws {
        func run(_ double: (UnsafeMutableBufferPointer<Double>) throws -> Void,
                    _ float: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
            if T.self == Double.self {
                try values.withMemoryRebound(to: Double.self) { try double($0) }
            } else if T.self == Float.self {
                try values.withMemoryRebound(to: Float.self) { try float($0) }
            } else {
                // Scalar has only the two conformances; a third would need its own transport type.
                throw InvertNNError.invalidArgument(
                    operation: "DataParallelGroup", reason: "no reduction for \(T.self); use Float or Double")
            }
        }
        switch operation {
        case .sum: try run({ try sum($0) }, { try sum($0) })
        case .reduceScatter: try run({ try reduceScatter($0) }, { try reduceScatter($0) })
        case .allGather: try run({ try allGather($0) }, { try allGather($0) })
        }
    }

    /// Throws unless every rank passes the same `fingerprint` (a 32-bit hash, exact in Double):
    /// the sum over ranks equals `size · fingerprint` on every rank only if all are equal.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` naming `what` on the ranks
    ///   that see a difference.
    func requireAgreement(on fingerprint: UInt32, _ what: String) throws {
        var values = [Double(fingerprint), 1]
        try sum(&values)
        guard values[0] == Double(size) * Double(fingerprint), values[1] == Double(size) else {
            throw InvertNNError.invalidArgument(
                operation: "data-parallel training (rank \(rank) of \(size))",
                reason: "the ranks disagree on \(what); every rank must start the same run on the same data")
        }
    }
}

/// The collectives of a data-parallel step (see ``DataParallelGroup``).
enum DataParallelCollective { case sum, reduceScatter, allGather }
