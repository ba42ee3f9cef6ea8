import Testing
import InvertNN

struct DiagonalFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        let s = (0..<features).map { _ in T(0.5 * rng.nextNormal(Double.self)) }
        let b = (0..<features).map { _ in T(rng.nextNormal(Double.self)) }
        return try Diagonal<T>(features: features, logScale: s, bias: b)
    }
}

@Suite struct DiagonalTests {
    @Test func contract() throws {
        try checkLayerContract(DiagonalFactory())
    }

    @Test func knownValuesAsGenerativeModel() throws {
        let layer = try Diagonal<Double>(scales: [2, 0.5, 3], bias: [0.1, 0.2, 0.3])
        let out = try layer.forward(Matrix(row: [1, 2, -1]))
        #expect(abs(out.output[0, 0] - 2.1) <= 1e-12)
        #expect(abs(out.output[0, 1] - 1.2) <= 1e-12)
        #expect(abs(out.output[0, 2] - -2.7) <= 1e-12)
        #expect(abs(out.logAbsDet[0] - 1.0986122887) <= 1e-10)
        // log p(x) = log N(inverse(x)) + inverse log-det.
        let back = try layer.inverse(Matrix(row: [2.1, 1.2, -2.7]))
        let logP = try StandardNormal<Double>(features: 3).logProbability(back.output)[0] + back.logAbsDet[0]
        #expect(abs(logP - -6.8554278883) <= 1e-9)
    }

    @Test func rejectsBadInput() throws {
        let layer = try Diagonal<Double>(features: 3)
        #expect(throws: InvertNNError.self) { try layer.forward(Matrix(rows: 2, columns: 4)) }
        #expect(throws: Never.self) { _ = try layer.inverse(Matrix(rows: 0, columns: 3)) }  // an empty batch gives an empty result
        #expect(throws: InvertNNError.self) { try Diagonal<Double>(scales: [1, 0, 2]) }
        #expect(throws: InvertNNError.self) { try Diagonal<Double>(features: 0) }
    }
}
