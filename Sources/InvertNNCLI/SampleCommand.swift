import ArgumentParser
import BLASCoreType
import Foundation
import InvertNN

/// `invertnn sample`: draws samples from a saved model, as a PNG (grid of images, or a scatter
/// plot) and/or a CSV file in the data's original units.
struct SampleCommand: ParsableCommand, CheckpointConsumer {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Draw samples from a saved model (PNG and/or CSV).")

    @Option(help: "The model file written by `invertnn train` (safetensors).")
    var model: String

    @Option(parsing: .unconditional, help: "Number of samples.")
    var count: Int = 64

    @Option(help: "PNG to write: a grid for image data, a scatter plot of the first two columns otherwise.")
    var png: String?

    @Option(help: "CSV to write: one sample per row with a header, in the data's original units (integer levels for images).")
    var csv: String?

    @Option(parsing: .unconditional, help: "Sampling temperature T: the standard deviation of the latent draws (1 = the model's own distribution; lower T trades diversity for cleaner samples). Default: 0.7 for images (as in Glow, Kingma & Dhariwal 2018), 1 for other data.")
    var temperature: Double?

    @Option(parsing: .unconditional, help: "Seed of the latent draws.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp(
        "For a conditional model: one context row, comma-separated values in the order of its context columns (a class-conditional image model takes the class, e.g. 3); all --count samples share it.",
        valueName: "V,V,..."))
    var context: String?

    @Option(help: ArgumentHelp(
        "For a conditional model: a CSV of context rows, or a .npy array (a header naming the model's context columns, or exactly that many columns); --count samples are drawn for each row, and the CSV output starts with the context columns.",
        valueName: "PATH"))
    var contextFile: String?

    @OptionGroup var readLimits: ReadLimitOptions

    @OptionGroup var output: OutputOptions

    func validate() throws {
        try InputPath.requireFile(model, option: "--model")
        // 10 million samples is far beyond any picture or table this command is for, and keeps the
        // batch allocation bounded (a huge count would otherwise fail to allocate and abort).
        // The samples and their CSV text are held in memory (about 1.5 KB of text per sample of
        // 64 columns): a million keeps that near 1.5 GB; 10 million ran a 24 GB machine out of memory.
        guard count >= 1, count <= 1_000_000 else { throw ValidationError("--count must lie in 1...1000000, got \(count)") }
        if let temperature, !(temperature > 0 && temperature <= 100) {
            throw ValidationError("--temperature must lie in (0, 100], got \(temperature)")
        }
        guard png != nil || csv != nil else { throw ValidationError("give --png PATH and/or --csv PATH") }
        if context != nil, contextFile != nil { throw ValidationError("give --context or --context-file, not both") }
        if let contextFile { try InputPath.requireFile(contextFile, option: "--context-file") }
        if let png { try OutputPath.requireWritableDirectory(png, option: "--png") }
        if let csv { try OutputPath.requireWritableDirectory(csv, option: "--csv") }
        if let png, let csv { try OutputPath.requireDistinct([("--png", png), ("--csv", csv)]) }
        try OutputPath.requireNotInputs(
            [png.map { ("--png", $0) }, csv.map { ("--csv", $0) }].compactMap { $0 }, inputs: [("--model", model)])
    }

    /// The most images `--png` puts in one grid.
    static let maximumGridImages = 4096

    func run() throws {
        BLASCoreSelection.reexecuteWithBetterKernelsIfNeeded()
        try withCheckpoint(at: model)
    }

    func run<T: Scalar>(_ checkpoint: Checkpoint<T>, path: String) throws {
        var description = DataDescription(checkpoint.dataset, dimensions: checkpoint.flow.features)
        let temperature = self.temperature ?? Rendering.defaultTemperature(description.kind)
        let contexts = try sampleContexts(checkpoint, description: description)
        if let png { try OutputPath.requireReplaceable(png, option: "--png", kind: .png) }
        let total = contexts?.rows ?? count
        guard total <= 1_000_000 else {
            throw ValidationError("\(contexts!.rows / count) context rows × --count \(count) = \(total) samples; the limit is 1000000")
        }
        // A grid of a million images would be tens of thousands of pixels on a side (minutes and
        // gigabytes to draw); the CSV has no such bound.
        if png != nil, description.kind == .image, total > Self.maximumGridImages {
            throw ValidationError(
                "--png draws at most \(Self.maximumGridImages) images (a 64 × 64 grid), asked for \(total); use --csv for more samples")
        }
        // The CSV's columns: with a context file, each row starts with the context it was drawn for.
        let features = checkpoint.flow.features
        let csvContexts = contextFile != nil ? contexts : nil
        if let contexts = csvContexts {
            let names = description.contextColumns ?? (1...contexts.columns).map { "c\($0)" }
            let sampleNames = description.columns?.count == features ? description.columns! : (1...features).map { "x\($0)" }
            description.columns = names + sampleNames
        }
        let csvColumns = (csvContexts?.columns ?? 0) + features
        // Replaces an earlier sample file of the same columns, not any file; checked before drawing.
        // The training data have those columns too, so the file the model was trained on (and the
        // context file) is refused by name first.
        if let csv {
            if checkpoint.dataset?.named != true, let data = checkpoint.dataset?.name, OutputPath.sameFile(csv, data) {
                throw ValidationError(
                    "--csv \(csv) is the training data of \(model) (\(data)); writing it would replace the data: give another path")
            }
            if let contextFile, OutputPath.sameFile(csv, contextFile) {
                throw ValidationError("--csv \(csv) is the --context-file; writing it would replace the input: give another path")
            }
            try OutputPath.requireReplaceable(
                csv, option: "--csv", kind: .csv(headers: [Rendering.csvHeader(columns: csvColumns, description: description)]))
        }
        let drawn = try Rendering.samples(
            flow: checkpoint.flow, preprocessing: checkpoint.preprocessing, count: total, temperature: temperature, seed: seed,
            context: contexts)
        let csvSamples = try csvContexts.map { try $0.concatenatedColumns(drawn) } ?? drawn
        // Both outputs are committed together: a failure leaves any existing files untouched.
        let staging = OutputStaging()
        var notes = [String]()
        if let png {
            notes.append(try staging.write(png) {
                try Rendering.writePNG(
                    samples: drawn, description: DataDescription(checkpoint.dataset, dimensions: drawn.columns),
                    preprocessing: checkpoint.preprocessing, reference: nil, path: $0)
            })
        }
        if let csv {
            try staging.write(csv) {
                try Rendering.writeCSV(
                    samples: csvSamples, description: description, integer: checkpoint.preprocessing.isDiscrete, path: $0)
                return ""
            }
            notes.append("wrote \(total) samples of \(csvSamples.columns) columns to \(csv)")
        }
        try staging.commit()
        notes.forEach(output.note)
        if output.json {
            try StandardOutput.json(SampleSummary(
                model: model, count: count, temperature: SummaryNumber(temperature), seed: seed, png: Nullable(png), csv: Nullable(csv)))
        }
    }

    /// The context of every sample of a conditional model (`nil` for an unconditional one):
    /// `--context` for all, `--count` per row of `--context-file`, or for a class-conditional
    /// model without either, `--count / classes` samples of each class (one grid row per class).
    private func sampleContexts<T: Scalar>(_ checkpoint: Checkpoint<T>, description: DataDescription) throws -> Matrix<T>? {
        let flow = checkpoint.flow
        guard let encoder = flow.contextEncoder else {
            if context != nil || contextFile != nil {
                throw ValidationError("\(model) is an unconditional model; --context and --context-file apply to conditional ones")
            }
            return nil
        }
        let names = description.contextColumns ?? (1...encoder.features).map { "c\($0)" }
        if let context {
            let parts = context.split(separator: ",", omittingEmptySubsequences: false)
                .map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == encoder.features, parts.allSatisfy({ $0?.isFinite ?? false }) else {
                let shown = context.count > 80 ? context.prefix(80) + "… (\(context.utf8.count) bytes)" : Substring(context)
                throw ValidationError(
                    "--context needs \(encoder.features) finite number(s) (\(names.joined(separator: ", "))), got '\(shown)'")
            }
            if case let .oneHot(classes) = encoder.encoding, let label = parts[0], !Self.isClassLabel(label, classes: classes) {
                throw ValidationError("--context \(label) is not a class label of \(model): \(names[0]) is an integer in 0..<\(classes)")
            }
            // 1e300 is a finite Double but an infinity in a Float model: refuse it as NaN is.
            if let j = parts.firstIndex(where: { !T($0!).isFinite }) {
                throw ValidationError(
                    "--context: \(names[j]) = \(parts[j]!) does not fit in the model's \(T.self) precision (largest \(T.greatestFiniteMagnitude))")
            }
            var row = Matrix<T>(rows: 1, columns: encoder.features)
            for (j, v) in parts.enumerated() { row[0, j] = T(v!) }
            return row.rows(at: Array(repeating: 0, count: count))
        }
        if let contextFile {
            let table = try DataTable.read(path: contextFile, limits: readLimits.limits)
            let columns = try Self.contextColumns(of: table, names: names, option: "--context-file")
            let ignored = (0..<table.values.columns).filter { !columns.contains($0) }
            if !ignored.isEmpty {
                // Extra columns are the normal case for a context file cut from the data table,
                // but a mistyped header would drop a context column without a word: say which.
                output.note(ColumnSelection.ignoredNote(
                    ignored.map { table.columnNames[$0] }, of: contextFile,
                    because: "which are not the model's context (\(names.joined(separator: ", ")))"))
            }
            guard table.values.rows >= 1 else { throw ValidationError("--context-file \(contextFile) has no rows") }
            try table.requireRepresentable(columns: columns, as: T.self)
            guard table.values.rows <= 1_000_000 / count else {
                throw ValidationError("--context-file \(contextFile): \(table.values.rows) rows × --count \(count) exceeds 1000000 samples")
            }
            if case let .oneHot(classes) = encoder.encoding {
                for r in 0..<table.values.rows where !Self.isClassLabel(table.values[r, columns[0]], classes: classes) {
                    throw InvertNNError.invalidArgument(
                        operation: "sample",
                        reason: "--context-file \(contextFile), data row \(r + 1): \(names[0]) = \(table.values[r, columns[0]]) is not a class label "
                            + "of \(model) (an integer in 0..<\(classes))")
                }
            }
            var rows = Matrix<T>(rows: table.values.rows * count, columns: columns.count)
            for r in 0..<table.values.rows {
                for k in 0..<count { for (j, c) in columns.enumerated() { rows[r * count + k, j] = T(table.values[r, c]) } }
            }
            return rows
        }
        if case let .oneHot(classes) = encoder.encoding {
            return ContextSampling.contexts(classes: classes, rows: nil as Matrix<T>?, count: count, perClass: max(1, count / classes))
        }
        throw ValidationError("\(model) is conditional on \(names.joined(separator: ", ")): give --context or --context-file")
    }
}

extension SampleCommand {
    /// The 0-based columns of `table` that hold the model's context columns `names`, in order: by
    /// header name when the file has a header naming them all (in any order, other columns
    /// ignored), else by position when the file has exactly `names.count` columns.
    ///
    /// - Throws: `ValidationError` naming `option`, the file, the widths expected and found, and
    ///   for a file with a header, the first context column it lacks.
    static func contextColumns(of table: DataTable, names: [String], option: String) throws -> [Int] {
        let width = table.values.columns
        // A file without a header has only made-up names ("1", "column3"), which say nothing
        // about what its columns hold: it is read by position alone.
        if table.hasHeader, names.allSatisfy(table.columnNames.contains) {
            return names.map { table.columnNames.firstIndex(of: $0)! }
        }
        if width == names.count { return Array(0..<width) }
        let needed = "the model's context is \(names.count) column\(names.count == 1 ? "" : "s") (\(names.joined(separator: ", ")))"
        let found = "\(table.source) has \(width) column\(width == 1 ? "" : "s")"
        guard table.hasHeader, let missing = names.first(where: { !table.columnNames.contains($0) }) else {
            throw ValidationError("\(option): \(found) and no header, but \(needed); give a file of exactly that width, or a CSV header naming them")
        }
        throw ValidationError("\(option): \(found) and no column '\(missing)', but \(needed); give a CSV header naming them, or exactly that many columns")
    }

    /// Whether `value` is one of a one-hot context's labels `0..<classes`.
    static func isClassLabel(_ value: Double, classes: Int) -> Bool {
        value >= 0 && value < Double(classes) && value.rounded() == value
    }
}

/// The JSON line of `--json`.
private struct SampleSummary: Encodable {
    let model: String
    let count: Int
    let temperature: SummaryNumber
    let seed: UInt64
    let png, csv: Nullable<String>
}
