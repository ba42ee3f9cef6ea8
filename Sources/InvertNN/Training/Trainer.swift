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
    /// The model trained; it holds the selected parameters after ``fit(train:validation:test:trainContext:validationContext:testContext:resumingFrom:stoppingAfterEpoch:control:progress:)``.
    public let flow: NormalizingFlow<T>
    /// Dequantization (and logit) or standardization applied to every batch; its log-det enters
    /// the reported NLL.
    public let preprocessing: Preprocessing<T>
    /// The hyper-parameters of the run.
    public let configuration: TrainingConfiguration
    /// The optimizer over ``NormalizingFlow/parameters``; its learning rate follows the schedule.
    public let optimizer: Adam<T>
    /// The state at the end of the last successful ``fit(train:validation:test:trainContext:validationContext:testContext:resumingFrom:stoppingAfterEpoch:control:progress:)``
    /// (optimizer, iterate, average, selection, random streams), to save with a ``Checkpoint``
    /// and continue later; `nil` before a run and after a run that threw.
    public private(set) var trainingState: TrainingState<T>?
    /// The ranks of a data-parallel run, or `nil` (the default) to train alone. With a group each
    /// rank computes the gradient of its share of every global batch and of every evaluation
    /// chunk, and the sums are reduced over the group before the optimizer step and the
    /// selection, so all ranks follow the same run; see ``DataParallelGroup`` for the contract.
    public var group: (any DataParallelGroup)?

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
    /// - Parameters:
    ///   - data: `[n, D]` integer levels or continuous values, as the preprocessing expects.
    ///   - context: `[n, contextFeatures]` for a conditional flow (the NLL is then that of
    ///     `x | c`), `nil` otherwise.
    ///   - noiseSeed: seeds the dequantization noise (the same seed gives the same result).
    /// - Throws: shape mismatch, an out-of-range level, a missing or extra context, or a layer's error.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func evaluate(_ data: Matrix<T>, context: Matrix<T>? = nil, noiseSeed: UInt64) throws -> SplitEvaluation {
        try data.requireColumns(flow.features, "Trainer.evaluate")
        try requireContext(context, rows: data.rows, split: "evaluate")
        var noise = SeededGenerator(seed: noiseSeed)
        var total = 0.0
        let chunk = configuration.evaluationBatchSize
        var start = 0
        while start < data.rows {
            let end = min(start + chunk, data.rows)
            let whole = end - start == data.rows
            let batch = whole ? data : data.rows(start..<end)
            let batchContext = whole ? context : context?.rows(start..<end)
            // The noise of the whole chunk is drawn on every rank, so the stream stays that of one process.
            let pre = try preprocessing.transform(batch, using: &noise)
            let share = group?.share(of: batch.rows) ?? 0..<batch.rows
            if !share.isEmpty {
                let all = share.count == batch.rows
                let logP = try flow.logProbability(
                    all ? pre.output : pre.output.rows(share), context: all ? batchContext : batchContext?.rows(share))
                for i in 0..<logP.count { total -= Double(logP[i]) + Double(pre.logAbsDet[share.lowerBound + i]) }
            }
            start = end
        }
        if let group {
            var sum = [total]
            try group.sum(&sum)
            total = sum[0]
        }
        let nll = total / Double(data.rows)
        return SplitEvaluation(
            negativeLogLikelihood: nll,
            bitsPerDimension: try preprocessing.bitsPerDimension(nllNats: nll, dimensions: data.columns))
    }

    /// Trains for ``TrainingConfiguration/epochs`` epochs and leaves the flow with the
    /// parameters of the epoch (0 = initial) of lowest validation NLL.
    ///
    /// Resuming: with `state` (a previous run's ``trainingState``, for example from a
    /// ``Checkpoint``), the run continues after `state.epoch` up to ``TrainingConfiguration/epochs``
    /// epochs in total: the iterate, Adam's moments and step, the Polyak average, the history and
    /// selected epoch, the training guard and the shuffle and noise streams are restored (the
    /// shuffle is replayed from the saved run's seed and checked against the saved generator
    /// state), and epoch 0 is not evaluated again. The trainer's configuration governs the steps
    /// that follow; with the saved run's configuration the result equals an uninterrupted run bit
    /// for bit. Without averaging in the saved run but with it now, the average starts empty.
    ///
    /// - Parameters:
    ///   - train: `[n, D]` integer levels or continuous values.
    ///   - validation: `[n, D]`, as `train`; selects the epoch kept.
    ///   - test: `[n, D]`, as `train`, or `nil`.
    ///   - trainContext: for a conditional flow, the context of each row of `train`,
    ///     `[n, contextFeatures]` (the rows of a split and its context are shuffled together);
    ///     `nil` for an unconditional flow.
    ///   - validationContext: the context of each row of `validation`, as `trainContext`.
    ///   - testContext: the context of each row of `test`, as `trainContext`.
    ///   - state: where to continue from, or `nil` for a fresh run.
    ///   - stop: end the run after this epoch although the schedule spans
    ///     ``TrainingConfiguration/epochs`` (an interruption to resume from later), or `nil`.
    ///   - control: early stopping, periodic checkpoints and interruption (``TrainingControl``);
    ///     the result's ``TrainingResult/stop`` says why a run ended early.
    ///   - progress: called after every step and every epoch, on the calling thread.
    /// - Returns: the per-epoch history and the selected epoch.
    /// - Throws: ``InvertNNError/diverged(step:detail:)`` after
    ///   ``TrainingConfiguration/maxConsecutiveFailures`` consecutive non-finite steps (see the
    ///   training guard above) or when an evaluation is NaN or infinite (the parameters of the best
    ///   epoch so far are restored first); shape mismatches and layer errors;
    ///   ``InvertNNError/invalidArgument(operation:reason:)`` if `state` does not fit the model or
    ///   the training set (``TrainingState/validate(for:)``, another row count or shuffle).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func fit(
        train: Matrix<T>, validation: Matrix<T>, test: Matrix<T>? = nil,
        trainContext: Matrix<T>? = nil, validationContext: Matrix<T>? = nil, testContext: Matrix<T>? = nil,
        resumingFrom state: TrainingState<T>? = nil, stoppingAfterEpoch stop: Int? = nil,
        control: TrainingControl<T> = TrainingControl(),
        progress: ((TrainingEvent) -> Void)? = nil
    ) throws -> TrainingResult {
        trainingState = nil
        let d = flow.features
        try train.requireColumns(d, "Trainer.fit train")
        try validation.requireColumns(d, "Trainer.fit validation")
        if let test { try test.requireColumns(d, "Trainer.fit test") }
        try requireContext(trainContext, rows: train.rows, split: "fit train")
        try requireContext(validationContext, rows: validation.rows, split: "fit validation")
        if let test { try requireContext(testContext, rows: test.rows, split: "fit test") }

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
        let evaluationSeeds = (0..<3).map {
            TrainingConfiguration.evaluationNoiseSeed(split: $0, evaluationSeed: configuration.evaluationSeed)
        }
        let parameters = flow.parameters
        // With several ranks each updates only its shard of the parameters (see ParameterShard).
        let shard = group.flatMap { $0.size > 1 ? ParameterShard(parameters: parameters, group: $0) : nil }
        var selection = EpochSelection(parameters: parameters)
        var trainingGuard = TrainingGuard(configuration: configuration, parameters: parameters)
        var average = configuration.parameterAveraging.map { ParameterAverage(beta: $0, parameters: parameters) }
        var globalStep = 0
        var elapsedBefore = 0.0
        var order = Array(0..<train.rows)
        var firstEpoch = 1

        // Scores the three splits (with the averaged parameters, if any) and appends the epoch.
        func record(epoch: Int, samplesPerSecond: Double) throws {
            let score = {
                let trainEval = try self.evaluate(train, context: trainContext, noiseSeed: evaluationSeeds[0])
                let validationEval = try self.evaluate(validation, context: validationContext, noiseSeed: evaluationSeeds[1])
                let testEval = try test.map { try self.evaluate($0, context: testContext, noiseSeed: evaluationSeeds[2]) }
                guard validationEval.negativeLogLikelihood.isFinite, trainEval.negativeLogLikelihood.isFinite else {
                    throw InvertNNError.diverged(
                        step: globalStep,
                        detail: "evaluation after epoch \(epoch) is not finite (train NLL \(trainEval.negativeLogLikelihood), validation NLL \(validationEval.negativeLogLikelihood))")
                }
                let report = EpochReport(
                    epoch: epoch, steps: globalStep, train: trainEval, validation: validationEval, test: testEval,
                    isBest: selection.isBest(validation: validationEval.negativeLogLikelihood), samplesPerSecond: samplesPerSecond,
                    elapsedSeconds: elapsedBefore + seconds(since: start))
                selection.append(report, parameters: parameters)
                progress?(.epoch(report))
            }
            if let average { try average.withAveraged(parameters, score) } else { try score() }
        }

        if let group {
            try group.requireAgreement(
                on: Self.fingerprint(
                    run: [UInt64(epochs), UInt64(batchSize), configuration.seed, configuration.learningRate.bitPattern],
                    matrices: [train, validation] + parameters.map(\.value)),
                "the data, configuration or initial parameters")
        }
        if let state {
            try restore(state, train: train, order: &order, shuffler: &shuffler, noise: &noise)
            selection = try EpochSelection(resuming: state, parameters: parameters)
            try trainingGuard.resume(from: state, parameters: parameters)
            globalStep = state.globalStep
            if average != nil, let saved = state.average {
                average!.values = saved
                average!.weight = state.averageWeight
            }
            elapsedBefore = selection.elapsedSeconds
            firstEpoch = state.epoch + 1
        } else {
            if let group {
                // A data-dependent initialization (ActNorm) sees the first evaluated chunk of the
                // training set; each rank evaluates only its share of it, so the whole chunk goes
                // through the flow first, with the noise of that evaluation, as in one process.
                let rows = 0..<min(configuration.evaluationBatchSize, train.rows)
                var warmUpNoise = SeededGenerator(seed: evaluationSeeds[0])
                let pre = try preprocessing.transform(train.rows(rows), using: &warmUpNoise)
                _ = try flow.logProbability(pre.output, context: trainContext?.rows(rows))
                try record(epoch: 0, samplesPerSecond: 0)
                try group.requireAgreement(
                    on: Self.fingerprint(run: [], matrices: parameters.map(\.value)), "the parameters after the first evaluation")
            } else {
                try record(epoch: 0, samplesPerSecond: 0)
            }
        }
        // A sharded run's optimizer state, guard copy and average are complete on every rank
        // only after this (called by all ranks at the same points: the end of each epoch).
        func gatherShards() throws {
            guard let shard else { return }
            try optimizer.updateMoments { try shard.allGather(&$0) }
            try shard.allGather(&trainingGuard.lastGood)
            if average != nil { try shard.allGather(&average!.values) }
        }
        // The state to resume from after the last complete epoch (see TrainingControl).
        func snapshot() -> TrainingState<T> {
            let moments = optimizer.moments
            return TrainingState<T>(
                configuration: configuration, epoch: selection.history.last?.epoch ?? 0, globalStep: globalStep,
                optimizerStep: optimizer.step, firstMoments: moments.first, secondMoments: moments.second,
                iterate: parameters.map { $0.value.storage },
                lastGood: trainingGuard.lastGood,
                best: selection.bestValues.map { $0.storage }, average: average?.values, averageWeight: average?.weight ?? 0,
                history: selection.history, bestIndex: selection.bestIndex, consecutiveFailures: trainingGuard.consecutiveFailures,
                learningRateScale: trainingGuard.rateScale, trainingRows: train.rows, shuffleState: shuffler.words,
                noiseState: noise.words)
        }
        var lastEpochState: TrainingState<T>? = control.interruptRequested == nil ? nil : snapshot()
        var stopReason: TrainingStop? = nil
        do {
            epochs: for epoch in stride(from: firstEpoch, through: min(epochs, stop ?? epochs), by: 1) {
                order.shuffle(using: &shuffler)
                let epochStart = clock.now
                var lossSum = 0.0
                var seen = 0
                for step in 0..<stepsPerEpoch {
                    let lower = step * batchSize
                    let upper = min(lower + batchSize, train.rows)
                    let rowsOfBatch = Array(order[lower..<upper])
                    let pre = try preprocessing.transform(train.rows(at: rowsOfBatch), using: &noise)
                    let batchContext = trainContext?.rows(at: rowsOfBatch)
                    flow.zeroGradients()
                    globalStep += 1
                    let rate = configuration.schedule.rate(
                        base: configuration.learningRate, step: globalStep - 1, totalSteps: totalSteps) * trainingGuard.rateScale
                    let (loss, failure) = if let shard {
                        try shardedStep(shard, pre.output, context: batchContext, rate: rate, guard: &trainingGuard, average: &average)
                    } else {
                        try localStep(pre.output, context: batchContext, rate: rate, guard: &trainingGuard, average: &average)
                    }
                    if let failure {
                        progress?(try trainingGuard.fail(failure, epoch: epoch, globalStep: globalStep))
                        continue
                    }
                    trainingGuard.succeed()
                    average?.owesBlend = true
                    var preprocessingLogDet = 0.0
                    for v in pre.logAbsDet { preprocessingLogDet += Double(v) }
                    lossSum += Double(loss) * Double(upper - lower) - preprocessingLogDet
                    seen += upper - lower
                    if try interruptAgreed(control) {
                        stopReason = .interrupted(epoch: epoch)
                        break epochs
                    }
                    if let progress {
                        let running = lossSum / Double(seen)
                        progress(.step(StepProgress(
                            epoch: epoch, epochs: epochs, step: step + 1, stepsPerEpoch: stepsPerEpoch,
                            globalStep: globalStep, runningNegativeLogLikelihood: running,
                            runningBitsPerDimension: toBitsPerDimension(running),
                            samplesPerSecond: Double(seen) / max(seconds(since: epochStart), 1e-9), learningRate: rate)))
                    }
                }
                let samplesPerSecond = Double(seen) / max(seconds(since: epochStart), 1e-9)
                average?.settle(parameters, shard: shard)
                try gatherShards()
                try record(epoch: epoch, samplesPerSecond: samplesPerSecond)
                if control.interruptRequested != nil { lastEpochState = snapshot() }
                if let every = control.checkpointEvery, every > 0, epoch % every == 0, let checkpoint = control.checkpoint {
                    let state = snapshot()
                    let iterate = parameters.map { $0.value }
                    selection.restoreBest(parameters)
                    defer { for (p, v) in zip(parameters, iterate) { p.value = v } }
                    try checkpoint(state)
                }
                if let patience = control.patience, selection.epochsSinceBest >= patience {
                    stopReason = .patience(epoch: epoch, patience: patience)
                    break epochs
                }
            }
        } catch {
            selection.restoreBest(parameters)
            throw error
        }
        if case .interrupted? = stopReason, let saved = lastEpochState {
            // The epoch in progress is lost: the state and the model are those after the last
            // complete epoch.
            for (p, v) in zip(parameters, try Self.matrices(saved.best, like: parameters)) { p.value = v }
            trainingState = saved
            return TrainingResult(
                history: saved.history, best: saved.history[saved.bestIndex], steps: saved.globalStep,
                seconds: seconds(since: start), stop: stopReason)
        }
        let finalState = snapshot()
        selection.restoreBest(parameters)
        trainingState = finalState
        return TrainingResult(
            history: selection.history, best: selection.history[selection.bestIndex], steps: globalStep,
            seconds: seconds(since: start), stop: stopReason)
    }
    /// Whether to stop for an interruption after this step. With a ``group`` every rank must stop
    /// after the same step (a rank that stopped alone would leave the others waiting in their
    /// next sum), so the ranks' flags are summed: one asking rank stops all.
    private func interruptAgreed(_ control: TrainingControl<T>) throws -> Bool {
        guard let ask = control.interruptRequested else { return false }
        guard let group, group.size > 1 else { return ask() }
        var flag = [ask() ? 1.0 : 0.0]
        try flag.withUnsafeMutableBufferPointer { try group.sum($0) }
        return flag[0] > 0
    }

    /// Accumulates the gradient of the mean NLL of `input` (the preprocessed batch) into the
    /// parameters and returns the mean loss, or a failure (non-finite values, which make layers
    /// with a restricted domain throw) for the training guard. (A run of several ranks takes
    /// ``shardedStep(_:_:context:rate:guard:)`` instead; a group of one rank sums nothing.)
    private func accumulateBatchGradient(_ input: Matrix<T>, context: Matrix<T>?) throws -> (loss: T, failure: String?) {
        do {
            return (try flow.accumulateNegativeLogLikelihoodGradient(input, context: context), nil)
        } catch let error as InvertNNError {
            switch error {
            case .nonFinite, .outOfDomain: return (0, error.description)
            default: throw error
            }
        }
    }

    /// One training step of a process that trains alone (or the only rank): the gradient of the
    /// mean NLL of `input`, then one pass over the parameters that runs Adam at `rate`, keeps the
    /// training guard's copy and does the parameter average's owed blend (on a failure the
    /// guard's parameters are put back). Returns the mean loss and the failure.
    private func localStep(
        _ input: Matrix<T>, context: Matrix<T>?, rate: Double, guard trainingGuard: inout TrainingGuard<T>,
        average: inout ParameterAverage<T>?
    ) throws -> (loss: T, failure: String?) {
        let parameters = flow.parameters
        let result = try accumulateBatchGradient(input, context: context)
        let loss = result.loss
        var failure = result.failure
        if failure == nil && !loss.isFinite { failure = "the training loss is \(loss)" }
        if failure == nil {
            optimizer.learningRate = T(rate)
            do {
                let finite = try withOwedBlend(&average) { values, decay in
                    try optimizer.update(savingInto: &trainingGuard.candidate, average: &values, averageDecay: decay).finite
                }
                // Either way the parameters before the update gave a finite loss and gradient.
                swap(&trainingGuard.lastGood, &trainingGuard.candidate)
                if !finite {
                    let bad = parameters.first { $0.value.firstNonFinite() != nil }?.name ?? "a parameter"
                    failure = "parameter \(bad) became non-finite after the update"
                }
            } catch InvertNNError.diverged(_, let detail) {
                failure = detail
            }
        }
        if failure != nil {
            // The average owes the iterate that is about to be replaced.
            average?.settle(parameters, shard: nil)
            trainingGuard.restore(parameters)
        }
        return (loss, failure)
    }

    /// One training step of a rank of a sharded run (see ``ParameterShard``): the gradient of its
    /// share of `input` (weighted `share/B`), reduce-scattered; one small sum agrees on the loss,
    /// the failure flags and the global gradient norm; the rank updates its shard (Adam, clipped by
    /// the global norm) in one pass that also keeps its shard of the guard's copy
    /// (``TrainingGuard/candidate``) and does its shard of the average's owed blend;
    /// one small sum agrees on the updated shards' finiteness, and the parameters are all-gathered.
    /// On failure every rank puts back its good shard before the all-gather. Returns the mean loss
    /// and the failure.
    private func shardedStep(
        _ shard: ParameterShard<T>, _ input: Matrix<T>, context: Matrix<T>?, rate: Double, guard trainingGuard: inout TrainingGuard<T>,
        average: inout ParameterAverage<T>?
    ) throws -> (loss: T, failure: String?) {
        let group = shard.group
        let share = group.share(of: input.rows)
        var (loss, failure): (T, String?) = (0, nil)
        if !share.isEmpty {
            let all = share.count == input.rows
            (loss, failure) = try accumulateBatchGradient(all ? input : input.rows(share), context: all ? context : context?.rows(share))
        }
        // A failed share contributes only its flag (its partial gradient may be garbage).
        let weight = failure == nil ? T(share.count) / T(input.rows) : 0
        try shard.reduceScatterGradients(weight: weight)
        // [Σ weighted losses, failed shares, Σ g² over the shards, then for each rank 1 + the
        // first parameter of a non-finite gradient in its shard (0: none)].
        var summary = [Double](repeating: 0, count: 3 + group.size)
        summary[0] = Double(weight * loss)
        summary[1] = failure == nil ? 0 : 1
        summary[2] = shard.flat.withUnsafeBufferPointer { optimizer.sumOfSquares(shard.range, of: $0, layout: shard) }
        if !summary[2].isFinite {
            var bad = 0
            shard.forEachSegment(of: shard.range) { index, entries, start in
                if bad == 0, shard.flat[start..<(start + entries.count)].contains(where: { !$0.isFinite }) { bad = index + 1 }
            }
            summary[3 + group.rank] = Double(bad)
        }
        try group.sum(&summary)
        let total = T(summary[0])
        if failure == nil && summary[1] > 0 { failure = "a non-finite value in another rank's share of the batch" }
        if failure == nil && !total.isFinite { failure = "the training loss is \(total)" }
        if failure == nil && !summary[2].isFinite {
            let culprit = summary[3...].first { $0 > 0 }.map { flow.parameters[Int($0) - 1].name } ?? "a parameter"
            failure = "the gradient of \(culprit) is not finite"
        }
        if failure == nil {
            optimizer.learningRate = T(rate)
            let finite = withOwedBlend(&average) { values, decay in
                shard.flat.withUnsafeBufferPointer {
                    optimizer.update(
                        shard.range, gradient: $0, norm: summary[2].squareRoot(), layout: shard,
                        savingInto: &trainingGuard.candidate, average: &values, averageDecay: decay)
                }
            }
            var check = [Double](repeating: 0, count: group.size)
            check[group.rank] = finite ? 0 : shard.firstNonFiniteParameter().map { Double($0 + 1) } ?? 0
            try group.sum(&check)
            // Either way the parameters before this update are the last with a finite loss and gradient.
            swap(&trainingGuard.lastGood, &trainingGuard.candidate)
            if let bad = check.first(where: { $0 > 0 }) {
                failure = "parameter \(flow.parameters[Int(bad) - 1].name) became non-finite after the update"
            } else {
                try shard.allGatherParameters()
                return (total, nil)
            }
        }
        // The average owes the iterate that is about to be replaced.
        average?.settle(flow.parameters, shard: shard)
        shard.restore(from: trainingGuard.lastGood)
        try shard.allGatherParameters()
        return (total, failure)
    }

    /// Runs `body` (an optimizer pass) with the average's values and, if the average owes a
    /// blend, its (β, 1-β) (see ``ParameterAverage/owesBlend``); the blend counts as done once
    /// `body` returns. Without an average `body` gets an empty array and `nil`.
    private func withOwedBlend<R>(
        _ average: inout ParameterAverage<T>?, _ body: (inout [[T]], (beta: T, oneMinusBeta: T)?) throws -> R
    ) rethrows -> R {
        guard average?.owesBlend == true else {
            var none = [[T]]()
            return try body(&none, nil)
        }
        let decay = (T(average!.beta), T(1 - average!.beta))
        let result = try body(&average!.values, decay)
        _ = average!.takeOwedBlend()
        return result
    }

    /// A 32-bit FNV-1a hash of `run` (schedule words) and `matrices` (shapes and bit patterns),
    /// to check that every rank of a data-parallel run holds the same data and parameters.
    private static func fingerprint(run: [UInt64], matrices: [Matrix<T>]) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        // Word-wise rather than byte-wise: a mismatch check, not a cryptographic digest.
        func mix(_ word: UInt64) {
            hash = (hash ^ UInt32(truncatingIfNeeded: word)) &* 16_777_619
            hash = (hash ^ UInt32(truncatingIfNeeded: word >> 32)) &* 16_777_619
        }
        for word in run { mix(word) }
        for m in matrices {
            mix(UInt64(m.rows))
            mix(UInt64(m.columns))
            for v in m.storage { mix(Double(v).bitPattern) }
        }
        return hash
    }

    /// Checks that a split's context is present exactly for a conditional flow, with one row per
    /// data row and the flow's context width.
    private func requireContext(_ context: Matrix<T>?, rows: Int, split: String) throws {
        let operation = "Trainer.\(split) context"
        guard let encoder = flow.contextEncoder else {
            if let context, context.columns > 0 {
                throw InvertNNError.invalidArgument(
                    operation: operation, reason: "the flow is unconditional; a context of \(context.columns) columns was given")
            }
            return
        }
        guard let context else {
            throw InvertNNError.invalidArgument(
                operation: operation, reason: "the flow is conditional; each row needs a context of \(encoder.features) columns")
        }
        guard context.rows == rows, context.columns == encoder.features else {
            throw InvertNNError.shapeMismatch(operation: operation, expected: "[\(rows), \(encoder.features)]", actual: "\(context.shape)")
        }
    }

    /// Restores the iterate, the optimizer and the random streams of `state` (all checks first:
    /// on error nothing has changed).
    private func restore(
        _ state: TrainingState<T>, train: Matrix<T>, order: inout [Int],
        shuffler: inout SeededGenerator, noise: inout SeededGenerator
    ) throws {
        func invalid(_ reason: String) -> InvertNNError { .invalidArgument(operation: "Trainer.fit(resumingFrom:)", reason: reason) }
        let parameters = flow.parameters
        try state.validate(for: parameters)
        guard state.trainingRows == train.rows else {
            throw invalid("the saved run trained on \(state.trainingRows) rows, this training set has \(train.rows)")
        }
        // The permutation of each epoch shuffles the previous one, so it is replayed from the
        // seed; the saved generator words confirm that the replay is the saved run's stream.
        var replayed = Array(0..<train.rows)
        var replay = SeededGenerator(seed: state.configuration.seed)
        for _ in 0..<state.epoch { replayed.shuffle(using: &replay) }
        guard replay.words == state.shuffleState else {
            throw invalid("the shuffle of the saved run cannot be replayed (another seed or training set)")
        }
        let iterate = try Self.matrices(state.iterate, like: parameters)
        try optimizer.restore(step: state.optimizerStep, firstMoments: state.firstMoments, secondMoments: state.secondMoments)
        for (p, v) in zip(parameters, iterate) { p.value = v }
        order = replayed
        shuffler = replay
        noise.words = state.noiseState
    }

    /// Row-major arrays as matrices shaped like `parameters`.
    static func matrices(_ arrays: [[T]], like parameters: [Parameter<T>]) throws -> [Matrix<T>] {
        try zip(arrays, parameters).map { try Matrix(rows: $1.value.rows, columns: $1.value.columns, storage: $0) }
    }
}
