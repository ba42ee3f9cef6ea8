import ArgumentParser
import Foundation
import InvertNN
import InvertNNPlots

/// `invertnn sbi`: neural posterior estimation on a simulator whose true posterior is known
/// (Papamakarios & Murray 2016; Greenberg et al. 2019): simulates `(θ, x)` pairs, trains a
/// conditional flow `q(θ | x)`, and compares its posterior at fixed observations with the truth.
struct SBICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sbi",
        abstract: "Simulation-based inference examples: learn p(θ | x) from simulations and score it against the true posterior.",
        discussion: """
            gaussian-linear: θ ~ N(0, I₁₀), x | θ ~ N(θ, 0.1·I₁₀); the posterior is Gaussian and known, and the \
            JSON reports for 3 fixed observations the error of the posterior mean, the relative error of its \
            covariance, KL(true ‖ fitted) in nats (Monte Carlo over true posterior draws) and the C2ST. \
            two-moons (Greenberg et al. 2019): θ ~ U[-1, 1]², a crescent posterior at x_o = (0, 0), scored by the \
            C2ST against exact rejection samples (0.5 = indistinguishable). Progress goes to stderr, one JSON \
            line to stdout.
            """)

    enum Task: String, ExpressibleByArgument, CaseIterable {
        case gaussianLinear = "gaussian-linear"
        case twoMoons = "two-moons"
    }

    @Option(help: "gaussian-linear or two-moons.")
    var task: Task = .gaussianLinear

    @Option(parsing: .unconditional, help: "Simulations to train on (90% training, 10% validation).")
    var simulations: Int = 10_000

    @Option(parsing: .unconditional, help: "Passes over the training simulations (default: the task's preset).")
    var epochs: Int?

    @Option(parsing: .unconditional, help: "Coupling blocks of the flow (default: the task's preset).")
    var couplings: Int?

    @Option(parsing: .unconditional, help: "Width of the two hidden layers of each conditioner (default: the task's preset).")
    var hidden: Int?

    @Option(parsing: .unconditional, help: "Samples per optimizer step (default: the task's preset).")
    var batchSize: Int?

    @Option(parsing: .unconditional, help: "Adam's base learning rate, cosine-decayed (default: the task's preset).")
    var learningRate: Double?

    @Option(parsing: .unconditional, help: "Adam's decoupled weight decay (default: the task's preset).")
    var weightDecay: Double?

    /// Draws of each side the classifier two-sample test uses at most.
    static let c2stDraws = 10_000

    @Option(parsing: .unconditional, help: "Posterior draws per observation for the scores (the C2ST uses the first 10000 of each side).")
    var posteriorSamples: Int = 10_000

    @Flag(inversion: .prefixedNo, help: "Score with the classifier two-sample test (5 classifiers per observation; default: on for two-moons, off for gaussian-linear, where the KL is exact).")
    var c2st: Bool?

    @Option(parsing: .unconditional, help: "Seed of the simulations, the initialization and the scores.")
    var seed: UInt64 = 0

    @Option(parsing: .unconditional, help: "OpenBLAS threads (default: 1).")
    var threads: Int = 1

    @Option(help: "A PNG of the true (left) and fitted (right) posterior at the first observation (first two coordinates of θ).")
    var png: String?

    @Option(help: "Where to write the trained conditional model (safetensors).")
    var out: String?

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard simulations >= 100, simulations <= 10_000_000 else {
            throw ValidationError("--simulations must be in 100...10000000, got \(simulations)")
        }
        if let epochs, epochs < 1 || epochs > 100_000 { throw ValidationError("--epochs must be in 1...100000, got \(epochs)") }
        if let couplings, couplings < 1 || couplings > 100 { throw ValidationError("--couplings must be in 1...100, got \(couplings)") }
        if let hidden, hidden < 1 || hidden > 4096 { throw ValidationError("--hidden must be in 1...4096, got \(hidden)") }
        if let batchSize, batchSize < 1 || batchSize > 1_000_000 { throw ValidationError("--batch-size must be in 1...1000000, got \(batchSize)") }
        if let learningRate, !(learningRate > 0 && learningRate <= 1) { throw ValidationError("--learning-rate must lie in (0, 1], got \(learningRate)") }
        if let weightDecay, !(weightDecay >= 0 && weightDecay <= 1) { throw ValidationError("--weight-decay must lie in [0, 1], got \(weightDecay)") }
        guard posteriorSamples >= 100, posteriorSamples <= 1_000_000 else {
            throw ValidationError("--posterior-samples must be in 100...1000000, got \(posteriorSamples)")
        }
        guard threads >= 1, threads <= 1024 else { throw ValidationError("--threads must be in 1...1024, got \(threads)") }
        if let png { try OutputPath.requireWritableDirectory(png, option: "--png") }
        if let out { try OutputPath.requireWritableDirectory(out, option: "--out") }
        if let png, let out { try OutputPath.requireDistinct([("--png", png), ("--out", out)]) }
    }

    /// The model and optimizer of each task.
    struct Preset {
        var couplings: Int
        var hidden: Int
        var epochs: Int
        var batchSize: Int
        var learningRate: Double
        var weightDecay: Double = 0
    }

    var preset: Preset {
        switch task {
        // The Gaussian posterior is linear in the observation, so the regression layer alone
        // holds it: a single small coupling fits it best, larger flows overfit the training
        // pairs (docs/PRESETS.md).
        case .gaussianLinear: return Preset(couplings: 1, hidden: 8, epochs: 100, batchSize: 128, learningRate: 3e-3)
        case .twoMoons: return Preset(couplings: 8, hidden: 128, epochs: 150, batchSize: 128, learningRate: 1e-3)
        }
    }

    /// The scores of the fitted posterior at one observation.
    struct ObservationScore: Encodable {
        var observation: [Double]
        var meanError: Double
        var covarianceError: Double
        var kl: Double?
        var c2st: Double?

        enum CodingKeys: String, CodingKey {
            case observation = "x_o", meanError = "mean_error", covarianceError = "covariance_error", kl, c2st
        }
    }

    /// The JSON line.
    struct Summary: Encodable {
        var task: String
        var simulations: Int
        var epochs: Int
        var bestEpoch: Int
        var parameters: Int
        var trainSeconds: Double
        var validationNLL: Double
        var threads: Int
        var observations: [ObservationScore]
        var meanKL: Double?
        var meanC2ST: Double?
        var model: String?
        var png: String?

        enum CodingKeys: String, CodingKey {
            case task, simulations, epochs, parameters, threads, observations, model, png
            case bestEpoch = "best_epoch", trainSeconds = "train_seconds", validationNLL = "validation_nll"
            case meanKL = "mean_kl", meanC2ST = "mean_c2st"
        }
    }

    func run() throws {
        BLAS.setThreads(threads)
        let simulator: any Simulator = task == .twoMoons ? TwoMoons() : try GaussianLinear()
        try run(simulator)
    }

    private func run(_ simulator: some Simulator) throws {
        if let png { try OutputPath.requireReplaceable(png, option: "--png", kind: .png) }
        if let out { try OutputPath.requireReplaceable(out, option: "--out", kind: .checkpoint) }
        let preset = self.preset
        var generator = SeededGenerator(seed: seed)
        let (theta, x) = simulator.simulations(count: simulations, using: &generator)
        let validationRows = simulations / 10
        let thetaF = theta.converted(to: Float.self), xF = x.converted(to: Float.self)
        let train = thetaF.rows(validationRows..<simulations), validation = thetaF.rows(0..<validationRows)
        let trainContext = xF.rows(validationRows..<simulations), validationContext = xF.rows(0..<validationRows)

        let encoder = try ContextEncoder<Float>(
            features: simulator.observations, encoding: .standardization(try Standardization(fitting: trainContext)))
        let width = hidden ?? preset.hidden
        let couplingFlow = try FlowPresets.realNVP(
            features: simulator.parameters, couplings: couplings ?? preset.couplings, hiddenSizes: [width, width],
            context: encoder, seed: seed, as: Float.self)
        // Last in the generative direction, a conditional elementwise affine map whose shift and
        // log-scale are functions of x alone (linear for the Gaussian task): a learned regression
        // of θ on x, so the couplings only model what is left.
        var initialization = SeededGenerator(seed: seed ^ 0xBB67_AE85_84CA_A73B)
        let regression = try AffineCoupling<Float>(
            features: simulator.parameters, hiddenSizes: task == .gaussianLinear ? [] : [width], firstBlockSize: 0,
            contextFeatures: encoder.encodedFeatures, using: &initialization)
        let flow = try NormalizingFlow(
            transform: try Sequential(couplingFlow.transform.layers + [regression]), contextEncoder: encoder)
        let preprocessing = Preprocessing<Float>.standardization(try Standardization(fitting: train))
        let configuration = TrainingConfiguration(
            epochs: epochs ?? preset.epochs, batchSize: batchSize ?? preset.batchSize,
            learningRate: learningRate ?? preset.learningRate, seed: seed, weightDecay: weightDecay ?? preset.weightDecay,
            parameterAveraging: nil)
        let trainer = try Trainer(flow: flow, preprocessing: preprocessing, configuration: configuration)
        output.note(
            "invertnn sbi: \(task.rawValue), \(train.rows)/\(validation.rows) simulations of θ (\(simulator.parameters)) given x "
                + "(\(simulator.observations)); \(flow.trainableParameterCount) parameters; \(BLAS.threads) BLAS thread(s)")
        let reporter = ProgressReporter(epochs: configuration.epochs, discrete: false, quiet: output.quiet)
        let result = try trainer.fit(
            train: train, validation: validation, trainContext: trainContext, validationContext: validationContext,
            progress: reporter.handle)
        reporter.finish()

        var scores = [ObservationScore]()
        var pictures: (truth: Matrix<Double>, fitted: Matrix<Double>)? = nil
        for (index, observation) in try observations(simulator).enumerated() {
            var draws = SeededGenerator(seed: seed &+ 0xC0FFEE &+ UInt64(index))
            let truth = try simulator.samplePosterior(count: posteriorSamples, observation: observation, using: &draws)
            let context = try Matrix<Float>([observation.map { Float($0) }])
            let fitted = try Rendering.samples(
                flow: flow, preprocessing: preprocessing, count: posteriorSamples, temperature: 1, seed: seed &+ UInt64(index),
                context: context).converted(to: Double.self)
            if pictures == nil { pictures = (truth, fitted) }
            var score = ObservationScore(
                observation: observation, meanError: Self.meanError(fitted, truth),
                covarianceError: try Self.covarianceError(fitted, truth), kl: nil, c2st: nil)
            if let gaussian = simulator as? GaussianLinear {
                // KL(p ‖ q) = E_p[log p(θ | x_o) - log q(θ | x_o)] over the true posterior draws.
                let logP = gaussian.posteriorLogDensity(truth, observation: observation)
                let y = try preprocessing.transform(truth.converted(to: Float.self), using: &draws)
                let logQ = try flow.logProbability(
                    y.output, context: context.rows(at: Array(repeating: 0, count: truth.rows)))
                var kl = 0.0
                for i in 0..<truth.rows { kl += logP[i] - (Double(logQ[i]) + Double(y.logAbsDet[i])) }
                score.kl = kl / Double(truth.rows)
            }
            if c2st ?? (task == .twoMoons) {
                // The classifier's cost grows with the draws times its epochs (2 × 10⁶ draws took
                // minutes per observation); the score's standard error at 10⁴ per side is ~0.004.
                let rows = 0..<min(truth.rows, Self.c2stDraws)
                output.note("observation \(index + 1): classifier two-sample test on \(rows.count) + \(rows.count) draws")
                score.c2st = try ClassifierTwoSampleTest.accuracy(truth.rows(rows), fitted.rows(rows), seed: seed)
            }
            output.note("x_o = \(observation.map { String(format: "%.3f", $0) }.joined(separator: ", ")): "
                + "mean error \(format(score.meanError)), covariance error \(format(score.covarianceError))"
                + (score.kl.map { ", KL \(format($0)) nats" } ?? "") + (score.c2st.map { ", C2ST \(format($0))" } ?? ""))
            scores.append(score)
        }

        let staging = OutputStaging()
        if let out {
            try staging.write(out) {
                try Checkpoint(flow: flow, preprocessing: preprocessing).write(to: $0)
                return ""
            }
        }
        if let png, let pictures {
            let note = try staging.write(png) { path in
                let points = try pictures.truth.concatenatedRows(pictures.fitted)
                let (xRange, yRange) = Rendering.window(reference: points, preprocessing: Preprocessing<Double>.standardization(
                    try Standardization(means: [0, 0], scales: [1, 1])))
                let image = try GreyscaleImage.sideBySide([
                    try Rendering.scatterWithAxes(pictures.truth, xRange: xRange, yRange: yRange, labels: ("theta1", "theta2"),
                                                  title: "true posterior (\(pictures.truth.rows) draws)"),
                    try Rendering.scatterWithAxes(pictures.fitted, xRange: xRange, yRange: yRange, labels: ("theta1", "theta2"),
                                                  title: "fitted posterior (\(pictures.fitted.rows) draws)"),
                ])
                try PNGWriter.write(image, to: path)
                return "wrote the true (left) and fitted (right) posterior at the first observation, θ₁ on x over "
                    + "[\(format(xRange.lowerBound)), \(format(xRange.upperBound))], θ₂ on y over "
                    + "[\(format(yRange.lowerBound)), \(format(yRange.upperBound))], to \(path)"
            }
            output.note(note)
        }
        try staging.commit()

        func mean(_ values: [Double?]) -> Double? {
            let present = values.compactMap { $0 }
            return present.isEmpty ? nil : present.reduce(0, +) / Double(present.count)
        }
        let summary = Summary(
            task: task.rawValue, simulations: simulations, epochs: configuration.epochs, bestEpoch: result.best.epoch,
            parameters: flow.trainableParameterCount, trainSeconds: (result.seconds * 1000).rounded() / 1000,
            validationNLL: result.best.validation.negativeLogLikelihood, threads: BLAS.threads, observations: scores,
            meanKL: mean(scores.map(\.kl)), meanC2ST: mean(scores.map(\.c2st)),
            model: out.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
            png: png.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
        try StandardOutput.json(summary)
    }

    /// The observations scored: x_o = (0, 0) for the two moons (as in Greenberg et al. 2019); for
    /// the Gaussian linear task three simulations from fixed prior draws (seeds 1, 2, 3).
    private func observations(_ simulator: some Simulator) throws -> [[Double]] {
        if simulator is TwoMoons { return [[0, 0]] }
        return (1...3).map { k in
            var generator = SeededGenerator(seed: UInt64(k))
            let theta = simulator.samplePrior(count: 1, using: &generator)
            return simulator.simulate(theta, using: &generator).row(0)
        }
    }

    /// `‖mean(a) - mean(b)‖₂`.
    static func meanError(_ a: Matrix<Double>, _ b: Matrix<Double>) -> Double {
        let ma = columnMeans(a), mb = columnMeans(b)
        return zip(ma, mb).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
    }

    /// `‖Σ_a - Σ_b‖_F / ‖Σ_b‖_F` of the sample covariances.
    static func covarianceError(_ a: Matrix<Double>, _ b: Matrix<Double>) throws -> Double {
        let ca = try covariance(a), cb = try covariance(b)
        return try (ca - cb).frobeniusNorm / cb.frobeniusNorm
    }

    static func columnMeans(_ m: Matrix<Double>) -> [Double] {
        (0..<m.columns).map { j in (0..<m.rows).reduce(0.0) { $0 + m[$1, j] } / Double(m.rows) }
    }

    /// The sample covariance `XcᵀXc / (n - 1)` of the centred rows, one GEMM.
    static func covariance(_ m: Matrix<Double>) throws -> Matrix<Double> {
        let mean = columnMeans(m)
        var centred = m
        for i in 0..<m.rows { for j in 0..<m.columns { centred[i, j] -= mean[j] } }
        var c = Matrix<Double>(rows: m.columns, columns: m.columns)
        try BLAS.gemm(centred, transposeA: true, centred, alpha: 1 / Double(m.rows - 1), into: &c)
        return c
    }
}

extension Matrix {
    /// `‖M‖_F`.
    var frobeniusNorm: Double { storage.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }

    /// The rows of `self` followed by those of `other` (same width).
    func concatenatedRows(_ other: Matrix) throws -> Matrix {
        try Matrix(rows: rows + other.rows, columns: columns, storage: storage + other.storage)
    }
}
