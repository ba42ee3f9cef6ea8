/// The header of a NumPy `.npy` file: the Python literal dictionary
/// `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }` that follows the magic string
/// and the header length (NumPy Enhancement Proposal 1, "A simple file format for NumPy arrays").
///
/// The parser reads exactly that grammar (single- or double-quoted strings without escapes,
/// `True`/`False`, a tuple of non-negative integers) in one pass over the bytes, so a hostile
/// header costs time linear in its length and no memory beyond its fields.
struct NumPyHeader: Sendable, Equatable {
    /// The element type: `'<f4'`, `'>i8'`, `'|u1'`, ….
    let descr: String
    /// Whether the data are stored in column-major (Fortran) order.
    let fortranOrder: Bool
    /// The array's dimensions (empty for a scalar).
    let shape: [Int]

    /// Parses the header text (the bytes between the header length and the data).
    ///
    /// - Throws: ``InvertNNError/malformedData(source:line:reason:)`` (line 0) naming what is
    ///   wrong: not a dictionary, a key other than `descr`, `fortran_order` and `shape`, a missing
    ///   or repeated key, a value of the wrong kind, a dimension beyond `Int`.
    init(parsing bytes: ArraySlice<UInt8>, source: String) throws {
        var parser = Parser(bytes: Array(bytes), source: source)
        var descr: String?, fortran: Bool?, shape: [Int]?
        try parser.expect("{")
        while true {
            parser.skipSpaces()
            if parser.peek == UInt8(ascii: "}") { parser.position += 1; break }
            let key = try parser.string()
            try parser.expect(":")
            switch key {
            case "descr":
                guard descr == nil else { throw parser.failure("the key 'descr' appears twice") }
                descr = try parser.string()
            case "fortran_order":
                guard fortran == nil else { throw parser.failure("the key 'fortran_order' appears twice") }
                fortran = try parser.boolean()
            case "shape":
                guard shape == nil else { throw parser.failure("the key 'shape' appears twice") }
                shape = try parser.tuple()
            default:
                throw parser.failure("unknown key '\(key.prefix(40))' (a .npy header has 'descr', 'fortran_order' and 'shape')")
            }
            parser.skipSpaces()
            if parser.peek == UInt8(ascii: ",") { parser.position += 1; continue }
            try parser.expect("}")
            break
        }
        parser.skipSpaces()
        guard parser.position == parser.bytes.count else { throw parser.failure("text after the closing brace") }
        guard let descr, let fortran, let shape else {
            let missing = [("descr", descr == nil), ("fortran_order", fortran == nil), ("shape", shape == nil)].filter(\.1).map(\.0)
            throw parser.failure("the header lacks \(missing.map { "'\($0)'" }.joined(separator: ", "))")
        }
        self.descr = descr
        self.fortranOrder = fortran
        self.shape = shape
    }

    /// A cursor over the header bytes.
    private struct Parser {
        let bytes: [UInt8]
        let source: String
        var position = 0

        var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

        func failure(_ reason: String) -> InvertNNError {
            .malformedData(source: source, line: 0, reason: "bad .npy header at byte \(position): \(reason)")
        }

        mutating func skipSpaces() {
            // The header is padded with spaces and ends with a newline.
            while let c = peek, c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") {
                position += 1
            }
        }

        mutating func expect(_ character: Character) throws {
            skipSpaces()
            guard let c = peek, c == character.asciiValue else { throw failure("expected '\(character)'") }
            position += 1
        }

        /// A quoted string without escapes (no NumPy key or dtype needs one).
        mutating func string() throws -> String {
            skipSpaces()
            guard let quote = peek, quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") else { throw failure("expected a quoted string") }
            position += 1
            let start = position
            while let c = peek, c != quote {
                guard c != UInt8(ascii: "\\"), c >= 0x20, c < 0x7F else { throw failure("unexpected byte \(c) in a string") }
                position += 1
            }
            guard peek == quote else { throw failure("unterminated string") }
            defer { position += 1 }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }

        mutating func boolean() throws -> Bool {
            skipSpaces()
            for (word, value) in [("True", true), ("False", false)] where bytes[position...].starts(with: word.utf8) {
                position += word.utf8.count
                return value
            }
            throw failure("expected True or False")
        }

        /// `()`, `(n,)` or `(n, m, …)` of non-negative integers (Python 2 wrote `3L`).
        mutating func tuple() throws -> [Int] {
            try expect("(")
            var values = [Int]()
            while true {
                skipSpaces()
                if peek == UInt8(ascii: ")") { position += 1; return values }
                var value = 0, digits = 0
                while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
                    let (times, o1) = value.multipliedReportingOverflow(by: 10)
                    let (sum, o2) = times.addingReportingOverflow(Int(c - UInt8(ascii: "0")))
                    guard !o1, !o2 else { throw failure("a dimension beyond \(Int.max)") }
                    value = sum
                    digits += 1
                    position += 1
                }
                guard digits > 0 else { throw failure("expected a non-negative integer dimension") }
                if peek == UInt8(ascii: "L") { position += 1 }
                // 32 dimensions is NumPy's own limit.
                guard values.count < 32 else { throw failure("more than 32 dimensions") }
                values.append(value)
                skipSpaces()
                if peek == UInt8(ascii: ",") { position += 1; continue }
                try expect(")")
                return values
            }
        }
    }
}
