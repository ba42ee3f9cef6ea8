import Foundation

/// Reads NumPy `.npy` files (format versions 1.0, 2.0 and 3.0) of numbers into a ``Matrix``.
///
/// Layout: the magic `\x93NUMPY`, the major and minor version bytes, the header length
/// (2 bytes little-endian in version 1, 4 bytes in versions 2 and 3), the header
/// (``NumPyHeader``), then the elements in C (row-major) order. Element types: float32/64,
/// int8/16/32/64 and uint8/16/32/64, little- or big-endian (`'<f4'`, `'>i8'`, `'|u1'`); values
/// become `Double` (integers beyond 2^53 round). A 1-D array of `n` values is `[n, 1]`; a 2-D
/// array of shape `(rows, features)` is `[rows, features]`.
enum NumPyArray {
    /// The magic string every `.npy` file starts with.
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Whether `path` names a `.npy` file (`.npy` or `.npy.gz`, any case): such files are read by
    /// ``read(path:limits:)`` rather than as CSV.
    static func isNumPyPath(_ path: String) -> Bool {
        let lower = path.lowercased()
        return lower.hasSuffix(".npy") || lower.hasSuffix(".npy.gz")
    }

    /// Reads the array in the file at `path` (optionally gzip-compressed, see ``GzipReader``).
    ///
    /// The file is read under `limits.maximumBytes` (no line limit applies to binary data); the
    /// header may be at most `limits.maximumLineBytes` long (NumPy itself writes under 100 bytes
    /// for these shapes), and the shape must describe exactly the data present, so a hostile
    /// header can make nothing large.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` from the read;
    ///   ``InvertNNError/malformedData(source:line:reason:)`` (line 0) for a file that is not `.npy`
    ///   (bad magic), an unsupported version, a truncated header or data, a header that is too long
    ///   or malformed (``NumPyHeader``), an element type other than those above (objects, strings,
    ///   booleans, float16, complex), Fortran order, a shape of 0 or more than 2 dimensions, or
    ///   data whose size differs from the shape's; and, with `line` set to the 1-based row (the
    ///   row number stands for a line in a `.npy` array, as ``DataTable/recordLines`` says), for
    ///   the first NaN or infinite value outside the `skipping` columns, naming its row and
    ///   column. Also what `skipping` throws.
    static func read(
        path: String, limits: ReadLimits = .default, skipping: (_ columns: Int) throws -> Set<Int> = { _ in [] }
    ) throws -> Matrix<Double> {
        let bytes = try GzipReader.read(path: path, limits: ReadLimits(maximumBytes: limits.maximumBytes, maximumLineBytes: nil))
        return try parse(bytes, source: path, maximumHeaderBytes: limits.maximumLineBytes ?? ReadLimits.defaultMaximumLineBytes, skipping: skipping)
    }

    /// Parses the bytes of a `.npy` file; see ``read(path:limits:)``.
    ///
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - source: the name errors give the data (a path).
    ///   - maximumHeaderBytes: the longest header accepted.
    ///   - skipping: given the number of columns, the 0-based columns the caller leaves out: they
    ///     keep their values but are not checked for NaN or infinities, as a CSV reader does not
    ///     parse them. Called once the header is read, before the data, so its errors come first.
    /// - Throws: as ``read(path:limits:skipping:)``.
    static func parse(
        _ bytes: [UInt8], source: String, maximumHeaderBytes: Int = ReadLimits.defaultMaximumLineBytes,
        skipping: (_ columns: Int) throws -> Set<Int> = { _ in [] }
    ) throws -> Matrix<Double> {
        func bad(_ reason: String) -> InvertNNError { .malformedData(source: source, line: 0, reason: reason) }
        guard bytes.count >= 10, bytes.starts(with: magic) else {
            throw bad("not a .npy file (it does not start with the magic bytes \\x93NUMPY)")
        }
        let major = bytes[6], minor = bytes[7]
        guard (1...3).contains(major), minor == 0 else { throw bad(".npy format version \(major).\(minor) is not supported (1.0, 2.0 or 3.0)") }
        let lengthBytes = major == 1 ? 2 : 4
        guard bytes.count >= 8 + lengthBytes else { throw bad("the file ends inside the header length") }
        var headerLength = 0
        for k in 0..<lengthBytes { headerLength |= Int(bytes[8 + k]) << (8 * k) }
        let headerStart = 8 + lengthBytes
        guard headerLength <= maximumHeaderBytes else {
            throw bad("the header is \(headerLength) bytes long, beyond the limit of \(maximumHeaderBytes) (--max-line-bytes, ReadLimits.maximumLineBytes)")
        }
        guard headerLength <= bytes.count - headerStart else {
            throw bad("the file ends inside the header (\(headerLength) bytes announced, \(bytes.count - headerStart) present)")
        }
        let header = try NumPyHeader(parsing: bytes[headerStart..<(headerStart + headerLength)], source: source)
        guard !header.fortranOrder else {
            throw bad("the array is stored in Fortran (column-major) order; save it with numpy.ascontiguousarray first")
        }
        let element = try ElementType(descr: header.descr, source: source)
        let rows: Int, columns: Int
        switch header.shape.count {
        case 1: (rows, columns) = (header.shape[0], 1)
        case 2: (rows, columns) = (header.shape[0], header.shape[1])
        default:
            throw bad("the array has shape (\(header.shape.map(String.init).joined(separator: ", "))); data are a 1-D array (one column) or a 2-D array (rows × features)")
        }
        let dataStart = headerStart + headerLength
        let present = bytes.count - dataStart
        let (count, o1) = rows.multipliedReportingOverflow(by: columns)
        let (needed, o2) = count.multipliedReportingOverflow(by: element.size)
        guard !o1, !o2, needed == present else {
            throw bad("the shape (\(rows), \(columns)) of \(header.descr) needs \(o1 || o2 ? "more than \(Int.max)" : "\(needed)") bytes of data, "
                + "the file holds \(present)\(needed > present || o1 || o2 ? " (truncated, or a wrong shape)" : "")")
        }
        let skipped = try skipping(columns)
        var storage = [Double](repeating: 0, count: count)
        bytes.withUnsafeBufferPointer { raw in
            let data = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(raw)[dataStart...])
            for i in 0..<count { storage[i] = element.value(data, at: i * element.size) }
        }
        // Data must be finite, as in a CSV file: a NaN found only later, after the split, could no
        // longer name the file. Integer elements are always finite. A skipped column (a label)
        // may hold anything, as an unparsed CSV column may.
        if element.kind == .float,
           let index = storage.indices.first(where: { !storage[$0].isFinite && !skipped.contains($0 % columns) }) {
            let (row, column) = index.quotientAndRemainder(dividingBy: columns)
            throw InvertNNError.malformedData(
                source: source, line: row + 1,
                reason: "row \(row + 1), column \(column + 1): \(storage[index]) is not a finite number")
        }
        return try Matrix(rows: rows, columns: columns, storage: storage)
    }

    /// A supported element type: kind, size in bytes and byte order.
    struct ElementType {
        enum Kind { case float, signed, unsigned }
        let kind: Kind
        let size: Int
        let bigEndian: Bool

        init(descr: String, source: String) throws {
            let characters = Array(descr.utf8)
            let kinds: [UInt8: Kind] = [UInt8(ascii: "f"): .float, UInt8(ascii: "i"): .signed, UInt8(ascii: "u"): .unsigned]
            guard characters.count == 3, [UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "|"), UInt8(ascii: "=")].contains(characters[0]),
                  let kind = kinds[characters[1]], let size = Int(String(decoding: characters[2...], as: UTF8.self)),
                  kind == .float ? (size == 4 || size == 8) : [1, 2, 4, 8].contains(size)
            else {
                throw InvertNNError.malformedData(
                    source: source, line: 0,
                    reason: "the element type '\(descr.prefix(40))' is not supported (float32/64, int8/16/32/64 or uint8/16/32/64: '<f8', '<f4', '<i8', '|u1', …)")
            }
            self.kind = kind
            self.size = size
            // '=' is the writer's native order; NumPy writes '<' or '>' instead, and every
            // machine this runs on is little-endian.
            self.bigEndian = characters[0] == UInt8(ascii: ">")
        }

        /// The element at byte `offset` of `data` as a `Double`.
        func value(_ data: UnsafeRawBufferPointer, at offset: Int) -> Double {
            var bits: UInt64 = 0
            for k in 0..<size {
                let byte = UInt64(data[offset + (bigEndian ? size - 1 - k : k)])
                bits |= byte << (8 * UInt64(k))
            }
            switch (kind, size) {
            case (.float, 4): return Double(Float(bitPattern: UInt32(truncatingIfNeeded: bits)))
            case (.float, _): return Double(bitPattern: bits)
            case (.unsigned, _): return Double(bits)
            case (.signed, _):
                // Sign-extend the `size`-byte two's complement value.
                let shift = UInt64(64 - 8 * size)
                return Double(Int64(bitPattern: bits << shift) >> Int64(shift))
            }
        }
    }
}
