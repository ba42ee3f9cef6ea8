/// The description of a model's training data stored in its checkpoint (`dataset` metadata),
/// which tools use to display and score data. Every field is optional; on reading, a field of the
/// wrong type is treated as absent (tools fall back to defaults), so any object loads.
public struct DatasetDescription: Codable, Sendable, Equatable {
    /// The dataset's name (`"digits"`, a CSV file's name, …).
    public var name: String?
    /// `"image"`, `"points"` or `"tabular"`.
    public var kind: String?
    /// `D`, the data's columns after exclusions.
    public var dimensions: Int?
    /// Image height in pixels (1 for other data).
    public var imageHeight: Int?
    /// Image width in pixels (`D` for other data).
    public var imageWidth: Int?
    /// The names of the modelled columns, in model order.
    public var columns: [String]?
    /// For each modelled column, its index in the source file.
    public var sourceColumns: [Int]?
    /// Whether `name` is a bundled or toy dataset rather than a file.
    public var named: Bool?
    /// The names of the context columns of a conditional model.
    public var contextColumns: [String]?

    /// A description; every field defaults to absent.
    public init(
        name: String? = nil, kind: String? = nil, dimensions: Int? = nil, imageHeight: Int? = nil, imageWidth: Int? = nil,
        columns: [String]? = nil, sourceColumns: [Int]? = nil, named: Bool? = nil, contextColumns: [String]? = nil
    ) {
        self.name = name
        self.kind = kind
        self.dimensions = dimensions
        self.imageHeight = imageHeight
        self.imageWidth = imageWidth
        self.columns = columns
        self.sourceColumns = sourceColumns
        self.named = named
        self.contextColumns = contextColumns
    }

    private enum CodingKeys: String, CodingKey { case name, kind, dimensions, imageHeight, imageWidth, columns, sourceColumns, named, contextColumns }

    /// Reads the fields it recognizes; absent, `null` or mistyped ones become `nil`.
    ///
    /// - Throws: `DecodingError` only if the value is not a JSON object.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try? c.decode(String.self, forKey: .name)
        kind = try? c.decode(String.self, forKey: .kind)
        dimensions = try? c.decode(Int.self, forKey: .dimensions)
        imageHeight = try? c.decode(Int.self, forKey: .imageHeight)
        imageWidth = try? c.decode(Int.self, forKey: .imageWidth)
        columns = try? c.decode([String].self, forKey: .columns)
        sourceColumns = try? c.decode([Int].self, forKey: .sourceColumns)
        named = try? c.decode(Bool.self, forKey: .named)
        contextColumns = try? c.decode([String].self, forKey: .contextColumns)
    }
}
