/// The training, validation and test rows of a data file, or of separate files for the
/// held-out splits (`invertnn train --validation V --test T`), as `Double` matrices with the
/// same columns in the same order.
///
/// Rows of the training file are split by a seeded shuffle (the first rows of the permutation
/// train, the next validate, the rest test) with ``SplitFractions``; a split given by its own
/// file takes that whole file, and the fractions of the splits still drawn from the training file
/// are rescaled to sum to 1 (``SplitFractions/keeping(validation:test:)``). With both files the
/// training file is used whole, in file order.
public struct DataSplits: Sendable {
    /// The training file.
    public let name: String
    /// The names of the kept columns, in order.
    public let columnNames: [String]
    /// The 0-based columns of the training file that are kept.
    public let sourceColumns: [Int]
    /// `[n_train, D]`.
    public let train: Matrix<Double>
    /// `[n_validation, D]`.
    public let validation: Matrix<Double>
    /// `[n_test, D]`.
    public let test: Matrix<Double>
    /// The file and the file line of every row of `train`, `validation` and `test`, in order
    /// (for messages that name a bad value).
    public let origins: [[(file: String, line: Int)]]

    /// Reads `path` and the optional companion files and splits them.
    ///
    /// Columns of a companion file are matched to the training file's by header name when both
    /// files have a header (any order; a companion may not lack a kept column nor hold a column the
    /// training file lacks), else by position (the same number of columns). Excluded columns
    /// (`excluding`: names or 1-based numbers of the training file) are not parsed in any file.
    ///
    /// - Throws: the readers' errors (``DataTable/read(path:limits:skipping:)``);
    ///   ``InvertNNError/invalidArgument(operation:reason:)`` for an unknown excluded column, when
    ///   every column is excluded, a companion whose columns do not match (naming the file and the
    ///   column), a held-out split of fraction 0 without a file, or too few rows to split.
    public static func read(
        path: String, validationPath: String? = nil, testPath: String? = nil, excluding keys: [String] = [],
        split: SplitFractions = .default, splitSeed: UInt64 = 1998, limits: ReadLimits = .default
    ) throws -> DataSplits {
        try read(
            path: path, validationPath: validationPath, testPath: testPath,
            excludingColumns: { names in try Set(keys.map { try TabularDataset<Double>.columnIndex($0, in: names, path: path) }) },
            split: split, splitSeed: splitSeed, limits: limits)
    }

    /// Reads and splits the files as ``read(path:validationPath:testPath:excluding:split:splitSeed:limits:)``
    /// does, the excluded columns chosen by a function of the training file's column names (a
    /// caller that names columns its own way, such as a command line naming its options in errors).
    ///
    /// - Parameters:
    ///   - path: the training file (or the only file, split by `split`).
    ///   - validationPath: an optional validation file with the training file's columns.
    ///   - testPath: an optional test file with the training file's columns.
    ///   - excludedColumns: given the training file's column names, the 0-based columns to leave
    ///     out (each in `0..<names.count`); called before the records are parsed.
    ///   - split: the fractions of a single file's rows for training, validation and test.
    ///   - splitSeed: the seed of the shuffle before a single file is split.
    ///   - limits: the read limits (bytes, line length, rows, columns).
    /// - Throws: as ``read(path:validationPath:testPath:excluding:split:splitSeed:limits:)``, and
    ///   what `excludingColumns` throws.
    public static func read(
        path: String, validationPath: String? = nil, testPath: String? = nil, excludingColumns excludedColumns: ([String]) throws -> Set<Int>,
        split: SplitFractions = .default, splitSeed: UInt64 = 1998, limits: ReadLimits = .default
    ) throws -> DataSplits {
        let main = try DataTable.read(path: path, limits: limits, skipping: excludedColumns)
        let excluded = try excludedColumns(main.columnNames)
        let kept = (0..<main.values.columns).filter { !excluded.contains($0) }
        guard !kept.isEmpty else {
            throw InvertNNError.invalidArgument(operation: "DataSplits", reason: "\(path): every column is excluded")
        }
        let fractions = try split.keeping(validation: validationPath == nil, test: testPath == nil)
        let counts = try fractions.counts(rows: main.values.rows)
        var order = Array(0..<main.values.rows)
        if validationPath == nil || testPath == nil {
            var generator = SeededGenerator(seed: splitSeed)
            order.shuffle(using: &generator)
        }
        let parts = [
            Array(order[0..<counts.train]), Array(order[counts.train..<(counts.train + counts.validation)]),
            Array(order[(counts.train + counts.validation)...]),
        ]
        var matrices = parts.map { main.values.rows(at: $0).selecting(columns: kept) }
        var origins = parts.map { rows in rows.map { (path, main.recordLines[$0]) } }
        for (k, companion) in [(1, validationPath), (2, testPath)] {
            guard let companion else { continue }
            var columns = [Int]()
            let table = try DataTable.read(path: companion, limits: limits) { names in
                columns = try matching(names, in: companion, to: main, kept: kept)
                return Set(0..<names.count).subtracting(columns)
            }
            matrices[k] = table.values.selecting(columns: columns)
            origins[k] = table.recordLines.map { (companion, $0) }
        }
        return DataSplits(
            name: path, columnNames: kept.map { main.columnNames[$0] }, sourceColumns: kept,
            train: matrices[0], validation: matrices[1], test: matrices[2], origins: origins)
    }

    private init(
        name: String, columnNames: [String], sourceColumns: [Int], train: Matrix<Double>, validation: Matrix<Double>,
        test: Matrix<Double>, origins: [[(file: String, line: Int)]]
    ) {
        self.name = name
        self.columnNames = columnNames
        self.sourceColumns = sourceColumns
        self.train = train
        self.validation = validation
        self.test = test
        self.origins = origins
    }

    /// The columns of a companion file (named `names`) holding the training file's kept columns, in order.
    static func matching(_ names: [String], in companion: String, to main: DataTable, kept: [Int]) throws -> [Int] {
        func mismatch(_ reason: String) -> InvertNNError {
            .invalidArgument(operation: "DataSplits", reason: "\(companion) \(reason) (training file \(main.source))")
        }
        let positional = (0..<names.count).map { "column\($0 + 1)" } == names || (0..<names.count).map { String($0 + 1) } == names
        if main.hasHeader, !positional {
            var index = [String: Int]()
            for (k, name) in names.enumerated() where index[name] == nil { index[name] = k }
            let known = Set(main.columnNames)
            if let extra = names.firstIndex(where: { !known.contains($0) }) {
                throw mismatch("has a column '\(names[extra].prefix(60))' (column \(extra + 1)) that the training file lacks")
            }
            return try kept.map { c in
                guard let k = index[main.columnNames[c]] else { throw mismatch("lacks the column '\(main.columnNames[c].prefix(60))'") }
                return k
            }
        }
        guard names.count == main.columnNames.count else {
            let first = min(names.count, main.columnNames.count) + 1
            throw mismatch("has \(names.count) columns where the training file has \(main.columnNames.count): column \(first) "
                + (names.count < main.columnNames.count ? "is missing" : "has no counterpart"))
        }
        return kept
    }
}
