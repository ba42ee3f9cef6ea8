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
    /// The current value. Assigning a value of another shape is caught by the owning layer's
    /// next call (``InvertibleLayer/requireParameterShapes()``), which throws.
    public var value: Matrix<T> {
        @inlinable get { storedValue }
        @inlinable set {
            storedValue = newValue
            storedVersion &+= 1
        }
        // In-place writes (`p.value.storage[i] -= …`, an optimizer's pointer loop) modify the
        // storage where it is, from any module: no copy, one version bump. (Inlinable, so the
        // accessor coroutine needs no heap frame in the caller's module.)
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
    /// `dL/dθ`, same shape as ``value``.
    public var gradient: Matrix<T>

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
        self.gradient = Matrix(rows: value.rows, columns: value.columns)
        self.trainableMask = trainableMask?.count == value.count ? trainableMask : nil
    }

    /// Throws ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if ``value`` or
    /// ``gradient`` no longer has the shape fixed at creation (`owner` names the layer).
    public func requireShape(_ owner: @autoclosure () -> String) throws {
        // Called on every layer call: compares without building arrays or strings.
        let rows = shape[0], columns = shape[1]
        if value.rows != rows || value.columns != columns {
            throw InvertNNError.shapeMismatch(
                operation: "\(owner()) parameter '\(name)' value", expected: "\(shape)", actual: "\(value.shape)")
        }
        if gradient.rows != rows || gradient.columns != columns {
            throw InvertNNError.shapeMismatch(
                operation: "\(owner()) parameter '\(name)' gradient", expected: "\(shape)", actual: "\(gradient.shape)")
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
