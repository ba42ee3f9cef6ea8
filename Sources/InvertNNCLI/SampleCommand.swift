import ArgumentParser
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
        if let png { try OutputPath.requireWritableDirectory(png, option: "--png") }
        if let csv { try OutputPath.requireWritableDirectory(csv, option: "--csv") }
        if let png, let csv { try OutputPath.requireDistinct([("--png", png), ("--csv", csv)]) }
        try OutputPath.requireNotInputs(
            [png.map { ("--png", $0) }, csv.map { ("--csv", $0) }].compactMap { $0 }, inputs: [("--model", model)])
    }

    func run() throws {
        BLASCoreSelection.reexecuteWithBetterKernelsIfNeeded()
        try withCheckpoint(at: model)
    }

    func run<T: Scalar>(_ checkpoint: Checkpoint<T>, path: String) throws {
        let description = DataDescription(checkpoint.dataset, dimensions: checkpoint.flow.features)
        let temperature = self.temperature ?? Rendering.defaultTemperature(description.kind)
        let drawn = try Rendering.samples(
            flow: checkpoint.flow, preprocessing: checkpoint.preprocessing, count: count, temperature: temperature, seed: seed)
        // Both outputs are committed together: a failure leaves any existing files untouched.
        let staging = OutputStaging()
        var notes = [String]()
        if let png {
            notes.append(try staging.write(png) {
                try Rendering.writePNG(
                    samples: drawn, description: description, preprocessing: checkpoint.preprocessing, reference: nil, path: $0)
            })
        }
        if let csv {
            try staging.write(csv) {
                try Rendering.writeCSV(samples: drawn, description: description, integer: checkpoint.preprocessing.isDiscrete, path: $0)
                return ""
            }
            notes.append("wrote \(count) samples of \(drawn.columns) columns to \(csv)")
        }
        try staging.commit()
        notes.forEach(output.note)
        if output.json {
            try StandardOutput.json(SampleSummary(
                model: model, count: count, temperature: SummaryNumber(temperature), seed: seed, png: Nullable(png), csv: Nullable(csv)))
        }
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
