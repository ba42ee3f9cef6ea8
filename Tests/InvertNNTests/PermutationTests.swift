import Testing
import InvertNN

struct PermutationFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        return try Permutation<T>.random(features: features, using: &rng)
    }
}

@Suite struct PermutationTests {
    @Test func contract() throws {
        try checkLayerContract(PermutationFactory(), features: [1, 2, 3, 17, 64])
    }

    @Test func knownValues() throws {
        let layer = try Permutation<Double>([2, 0, 3, 1])
        let out = try layer.forward(Matrix([[10, 20, 30, 40], [1, 2, 3, 4]]))
        #expect(out.output == (try Matrix([[30, 10, 40, 20], [3, 1, 4, 2]])))
        #expect(out.logAbsDet == [0, 0])
        let back = try layer.inverse(out.output)
        #expect(back.output == (try Matrix([[10, 20, 30, 40], [1, 2, 3, 4]])))
        #expect(back.logAbsDet == [0, 0])
        #expect(layer.inversePermutation == [1, 3, 0, 2])
        #expect(layer.parameters.isEmpty)
        #expect(layer.configuration.permutation == [2, 0, 3, 1])

        // VJPs are the transposed gathers.
        let dy = try Matrix<Double>([[1, 2, 3, 4]])
        let dx = try layer.forwardBackward(input: dy, output: dy, outputGradient: dy, logAbsDetGradient: [5])
        #expect(dx == (try Matrix([[2, 4, 1, 3]])))
        let dyBack = try layer.inverseBackward(input: dy, output: dy, outputGradient: dx, logAbsDetGradient: [5])
        #expect(dyBack == dy)
    }

    @Test func reversedAndRandom() throws {
        let reversed = try Permutation<Float>.reversed(features: 5)
        #expect(reversed.permutation == [4, 3, 2, 1, 0] && reversed.inversePermutation == [4, 3, 2, 1, 0])
        var a = SeededGenerator(seed: 11), b = SeededGenerator(seed: 11)
        let p = try Permutation<Double>.random(features: 50, using: &a)
        let q = try Permutation<Double>.random(features: 50, using: &b)
        #expect(p.permutation == q.permutation)
        #expect(p.permutation.sorted() == Array(0..<50))
        #expect(p.permutation != Array(0..<50))
    }

    @Test func rejectsInvalidPermutations() throws {
        #expect(throws: InvertNNError.self) { try Permutation<Double>([0, 1, 1]) }       // duplicate
        #expect(throws: InvertNNError.self) { try Permutation<Double>([0, 3, 1]) }       // out of range
        #expect(throws: InvertNNError.self) { try Permutation<Double>([0, -1, 1]) }      // negative
        #expect(throws: InvertNNError.self) { try Permutation<Double>([]) }              // empty
        #expect(throws: InvertNNError.self) { try Permutation<Double>(features: 4, permutation: [0, 2, 1]) } // length
        #expect(throws: InvertNNError.self) { try Permutation<Double>.reversed(features: 0) }
        var rng = SeededGenerator(seed: 1)
        #expect(throws: InvertNNError.self) { try Permutation<Double>.random(features: -2, using: &rng) }
        let layer = try Permutation<Double>([1, 0, 2])
        #expect(throws: InvertNNError.self) { try layer.forward(Matrix(rows: 2, columns: 4)) }
        #expect(throws: Never.self) { _ = try layer.inverse(Matrix(rows: 0, columns: 3)) }  // an empty batch gives an empty result
    }
}
