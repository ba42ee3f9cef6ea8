import Testing
import Foundation
import InvertNN

/// LU layers from the factorization of a random matrix of condition number 10 (a random
/// permutation, both signs, non-trivial L and U), with a random bias. Built in Double and
/// converted, so Float gets the same permutation and signs.
struct LULinearFactory: LayerFactory {
    static func double(features n: Int, seed: UInt64) throws -> LULinear<Double> {
        var rng = SeededGenerator(seed: seed)
        let a = try RandomMatrices.conditioned(n, condition: 10, scale: 1.5, using: &rng)
        let bias = (0..<n).map { _ in rng.nextNormal(Double.self) }
        return try LULinear(matrix: a, bias: bias)
    }

    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        let d = try Self.double(features: features, seed: seed)
        return try LULinear<T>(
            permutation: d.permutation, signs: d.signs.map { T($0) }, lower: d.lower.value.converted(to: T.self),
            upper: d.upper.value.converted(to: T.self), logScale: d.logScale.value.storage.map { T($0) },
            bias: d.bias!.value.storage.map { T($0) })
    }
}

/// The LU 1×1 convolution of 3×2×3 images.
struct PixelwiseLULinearFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        try Pixelwise(try LULinearFactory().make(features: 3, seed: seed, T.self), channels: 3, height: 2, width: 3)
    }
}

@Suite struct LULinearTests {
    @Test func contract() throws {
        try checkLayerContract(LULinearFactory())
    }

    @Test func pixelwiseContract() throws {
        try checkLayerContract(PixelwiseLULinearFactory(), features: [18])
    }

    @Test func handWorkedFactors() throws {
        // P swaps the rows; L = [[1, 0], [0.5, 1]]; Ũ = [[2, 2], [0, -3]]: L·Ũ = [[2, 2], [1, -2]],
        // W = [[1, -2], [2, 2]], det W = 6.
        let layer = try LULinear<Double>(
            permutation: [1, 0], signs: [1, -1], lower: try Matrix([[9, 9], [0.5, 9]]),
            upper: try Matrix([[9, 2], [9, 9]]), logScale: [log(2), log(3)], bias: [0.5, -1])
        #expect(try (layer.matrix() - Matrix([[1, -2], [2, 2]])).maxAbs <= 1e-15)
        let out = try layer.forward(Matrix(row: [1, 1]))
        #expect(try (out.output - Matrix(row: [-0.5, 3])).maxAbs <= 1e-15)
        #expect(abs(out.logAbsDet[0] - log(6)) <= 1e-15)
        #expect(try (layer.inverse(out.output).output - Matrix(row: [1, 1])).maxAbs <= 1e-15)
        // Entries outside the strict triangles are dropped, and fixed for optimizers.
        #expect(layer.lower.value[0, 1] == 0 && layer.lower.value[1, 1] == 0 && layer.upper.value[1, 0] == 0)
        #expect(layer.lower.trainableMask == [false, false, true, false])
        #expect(layer.upper.trainableMask == [false, true, false, false])
    }

    @Test func factorizationReproducesTheMatrixAndItsDeterminant() throws {
        var rng = SeededGenerator(seed: 31)
        for n in [1, 2, 5, 17, 64] {
            let a = try RandomMatrices.conditioned(n, condition: 100, scale: 2, using: &rng)
            let layer = try LULinear(matrix: a, hasBias: false)
            #expect(try (layer.matrix() - a).maxAbs <= 1e-12 * max(1, a.maxAbs), "n = \(n)")
            let exact = try LAPACK.logAbsDeterminant(a).logAbsDet
            let x = Matrix<Double>.randomNormal(rows: 3, columns: n, using: &rng)
            let out = try layer.forward(x)
            #expect(abs(out.logAbsDet[0] - exact) <= 1e-12 * max(1, abs(exact)), "n = \(n)")
            #expect(try (out.output - BLAS.matmul(x, a, transposeB: true)).maxAbs <= 1e-12 * max(1, out.output.maxAbs))
        }
    }

    @Test func randomInitializationIsOrthogonal() throws {
        var rng = SeededGenerator(seed: 5)
        for n in [1, 3, 16] {
            let layer = try LULinear<Double>(features: n, using: &rng)
            #expect(try RandomMatrices.defect(layer.matrix()) <= 1e-12, "n = \(n)")
            #expect(abs(layer.logScale.value.storage.reduce(0, +)) <= 1e-12)
            #expect(layer.bias!.value.storage.allSatisfy { $0 == 0 })
        }
        let pixelwise = try Pixelwise<Float>.luLinear(channels: 4, height: 2, width: 2, using: &rng)
        let out = try pixelwise.forward(Matrix<Float>.randomNormal(rows: 2, columns: 16, using: &rng))
        #expect(out.logAbsDet.allSatisfy { abs($0) <= 1e-5 })
    }

    @Test func cacheFollowsInPlaceParameterUpdates() throws {
        let layer = try LULinearFactory.double(features: 4, seed: 3)
        let x = try Matrix<Double>([[1, -2, 0.5, 3]])
        let before = try layer.forward(x).output
        layer.upper.withUnsafeMutableValue { $0[1] += 0.25 }  // U[0, 1]: W's column 1 changes by 0.25·P L e_0
        let after = try layer.forward(x).output
        for i in 0..<4 {
            let row = layer.permutation[i]
            let l = row == 0 ? 1 : layer.lower.value[row, 0]
            #expect(abs(after[0, i] - before[0, i] - 0.25 * x[0, 1] * l) <= 1e-12)
        }
        #expect(try (layer.inverse(after).output - x).maxAbs <= 1e-12)
    }

    @Test func rejectsBadFactors() throws {
        let z = Matrix<Double>(rows: 2, columns: 2)
        #expect(throws: InvertNNError.self) { try LULinear(permutation: [0, 0], signs: [1, 1], lower: z, upper: z, logScale: [0, 0]) }
        #expect(throws: InvertNNError.self) { try LULinear(permutation: [1, 0], signs: [1, 2], lower: z, upper: z, logScale: [0, 0]) }
        #expect(throws: InvertNNError.self) { try LULinear(permutation: [1, 0], signs: [1, 1], lower: z, upper: z, logScale: [.nan, 0]) }
        #expect(throws: InvertNNError.self) { try LULinear<Double>(features: 0) }
        #expect(throws: InvertNNError.self) { try LULinear<Double>(features: 3, permutation: [0, 1]) }
        #expect(throws: InvertNNError.singular(operation: "LAPACK.luFactorization", detail: "U[1, 1] is exactly zero")) {
            try LULinear(matrix: try Matrix<Double>([[1, 2], [2, 4]]))
        }
        #expect(throws: InvertNNError.self) { try LULinear<Double>(features: 2).forward(Matrix(rows: 1, columns: 3)) }
    }

    /// A flow with an LU layer and an LU 1×1 convolution reloads with the same permutation,
    /// signs and parameters: bit-identical densities and samples.
    func checkpointRoundTrip<T: Scalar>(_: T.Type) throws {
        var g = SeededGenerator(seed: 9)
        let flow = try NormalizingFlow(transform: try Sequential<T>([
            try LULinear<T>(features: 8, using: &g),
            try Pixelwise<T>.luLinear(channels: 2, height: 2, width: 2, using: &g),
            try LULinear<T>(features: 8, hasBias: false, using: &g),
        ]))
        for p in flow.parameters {
            for i in 0..<p.count where p.trainableMask?[i] ?? true { p.withUnsafeMutableValue { $0[i] += T(0.1) * g.nextNormal(T.self) } }
        }
        let path = temporaryPath("lulinear-\(T.self).safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let preprocessing = Preprocessing<T>.standardization(
            try Standardization(means: [T](repeating: 0, count: 8), scales: [T](repeating: 1, count: 8)))
        try Checkpoint(flow: flow, preprocessing: preprocessing).write(to: path)
        let loaded = try Checkpoint<T>.read(path: path).flow
        let x = Matrix<T>.randomNormal(rows: 5, columns: 8, using: &g)
        #expect(try loaded.logProbability(x) == flow.logProbability(x))
        var g1 = SeededGenerator(seed: 3), g2 = SeededGenerator(seed: 3)
        #expect(try loaded.sample(count: 4, using: &g1) == flow.sample(count: 4, using: &g2))
        #expect(try architecture(of: loaded.transform) == architecture(of: flow.transform))
    }

    @Test func checkpointRoundTripDouble() throws { try checkpointRoundTrip(Double.self) }
    @Test func checkpointRoundTripFloat() throws { try checkpointRoundTrip(Float.self) }
}
