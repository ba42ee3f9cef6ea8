import RealModule
/// A learnable tensor owned by a layer: its value and the gradient accumulated by backward passes.
///
/// Backward passes *add* into ``gradient`` (so a parameter shared by several uses sums its
/// contributions); optimizers read it and callers reset it with ``zeroGradient()``. A layer may
/// keep some entries structurally fixed (for example the zeros above the diagonal of trapezoidal
/// Householder reflectors); it then keeps their gradient at exactly zero, so optimizers never
/// move them.
public final class Parameter<T: Scalar> {
    /// A name unique within its layer (`"reflectors"`, `"logScale"`, `"bias"`, …); containers
    /// prefix it with the layer's position for checkpoints.
    public let name: String
    /// The current value, of the shape fixed at creation (``shape``).
    ///
    /// Read-only outside the module, so no layer can meet a value of another shape: load values
    /// with ``assign(_:)`` (which checks the shape) or write them in place with
    /// ``withUnsafeMutableValue(_:)``.
    public internal(set) var value: Matrix<T> {
        @inlinable get { storedValue }
        @inlinable set {
            storedValue = newValue
            storedVersion &+= 1
        }
        // In-place writes (`p.value.storage[i] -= …`, an optimizer's pointer loop) modify the
        // storage where it is: no copy, one version bump. (Inlinable, so the accessor coroutine
        // needs no heap frame.)
        @inlinable _modify {
            storedVersion &+= 1
            yield &storedValue
        }
    }
    @usableFromInline var storedValue: Matrix<T>
    @usableFromInline var storedVersion: UInt64 = 0
    /// Counts the writes to ``value`` (assignments and in-place mutations alike): layers key the
    /// caches derived from a parameter (a Householder plan, W, a kept trace) on it, so an
    /// optimizer can update the value in place, without the copy a cache holding the old storage
    /// would force.
    public var version: UInt64 { storedVersion }
    /// The shape fixed at creation, `[rows, columns]`.
    public let shape: [Int]
    /// `dL/dθ`, same shape as ``value``: read-only outside the module (set it with
    /// ``assignGradient(_:)`` or ``withUnsafeMutableGradient(_:)``).
    public internal(set) var gradient: Matrix<T> {
        @inlinable get { storedGradient }
        @inlinable set { storedGradient = newValue }
        @inlinable _modify { yield &storedGradient }
    }
    @usableFromInline var storedGradient: Matrix<T>

    /// Which entries are learnable (row-major, same count as ``value``), or `nil` if all are.
    /// Entries marked `false` are structural (fixed zeros, a fixed sign); their gradient stays 0.
    public let trainableMask: [Bool]?

    /// A parameter with the given initial value and a zero gradient.
    ///
    /// - Parameters:
    ///   - name: the parameter's name in checkpoints and errors.
    ///   - value: the initial value; the gradient gets the same shape.
    ///   - trainableMask: `nil` (all entries learnable) or one flag per entry; a mask of
    ///     the wrong length is ignored (treated as all learnable).
    public init(name: String, value: Matrix<T>, trainableMask: [Bool]? = nil) {
        self.name = name
        self.storedValue = value
        self.shape = [value.rows, value.columns]
        self.storedGradient = Matrix(rows: value.rows, columns: value.columns)
        self.trainableMask = trainableMask?.count == value.count ? trainableMask : nil
    }

    /// Replaces ``value`` (loading weights, copying another model's parameter), bumping
    /// ``version`` so layers rebuild the caches derived from it. NaN and infinities are
    /// accepted (an experiment may probe them, and an optimizer's step can produce them), but
    /// ``Checkpoint/write(to:)`` refuses a model holding them
    /// (``CheckpointError/nonFiniteTensor(path:tensor:row:column:value:)``).
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` naming the
    ///   parameter, its ``shape`` and `newValue`'s shape, if they differ; ``value`` is then left
    ///   as it was.
    public func assign(_ newValue: Matrix<T>) throws {
        try requireOwnShape(newValue, "value")
        value = newValue
    }

    /// Replaces ``gradient`` (for example with gradients summed elsewhere).
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` naming the
    ///   parameter, its ``shape`` and `newGradient`'s shape, if they differ; ``gradient`` is then
    ///   left as it was.
    public func assignGradient(_ newGradient: Matrix<T>) throws {
        try requireOwnShape(newGradient, "gradient")
        gradient = newGradient
    }

    /// Calls `body` with ``value``'s entries (row-major, ``count`` of them) to write in place,
    /// without a copy; ``version`` is bumped, so layers rebuild the caches derived from the
    /// value. The buffer's count is fixed, so the shape cannot change; the pointer is valid only
    /// inside `body`, and `body` must not read this parameter's ``value`` (an overlapping access).
    ///
    /// Inlinable, so a caller in another module (an optimizer, a benchmark's nudge) runs the
    /// value's in-place accessor without allocating its frame.
    @inlinable
    public func withUnsafeMutableValue<R>(_ body: (UnsafeMutableBufferPointer<T>) throws -> R) rethrows -> R {
        try value.withUnsafeMutableBufferPointer(body)
    }

    /// Calls `body` with ``gradient``'s entries (row-major, ``count`` of them) to write in
    /// place, without a copy (scaling, clipping or summing gradients across workers). The
    /// buffer's count is fixed; the pointer is valid only inside `body`, and `body` must not
    /// read this parameter's ``gradient``.
    @inlinable
    public func withUnsafeMutableGradient<R>(_ body: (UnsafeMutableBufferPointer<T>) throws -> R) rethrows -> R {
        try gradient.withUnsafeMutableBufferPointer(body)
    }

    private func requireOwnShape(_ matrix: Matrix<T>, _ role: String) throws {
        guard matrix.rows == shape[0], matrix.columns == shape[1] else {
            throw InvertNNError.shapeMismatch(
                operation: "parameter '\(name)' \(role)", expected: "\(shape)", actual: "\(matrix.shape)")
        }
    }

    /// Sets every gradient entry to zero.
    ///
    /// One `memset`-like pass: called for every parameter before every training step, so an
    /// element loop through the class property (an exclusivity check and, unspecialized, a
    /// metadata lookup per entry) cost more than the step's GEMMs on the digits model.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func zeroGradient() {
        gradient.storage.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// Number of scalar entries.
    public var count: Int { value.count }

    /// Number of learnable entries (those not fixed by ``trainableMask``).
    public var trainableCount: Int { trainableMask.map { $0.lazy.filter { $0 }.count } ?? value.count }
}
