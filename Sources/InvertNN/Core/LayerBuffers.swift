/// The part of a container's ``StepBuffers`` one object (a layer, a conditioner) borrows during a
/// call, by slot number; without a pool (a layer called on its own) every buffer is a new
/// allocation and nothing is kept.
///
/// Buffers come with unspecified contents: callers overwrite every entry, as with
/// ``Matrix/init(uninitializedRows:columns:)``. A buffer borrowed by ``take(_:count:)`` goes back
/// with ``keep(_:_:)`` once fully written; see ``StepBuffers`` for why a result the caller still
/// holds is never overwritten.
struct LayerBuffers<T: Scalar> {
    /// The container's pool, or `nil` to allocate every buffer.
    let pool: StepBuffers<T>?
    /// The borrowing object, half of each ``BufferKey``.
    let owner: ObjectIdentifier

    /// The buffers `owner` borrows from `pool` (none when `pool` is `nil`).
    init(_ pool: StepBuffers<T>?, owner: AnyObject) {
        self.pool = pool
        self.owner = ObjectIdentifier(owner)
    }

    /// A buffer of `count` entries with unspecified contents: the slot's storage when its size
    /// matches, else a new allocation.
    @inline(__always)
    func take(_ slot: Int, count: Int) -> [T] {
        if let pool {
            let buffer = pool.borrow(BufferKey(owner: owner, slot: slot))
            if buffer.count == count { return buffer }
        }
        return [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    /// Hands `buffer` back to `slot` for the next call (the caller may keep using its own copy).
    @inline(__always)
    func keep(_ slot: Int, _ buffer: [T]) {
        pool?.giveBack(BufferKey(owner: owner, slot: slot), buffer)
    }

    /// Hands a matrix's storage back to `slot`.
    @inline(__always)
    func keep(_ slot: Int, _ matrix: Matrix<T>) {
        keep(slot, matrix.storage)
    }

    /// Runs `body` on `count` entries of `slot`'s buffer with unspecified contents and keeps the
    /// buffer (a call's temporaries). Unlike ``take(_:count:)`` a larger buffer is reused, so calls
    /// of different sizes on one slot (a forward and its backward) do not reallocate each other's.
    @inline(__always)
    func withScratch<R>(_ slot: Int, count: Int, _ body: (UnsafeMutableBufferPointer<T>) -> R) -> R {
        var buffer = pool?.borrow(BufferKey(owner: owner, slot: slot)) ?? []
        if buffer.count < count {
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

    /// A copy of `source` `[rows, columns]` in the slot's storage (one `memcpy`).
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

    /// A buffer of `count` entries all equal to `value`.
    @inline(__always)
    func filled(_ slot: Int, count: Int, with value: T) -> [T] {
        var buffer = take(slot, count: count)
        buffer.withUnsafeMutableBufferPointer { $0.update(repeating: value) }
        return buffer
    }

    /// An empty list of batches with room for `capacity`, in the storage of `slot`'s list when
    /// the pool keeps one (see ``StepBuffers/borrowList(_:capacity:)``).
    func takeList(_ slot: Int, capacity: Int) -> [Matrix<T>] {
        if let pool { return pool.borrowList(BufferKey(owner: owner, slot: slot), capacity: capacity) }
        var list = [Matrix<T>]()
        list.reserveCapacity(capacity)
        return list
    }

    /// Hands `list` back to `slot` for the next ``takeList(_:capacity:)``.
    func keepList(_ slot: Int, _ list: [Matrix<T>]) {
        pool?.giveBackList(BufferKey(owner: owner, slot: slot), list)
    }

    /// Empties `slot`'s kept list so the buffers its batches referenced are unshared before
    /// they are borrowed again (an MLP's trace list, before the conditioner input is written).
    func emptyList(_ slot: Int) {
        guard let pool else { return }
        let key = BufferKey(owner: owner, slot: slot)
        pool.giveBackList(key, pool.borrowList(key, capacity: 0))
    }

    /// `source - 1bᵀ` (each row minus the bias `[1, source.columns]`) in `slot`'s storage, kept
    /// for the next call; `source` itself without bias.
    func centered(_ slot: Int, _ source: Matrix<T>, bias: Parameter<T>?) -> Matrix<T> {
        guard let bias else { return source }
        var out = copy(slot, of: source)
        out.addToEveryRow(bias.value.storage, scaledBy: -1)
        keep(slot, out)
        return out
    }
}

extension LayerContext {
    /// The buffers `owner` borrows from this pass's ``buffers`` pool (allocations when it has none).
    func buffers(for owner: AnyObject) -> LayerBuffers<T> {
        LayerBuffers(buffers, owner: owner)
    }
}
