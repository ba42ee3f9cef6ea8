import RealModule

/// A JSON value (RFC 8259) with a small strict parser and a deterministic serializer, used for
/// checkpoint headers and metadata.
///
/// Why not Foundation's `JSONSerialization`: its `NSNumber` bridging differs between platforms
/// (integers, booleans and doubles are not distinguished reliably on Linux), while checkpoints
/// need exact round trips. Numbers are kept as `Double` (integers up to 2⁵³ exactly) and written
/// with Swift's shortest round-tripping representation, so a `Double` read back is bit-identical.
/// Object keys are written in sorted order, so equal values serialize to equal bytes.
public indirect enum JSONValue: Equatable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses one JSON text (surrounding whitespace allowed, nothing else after it).
    ///
    /// - Throws: ``InvertNNError/malformedData(source:line:reason:)`` (line 0) naming the byte
    ///   offset and what was expected.
    public static func parse(_ bytes: [UInt8], source: String = "JSON") throws -> JSONValue {
        var parser = JSONParser(bytes: bytes, source: source)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    /// Parses a JSON text given as a string.
    ///
    /// - Throws: as ``parse(_:source:)``.
    public static func parse(_ text: String, source: String = "JSON") throws -> JSONValue {
        try parse(Array(text.utf8), source: source)
    }

    /// The compact JSON text, keys sorted.
    public var description: String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .number(v):
            if !v.isFinite { out += "null" }
            else if v == v.rounded(), Swift.abs(v) < 1e15 { out += String(Int64(v)) }
            else { out += "\(v)" }
        case let .string(s): out += JSONValue.quoted(s)
        case let .array(items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case let .object(members):
            out += "{"
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                out += JSONValue.quoted(key)
                out += ":"
                members[key]!.write(to: &out)
            }
            out += "}"
        }
    }

    /// A JSON string literal with the escapes RFC 8259 §7 requires.
    public static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// The member `key` of an object, or `nil`.
    public subscript(key: String) -> JSONValue? {
        if case let .object(members) = self { return members[key] }
        return nil
    }

    /// The string, or `nil` for other kinds.
    public var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    /// The number, or `nil` for other kinds.
    public var doubleValue: Double? { if case let .number(v) = self { return v }; return nil }
    /// The number if it is an integer that fits `Int`, else `nil`.
    public var intValue: Int? {
        guard case let .number(v) = self, v == v.rounded(), Swift.abs(v) <= 9.007_199_254_740_992e15 else { return nil }
        return Int(v)
    }
    /// The Boolean, or `nil`.
    public var boolValue: Bool? { if case let .bool(b) = self { return b }; return nil }
    /// The elements of an array, or `nil`.
    public var arrayValue: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
    /// The members of an object, or `nil`.
    public var objectValue: [String: JSONValue]? { if case let .object(o) = self { return o }; return nil }
}

extension JSONValue {
    /// The JSON form of a layer configuration value (integers and doubles both become numbers).
    public init(_ value: ConfigurationValue) {
        switch value {
        case let .int(v): self = .number(Double(v))
        case let .double(v): self = .number(v)
        case let .string(s): self = .string(s)
        case let .bool(b): self = .bool(b)
        case let .ints(v): self = .array(v.map { .number(Double($0)) })
        case let .doubles(v): self = .array(v.map { .number($0) })
        case let .layers(list): self = .array(list.map { JSONValue(configuration: $0) })
        case .null: self = .null
        }
    }

    /// The JSON object of a whole layer configuration.
    public init(configuration: [String: ConfigurationValue]) {
        self = .object(configuration.mapValues { JSONValue($0) })
    }
}

/// Recursive-descent parser over UTF-8 bytes.
struct JSONParser {
    let bytes: [UInt8]
    let source: String
    var position = 0

    init(bytes: [UInt8], source: String) {
        self.bytes = bytes
        self.source = source
    }

    func error(_ reason: String) -> InvertNNError {
        .malformedData(source: source, line: 0, reason: "\(reason) at byte \(position)")
    }

    mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < 256 else { throw error("nesting deeper than 256") }
        guard position < bytes.count else { throw error("unexpected end of JSON") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        default: return .number(try parseNumber())
        }
    }

    mutating func expectLiteral(_ word: String) throws {
        let w = Array(word.utf8)
        guard position + w.count <= bytes.count, Array(bytes[position..<(position + w.count)]) == w else {
            throw error("expected \(word)")
        }
        position += w.count
    }

    mutating func parseObject(depth: Int) throws -> JSONValue {
        position += 1
        var members = [String: JSONValue]()
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
            position += 1
            skipWhitespace()
            guard members[key] == nil else { throw error("duplicate key \"\(key)\"") }
            members[key] = try parseValue(depth: depth + 1)
            skipWhitespace()
            guard position < bytes.count else { throw error("unterminated object") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
            throw error("expected ',' or '}'")
        }
    }

    mutating func parseArray(depth: Int) throws -> JSONValue {
        position += 1
        var items = [JSONValue]()
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard position < bytes.count else { throw error("unterminated array") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
            throw error("expected ',' or ']'")
        }
    }

    mutating func parseString() throws -> String {
        position += 1
        var scalars = String.UnicodeScalarView()
        var raw = [UInt8]()
        func flush() throws {
            guard !raw.isEmpty else { return }
            guard let text = String(validating: raw, as: UTF8.self) else { throw error("invalid UTF-8 in a string") }
            scalars.append(contentsOf: text.unicodeScalars)
            raw.removeAll()
        }
        while position < bytes.count {
            let c = bytes[position]
            if c == UInt8(ascii: "\"") {
                position += 1
                try flush()
                return String(scalars)
            }
            if c < 0x20 { throw error("control character in a string") }
            if c == UInt8(ascii: "\\") {
                try flush()
                position += 1
                guard position < bytes.count else { break }
                let e = bytes[position]
                position += 1
                switch e {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                              bytes[position + 1] == UInt8(ascii: "u") else { throw error("unpaired surrogate") }
                        position += 2
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("bad low surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("invalid code point") }
                    scalars.append(scalar)
                default: throw error("invalid escape")
                }
                continue
            }
            raw.append(c)
            position += 1
        }
        throw error("unterminated string")
    }

    mutating func parseHex4() throws -> UInt32 {
        guard position + 4 <= bytes.count,
              let v = UInt32(String(decoding: bytes[position..<(position + 4)], as: UTF8.self), radix: 16) else {
            throw error("expected 4 hex digits")
        }
        position += 4
        return v
    }

    mutating func parseNumber() throws -> Double {
        let start = position
        while position < bytes.count {
            let c = bytes[position]
            let isNumberByte = (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-")
                || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
            guard isNumberByte else { break }
            position += 1
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        guard !text.isEmpty, let first = text.first, first == "-" || first.isNumber,
              let value = Double(text), value.isFinite else {
            position = start
            throw error(text.isEmpty ? "unexpected character" : "invalid number \"\(text.prefix(30))\"")
        }
        return value
    }
}
