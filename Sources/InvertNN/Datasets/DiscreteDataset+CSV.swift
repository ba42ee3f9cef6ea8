import RealModule

extension DiscreteDataset {
    /// Loads a dataset of integer pixels from a CSV file, gzip-compressed or not.
    ///
    /// - Parameters:
    ///   - path: the file; one sample per line, one pixel per field.
    ///   - levels: K; every pixel must be an integer in `0..<K`.
    ///   - labelColumn: `true` if the last field of every line is a label (kept aside, not modelled).
    ///   - hasHeader: skip the first line.
    ///   - splitSeed: seed of the train / validation / test shuffle.
    ///   - limits: the bounds on the decompressed size and line length (``ReadLimits``).
    /// - Split: 75% / 10% / 15% of the samples (rounded; each at least 1), at least 3 samples.
    /// - Throws: ``InvertNNError/io(path:reason:)`` if the file cannot be read,
    ///   ``InvertNNError/malformedData(source:line:reason:)`` with the line and column of a bad
    ///   field or value, ``InvertNNError/invalidArgument(operation:reason:)`` for too few samples.
    public static func csv(
        path: String, levels: Int, labelColumn: Bool = false, hasHeader: Bool = false, splitSeed: UInt64 = 1998,
        limits: ReadLimits = .default
    ) throws -> DiscreteDataset<T> {
        let bytes = try GzipReader.read(path: path, limits: limits)
        let table: Matrix<Double>
        let recordLines: [Int]
        if CSVReader.containsQuote(bytes) {
            (_, table, recordLines) = try CSVReader.parseQuoted(CSVReader.lineFeedEnded(bytes), source: path, hasHeader: hasHeader)
        } else {
            table = try CSVReader.parse(bytes, source: path, hasHeader: hasHeader)
            // The file line of each record (after blank lines and the header), for error messages.
            recordLines = Array(CSVReader.nonBlankLineNumbers(bytes).suffix(table.rows))
        }
        var pixels = table
        var labels: [Int] = []
        if labelColumn {
            guard table.columns >= 2 else {
                throw InvertNNError.malformedData(source: path, line: 1, reason: "a label column needs at least 2 columns, found \(table.columns)")
            }
            pixels = table.columns(0..<(table.columns - 1))
            for r in 0..<table.rows {
                let v = table[r, table.columns - 1]
                guard v.rounded(.down) == v, Swift.abs(v) < 1e9 else {
                    throw InvertNNError.malformedData(
                        source: path, line: recordLines[r], reason: "column \(table.columns): label \(v) is not an integer")
                }
                labels.append(Int(v))
            }
        }
        let n = pixels.rows
        guard n >= 3 else {
            throw InvertNNError.invalidArgument(operation: "DiscreteDataset.csv", reason: "\(path) has \(n) samples; need at least 3 to split")
        }
        let validation = max(1, Int((Double(n) * 0.10).rounded()))
        let test = max(1, Int((Double(n) * 0.15).rounded()))
        let train = n - validation - test
        guard train >= 1 else {
            throw InvertNNError.invalidArgument(operation: "DiscreteDataset.csv", reason: "\(path) has too few samples (\(n)) to split")
        }
        return try DiscreteDataset(
            name: path, pixels: pixels, labels: labels, levels: levels,
            counts: (train, validation, test), splitSeed: splitSeed, recordLines: recordLines)
    }
}
