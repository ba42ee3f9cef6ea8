import Testing
import InvertNN

struct BiasFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        return try Bias<T>(features: features, bias: (0..<features).map { _ in T(rng.nextNormal(Double.self)) })
    }
}

@Suite struct BiasTests {
    @Test func contract() throws { try checkLayerContract(BiasFactory()) }

    @Test func knownValues() throws {
        let layer = try Bias<Double>(features: 3, bias: [0.5, -1, 2])
        let out = try layer.forward(Matrix([[1, 2, 3], [0, 0, 0]]))
        #expect(out.output.storage == [1.5, 1, 5, 0.5, -1, 2])
        #expect(out.logAbsDet == [0, 0])
        let back = try layer.inverse(out.output)
        #expect(back.output.storage == [1, 2, 3, 0, 0, 0] && back.logAbsDet == [0, 0])
        // dL/db is the column sum of the upstream gradient (negated through the inverse).
        layer.zeroGradients()
        let g = try Matrix<Double>([[1, 2, 3], [4, 5, 6]])
        _ = try layer.forwardBackward(input: back.output, output: out.output, outputGradient: g, logAbsDetGradient: [1, 1])
        #expect(layer.bias.gradient.storage == [5, 7, 9])
        #expect(throws: InvertNNError.self) { try Bias<Double>(features: 2, bias: [1]) }
        #expect(throws: InvertNNError.self) { try Bias<Double>(features: 0) }
    }
}
