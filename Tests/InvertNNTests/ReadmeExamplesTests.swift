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
        let flow: NormalizingFlow<Double> = try FlowPresets.digits(features: 2, couplings: 4, hiddenSizes: [32], seed: 0)
        let trainer = try Trainer(
            flow: flow, preprocessing: preprocessing,
            configuration: TrainingConfiguration(epochs: 5, batchSize: 64, learningRate: 3e-3))
        let result = try trainer.fit(train: data.train, validation: data.validation, test: data.test)
        print("test:", result.best.test!.natsPerDimension, "nats/dim")

        // Save and load: the reloaded model gives the same log-densities bit for bit.
        try Checkpoint(flow: flow, preprocessing: preprocessing).write(to: path)
        let loaded = try Checkpoint<Double>.read(path: path)
        var noise = SeededGenerator(seed: 0)
        let x = try loaded.preprocessing.transform(data.test, using: &noise)
        let logDensity = try loaded.flow.logProbability(x.output)   // + x.logAbsDet: nats in data units

        // Samples in data units.
        var generator = SeededGenerator(seed: 1)
        let samples = try loaded.preprocessing.dataUnits(try loaded.flow.sample(count: 10, using: &generator))

        // What the tour claims.
        #expect(result.best.test!.natsPerDimension < result.history[0].test!.natsPerDimension)
        #expect(logDensity == (try flow.logProbability(x.output)))
        #expect(samples.rows == 10 && samples.columns == 2)
    }
}
