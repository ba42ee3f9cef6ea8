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
    public static func parseTable<T: Scalar>(
        _ bytes: [UInt8], source: String, as _: T.Type = T.self
    ) throws -> (columnNames: [String], values: Matrix<T>) {
        var header: [String]? = nil
        var headerLine = 0
        var lineNumber = 0
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let text = String(decoding: line, as: UTF8.self).trimmed(" \t\r")
            if text.isEmpty { continue }
            let fields = text.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmed(" \t\"") }
            if fields.contains(where: { field in Double(field).map { !$0.isFinite } ?? true }) {
                header = fields
                headerLine = lineNumber
            }
            break
        }
        let values: Matrix<T> = try parse(bytes, source: source, hasHeader: header != nil)
        if let header {
            guard header.count == values.columns else {
                throw InvertNNError.malformedData(
                    source: source, line: headerLine, reason: "the header has \(header.count) names but the records have \(values.columns) fields")
            }
            return (header, values)
        }
        return ((1...max(values.columns, 1)).map { "column\($0)" }.prefix(values.columns).map { $0 }, values)
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
