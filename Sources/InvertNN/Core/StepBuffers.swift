import Synchronization

/// The buffers of one training step (outputs, log-dets, gradients, temporaries of every layer),
/// owned by the container that runs the step and lent to its layers through
/// ``LayerContext/buffers``, so that a step allocates nothing once its first call has sized every
/// buffer.
///
/// ``Sequential`` owns one for its taped passes and their backward (``NormalizingFlow`` owns
/// another for its training step), and one it empties after each layer of an untaped pass or of
/// rebuilding mode, which so keep nothing per layer and stay flat in depth. A caller that runs
/// layers itself may create one and put it in the context it passes; layers called without one
/// allocate what they return.
///
/// A layer borrows a buffer under a key (itself and a slot number) for the length of a call and
/// hands it back before returning; the pool keeps one reference. A value already returned to a
/// caller therefore shares its storage with the pool, and the next call that borrows it writes
/// through Swift's copy on write: a caller that still holds a result makes that call allocate a
/// new buffer, and never sees its result change. Once the caller drops a step's results (a
/// training loop drops its tape), the storage is unshared and reused in place.
///
/// Borrowing is guarded by a mutex, so concurrent calls that share a pool stay correct (a caller
/// that finds a buffer lent out allocates its own).
public final class StepBuffers<T: Scalar>: Sendable {
    private let buffers = Mutex<[BufferKey: [T]]>([:])
    /// Lists of batches (a tape's activations, an MLP trace's layer inputs), kept for their
    /// array storage.
    private let lists = Mutex<[BufferKey: [Matrix<T>]]>([:])

    /// An empty pool; its buffers are sized by the first step that borrows them.
    public init() {}

    /// The number of buffers the pool holds, and their total entries (for tests and memory reports).
    public var footprint: (buffers: Int, entries: Int) {
        buffers.withLock { ($0.count, $0.values.reduce(0) { $0 + $1.count }) }
    }

    /// Drops every buffer and list (they are freed once no result references them). The pool
    /// keeps its table's capacity, so emptying it after every layer allocates nothing.
    public func removeAll() {
        buffers.withLock { $0.removeAll(keepingCapacity: true) }
        lists.withLock { $0.removeAll(keepingCapacity: true) }
    }

    /// The buffer kept under `key`, leaving the pool without it until ``giveBack(_:_:)``.
    @inline(__always)
    func borrow(_ key: BufferKey) -> [T] {
        buffers.withLock { buffers -> [T] in
            guard let index = buffers.index(forKey: key) else { return [] }
            var taken = [T]()
            swap(&taken, &buffers.values[index])
            return taken
        }
    }

    /// Keeps `buffer` under `key` for the next call (the caller may go on using its own copy).
    @inline(__always)
    func giveBack(_ key: BufferKey, _ buffer: [T]) {
        buffers.withLock { buffers in
            if let index = buffers.index(forKey: key) {
                buffers.values[index] = buffer
            } else {
                buffers[key] = buffer
            }
        }
    }
}

extension StepBuffers {
    /// The list kept under `key`, emptied, with room for `capacity` batches: its array storage
    /// is reused when nobody else holds the list (the previous tape or trace was dropped), and
    /// dropping its elements first unshares the buffers they referenced.
    func borrowList(_ key: BufferKey, capacity: Int) -> [Matrix<T>] {
        var list = lists.withLock { lists -> [Matrix<T>] in
            guard let index = lists.index(forKey: key) else { return [] }
            var taken = [Matrix<T>]()
            swap(&taken, &lists.values[index])
            return taken
        }
        list.removeAll(keepingCapacity: true)
        if list.capacity < capacity { list.reserveCapacity(capacity) }
        return list
    }

    /// Keeps `list` under `key` for the next ``borrowList(_:capacity:)``.
    func giveBackList(_ key: BufferKey, _ list: [Matrix<T>]) {
        lists.withLock { lists in
            if let index = lists.index(forKey: key) {
                lists.values[index] = list
            } else {
                lists[key] = list
            }
        }
    }
}

/// Which buffer of a ``StepBuffers`` pool: the object that borrows it (a layer, a conditioner, a
/// container) and one of its slot numbers.
struct BufferKey: Hashable, Sendable {
    /// The borrowing object.
    let owner: ObjectIdentifier
    /// The owner's slot, `0..<(its slot count)`.
    let slot: Int
}
