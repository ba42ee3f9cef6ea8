import ArgumentParser
import BLASCoreType
import Foundation
import InvertNN

/// `invertnn eval`: the negative log-likelihood of data under a saved model.
struct EvalCommand: ParsableCommand, CheckpointConsumer {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score data with a saved model: NLL and bits/dim (integer data) or nats/dim (continuous data).",
        discussion: """
            --data NAME scores the train, validation and test splits of a named dataset (digits, mnist, \
            moons, rings, checkerboard, mixture); --data PATH scores every row of a CSV file: its columns \
            are matched by the header names the model was trained on (a missing one is an error, \
            extra ones are ignored with a note), or by position for a file without a header. \
            Integer data are dequantized with fixed noise (--seed), so the figures are the usual \
            dequantization bound; the splits of a named dataset get the noise `train` scores them \
            with, so both commands report the same bits/dim for the same model.
            """)

    @Option(help: "The model file written by `invertnn train` (safetensors).")
    var model: String

    @Option(help: ArgumentHelp("A named dataset, a CSV file (header row detected, RFC 4180 quoting) or a .npy array.", valueName: "NAME|PATH"))
    var data: String

    @Option(help: "Write one log-density per input row (nats, in the data's units; for integer data log P(k), the dequantization bound) to this file.")
    var perRow: String?

    @Option(parsing: .unconditional, help: "Seed of the dequantization noise of integer data (the default is the one `train` scores its splits with, so a named dataset's figures agree with train's).")
    var seed: UInt64 = TrainingConfiguration().evaluationSeed

    @OptionGroup var readLimits: ReadLimitOptions

    @OptionGroup var output: OutputOptions

    func validate() throws {
        try InputPath.requireFile(model, option: "--model")
        if NamedData(rawValue: data) == nil { try DataOptions.requireDataFile(data) }
        if let perRow {
            try OutputPath.requireWritableDirectory(perRow, option: "--per-row")
            try OutputPath.requireNotInputs([("--per-row", perRow)], inputs: [("--model", model), ("--data", data)])
        }
    }

    func run() throws {
        BLASCoreSelection.reexecuteWithBetterKernelsIfNeeded()
        try withCheckpoint(at: model)
    }

    struct Score {
        let name: String
        let rows: Int
        let nll: Double
        let perDimension: Double
        let logDensities: [Double]
    }

    func run<T: Scalar>(_ checkpoint: Checkpoint<T>, path: String) throws {
        let d = checkpoint.flow.features
        var splits = [(name: String, data: Matrix<T>, context: Matrix<T>?, noiseSeed: UInt64)]()
        let description = DataDescription(checkpoint.dataset, dimensions: d)
        let contextNames = checkpoint.flow.contextEncoder.map { e in description.contextColumns ?? (1...e.features).map { "c\($0)" } }
        if let named = NamedData(rawValue: data) {
            var loaded = try named.load(T.self)
            if let contextNames { loaded = try loaded.splittingContext(contextNames, option: "the model's context") }
            guard loaded.train.columns == d else {
                throw ValidationError("--data \(data) has \(loaded.train.columns) dimensions; the model \(model) takes \(d)")
            }
            // Each split with the noise `train` scores it with, so both report the same figures.
            let parts = [("train", loaded.train, loaded.context?.train), ("validation", loaded.validation, loaded.context?.validation),
                         ("test", loaded.test, loaded.context?.test)]
            splits = parts.enumerated().map {
                ($0.element.0, $0.element.1, $0.element.2, TrainingConfiguration.evaluationNoiseSeed(split: $0.offset, evaluationSeed: seed))
            }
        } else {
            // Columns the model was not trained on (a text label, say) are not parsed.
            var selection = ColumnSelection(columns: [], ignored: [])
            let table = try DataTable.read(
                path: data, limits: readLimits.limits,
                skipping: { names in
                    let contextIndices = contextNames.map { c in c.compactMap { names.firstIndex(of: $0) } } ?? []
                    // Without stored source columns, the data columns are the others, matched as
                    // for an unconditional model; stored ones index the whole training file.
                    let candidates = description.sourceColumns == nil
                        ? names.indices.filter { !contextIndices.contains($0) } : Array(names.indices)
                    selection = try ColumnSelection.choose(
                        fileNames: candidates.map { names[$0] }, modelNames: description.columns,
                        sourceColumns: description.sourceColumns, modelColumns: d, path: data, model: model)
                    selection.columns = selection.columns.map { candidates[$0] }
                    selection.ignored.removeAll { contextNames?.contains($0) == true }
                    return Set(0..<names.count).subtracting(selection.columns).subtracting(contextIndices)
                })
            if !selection.ignored.isEmpty {
                output.note(ColumnSelection.ignoredNote(selection.ignored, of: data, because: "which the model was not trained on"))
            }
            // A conditional model reads its context columns by their header names.
            var context: Matrix<T>? = nil
            if let contextNames {
                let indices = try contextNames.map { name in
                    guard let index = table.columnNames.firstIndex(of: name) else {
                        throw ValidationError("\(data) has no context column '\(name)' (the model is conditional on \(contextNames.joined(separator: ", ")))")
                    }
                    return index
                }
                try table.requireRepresentable(columns: indices, as: T.self)
                var c = Matrix<T>(rows: table.values.rows, columns: indices.count)
                for r in 0..<c.rows { for (k, j) in indices.enumerated() { c[r, k] = T(table.values[r, j]) } }
                context = c
            }
            // A finite value beyond the model's precision (1e39 in Float) would become an
            // infinity; name its file line and column instead.
            try table.requireRepresentable(columns: selection.columns, as: T.self)
            var values = table.values
            if selection.columns != Array(0..<values.columns) {
                var selected = Matrix<Double>(rows: values.rows, columns: d)
                for r in 0..<values.rows { for (k, c) in selection.columns.enumerated() { selected[r, k] = values[r, c] } }
                values = selected
            }
            splits = [(data, values.converted(to: T.self), context, seed)]
        }
        let unit = checkpoint.preprocessing.isDiscrete ? "bits/dim" : "nats/dim"
        var scores = [Score]()
        for (name, matrix, context, noiseSeed) in splits {
            scores.append(try score(checkpoint, name: name, data: matrix, context: context, noiseSeed: noiseSeed))
        }
        if let perRow {
            let rows = scores.flatMap(\.logDensities)
            try OutputPath.requireReplaceable(perRow, option: "--per-row", kind: .csv(headers: ["log_density"]))
            try AtomicFile.write(text: "log_density\n" + rows.map { "\($0)" }.joined(separator: "\n") + "\n", to: perRow)
            output.note("wrote \(rows.count) log-densities to \(perRow)")
        }
        if output.json {
            let bits = unit == "bits/dim"
            try StandardOutput.json(EvalSummary(model: model, splits: scores.map {
                EvalSplit(name: $0.name, rows: $0.rows, nll: SummaryNumber($0.nll),
                      bits_per_dim: bits ? SummaryNumber($0.perDimension) : nil, nats_per_dim: bits ? nil : SummaryNumber($0.perDimension))
            }))
        } else {
            for s in scores {
                try StandardOutput.line("\(s.name): \(s.rows) rows, NLL \(format(s.nll)) nats per sample, \(format(s.perDimension)) \(unit)")
            }
        }
    }

    private func score<T: Scalar>(
        _ checkpoint: Checkpoint<T>, name: String, data: Matrix<T>, context: Matrix<T>?, noiseSeed: UInt64
    ) throws -> Score {
        var noise = SeededGenerator(seed: noiseSeed)
        let d = checkpoint.flow.features
        let chunk = 500
        let progress = ProgressLine(label: "eval \(name)", quiet: output.quiet)
        var logDensities = [Double]()
        logDensities.reserveCapacity(data.rows)
        var start = 0
        while start < data.rows {
            let end = min(start + chunk, data.rows)
            let pre = try checkpoint.preprocessing.transform(data.rows(start..<end), using: &noise)
            let logP = try checkpoint.flow.logProbability(pre.output, context: context?.rows(start..<end))
            for i in 0..<logP.count {
                let value = Double(logP[i]) + Double(pre.logAbsDet[i])
                // A NaN or infinite NLL is no result: say which row, and exit non-zero.
                guard value.isFinite else {
                    throw InvertNNError.invalidArgument(
                        operation: "eval",
                        reason: "\(name) row \(start + i + 1): the log-density is \(value) under \(model) (extreme weights, or a "
                            + "point outside the model's support); no figure is reported")
                }
                logDensities.append(value)
            }
            start = end
            progress.update(end, of: data.rows)
        }
        progress.finish()
        let nll = -logDensities.reduce(0, +) / Double(logDensities.count)
        let bits = try checkpoint.preprocessing.bitsPerDimension(nllNats: nll, dimensions: d)
        return Score(
            name: name, rows: data.rows, nll: nll, perDimension: checkpoint.preprocessing.isDiscrete ? bits : bits * Double.log(2),
            logDensities: logDensities.map { checkpoint.preprocessing.dataLogDensity($0, dimensions: d) })
    }
}

/// The JSON line of `--json`.
private struct EvalSplit: Encodable {
    let name: String
    let rows: Int
    let nll: SummaryNumber
    let bits_per_dim, nats_per_dim: SummaryNumber?  // one of them, by the data's kind
}

private struct EvalSummary: Encodable {
    let model: String
    let splits: [EvalSplit]
}
