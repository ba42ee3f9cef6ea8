import Foundation

/// Data parallelism over the threads of one process: `N` workers, each training its own replica
/// of the flow on its contiguous share of every batch (single-threaded BLAS each), with the
/// gradients summed in a fixed order. Each worker runs a ``Trainer`` whose ``Trainer/group`` is
/// its ``member(_:)``, exactly as an MPI rank does, so everything the trainer reduces over ranks
/// (gradients, losses, guard verdicts, evaluation NLLs) works unchanged.
///
/// Determinism: entry `i` of a sum is `v₀[i] + v₁[i] + … + v_{N-1}[i]` in rank order whatever
/// the timing, so a run is bit-identical from run to run for a given `N`; it differs from one
/// thread only by the rounding of the split sums. With an `outer` group (MPI ranks), each
/// process first sums its threads, then rank-0's thread sums the processes through `outer`.
///
/// A worker that fails breaks the group: the others' next sum throws
/// ``ThreadGroupError/anotherWorkerFailed`` instead of waiting forever, and ``run(threads:outer:_:)``
/// rethrows the first worker's own error.
public final class ThreadGroup: @unchecked Sendable {
    /// The workers in this process, at least 1.
    public let threads: Int
    /// The process-level group the thread sums continue into, if any.
    public let outer: (any DataParallelGroup)?

    private let barrier: Barrier
    private var slots: [UnsafeMutableRawPointer?]
    private var counts: [Int]
    private var result = UnsafeMutableRawPointer.allocate(byteCount: 0, alignment: 64)
    private var resultBytes = 0

    /// A group of `threads` workers (1...1024).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for another count.
    public init(threads: Int, outer: (any DataParallelGroup)? = nil) throws {
        guard (1...1024).contains(threads) else {
            throw InvertNNError.invalidArgument(operation: "ThreadGroup", reason: "threads must be in 1...1024, got \(threads)")
        }
        self.threads = threads
        self.outer = outer
        barrier = Barrier(parties: threads)
        slots = Array(repeating: nil, count: threads)
        counts = Array(repeating: 0, count: threads)
    }

    deinit { result.deallocate() }

    /// The view of worker `rank` (`0..<threads`) as a ``DataParallelGroup``.
    public func member(_ rank: Int) -> any DataParallelGroup {
        precondition((0..<threads).contains(rank), "ThreadGroup.member: rank \(rank) outside 0..<\(threads)")
        return Member(group: self, local: rank)
    }

    /// Runs `body` on `threads` workers, worker 0 on the calling thread, the others on new
    /// threads, and returns when all have finished.
    ///
    /// - Throws: the first error a worker threw itself (not the ``ThreadGroupError`` of the
    ///   workers it stopped).
    public func run(_ body: @escaping @Sendable (_ member: any DataParallelGroup) throws -> Void) throws {
        let errors = ErrorSlots(count: threads)
        let done = DispatchGroup()
        for rank in 1..<max(threads, 1) {
            done.enter()
            let thread = Thread { [self] in
                do { try body(member(rank)) } catch { errors.set(rank, error); barrier.breakBarrier() }
                done.leave()
            }
            // Layers recurse a little (Sequential in Sequential); the default 512 KiB is enough,
            // 8 MiB is the main thread's size.
            thread.stackSize = 8 << 20
            thread.start()
        }
        do { try body(member(0)) } catch { errors.set(0, error); barrier.breakBarrier() }
        done.wait()
        if let error = errors.first { throw error }
    }

    /// Runs `body` on `threads` new workers over a fresh group (see ``run(_:)``).
    public static func run(
        threads: Int, outer: (any DataParallelGroup)? = nil,
        _ body: @escaping @Sendable (_ member: any DataParallelGroup) throws -> Void
    ) throws {
        try ThreadGroup(threads: threads, outer: outer).run(body)
    }

    /// The three-phase sum of `values` (`count` entries of `T`) by worker `local`: publish,
    /// each worker sums its share of the entries over all workers, then everyone copies.
    fileprivate func sum<T: BinaryFloatingPoint>(_ values: UnsafeMutableBufferPointer<T>, local: Int) throws {
        let count = values.count
        try publish(values, local: local)
        let out = sumShare(of: T.self, count: count, local: local)
        try barrier.wait()
        if let outer {
            if local == 0 {
                do {
                    if T.self == Double.self {
                        try outer.sum(UnsafeMutableBufferPointer(start: result.assumingMemoryBound(to: Double.self), count: count))
                    } else if T.self == Float.self {
                        try outer.sum(UnsafeMutableBufferPointer(start: result.assumingMemoryBound(to: Float.self), count: count))
                    }
                } catch {
                    barrier.breakBarrier()
                    throw error
                }
            }
            try barrier.wait()
        }
        if count > 0 { values.baseAddress!.update(from: out, count: count) }
        // Nobody may publish the next sum's buffers before everyone has copied this one.
        try barrier.wait()
    }

    /// The first two phases of ``sum(_:local:)``, and each worker copies only its own share.
    fileprivate func reduceScatter<T: BinaryFloatingPoint>(_ values: UnsafeMutableBufferPointer<T>, local: Int) throws {
        guard outer == nil else { return try sum(values, local: local) }
        try publish(values, local: local)
        let mine = share(of: values.count, local)
        if threads == 2 {
            // v₀ + v₁ straight into this worker's share: the other worker reads this buffer only
            // in its own share, and each entry is read before it is written.
            if !mine.isEmpty {
                let first = slots[0]!.assumingMemoryBound(to: T.self), second = slots[1]!.assumingMemoryBound(to: T.self)
                let target = values.baseAddress!
                for i in mine { target[i] = first[i] + second[i] }
            }
        } else {
            let out = sumShare(of: T.self, count: values.count, local: local)
            if !mine.isEmpty { (values.baseAddress! + mine.lowerBound).update(from: out + mine.lowerBound, count: mine.count) }
        }
        // The others read this worker's buffer until they have summed their shares.
        try barrier.wait()
    }

    /// Each worker copies every other worker's share of their published buffers into its own.
    fileprivate func allGather<T: BinaryFloatingPoint>(_ values: UnsafeMutableBufferPointer<T>, local: Int) throws {
        try publish(values, local: local)
        for k in 0..<threads where k != local {
            let theirs = share(of: values.count, k)
            guard !theirs.isEmpty else { continue }
            let source = slots[k]!.assumingMemoryBound(to: T.self)
            (values.baseAddress! + theirs.lowerBound).update(from: source + theirs.lowerBound, count: theirs.count)
        }
        try barrier.wait()
    }

    /// Worker `local`'s entries of a buffer of `count` (as ``DataParallelGroup/share(of:)``).
    private func share(of count: Int, _ local: Int) -> Range<Int> {
        (count * local / threads)..<(count * (local + 1) / threads)
    }

    /// Publishes worker `local`'s buffer (worker 0 also sizes the shared result) and waits for
    /// all; throws if the workers passed different counts.
    private func publish<T: BinaryFloatingPoint>(_ values: UnsafeMutableBufferPointer<T>, local: Int) throws {
        let count = values.count
        if local == 0 {
            let bytes = count * MemoryLayout<T>.stride
            if bytes > resultBytes {
                result.deallocate()
                result = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
                resultBytes = bytes
            }
        }
        slots[local] = values.baseAddress.map(UnsafeMutableRawPointer.init)
        counts[local] = count
        try barrier.wait()
        guard counts.allSatisfy({ $0 == count }) else {
            throw InvertNNError.invalidArgument(
                operation: "ThreadGroup.sum", reason: "the workers summed different counts \(counts) (every worker must call the same sums)")
        }
    }

    /// Sums worker `local`'s share of the published buffers into the shared result, in rank
    /// order, and returns the result's base.
    private func sumShare<T: BinaryFloatingPoint>(of type: T.Type, count: Int, local: Int) -> UnsafeMutablePointer<T> {
        let mine = share(of: count, local)
        let out = result.assumingMemoryBound(to: T.self)
        if !mine.isEmpty {
            let first = slots[0]!.assumingMemoryBound(to: T.self)
            for i in mine { out[i] = first[i] }
            for k in 1..<threads {
                let v = slots[k]!.assumingMemoryBound(to: T.self)
                for i in mine { out[i] += v[i] }
            }
        }
        return out
    }

    /// One worker's view: its rank is its place among all workers of all processes.
    private final class Member: DataParallelGroup {
        let group: ThreadGroup
        let local: Int
        init(group: ThreadGroup, local: Int) { self.group = group; self.local = local }
        var rank: Int { (group.outer?.rank ?? 0) * group.threads + local }
        var size: Int { (group.outer?.size ?? 1) * group.threads }
        func sum(_ values: UnsafeMutableBufferPointer<Double>) throws { try group.sum(values, local: local) }
        func sum(_ values: UnsafeMutableBufferPointer<Float>) throws { try group.sum(values, local: local) }
        func reduceScatter(_ values: UnsafeMutableBufferPointer<Double>) throws { try group.reduceScatter(values, local: local) }
        func reduceScatter(_ values: UnsafeMutableBufferPointer<Float>) throws { try group.reduceScatter(values, local: local) }
        func allGather(_ values: UnsafeMutableBufferPointer<Double>) throws { try gather(values) }
        func allGather(_ values: UnsafeMutableBufferPointer<Float>) throws { try gather(values) }

        /// Across processes too, the shards are those of the global ranks: zero the others and sum.
        private func gather<T: BinaryFloatingPoint>(_ values: UnsafeMutableBufferPointer<T>) throws {
            guard group.outer != nil else { return try group.allGather(values, local: local) }
            let mine = share(of: values.count)
            for i in values.indices where !mine.contains(i) { values[i] = 0 }
            try group.sum(values, local: local)
        }
    }
}

/// Why a ``ThreadGroup`` sum did not complete.
public enum ThreadGroupError: Error, CustomStringConvertible, Equatable {
    /// Another worker failed (its own error is the one ``ThreadGroup/run(_:)`` reports).
    case anotherWorkerFailed

    public var description: String { "another worker thread of the run failed" }
}

extension ThreadGroupError: LocalizedError {
    /// ``description``, so that `localizedDescription` gives the message.
    public var errorDescription: String? { description }
}

/// A reusable barrier for `parties` threads that can be broken, releasing every waiter with
/// ``ThreadGroupError/anotherWorkerFailed``.
private final class Barrier: @unchecked Sendable {
    private let condition = NSCondition()
    private let parties: Int
    private var arrived = 0
    private var generation = 0
    private var broken = false

    init(parties: Int) { self.parties = parties }

    func wait() throws {
        condition.lock()
        defer { condition.unlock() }
        guard !broken else { throw ThreadGroupError.anotherWorkerFailed }
        let current = generation
        arrived += 1
        if arrived == parties {
            arrived = 0
            generation += 1
            condition.broadcast()
            return
        }
        while generation == current && !broken { condition.wait() }
        if generation == current { throw ThreadGroupError.anotherWorkerFailed }
    }

    func breakBarrier() {
        condition.lock()
        broken = true
        condition.broadcast()
        condition.unlock()
    }
}

/// The workers' errors, by rank; the first that is a worker's own.
private final class ErrorSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [(any Error)?]

    init(count: Int) { errors = Array(repeating: nil, count: count) }

    func set(_ rank: Int, _ error: any Error) { lock.withLock { errors[rank] = error } }

    var first: (any Error)? {
        lock.withLock {
            let all = errors.compactMap { $0 }
            return all.first { !($0 is ThreadGroupError) } ?? all.first
        }
    }
}
