import Testing
import InvertNN

struct ConcatSideInputFactory: LayerFactory {
    let sideFeatures: Int
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try ConcatSideInput<T>(features: features, sideFeatures: sideFeatures, channel: "context")
    }
    func sideInputs(rows: Int, using generator: inout SeededGenerator) -> [String: Matrix<Double>] {
        ["context": Matrix.randomNormal(rows: rows, columns: sideFeatures, using: &generator)]
    }
}

struct ConcatNoiseFactory: LayerFactory {
    let noiseFeatures: Int
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try ConcatNoise<T>(features: features, noise: StandardNormal<T>(features: noiseFeatures), channel: "eps")
    }
    func sideInputs(rows: Int, using generator: inout SeededGenerator) -> [String: Matrix<Double>] {
        ["eps": Matrix.randomNormal(rows: rows, columns: noiseFeatures, using: &generator)]
    }
}

@Suite struct ConcatTests {
    @Test func sideInputContract() throws {
        try checkLayerContract(ConcatSideInputFactory(sideFeatures: 3))
        try checkLayerContract(ConcatSideInputFactory(sideFeatures: 1), features: [5], batches: [2])
    }

    @Test func noiseContract() throws {
        try checkLayerContract(ConcatNoiseFactory(noiseFeatures: 2))
        try checkLayerContract(ConcatNoiseFactory(noiseFeatures: 5), features: [1, 3], batches: [1, 7])
    }

    @Test func noiseKnownValuesPerSample() throws {
        let layer = try ConcatNoise<Double>(features: 1, noise: StandardNormal(features: 2))
        var channels = LayerContext<Double>()
        let y = try Matrix<Double>([[0, 0, 5], [1, 1, -2]])
        let back = try layer.inverse(y, context: &channels)
        #expect(back.logAbsDet.count == 2)
        #expect(abs(back.logAbsDet[0] - -1.8378770664) <= 1e-10)
        #expect(abs(back.logAbsDet[1] - -2.8378770664) <= 1e-10)
        #expect(back.output.storage == [5, -2])
        #expect(channels["noise"] == (try Matrix<Double>([[0, 0], [1, 1]])))
        // Given the restored ε, forward reproduces y exactly.
        let again = try layer.forward(back.output, context: &channels)
        #expect(again.output == y)
        #expect(again.logAbsDet == back.logAbsDet.map { -$0 })
    }

    @Test func noiseDrawnFromCallerGenerator() throws {
        let layer = try ConcatNoise<Double>(features: 2, noise: StandardNormal(features: 3))
        let x = try Matrix<Double>([[1, 2], [3, 4]])
        var a = LayerContext<Double>(generator: SeededGenerator(seed: 5))
        var b = LayerContext<Double>(generator: SeededGenerator(seed: 5))
        let ya = try layer.forward(x, context: &a), yb = try layer.forward(x, context: &b)
        #expect(ya.output == yb.output)
        #expect(ya.output.columns(3..<5) == x)
        #expect(throws: InvertNNError.self) { try layer.forward(x) }
    }

    @Test func sideInputErrors() throws {
        let layer = try ConcatSideInput<Double>(features: 2, sideFeatures: 3, channel: "c")
        let x = Matrix<Double>(rows: 4, columns: 2)
        #expect(throws: InvertNNError.self) { try layer.forward(x) }
        var wrong = LayerContext<Double>(["c": Matrix(rows: 4, columns: 2)])
        #expect(throws: InvertNNError.self) { try layer.forward(x, context: &wrong) }
        #expect(throws: InvertNNError.self) { try ConcatSideInput<Double>(features: 0, sideFeatures: 1, channel: "c") }
    }
}
