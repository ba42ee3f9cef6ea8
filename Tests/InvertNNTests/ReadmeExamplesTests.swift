import Testing
import Foundation
import InvertNN

/// The library example of README.md ("Five-minute tour"), compiled and run. Keep the body of
/// `libraryTour` identical to the README's code block (only the checkpoint path differs, a
/// temporary file here instead of "moons.safetensors").
@Suite struct ReadmeExamplesTests {
    @Test func libraryTour() throws {
        let path = temporaryPath("readme-moons.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }

        // Data: 1000 seeded points of the two-moons density, split 75/10/15 %.
        let data = try ToyDensity.moons.dataset(count: 1000, as: Double.self)
        let preprocessing = Preprocessing<Double>.standardization(try Standardization(fitting: data.train))

        // A RealNVP-style flow: 4 blocks of (learnable InvertibleLinear, AffineCoupling with a 32-unit MLP).
        let flow: NormalizingFlow<Double> = try FlowPresets.realNVP(features: 2, couplings: 4, hiddenSizes: [32], seed: 0)
        let trainer = try Trainer(
            flow: flow, preprocessing: preprocessing,
            configuration: TrainingConfiguration(epochs: 5, batchSize: 64, learningRate: 3e-3))
        let result = try trainer.fit(train: data.train, validation: data.validation, test: data.test)
        print("test:", result.best.test!.natsPerDimension, "nats/dim")

        // Save and load: the reloaded model gives the same log-densities bit for bit.
        try Checkpoint(flow: flow, preprocessing: preprocessing).write(to: path)
        let loaded = try Checkpoint<Double>.read(path: path)
        let logDensity = try loaded.logProbability(ofData: data.test)   // nats, in the data's units

        // Samples in the data's units.
        var generator = SeededGenerator(seed: 1)
        let samples = try loaded.sample(count: 10, using: &generator)

        // What the tour claims.
        #expect(result.best.test!.natsPerDimension < result.history[0].test!.natsPerDimension)
        // The data-unit figure is the flow's density of the standardized rows plus the
        // standardization's log-determinant, and its mean is minus the trainer's test NLL.
        let standardized = try preprocessing.transform(data.test, using: &generator)
        let flowDensity = try flow.logProbability(standardized.output)
        for i in 0..<data.test.rows {
            #expect(logDensity[i] == Double(flowDensity[i]) + Double(standardized.logAbsDet[i]))
        }
        let meanNLL = -logDensity.reduce(0, +) / Double(logDensity.count)
        let evaluated = try trainer.evaluate(data.test, noiseSeed: 0).negativeLogLikelihood
        #expect(abs(meanNLL - evaluated) <= 1e-12 * abs(evaluated))
        #expect(samples.rows == 10 && samples.columns == 2)
    }

    /// The conditional example of README.md ("Conditional flows"), compiled and run; keep the
    /// body identical to the README's code block.
    @Test func conditionalTour() throws {
        // Simulations of the two-moons task: θ ~ U[-1, 1]², x ~ p(x | θ).
        var rng = SeededGenerator(seed: 0)
        let (theta, x) = TwoMoons().simulations(count: 2000, using: &rng)
        let (thetaTrain, xTrain) = (theta.rows(200..<2000), x.rows(200..<2000))
        let (thetaValidation, xValidation) = (theta.rows(0..<200), x.rows(0..<200))

        // p(θ | x): every coupling's conditioner also reads the standardized observation x.
        let context = try ContextEncoder<Double>(
            features: 2, encoding: .standardization(try Standardization(fitting: xTrain)))
        let posterior: NormalizingFlow<Double> = try FlowPresets.realNVP(
            features: 2, couplings: 4, hiddenSizes: [32, 32], context: context, seed: 0)
        let trainer = try Trainer(
            flow: posterior, preprocessing: .standardization(try Standardization(fitting: thetaTrain)),
            configuration: TrainingConfiguration(epochs: 3, batchSize: 64, learningRate: 3e-3))
        _ = try trainer.fit(train: thetaTrain, validation: thetaValidation,
                            trainContext: xTrain, validationContext: xValidation)

        // 500 posterior draws at the observation x_o = (0, 0), in θ's units, and their log q(θ | x_o).
        let observation = try Matrix<Double>([[0, 0]])
        let draws = try trainer.preprocessing.dataUnits(
            try posterior.sample(count: 500, context: observation, using: &rng))
        var none = SeededGenerator(seed: 0)
        let y = try trainer.preprocessing.transform(draws, using: &none)
        let logQ = try posterior.logProbability(y.output, context: observation.rows(at: Array(repeating: 0, count: 500)))

        // What the example claims.
        #expect(draws.rows == 500 && draws.columns == 2 && logQ.count == 500)
        #expect(logQ.allSatisfy { $0.isFinite })
    }
}
