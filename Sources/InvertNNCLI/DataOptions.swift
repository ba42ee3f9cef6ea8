import ArgumentParser
import Foundation
import InvertNN

/// Where data comes from: a bundled dataset, a 2-D toy density, or a CSV file.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "'digits' (bundled 8x8 digits), 'mnist' (bundled 5000 MNIST images), a 2-D toy density (moons, rings, checkerboard, mixture) or the path of a numeric CSV file (optionally gzip-compressed, header row detected, RFC 4180 quoting) or a NumPy .npy array (1-D: one column; 2-D: rows × features).",
        valueName: "NAME|PATH"))
    var data: String = "digits"

    @Option(parsing: .unconditional, help: "For a CSV of integer pixels: the number of levels K (every value in 0..<K); the data are dequantized and scored in bits/dim. Without it a CSV is continuous tabular data, standardized and scored in nats/dim.")
    var levels: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("A CSV column to exclude (a label), by header name or 1-based number.", valueName: "NAME|N"))
    var labelColumn: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("More CSV columns to exclude, comma-separated names or 1-based numbers (no empty entries; each column once, also across --label-column).", valueName: "A,B,..."))
    var dropColumns: String?

    @Option(help: ArgumentHelp(
        "A separate file (CSV or .npy) for the validation split, with the training file's columns (matched by header name, else by position). The training file then gives the train and test splits (their --split fractions rescaled). It must be another file than --data and --test: paths naming one file (after resolving links, or the same inode) are refused, since the model would be selected or scored on the rows it was trained on.",
        valueName: "PATH"))
    var validation: String?

    @Option(help: ArgumentHelp(
        "A separate file (CSV or .npy) for the test split, as --validation. With both, the training file is used whole for training.",
        valueName: "PATH"))
    var test: String?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Fractions of a data file's rows for train, validation and test: three numbers ≥ 0 summing to 1, train > 0 (default 0.75,0.1,0.15).",
        valueName: "T,V,E"))
    var split: String?

    @OptionGroup var readLimits: ReadLimitOptions

    var namedKind: NamedData? { NamedData(rawValue: data) }

    func validate() throws {
        if let named = namedKind {
            if let levels, levels != named.levels {
                throw ValidationError("--levels does not apply to --data \(data)")
            }
            if labelColumn != nil || dropColumns != nil {
                throw ValidationError("--label-column and --drop-columns apply to CSV files only")
            }
            if validation != nil || test != nil || split != nil {
                throw ValidationError("--validation, --test and --split apply to data files; --data \(data) has a fixed split")
            }
        } else {
            if let levels, levels < 2 { throw ValidationError("--levels must be at least 2, got \(levels)") }
            try requireWellFormedExclusions()
            // A number names a 1-based column; 0 or less can be refused before the file is read.
            for (option, key) in exclusions {
                if let number = Int(key), number < 1 {
                    throw ValidationError("\(option): column numbers start at 1, got \(number)")
                }
            }
            try Self.requireDataFile(data)
            for (option, path) in [("--validation", validation), ("--test", test)] {
                if let path { try InputPath.requireFile(path, option: option) }
            }
            try requireDistinctInputs()
            let fractions = try splitFractions()
            if validation != nil, test != nil, split != nil {
                throw ValidationError("--split has no effect with both --validation and --test: the training file is used whole")
            }
            do { _ = try fractions.keeping(validation: validation == nil, test: test == nil) } catch let error as InvertNNError {
                throw ValidationError("--split \(split ?? ""): \(Self.reason(error))")
            }
        }
    }

    /// Throws a usage error if two of `--data`, `--validation` and `--test` name one file
    /// (``OutputPath/sameFile(_:_:)``: equal after resolving symbolic links, or one device and
    /// inode): validating or testing on the training rows would report figures that measure
    /// memorization, and selecting the best epoch on them defeats the validation split.
    func requireDistinctInputs() throws {
        let files = inputFiles
        for (i, (firstOption, firstPath)) in files.enumerated() {
            for (option, path) in files[(i + 1)...] where OutputPath.sameFile(firstPath, path) {
                let shown = firstPath == path ? "the same file \(path)" : "the same file (\(firstPath) and \(path))"
                throw ValidationError(
                    "\(firstOption) and \(option) name \(shown); the \(option == "--test" ? "test" : "validation") rows must be other rows "
                        + "than the \(firstOption == "--data" ? "training" : "validation") rows: give a different file, or leave \(option) out to split \(data)")
            }
        }
    }

    /// Throws a usage error for an empty `--drop-columns` entry (`a,,b`, `,`) or a column key
    /// given twice in `--label-column` and `--drop-columns` (a typo that would otherwise pass
    /// silently). Keys naming one column in two spellings (a name and its number) are refused
    /// by ``excludedColumns(_:)`` once the file's header is known.
    func requireWellFormedExclusions() throws {
        guard let dropColumns else { return }
        let entries = dropColumns.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        if let empty = entries.firstIndex(where: \.isEmpty) {
            throw ValidationError(
                "--drop-columns '\(dropColumns)': entry \(empty + 1) of \(entries.count) is empty; give comma-separated column names or 1-based numbers")
        }
        var seen = [String: String]()
        for (option, key) in exclusions {
            if let earlier = seen[key] {
                throw ValidationError(
                    earlier == option ? "\(option) names column '\(key)' twice; give each column once"
                        : "\(earlier) and \(option) both name column '\(key)'; give each column once")
            }
            seen[key] = option
        }
    }

    /// The `--split` fractions (``SplitFractions/default`` without the option).
    ///
    /// - Throws: a `ValidationError` (usage, exit 64) for a malformed or invalid `--split`.
    func splitFractions() throws -> SplitFractions {
        guard let split else { return .default }
        do { return try SplitFractions(parsing: split) } catch let error as InvertNNError {
            throw ValidationError("--split: \(Self.reason(error))")
        }
    }

    /// The reason of a library error on an option, without the operation's name.
    static func reason(_ error: InvertNNError) -> String {
        if case let .invalidArgument(_, reason) = error { return reason }
        return error.description
    }

    /// The data files given, as (option, path), for checks that no output overwrites them.
    var inputFiles: [(String, String)] {
        (namedKind == nil ? [("--data", data)] : []) + [("--validation", validation), ("--test", test)].compactMap { o, p in p.map { (o, $0) } }
    }

    /// Throws a usage error unless `data` names a regular file (for a `--data` that is not a
    /// dataset name; shared by `train`, `eval` and `density`). A device such as /dev/zero never
    /// ends and a FIFO blocks: neither is data.
    static func requireDataFile(_ data: String) throws {
        switch RegularFile.problem(at: data) {
        case nil: return
        case "no such file"?:
            throw ValidationError("no such data file: \(data) (use digits, mnist, moons, rings, checkerboard, mixture or the path of a CSV file)")
        case "a directory, not a file"?: throw ValidationError("--data: \(data) is a directory, not a CSV file")
        case let problem?: throw ValidationError("--data: \(data) is \(problem); data must be a regular file")
        }
    }

    /// `--label-column` and every `--drop-columns` entry, each with its option.
    var exclusions: [(option: String, key: String)] {
        (labelColumn.map { [("--label-column", $0)] } ?? []) + droppedColumns.map { ("--drop-columns", $0) }
    }

    /// The 0-based columns of the `--data` file (its column names `names`) that `--label-column`
    /// and `--drop-columns` exclude.
    ///
    /// - Throws: `ValidationError` (usage, exit 64) naming the option, its value and the file's
    ///   column count, for a number beyond the columns or a name the file lacks: the file's width
    ///   is known only once it is read, so `validate()` cannot catch these.
    ///   Also for two keys that name one column (`id` and `1`), and for exclusions that leave no
    ///   column of the file to model.
    func excludedColumns(_ names: [String]) throws -> Set<Int> {
        var excludedBy = [Int: (option: String, key: String)]()
        for (option, key) in exclusions {
            let index: Int
            do { index = try TabularDataset<Double>.columnIndex(key, in: names, path: data) } catch let error as InvertNNError {
                throw ValidationError("\(option) \(key): \(Self.reason(error))")
            }
            if let earlier = excludedBy[index] {
                throw ValidationError(
                    "\(option) \(key) names column \(index + 1) ('\(names[index])') of \(data), which \(earlier.option) \(earlier.key) "
                        + "already excludes; give each column once")
            }
            excludedBy[index] = (option, key)
        }
        if !names.isEmpty, excludedBy.count == names.count {
            let options = [labelColumn.map { _ in "--label-column" }, dropColumns.map { _ in "--drop-columns" }].compactMap { $0 }
            throw ValidationError(
                "\(options.joined(separator: " and ")) exclude\(options.count == 1 ? "s" : "") all \(names.count) "
                    + "column\(names.count == 1 ? "" : "s") of \(data); nothing is left to model")
        }
        return Set(excludedBy.keys)
    }

    var droppedColumns: [String] {
        (dropColumns ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The dataset in precision `T`.
    func load<T: Scalar>(_: T.Type) throws -> LoadedData<T> {
        if let named = namedKind { return try named.load(T.self) }
        let fractions = try splitFractions()
        if validation != nil || test != nil {
            // Preprocessing is fitted later on the training split alone, as for one file.
            let splits = try DataSplits.read(
                path: data, validationPath: validation, testPath: test, excludingColumns: excludedColumns, split: fractions,
                limits: readLimits.limits)
            if let levels {
                for (k, matrix) in [splits.train, splits.validation, splits.test].enumerated() {
                    let origins = splits.origins[k]
                    try DiscreteDataset<T>.requireLevels(
                        matrix, levels: levels, source: origins.first?.file ?? data, recordLines: origins.map(\.line))
                }
                let (height, width) = DiscreteDataset<T>.imageShape(dimensions: splits.train.columns, height: nil, width: nil)
                return LoadedData(
                    name: data, kind: .image, train: splits.train.converted(to: T.self), validation: splits.validation.converted(to: T.self),
                    test: splits.test.converted(to: T.self), levels: levels, imageHeight: height, imageWidth: width,
                    columnNames: splits.columnNames, sourceColumns: splits.sourceColumns)
            }
            let dataset = try TabularDataset<T>(
                name: data, train: splits.train, validation: splits.validation, test: splits.test, columnNames: splits.columnNames,
                sourceColumns: splits.sourceColumns,
                splitNames: (data, validation ?? "\(data) (validation rows)", test ?? "\(data) (test rows)"))
            return LoadedData(tabular: dataset, kind: dataset.dimensions == 2 ? .points : .tabular, toy: nil)
        }
        if let levels {
            // Excluded columns are not parsed (a text label is fine), as on the continuous path.
            let table = try DataTable.read(path: data, limits: readLimits.limits, skipping: excludedColumns)
            let excluded = try excludedColumns(table.columnNames)
            let kept = (0..<table.values.columns).filter { !excluded.contains($0) }
            guard !kept.isEmpty else { throw ValidationError("\(data): every column is excluded") }
            var pixels = Matrix<Double>(rows: table.values.rows, columns: kept.count)
            for r in 0..<pixels.rows { for (k, c) in kept.enumerated() { pixels[r, k] = table.values[r, c] } }
            let counts = try fractions.counts(rows: pixels.rows)
            let dataset = try DiscreteDataset<T>(
                name: data, pixels: pixels, levels: levels, counts: counts, splitSeed: 1998,
                recordLines: table.recordLines)  // errors name file lines
            return LoadedData(discrete: dataset, kind: .image, columnNames: kept.map { table.columnNames[$0] }, sourceColumns: kept)
        }
        let dataset = try TabularDataset<T>.csv(
            path: data, excludingColumns: excludedColumns, limits: readLimits.limits, split: fractions)
        return LoadedData(tabular: dataset, kind: dataset.dimensions == 2 ? .points : .tabular, toy: nil)
    }
}

/// The datasets known by name.
enum NamedData: String, CaseIterable {
    case digits, mnist, moons, rings, checkerboard, mixture

    var levels: Int? {
        switch self {
        case .digits: return Digits.levels
        case .mnist: return MNIST.levels
        default: return nil
        }
    }

    /// Points and seed of the toy datasets.
    static let toyCount = 3000, toySeed: UInt64 = 2024

    func load<T: Scalar>(_: T.Type) throws -> LoadedData<T> {
        switch self {
        case .digits: return LoadedData(discrete: try Digits.load(as: T.self), kind: .image, columnNames: nil, sourceColumns: nil)
        case .mnist: return LoadedData(discrete: try MNIST.load(as: T.self), kind: .image, columnNames: nil, sourceColumns: nil)
        case .moons, .rings, .checkerboard, .mixture:
            let toy = ToyDensity(rawValue: rawValue)!
            return LoadedData(
                tabular: try toy.dataset(count: Self.toyCount, seed: Self.toySeed, as: T.self), kind: .points, toy: toy)
        }
    }
}

/// What kind of data a model was trained on; decides how samples are drawn.
enum DataKind: String {
    /// Integer pixels of an image (grid PNG).
    case image
    /// Continuous 2-D points (scatter plot, density heat map).
    case points
    /// Continuous vectors of any dimension.
    case tabular
}

/// A dataset ready for training and its description for checkpoints.
struct LoadedData<T: Scalar> {
    let name: String
    let kind: DataKind
    let train: Matrix<T>
    let validation: Matrix<T>
    let test: Matrix<T>
    /// K for integer data.
    let levels: Int?
    let imageHeight: Int
    let imageWidth: Int
    let columnNames: [String]?
    /// 0-based columns of the CSV file that are modelled.
    let sourceColumns: [Int]?
    /// The class labels of the train, validation and test rows of a labelled image dataset
    /// (digits, MNIST), else empty.
    var labels: [[Int]] = []
    /// The context of a conditional run (``ContextSplit``), `nil` for an unconditional one.
    var context: ContextSplit<T>? = nil

    var dimensions: Int { train.columns }

    init(discrete d: DiscreteDataset<T>, kind: DataKind, columnNames: [String]?, sourceColumns: [Int]?) {
        name = d.name
        self.kind = kind
        train = d.train
        validation = d.validation
        test = d.test
        levels = d.levels
        imageHeight = d.imageHeight
        imageWidth = d.imageWidth
        self.columnNames = columnNames
        self.sourceColumns = sourceColumns
        if !d.trainLabels.isEmpty { labels = [d.trainLabels, d.validationLabels, d.testLabels] }
    }

    init(tabular d: TabularDataset<T>, kind: DataKind, toy: ToyDensity?) {
        name = d.name
        self.kind = kind
        train = d.train
        validation = d.validation
        test = d.test
        levels = nil
        imageHeight = 1
        imageWidth = d.dimensions
        columnNames = d.columnNames
        sourceColumns = toy == nil ? d.sourceColumns : nil
    }

    /// The continuous columns that take a single value in the training split, by header name or
    /// 1-based number among the modelled columns. Standardization keeps them with σ = 1, but a
    /// constant has no density: a flow can shrink that direction and drive the NLL down without
    /// bound. (Integer data are dequantized, so a constant pixel is fine there.)
    var constantColumns: [String] {
        guard levels == nil, train.rows > 0 else { return [] }
        return (0..<train.columns).filter { j in
            let first = train[0, j]
            return (1..<train.rows).allSatisfy { train[$0, j] == first }
        }.map { j in columnNames.flatMap { j < $0.count ? $0[j] : nil } ?? String(j + 1) }
    }

    /// Dequantization with the logit for integer data, standardization fitted on the training
    /// split for continuous data.
    func preprocessing(logitAlpha: Double) throws -> Preprocessing<T> {
        if let levels { return .dequantization(try Dequantization(levels: levels, logitAlpha: T(logitAlpha))) }
        return .standardization(try Standardization(fitting: train))
    }

    /// The `dataset` entry of the checkpoint metadata.
    var description: DatasetDescription {
        DatasetDescription(
            name: name, kind: kind.rawValue, dimensions: dimensions, imageHeight: imageHeight, imageWidth: imageWidth,
            columns: columnNames, sourceColumns: sourceColumns, named: NamedData(rawValue: name) != nil ? true : nil,
            contextColumns: context?.names)
    }
}
