import Foundation
import InvertNN

/// The ranks of `MPI_COMM_WORLD` as a ``InvertNN/DataParallelGroup``: sums are `MPI_Allreduce`
/// with `MPI_SUM` in place. Open MPI's allreduce is deterministic for a given rank count and
/// message size, and gives every rank the same bits, so the ranks' parameters never drift apart.
///
/// One group per process: ``launched()`` initializes MPI (`MPI_Init_thread`, funneled), and
/// ``finish()`` or ``abort(code:)`` ends it. Each sum first waits at a barrier for the slowest
/// rank, so that the time of a step splits into compute, ``waitingSeconds`` (load imbalance: a
/// rank that finished its share early) and ``reductionSeconds`` (the allreduce itself); both are
/// wall clock (`MPI_Wtime`). The barrier costs one latency per step.
public final class MPIGroup: DataParallelGroup {
    public let rank: Int
    public let size: Int
    /// Ranks of this group on this machine (`OMPI_COMM_WORLD_LOCAL_SIZE`), which share its cores.
    public let localSize: Int
    /// Wall-clock seconds spent in `MPI_Allreduce` so far (after the barrier).
    public private(set) var reductionSeconds = 0.0
    /// Wall-clock seconds spent at the barrier before each allreduce, waiting for slower ranks.
    public private(set) var waitingSeconds = 0.0
    /// The number of sums so far, and the bytes this rank contributed to them.
    public private(set) var reductions = 0, reducedBytes = 0
    /// The largest sum so far in bytes (a training step's gradient, loss and failure flag).
    public private(set) var largestReductionBytes = 0
    private let mpi: OpenMPILibrary

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

    private static func check(_ code: Int32, _ function: String) throws {
        guard code == 0 else { throw DistributedError.call(function: function, code: code) }  // MPI_SUCCESS
    }

    public func sum(_ values: UnsafeMutableBufferPointer<Double>) throws {
        try reduce(UnsafeMutableRawBufferPointer(values), count: values.count, type: mpi.double)
    }

    public func sum(_ values: UnsafeMutableBufferPointer<Float>) throws {
        try reduce(UnsafeMutableRawBufferPointer(values), count: values.count, type: mpi.float)
    }

    /// `MPI_Allreduce(MPI_IN_PLACE, …, MPI_SUM, MPI_COMM_WORLD)` in pieces of at most 2^30
    /// elements (the count is a C int).
    private func reduce(_ bytes: UnsafeMutableRawBufferPointer, count: Int, type: UnsafeMutableRawPointer) throws {
        guard count > 0, let base = bytes.baseAddress else { return }
        let arrival = mpi.wtime()
        try Self.check(mpi.barrier(mpi.commWorld), "MPI_Barrier")
        let start = mpi.wtime()
        waitingSeconds += start - arrival
        defer {
            reductionSeconds += mpi.wtime() - start
            reductions += 1
            reducedBytes += bytes.count
            largestReductionBytes = max(largestReductionBytes, bytes.count)
        }
        let stride = bytes.count / count
        let piece = 1 << 30
        var offset = 0
        while offset < count {
            let n = min(piece, count - offset)
            try Self.check(mpi.allreduce(OpenMPILibrary.inPlace, base + offset * stride, Int32(n), type, mpi.sum, mpi.commWorld), "MPI_Allreduce")
            offset += n
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
