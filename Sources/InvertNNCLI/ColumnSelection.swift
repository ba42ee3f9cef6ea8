import ArgumentParser
import Foundation
import InvertNN

/// Which columns of a CSV file feed a model at `eval`: by the header names the model was trained
/// on when the file has them, else by the stored 0-based `sourceColumns`, else all columns in
/// order. Every index read from a checkpoint is checked here, before any matrix is indexed.
struct ColumnSelection: Equatable {
    /// 0-based columns of the file, in the model's order (`[modelColumns]` entries).
    var columns: [Int]
    /// Header names of the file columns that are not used (a note for the user).
    var ignored: [String]

    /// The names `parseTable` gives a file without a header: `column1`, `column2`, ….
    static func genericNames(_ count: Int) -> [String] { (0..<count).map { "column\($0 + 1)" } }

    /// The one-line note for the columns `names` of `file` that a command reads past, e.g.
    /// "ignored the columns id, x1 of t.csv, which the model was not trained on": the first 12
    /// names (an image table has hundreds), then "…".
    static func ignoredNote(_ names: [String], of file: String, because reason: String) -> String {
        "ignored the column\(names.count == 1 ? "" : "s") \(names.prefix(12).joined(separator: ", "))"
            + "\(names.count > 12 ? ", …" : "") of \(file), \(reason)"
    }

    /// Whether `names` are positions rather than a header: a CSV without a header
    /// (``genericNames(_:)``) or a `.npy` array (`"1"`, `"2"`, …).
    static func arePositional(_ names: [String]) -> Bool {
        names == genericNames(names.count) || names == (0..<names.count).map { String($0 + 1) }
    }

    /// Throws unless `sourceColumns` are `modelColumns` distinct non-negative indices, each below
    /// `fileColumns` when given.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` naming the first bad entry.
    static func validate(sourceColumns: [Int], modelColumns: Int, fileColumns: Int?, model: String) throws {
        func bad(_ reason: String) -> InvertNNError {
            .invalidArgument(operation: "eval", reason: "\(model): dataset.sourceColumns \(reason)")
        }
        guard sourceColumns.count == modelColumns else {
            throw bad("has \(sourceColumns.count) entries, but the model takes \(modelColumns) columns")
        }
        var seen = Set<Int>()
        for (k, c) in sourceColumns.enumerated() {
            guard c >= 0 else { throw bad("entry \(k) is \(c), not a 0-based column index") }
            if let fileColumns, c >= fileColumns {
                throw bad("entry \(k) is \(c), outside the file's columns 0...\(fileColumns - 1)")
            }
            guard seen.insert(c).inserted else { throw bad("names column \(c) twice") }
        }
    }

    /// The file columns for a model of `modelColumns` inputs.
    ///
    /// - Parameters:
    ///   - fileNames: the file's header names (``genericNames(_:)`` when it has no header).
    ///   - modelNames: the column names stored with the model, if any.
    ///   - sourceColumns: the 0-based columns of the training file the model used, if stored.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` when the file has a header
    ///   that lacks some of the model's names, when stored indices are bad (``validate``), or when
    ///   the column counts cannot be matched.
    static func choose(
        fileNames: [String], modelNames: [String]?, sourceColumns: [Int]?, modelColumns d: Int, path: String, model: String
    ) throws -> ColumnSelection {
        // A stored list is checked even when the header decides: a bad one means a damaged file.
        if let sourceColumns { try validate(sourceColumns: sourceColumns, modelColumns: d, fileColumns: nil, model: model) }
        let hasHeader = !arePositional(fileNames)
        if hasHeader, let modelNames, modelNames.count == d, !arePositional(modelNames) {
            var index = [String: Int]()
            for (k, name) in fileNames.enumerated() where index[name] == nil { index[name] = k }
            let missing = modelNames.filter { index[$0] == nil }
            guard missing.isEmpty else {
                throw InvertNNError.invalidArgument(
                    operation: "eval",
                    reason: "\(path) lacks the column\(missing.count == 1 ? "" : "s") \(missing.prefix(8).joined(separator: ", "))"
                        + "\(missing.count > 8 ? ", …" : "") the model \(model) was trained on (it has \(fileNames.prefix(8).joined(separator: ", "))"
                        + "\(fileNames.count > 8 ? ", …" : ""))")
            }
            let columns = modelNames.map { index[$0]! }
            let used = Set(columns)
            return ColumnSelection(columns: columns, ignored: fileNames.indices.filter { !used.contains($0) }.map { fileNames[$0] })
        }
        if let sourceColumns, fileNames.count != d {
            // The stored list is sound (checked above): a column beyond the file means the file
            // is narrower than the training file, a problem of the file, not of the model.
            if let widest = sourceColumns.max(), widest >= fileNames.count {
                let used = sourceColumns.sorted().map { String($0 + 1) }
                throw InvertNNError.invalidArgument(
                    operation: "eval",
                    reason: "\(path) has \(fileNames.count) column\(fileNames.count == 1 ? "" : "s") and no header naming the model's; "
                        + "the model \(model) reads column\(used.count == 1 ? "" : "s") \(used.prefix(12).joined(separator: ", "))"
                        + "\(used.count > 12 ? ", …" : "") of its training file (1-based; its dataset.sourceColumns), so it needs at least \(widest + 1): "
                        + "give a file with the training file's columns, or exactly \(d) in the model's order")
            }
            try validate(sourceColumns: sourceColumns, modelColumns: d, fileColumns: fileNames.count, model: model)
            let used = Set(sourceColumns)
            return ColumnSelection(columns: sourceColumns, ignored: fileNames.indices.filter { !used.contains($0) }.map { fileNames[$0] })
        }
        guard fileNames.count == d else {
            throw InvertNNError.invalidArgument(operation: "eval", reason: "\(path) has \(fileNames.count) column\(fileNames.count == 1 ? "" : "s"); the model takes \(d)")
        }
        return ColumnSelection(columns: Array(0..<d), ignored: [])
    }
}

extension DataTable {
    /// Throws unless every value in `columns` (0-based) of the table fits in `T`: a finite value
    /// beyond it (1e300 for a Float model) would become an infinity, and the model would then
    /// report a non-finite value at a position of its own batch instead of the file's.
    ///
    /// - Throws: ``InvertNNError/malformedData(source:line:reason:)`` naming the file, the
    ///   1-based line of the row (its row number in a `.npy` array), the 1-based column with its
    ///   name, and the value, as a NaN in the file is reported.
    func requireRepresentable<T: Scalar>(columns: [Int], as _: T.Type) throws {
        let largest = Double(T.greatestFiniteMagnitude)
        guard largest < Double.greatestFiniteMagnitude else { return }
        // As a NaN is reported: a `.npy` array's "line" is its row, said as such.
        let isArray = source.hasSuffix(".npy") || source.hasSuffix(".npy.gz")
        for r in 0..<values.rows {
            for c in columns where Swift.abs(values[r, c]) > largest {
                throw InvertNNError.malformedData(
                    source: source, line: r < recordLines.count ? recordLines[r] : 0,
                    reason: "\(isArray ? "row \(r + 1), " : "")column \(c + 1)\(hasHeader ? " (\(columnNames[c]))" : ""): \(values[r, c]) "
                        + "does not fit in the model's \(T.self) precision (largest \(T.greatestFiniteMagnitude))")
            }
        }
    }
}
