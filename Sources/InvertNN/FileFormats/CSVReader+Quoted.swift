import CSV

extension CSVReader {
    /// Whether `bytes` hold a double quote, that is, may hold RFC 4180 quoted fields.
    static func containsQuote(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { $0.contains(UInt8(ascii: "\"")) }
    }

    /// The records of CSV text through the CSV.swift package (RFC 4180: quoted fields may hold
    /// commas, doubled quotes `""` and line breaks; records end with LF or CRLF), each with the
    /// 1-based file line it starts on. Blank lines are left out. `body` returns `false` to stop.
    ///
    /// - Throws: ``InvertNNError/malformedData(source:line:reason:)`` naming the line of a quote
    ///   that is never closed (the package would read the rest of the file as one field), and what
    ///   `body` throws.
    static func forEachRecord(
        _ bytes: ArraySlice<UInt8>, source: String, firstLine: Int = 1, _ body: (_ line: Int, _ fields: [String]) throws -> Bool
    ) throws {
        // Balance of quotes first: inside a field a quote is doubled, so an odd count means an open one.
        var open: Int? = nil
        var line = firstLine
        for byte in bytes {
            if byte == UInt8(ascii: "\"") { open = open == nil ? line : nil } else if byte == UInt8(ascii: "\n") { line += 1 }
        }
        if let open {
            throw InvertNNError.malformedData(source: source, line: open, reason: "a quoted field opened here is never closed (a \" is missing)")
        }
        let reader = try RFC4180Reader(string: String(decoding: bytes, as: UTF8.self))
        line = firstLine
        while let fields = reader.next() {
            let start = line
            // A record spans one line plus the line breaks inside its quoted fields.
            for field in fields { for byte in field.utf8 where byte == UInt8(ascii: "\n") { line += 1 } }
            line += 1
            if fields.count == 1, fields[0].utf8.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            guard try body(start, fields) else { return }
        }
    }

    /// The fields of the first non-blank record of `bytes` (the header row candidate) through
    /// CSV.swift, with the lines it spans, or `nil` for text without records.
    static func firstRecord(_ bytes: [UInt8], source: String) throws -> (fields: [String], line: Int, endLine: Int)? {
        // Only the first record is decoded: find where it ends (the first line break outside quotes
        // after a non-blank character) so a large file is not turned into a String.
        var inQuote = false, sawText = false, end = bytes.count
        for (i, byte) in bytes.enumerated() {
            if byte == UInt8(ascii: "\"") { inQuote.toggle() }
            if byte == UInt8(ascii: "\n"), !inQuote, sawText { end = i; break }
            if byte != UInt8(ascii: " "), byte != UInt8(ascii: "\t"), byte != UInt8(ascii: "\r"), byte != UInt8(ascii: "\n") { sawText = true }
        }
        var result: (fields: [String], line: Int, endLine: Int)? = nil
        let lines = bytes[0..<end].reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        try forEachRecord(bytes[0..<end], source: source) { line, fields in
            result = (fields, line, lines)
            return false
        }
        return result
    }

    /// Parses CSV text that may hold quoted fields into a `[records, fields]` matrix, through
    /// CSV.swift. A quoted number (`"1.5"`) reads as the number; the columns in `skipping`
    /// (0-based) are not parsed and read as 0.
    ///
    /// About five times slower than the byte scanner of ``parse(_:source:hasHeader:as:)``, which
    /// therefore reads files without quotes (README, "Data files").
    ///
    /// - Returns: the header's fields when `hasHeader` (else `nil`), the values, and the file line
    ///   each record starts on.
    /// - Throws: ``InvertNNError/malformedData(source:line:reason:)`` as ``parse(_:source:hasHeader:as:)``
    ///   does, and for a quote that is never closed.
    static func parseQuoted<T: Scalar>(
        _ bytes: [UInt8], source: String, hasHeader: Bool, skipping: Set<Int> = [], as _: T.Type = T.self
    ) throws -> (header: [String]?, values: Matrix<T>, recordLines: [Int]) {
        var header: [String]? = nil
        var headerPending = hasHeader
        var storage = [T]()
        var recordLines = [Int]()
        var columns = -1
        var widthSource = "the first record"
        try forEachRecord(bytes[...], source: source) { line, fields in
            if headerPending {
                headerPending = false
                header = fields
                columns = fields.count
                widthSource = "the header"
                return true
            }
            if columns < 0 { columns = fields.count }
            guard fields.count == columns else {
                throw InvertNNError.malformedData(
                    source: source, line: line, reason: "expected \(columns) columns as in \(widthSource), found \(fields.count)")
            }
            for (k, field) in fields.enumerated() {
                if skipping.contains(k) { storage.append(0); continue }
                var text = field
                let value = text.withUTF8 { parseNumber($0, 0, $0.count) }
                guard let value else { throw fieldError(field, source: source, line: line, column: k + 1) }
                storage.append(T(value))
            }
            recordLines.append(line)
            return true
        }
        guard !recordLines.isEmpty else { throw InvertNNError.malformedData(source: source, line: 0, reason: "no data records") }
        return (header, try Matrix(rows: recordLines.count, columns: columns, storage: storage), recordLines)
    }
}
