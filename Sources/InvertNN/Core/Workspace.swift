import Synchronization

/// Reusable storage for a layer's per-call buffers (outputs, log-dets, temporaries), so that a
/// training step allocates nothing once its first call has sized every buffer.
///
/// A buffer is handed out by ``take(_:count:)`` and handed back by ``keep(_:_:)``. Handing back an
/// output that is also returned to the caller is safe: the next ``take(_:count:)`` reuses the
/// storage only when nobody else still holds it (the caller dropped the result, as a training step
/// drops its tape), and otherwise allocates a new buffer, so values already returned never change
/// (value semantics are kept). Buffers come back with unspecified contents: callers overwrite
/// every entry, as with ``Matrix/init(uninitializedRows:columns:)``.
///
/// Slots are guarded by a mutex: concurrent calls on one layer stay correct (a caller that finds
/// a slot taken allocates its own buffer).
final class Workspace<T: Scalar>: Sendable {
    private let slots: Mutex<[[T]]>

    /// A workspace with `count` empty slots (numbered `0..<count`).
    init(slots count: Int) {
        slots = Mutex([[T]](repeating: [], count: count))
    }

    /// The slot's buffer, leaving the slot empty (a concurrent caller then allocates its own).
    @inline(__always)
    private func remove(_ slot: Int) -> [T] {
        slots.withLock { slots -> [T] in
            var taken = [T]()
            swap(&taken, &slots[slot])
            return taken
        }
    }

    /// A buffer of `count` entries with unspecified contents: the slot's storage when its size
    /// matches and no one else references it, else a new allocation.
    @inline(__always)
    func take(_ slot: Int, count: Int) -> [T] {
        var buffer = remove(slot)
        if buffer.count == count && buffer.hasUniqueStorage() { return buffer }
        buffer = []
        return [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    /// Runs `body` on `count` entries of `slot`'s buffer with unspecified contents, and keeps the
    /// buffer for the next call (a transformer's per-call temporaries). Unlike ``take(_:count:)``
    /// a larger buffer is reused, so calls of different sizes on one slot (a forward and its
    /// backward) do not reallocate each other's buffer.
    @inline(__always)
    func withScratch<R>(_ slot: Int, count: Int, _ body: (UnsafeMutableBufferPointer<T>) -> R) -> R {
        var buffer = remove(slot)
        if !(buffer.count >= count && buffer.hasUniqueStorage()) {
            buffer = []
            buffer = [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        }
        defer { keep(slot, buffer) }
        return buffer.withUnsafeMutableBufferPointer { body(UnsafeMutableBufferPointer(rebasing: $0[0..<count])) }
    }

    /// A `[rows, columns]` matrix with unspecified contents, from ``take(_:count:)``.
    @inline(__always)
    func matrix(_ slot: Int, rows: Int, columns: Int) -> Matrix<T> {
        Matrix(uncheckedRows: rows, columns: columns, storage: take(slot, count: rows * columns))
    }

    /// A copy of `source` in the slot's storage (one `memcpy`).
    @inline(__always)
    func copy(_ slot: Int, of source: Matrix<T>) -> Matrix<T> {
        var out = matrix(slot, rows: source.rows, columns: source.columns)
        source.storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                guard let from = src.baseAddress, let to = dst.baseAddress else { return }
                to.update(from: from, count: src.count)
            }
        }
        return out
    }

    /// `source - 1bᵀ` (each row minus the bias) in `slot`'s storage, kept for the next call;
    /// `source` itself without bias (`[1, source.columns]`, as its parameter's shape is fixed).
    func centered(_ slot: Int, _ source: Matrix<T>, bias: Parameter<T>?) -> Matrix<T> {
        guard let bias else { return source }
        var out = copy(slot, of: source)
        out.addToEveryRow(bias.value.storage, scaledBy: -1)
        keep(slot, out)
        return out
    }

    /// A buffer of `count` entries all equal to `value`.
    @inline(__always)
    func filled(_ slot: Int, count: Int, with value: T) -> [T] {
        var buffer = take(slot, count: count)
        buffer.withUnsafeMutableBufferPointer { $0.update(repeating: value) }
        return buffer
    }

    /// Empties every slot (the buffers are freed once no result references them).
    func releaseAll() {
        slots.withLock { slots in
            for i in slots.indices { slots[i] = [] }
        }
    }

    /// Hands `buffer` back to `slot` for the next call (the caller may keep using its own copy).
    @inline(__always)
    func keep(_ slot: Int, _ buffer: [T]) {
        slots.withLock { $0[slot] = buffer }
    }

    /// Hands a matrix's storage back to `slot`.
    @inline(__always)
    func keep(_ slot: Int, _ matrix: Matrix<T>) {
        keep(slot, matrix.storage)
    }
}

extension Array where Element: Scalar {
    /// Makes the array `count` entries long with unspecified contents, keeping its storage when it
    /// already has that size and nothing else shares it (values rebuilt every training step, such
    /// as a Householder plan's unit vectors and block factors). Callers overwrite every entry.
    @inline(__always)
    mutating func prepareForOverwrite(count: Int) {
        if !(self.count == count && hasUniqueStorage()) {
            self = [Element](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        }
    }
}

extension Matrix {
    /// A `[rows, columns]` matrix with unspecified contents: `recycled`'s storage (moved out of
    /// it) when it has that shape and nothing else shares it, else a new one.
    static func recycling(_ recycled: inout Matrix?, rows: Int, columns: Int) -> Matrix {
        var taken: Matrix? = nil
        swap(&taken, &recycled)
        guard var matrix = taken, matrix.rows == rows, matrix.columns == columns else {
            return Matrix(uninitializedRows: rows, columns: columns)
        }
        taken = nil  // `matrix` is now the only reference the caller's storage may have
        return matrix.storage.hasUniqueStorage() ? matrix : Matrix(uninitializedRows: rows, columns: columns)
    }
}

extension Array {
    /// Whether this array's heap storage is referenced by this variable alone, so writing to it
    /// will not copy. Arrays without capacity (the shared empty storage) and layouts other than
    /// the single storage reference of the native (Linux) `Array` answer `false`, which only
    /// costs a fresh allocation.
    @inline(__always)
    mutating func hasUniqueStorage() -> Bool {
        guard capacity > 0, MemoryLayout<[Element]>.size == MemoryLayout<AnyObject>.size else { return false }
        return withUnsafeMutablePointer(to: &self) { pointer in
            pointer.withMemoryRebound(to: AnyObject.self, capacity: 1) { isKnownUniquelyReferenced(&$0.pointee) }
        }
    }
}

/// A list (a tape's activations, a trace's layer inputs) whose array storage is reused from
/// call to call once the previous list was dropped, as ``Workspace`` does for scalar buffers.
final class ReusableList<Element: Sendable>: Sendable {
    private let storage = Mutex<[Element]>([])

    /// An empty list with room for `capacity` elements: the previous list's storage when nobody
    /// else holds it, else a new array.
    func take(reservingCapacity capacity: Int) -> [Element] {
        var list = storage.withLock { stored -> [Element] in
            var taken = [Element]()
            swap(&taken, &stored)
            return taken
        }
        if list.hasUniqueStorage() {
            list.removeAll(keepingCapacity: true)
        } else {
            list = []
            list.reserveCapacity(capacity)
        }
        return list
    }

    /// Keeps `list` for the next ``take(reservingCapacity:)`` (the caller may go on using it).
    func keep(_ list: [Element]) {
        storage.withLock { $0 = list }
    }

    /// Drops the kept list.
    func release() {
        storage.withLock { $0 = [] }
    }

    /// Drops the kept list's elements once nobody else holds the list, so the buffers they
    /// reference become unshared before the next call needs them.
    func releaseElements() {
        storage.withLock { list in
            if list.hasUniqueStorage() { list.removeAll(keepingCapacity: true) }
        }
    }
}
