import ArgumentParser
import Foundation
import InvertNN
import InvertNNPlots

/// The description of a model's data stored in its checkpoint (`dataset` metadata).
struct DataDescription {
    var name: String
    var kind: DataKind
    var dimensions: Int
    var imageHeight: Int
    var imageWidth: Int
    var columns: [String]?
    var sourceColumns: [Int]?
    /// The names of the context columns of a conditional model.
    var contextColumns: [String]?

    init(_ dataset: DatasetDescription?, dimensions fallback: Int) {
        name = dataset?.name ?? "data"
        kind = dataset?.kind.flatMap(DataKind.init(rawValue:)) ?? .tabular
        dimensions = dataset?.dimensions ?? fallback
        imageHeight = dataset?.imageHeight ?? 1
        imageWidth = dataset?.imageWidth ?? fallback
        columns = dataset?.columns
        sourceColumns = dataset?.sourceColumns
        contextColumns = dataset?.contextColumns
    }
}

/// Pictures and tables of samples and densities, shared by `train`, `sample` and `density`.
enum Rendering {
    /// The sampling temperature used when none is given: 0.7 for images, the reduced temperature
    /// Glow shows its samples at (Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible
    /// 1×1 Convolutions", whose temperature figure shows T ≈ 0.7 keeping samples clean at little
    /// cost in diversity), 1 (the model's own distribution) for other data,
    /// whose scatter plots are compared with the training points.
    static func defaultTemperature(_ kind: DataKind) -> Double { kind == .image ? 0.7 : 1 }

    /// `count` samples in data units (integer levels, or the original units of continuous data);
    /// for a conditional model one per row of `context` (`[count, contextFeatures]`) or all from
    /// one context row.
    /// `consequence` ends the message of a non-finite sample (``requireFinite(_:what:consequence:)``).
    static func samples<T: Scalar>(
        flow: NormalizingFlow<T>, preprocessing: Preprocessing<T>, count: Int, temperature: Double, seed: UInt64,
        context: Matrix<T>? = nil, consequence: String = "Nothing was written"
    ) throws -> Matrix<T> {
        var generator = SeededGenerator(seed: seed)
        let drawn = try flow.sample(count: count, context: context, temperature: T(temperature), using: &generator)
        try requireFinite(drawn, what: "sample", consequence: consequence)
        let samples = try preprocessing.dataUnits(drawn)
        try requireFinite(samples, what: "sample (in data units)", consequence: consequence)
        return samples
    }

    /// Throws unless every entry of `values` is finite: a model whose finite weights overflow
    /// (an extreme scale) would otherwise write `inf` into a CSV or an empty picture with exit 0.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` naming the first row and
    ///   column and how many rows are affected.
    static func requireFinite<T: Scalar>(_ values: Matrix<T>, what: String, consequence: String = "Nothing was written") throws {
        guard let (row, column) = values.firstNonFinite() else { return }
        let bad = (0..<values.rows).filter { r in (0..<values.columns).contains { !values[r, $0].isFinite } }.count
        throw InvertNNError.invalidArgument(
            operation: "invertnn",
            reason: "\(what) \(row + 1), column \(column + 1) is not finite (\(values[row, column])); \(bad) of \(values.rows) rows "
                + "overflow: the model's weights are extreme. \(consequence)")
    }

    /// The plot window of 2-D data: the range of `reference` (or, without it, μ ± 3.5σ of the
    /// standardization), widened by 8% on each side and made square (the longer side).
    static func window<T: Scalar>(reference: Matrix<T>?, preprocessing: Preprocessing<T>) -> (ClosedRange<Double>, ClosedRange<Double>) {
        var lo = [-4.0, -4.0], hi = [4.0, 4.0]
        if let reference, reference.rows > 0, reference.columns >= 2 {
            for j in 0..<2 {
                let column = (0..<reference.rows).map { Double(reference[$0, j]) }
                lo[j] = column.min()!; hi[j] = column.max()!
            }
        } else if case let .standardization(s) = preprocessing, s.features >= 2 {
            for j in 0..<2 {
                lo[j] = Double(s.means[j]) - 3.5 * Double(s.scales[j]); hi[j] = Double(s.means[j]) + 3.5 * Double(s.scales[j])
            }
        }
        // A square window, so that the square pictures keep the data's aspect ratio. A point
        // cloud of zero width (constant columns) gets a width of 1e-6 of its magnitude, so that
        // the window stays non-empty where 1e-9 is below the spacing of the numbers (3e38).
        let magnitude = max(abs(lo[0]), abs(hi[0]), abs(lo[1]), abs(hi[1]))
        let span = max(hi[0] - lo[0], hi[1] - lo[1], 1e-9, 1e-6 * (magnitude.isFinite ? magnitude : 0)) * 1.16
        for j in 0..<2 {
            let centre = (lo[j] + hi[j]) / 2
            lo[j] = centre - span / 2; hi[j] = centre + span / 2
        }
        return (lo[0]...hi[0], lo[1]...hi[1])
    }

    /// A PNG of `samples` (data units): a grid for image data, a scatter plot of the first two
    /// columns otherwise (beside the reference points when given). Returns a note for stderr.
    static func writePNG<T: Scalar>(
        samples: Matrix<T>, description: DataDescription, preprocessing: Preprocessing<T>, reference: Matrix<T>?, path: String
    ) throws -> String {
        if description.kind == .image, let levels = preprocessing.levels {
            let grey = (1 / T(levels - 1)) * samples
            let columns = max(1, Int(Double(samples.rows).squareRoot().rounded(.up)))
            let scale = description.imageHeight >= 20 ? 2 : 4
            let image = try GreyscaleImage.grid(
                grey, height: description.imageHeight, width: description.imageWidth, columns: columns, scale: scale, spacing: 2)
            try PNGWriter.write(image, to: path)
            return "wrote \(samples.rows) samples as a grid of \(columns) columns, \(image.width)x\(image.height) px, to \(path)"
        }
        guard samples.columns >= 2 else {
            throw InvertNNError.invalidArgument(operation: "invertnn", reason: "a scatter plot needs at least 2 columns, the data have \(samples.columns)")
        }
        let (xRange, yRange) = window(reference: reference, preprocessing: preprocessing)
        let labels = axisLabels(description)
        var panels = [GreyscaleImage]()
        if let reference {
            panels.append(try scatterWithAxes(reference, xRange: xRange, yRange: yRange, labels: labels,
                                              title: "training data (\(reference.rows) points)"))
        }
        panels.append(try scatterWithAxes(samples, xRange: xRange, yRange: yRange, labels: labels,
                                          title: "model samples (\(samples.rows) points)"))
        let image = try GreyscaleImage.sideBySide(panels)
        try PNGWriter.write(image, to: path)
        let columns = description.columns.map { $0.prefix(2).joined(separator: ", ") } ?? "columns 1, 2"
        return "wrote a scatter plot (\(columns)) of \(samples.rows) samples\(reference == nil ? "" : " (right) beside \(reference!.rows) training points (left)"), \(image.width)x\(image.height) px, to \(path)"
    }

    /// The axis labels of a scatter plot of 2-D data: the first two column names, else `x1`, `x2`.
    static func axisLabels(_ description: DataDescription) -> (x: String, y: String) {
        guard let columns = description.columns, columns.count >= 2 else { return ("x1", "x2") }
        return (columns[0], columns[1])
    }

    /// ``GreyscaleImage/scatter(_:xRange:yRange:size:dotSize:)`` framed by axes in data units
    /// (``GreyscaleImage/withAxes(_:xRange:yRange:xLabel:yLabel:title:)``).
    static func scatterWithAxes<T: Scalar>(
        _ points: Matrix<T>, xRange: ClosedRange<Double>, yRange: ClosedRange<Double>, size: Int = 320,
        labels: (x: String, y: String), title: String
    ) throws -> GreyscaleImage {
        try GreyscaleImage.withAxes(
            try GreyscaleImage.scatter(points, xRange: xRange, yRange: yRange, size: size),
            xRange: xRange, yRange: yRange, xLabel: labels.x, yLabel: labels.y, title: title)
    }

    /// One sample per row with a header of column names, in data units.
    static func writeCSV<T: Scalar>(samples: Matrix<T>, description: DataDescription, integer: Bool, path: String) throws {
        var text = csvHeader(columns: samples.columns, description: description) + "\n"
        for r in 0..<samples.rows {
            text += (0..<samples.columns).map { c -> String in
                let v = Double(samples[r, c])
                return integer ? String(Int(v)) : "\(v)"
            }.joined(separator: ",")
            text += "\n"
        }
        try AtomicFile.write(text: text, to: path)
    }

    /// The header line of ``writeCSV(samples:description:integer:path:)``: the data's column
    /// names (`x1,x2,…` when they are unknown), as RFC 4180 fields.
    static func csvHeader(columns: Int, description: DataDescription) -> String {
        let names = description.columns?.count == columns ? description.columns! : (1...max(columns, 1)).map { "x\($0)" }
        return names.map(csvField).joined(separator: ",")
    }

    /// A header name as one RFC 4180 field: quoted (inner quotes doubled) when it holds a comma,
    /// a quote, a line break or outer spaces, so that the CSV readers get the name back.
    static func csvField(_ name: String) -> String {
        let needsQuotes = name.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }
            || name.first == " " || name.last == " "
        return needsQuotes ? "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : name
    }

    /// `log p(x)` in data units of a grid over the window, `[height · width]`, first row on top.
    static func densityGrid<T: Scalar>(
        flow: NormalizingFlow<T>, preprocessing: Preprocessing<T>, xRange: ClosedRange<Double>, yRange: ClosedRange<Double>,
        size: Int
    ) throws -> [Double] {
        var points = Matrix<T>(rows: size * size, columns: 2)
        for r in 0..<size {
            let y = yRange.upperBound - (Double(r) + 0.5) / Double(size) * (yRange.upperBound - yRange.lowerBound)
            for c in 0..<size {
                let x = xRange.lowerBound + (Double(c) + 0.5) / Double(size) * (xRange.upperBound - xRange.lowerBound)
                points[r * size + c, 0] = T(x)
                points[r * size + c, 1] = T(y)
            }
        }
        var noise = SeededGenerator(seed: 0)
        let pre = try preprocessing.transform(points, using: &noise)
        let logP = try flow.logProbability(pre.output)
        return (0..<logP.count).map { Double(logP[$0]) + Double(pre.logAbsDet[$0]) }
    }
}

/// Loads a checkpoint in the precision it was saved in and hands it to `body`.
protocol CheckpointConsumer {
    func run<T: Scalar>(_ checkpoint: Checkpoint<T>, path: String) throws
}

extension CheckpointConsumer {
    func withCheckpoint(at path: String) throws {
        let file = try SafeTensors.read(path: path)
        switch try Checkpoint<Float>.storedDType(of: file, path: path) {
        case .f32: try run(try Checkpoint<Float>(file: file, path: path), path: path)
        case .f64: try run(try Checkpoint<Double>(file: file, path: path), path: path)
        }
    }
}

/// Common output switches.
struct OutputOptions: ParsableArguments {
    @Flag(help: "No progress or notes on stderr (errors still go there).")
    var quiet = false

    @Flag(help: "Print the result as one JSON object (sorted keys, one line) on stdout and nothing else there; `train` and `sbi` always do.")
    var json = false

    func note(_ text: String) { if !quiet { StandardError.line(text) } }
}
