import RealModule

/// A safetensors file in memory: named tensors of `F32` or `F64` values plus string metadata.
///
/// Layout (the format of Hugging Face's `safetensors`, https://github.com/huggingface/safetensors):
/// 1. 8 bytes: `N`, the header length, unsigned little-endian;
/// 2. `N` bytes: a UTF-8 JSON object mapping every tensor name to
///    `{"dtype": "F32"|"F64", "shape": [..], "data_offsets": [begin, end]}` and the optional key
///    `"__metadata__"` to an object of string values; padded with spaces so the data starts at a
///    multiple of 8 bytes;
/// 3. the data section: each tensor's elements, row-major, little-endian, at
///    `[begin, end)` relative to the start of the section, tensors contiguous and in file order.
///
/// Tensors keep their raw bytes, so values round-trip bit for bit.
public struct SafeTensors: Sendable {
    /// The JSON header: tensor entries by name plus the optional `__metadata__` object.
    struct Header: Codable {
        static let metadataKey = "__metadata__"

        /// One tensor's entry; fields are optional so that a missing one is reported by name.
        struct Entry: Codable {
            var dtype: String?
            var shape: [Int]?
            var dataOffsets: [Int]?
            enum CodingKeys: String, CodingKey { case dtype, shape, dataOffsets = "data_offsets" }
        }

        /// A header that is JSON but not a safetensors header, with the reason.
        struct Problem: Error { let reason: String }

        var entries: [String: Entry]
        var metadata: [String: String]?

        init(entries: [String: Entry], metadata: [String: String]?) {
            self.entries = entries
            self.metadata = metadata
        }

        init(from decoder: any Decoder) throws {
            guard let container = try? decoder.container(keyedBy: DynamicCodingKey.self) else {
                throw Problem(reason: "the header is not a JSON object")
            }
            entries = [:]
            metadata = nil
            for key in container.allKeys {
                if key.stringValue == Self.metadataKey {
                    guard let object = try? container.nestedContainer(keyedBy: DynamicCodingKey.self, forKey: key) else {
                        throw Problem(reason: "__metadata__ is not an object")
                    }
                    var values = [String: String]()
                    for name in object.allKeys {
                        guard let text = try? object.decode(String.self, forKey: name) else {
                            throw Problem(reason: "__metadata__ value of \(name.stringValue) is not a string")
                        }
                        values[name.stringValue] = text
                    }
                    metadata = values
                } else {
                    entries[key.stringValue] = try Self.entry(key, in: container)
                }
            }
        }

        /// A tensor entry, with a missing or mistyped field left `nil` (a shape that is not a list
        /// of integers is reported as such).
        private static func entry(_ key: DynamicCodingKey, in container: KeyedDecodingContainer<DynamicCodingKey>) throws -> Entry {
            guard let fields = try? container.nestedContainer(keyedBy: Entry.CodingKeys.self, forKey: key) else {
                return Entry(dtype: nil, shape: nil, dataOffsets: nil)
            }
            let shape = try? fields.decode([Int].self, forKey: .shape)
            if shape == nil, fields.contains(.shape) {
                throw Problem(reason: "tensor \(key.stringValue) has a shape that is not a list of sizes")
            }
            // Present but not integers: an empty list, which fails the [begin, end] check.
            let offsets = (try? fields.decode([Int].self, forKey: .dataOffsets)) ?? (fields.contains(.dataOffsets) ? [] : nil)
            return Entry(dtype: try? fields.decode(String.self, forKey: .dtype), shape: shape, dataOffsets: offsets)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: DynamicCodingKey.self)
            for (name, entry) in entries { try container.encode(entry, forKey: DynamicCodingKey(name)) }
            if let metadata { try container.encode(metadata, forKey: DynamicCodingKey(Self.metadataKey)) }
        }
    }

    /// The element types this library reads and writes.
    public enum DType: String, Sendable, CaseIterable {
        case f32 = "F32", f64 = "F64"
        /// Bytes per element.
        public var byteCount: Int { self == .f32 ? 4 : 8 }
    }

    /// One named tensor with its raw little-endian bytes.
    public struct Tensor: Sendable, Equatable {
        /// The tensor name, unique in the file.
    public let name: String
        /// The element type (`F32` or `F64`).
    public let dtype: DType
        /// The shape, row-major; the element count is the product.
    public let shape: [Int]
        /// `shape.product · dtype.byteCount` bytes, little-endian.
        public let bytes: [UInt8]

        /// A tensor from values of precision `T` (its dtype is `T.dtypeName`).
        ///
        /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `values.count` is not
        ///   the product of `shape`.
        public init<T: Scalar>(name: String, shape: [Int], values: [T]) throws {
            guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
                throw InvertNNError.invalidArgument(
                    operation: "SafeTensors.Tensor", reason: "\(values.count) values for shape \(shape) of \(name)")
            }
            var bytes = [UInt8]()
            bytes.reserveCapacity(values.count * MemoryLayout<T>.size)
            // Float → Float and Float/Double → Double conversions are exact.
            if T.dtypeName == DType.f32.rawValue {
                for v in values { withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
                self.dtype = .f32
            } else {
                for v in values { withUnsafeBytes(of: Double(v).bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
                self.dtype = .f64
            }
            self.name = name
            self.shape = shape
            self.bytes = bytes
        }

        init(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.bytes = bytes
        }

        /// The elements converted to `T` (exact when the dtype is `T`'s; otherwise rounded as
        /// `T(Float)` or `T(Double)`).
        public func values<T: Scalar>(as _: T.Type = T.self) -> [T] {
            let count = bytes.count / dtype.byteCount
            var out = [T]()
            out.reserveCapacity(count)
            bytes.withUnsafeBytes { raw in
                for i in 0..<count {
                    switch dtype {
                    case .f32:
                        let bits = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                        out.append(T(Float(bitPattern: bits)))
                    case .f64:
                        let bits = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                        out.append(T(Double(bitPattern: bits)))
                    }
                }
            }
            return out
        }
    }

    /// The tensors in file order (names unique).
    public var tensors: [Tensor]
    /// The `__metadata__` entries (string to string, as the format requires).
    public var metadata: [String: String]

    /// A file with the given tensors and metadata.
    public init(tensors: [Tensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The tensor called `name`, or `nil`.
    public func tensor(named name: String) -> Tensor? { tensors.first { $0.name == name } }

    /// The largest header accepted on reading (the reference implementation's limit).
    public static let maximumHeaderLength = 100_000_000

    /// The file's bytes.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for duplicate tensor names
    ///   or a tensor named `__metadata__`.
    public func encode() throws -> [UInt8] {
        var header = Header(entries: [:], metadata: metadata.isEmpty ? nil : metadata)
        var offset = 0
        for t in tensors {
            guard header.entries[t.name] == nil, t.name != Header.metadataKey else {
                throw InvertNNError.invalidArgument(operation: "SafeTensors.encode", reason: "duplicate or reserved tensor name \(t.name)")
            }
            header.entries[t.name] = Header.Entry(dtype: t.dtype.rawValue, shape: t.shape, dataOffsets: [offset, offset + t.bytes.count])
            offset += t.bytes.count
        }
        var headerBytes = Array(try JSONCoding.encode(header, operation: "SafeTensors.encode").utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out += headerBytes
        for t in tensors { out += t.bytes }
        return out
    }

    /// Parses a safetensors file.
    ///
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - path: names the file in errors.
    /// - Throws: ``CheckpointError/truncated(path:expected:actual:)`` if the file is shorter than
    ///   8 bytes or than its header and data say; ``CheckpointError/badHeaderLength(path:length:fileSize:)``;
    ///   ``CheckpointError/malformedHeader(path:reason:)`` for a header that is not a JSON object
    ///   of tensor entries; ``CheckpointError/duplicateKey(path:key:within:)`` for a key that
    ///   appears twice in one object of the header (two tensors of one name, two `__metadata__`);
    ///   ``CheckpointError/unknownDtype(path:tensor:dtype:)``;
    ///   ``CheckpointError/badOffsets(path:tensor:reason:)`` for offsets that disagree with the shape
    ///   or overlap.
    public static func decode(_ bytes: [UInt8], path: String) throws -> SafeTensors {
        guard bytes.count >= 8 else { throw CheckpointError.truncated(path: path, expected: 8, actual: bytes.count) }
        let length = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length >= 2, length <= UInt64(maximumHeaderLength) else {
            throw CheckpointError.badHeaderLength(path: path, length: length, fileSize: bytes.count)
        }
        let headerEnd = 8 + Int(length)
        guard headerEnd <= bytes.count else {
            throw CheckpointError.truncated(path: path, expected: headerEnd, actual: bytes.count)
        }
        let header: Header
        do {
            header = try JSONCoding.decode(Header.self, from: bytes[8..<headerEnd], source: "header")
        } catch let InvertNNError.malformedData(_, _, reason) {
            throw CheckpointError.malformedHeader(path: path, reason: "not valid JSON (\(reason))")
        } catch let problem as Header.Problem {
            throw CheckpointError.malformedHeader(path: path, reason: problem.reason)
        }
        // The decoder kept one value of a repeated key; which one the writer meant is unknown.
        if let duplicate = bytes[8..<headerEnd].withUnsafeBufferPointer({ JSONDuplicateKeys.first(in: $0) }) {
            throw CheckpointError.duplicateKey(path: path, key: duplicate.key, within: duplicate.within)
        }
        let metadata = header.metadata ?? [:]
        let dataCount = bytes.count - headerEnd
        var entries = [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)]()
        // In name order, so that the same file always gives the same error.
        for (name, entry) in header.entries.sorted(by: { $0.key < $1.key }) {
            guard let dtypeName = entry.dtype, let shape = entry.shape, let offsets = entry.dataOffsets else {
                throw CheckpointError.malformedHeader(path: path, reason: "tensor \(name) lacks dtype, shape or data_offsets")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw CheckpointError.unknownDtype(path: path, tensor: name, dtype: dtypeName)
            }
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw CheckpointError.malformedHeader(path: path, reason: "tensor \(name) has a shape that is not a list of sizes")
            }
            guard offsets.count == 2, offsets[0] >= 0, offsets[1] >= offsets[0] else {
                throw CheckpointError.badOffsets(path: path, tensor: name, reason: "data_offsets must be [begin, end] with 0 ≤ begin ≤ end")
            }
            let (begin, end) = (offsets[0], offsets[1])
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d); return (p, acc.1 || o)
            }
            let (byteCount, byteOverflow) = elements.multipliedReportingOverflow(by: dtype.byteCount)
            guard !overflow, !byteOverflow else {
                throw CheckpointError.malformedHeader(
                    path: path, reason: "tensor \(name) has shape \(shape), whose size overflows a 64-bit byte count")
            }
            guard end - begin == byteCount else {
                throw CheckpointError.badOffsets(
                    path: path, tensor: name,
                    reason: "data_offsets [\(begin), \(end)] hold \(end - begin) bytes, shape \(shape) of \(dtype.rawValue) needs \(byteCount)")
            }
            entries.append((name, dtype, shape, begin, end))
        }
        // The size the whole file needs, not just the first tensor found beyond its end.
        if let needed = entries.map(\.end).max(), needed > dataCount {
            throw CheckpointError.truncated(path: path, expected: headerEnd + needed, actual: bytes.count)
        }
        // Tensors must tile the data section without overlap (the reference reader's rule).
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var cursor = 0
        for e in entries {
            guard e.begin == cursor else {
                throw CheckpointError.badOffsets(
                    path: path, tensor: e.name, reason: "data starts at \(e.begin) but the previous tensor ends at \(cursor) (gap or overlap)")
            }
            cursor = e.end
        }
        guard cursor == dataCount else {
            throw CheckpointError.badOffsets(
                path: path, tensor: entries.last?.name ?? "(none)",
                reason: "the tensors cover \(cursor) bytes but the data section has \(dataCount)")
        }
        let tensors = entries.map {
            Tensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, bytes: Array(bytes[(headerEnd + $0.begin)..<(headerEnd + $0.end)]))
        }
        return SafeTensors(tensors: tensors, metadata: metadata)
    }

    /// Reads and parses the file at `path`.
    ///
    /// - Throws: ``CheckpointError/io(path:reason:)`` if it cannot be read, else as ``decode(_:path:)``.
    public static func read(path: String) throws -> SafeTensors {
        let bytes: [UInt8]
        do { bytes = try AtomicFile.read(path: path) } catch let InvertNNError.io(_, reason) {
            throw CheckpointError.io(path: path, reason: reason)
        }
        return try decode(bytes, path: path)
    }

    /// Writes the file atomically (temporary file + rename, ``AtomicFile``).
    ///
    /// - Throws: as ``encode()``; ``CheckpointError/io(path:reason:)`` if writing fails.
    public func write(to path: String) throws {
        let bytes = try encode()
        do { try AtomicFile.write(bytes, to: path) } catch let InvertNNError.io(_, reason) {
            throw CheckpointError.io(path: path, reason: reason)
        }
    }
}
