/// A numeric data file as read, before any split: column names, values and where each row came
/// from. ``read(path:limits:skipping:)`` reads a numeric CSV file (RFC 4180 quoting; a header row
/// is detected when a field of the first record is not a finite number) or a NumPy `.npy` array
/// (format 1.0, 2.0 or 3.0; float32/64 or 8- to 64-bit integers; one or two dimensions), either
/// optionally gzip-compressed, chosen by the file name.
public struct DataTable: Sendable {
    /// The file (for messages).
    public let source: String
    /// One name per column: the header's, else `"column1"`, `"column2"`, … for a CSV and
    /// `"1"`, `"2"`, … for a `.npy` array (so a 1-based column number and a name agree).
    public let columnNames: [String]
    /// Whether the names come from a header row (a `.npy` array has none).
    public let hasHeader: Bool
    /// `[rows, columns]`; columns skipped at reading hold 0.
    public let values: Matrix<Double>
    /// The 1-based file line each row starts on (the row number for a `.npy` array).
    public let recordLines: [Int]

    /// A table; `recordLines` has one entry per row of `values`.
    public init(source: String, columnNames: [String], hasHeader: Bool, values: Matrix<Double>, recordLines: [Int]) {
        self.source = source
        self.columnNames = columnNames
        self.hasHeader = hasHeader
        self.values = values
        self.recordLines = recordLines
    }

    /// Reads the data file at `path`: a `.npy` or `.npy.gz` array (values as `Double`, a 1-D array
    /// as one column), anything else as CSV (optionally gzip-compressed), within `limits`.
    ///
    /// - Parameters:
    ///   - path: the file's path.
    ///   - limits: the largest decompressed size and line length accepted.
    ///   - skipping: given the column names, the 0-based columns not to parse (in a `.npy` array,
    ///     numeric throughout, skipped columns keep their values but may hold NaN or infinities,
    ///     as an unparsed CSV column may hold text).
    /// - Throws: ``InvertNNError/io(path:reason:)`` and ``InvertNNError/malformedData(source:line:reason:)``
    ///   from the readers, and what `skipping` throws.
    public static func read(
        path: String, limits: ReadLimits = .default, skipping: ([String]) throws -> Set<Int> = { _ in [] }
    ) throws -> DataTable {
        if NumPyArray.isNumPyPath(path) {
            let values = try NumPyArray.read(path: path, limits: limits, skipping: { columns in try skipping(Self.positionalNames(columns)) })
            let names = Self.positionalNames(values.columns)
            return DataTable(source: path, columnNames: names, hasHeader: false, values: values, recordLines: (0..<values.rows).map { $0 + 1 })
        }
        return try CSVReader.table(try GzipReader.read(path: path, limits: limits), source: path, skipping: skipping)
    }

    /// The column names of a `.npy` array of `count` columns: `"1"`, `"2"`, ….
    static func positionalNames(_ count: Int) -> [String] { (0..<count).map { String($0 + 1) } }
}
