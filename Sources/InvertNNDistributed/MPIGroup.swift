import Foundation
import InvertNN

/// The ranks of `MPI_COMM_WORLD` as a ``InvertNN/DataParallelGroup``: sums are `MPI_Allreduce`
/// with `MPI_SUM` in place, reduce-scatters `MPI_Reduce_scatter`, all-gathers `MPI_Allgatherv`.
/// Open MPI's reductions are deterministic for a given rank count and message size, and an
/// allreduce gives every rank the same bits, so the ranks' parameters never drift apart (after
/// a reduce-scatter each shard has one owner, whose update the all-gather copies to the others).
///
/// One group per process: ``launched()`` initializes MPI (`MPI_Init_thread`, funneled), and
/// ``finish()`` or ``abort(code:)`` ends it. Each sum first waits at a barrier for the slowest
/// rank, so that the time of a step splits into compute, ``waitingSeconds`` (load imbalance: a
/// rank that finished its share early) and ``reductionSeconds`` (the collective itself); both are
/// wall clock (`MPI_Wtime`). The barrier costs one latency per step.
public final class MPIGroup: DataParallelGroup {
    public let rank: Int
    public let size: Int
    /// Ranks of this group on this machine (`OMPI_COMM_WORLD_LOCAL_SIZE`), which share its cores.
    public let localSize: Int
    /// Wall-clock seconds spent in the collectives so far (after their barriers).
    public private(set) var reductionSeconds = 0.0
    /// Wall-clock seconds spent at the barrier before each collective, waiting for slower ranks.
    public private(set) var waitingSeconds = 0.0
    /// The number of collectives so far, and the bytes of the buffers this rank passed to them.
    public private(set) var reductions = 0, reducedBytes = 0
    /// The largest collective so far in bytes (a training step's gradient).
    public private(set) var largestReductionBytes = 0
    private let mpi: OpenMPILibrary
    /// This rank's shard of a reduce-scatter, reused.
    private var scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 64)

    /// The group of this process if it was started by Open MPI's `mpirun` (the environment has
    /// `OMPI_COMM_WORLD_SIZE`), `nil` otherwise: a plain process trains alone and never loads MPI.
    ///
    /// - Throws: ``DistributedError`` if Open MPI cannot be loaded or initialized.
    public static func launched(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> MPIGroup? {
        guard environment["OMPI_COMM_WORLD_SIZE"] != nil else { return nil }
        return try MPIGroup(localSize: environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 1)
    }

    private init(localSize: Int) throws {
        mpi = try OpenMPILibrary()
        var provided: Int32 = 0
        try Self.check(mpi.initThread(nil, nil, OpenMPILibrary.threadFunneled, &provided), "MPI_Init_thread")
        var r: Int32 = 0, s: Int32 = 0
        try Self.check(mpi.commRank(mpi.commWorld, &r), "MPI_Comm_rank")
        try Self.check(mpi.commSize(mpi.commWorld, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        self.localSize = max(1, localSize)
    }

    deinit { scratch.deallocate() }

    private static func check(_ code: Int32, _ function: String) throws {
        guard code == 0 else { throw DistributedError.call(function: function, code: code) }  // MPI_SUCCESS
    }

    public func sum(_ values: UnsafeMutableBufferPointer<Double>) throws {
        try reduce(UnsafeMutableRawBufferPointer(values), count: values.count, type: mpi.double)
    }

    public func sum(_ values: UnsafeMutableBufferPointer<Float>) throws {
        try reduce(UnsafeMutableRawBufferPointer(values), count: values.count, type: mpi.float)
    }

    public func reduceScatter(_ values: UnsafeMutableBufferPointer<Double>) throws {
        try scatter(UnsafeMutableRawBufferPointer(values), count: values.count, type: mpi.double)
    }

    public func reduceScatter(_ values: UnsafeMutableBufferPointer<Float>) throws {
        try scatter(UnsafeMutableRawBufferPointer(values), count: values.count, type: mpi.float)
    }

    public func allGather(_ values: UnsafeMutableBufferPointer<Double>) throws {
        try gather(UnsafeMutableRawBufferPointer(values), count: values.count, type: mpi.double)
    }

    public func allGather(_ values: UnsafeMutableBufferPointer<Float>) throws {
        try gather(UnsafeMutableRawBufferPointer(values), count: values.count, type: mpi.float)
    }

    /// The shard counts and offsets of a buffer of `count` entries, as C ints, or `nil` when
    /// `count` does not fit one (such a buffer goes through the piecewise allreduce).
    private func shards(of count: Int) -> (counts: [Int32], offsets: [Int32])? {
        guard count <= Int(Int32.max) else { return nil }
        let bounds = (0...size).map { Int32(count * $0 / size) }
        return (zip(bounds.dropFirst(), bounds).map { $0 - $1 }, Array(bounds.dropLast()))
    }

    /// `MPI_Reduce_scatter` of the whole buffer into a scratch buffer of this rank's shard,
    /// copied into place (in place, MPI would leave the shard at the buffer's start).
    private func scatter(_ bytes: UnsafeMutableRawBufferPointer, count: Int, type: UnsafeMutableRawPointer) throws {
        guard count > 0, let base = bytes.baseAddress else { return }
        guard let (counts, offsets) = shards(of: count) else { return try reduce(bytes, count: count, type: type) }
        let stride = bytes.count / count
        let mine = Int(counts[rank]) * stride
        if scratch.count < mine {
            scratch.deallocate()
            scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: mine, alignment: 64)
        }
        try timed(bytes.count) {
            try counts.withUnsafeBufferPointer { c in
                try Self.check(mpi.reduceScatter(base, scratch.baseAddress, c.baseAddress!, type, mpi.sum, mpi.commWorld), "MPI_Reduce_scatter")
            }
        }
        if mine > 0 { (base + Int(offsets[rank]) * stride).copyMemory(from: scratch.baseAddress!, byteCount: mine) }
    }

    /// `MPI_Allgatherv` in place: every rank's shard sits at its offset.
    private func gather(_ bytes: UnsafeMutableRawBufferPointer, count: Int, type: UnsafeMutableRawPointer) throws {
        guard count > 0, let base = bytes.baseAddress else { return }
        guard let (counts, offsets) = shards(of: count) else {
            let stride = bytes.count / count
            let mine = share(of: count)
            for i in 0..<count where !mine.contains(i) { memset(base + i * stride, 0, stride) }
            return try reduce(bytes, count: count, type: type)
        }
        try timed(bytes.count) {
            try counts.withUnsafeBufferPointer { c in
                try offsets.withUnsafeBufferPointer { o in
                    try Self.check(
                        mpi.allgatherv(OpenMPILibrary.inPlace, 0, type, base, c.baseAddress!, o.baseAddress!, type, mpi.commWorld),
                        "MPI_Allgatherv")
                }
            }
        }
    }

    /// Runs a collective after a barrier, adding the wait and its own time to the counters.
    private func timed(_ byteCount: Int, _ body: () throws -> Void) throws {
        let arrival = mpi.wtime()
        try Self.check(mpi.barrier(mpi.commWorld), "MPI_Barrier")
        let start = mpi.wtime()
        waitingSeconds += start - arrival
        defer {
            reductionSeconds += mpi.wtime() - start
            reductions += 1
            reducedBytes += byteCount
            largestReductionBytes = max(largestReductionBytes, byteCount)
        }
        try body()
    }

    /// `MPI_Allreduce(MPI_IN_PLACE, …, MPI_SUM, MPI_COMM_WORLD)` in pieces of at most 2^30
    /// elements (the count is a C int).
    private func reduce(_ bytes: UnsafeMutableRawBufferPointer, count: Int, type: UnsafeMutableRawPointer) throws {
        guard count > 0, let base = bytes.baseAddress else { return }
        try timed(bytes.count) {
            let stride = bytes.count / count
            let piece = 1 << 30
            var offset = 0
            while offset < count {
                let n = min(piece, count - offset)
                try Self.check(mpi.allreduce(OpenMPILibrary.inPlace, base + offset * stride, Int32(n), type, mpi.sum, mpi.commWorld), "MPI_Allreduce")
                offset += n
            }
        }
    }

    /// Ends every rank of the group with exit code `code` (`MPI_Abort`): the way out of an
    /// error on one rank while the others wait in a reduction.
    public func abort(code: Int32) -> Never {
        _ = mpi.abort(mpi.commWorld, code)
        exit(code)  // MPI_Abort does not return; this satisfies the compiler.
    }

    /// `MPI_Finalize`, after the last reduction on every rank.
    public func finish() {
        _ = mpi.finalize()
    }
}
