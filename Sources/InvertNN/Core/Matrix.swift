import RealModule
/// A dense row-major matrix of ``Scalar`` values: the batch type of the library.
///
/// A batch of samples is a `Matrix` of shape `[batch, features]`, one sample per row. Images are
/// flattened per sample in NCHW order (`[batch, channels*height*width]`, channel-major), as in
/// PyTorch. Element `[r, c]` lives at `storage[r * columns + c]`.
///
/// `Matrix` is a value type with copy-on-write storage (a Swift `Array`).
public struct Matrix<T: Scalar>: Equatable, Sendable, CustomStringConvertible {
    /// Number of rows (the batch size for a batch of samples).
    public let rows: Int
    /// Number of columns (the feature count for a batch of samples).
    public let columns: Int
    /// Row-major elements, `rows * columns` of them.
    ///
    /// Read-only outside the module, so its count always matches the shape: write entries in
    /// place with ``withUnsafeMutableBufferPointer(_:)`` or the element subscript, or build a new
    /// matrix with ``init(rows:columns:storage:)``.
    public internal(set) var storage: [T]

    /// A `rows × columns` matrix filled with `value`.
    ///
    /// Negative sizes are clamped to zero (an empty matrix) rather than trapping.
    @inlinable
    public init(rows: Int, columns: Int, repeating value: T = 0) {
        let rows = max(rows, 0), columns = max(columns, 0)
        self.init(uncheckedRows: rows, columns: columns, storage: [T](repeating: value, count: rows * columns))
    }

    /// A matrix over existing row-major storage.
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if
    ///   `storage.count != rows * columns` or a size is negative.
    @inlinable
    public init(rows: Int, columns: Int, storage: [T]) throws {
        let (count, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard rows >= 0, columns >= 0, !overflow, storage.count == count else {
            throw InvertNNError.shapeMismatch(
                operation: "Matrix.init", expected: "rows × columns elements for [\(rows), \(columns)]",
                actual: "\(storage.count) elements")
        }
        self.init(uncheckedRows: rows, columns: columns, storage: storage)
    }

    /// Internal unchecked initializer for storage whose count is known to match.
    ///
    /// The one place that sets ``storage`` at creation: not inlinable, because the inlinable
    /// initializers (inlined into other modules) may not use the internal setter themselves.
    @usableFromInline
    init(uncheckedRows rows: Int, columns: Int, storage: [T]) {
        self.rows = rows
        self.columns = columns
        self.storage = storage
    }

    /// A `rows × columns` matrix whose entries the caller writes before anything reads them
    /// (a GEMM with `beta = 0`, or a loop over every entry). Skipping the zero fill saves one
    /// pass over memory per call in the layers' hot paths; the sizes must already be validated.
    @inlinable
    init(uninitializedRows rows: Int, columns: Int) {
        self.init(uncheckedRows: rows, columns: columns,
                  storage: [T](unsafeUninitializedCapacity: rows * columns) { _, count in count = rows * columns })
    }

    /// A matrix from nested rows, `[[row0...], [row1...]]`.
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if rows are ragged.
    public init(_ nestedRows: [[T]]) throws {
        let columns = nestedRows.first?.count ?? 0
        for (index, row) in nestedRows.enumerated() where row.count != columns {
            throw InvertNNError.shapeMismatch(
                operation: "Matrix.init(rows)", expected: "\(columns) columns in every row",
                actual: "\(row.count) in row \(index)")
        }
        self.init(uncheckedRows: nestedRows.count, columns: columns, storage: nestedRows.flatMap { $0 })
    }

    /// A one-row matrix `[1, values.count]`.
    public init(row values: [T]) {
        self.init(uncheckedRows: 1, columns: values.count, storage: values)
    }

    /// The `n × n` identity.
    public static func identity(_ n: Int) -> Matrix {
        var m = Matrix(rows: n, columns: n)
        for i in 0..<max(n, 0) { m.storage[i * n + i] = 1 }
        return m
    }

    /// Shape as `[rows, columns]`.
    public var shape: [Int] { [rows, columns] }

    /// Total element count.
    @inlinable
    public var count: Int { storage.count }

    /// Element at `[row, column]`. Indices are the caller's responsibility (internal use and
    /// tests); public APIs never index with user-provided positions without checking.
    /// Writing an entry keeps the count (only whole-matrix assignment can change a shape).
    public subscript(row: Int, column: Int) -> T {
        @inlinable get { storage[row * columns + column] }
        set { storage[row * columns + column] = newValue }
    }

    /// Calls `body` with the elements (row-major, ``count`` of them) for writing in place.
    ///
    /// The buffer's count is fixed, so the shape still matches the storage afterwards; the
    /// pointer is valid only inside `body`. No copy is made unless the storage is shared with
    /// another matrix (copy on write).
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<T>) throws -> R
    ) rethrows -> R {
        try storage.withUnsafeMutableBufferPointer { buffer in try body(buffer) }
    }

    /// The elements of row `index`.
    public func row(_ index: Int) -> [T] {
        Array(storage[(index * columns)..<((index + 1) * columns)])
    }

    /// Rows `range` as a new matrix.
    public func rows(_ range: Range<Int>) -> Matrix {
        Matrix(uncheckedRows: range.count, columns: columns,
               storage: Array(storage[(range.lowerBound * columns)..<(range.upperBound * columns)]))
    }

    /// The rows at `indices`, in that order (a gather), as a new matrix.
    public func rows(at indices: [Int]) -> Matrix {
        var out = [T]()
        out.reserveCapacity(indices.count * columns)
        for i in indices { out.append(contentsOf: storage[(i * columns)..<((i + 1) * columns)]) }
        return Matrix(uncheckedRows: indices.count, columns: columns, storage: out)
    }

    /// Columns `range` of every row, as a new `[rows, range.count]` matrix.
    @inlinable
    public func columns(_ range: Range<Int>) -> Matrix {
        let width = range.count
        var out = [T](repeating: 0, count: rows * width)
        storage.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    let s = r * columns + range.lowerBound
                    let d = r * width
                    for c in 0..<width { dst[d + c] = src[s + c] }
                }
            }
        }
        return Matrix(uncheckedRows: rows, columns: width, storage: out)
    }

    /// `[self, other]` side by side: `[rows, columns + other.columns]`.
    ///
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if row counts differ.
    @inlinable
    public func concatenatedColumns(_ other: Matrix) throws -> Matrix {
        guard other.rows == rows else {
            throw InvertNNError.shapeMismatch(
                operation: "Matrix.concatenatedColumns", expected: "\(rows) rows", actual: "\(other.rows) rows")
        }
        let width = columns + other.columns
        var out = [T](repeating: 0, count: rows * width)
        for r in 0..<rows {
            for c in 0..<columns { out[r * width + c] = storage[r * columns + c] }
            for c in 0..<other.columns { out[r * width + columns + c] = other.storage[r * other.columns + c] }
        }
        return Matrix(uncheckedRows: rows, columns: width, storage: out)
    }

    /// The transpose, `[columns, rows]`.
    public func transposed() -> Matrix {
        var out = [T](repeating: 0, count: count)
        for r in 0..<rows {
            for c in 0..<columns { out[c * rows + r] = storage[r * columns + c] }
        }
        return Matrix(uncheckedRows: columns, columns: rows, storage: out)
    }

    /// The same elements converted to another precision.
    public func converted<U: Scalar>(to _: U.Type = U.self) -> Matrix<U> {
        Matrix<U>(uncheckedRows: rows, columns: columns, storage: storage.map { U($0) })
    }

    /// Largest absolute entry (0 for an empty matrix); NaN propagates as NaN.
    public var maxAbs: T { largestMagnitude() }

    // Specialized because these scans run on every validated input, often from unspecialized
    // generic callers (initializers, other modules), where a per-element witness call is slow.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func largestMagnitude() -> T {
        var m: T = 0
        for v in storage {
            if v.isNaN { return .nan }
            m = Swift.max(m, Swift.abs(v))
        }
        return m
    }

    /// Position of the first NaN or infinite entry, or `nil` if all are finite.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func firstNonFinite() -> (row: Int, column: Int)? {
        let index: Int? = storage.withUnsafeBufferPointer { buffer in
            // A branch-free scan in chunks (an OR of flags vectorizes; an early exit does not),
            // then the exact position inside the first chunk that has one. This check runs on
            // every layer input and parameter rebuild, so it must cost a fraction of a pass.
            // `v - v` is +0 for finite v and NaN for ±∞ and NaN, so a sum of them is NaN exactly
            // when the chunk has a non-finite entry; eight partial sums keep the adds independent
            // (≈ 0.1 ns an entry, against 1.5 ns for a per-entry `isFinite` flag).
            let chunk = 1024
            var start = 0
            while start < buffer.count {
                let end = Swift.min(start + chunk, buffer.count)
                var s0: T = 0, s1: T = 0, s2: T = 0, s3: T = 0, s4: T = 0, s5: T = 0, s6: T = 0, s7: T = 0
                var i = start
                while i + 8 <= end {
                    s0 += buffer[i] - buffer[i]; s1 += buffer[i + 1] - buffer[i + 1]
                    s2 += buffer[i + 2] - buffer[i + 2]; s3 += buffer[i + 3] - buffer[i + 3]
                    s4 += buffer[i + 4] - buffer[i + 4]; s5 += buffer[i + 5] - buffer[i + 5]
                    s6 += buffer[i + 6] - buffer[i + 6]; s7 += buffer[i + 7] - buffer[i + 7]
                    i += 8
                }
                while i < end { s0 += buffer[i] - buffer[i]; i += 1 }
                if !(((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))).isFinite {
                    for i in start..<end where !buffer[i].isFinite { return i }
                }
                start = end
            }
            return nil
        }
        guard let i = index else { return nil }
        return (i / Swift.max(columns, 1), i % Swift.max(columns, 1))
    }

    /// Position and value of the first entry whose magnitude exceeds the largest finite value of
    /// `U` (it would become an infinity in `U`: beyond 3.4e38 for Float), or `nil`.
    public func firstEntry<U: Scalar>(beyondRangeOf _: U.Type) -> (row: Int, column: Int, value: T)? {
        let largest = T(U.greatestFiniteMagnitude)
        guard largest < T.greatestFiniteMagnitude, let i = storage.firstIndex(where: { Swift.abs($0) > largest }) else { return nil }
        return (i / Swift.max(columns, 1), i % Swift.max(columns, 1), storage[i])
    }

    /// Throws ``InvertNNError/nonFinite(operation:row:column:)`` naming `operation` and the
    /// position of the first NaN or infinite entry.
    public func requireFinite(_ operation: @autoclosure () -> String) throws {
        if let (r, c) = firstNonFinite() { throw InvertNNError.nonFinite(operation: operation(), row: r, column: c) }
    }

    /// Throws ``InvertNNError/shapeMismatch(operation:expected:actual:)`` unless the matrix has
    /// `columns` columns. An empty batch (`[0, columns]`) passes: layers and flows return empty
    /// results for it, as PyTorch-style libraries do, so that chunked data with an empty
    /// remainder need no special case.
    @inlinable
    public func requireColumns(_ columns: Int, _ operation: @autoclosure () -> String) throws {
        guard self.columns == columns else {
            throw InvertNNError.shapeMismatch(
                operation: operation(), expected: "[batch, \(columns)]", actual: "[\(rows), \(self.columns)]")
        }
    }

    public var description: String {
        var lines = ["Matrix<\(T.self)> [\(rows), \(columns)]"]
        for r in 0..<Swift.min(rows, 8) {
            lines.append("  " + row(r).prefix(8).map { "\($0)" }.joined(separator: ", ") + (columns > 8 ? ", …" : ""))
        }
        if rows > 8 { lines.append("  …") }
        return lines.joined(separator: "\n")
    }
}

extension Matrix {
    /// Elementwise sum. - Throws: shape mismatch.
    public static func + (lhs: Matrix, rhs: Matrix) throws -> Matrix {
        try lhs.requireSameShape(rhs, "Matrix +")
        var out = lhs
        for i in 0..<out.count { out.storage[i] += rhs.storage[i] }
        return out
    }

    /// Elementwise difference. - Throws: shape mismatch.
    public static func - (lhs: Matrix, rhs: Matrix) throws -> Matrix {
        try lhs.requireSameShape(rhs, "Matrix -")
        var out = lhs
        for i in 0..<out.count { out.storage[i] -= rhs.storage[i] }
        return out
    }

    /// Scalar multiple.
    public static func * (lhs: T, rhs: Matrix) -> Matrix {
        var out = rhs
        for i in 0..<out.count { out.storage[i] *= lhs }
        return out
    }

    /// Throws ``InvertNNError/shapeMismatch(operation:expected:actual:)`` unless shapes agree.
    public func requireSameShape(_ other: Matrix, _ operation: @autoclosure () -> String) throws {
        guard rows == other.rows, columns == other.columns else {
            throw InvertNNError.shapeMismatch(
                operation: operation(), expected: "[\(rows), \(columns)]", actual: "[\(other.rows), \(other.columns)]")
        }
    }

    /// Throws ``InvertNNError/shapeMismatch(operation:expected:actual:)`` unless the matrix is
    /// `[rows, columns]` (the check of ``requireSameShape(_:_:)`` without building a matrix).
    public func requireShape(rows: Int, columns: Int, _ operation: @autoclosure () -> String) throws {
        guard self.rows == rows, self.columns == columns else {
            throw InvertNNError.shapeMismatch(
                operation: operation(), expected: "[\(rows), \(columns)]", actual: "[\(self.rows), \(self.columns)]")
        }
    }
}
