/// Finds a key that appears twice in one JSON object.
///
/// Foundation's `JSONDecoder` and `JSONSerialization` accept such text and keep one of the values
/// silently, so a safetensors header naming a tensor twice, or holding two `__metadata__` objects,
/// would load as whichever copy the parser kept. This is one linear pass over the bytes (each byte
/// read once, each key hashed once), run on text the JSON parser has already accepted; on
/// anything unexpected it stops and reports nothing rather than trap.
enum JSONDuplicateKeys {
    /// A key found twice: the key (escapes decoded, so `"a"` and `"\u0061"` are one key) and
    /// the keys of the objects that enclose its object, outermost first (empty at the top level).
    struct Duplicate: Equatable {
        let key: String
        let within: [String]
    }

    /// The first key that repeats within one object of the JSON text `bytes`, or `nil`.
    static func first(in bytes: UnsafeBufferPointer<UInt8>) -> Duplicate? {
        /// An open object or array: the keys seen so far (objects), and the key it is the value of.
        struct Container {
            var keys: Set<String>
            let isObject: Bool
            let name: String?
        }
        var open = [Container]()
        // The key whose value comes next, which names a container opened for it.
        var pendingKey: String?
        var i = 0
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                open.append(Container(keys: [], isObject: bytes[i] == UInt8(ascii: "{"), name: pendingKey))
                pendingKey = nil
                i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = open.popLast()
                i += 1
            case UInt8(ascii: "\""):
                guard let (text, end) = string(in: bytes, from: i) else { return nil }
                i = end
                while i < bytes.count, isSpace(bytes[i]) { i += 1 }
                // A string followed by ':' inside an object is a key; any other string is a value.
                if i < bytes.count, bytes[i] == UInt8(ascii: ":"), let last = open.indices.last, open[last].isObject {
                    guard open[last].keys.insert(text).inserted else {
                        return Duplicate(key: text, within: open.compactMap(\.name))
                    }
                    pendingKey = text
                    i += 1
                } else {
                    pendingKey = nil
                }
            case let byte:
                // Numbers, literals and separators; whitespace keeps a pending key for its value.
                if !isSpace(byte) && byte != UInt8(ascii: ":") { pendingKey = nil }
                i += 1
            }
        }
        return nil
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    /// The decoded JSON string whose opening quote is at `start`, and the index after its closing
    /// quote; `nil` if it is unterminated or holds a malformed escape.
    private static func string(in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> (String, Int)? {
        var utf8 = [UInt8]()
        var i = start + 1
        // A high surrogate waiting for its low half (`\uD834\uDD1E` is one scalar).
        var highSurrogate: UInt32?
        func append(_ scalar: Unicode.Scalar) { utf8.append(contentsOf: Array(String(scalar).utf8)) }
        while i < bytes.count {
            let byte = bytes[i]
            if byte == UInt8(ascii: "\"") {
                if highSurrogate != nil { append("\u{FFFD}") }
                return (String(decoding: utf8, as: UTF8.self), i + 1)
            }
            guard byte == UInt8(ascii: "\\") else {
                if highSurrogate != nil { append("\u{FFFD}"); highSurrogate = nil }
                utf8.append(byte)
                i += 1
                continue
            }
            guard i + 1 < bytes.count else { return nil }
            let escaped = bytes[i + 1]
            if escaped == UInt8(ascii: "u") {
                guard i + 6 <= bytes.count, let unit = UInt32(String(decoding: UnsafeBufferPointer(rebasing: bytes[(i + 2)..<(i + 6)]), as: UTF8.self), radix: 16)
                else { return nil }
                i += 6
                if let high = highSurrogate {
                    highSurrogate = nil
                    if (0xDC00...0xDFFF).contains(unit) {
                        append(Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00)) ?? "\u{FFFD}")
                        continue
                    }
                    append("\u{FFFD}")
                }
                if (0xD800...0xDBFF).contains(unit) { highSurrogate = unit; continue }
                append(Unicode.Scalar(unit) ?? "\u{FFFD}")
                continue
            }
            if highSurrogate != nil { append("\u{FFFD}"); highSurrogate = nil }
            switch escaped {
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            default: utf8.append(escaped)  // \" \\ \/
            }
            i += 2
        }
        return nil
    }
}
