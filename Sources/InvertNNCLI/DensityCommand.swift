import ArgumentParser
import BLASCoreType
import Foundation
import InvertNN
import InvertNNPlots

/// `invertnn density`: a picture of a 2-D model's learned density.
struct DensityCommand: ParsableCommand, CheckpointConsumer {
    static let configuration = CommandConfiguration(
        commandName: "density",
        abstract: "Render the learned density of a 2-D model as a heat map, beside the training points and model samples.",
        discussion: """
            Three panels over the same window: the density p(x) on a grid (white = 0, black = the \
            maximum), the training points (regenerated for the toy densities, or read from --data), and \
            as many samples from the model.
            """)

    @Option(help: "The model file written by `invertnn train` on 2-D data (safetensors).")
    var model: String

    @Option(help: "The PNG to write.")
    var png: String = "density.png"

    @Option(help: ArgumentHelp("The training data to show (default: the model's own toy dataset).", valueName: "NAME|PATH"))
    var data: String?

    @Option(parsing: .unconditional, help: "Grid cells per side (the heat map's resolution in pixels).")
    var size: Int = 320

    @OptionGroup var readLimits: ReadLimitOptions

    @OptionGroup var output: OutputOptions

    func validate() throws {
        try InputPath.requireFile(model, option: "--model")
        if let data {
            // A typo or a missing file is an error, not a picture without the training points.
            if let named = NamedData(rawValue: data) {
                guard named.levels == nil else { throw ValidationError("--data \(data) is image data; density pictures show 2-D continuous data") }
            } else {
                try DataOptions.requireDataFile(data)
            }
        }
        guard size >= 16, size <= 2000 else { throw ValidationError("--size must lie in 16...2000, got \(size)") }
        try OutputPath.requireWritableDirectory(png, option: "--png")
        try OutputPath.requireNotInputs([("--png", png)], inputs: [("--model", model)])
    }

    func run() throws {
        BLASCoreSelection.reexecuteWithBetterKernelsIfNeeded()
        try withCheckpoint(at: model)
    }

    func run<T: Scalar>(_ checkpoint: Checkpoint<T>, path: String) throws {
        guard !checkpoint.flow.isConditional else {
            throw ValidationError(
                "\(model) is a conditional model (p(x | c) with \(checkpoint.flow.contextFeatures) context column(s)); density pictures are drawn for unconditional 2-D models only")
        }
        guard checkpoint.flow.features == 2, !checkpoint.preprocessing.isDiscrete else {
            throw ValidationError("density pictures need a model of 2-D continuous data; \(model) has \(checkpoint.flow.features) dimensions")
        }
        let description = DataDescription(checkpoint.dataset, dimensions: 2)
        var points: Matrix<T>? = nil
        let source = data ?? description.name
        if let named = NamedData(rawValue: source), named.levels == nil {
            points = try named.load(T.self).train
        } else if RegularFile.problem(at: source) == nil {
            points = try TabularDataset<T>.csv(path: source, limits: readLimits.limits).train
        } else {
            output.note("the model's training data \(source) is not a readable file: drawing without the training points (give --data)")
        }
        let (xRange, yRange) = Rendering.window(reference: points, preprocessing: checkpoint.preprocessing)
        let progress = ProgressLine(label: "density grid", quiet: output.quiet)
        progress.update(0, of: size * size)
        let logP = try Rendering.densityGrid(
            flow: checkpoint.flow, preprocessing: checkpoint.preprocessing, xRange: xRange, yRange: yRange, size: size)
        progress.finish()
        let top = logP.filter { $0.isFinite }.max() ?? 0
        let heat = try GreyscaleImage.heatMap(logP.map { Double.exp($0 - top) }, width: size, height: size)
        let drawn = try Rendering.samples(
            flow: checkpoint.flow, preprocessing: checkpoint.preprocessing, count: points?.rows ?? 2000, temperature: 1, seed: 1)
        let labels = Rendering.axisLabels(description)
        var panels = [try GreyscaleImage.withAxes(heat, xRange: xRange, yRange: yRange, xLabel: labels.x, yLabel: labels.y,
                                                  title: "model density (darker: higher)")]
        if let points {
            panels.append(try Rendering.scatterWithAxes(points, xRange: xRange, yRange: yRange, size: size, labels: labels,
                                                        title: "training data (\(points.rows) points)"))
        }
        panels.append(try Rendering.scatterWithAxes(drawn, xRange: xRange, yRange: yRange, size: size, labels: labels,
                                                    title: "model samples (\(drawn.rows) points)"))
        let image = try GreyscaleImage.sideBySide(panels)
        try OutputPath.requireReplaceable(png, option: "--png", kind: .png)
        try PNGWriter.write(image, to: png)
        // The grid integrates the density: close to 1 when the window holds the model's mass.
        let cell = (xRange.upperBound - xRange.lowerBound) * (yRange.upperBound - yRange.lowerBound) / Double(size * size)
        let mass = logP.reduce(0) { $0 + ($1.isFinite ? Double.exp($1) : 0) } * cell
        output.note("wrote the density (\(points == nil ? "" : "with the training points and ")model samples), \(image.width)x\(image.height) px, to \(png); the window x ∈ [\(format(xRange.lowerBound)), \(format(xRange.upperBound))], y ∈ [\(format(yRange.lowerBound)), \(format(yRange.upperBound))] holds \(format(mass)) of the probability mass")
        if output.json {
            try StandardOutput.json(DensitySummary(png: png, mass_in_window: SummaryNumber(mass), max_log_density: SummaryNumber(top)))
        }
    }
}

/// The JSON line of `--json`.
private struct DensitySummary: Encodable {
    let png: String
    let mass_in_window, max_log_density: SummaryNumber
}
