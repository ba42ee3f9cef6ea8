import Testing
import InvertNN

@Suite struct TrainerTests {
    /// 60 samples of 3 dimensions with 5 levels, correlated so that training has something to learn.
    static func toyData(seed: UInt64, rows: Int = 60) -> Matrix<Double> {
        var rng = SeededGenerator(seed: seed)
        var m = Matrix<Double>(rows: rows, columns: 3)
        for r in 0..<rows {
            let base = Double(Int(rng.next() % 3))
            m[r, 0] = base
            m[r, 1] = min(4, base + 1)
            m[r, 2] = Double(Int(rng.next() % 5))
        }
        return m
    }

    static func makeTrainer(seed: UInt64, epochs: Int = 4, averaging: Double? = nil) throws -> Trainer<Double> {
        let flow = try NormalizingFlow(transform: Sequential<Double>([try Diagonal(features: 3)]))
        return try Trainer(
            flow: flow, preprocessing: try Dequantization(levels: 5, logitAlpha: 0.05),
            configuration: TrainingConfiguration.plain(
                epochs: epochs, batchSize: 16, learningRate: 0.05, seed: seed, parameterAveraging: averaging))
    }

    @Test func parameterAveraging() throws {
        let train = Self.toyData(seed: 1), validation = Self.toyData(seed: 2, rows: 20)
        // β = 0 averages nothing: exactly the run without averaging.
        let plain = try Self.makeTrainer(seed: 3).fit(train: train, validation: validation)
        let zero = try Self.makeTrainer(seed: 3, averaging: 0).fit(train: train, validation: validation)
        #expect(plain.history.map(\.validation) == zero.history.map(\.validation))
        // β = 0.9: the reported figures are those of the averaged parameters the flow ends with,
        // and they differ from the last iterate's.
        let trainer = try Self.makeTrainer(seed: 3, averaging: 0.9)
        let averaged = try trainer.fit(train: train, validation: validation)
        let again = try trainer.evaluate(validation, noiseSeed: trainer.configuration.evaluationSeed &+ 0xA24B_AED4_963E_E407)
        #expect(again.negativeLogLikelihood == averaged.best.validation.negativeLogLikelihood)
        #expect(averaged.history.last!.validation != plain.history.last!.validation)
        #expect(throws: InvertNNError.self) { try Self.makeTrainer(seed: 3, averaging: 1) }
    }

    @Test func trainingLowersTheNLLAndIsReproducible() throws {
        let train = Self.toyData(seed: 1), validation = Self.toyData(seed: 2, rows: 20), test = Self.toyData(seed: 3, rows: 20)
        let first = try Self.makeTrainer(seed: 7)
        var events = 0
        let a = try first.fit(train: train, validation: validation, test: test) { _ in events += 1 }
        #expect(a.history.count == 5)
        #expect(a.steps == 4 * 4)
        #expect(events == 5 + 16)
        #expect(a.best.validation.negativeLogLikelihood < a.history[0].validation.negativeLogLikelihood)
        // The flow holds the best epoch's parameters: re-evaluating gives the reported figure.
        let again = try first.evaluate(validation, noiseSeed: first.configuration.evaluationSeed &+ 0xA24B_AED4_963E_E407)
        #expect(again.negativeLogLikelihood == a.best.validation.negativeLogLikelihood)
        // Same seed, same history; another seed differs.
        let b = try Self.makeTrainer(seed: 7).fit(train: train, validation: validation, test: test)
        #expect(a.history.map(\.validation) == b.history.map(\.validation))
        #expect(a.history.map(\.test) == b.history.map(\.test))
        let c = try Self.makeTrainer(seed: 8).fit(train: train, validation: validation, test: test)
        #expect(a.history.last!.train != c.history.last!.train)
    }

    @Test func bitsPerDimensionIncludesThePreprocessing() throws {
        // With the identity flow in logit space, NLL_x = NLL_N(0,I)(logit(...)) - logit log-det;
        // check the trainer's figure against that computed by hand.
        let trainer = try Self.makeTrainer(seed: 1, epochs: 0)
        let data = Self.toyData(seed: 5, rows: 10)
        let evaluation = try trainer.evaluate(data, noiseSeed: 99)
        var noise = SeededGenerator(seed: 99)
        let pre = try Dequantization<Double>(levels: 5, logitAlpha: 0.05).transform(data, using: &noise)
        let logPz = try StandardNormal<Double>(features: 3).logProbability(pre.output)
        let nll = -zip(logPz, pre.logAbsDet).map { $0 + $1 }.reduce(0, +) / 10
        #expect(abs(evaluation.negativeLogLikelihood - nll) <= 1e-12)
        #expect(abs(evaluation.bitsPerDimension - (nll + 3 * Double.log(5)) / (3 * Double.log(2))) <= 1e-12)
    }

    @Test func nonFiniteParametersStopWithATypedError() throws {
        let trainer = try Self.makeTrainer(seed: 1)
        trainer.flow.parameters[0].withUnsafeMutableValue { $0[1] = .nan }
        do {
            _ = try trainer.fit(train: Self.toyData(seed: 1), validation: Self.toyData(seed: 2, rows: 20))
            Issue.record("expected a divergence error")
        } catch InvertNNError.diverged {
        }
    }

    @Test func rejectsBadConfigurationAndShapes() throws {
        let flow = try NormalizingFlow(transform: Sequential<Double>([try Diagonal(features: 3)]))
        let pre = try Dequantization<Double>(levels: 5)
        #expect(throws: InvertNNError.self) {
            try Trainer(flow: flow, preprocessing: pre, configuration: TrainingConfiguration.plain(epochs: -1))
        }
        #expect(throws: InvertNNError.self) {
            try Trainer(flow: flow, preprocessing: pre, configuration: TrainingConfiguration.plain(batchSize: 0))
        }
        let trainer = try Trainer(flow: flow, preprocessing: pre, configuration: TrainingConfiguration.plain(epochs: 1))
        #expect(throws: InvertNNError.self) {
            try trainer.fit(train: Matrix(rows: 4, columns: 2), validation: Matrix(rows: 4, columns: 3))
        }
    }

    @Test func cosineScheduleShape() {
        let s = LearningRateSchedule.cosine(finalFraction: 0.1, warmupSteps: 10)
        #expect(abs(s.rate(base: 1, step: 0, totalSteps: 110) - 0.1) <= 1e-12)
        #expect(abs(s.rate(base: 1, step: 9, totalSteps: 110) - 1) <= 1e-12)
        #expect(abs(s.rate(base: 1, step: 10, totalSteps: 110) - 1) <= 1e-12)
        #expect(abs(s.rate(base: 1, step: 109, totalSteps: 110) - 0.1) <= 1e-12)
        #expect(LearningRateSchedule.constant.rate(base: 0.3, step: 50, totalSteps: 10) == 0.3)
    }
}
