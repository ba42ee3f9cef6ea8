import Foundation
import InvertNN

/// The one JSON object a command prints on stdout (with `--json`; `train` and `sbi` always):
/// an `Encodable` value encoded by `JSONEncoder` with sorted keys and unescaped slashes, on one
/// line, and nothing else on stdout.
enum JSONOutput {
    /// Writes `value` as one line of JSON on standard output.
    ///
    /// - Throws: `EncodingError` for a value JSON cannot hold; ``InvertNNError/io(path:reason:)``
    ///   when standard output cannot be written (``StandardOutput/line(_:)``).
    static func line<V: Encodable>(_ value: V) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try StandardOutput.line(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// A coding key made from any string (result keys that depend on the data, such as
    /// `bits_per_dim` or `nats_per_dim`).
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

extension KeyedEncodingContainer where Key == JSONOutput.Key {
    /// Encodes `value` under `key`, or `null` when it is NaN or infinite (JSON has no such numbers).
    mutating func encodeFinite(_ value: Double, _ key: String) throws {
        if value.isFinite { try encode(value, forKey: .init(key)) } else { try encodeNil(forKey: .init(key)) }
    }

    /// Encodes `value` under `key` (`null` for nil).
    mutating func encodeOrNull<V: Encodable>(_ value: V?, _ key: String) throws {
        if let value { try encode(value, forKey: .init(key)) } else { try encodeNil(forKey: .init(key)) }
    }
}

/// `invertnn train`'s result: the figures of the selected epoch. Per-dimension keys are
/// `*_bits_per_dim` for integer data and `*_nats_per_dim` for continuous data.
struct TrainResultJSON: Encodable {
    var dataset: String
    var discrete: Bool
    var train: Double
    var validation: Double
    var test: Double
    var testNLL: Double
    var bestEpoch: Int
    var epochs: Int
    var seconds: Double
    var parameters: Int
    var precision: String
    var contextColumns: [String]?
    /// Absolute path of the model file.
    var model: String
    /// Absolute path of the per-epoch history CSV, if written.
    var history: String?

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: JSONOutput.Key.self)
        let unit = discrete ? "bits_per_dim" : "nats_per_dim"
        try c.encode(dataset, forKey: .init("dataset"))
        try c.encodeFinite(train, "train_\(unit)")
        try c.encodeFinite(validation, "validation_\(unit)")
        try c.encodeFinite(test, "test_\(unit)")
        try c.encodeFinite(testNLL, "test_nll")
        try c.encode(bestEpoch, forKey: .init("best_epoch"))
        try c.encode(epochs, forKey: .init("epochs"))
        try c.encodeFinite(seconds, "seconds")
        try c.encode(parameters, forKey: .init("parameters"))
        try c.encode(precision, forKey: .init("precision"))
        if let contextColumns { try c.encode(contextColumns, forKey: .init("context_columns")) }
        try c.encode(model, forKey: .init("model"))
        if let history { try c.encode(history, forKey: .init("history")) }
    }
}

/// `invertnn eval --json`: one entry per scored split.
struct EvalResultJSON: Encodable {
    struct Split {
        var name: String
        var rows: Int
        var nll: Double
        var perDimension: Double
    }
    var model: String
    var discrete: Bool
    var splits: [Split]

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: JSONOutput.Key.self)
        try c.encode(model, forKey: .init("model"))
        var list = c.nestedUnkeyedContainer(forKey: .init("splits"))
        for split in splits {
            var s = list.nestedContainer(keyedBy: JSONOutput.Key.self)
            try s.encode(split.name, forKey: .init("name"))
            try s.encode(split.rows, forKey: .init("rows"))
            try s.encodeFinite(split.nll, "nll")
            try s.encodeFinite(split.perDimension, discrete ? "bits_per_dim" : "nats_per_dim")
        }
    }
}

/// `invertnn sample --json`.
struct SampleResultJSON: Encodable {
    var model: String
    var count: Int
    var temperature: Double
    var seed: UInt64
    var png: String?
    var csv: String?

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: JSONOutput.Key.self)
        try c.encode(model, forKey: .init("model"))
        try c.encode(count, forKey: .init("count"))
        try c.encodeFinite(temperature, "temperature")
        try c.encode(seed, forKey: .init("seed"))
        try c.encodeOrNull(png, "png")
        try c.encodeOrNull(csv, "csv")
    }
}

/// `invertnn density --json`.
struct DensityResultJSON: Encodable {
    var png: String
    var massInWindow: Double
    var maxLogDensity: Double

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: JSONOutput.Key.self)
        try c.encode(png, forKey: .init("png"))
        try c.encodeFinite(massInWindow, "mass_in_window")
        try c.encodeFinite(maxLogDensity, "max_log_density")
    }
}
