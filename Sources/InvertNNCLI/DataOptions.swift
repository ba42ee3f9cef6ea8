import ArgumentParser
import Foundation
import InvertNN

/// Where data comes from: a bundled dataset, a 2-D toy density, or a CSV file.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "'digits' (bundled 8x8 digits), 'mnist' (bundled 5000 MNIST images), a 2-D toy density (moons, rings, checkerboard, mixture) or the path of a numeric CSV file (optionally gzip-compressed, header row detected).",
        valueName: "NAME|PATH"))
    var data: String = "digits"

    @Option(parsing: .unconditional, help: "For a CSV of integer pixels: the number of levels K (every value in 0..<K); the data are dequantized and scored in bits/dim. Without it a CSV is continuous tabular data, standardized and scored in nats/dim.")
    var levels: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("A CSV column to exclude (a label), by header name or 1-based number.", valueName: "NAME|N"))
    var labelColumn: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("More CSV columns to exclude, comma-separated names or 1-based numbers.", valueName: "A,B,..."))
    var dropColumns: String?

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
        } else {
            if let levels, levels < 2 { throw ValidationError("--levels must be at least 2, got \(levels)") }
            // A number names a 1-based column; 0 or less can be refused before the file is read.
            let keys = (labelColumn.map { [("--label-column", $0)] } ?? []) + droppedColumns.map { ("--drop-columns", $0) }
            for (option, key) in keys {
                if let number = Int(key), number < 1 {
                    throw ValidationError("\(option): column numbers start at 1, got \(number)")
                }
            }
            try Self.requireDataFile(data)
        }
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

    var droppedColumns: [String] {
        (dropColumns ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The dataset in precision `T`.
    func load<T: Scalar>(_: T.Type) throws -> LoadedData<T> {
        if let named = namedKind { return try named.load(T.self) }
        if let levels {
            let bytes = try GzipReader.read(path: data, limits: readLimits.limits)
            let keys = [labelColumn].compactMap { $0 } + droppedColumns
            func excludedColumns(_ names: [String]) throws -> Set<Int> {
                try Set(keys.map { try TabularDataset<Double>.columnIndex($0, in: names, path: data) })
            }
            // Excluded columns are not parsed (a text label is fine), as on the continuous path.
            let table: (columnNames: [String], values: Matrix<Double>) = try CSVReader.parseTable(
                bytes, source: data, skipping: excludedColumns)
            let excluded = try excludedColumns(table.columnNames)
            let kept = (0..<table.values.columns).filter { !excluded.contains($0) }
            guard !kept.isEmpty else { throw ValidationError("\(data): every column is excluded") }
            var pixels = Matrix<Double>(rows: table.values.rows, columns: kept.count)
            for r in 0..<pixels.rows { for (k, c) in kept.enumerated() { pixels[r, k] = table.values[r, c] } }
            let n = pixels.rows
            let validation = max(1, Int((Double(n) * 0.10).rounded())), test = max(1, Int((Double(n) * 0.15).rounded()))
            let dataset = try DiscreteDataset<T>(
                name: data, pixels: pixels, levels: levels, counts: (n - validation - test, validation, test), splitSeed: 1998,
                recordLines: Array(CSVReader.nonBlankLineNumbers(bytes).suffix(n)))  // errors name file lines
            return LoadedData(discrete: dataset, kind: .image, columnNames: kept.map { table.columnNames[$0] }, sourceColumns: kept)
        }
        let dataset = try TabularDataset<T>.csv(
            path: data, labelColumn: labelColumn, dropColumns: droppedColumns, limits: readLimits.limits)
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
