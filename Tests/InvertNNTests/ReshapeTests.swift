import Testing
import InvertNN

struct ReshapeFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try Reshape<T>(from: [1, features], to: [features])
    }
}

@Suite struct ReshapeTests {
    @Test func contract() throws { try checkLayerContract(ReshapeFactory()) }

    @Test func identityOnDataWithDeclaredShapes() throws {
        let layer = try Reshape<Double>(from: [4, 2, 2], to: [16])
        #expect(layer.inputFeatures == 16 && layer.outputFeatures == 16)
        var rng = SeededGenerator(seed: 3)
        let x = Matrix<Double>.randomNormal(rows: 3, columns: 16, using: &rng)
        let out = try layer.forward(x)
        #expect(out.output == x && out.logAbsDet == [0, 0, 0])
        #expect(try layer.inverse(x).output == x)
        #expect(layer.configuration.outputShape == [16])
        #expect(throws: InvertNNError.self) { try Reshape<Double>(from: [4, 2, 2], to: [15]) }
        #expect(throws: InvertNNError.self) { try Reshape<Double>(from: [4, 0], to: [0]) }
        #expect(throws: InvertNNError.self) { try Reshape<Double>(from: [], to: [1]) }
        #expect(throws: InvertNNError.self) { try layer.forward(Matrix(rows: 2, columns: 15)) }
    }
}
