import ArgumentParser
import BLASCoreType
import Foundation
import CHeapSettings
import InvertNN
import InvertNNPlots

/// Floating-point precision of a run.
enum Precision: String, ExpressibleByArgument, CaseIterable {
    case float, double
}

/// `invertnn train`: trains a normalizing flow by maximum likelihood on the digits, MNIST, a 2-D
/// toy density or a CSV file; reports per epoch on stderr, writes samples as PNG and the model as
/// a safetensors checkpoint, and ends with one JSON line on stdout.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a normalizing flow on the digits, MNIST, a 2-D toy density or a CSV file.",
        discussion: """
            Integer data (digits, mnist, a CSV with --levels) are dequantized and scored in bits per \
            dimension; continuous data (toy densities, a CSV without --levels) are standardized and \
            scored in nats per dimension, the Jacobian of the standardization included. Model options \
            left out take the preset of the dataset (see --help of each option). Progress goes to \
            stderr; stdout gets exactly one JSON line with the figures of the epoch with the best \
            validation likelihood.
            """)

    @OptionGroup var dataOptions: DataOptions

    @OptionGroup var contextOptions: ContextOptions

    @Option(parsing: .unconditional, help: "Passes over the training set (default: the dataset's preset).")
    var epochs: Int?

    @Option(parsing: .unconditional, help: "Samples per optimizer step (default: the preset).")
    var batchSize: Int?

    @Option(parsing: .unconditional, help: "Adam's base learning rate, cosine-decayed over the run (default: the preset).")
    var learningRate: Double?

    @Option(parsing: .unconditional, help: "Seed of the initialization, shuffling, noise and samples (0...2^64-1); the same seed gives the same results.")
    var seed: UInt64 = 0

    @Option(name: .customLong("precision"), help: "Floating-point precision: float or double (default: float; with --resume the checkpoint's).")
    var precisionOption: Precision?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Threads: 1 runs one training process with single-threaded BLAS; N ≥ 2 splits every batch over N workers, "
            + "each with single-threaded BLAS, gradients summed in a fixed order (default: one worker, OpenBLAS on all cores).",
        valueName: "N"))
    var threads: Int?

    @Option(help: "Where to write generated samples (PNG): a grid for images, a scatter plot for other data.")
    var samples: String = "samples.png"

    @Option(help: "Where to write the trained model (safetensors); default model.safetensors beside the samples PNG.")
    var out: String?

    @Option(name: .customLong("flow"), help: "Flow family: realnvp (affine couplings, Dinh et al. 2017), nsf (rational-quadratic spline couplings, Durkan et al. 2019), maf (masked autoregressive, Papamakarios et al. 2017; --couplings counts its layers) or glow (multi-scale convolutional flow on images, Kingma & Dhariwal 2018) (default: realnvp).")
    var flowFamily: FlowFamily?

    @Option(help: ArgumentHelp(
        "Base distribution: gaussian (the standard normal), diagonal (a learnable diagonal Gaussian) or mixture[:K] (a learnable mixture of K diagonal Gaussians, default 8); learnable bases train with the flow and are saved in the checkpoint (default: gaussian).",
        valueName: "gaussian|diagonal|mixture[:K]"))
    var base: BaseOption?

    @Option(parsing: .unconditional, help: "Coupling blocks of the flow (default: the preset).")
    var couplings: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Hidden widths of each coupling's conditioner MLP, comma-separated (default: the preset).", valueName: "N,N,..."))
    var hiddenSizes: String?

    @Option(help: "Feature mixing before each coupling: invertible-linear or permutation (default: the preset).")
    var mixing: MixingOption?

    @Option(parsing: .unconditional, help: "Householder reflectors per orthogonal factor of each invertible-linear mixing layer (default: the preset; all = D).")
    var reflectors: Int?

    @Option(parsing: .unconditional, help: "Bound c of each coupling's log-scale, s = c·tanh(ŝ/c) (default: the preset).")
    var scaleBound: Double?

    @Option(help: "Transformer of each --flow maf layer: affine (MAF, Papamakarios et al. 2017) or spline (rational-quadratic, Durkan et al. 2019, RQ-NSF (AR); takes --bins and --tail-bound) (default: affine).")
    var transformer: TransformerOption?

    @Option(parsing: .unconditional, help: "Bins K of each spline, 1...256 (--flow nsf, or --flow maf --transformer spline; default 8, 4 on a CSV of continuous columns).")
    var bins: Int?

    @Option(parsing: .unconditional, help: "Tail bound B of each spline coupling: the spline covers [-B, B] of the (standardized) data, the identity elsewhere (--flow nsf; default: 3 for tabular data and images, 4 for 2-D points).")
    var tailBound: Double?

    @Option(parsing: .unconditional, help: "α of the logit preprocessing of integer data, y = logit(α + (1 - 2α)x) (default: the preset).")
    var logitAlpha: Double?

    @Option(help: "Initialization: random, or whitening (a linear layer initialized to whiten the preprocessed training data, ZCA, so that the flow starts as the full-covariance Gaussian of the data) (default: whitening for a CSV of continuous columns, random otherwise).")
    var initialization: InitializationOption?

    @Option(parsing: .unconditional, help: "Adam's decoupled weight decay (AdamW) (default: the preset; 0 except 1e-3 for --flow nsf on 2-D points).")
    var weightDecay: Double?

    @Option(parsing: .unconditional, help: "Decay of the exponential moving average of the parameters used for evaluation and the result (0 = off).")
    var averaging: Double = TrainingConfiguration().parameterAveraging ?? 0

    @Option(parsing: .unconditional, help: "Sampling temperature T: the standard deviation of the latent draws (1 = the model's own distribution; lower T trades diversity for cleaner samples). Default: 0.7 for images (as in Glow, Kingma & Dhariwal 2018), 1 for other data.")
    var temperature: Double?

    @Option(help: ArgumentHelp(
        "Continue training from this checkpoint: its architecture, preprocessing and (if it holds a training state) optimizer, averaging, selection, shuffle and hyper-parameters are restored; training goes on from the next epoch up to --epochs in total.",
        valueName: "PATH"))
    var resume: String?

    @Flag(help: "Store the training state (Adam's moments, the last iterate, the Polyak average, the epoch, the random streams) in --out so that --resume can continue exactly (about 5 times the model's size).")
    var saveState = false

    @Option(parsing: .unconditional, help: "Stop after this epoch although the learning-rate schedule spans --epochs, and write --out with the training state (continue with --resume).")
    var stopAfter: Int?

    @Option(parsing: .unconditional, help: "Early stopping: end the run when the validation NLL has not improved for N epochs (the best epoch is kept, as always).")
    var patience: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Write the model with the training state to --out every N epochs (atomically), so that an interrupted run loses at most N epochs; continue with --resume. Ctrl-C also writes the state of the last complete epoch.", valueName: "N"))
    var checkpointEvery: Int?

    @OptionGroup var output: OutputOptions

    @OptionGroup var glowOptions: GlowOptions


    func validate() throws {
        if let epochs, epochs < 0 || epochs > 1_000_000 {
            throw ValidationError("--epochs must be in 0...1000000, got \(epochs)")
        }
        if let stopAfter, stopAfter < 1 { throw ValidationError("--stop-after must be at least 1, got \(stopAfter)") }
        if let patience, patience < 1 || patience > 1_000_000 { throw ValidationError("--patience must be in 1...1000000, got \(patience)") }
        if let checkpointEvery, checkpointEvery < 1 || checkpointEvery > 1_000_000 {
            throw ValidationError("--checkpoint-every must be in 1...1000000, got \(checkpointEvery)")
        }
        if let stopAfter, let epochs, stopAfter > epochs {
            throw ValidationError("--stop-after \(stopAfter) is beyond --epochs \(epochs): the run ends at epoch \(epochs) anyway")
        }
        if let resume {
            if let problem = RegularFile.problem(at: resume) {
                throw ValidationError(problem == "no such file" ? "--resume: no such checkpoint file: \(resume)" : "--resume: \(resume) is \(problem)")
            }
        }
        if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        // Below 1e-10 a step changes nothing even in Double, and 1e-300 rounds to 0 in Float.
        if let learningRate, !(learningRate >= 1e-10 && learningRate <= 10) {
            throw ValidationError("--learning-rate must lie in [1e-10, 10], got \(learningRate)")
        }
        if let threads, threads < 1 || threads > 1024 {
            throw ValidationError("--threads must be in 1...1024, got \(threads)")
        }
        // A spread beyond 100 standard deviations is no sampling temperature, and in Float it
        // would overflow only after the whole training run.
        if let temperature, !(temperature > 0 && temperature <= 100) {
            throw ValidationError("--temperature must lie in (0, 100], got \(temperature)")
        }
        // Upper bounds keep a typo from allocating without end (a model this size would not fit anyway).
        if let couplings, couplings < 1 || couplings > 10_000 {
            throw ValidationError("--couplings must be in 1...10000, got \(couplings)")
        }
        if let reflectors, reflectors < 1 { throw ValidationError("--reflectors must be at least 1, got \(reflectors)") }
        // e^s must stay finite in Float (e^88 overflows), with room for the sum over features.
        if let scaleBound, !(scaleBound > 0 && scaleBound <= 50) {
            throw ValidationError("--scale-bound must lie in (0, 50], got \(scaleBound)")
        }
        let family = flowFamily ?? .realnvp
        try glowOptions.validate(family: family)
        if transformer != nil, family != .maf {
            throw ValidationError("--transformer applies to --flow maf (--flow nsf has spline couplings, --flow realnvp affine ones)")
        }
        let splines = family == .nsf || (family == .maf && transformer == .spline)
        if !splines {
            for (flag, given) in [("--bins", bins != nil), ("--tail-bound", tailBound != nil)] where given {
                throw ValidationError("\(flag) applies to splines: add --flow nsf, or --flow maf --transformer spline")
            }
        } else if scaleBound != nil {
            throw ValidationError("--scale-bound applies to affine transformers (--flow realnvp, --flow maf), not to splines")
        }
        if family == .maf {
            let ignored = [("--mixing", mixing != nil), ("--reflectors", reflectors != nil)]
            for (flag, given) in ignored where given {
                throw ValidationError("\(flag) applies to coupling flows (--flow realnvp or nsf); --flow maf orders its features inside each layer")
            }
        }
        if let bins, bins < 1 || bins > 256 { throw ValidationError("--bins must be in 1...256, got \(bins)") }
        if let tailBound, !(tailBound > 0 && tailBound <= 1000) {
            throw ValidationError("--tail-bound must lie in (0, 1000], got \(tailBound)")
        }
        if let logitAlpha, !(logitAlpha > 0 && logitAlpha < 0.5) {
            throw ValidationError("--logit-alpha must lie in (0, 0.5), got \(logitAlpha)")
        }
        if let hiddenSizes, !(parsedHiddenSizes.map { $0.allSatisfy { $0 <= 65_536 } } ?? false) {
            throw ValidationError("--hidden-sizes must be comma-separated integers in 1...65536, got '\(hiddenSizes)'")
        }
        if let weightDecay, !(weightDecay >= 0 && weightDecay.isFinite) {
            throw ValidationError("--weight-decay must be 0 or more, got \(weightDecay)")
        }
        guard averaging >= 0, averaging < 1 else { throw ValidationError("--averaging must lie in [0, 1), got \(averaging)") }
        for (flag, path) in [("--samples", samples), ("--out", modelPath)] {
            try OutputPath.requireWritableDirectory(path, option: flag)
        }
        let history = TrainingHistory.paths(model: modelPath)
        try OutputPath.requireDistinct([("--samples", samples), ("--out", modelPath), ("the history CSV", history.csv),
                                        ("the training curve", history.png)])
        // --out may be the resumed checkpoint (it is read before anything is written, and the
        // write is atomic); no output may be the data, nor --samples the checkpoint.
        try OutputPath.requireNotInputs(
            [("--out", modelPath), ("--samples", samples), ("the history CSV", history.csv), ("the training curve", history.png)],
            inputs: dataOptions.inputFiles)
        if let resume { try OutputPath.requireNotInputs([("--samples", samples)], inputs: [("--resume", resume)]) }
    }

    /// `--out`, or model.safetensors in the directory of `--samples`.
    var modelPath: String {
        out ?? URL(fileURLWithPath: samples).deletingLastPathComponent().appendingPathComponent("model.safetensors").path
    }

    /// The hidden widths, or nil if malformed (an empty string means no hidden layer).
    var parsedHiddenSizes: [Int]? {
        guard let hiddenSizes else { return nil }
        if hiddenSizes.isEmpty { return [] }
        let parts = hiddenSizes.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
        return parts.compactMap { $0 }
    }

    func run() throws {
        BLASCoreSelection.reexecuteWithBetterKernelsIfNeeded()
        // From here on a Ctrl-C is a request: one during loading or set-up stops the run after its
        // first step, with the state written, instead of killing the process without a word.
        Interruption.install()
        // Under mpirun: join the job (after the re-exec above, which replaces the process).
        let distributed = try DistributedRun.start()
        // Steps that allocate (Glow's convolutions, rebuilding mode) free and reallocate the same
        // buffers: keep them in the heap instead of unmapping them and faulting them back in
        // every step (Benchmarks/PERFORMANCE.md, "Allocation").
        invertnn_keep_freed_memory_for_reuse()
        // More workers than cores still works (the workers take turns), only more slowly.
        let cores = Self.usableCores
        if let threads, threads > cores, distributed.isWriter {
            output.note("--threads \(threads) exceeds the \(cores) core\(cores == 1 ? "" : "s") available to this process; "
                + "the workers share them, so steps are slower than with --threads \(cores)")
        }
        guard let workers = threads, workers > 1 else {
            BLAS.setThreads(threads ?? distributed.defaultThreads)
            return try distributed.run { try run(distributed) }
        }
        // Each worker trains a replica on its share of every batch; BLAS threads inside the
        // small GEMMs of a share would only compete with the other workers.
        BLAS.setThreads(1)
        let command = UncheckedSendable(self)
        try distributed.run {
            try ThreadGroup(threads: workers, outer: distributed.group).run { member in
                try command.value.run(distributed.worker(member, threads: workers))
            }
        }
    }

    private func run(_ distributed: DistributedRun) throws {
        // The precision of the run: --precision, else with --resume the checkpoint's, else float.
        var precision = precisionOption ?? .float
        if let resume, precisionOption == nil {
            let dtype = try Checkpoint<Double>.storedDType(of: try SafeTensors.read(path: resume), path: resume)
            precision = dtype == .f64 ? .double : .float
        }
        switch precision {
        case .float: try train(Float.self, precision: precision, distributed: distributed)
        case .double: try train(Double.self, precision: precision, distributed: distributed)
        }
    }

    /// The cores this process may run on: its CPU affinity mask (`taskset`, a container's
    /// cpuset), read with `sched_getaffinity` (looked up at run time: Swift's Glibc module does
    /// not declare it), else the online processors.
    static var usableCores: Int {
        typealias Affinity = @convention(c) (pid_t, Int, UnsafeMutableRawPointer) -> Int32
        // RTLD_DEFAULT (a null handle): the symbol as the process's libraries provide it.
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_getaffinity") {
            var mask = [UInt8](repeating: 0, count: 1024)  // 8192 CPUs
            let status = mask.withUnsafeMutableBytes { unsafeBitCast(symbol, to: Affinity.self)(0, $0.count, $0.baseAddress!) }
            let count = mask.reduce(0) { $0 + $1.nonzeroBitCount }
            if status == 0, count > 0 { return count }
        }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// Refuses models beyond ``FlowPresets/maximumParameters`` (each option is within its own range,
    /// but their product can still ask for terabytes), before anything is allocated.
    /// `outputsPerFeature`: conditioner outputs per transformed feature (2 affine, 3K - 1 spline).
    /// Also refuses a model whose training would not fit in this machine's memory: a run holds
    /// about twelve copies of every parameter (value, gradient, Adam's two moments, the moving
    /// average, the guard's and the best epoch's values, transient copies, the checkpoint being
    /// written; docs/PRESETS.md) of `scalarBytes` each, which must stay within 80 % of the
    /// physical memory.
    static func requireReasonableModelSize(
        features d: Int, couplings: Int, hiddenSizes: [Int], outputsPerFeature: Int = 2, scalarBytes: Int = 4
    ) throws {
        let conditioning = Double(d / 2), transformed = Double(d - d / 2), outputs = Double(outputsPerFeature)
        var widths = [conditioning] + hiddenSizes.map(Double.init) + [outputs * transformed]
        if widths.count < 2 { widths = [conditioning, outputs * transformed] }
        var perCoupling = 0.0
        for (a, b) in zip(widths, widths.dropFirst()) { perCoupling += a * b + b }
        let total = Double(couplings) * (perCoupling + 2 * Double(d) * Double(d))
        let limit = Double(FlowPresets.maximumParameters)
        guard total <= limit else {
            throw ValidationError(
                "the model would have about \(Int(total)) parameters (limit \(FlowPresets.maximumParameters)): lower --couplings or --hidden-sizes")
        }
        let needed = 12 * total * Double(scalarBytes)
        let physical = Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE)))
        if physical > 0, needed > 0.8 * physical {
            func gigabytes(_ bytes: Double) -> String { String(format: "%.1f GB", bytes / 1e9) }
            throw ValidationError(
                "training a model of about \(Int(total)) parameters needs about \(gigabytes(needed)) (about 12 copies "
                    + "of every parameter), more than 80% of this machine's \(gigabytes(physical)) of memory: lower --couplings or --hidden-sizes")
        }
    }

    /// The full-covariance Gaussian fitted to the training split, scored on the test split (or the
    /// validation split) like the flow (``FullCovarianceGaussian/baseline(preprocessing:splits:noiseSeeds:)``):
    /// the figure a flow must beat. `nil`, with a note, for a conditional run (`p(x | c)` does
    /// not compare with a Gaussian of `x`) or data without a Gaussian density (a constant column).
    private func gaussianBaseline<T: Scalar>(
        dataset: LoadedData<T>, preprocessing: Preprocessing<T>, configuration: TrainingConfiguration, output: OutputOptions
    ) throws -> SplitEvaluation? {
        guard dataset.context == nil else { return nil }
        let (scored, split) = dataset.test.rows > 0 ? (dataset.test, 2) : (dataset.validation, 1)
        let seeds = [0, split].map { TrainingConfiguration.evaluationNoiseSeed(split: $0, evaluationSeed: configuration.evaluationSeed) }
        do {
            let result = try FullCovarianceGaussian.baseline(preprocessing: preprocessing, splits: [dataset.train, scored], noiseSeeds: seeds)
            let test = result.evaluations[1]
            let figure = preprocessing.isDiscrete ? test.bitsPerDimension : test.natsPerDimension
            output.note("full-covariance Gaussian fitted to the training split: test \(format(figure)) "
                + "\(preprocessing.isDiscrete ? "bits/dim (of the dequantized data)" : "nats/dim") (gaussian_test_\(preprocessing.isDiscrete ? "bits" : "nats")_per_dim in the JSON line)")
            return test
        } catch let error as InvertNNError {
            output.note("no full-covariance Gaussian baseline: \(error)")
            return nil
        }
    }

    private func train<T: Scalar>(_: T.Type, precision: Precision, distributed: DistributedRun) throws {
        var output = self.output
        output.quiet = output.quiet || !distributed.isWriter
        let clock = ContinuousClock()
        let start = clock.now
        let loaded = try dataOptions.load(T.self)
        let dataset = contextOptions.contextColumns == nil ? loaded : try loaded.splittingContext(contextOptions.keys)
        // One row has no spread to standardize or whiten by, and no gradient to learn a density from.
        guard dataset.train.rows >= 2 else {
            throw ValidationError(
                "\(dataOptions.data): \(dataset.train.rows) training row\(dataset.train.rows == 1 ? "" : "s"); training needs at least 2 (use a larger file or --split with a larger training fraction)")
        }
        // Standardization keeps a constant column with σ = 1 (a note below), but when every
        // modelled column is constant there is no density at all to learn: the NLL only falls as
        // the flow shrinks onto the point, and the samples and their plot are that point.
        let constantColumns = dataset.constantColumns
        if dataset.dimensions >= 1, constantColumns.count == dataset.dimensions {
            let values = (0..<min(dataset.dimensions, 4)).map { "\(constantColumns[$0]) = \(dataset.train[0, $0])" }
            throw ValidationError(
                "--data \(dataOptions.data): every modelled column is constant in the training split (\(values.joined(separator: ", "))"
                    + "\(dataset.dimensions > 4 ? ", …" : "")); there is no density to learn: give data whose columns vary")
        }
        if dataset.kind != .image, dataset.train.rows <= dataset.dimensions {
            output.note("only \(dataset.train.rows) training rows for \(dataset.dimensions) dimensions: no density of full rank can be "
                + "estimated from them, and the figures will mostly measure overfitting")
        }
        let preset = ModelPreset.for(dataset, family: flowFamily ?? .realnvp)
        let flow: NormalizingFlow<T>
        let preprocessing: Preprocessing<T>
        var resumedState: TrainingState<T>? = nil
        var configuration: TrainingConfiguration
        if let resume {
            // The whole file is read before training, so --out may be the same path.
            let checkpoint = try Checkpoint<T>.read(path: resume)
            // A run without a training state trains on with the preset of the checkpoint's family.
            let isSpline = checkpoint.flow.transform.layers.contains { $0 is SplineCoupling<T> }
            let resumedPreset = flowFamily == nil && isSpline ? ModelPreset.for(dataset, family: .nsf) : preset
            let resumed = try ResumePlan(checkpoint: checkpoint, path: resume, command: self, dataset: dataset, preset: resumedPreset)
            for line in resumed.notes { output.note(line) }
            (flow, preprocessing, resumedState, configuration) = (checkpoint.flow, checkpoint.preprocessing, checkpoint.trainingState, resumed.configuration)
        } else {
            preprocessing = try dataset.preprocessing(logitAlpha: logitAlpha ?? preset.logitAlpha)
            var noise = SeededGenerator(seed: seed ^ 0x3C6E_F372_FE94_F82B)
            // A small table's preset starts from the mixture of its training rows when that mixture
            // beats their Gaussian on the validation rows; options that name a base or an
            // initialization keep their meaning.
            var mixtureBase: FullCovarianceMixture<T>? = nil
            if let components = preset.mixtureComponents, base == nil, initialization == nil, dataset.context == nil {
                let train = try preprocessing.transform(dataset.train, using: &noise).output
                let validation = try preprocessing.transform(dataset.validation, using: &noise).output
                mixtureBase = try ModelPreset.mixtureBase(
                    train: train, validation: validation, components: components, floor: preset.mixtureFloor, seed: seed)
                if mixtureBase != nil {
                    output.note("\(dataset.train.rows) training rows: the flow starts as the \(components)-component full-covariance "
                        + "mixture of the standardized training rows (covariance floor \(preset.mixtureFloor)), which beats their "
                        + "Gaussian on the validation rows; --base gaussian keeps the Gaussian preset")
                }
            }
            var whiteningData: Matrix<T>? = nil
            if mixtureBase == nil, (initialization ?? preset.initialization) == .whitening {
                whiteningData = try preprocessing.transform(dataset.train, using: &noise).output
            }
            guard dataset.dimensions >= 2 else {
                throw ValidationError(
                    "--data \(dataOptions.data) has \(dataset.dimensions) column after exclusions; a coupling flow needs at least 2")
            }
            let bins = self.bins ?? preset.bins
            try Self.requireReasonableModelSize(
                features: dataset.dimensions, couplings: couplings ?? preset.couplings,
                hiddenSizes: parsedHiddenSizes ?? preset.hiddenSizes,
                outputsPerFeature: preset.family == .nsf || transformer == .spline ? 3 * bins - 1 : 2,
                scalarBytes: MemoryLayout<T>.size)
            // pandas' to_csv writes its row index as a first column with an empty name.
            if let names = dataset.columnNames, let unnamed = names.firstIndex(where: { $0.isEmpty || $0.hasPrefix("Unnamed: ") }) {
                output.note("column \(unnamed + 1) of \(dataOptions.data) has no name (a pandas index written by to_csv?); it is "
                    + "modelled as data: exclude it with --drop-columns \(unnamed + 1) if it is a row number")
            }
            let constant = constantColumns
            if !constant.isEmpty {
                output.note("column\(constant.count == 1 ? "" : "s") \(constant.joined(separator: ", ")) of \(dataOptions.data) "
                    + "\(constant.count == 1 ? "is" : "are") constant in the training split: kept with σ = 1, but a constant "
                    + "has no density and the NLL can fall without bound; exclude \(constant.count == 1 ? "it" : "them") with --drop-columns")
            }
            if let reflectors, reflectors > dataset.dimensions {
                output.note("--reflectors \(reflectors) exceeds the \(dataset.dimensions) dimensions of the data; using \(dataset.dimensions)")
            }
            let context = try dataset.context.map { try contextOptions.encoder(for: $0, seed: seed) }
            let built: NormalizingFlow<T>
            switch preset.family {
            case .realnvp:
                built = try FlowPresets.realNVP(
                    features: dataset.dimensions, couplings: couplings ?? preset.couplings,
                    hiddenSizes: parsedHiddenSizes ?? preset.hiddenSizes, scaleBound: scaleBound ?? preset.scaleBound,
                    mixing: (mixing ?? preset.mixing).preset,
                    reflectors: reflectors ?? preset.reflectors, whiteningData: whiteningData, context: context, seed: seed)
            case .maf where transformer == .spline:
                built = try FlowPresets.splineAutoregressiveFlow(
                    features: dataset.dimensions, layers: couplings ?? preset.couplings,
                    hiddenSizes: parsedHiddenSizes ?? preset.hiddenSizes, bins: bins, tailBound: tailBound ?? preset.tailBound,
                    whiteningData: whiteningData, context: context, seed: seed)
            case .maf:
                built = try FlowPresets.maskedAutoregressiveFlow(
                    features: dataset.dimensions, layers: couplings ?? preset.couplings,
                    hiddenSizes: parsedHiddenSizes ?? preset.hiddenSizes, scaleBound: scaleBound ?? preset.scaleBound,
                    whiteningData: whiteningData, context: context, seed: seed)
            case .nsf:
                built = try FlowPresets.neuralSplineFlow(
                    features: dataset.dimensions, couplings: couplings ?? preset.couplings,
                    hiddenSizes: parsedHiddenSizes ?? preset.hiddenSizes, bins: bins, tailBound: tailBound ?? preset.tailBound,
                    minimumBinSize: preset.splineMinimum, minimumDerivative: preset.splineMinimum,
                    activation: preset.splineActivation, mixing: (mixing ?? preset.mixing).preset,
                    reflectors: reflectors ?? preset.reflectors, whiteningData: whiteningData, context: context, seed: seed)
            case .glow:
                built = try glowOptions.flow(
                    for: dataset, scaleBound: scaleBound ?? preset.scaleBound, context: context, seed: seed)
            }
            if mixtureBase != nil, let components = preset.mixtureComponents {
                // The mixing layers start as rotations (the couplings as the identity): the mixture
                // is fitted again where the base meets the rows, so that the flow starts as it.
                let latent = try built.encode(preprocessing.transform(dataset.train, using: &noise).output).output
                let fitted = try FullCovarianceMixture<T>(fitting: latent, components: components, floor: preset.mixtureFloor, seed: seed)
                flow = try NormalizingFlow(base: fitted, transform: built.transform, contextEncoder: built.contextEncoder)
            } else {
                flow = try (base ?? .gaussian).replacingBase(of: built, seed: seed ^ 0x6A09_E667_F3BC_C908)
            }
            configuration = TrainingConfiguration(
                epochs: self.epochs ?? preset.epochs, batchSize: batchSize ?? preset.batchSize,
                learningRate: learningRate ?? (flow.base is FullCovarianceMixture<T> ? preset.mixtureLearningRate : preset.learningRate), seed: seed,
                weightDecay: weightDecay ?? preset.weightDecay, parameterAveraging: averaging > 0 ? averaging : nil)
        }
        let epochs = configuration.epochs
        // After the inputs were read (their errors come first), before any training.
        let historyPaths = TrainingHistory.paths(model: modelPath)
        try OutputPath.requireReplaceable(modelPath, option: "--out", kind: .checkpoint)
        try OutputPath.requireReplaceable(samples, option: "--samples", kind: .png)
        try OutputPath.requireReplaceable(historyPaths.csv, option: "the history CSV", kind: .csv(headers: [true, false].map { TrainingHistory.header(discrete: $0) }))
        try OutputPath.requireReplaceable(historyPaths.png, option: "the training curve", kind: .png)
        let trainer = try Trainer(flow: flow, preprocessing: preprocessing, configuration: configuration)
        trainer.group = distributed.trainerGroup
        guard flow.contextFeatures == (dataset.context?.names.count ?? 0) else {
            throw ValidationError(
                "the model is \(flow.isConditional ? "conditional on \(flow.contextFeatures) context column(s)" : "unconditional"); "
                    + "give the same --context-columns as when it was trained")
        }
        let unit = preprocessing.isDiscrete ? "bits/dim" : "nats/dim"
        let valueKind = dataset.levels.map { "\($0) levels" } ?? "continuous values (standardized)"
        output.note(
            "invertnn train: \(dataset.name), \(dataset.train.rows)/\(dataset.validation.rows)/\(dataset.test.rows) samples of "
                + "\(dataset.dimensions) dimensions with \(valueKind)"
                + (dataset.context.map { " given the context \($0.names.joined(separator: ", "))" } ?? "")
                + "; \(flow.trainableParameterCount) parameters; "
                + "\(precision.rawValue), \(distributed.ranks) rank(s) × \(distributed.threadsNote), \(BLAS.coreName) kernels")
        let baseline = try gaussianBaseline(dataset: dataset, preprocessing: preprocessing, configuration: configuration, output: output)
        let reporter = ProgressReporter(epochs: epochs, discrete: preprocessing.isDiscrete, quiet: output.quiet)
        func stateCheckpoint(_ state: TrainingState<T>?) -> Checkpoint<T> {
            Checkpoint(flow: flow, preprocessing: preprocessing, dataset: dataset.description, trainingState: state)
        }
        var control = TrainingControl<T>(patience: patience, checkpointEvery: checkpointEvery)
        control.checkpoint = { state in
            guard distributed.isWriter else { return }
            try stateCheckpoint(state).write(to: modelPath)
            output.note("epoch \(state.epoch): wrote the model with the training state to \(modelPath)")
        }
        control.interruptRequested = { Interruption.requested }
        var guardEvents = [Int: Int]()
        let result = try trainer.fit(
            train: dataset.train, validation: dataset.validation, test: dataset.test,
            trainContext: dataset.context?.train, validationContext: dataset.context?.validation,
            testContext: dataset.context?.test, resumingFrom: resumedState,
            stoppingAfterEpoch: stopAfter, control: control,
            progress: { event in
                if case let .recovered(epoch, _, _, _, _) = event { guardEvents[epoch, default: 0] += 1 }
                reporter.handle(event)
            })
        reporter.finish()
        switch result.stop {
        case let .interrupted(epoch)?:
            // The state of the last complete epoch, so that --resume loses only the epoch in progress.
            let saved = trainer.trainingState?.epoch ?? 0
            if distributed.isWriter { try stateCheckpoint(trainer.trainingState).write(to: modelPath) }
            throw InvertNNError.io(
                path: modelPath,
                reason: "interrupted during epoch \(epoch): wrote the model with the training state after epoch \(saved) here; "
                    + "continue with --resume \(modelPath)")
        case let .patience(epoch, patience)?:
            if distributed.isWriter {
                output.note("early stopping after epoch \(epoch): the validation NLL has not improved for \(patience) epochs "
                    + "(best epoch \(result.best.epoch))")
            }
        case nil: break
        }
        guard distributed.isWriter else { return }
        if let note = distributed.communicationNote(trainingSeconds: result.seconds) { output.note(note) }

        let description = DataDescription(dataset.description, dimensions: dataset.dimensions)
        let keepState = saveState || stopAfter != nil || resumedState != nil || checkpointEvery != nil
        let checkpoint = Checkpoint(
            flow: flow, preprocessing: preprocessing, dataset: dataset.description, trainingState: keepState ? trainer.trainingState : nil)
        // The model and the history are committed together: if either cannot be written, neither
        // existing file is replaced. The sample picture never costs the model: one that cannot be
        // drawn is a note, one that cannot be written fails the run after the model is committed.
        let staging = OutputStaging()
        try staging.write(modelPath) { try checkpoint.write(to: $0); return "" }
        let stateNote = keepState ? " with the training state after epoch \(result.history.last?.epoch ?? 0)" : ""
        var notes = ["wrote the model (\(flow.trainableParameterCount) parameters, \(T.dtypeName))\(stateNote) to \(modelPath)"]
        try staging.write(historyPaths.csv) {
            try AtomicFile.write(text: TrainingHistory.csv(result.history, discrete: preprocessing.isDiscrete, guardEvents: guardEvents), to: $0)
            return ""
        }
        try staging.write(historyPaths.png) {
            try PNGWriter.write(try TrainingHistory.curve(result.history, discrete: preprocessing.isDiscrete), to: $0)
            return ""
        }
        notes.append("wrote the per-epoch history to \(historyPaths.csv) and the training curve to \(historyPaths.png)")

        // A scatter of samples beside the training points shows as many of each (at most 5000),
        // so that the two panels' densities compare by eye.
        var count = dataset.kind == .image ? 64 : min(dataset.train.rows, 5000)
        // A conditional model draws one row of the grid per class, or one sample per test context.
        let sampleContext = dataset.context.map {
            ContextSampling.contexts(classes: $0.classes, rows: $0.test, count: count)
        }
        count = sampleContext?.rows ?? count
        let temperature = self.temperature ?? Rendering.defaultTemperature(dataset.kind)
        var pictureFailure: InvertNNError? = nil
        if dataset.kind == .image || dataset.dimensions >= 2 {
            // A picture that cannot be drawn (samples that overflow, a plot window beyond the
            // precision) costs the picture, never the trained model: it becomes a note.
            let picture = staging.writeIfPossible(samples) {
                let drawn = try Rendering.samples(
                    flow: flow, preprocessing: preprocessing, count: count, temperature: temperature, seed: seed &+ 0x5A3B_1E5,
                    context: sampleContext, consequence: "No picture was drawn")
                return try Rendering.writePNG(
                    samples: drawn, description: description, preprocessing: preprocessing,
                    reference: dataset.kind == .image ? nil : dataset.train.rows(0..<min(count, dataset.train.rows)), path: $0)
            }
            switch picture {
            case let .success(note): notes.append(note + " (temperature \(temperature))")
            case let .failure(InvertNNError.io(path, reason)):
                // The picture could not be written where asked: the model is kept, and the run fails.
                pictureFailure = InvertNNError.io(
                    path: path, reason: "\(reason); the model and its history were written (\(modelPath)), the sample picture was not")
            case let .failure(error):
                notes.append("wrote no sample picture to \(samples) (the model is saved): \(InvertNNCommand.oneLine("\(error)"))")
            }
        }
        try staging.commit()
        notes.forEach(output.note)
        if let pictureFailure { throw pictureFailure }

        let best = result.best
        let test = best.test ?? best.validation
        let elapsed = (clock.now - start).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
        func perDimension(_ e: SplitEvaluation) -> Double { preprocessing.isDiscrete ? e.bitsPerDimension : e.natsPerDimension }
        if !output.quiet {
            StandardError.write(SummaryTable.render(result: result, unit: unit, perDimension: perDimension))
            StandardError.line(
                "selected epoch \(best.epoch) (lowest validation NLL): train \(format(perDimension(best.train))), "
                    + "validation \(format(perDimension(best.validation))), test \(format(perDimension(test))) \(unit); "
                    + "test NLL \(format(test.negativeLogLikelihood)) nats per sample; \(String(format: "%.1f", seconds)) s")
        }
        try StandardOutput.json(TrainSummary(
            dataset: dataset.name, discrete: preprocessing.isDiscrete, train: perDimension(best.train),
            validation: perDimension(best.validation), test: perDimension(test), testNLL: test.negativeLogLikelihood,
            bestEpoch: best.epoch, epochs: epochs, seconds: (seconds * 1000).rounded() / 1000,
            parameters: flow.trainableParameterCount, precision: precision.rawValue, ranks: distributed.ranks, threads: distributed.workers,
            contextColumns: dataset.context?.names, gaussianTest: baseline.map(perDimension),
            model: URL(fileURLWithPath: modelPath).standardizedFileURL.path,
            history: URL(fileURLWithPath: TrainingHistory.paths(model: modelPath).csv).standardizedFileURL.path))
    }
}

/// The `--initialization` choices.
enum InitializationOption: String, ExpressibleByArgument, CaseIterable {
    case random, whitening
}

/// The `--flow` choices.
enum FlowFamily: String, ExpressibleByArgument, CaseIterable {
    /// Affine couplings (``FlowPresets/realNVP(features:couplings:hiddenSizes:scaleBound:mixing:reflectors:whiteningData:context:seed:as:)``).
    case realnvp
    /// Rational-quadratic spline couplings (``FlowPresets/neuralSplineFlow(features:couplings:hiddenSizes:bins:tailBound:mixing:reflectors:whiteningData:seed:as:)``).
    case nsf
    /// Masked autoregressive layers with affine transformers (``FlowPresets/maskedAutoregressiveFlow(features:layers:hiddenSizes:scaleBound:orders:whiteningData:context:seed:as:)``):
    /// `--couplings` counts its layers.
    case maf
    /// A multi-scale convolutional flow on images (``GlowOptions``).
    case glow
}

/// The `--transformer` choices of `--flow maf`.
enum TransformerOption: String, ExpressibleByArgument, CaseIterable {
    /// ``AffineMaskedAutoregressive`` layers.
    case affine
    /// ``SplineMaskedAutoregressive`` layers.
    case spline
}

/// The model and optimizer defaults of each kind of data and flow family.
struct ModelPreset {
    var family: FlowFamily = .realnvp
    var couplings: Int
    var hiddenSizes: [Int]
    var mixing: MixingOption
    var reflectors: Int?
    var epochs: Int
    var batchSize: Int
    var learningRate: Double
    /// `c` of each coupling's bounded log-scale.
    var scaleBound: Double = 2
    /// α of the logit preprocessing of integer data (unused for continuous data).
    var logitAlpha: Double = FlowPresets.logitAlpha
    /// `K` of each spline coupling (``FlowFamily/nsf``).
    var bins = 8
    /// `B` of each spline coupling (``FlowFamily/nsf``): standardized data mostly lie in [-3, 3].
    var tailBound: Double = 3
    /// `m_w = m_h` and `m_δ` of each spline coupling (``FlowFamily/nsf``).
    var splineMinimum = 1e-3
    /// The hidden nonlinearity of each spline coupling's conditioner (``FlowFamily/nsf``).
    var splineActivation = MLPActivation.relu
    /// Adam's decoupled weight decay.
    var weightDecay = TrainingConfiguration().weightDecay
    /// Whether the flow starts as the full-covariance Gaussian of the training data.
    var initialization = InitializationOption.random
    /// K of the full-covariance mixture base fitted to a small table's training rows
    /// (``mixtureBase(train:validation:components:floor:seed:)``); `nil`: no such base.
    var mixtureComponents: Int? = nil
    /// λ of that mixture, in units of the standardized columns' variance.
    var mixtureFloor = 0.1
    /// Adam's rate over that mixture base: the flow starts at the mixture, and on a few validation
    /// rows a larger rate lets it wander to epochs that look better there and are worse on the
    /// test rows (docs/PRESETS.md).
    var mixtureLearningRate = 2e-3
    /// Tables with fewer training rows than this get ``mixtureComponents``.
    static let smallTableRows = 200

    /// The preset of `family` for `data`; the measurements behind each choice are in
    /// docs/PRESETS.md. The spline presets keep the affine ones' architecture and optimizer,
    /// except on 2-D points: 6 couplings instead of 8 (about the affine preset's parameter count:
    /// a spline conditioner has 23 outputs per feature against 2), B = 4 (a coupling's input has
    /// passed mixing layers and can leave [-3, 3]), permutation mixing (the couplings stay
    /// axis-aligned, which suits the checkerboard), weight decay 1e-3 and 200 epochs (splines
    /// fit 2400 points closely and overfit without decay). Its conditioners are tanh MLPs: a ReLU
    /// conditioner makes the bins and knots piecewise-linear functions of the conditioning
    /// coordinate, and on a few thousand points those kinks fit the sample rather than the
    /// density; tanh keeps them smooth. Bins and knot derivatives are floored at 1e-2 (not 1e-3)
    /// and batches are 32: finer floors allow near-empty bins, so one step can strand training
    /// points where the density is near zero, a loss spike some runs never recover from.
    ///
    /// On a CSV of continuous columns every family starts as the full-covariance Gaussian of the
    /// training data (whitening initialization) and trains at rate 2e-2 (splines with 4 bins): on
    /// tables of hundreds of rows a random start at a small rate ends barely below that Gaussian,
    /// and the large rate acts as a regularizer (the selected epoch comes late in the cosine
    /// decay instead of within the first few).
    ///
    /// A table of fewer than ``smallTableRows`` training rows also gets a 3-component
    /// full-covariance mixture base floored at 0.1 (used only if it beats the Gaussian on the
    /// validation rows): on such tables every flow overfits within a few epochs from the
    /// Gaussian, and the mixture is what generalizes.
    static func `for`<T: Scalar>(_ data: LoadedData<T>, family: FlowFamily) -> ModelPreset {
        var preset = affine(data)
        preset.family = family
        if data.kind == .tabular {
            preset.initialization = .whitening
            preset.learningRate = 2e-2
            preset.bins = 4
            if data.train.rows < smallTableRows, family != .glow { preset.mixtureComponents = 3 }
        }
        if family == .nsf, data.kind == .points {
            preset.couplings = 6
            preset.tailBound = 4
            preset.mixing = .permutation
            preset.weightDecay = 1e-3
            preset.epochs = 200
            preset.splineActivation = .tanh
            preset.splineMinimum = 1e-2
            preset.batchSize = 32
        }
        if family == .glow, NamedData(rawValue: data.name) == .mnist {
            // The multi-scale conv flow trains stably at twice the MLP preset's rate, and gets
            // further in 20 epochs than at 1e-3 (README, "MNIST with --flow glow").
            preset.epochs = 20
            preset.learningRate = 2e-3
        }
        return preset
    }

    /// The full-covariance mixture (``FullCovarianceMixture``, `components` Gaussians, floor
    /// `floor`) fitted by EM to `train`, or `nil` unless it beats the full-covariance Gaussian of
    /// `train` on the `validation` rows (mean log-density), or if either cannot be fitted.
    ///
    /// - Throws: the errors of the validation rows' evaluation (their width is the training rows').
    static func mixtureBase<T: Scalar>(
        train: Matrix<T>, validation: Matrix<T>, components: Int, floor: Double, seed: UInt64
    ) throws -> FullCovarianceMixture<T>? {
        guard let gaussian = try? FullCovarianceGaussian(fitting: train),
              let mixture = try? FullCovarianceMixture<T>(fitting: train, components: components, floor: floor, seed: seed) else {
            return nil
        }
        let gaussianScore = try gaussian.logDensity(validation).reduce(0, +)
        let mixtureScore = try mixture.logProbability(validation).reduce(0.0) { $0 + Double($1) }
        return mixtureScore > gaussianScore ? mixture : nil
    }

    /// The RealNVP preset of each kind of data.
    static func affine<T: Scalar>(_ data: LoadedData<T>) -> ModelPreset {
        switch (NamedData(rawValue: data.name), data.kind) {
        case (.digits?, _):
            // The library's defaults: FlowPresets.realNVP's architecture, TrainingConfiguration's recipe.
            let recipe = TrainingConfiguration()
            return ModelPreset(
                couplings: FlowPresets.defaultCouplings, hiddenSizes: FlowPresets.defaultHiddenSizes, mixing: .invertibleLinear,
                reflectors: nil, epochs: recipe.epochs, batchSize: recipe.batchSize, learningRate: recipe.learningRate)
        case (.mnist?, _):
            // 784 dimensions: permutation mixing keeps a step at the conditioners' GEMMs.
            // α = 1e-4 (MAF, Papamakarios et al. 2017, used 1e-6 for MNIST): with 4000 training
            // images 135 border pixels are 0 in every one of them, and α = 0.05 maps their level-0
            // bin to a logit interval of width 0.07 that the flow learns to fill tightly, so a test
            // image with ink there costs thousands of nats (test 87-400 bits/dim). A small α
            // stretches the level-0 bin to a wide interval (width 2.6 at 1e-4), a heavy lower tail
            // that keeps such images at ~3 bits/dim (README, "MNIST and the logit α").
            return ModelPreset(
                couplings: 6, hiddenSizes: [512], mixing: .permutation, reflectors: nil, epochs: 12, batchSize: 64,
                learningRate: 1e-3, logitAlpha: 1e-4)
        case (_, .points):
            return ModelPreset(
                couplings: 8, hiddenSizes: [64, 64], mixing: .invertibleLinear, reflectors: nil, epochs: 100, batchSize: 64,
                learningRate: 3e-3)
        case (_, .image):
            return ModelPreset(
                couplings: 8, hiddenSizes: [256, 256], mixing: data.dimensions > 256 ? .permutation : .invertibleLinear,
                reflectors: nil, epochs: 30, batchSize: 32, learningRate: 2e-3)
        case (_, .tabular):
            return ModelPreset(
                couplings: 6, hiddenSizes: [64, 64], mixing: .invertibleLinear, reflectors: nil, epochs: 80, batchSize: 32,
                learningRate: 2e-3)
        }
    }
}

/// The `--mixing` choices.
enum MixingOption: String, ExpressibleByArgument, CaseIterable {
    case invertibleLinear = "invertible-linear"
    case permutation

    var preset: FlowPresets.Mixing { self == .permutation ? .permutation : .invertibleLinear }
}

/// Formats bits/dim for people.
func format(_ value: Double) -> String { String(format: "%.4f", value) }

/// The JSON line of `train --json`: per-dimension figures in bits (integer data) or nats
/// (continuous data), keyed `<split>_bits_per_dim` or `<split>_nats_per_dim`.
struct TrainSummary: Encodable {
    let dataset: String
    let discrete: Bool
    let train, validation, test, testNLL: Double
    let bestEpoch, epochs: Int
    let seconds: Double
    let parameters: Int
    let precision: String
    /// The processes of a data-parallel run (`mpirun -np`), 1 without mpirun.
    let ranks: Int
    /// The batch-splitting worker threads per rank (`--threads`; 1 without it).
    let threads: Int
    /// The context columns of a conditional model (the key is left out for other models).
    let contextColumns: [String]?
    /// The test figure (same unit) of the full-covariance Gaussian fitted to the training split
    /// (left out when there is none: conditional runs, constant columns).
    let gaussianTest: Double?
    let model: String
    /// The per-epoch history CSV beside the model (absolute).
    let history: String

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        let unit = discrete ? "bits_per_dim" : "nats_per_dim"
        try c.encode(dataset, forKey: Key("dataset"))
        try c.encode(SummaryNumber(train), forKey: Key("train_\(unit)"))
        try c.encode(SummaryNumber(validation), forKey: Key("validation_\(unit)"))
        try c.encode(SummaryNumber(test), forKey: Key("test_\(unit)"))
        try c.encode(SummaryNumber(testNLL), forKey: Key("test_nll"))
        try c.encode(bestEpoch, forKey: Key("best_epoch"))
        try c.encode(epochs, forKey: Key("epochs"))
        try c.encode(SummaryNumber(seconds), forKey: Key("seconds"))
        try c.encode(parameters, forKey: Key("parameters"))
        try c.encode(precision, forKey: Key("precision"))
        try c.encode(ranks, forKey: Key("ranks"))
        try c.encode(threads, forKey: Key("threads"))
        try c.encodeIfPresent(contextColumns, forKey: Key("context_columns"))
        try c.encodeIfPresent(gaussianTest.map(SummaryNumber.init), forKey: Key("gaussian_test_\(unit)"))
        try c.encode(model, forKey: Key("model"))
        try c.encode(history, forKey: Key("history"))
    }
}
