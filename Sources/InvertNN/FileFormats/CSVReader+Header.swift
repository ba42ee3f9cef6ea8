import RealModule

extension CSVReader {
    /// Parses a numeric CSV whose first line may be a header, detected automatically: the first
    /// non-blank line is a header when one of its fields is not a finite number.
    ///
    /// - Returns: the column names (from the header, else `"column1"`, `"column2"`, …) and the
    ///   `[records, fields]` values.
    /// - Throws: as ``table(_:source:skipping:)``.
    ///
    /// - Parameters:
    ///   - rawBytes: the file content (UTF-8 or ASCII; a byte-order mark is skipped).
    ///   - source: a name for error messages (usually the path).
    ///   - as: the scalar type of the result.
    ///   - skipping: given the column names, the 0-based columns not to parse (a text
    ///     label, say); they read as 0 in the result, so positions in errors stay those of the file.
    static func parseTable<T: Scalar>(
        _ rawBytes: [UInt8], source: String, as _: T.Type = T.self,
        skipping: ([String]) throws -> Set<Int> = { _ in [] }
    ) throws -> (columnNames: [String], values: Matrix<T>) {
        let table = try self.table(rawBytes, source: source, skipping: skipping)
        return (table.columnNames, table.values.converted(to: T.self))
    }

    /// Parses a numeric CSV whose first record may be a header (detected as in
    /// ``parseTable(_:source:as:skipping:)``) into a ``DataTable`` that also holds the file line of
    /// every record. The header row is read by the CSV.swift package (RFC 4180: a quoted name may
    /// hold commas, doubled quotes and line breaks); so is the whole file when it holds a quote
    /// (``parseQuoted(_:source:hasHeader:skipping:as:)``), else the byte scanner of
    /// ``parse(_:source:hasHeader:as:)`` reads the records.
    ///
    /// - Throws: as ``parse(_:source:hasHeader:as:)``; also
    ///   ``InvertNNError/malformedData(source:line:reason:)`` if the header's field count differs
    ///   from the records', and what `skipping` throws.
    static func table(
        _ rawBytes: [UInt8], source: String, skipping: ([String]) throws -> Set<Int> = { _ in [] }
    ) throws -> DataTable {
        // A UTF-8 byte-order mark would otherwise stick to the first column name.
        var bytes = lineFeedEnded(rawBytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(rawBytes.dropFirst(3)) : rawBytes)
        var header: [String]? = nil
        var headerLine = 0
        var firstFields = [String]()
        if let first = try firstRecord(bytes, source: source) {
            let fields = first.fields.map { $0.trimmed(" \t") }
            firstFields = fields
            if fields.contains(where: { field in Double(field).map { !$0.isFinite } ?? true }) {
                header = fields
                headerLine = first.line
            }
        }
        let names = header ?? (0..<firstFields.count).map { "column\($0 + 1)" }
        let skipped = try skipping(names)
        let values: Matrix<Double>
        let recordLines: [Int]
        if containsQuote(bytes) {
            (_, values, recordLines) = try parseQuoted(bytes, source: source, hasHeader: header != nil, skipping: skipped)
        } else {
            if !skipped.isEmpty { bytes = zeroing(skipped, in: bytes, hasHeader: header != nil) }
            values = try parse(bytes, source: source, hasHeader: header != nil)
            recordLines = Array(nonBlankLineNumbers(bytes).suffix(values.rows))
        }
        if let header {
            guard header.count == values.columns else {
                throw InvertNNError.malformedData(
                    source: source, line: headerLine, reason: "the header has \(header.count) names but the records have \(values.columns) fields")
            }
        }
        return DataTable(
            source: source, columnNames: header ?? (0..<values.columns).map { "column\($0 + 1)" }, hasHeader: header != nil,
            values: values, recordLines: recordLines)
    }

    /// `bytes` (without quotes) with the fields of the 0-based columns `skipped` of every record
    /// replaced by `0`, so that a text column is not parsed; the header line stays as it is.
    private static func zeroing(_ skipped: Set<Int>, in bytes: [UInt8], hasHeader: Bool) -> [UInt8] {
        var rewritten = [UInt8]()
        rewritten.reserveCapacity(bytes.count)
        var seenHeader = !hasHeader
        for (index, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if index > 0 { rewritten.append(UInt8(ascii: "\n")) }
            let isBlank = line.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }
            if !seenHeader && !isBlank {
                seenHeader = true
                rewritten.append(contentsOf: line)
                continue
            }
            let fields = line.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
            for (k, field) in fields.enumerated() {
                if k > 0 { rewritten.append(UInt8(ascii: ",")) }
                if skipped.contains(k) && !isBlank { rewritten.append(UInt8(ascii: "0")) } else { rewritten.append(contentsOf: field) }
            }
        }
        return rewritten
    }
}

extension String {
    fileprivate func trimmed(_ set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
