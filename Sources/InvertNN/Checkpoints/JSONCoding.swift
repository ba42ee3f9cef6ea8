import Foundation

/// The library's one way to read and write JSON (checkpoint headers and metadata, training
/// state): Foundation's `JSONEncoder`/`JSONDecoder`, whose parsers are linear in the input.
///
/// Keys are written sorted, so equal values give equal bytes; `Double`s are written in Swift's
/// shortest round-tripping form, so a value read back is bit-identical. Non-finite numbers are
/// written as the strings `"inf"`, `"-inf"` and `"nan"` and read back as such (plain JSON has no
/// spelling for them); `/` is not escaped.
enum JSONCoding {
    private static let nonFinite = (positive: "inf", negative: "-inf", nan: "nan")

    /// The compact UTF-8 JSON text of `value`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `value` cannot be encoded
    ///   (naming where).
    static func encode<V: Encodable>(_ value: V, operation: String = "JSON") throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: nonFinite.positive, negativeInfinity: nonFinite.negative, nan: nonFinite.nan)
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch let error as EncodingError {
            throw InvertNNError.invalidArgument(operation: operation, reason: describe(error))
        }
    }

    /// Decodes one `V` from a UTF-8 JSON text. Errors thrown by `V`'s own decoding (typed
    /// library errors) pass through unchanged.
    ///
    /// - Parameter userInfo: context for the decoders of nested values (the layer registry).
    /// - Throws: ``InvertNNError/malformedData(source:line:reason:)`` (line 0) naming the path and
    ///   the problem for malformed JSON or a value of the wrong shape.
    static func decode<V: Decodable>(
        _ type: V.Type, from bytes: some Collection<UInt8>, source: String = "JSON", userInfo: [CodingUserInfoKey: any Sendable] = [:]
    ) throws -> V {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: nonFinite.positive, negativeInfinity: nonFinite.negative, nan: nonFinite.nan)
        decoder.userInfo = userInfo
        do {
            return try decoder.decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw InvertNNError.malformedData(source: source, line: 0, reason: describe(error))
        }
    }

    /// Decodes one `V` from a JSON string (see ``decode(_:from:source:userInfo:)``).
    static func decode<V: Decodable>(
        _ type: V.Type, from text: String, source: String = "JSON", userInfo: [CodingUserInfoKey: any Sendable] = [:]
    ) throws -> V {
        try decode(type, from: Array(text.utf8), source: source, userInfo: userInfo)
    }

    /// A coding path as `a.b[2].c`, or `the top level` when empty.
    static func path(_ codingPath: [any CodingKey]) -> String {
        var out = ""
        for key in codingPath {
            if let index = key.intValue { out += "[\(index)]" } else { out += out.isEmpty ? key.stringValue : ".\(key.stringValue)" }
        }
        return out.isEmpty ? "the top level" : out
    }

    /// What went wrong and where, in one line; the path leaves out its first `depth` keys (those
    /// of an enclosing value the caller names itself).
    static func describe(_ error: DecodingError, below depth: Int = 0) -> String {
        func at(_ codingPath: [any CodingKey]) -> String { path(Array(codingPath.dropFirst(depth))) }
        switch error {
        case let .keyNotFound(key, context):
            return "\(at(context.codingPath + [key])) is missing"
        case let .typeMismatch(type, context):
            return "\(at(context.codingPath)) must be \(kind(type))"
        case let .valueNotFound(type, context):
            return "\(at(context.codingPath)) must be \(kind(type)), got null"
        case let .dataCorrupted(context):
            let detail = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return "\(at(context.codingPath)): \(detail ?? context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    static func describe(_ error: EncodingError) -> String {
        switch error {
        case let .invalidValue(value, context): return "\(path(context.codingPath)): cannot encode \(value)"
        @unknown default: return "\(error)"
        }
    }

    /// A reader's name for a Swift type in messages (`an integer`, `a string`, …).
    private static func kind(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int64.Type, is UInt64.Type, is UInt.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "a Boolean"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a \(name)"
        }
    }
}

/// A key for objects whose member names are data (tensor names, metadata keys).
struct DynamicCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// A 64-bit word written as 16 lowercase hex digits (JSON numbers hold only 53 bits exactly).
struct HexWord: Codable, Equatable {
    var value: UInt64

    init(_ value: UInt64) { self.value = value }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let word = UInt64(try container.decode(String.self), radix: 16) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "must be a hex string")
        }
        value = word
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        let digits = String(value, radix: 16)
        try container.encode(String(repeating: "0", count: 16 - digits.count) + digits)
    }
}
