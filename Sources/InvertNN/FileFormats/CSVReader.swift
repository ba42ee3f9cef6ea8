import RealModule

/// A parser of numeric comma-separated values (RFC 4180) into a ``Matrix``.
///
/// Every record must have the same number of fields, and every field must be a finite decimal
/// number (leading/trailing spaces allowed; `1`, `-2.5`, `3e-4`; not `0x10`, `nan` or `inf`).
/// Lines end with `\n`, `\r\n`, or `\r` alone in a file without `\n` (classic Mac OS);
/// blank lines are skipped. An optional first header line is skipped unparsed. A file with quoted
/// fields (`"1.5"`, `"a, b"`, doubled quotes `""`, line breaks inside quotes) is read through the
/// CSV.swift package (``parseQuoted(_:source:hasHeader:skipping:as:)``); a file without any `"` by a
/// byte scanner.
enum CSVReader {
    /// Parses `bytes` (UTF-8 or ASCII text) into a `[records, fields]` matrix.
    ///
    /// - Parameters:
    ///   - bytes: the file content.
    ///   - source: a name for error messages (usually the path).
    ///   - hasHeader: skip the first non-blank line.
    ///   - as: the scalar type of the result.
    /// - Throws: ``InvertNNError/malformedData(source:line:reason:)`` naming the 1-based line and
    ///   column of the first field that is empty, not a number or not finite, or of a record whose
    ///   field count differs from the first record's; and for input with no records.
    static func parse<T: Scalar>(
        _ bytes: [UInt8], source: String, hasHeader: Bool = false, as _: T.Type = T.self
    ) throws -> Matrix<T> {
        let bytes = lineFeedEnded(bytes)
        // Quoted fields (RFC 4180) go through the CSV package; plain numeric rows stay on the
        // byte scanner below, which is several times faster (see parseQuoted).
        if containsQuote(bytes) { return try parseQuoted(bytes, source: source, hasHeader: hasHeader).values }
        var storage = [T]()
        var columns = -1
        // Records are held to the header's width when there is one, so that a short record right
        // after the header is the one blamed, not every record after it.
        var widthSource = "the first record"
        var rows = 0
        var line = 0
        var headerPending = hasHeader
        var fields = [T]()
        try bytes.withUnsafeBufferPointer { text in
            var start = 0
            let end = text.count
            while start < end {
                line += 1
                var stop = start
                while stop < end && text[stop] != UInt8(ascii: "\n") { stop += 1 }
                var lineEnd = stop
                if lineEnd > start && text[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                defer { start = stop + 1 }
                if isBlank(text, start, lineEnd) { continue }
                if headerPending {
                    headerPending = false
                    columns = 1 + UnsafeBufferPointer(rebasing: text[start..<lineEnd]).reduce(0) { $0 + ($1 == UInt8(ascii: ",") ? 1 : 0) }
                    widthSource = "the header"
                    continue
                }
                fields.removeAll(keepingCapacity: true)
                var fieldStart = start
                var column = 0
                while true {
                    var fieldEnd = fieldStart
                    while fieldEnd < lineEnd && text[fieldEnd] != UInt8(ascii: ",") { fieldEnd += 1 }
                    column += 1
                    guard let value = parseNumber(text, fieldStart, fieldEnd) else {
                        let raw = String(decoding: UnsafeBufferPointer(rebasing: text[fieldStart..<fieldEnd]), as: UTF8.self)
                        throw fieldError(raw, source: source, line: line, column: column)
                    }
                    fields.append(T(value))
                    if fieldEnd >= lineEnd { break }
                    fieldStart = fieldEnd + 1
                }
                if columns < 0 { columns = fields.count }
                guard fields.count == columns else {
                    throw InvertNNError.malformedData(
                        source: source, line: line,
                        reason: "expected \(columns) columns as in \(widthSource), found \(fields.count)")
                }
                storage.append(contentsOf: fields)
                rows += 1
            }
        }
        guard rows > 0 else { throw InvertNNError.malformedData(source: source, line: 0, reason: "no data records") }
        return try Matrix(rows: rows, columns: columns, storage: storage)
    }

    /// The 1-based file line of every non-blank line, as ``parse(_:source:hasHeader:as:)``
    /// counts and skips them. A parsed table's records are the last `rows` of these (a header is
    /// the first non-blank line), so callers can name the file line of a record they reject.
    static func nonBlankLineNumbers(_ bytes: [UInt8]) -> [Int] {
        let bytes = lineFeedEnded(bytes)
        var lines = [Int]()
        bytes.withUnsafeBufferPointer { text in
            var start = 0, line = 0
            while start < text.count {
                line += 1
                var stop = start
                while stop < text.count && text[stop] != UInt8(ascii: "\n") { stop += 1 }
                var lineEnd = stop
                if lineEnd > start && text[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                if !isBlank(text, start, lineEnd) { lines.append(line) }
                start = stop + 1
            }
        }
        return lines
    }

    /// `bytes` with every `\r` turned into `\n` when the text has no `\n` at all: a file
    /// saved with classic Mac OS line ends would otherwise be one line (a header, no records).
    static func lineFeedEnded(_ bytes: [UInt8]) -> [UInt8] {
        guard !bytes.contains(UInt8(ascii: "\n")), bytes.contains(UInt8(ascii: "\r")) else { return bytes }
        return bytes.map { $0 == UInt8(ascii: "\r") ? UInt8(ascii: "\n") : $0 }
    }

    /// The error for a field that is not a finite decimal number, naming its line and column.
    static func fieldError(_ raw: String, source: String, line: Int, column: Int) -> InvertNNError {
        // Control characters are shown escaped, so a binary file cannot send terminal escapes.
        let printable = raw.prefix(40).unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }
        let shown = raw.trimmingSpaces.isEmpty ? "an empty field" : "\"\(printable.joined())\""
        // Hexadecimal ("0x10") parses as a Double but is not data in a CSV.
        let what = Double(String(raw.trimmingSpaces)).map { $0.isFinite } == true
            ? "is not a decimal number (only digits, a sign, a point and an exponent are read)" : "is not a finite number"
        return InvertNNError.malformedData(source: source, line: line, reason: "column \(column): \(shown) \(what)")
    }

    private static func isBlank(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        for i in start..<max(start, end) where text[i] != UInt8(ascii: " ") && text[i] != UInt8(ascii: "\t") { return false }
        return true
    }

    /// A finite number from `text[start..<end]`, or nil. Plain integers (the common case for
    /// pixels) are parsed directly; anything else goes through `Double(String)`.
    static func parseNumber(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
        var s = start, e = end
        while s < e && (text[s] == UInt8(ascii: " ") || text[s] == UInt8(ascii: "\t")) { s += 1 }
        while e > s && (text[e - 1] == UInt8(ascii: " ") || text[e - 1] == UInt8(ascii: "\t")) { e -= 1 }
        guard s < e else { return nil }
        var i = s
        var negative = false
        if text[i] == UInt8(ascii: "-") || text[i] == UInt8(ascii: "+") { negative = text[i] == UInt8(ascii: "-"); i += 1 }
        if i < e && e - i <= 15 {
            var value: Int = 0
            var allDigits = true
            for j in i..<e {
                let c = text[j]
                guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { allDigits = false; break }
                value = value * 10 + Int(c - UInt8(ascii: "0"))
            }
            if allDigits { return Double(negative ? -value : value) }
        }
        // Only decimal notation: Double(String) also reads hexadecimal ("0x10" as 16, "0x1p3"),
        // "nan" and "infinity", and stops at a NUL byte ("1\0garbage" read as 1).
        for j in s..<e {
            switch text[j] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"),
                 UInt8(ascii: "+"), UInt8(ascii: "-"): continue
            default: return nil
            }
        }
        let string = String(decoding: UnsafeBufferPointer(rebasing: text[s..<e]), as: UTF8.self)
        // Double(String) accepts "nan" and "inf"; data must be finite.
        guard let value = Double(string), value.isFinite else { return nil }
        return value
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
