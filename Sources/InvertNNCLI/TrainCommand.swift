import ArgumentParser
import Foundation
import InvertNN

/// Floating-point precision of a run.
enum Precision: String, ExpressibleByArgument, CaseIterable {
    case float, double
}

/// `invertnn train`: trains the default flow on discrete image data by maximum likelihood,
/// reports bits/dim per epoch on stderr, writes a grid of samples as PNG and ends with one JSON
/// line on stdout.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the default normalizing flow on the digits (or a CSV of integer pixels).",
        discussion: """
            Progress goes to stderr; stdout gets exactly one JSON line with the train, validation and \
            test bits per dimension of the epoch with the best validation likelihood, the epochs, the \
            seconds, the parameter count and the precision.
            """)

    @OptionGroup var dataOptions: DataOptions

    @Option(parsing: .unconditional, help: "Passes over the training set.")
    var epochs: Int = TrainingDefaults.epochs

    @Option(parsing: .unconditional, help: "Samples per optimizer step.")
    var batchSize: Int = TrainingDefaults.batchSize

    @Option(parsing: .unconditional, help: "Adam's base learning rate (cosine-decayed over the run).")
    var learningRate: Double = TrainingDefaults.learningRate

    @Option(help: "Seed of the initialization, shuffling, noise and samples; the same seed gives the same results.")
    var seed: UInt64 = 0

    @Option(help: "Floating-point precision: float or double.")
    var precision: Precision = .float

    @Option(parsing: .unconditional, help: "OpenBLAS threads (default: all cores).")
    var threads: Int?

    @Option(help: "Where to write the 8x8 grid of generated samples (PNG).")
    var samples: String = "samples.png"

    @Option(parsing: .unconditional, help: "Coupling blocks of the flow.")
    var couplings: Int = TrainingDefaults.couplings

    @Option(help: ArgumentHelp("Hidden widths of each coupling's conditioner MLP, comma-separated.", valueName: "N,N,..."))
    var hiddenSizes: String = TrainingDefaults.hiddenSizes.map(String.init).joined(separator: ",")

    @Option(help: "Feature mixing before each coupling: invertible-linear or permutation.")
    var mixing: MixingOption = TrainingDefaults.mixing

    @Option(parsing: .unconditional, help: "Adam's decoupled weight decay (AdamW).")
    var weightDecay: Double = TrainingDefaults.weightDecay

    @Option(parsing: .unconditional, help: "Decay of the exponential moving average of the parameters used for evaluation and the result (0 = off).")
    var averaging: Double = TrainingDefaults.averaging

    @Option(parsing: .unconditional, help: "Sampling temperature: the standard deviation of the latent draws (1 = the model's own distribution).")
    var temperature: Double = 1

    func validate() throws {
        guard epochs >= 0 else { throw ValidationError("--epochs must be 0 or more, got \(epochs)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        guard learningRate > 0, learningRate.isFinite else {
            throw ValidationError("--learning-rate must be positive, got \(learningRate)")
        }
        if let threads, threads < 1 || threads > 1024 {
            throw ValidationError("--threads must be in 1...1024, got \(threads)")
        }
        guard temperature > 0, temperature.isFinite else {
            throw ValidationError("--temperature must be positive, got \(temperature)")
        }
        // Upper bounds keep a typo from allocating without end (a model this size would not fit anyway).
        guard couplings >= 1, couplings <= 10_000 else {
            throw ValidationError("--couplings must be in 1...10000, got \(couplings)")
        }
        guard let hidden = parsedHiddenSizes, hidden.allSatisfy({ $0 <= 65_536 }) else {
            throw ValidationError("--hidden-sizes must be comma-separated integers in 1...65536, got '\(hiddenSizes)'")
        }
        guard weightDecay >= 0, weightDecay.isFinite else {
            throw ValidationError("--weight-decay must be 0 or more, got \(weightDecay)")
        }
        guard averaging >= 0, averaging < 1 else { throw ValidationError("--averaging must lie in [0, 1), got \(averaging)") }
        guard !samples.isEmpty else { throw ValidationError("--samples needs a file path") }
        let directory = URL(fileURLWithPath: samples).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("--samples: the directory \(directory) does not exist")
        }
    }

    /// The hidden widths, or nil if malformed (an empty string means no hidden layer).
    var parsedHiddenSizes: [Int]? {
        if hiddenSizes.isEmpty { return [] }
        let parts = hiddenSizes.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
        return parts.compactMap { $0 }
    }

    func run() throws {
        BLASCoreSelection.reexecuteWithBetterKernelsIfNeeded()
        BLAS.setThreads(threads ?? 0)
        switch precision {
        case .float: try train(Float.self)
        case .double: try train(Double.self)
        }
    }

    private func train<T: Scalar>(_: T.Type) throws {
        let clock = ContinuousClock()
        let start = clock.now
        let dataset = try dataOptions.load(T.self)
        let flow: NormalizingFlow<T> = try FlowPresets.digits(
            features: dataset.dimensions, couplings: couplings, hiddenSizes: parsedHiddenSizes ?? [],
            mixing: mixing.preset, seed: seed)
        let preprocessing = try Dequantization<T>(levels: dataset.levels, logitAlpha: T(FlowPresets.logitAlpha))
        let configuration = TrainingConfiguration(
            epochs: epochs, batchSize: batchSize, learningRate: learningRate, seed: seed,
            maxGradientNorm: TrainingDefaults.maxGradientNorm, weightDecay: weightDecay, schedule: TrainingDefaults.schedule,
            parameterAveraging: averaging > 0 ? averaging : nil)
        let trainer = try Trainer(flow: flow, preprocessing: preprocessing, configuration: configuration)

        StandardError.line(
            "invertnn train: \(dataset.name), \(dataset.train.rows)/\(dataset.validation.rows)/\(dataset.test.rows) samples of "
                + "\(dataset.dimensions) dimensions with \(dataset.levels) levels; \(flow.trainableParameterCount) parameters; "
                + "\(precision.rawValue), \(BLAS.threads) BLAS thread(s), \(BLAS.coreName) kernels")
        let reporter = ProgressReporter(epochs: epochs)
        let result = try trainer.fit(
            train: dataset.train, validation: dataset.validation, test: dataset.test, progress: reporter.handle)
        reporter.finish()

        // Samples of the selected parameters, in data units, as an 8×8 grid upscaled ×4.
        var generator = SeededGenerator(seed: seed &+ 0x5A3B_1E5)
        let drawn = try flow.sample(count: 64, temperature: T(temperature), using: &generator)
        let levels = preprocessing.discretize(preprocessing.dataUnits(drawn))
        let grey = (1 / T(dataset.levels - 1)) * levels
        let image = try GreyscaleImage.grid(
            grey, height: dataset.imageHeight, width: dataset.imageWidth, columns: 8, scale: 4, spacing: 2)
        try PNGWriter.write(image, to: samples)
        StandardError.line("wrote 64 samples (temperature \(temperature)) as an 8x8 grid, \(image.width)x\(image.height) px, to \(samples)")

        let best = result.best
        let test = best.test ?? best.validation
        let elapsed = (clock.now - start).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
        StandardError.line(
            "selected epoch \(best.epoch) (lowest validation NLL): train \(format(best.train.bitsPerDimension)), "
                + "validation \(format(best.validation.bitsPerDimension)), test \(format(test.bitsPerDimension)) bits/dim")
        let json = "{\"dataset\":\(jsonString(dataset.name)),"
            + "\"train_bits_per_dim\":\(jsonNumber(best.train.bitsPerDimension)),"
            + "\"validation_bits_per_dim\":\(jsonNumber(best.validation.bitsPerDimension)),"
            + "\"test_bits_per_dim\":\(jsonNumber(test.bitsPerDimension)),"
            + "\"epochs\":\(epochs),"
            + "\"seconds\":\(jsonNumber((seconds * 1000).rounded() / 1000)),"
            + "\"parameters\":\(flow.trainableParameterCount),"
            + "\"precision\":\"\(precision.rawValue)\"}"
        print(json)
    }
}

/// The `--mixing` choices.
enum MixingOption: String, ExpressibleByArgument, CaseIterable {
    case invertibleLinear = "invertible-linear"
    case permutation

    var preset: FlowPresets.Mixing { self == .permutation ? .permutation : .invertibleLinear }
}

/// The default hyper-parameters of `invertnn train` (tuned for the digits on 2 cores).
enum TrainingDefaults {
    static let couplings = 8
    static let hiddenSizes = [256, 256]
    static let mixing = MixingOption.invertibleLinear
    static let weightDecay = 0.0
    static let averaging = 0.995
    static let epochs = 30
    static let batchSize = 32
    static let learningRate = 5e-3
    static let maxGradientNorm: Double? = 100
    static let schedule = LearningRateSchedule.cosine(finalFraction: 0.02, warmupSteps: 20)
}

/// Formats bits/dim for people.
func format(_ value: Double) -> String { String(format: "%.4f", value) }

/// A JSON number (the values here are always finite; a non-finite one becomes `null`).
func jsonNumber(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }

/// A JSON string literal with the required escapes (RFC 8259 §7).
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out + "\""
}
