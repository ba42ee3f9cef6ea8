import Foundation
import RealModule

/// A dataset of continuous feature vectors (tabular data, 2-D toy densities) split into
/// training, validation and test sets, with the names of its columns.
///
/// Flows model such data after ``Standardization`` fitted on the training split
/// (``Preprocessing/standardization(_:)``); densities are reported in nats per dimension.
public struct TabularDataset<T: Scalar>: Sendable {
    /// A short name (the file path or the toy density's name).
    public let name: String
    /// The names of the modelled columns, in order.
    public let columnNames: [String]
    /// For CSV files, the 0-based indices of the modelled columns in the file; else `0..<D`.
    public let sourceColumns: [Int]
    /// The training split, `[n_train, D]`.
    public let train: Matrix<T>
    /// The validation split, `[n_validation, D]` (model selection).
    public let validation: Matrix<T>
    /// The test split, `[n_test, D]` (reported only).
    public let test: Matrix<T>

    /// D, the dimension of one sample.
    public var dimensions: Int { train.columns }

    /// Splits `values` by a seeded shuffle into training, validation and test rows, by default
    /// 75% / 10% / 15% (``SplitFractions``: rounded, each held-out split ≥ 1 row when its fraction
    /// is positive).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for fewer than 3 rows, no
    ///   column, a name count that differs from the columns, or too few rows for `split`;
    ///   ``InvertNNError/nonFinite(operation:row:column:)`` for NaN or infinite values;
    ///   ``InvertNNError/invalidArgument(operation:reason:)`` naming the record (or, through
    ///   `recordLines`, the file line) of a finite value too large for `T` (beyond 3.4e38 in
    ///   Float), which would otherwise turn into an infinity after the split.
    /// - Parameters:
    ///   - name: the dataset's name (a checkpoint records it).
    ///   - values: `[records, columns]`, finite.
    ///   - columnNames: one name per column of `values`.
    ///   - sourceColumns: the 0-based column of the source file of each column (`nil`: `0..<columns`).
    ///   - splitSeed: seeds the shuffle that splits the records.
    ///   - recordLines: the file line of each row of `values`, for messages (optional).
    ///   - split: the fractions of the train / validation / test split (default 75/10/15 %).
    public init(
        name: String, values: Matrix<Double>, columnNames: [String], sourceColumns: [Int]? = nil, splitSeed: UInt64 = 1998,
        recordLines: [Int]? = nil, split: SplitFractions = .default
    ) throws {
        let n = values.rows
        let minimumRows = split == .default ? 3 : 1
        guard n >= minimumRows, values.columns >= 1, columnNames.count == values.columns else {
            throw InvertNNError.invalidArgument(
                operation: "TabularDataset",
                reason: "\(name): need ≥ \(minimumRows) rows, ≥ 1 column and one name per column; got \(n)×\(values.columns) with \(columnNames.count) names")
        }
        try Self.requireRepresentable(values, name: name, sourceColumns: sourceColumns, recordLines: recordLines)
        let counts: (train: Int, validation: Int, test: Int)
        do { counts = try split.counts(rows: n) } catch {
            throw InvertNNError.invalidArgument(operation: "TabularDataset", reason: "\(name) has too few rows (\(n)) to split")
        }
        let (train, validation) = (counts.train, counts.validation)
        var order = Array(0..<n)
        var generator = SeededGenerator(seed: splitSeed)
        order.shuffle(using: &generator)
        self.name = name
        self.columnNames = columnNames
        self.sourceColumns = sourceColumns ?? Array(0..<values.columns)
        self.train = values.rows(at: Array(order[0..<train])).converted(to: T.self)
        self.validation = values.rows(at: Array(order[train..<(train + validation)])).converted(to: T.self)
        self.test = values.rows(at: Array(order[(train + validation)...])).converted(to: T.self)
    }

    /// A dataset whose three splits are given (separate files), each `[rows, D]` with the same
    /// columns in the same order; the training split must not be empty.
    ///
    /// - Throws: as ``init(name:values:columnNames:sourceColumns:splitSeed:recordLines:split:)``
    ///   for each split (naming `splitNames`, the files), and
    ///   ``InvertNNError/invalidArgument(operation:reason:)`` if the column counts differ or a
    ///   split is empty.
    public init(
        name: String, train: Matrix<Double>, validation: Matrix<Double>, test: Matrix<Double>, columnNames: [String],
        sourceColumns: [Int]? = nil, splitNames: (train: String, validation: String, test: String)? = nil
    ) throws {
        let names = splitNames ?? (name, "\(name) validation", "\(name) test")
        for (part, matrix) in [(names.train, train), (names.validation, validation), (names.test, test)] {
            guard matrix.rows >= 1, matrix.columns == columnNames.count, matrix.columns >= 1 else {
                throw InvertNNError.invalidArgument(
                    operation: "TabularDataset",
                    reason: "\(part): need ≥ 1 row and \(columnNames.count) columns; got \(matrix.rows)×\(matrix.columns)")
            }
            try Self.requireRepresentable(matrix, name: part, sourceColumns: sourceColumns, recordLines: nil)
        }
        self.name = name
        self.columnNames = columnNames
        self.sourceColumns = sourceColumns ?? Array(0..<columnNames.count)
        self.train = train.converted(to: T.self)
        self.validation = validation.converted(to: T.self)
        self.test = test.converted(to: T.self)
    }

    /// Throws unless every value of `values` is finite and fits in `T`, and its square summed over
    /// the rows (the data's second moments: standardization, whitening, the Gaussian baseline)
    /// stays finite in Double: `|x| ≤ √(Double.greatestFiniteMagnitude / (4·rows))`, about
    /// 1e153 for a thousand rows.
    private static func requireRepresentable(_ values: Matrix<Double>, name: String, sourceColumns: [Int]?, recordLines: [Int]?) throws {
        try values.requireFinite("TabularDataset \(name)")
        func place(_ row: Int, _ c: Int) -> String {
            let column = (sourceColumns.flatMap { c < $0.count ? $0[c] : nil } ?? c) + 1
            let at = recordLines.flatMap { row < $0.count ? "\(name):\($0[row])" : nil } ?? "\(name), record \(row + 1)"
            return "\(at): column \(column)"
        }
        if let (row, c, value) = values.firstEntry(beyondRangeOf: T.self) {
            throw InvertNNError.invalidArgument(
                operation: "TabularDataset",
                reason: "\(place(row, c)): \(value) does not fit in \(T.self) (largest \(T.greatestFiniteMagnitude)); use Double precision")
        }
        let limit = (Double.greatestFiniteMagnitude / Double(4 * max(values.rows, 1))).squareRoot()
        if let k = values.storage.firstIndex(where: { $0.magnitude > limit }) {
            throw InvertNNError.invalidArgument(
                operation: "TabularDataset",
                reason: "\(place(k / values.columns, k % values.columns)): \(values.storage[k]) is too large for the data's variances "
                    + "and covariances (their sums of squares overflow beyond about \(String(format: "%.1e", limit)) for \(values.rows) rows); rescale the column")
        }
    }

    /// Loads a numeric CSV file (gzip-compressed or not, header detected) or a NumPy `.npy` array
    /// (columns named `"1"`, `"2"`, …), chosen by the file name (``DataTable/read(path:limits:skipping:)``).
    ///
    /// - Parameters:
    ///   - path: the CSV file, optionally gzip-compressed.
    ///   - labelColumn: a column to exclude, by header name or 1-based index (`nil`: none).
    ///   - dropColumns: more columns to exclude, by name or 1-based index.
    ///   - split: the fractions of the train / validation / test split.
    ///   - splitSeed: seeds the shuffle that splits the records.
    ///   - limits: the bounds on the decompressed size and line length (``ReadLimits``).
    /// - Throws: ``InvertNNError/io(path:reason:)`` (also beyond `limits`), ``InvertNNError/malformedData(source:line:reason:)``
    ///   for a bad field, ``InvertNNError/invalidArgument(operation:reason:)`` for an unknown
    ///   column or when no column is left.
    public static func csv(
        path: String, labelColumn: String? = nil, dropColumns: [String] = [], splitSeed: UInt64 = 1998,
        limits: ReadLimits = .default, split: SplitFractions = .default
    ) throws -> TabularDataset<T> {
        let keys = [labelColumn].compactMap { $0 } + dropColumns
        return try csv(
            path: path, excludingColumns: { names in try Set(keys.map { try columnIndex($0, in: names, path: path) }) },
            splitSeed: splitSeed, limits: limits, split: split)
    }

    /// Loads a data file as ``csv(path:labelColumn:dropColumns:splitSeed:limits:split:)`` does, the
    /// excluded columns chosen by a function of the file's column names (a caller that names
    /// columns its own way, such as a command line naming its options in errors).
    ///
    /// - Parameters:
    ///   - path: the data file (CSV, gzip-compressed CSV, or .npy).
    ///   - excludingColumns: given the column names, the 0-based columns to leave out (each in
    ///     `0..<names.count`); called before the records are parsed, so its errors come first.
    ///   - splitSeed: the seed of the shuffle before the rows are split.
    ///   - limits: the read limits (bytes, line length, rows, columns).
    ///   - split: the fractions of the rows for training, validation and test.
    /// - Throws: as ``csv(path:labelColumn:dropColumns:splitSeed:limits:split:)``, and what
    ///   `excludingColumns` throws.
    public static func csv(
        path: String, excludingColumns: ([String]) throws -> Set<Int>, splitSeed: UInt64 = 1998,
        limits: ReadLimits = .default, split: SplitFractions = .default
    ) throws -> TabularDataset<T> {
        // Excluded columns are not parsed, so a text label column is fine.
        let table = try DataTable.read(path: path, limits: limits, skipping: excludingColumns)
        let names = table.columnNames
        let excluded = try excludingColumns(names)
        let kept = (0..<table.values.columns).filter { !excluded.contains($0) }
        guard !kept.isEmpty else {
            throw InvertNNError.invalidArgument(operation: "TabularDataset.csv", reason: "\(path): every column is excluded")
        }
        return try TabularDataset(
            name: path, values: table.values.selecting(columns: kept), columnNames: kept.map { names[$0] }, sourceColumns: kept,
            splitSeed: splitSeed, recordLines: table.recordLines, split: split)
    }

    /// The 0-based index of a column given by name or 1-based number.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if there is no such column.
    public static func columnIndex(_ key: String, in names: [String], path: String) throws -> Int {
        if let i = names.firstIndex(of: key) { return i }
        if let number = Int(key), number >= 1, number <= names.count { return number - 1 }
        if Int(key) != nil {
            throw InvertNNError.invalidArgument(
                operation: "TabularDataset.csv", reason: "\(path) has \(names.count) columns; column number \(key) is outside 1...\(names.count)")
        }
        throw InvertNNError.invalidArgument(
            operation: "TabularDataset.csv",
            reason: "\(path) has no column \"\(key)\" (columns: \(names.prefix(12).joined(separator: ", "))\(names.count > 12 ? ", …" : ""); or use a 1-based number)")
    }
}

extension Matrix {
    /// The columns at `indices` (0-based, in that order, each in `0..<columns`: callers check)
    /// of every row, `[rows, indices.count]`.
    func selecting(columns indices: [Int]) -> Matrix {
        var out = Matrix(rows: rows, columns: indices.count)
        for r in 0..<rows { for (k, c) in indices.enumerated() { out.storage[r * indices.count + k] = storage[r * columns + c] } }
        return out
    }
}
