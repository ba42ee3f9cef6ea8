import RealModule

/// A dataset of discrete vectors (image pixels) with `levels` values `0..<levels` per dimension,
/// split into training, validation and test sets.
///
/// Each split is a `[samples, dimensions]` ``Matrix`` of integer values stored as floating point
/// (row-major; an image is flattened in NCHW order, here one channel, row by row). Labels, when
/// the source has them, are kept beside the pixels for inspection; flows ignore them.
public struct DiscreteDataset<T: Scalar>: Sendable {
    /// A short name (`"digits"` or the file path).
    public let name: String
    /// K, the number of levels per dimension.
    public let levels: Int
    /// Image height for display (`height · width = dimensions`; 1 when the data is not a square image).
    public let imageHeight: Int
    /// Image width for display.
    public let imageWidth: Int
    /// The training split, `[n_train, dimensions]`.
    public let train: Matrix<T>
    /// The validation split, `[n_validation, dimensions]` (model selection).
    public let validation: Matrix<T>
    /// The test split, `[n_test, dimensions]` (reported only).
    public let test: Matrix<T>
    /// Labels of the training split in row order, or empty if the source has none.
    public let trainLabels: [Int]
    /// Labels of the validation split, or empty.
    public let validationLabels: [Int]
    /// Labels of the test split, or empty.
    public let testLabels: [Int]

    /// D, the dimension of one sample.
    public var dimensions: Int { train.columns }

    /// Splits `pixels` into train / validation / test by a seeded shuffle.
    ///
    /// The first `trainCount` rows of a seeded Fisher–Yates permutation form the training set,
    /// the next `validationCount` the validation set and the rest (`testCount`) the test set.
    ///
    /// - Parameters:
    ///   - name: the dataset's name (a checkpoint records it).
    ///   - pixels: `[samples, dimensions]`, integers in `0..<levels`.
    ///   - levels: `K`, the number of integer levels.
    ///   - imageHeight: the height of one image, if the samples are images.
    ///   - imageWidth: the width of one image, if the samples are images.
    ///   - splitSeed: seeds the shuffle that splits the samples.
    ///   - labels: one per sample, or empty.
    ///   - counts: sizes of the three splits; they must add up to the number of samples and each be ≥ 1.
    ///   - recordLines: the file line of each row, when the pixels come from a file (errors name it);
    ///     `nil` numbers rows from 1.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for bad counts or levels,
    ///   ``InvertNNError/malformedData(source:line:reason:)`` naming the line (`recordLines[row]`,
    ///   else row + 1) and column of a value that is not an integer in `0..<levels`.
    public init(
        name: String, pixels: Matrix<Double>, labels: [Int] = [], levels: Int,
        imageHeight: Int? = nil, imageWidth: Int? = nil,
        counts: (train: Int, validation: Int, test: Int), splitSeed: UInt64, recordLines: [Int]? = nil
    ) throws {
        let n = pixels.rows, d = pixels.columns
        guard levels >= 2 else {
            throw InvertNNError.invalidArgument(operation: "DiscreteDataset", reason: "levels must be ≥ 2, got \(levels)")
        }
        let (partial, overflow1) = counts.train.addingReportingOverflow(counts.validation)
        let (total, overflow2) = partial.addingReportingOverflow(counts.test)
        guard d >= 1, counts.train >= 1, counts.validation >= 1, counts.test >= 1, !overflow1, !overflow2, total == n else {
            throw InvertNNError.invalidArgument(
                operation: "DiscreteDataset",
                reason: "split \(counts.train)/\(counts.validation)/\(counts.test) does not partition \(n) samples of \(d) dimensions (each split needs ≥ 1)")
        }
        guard labels.isEmpty || labels.count == n else {
            throw InvertNNError.invalidArgument(operation: "DiscreteDataset", reason: "\(labels.count) labels for \(n) samples")
        }
        try Self.requireLevels(pixels, levels: levels, source: name, recordLines: recordLines)
        let (height, width) = Self.imageShape(dimensions: d, height: imageHeight, width: imageWidth)
        var order = Array(0..<n)
        var generator = SeededGenerator(seed: splitSeed)
        order.shuffle(using: &generator)
        let trainRows = Array(order[0..<counts.train])
        let validationRows = Array(order[counts.train..<(counts.train + counts.validation)])
        let testRows = Array(order[(counts.train + counts.validation)...])
        self.name = name
        self.levels = levels
        self.imageHeight = height
        self.imageWidth = width
        self.train = pixels.rows(at: trainRows).converted(to: T.self)
        self.validation = pixels.rows(at: validationRows).converted(to: T.self)
        self.test = pixels.rows(at: testRows).converted(to: T.self)
        self.trainLabels = labels.isEmpty ? [] : trainRows.map { labels[$0] }
        self.validationLabels = labels.isEmpty ? [] : validationRows.map { labels[$0] }
        self.testLabels = labels.isEmpty ? [] : testRows.map { labels[$0] }
    }

    /// Throws unless every value of `pixels` is an integer level in `0..<levels`.
    ///
    /// - Throws: ``InvertNNError/malformedData(source:line:reason:)`` naming the line
    ///   (`recordLines[row]`, else row + 1) and column of the first bad value.
    public static func requireLevels(_ pixels: Matrix<Double>, levels: Int, source: String, recordLines: [Int]? = nil) throws {
        let d = max(1, pixels.columns)
        let top = Double(levels - 1)
        if let bad = pixels.storage.firstIndex(where: { !($0 >= 0 && $0 <= top && $0.rounded(.down) == $0) }) {
            throw InvertNNError.malformedData(
                source: source, line: recordLines.flatMap { $0.indices.contains(bad / d) ? $0[bad / d] : nil } ?? bad / d + 1,
                reason: "column \(bad % d + 1): \(pixels.storage[bad]) is not an integer level in 0...\(levels - 1)")
        }
    }

    /// The display shape of `dimensions` pixels: the given shape if it multiplies to `dimensions`, else a square if `dimensions` is one,
    /// else a single row.
    public static func imageShape(dimensions d: Int, height: Int?, width: Int?) -> (Int, Int) {
        if let height, let width, height > 0, width > 0 {
            let (area, overflow) = height.multipliedReportingOverflow(by: width)
            if !overflow && area == d { return (height, width) }
        }
        let side = Int(Double(d).squareRoot().rounded())
        if side * side == d { return (side, side) }
        return (1, d)
    }
}
