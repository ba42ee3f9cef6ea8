import RealModule

extension CSVReader {
    /// Parses a numeric CSV whose first line may be a header, detected automatically: the first
    /// non-blank line is a header when one of its fields is not a finite number.
    ///
    /// - Returns: the column names (from the header, else `"column1"`, `"column2"`, …) and the
    ///   `[records, fields]` values.
    /// - Throws: as ``parse(_:source:hasHeader:as:)``; also
    ///   ``InvertNNError/malformedData(source:line:reason:)`` if the header's field count differs
    ///   from the records'.
    ///
    /// - Parameters:
    ///   - rawBytes: the file content (UTF-8 or ASCII; a byte-order mark is skipped).
    ///   - source: a name for error messages (usually the path).
    ///   - as: the scalar type of the result.
    ///   - skipping: given the column names, the 0-based columns not to parse (a text
    ///     label, say); they read as 0 in the result, so positions in errors stay those of the file.
    public static func parseTable<T: Scalar>(
        _ rawBytes: [UInt8], source: String, as _: T.Type = T.self,
        skipping: ([String]) throws -> Set<Int> = { _ in [] }
    ) throws -> (columnNames: [String], values: Matrix<T>) {
        // A UTF-8 byte-order mark would otherwise stick to the first column name.
        var bytes = lineFeedEnded(rawBytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(rawBytes.dropFirst(3)) : rawBytes)
        var header: [String]? = nil
        var headerLine = 0
        var lineNumber = 0
        var firstFields = [String]()
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let text = String(decoding: line, as: UTF8.self).trimmed(" \t\r")
            if text.isEmpty { continue }
            let fields = text.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmed(" \t\"") }
            firstFields = fields
            if fields.contains(where: { field in Double(field).map { !$0.isFinite } ?? true }) {
                header = fields
                headerLine = lineNumber
            }
            break
        }
        let names = header ?? (0..<firstFields.count).map { "column\($0 + 1)" }
        let skipped = try skipping(names)
        if !skipped.isEmpty {
            // Replace the skipped fields of every record by "0" before the numeric parse.
            var rewritten = [UInt8]()
            rewritten.reserveCapacity(bytes.count)
            var seenHeader = header == nil
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
            bytes = rewritten
        }
        let values: Matrix<T> = try parse(bytes, source: source, hasHeader: header != nil)
        if let header {
            guard header.count == values.columns else {
                throw InvertNNError.malformedData(
                    source: source, line: headerLine, reason: "the header has \(header.count) names but the records have \(values.columns) fields")
            }
            return (header, values)
        }
        return ((0..<values.columns).map { "column\($0 + 1)" }, values)
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
