import ArgumentParser
import Foundation
import InvertNN
import InvertNNDistributed

/// `invertnn train` under `mpirun -np N`: the MPI group of the run, who writes, and how an
/// error on one rank ends all of them. Without mpirun there is no group and nothing changes.
struct DistributedRun: @unchecked Sendable {
    /// The ranks, or `nil` for a plain process.
    let group: MPIGroup?

    /// Joins the MPI job if this process was started by `mpirun`.
    ///
    /// - Throws: ``DistributedError`` if Open MPI cannot be loaded or initialized.
    static func start() throws -> DistributedRun {
        DistributedRun(group: try MPIGroup.launched())
    }

    /// This worker's place in a `--threads N` split of each batch (`nil` for one worker).
    private(set) var member: (any DataParallelGroup)? = nil
    /// The batch-splitting workers per rank (1 without `--threads N ≥ 2`).
    private(set) var workers = 1

    /// The number of ranks (1 without mpirun), for the JSON line.
    var ranks: Int { group?.size ?? 1 }
    /// Rank 0's first worker (or a plain process) prints progress and writes the checkpoint, PNG
    /// and JSON line.
    var isWriter: Bool { member.map { $0.rank == 0 } ?? ((group?.rank ?? 0) == 0) }
    /// What the trainer reduces over: the worker threads (which continue into the MPI ranks), the
    /// ranks, or nothing.
    var trainerGroup: (any DataParallelGroup)? { member ?? group }
    /// The threads of the run for the first stderr line.
    var threadsNote: String {
        workers > 1 ? "\(workers) worker threads (1 BLAS thread each)" : "\(BLAS.threads) BLAS thread(s)"
    }

    /// The run as worker `member` of `threads` sees it.
    func worker(_ member: any DataParallelGroup, threads: Int) -> DistributedRun {
        var copy = self
        copy.member = member
        copy.workers = threads
        return copy
    }

    /// The default OpenBLAS threads: `OPENBLAS_NUM_THREADS` when set, else the cores divided
    /// among the ranks on this machine, so that `mpirun -np 2` on 2 cores runs 1 thread per rank
    /// (0, all cores, for one process).
    var defaultThreads: Int {
        // A user's OPENBLAS_NUM_THREADS is the default when set (a positive integer).
        if let text = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"], let n = Int(text), n >= 1 { return n }
        guard let group else { return 0 }  // 0 = all cores
        return max(1, ProcessInfo.processInfo.activeProcessorCount / group.localSize)
    }

    /// Runs `body`; with more than one rank an error ends every rank: the failing rank prints
    /// `invertnn: error (rank r of n): <message>` and calls `MPI_Abort` with exit code 1, so the
    /// others do not wait for it in a reduction. After success the group is finalized.
    func run(_ body: () throws -> Void) throws {
        guard let group else { return try body() }
        do {
            try body()
        } catch {
            guard group.size > 1 else { throw error }
            let message = (error as? InvertNNError)?.description ?? InvertNNCommand.message(for: error)
            StandardError.line("invertnn: error (rank \(group.rank) of \(group.size)): \(InvertNNCommand.oneLine(message))")
            group.abort(code: InvertNNCommand.libraryErrorExitCode)
        }
        group.finish()
    }

    /// One stderr line on the time of the run (rank 0 only): the training time split into
    /// compute, waiting for slower ranks and the collectives (their count and largest size).
    func communicationNote(trainingSeconds: Double) -> String? {
        guard let group, group.size > 1 else { return nil }
        func part(_ seconds: Double) -> String {
            String(format: "%.2f s (%.1f%%)", seconds, trainingSeconds > 0 ? 100 * seconds / trainingSeconds : 0)
        }
        let compute = trainingSeconds - group.waitingSeconds - group.reductionSeconds
        return "\(group.size) ranks, rank 0 of \(String(format: "%.2f", trainingSeconds)) s training: compute \(part(compute)), "
            + "waiting for other ranks \(part(group.waitingSeconds)), \(group.reductions) collectives "
            + "(up to \(group.largestReductionBytes) bytes) \(part(group.reductionSeconds))"
    }
}

/// A value handed to the worker threads of `--threads N`: each worker only reads it.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
