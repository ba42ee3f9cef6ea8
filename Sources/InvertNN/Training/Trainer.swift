import RealModule

/// Maximum-likelihood training of a ``NormalizingFlow`` on discrete or continuous data
/// (``Preprocessing``) with early-stopping
/// selection: Adam on mini-batches of a seeded shuffle, freshly dequantized every step, scored
/// after every epoch on the training, validation and test sets, keeping the parameters of the
/// epoch with the lowest validation NLL (restored at the end).
///
/// Objective per step (Dinh et al. 2017, eq. 3): `L = -(1/B) Σ_i log p_θ(y_i)` for
/// `y = preprocessing(k, u)`; the preprocessing log-det does not depend on θ, so it only enters
/// the reported NLL of `x`, `NLL_x = NLL_y - log|det ∂y/∂x|`, and the bits per dimension.
///
/// Training guard: a step whose loss, gradient or updated parameters are NaN or infinite is
/// skipped; the parameters of the last step with a finite loss and gradient are restored, the
/// learning rate is multiplied by ``TrainingConfiguration/failureLearningRateFactor`` (½) for the
/// rest of the run, and a ``TrainingEvent/recovered(epoch:globalStep:reason:consecutiveFailures:learningRateScale:)``
/// event is reported. After ``TrainingConfiguration/maxConsecutiveFailures`` (5) failed steps in
/// a row training stops with ``InvertNNError/diverged(step:detail:)``, the best epoch restored.
///
/// Reproducibility: the shuffle and the training noise come from generators seeded by
/// ``TrainingConfiguration/seed``; evaluation noise from ``TrainingConfiguration/evaluationSeed``,
/// the same every epoch. Same seeds, same data and the same thread count give the same results.
public final class Trainer<T: Scalar> {
    /// The model trained; it holds the selected parameters after ``fit(train:validation:test:progress:)``.
    public let flow: NormalizingFlow<T>
    /// Dequantization (and logit) or standardization applied to every batch; its log-det enters
    /// the reported NLL.
    public let preprocessing: Preprocessing<T>
    /// The hyper-parameters of the run.
    public let configuration: TrainingConfiguration
    /// The optimizer over ``NormalizingFlow/parameters``; its learning rate follows the schedule.
    public let optimizer: Adam<T>

    /// A trainer for `flow` on data preprocessed by `preprocessing`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for an invalid configuration.
    public init(flow: NormalizingFlow<T>, preprocessing: Preprocessing<T>, configuration: TrainingConfiguration) throws {
        try configuration.validate()
        self.flow = flow
        self.preprocessing = preprocessing
        self.configuration = configuration
        self.optimizer = try Adam(
            parameters: flow.parameters, learningRate: T(configuration.learningRate),
            maxGradientNorm: configuration.maxGradientNorm.map { T($0) }, weightDecay: T(configuration.weightDecay))
    }

    /// A trainer for `flow` on discrete data dequantized by `dequantization`.
    ///
    /// - Throws: as ``init(flow:preprocessing:configuration:)``.
    public convenience init(flow: NormalizingFlow<T>, preprocessing dequantization: Dequantization<T>, configuration: TrainingConfiguration) throws {
        try self.init(flow: flow, preprocessing: .dequantization(dequantization), configuration: configuration)
    }

    /// The NLL of a whole split (nats per sample of `x`, preprocessing included) and its bits
    /// per dimension, with dequantization noise drawn from `SeededGenerator(seed: noiseSeed)`
    /// (continuous data use no noise).
    ///
    /// - Parameter data: `[n, D]` integer levels or continuous values, as the preprocessing expects.
    /// - Throws: shape mismatch, an out-of-range level, or a layer's error.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func evaluate(_ data: Matrix<T>, noiseSeed: UInt64) throws -> SplitEvaluation {
        try data.requireColumns(flow.features, "Trainer.evaluate")
        var noise = SeededGenerator(seed: noiseSeed)
        var total = 0.0
        let chunk = configuration.evaluationBatchSize
        var start = 0
        while start < data.rows {
            let end = min(start + chunk, data.rows)
            let batch = end - start == data.rows ? data : data.rows(start..<end)
            let pre = try preprocessing.transform(batch, using: &noise)
            let logP = try flow.logProbability(pre.output)
            for i in 0..<logP.count { total -= Double(logP[i]) + Double(pre.logAbsDet[i]) }
            start = end
        }
        let nll = total / Double(data.rows)
        return SplitEvaluation(
            negativeLogLikelihood: nll,
            bitsPerDimension: try preprocessing.bitsPerDimension(nllNats: nll, dimensions: data.columns))
    }

    /// Trains for ``TrainingConfiguration/epochs`` epochs and leaves the flow with the
    /// parameters of the epoch (0 = initial) of lowest validation NLL.
    ///
    /// - Parameters:
    ///   - train, validation, test: `[n, D]` integer levels; `test` may be `nil`.
    ///   - progress: called after every step and every epoch, on the calling thread.
    /// - Returns: the per-epoch history and the selected epoch.
    /// - Throws: ``InvertNNError/diverged(step:detail:)`` after
    ///   ``TrainingConfiguration/maxConsecutiveFailures`` consecutive non-finite steps (see the
    ///   training guard above) or when an evaluation is NaN or infinite (the parameters of the best
    ///   epoch so far are restored first); shape mismatches and layer errors.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func fit(
        train: Matrix<T>, validation: Matrix<T>, test: Matrix<T>? = nil,
        progress: ((TrainingEvent) -> Void)? = nil
    ) throws -> TrainingResult {
        let d = flow.features
        try train.requireColumns(d, "Trainer.fit train")
        try validation.requireColumns(d, "Trainer.fit validation")
        if let test { try test.requireColumns(d, "Trainer.fit test") }

        let clock = ContinuousClock()
        let start = clock.now
        func seconds(since instant: ContinuousClock.Instant) -> Double {
            let c = (clock.now - instant).components
            return Double(c.seconds) + Double(c.attoseconds) * 1e-18
        }
        let epochs = configuration.epochs
        let batchSize = configuration.batchSize
        // Written so that a huge batch size or epoch count cannot overflow.
        let stepsPerEpoch = train.rows / batchSize + (train.rows % batchSize == 0 ? 0 : 1)
        let (product, overflow) = stepsPerEpoch.multipliedReportingOverflow(by: epochs)
        let totalSteps = overflow ? Int.max : product
        let levelsTerm = Double(d) * Double.log(Double(preprocessing.levels ?? 1))
        func toBitsPerDimension(_ nll: Double) -> Double { (nll + levelsTerm) / (Double(d) * Double.log(2)) }

        // Independent streams: shuffling and training noise from the run seed, evaluation fixed.
        var shuffler = SeededGenerator(seed: configuration.seed)
        var noise = SeededGenerator(seed: configuration.seed ^ 0x9E37_79B9_7F4A_7C15)
        let evaluationSeeds = (0..<3).map { configuration.evaluationSeed &+ UInt64($0) &* 0xA24B_AED4_963E_E407 }

        var history = [EpochReport]()
        var bestValidation = Double.infinity
        var bestIndex = 0
        var bestValues = flow.parameters.map { $0.value }
        var globalStep = 0

        func restoreBest() {
            for (p, v) in zip(flow.parameters, bestValues) { p.value = v }
        }
        // Polyak averaging: `average` holds the uncorrected EMA; evaluation swaps the corrected
        // average in and the training iterate back out.
        let parameters = flow.parameters
        var average: [[T]]? = configuration.parameterAveraging.map { _ in parameters.map { [T](repeating: 0, count: $0.count) } }
        var averageWeight = 0.0
        func updateAverage() {
            guard let beta = configuration.parameterAveraging, average != nil else { return }
            averageWeight = beta * averageWeight + (1 - beta)
            let b = T(beta), oneMinus = T(1 - beta)
            for (index, p) in parameters.enumerated() {
                p.value.storage.withUnsafeBufferPointer { theta in
                    average![index].withUnsafeMutableBufferPointer { avg in
                        for i in 0..<avg.count { avg[i] = b * avg[i] + oneMinus * theta[i] }
                    }
                }
            }
        }
        func withAveragedParameters<R>(_ body: () throws -> R) rethrows -> R {
            guard let average, averageWeight > 0 else { return try body() }
            let iterate = parameters.map { $0.value }
            let correction = T(1 / averageWeight)
            for (p, avg) in zip(parameters, average) {
                p.value.storage.withUnsafeMutableBufferPointer { theta in
                    if let mask = p.trainableMask {
                        // Fixed entries keep their exact structural value (the corrected average
                        // of a constant differs from it by rounding).
                        for i in 0..<theta.count where mask[i] { theta[i] = avg[i] * correction }
                    } else {
                        for i in 0..<theta.count { theta[i] = avg[i] * correction }
                    }
                }
            }
            defer { for (p, v) in zip(parameters, iterate) { p.value = v } }
            return try body()
        }
        func record(epoch: Int, samplesPerSecond: Double) throws {
            try withAveragedParameters { try recordCurrent(epoch: epoch, samplesPerSecond: samplesPerSecond) }
        }
        func recordCurrent(epoch: Int, samplesPerSecond: Double) throws {
            let trainEval = try evaluate(train, noiseSeed: evaluationSeeds[0])
            let validationEval = try evaluate(validation, noiseSeed: evaluationSeeds[1])
            let testEval = try test.map { try evaluate($0, noiseSeed: evaluationSeeds[2]) }
            guard validationEval.negativeLogLikelihood.isFinite, trainEval.negativeLogLikelihood.isFinite else {
                throw InvertNNError.diverged(
                    step: globalStep,
                    detail: "evaluation after epoch \(epoch) is not finite (train NLL \(trainEval.negativeLogLikelihood), validation NLL \(validationEval.negativeLogLikelihood))")
            }
            let isBest = validationEval.negativeLogLikelihood < bestValidation
            if isBest {
                bestValidation = validationEval.negativeLogLikelihood
                bestIndex = history.count
                bestValues = flow.parameters.map { $0.value }
            }
            let report = EpochReport(
                epoch: epoch, steps: globalStep, train: trainEval, validation: validationEval, test: testEval,
                isBest: isBest, samplesPerSecond: samplesPerSecond, elapsedSeconds: seconds(since: start))
            history.append(report)
            progress?(.epoch(report))
        }

        try record(epoch: 0, samplesPerSecond: 0)
        var order = Array(0..<train.rows)
        // Training guard state: parameters known to give a finite loss and gradient.
        var lastGood = parameters.map { $0.value }
        var consecutiveFailures = 0
        var rateScale = 1.0
        do {
            for epoch in 1...max(epochs, 1) where epochs > 0 {
                order.shuffle(using: &shuffler)
                let epochStart = clock.now
                var lossSum = 0.0
                var seen = 0
                for step in 0..<stepsPerEpoch {
                    let lower = step * batchSize
                    let upper = min(lower + batchSize, train.rows)
                    let batch = train.rows(at: Array(order[lower..<upper]))
                    let pre = try preprocessing.transform(batch, using: &noise)
                    flow.zeroGradients()
                    globalStep += 1
                    var failure: String? = nil
                    var loss: T = 0
                    do {
                        loss = try flow.accumulateNegativeLogLikelihoodGradient(pre.output)
                    } catch let error as InvertNNError {
                        // Non-finite intermediate values make layers with a restricted domain throw.
                        switch error {
                        case .nonFinite, .outOfDomain: failure = error.description
                        default: throw error
                        }
                    }
                    if failure == nil && !loss.isFinite { failure = "the training loss is \(loss)" }
                    let rate = configuration.schedule.rate(
                        base: configuration.learningRate, step: globalStep - 1, totalSteps: totalSteps) * rateScale
                    var beforeUpdate = lastGood
                    if failure == nil {
                        beforeUpdate = parameters.map { $0.value }
                        optimizer.learningRate = T(rate)
                        do {
                            try optimizer.update()
                        } catch InvertNNError.diverged(_, let detail) {
                            failure = detail
                        }
                    }
                    if failure == nil, let bad = parameters.first(where: { $0.value.firstNonFinite() != nil }) {
                        failure = "parameter \(bad.name) became non-finite after the update"
                        lastGood = beforeUpdate  // its loss and gradient were finite
                    }
                    if let failure {
                        consecutiveFailures += 1
                        for (p, v) in zip(parameters, lastGood) { p.value = v }
                        rateScale *= configuration.failureLearningRateFactor
                        if consecutiveFailures >= configuration.maxConsecutiveFailures {
                            throw InvertNNError.diverged(
                                step: globalStep,
                                detail: "\(failure) in epoch \(epoch); \(consecutiveFailures) consecutive failed steps "
                                    + "(learning rate scaled down to \(rateScale) of the schedule), giving up")
                        }
                        progress?(.recovered(epoch: epoch, globalStep: globalStep, reason: failure,
                                             consecutiveFailures: consecutiveFailures, learningRateScale: rateScale))
                        continue
                    }
                    consecutiveFailures = 0
                    lastGood = beforeUpdate
                    updateAverage()
                    var preprocessingLogDet = 0.0
                    for v in pre.logAbsDet { preprocessingLogDet += Double(v) }
                    let rows = upper - lower
                    lossSum += Double(loss) * Double(rows) - preprocessingLogDet
                    seen += rows
                    if let progress {
                        let running = lossSum / Double(seen)
                        progress(.step(StepProgress(
                            epoch: epoch, epochs: epochs, step: step + 1, stepsPerEpoch: stepsPerEpoch,
                            globalStep: globalStep, runningNegativeLogLikelihood: running,
                            runningBitsPerDimension: toBitsPerDimension(running),
                            samplesPerSecond: Double(seen) / max(seconds(since: epochStart), 1e-9), learningRate: rate)))
                    }
                }
                try record(epoch: epoch, samplesPerSecond: Double(seen) / max(seconds(since: epochStart), 1e-9))
            }
        } catch {
            restoreBest()
            throw error
        }
        restoreBest()
        return TrainingResult(history: history, best: history[bestIndex], steps: globalStep, seconds: seconds(since: start))
    }
}
