import Synchronization

/// A temporary array a value reuses from call to call for work that never leaves the call (a
/// transformer's per-chunk factors), where no container's ``StepBuffers`` reaches.
///
/// The array is moved out for the length of ``withScratch(count:_:)`` and moved back after, and
/// nothing else ever references it, so it is always written in place. A concurrent call that
/// finds it moved out allocates its own.
final class ScratchBuffer<T: Scalar>: Sendable {
    private let storage = Mutex<[T]>([])

    /// An empty scratch array, sized by its first use.
    init() {}

    /// Runs `body` on `count` entries with unspecified contents; a larger kept array is reused.
    @inline(__always)
    func withScratch<R>(count: Int, _ body: (UnsafeMutableBufferPointer<T>) -> R) -> R {
        var buffer = storage.withLock { stored -> [T] in
            var taken = [T]()
            swap(&taken, &stored)
            return taken
        }
        if buffer.count < count {
            buffer = []
            buffer = [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        }
        defer { storage.withLock { $0 = buffer } }
        return buffer.withUnsafeMutableBufferPointer { body(UnsafeMutableBufferPointer(rebasing: $0[0..<count])) }
    }
}
