import Testing
import InvertNN

/// `features` is read as channels·height·width with height 2 and width 3 (features = 6·channels).
struct PixelwiseDiagonalFactory: LayerFactory {
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        let channels = features / 6
        let base = try DiagonalFactory().make(features: channels, seed: seed, T.self)
        return try Pixelwise<T>(base, channels: channels, height: 2, width: 3)
    }
}

@Suite struct PixelwiseTests {
    @Test func diagonalContract() throws {
        try checkLayerContract(PixelwiseDiagonalFactory(), features: [6, 12, 18])
    }

    @Test func logDetIsPixelsTimesOneDimensional() throws {
        let base = try Diagonal<Double>(scales: [2, 0.5, 3])
        let layer = try Pixelwise<Double>(base, channels: 3, height: 4, width: 5)
        var rng = SeededGenerator(seed: 3)
        let x = Matrix<Double>.randomNormal(rows: 2, columns: 60, using: &rng)
        let out = try layer.forward(x)
        #expect(abs(out.logAbsDet[0] - 20 * 1.0986122886681098) <= 1e-12 * 20)
        // Channel c of pixel p is at c*20 + p in NCHW: scaled by the c-th scale.
        #expect(abs(out.output[1, 2 * 20 + 7] - 3 * x[1, 2 * 20 + 7]) <= 1e-12)
        #expect(abs(out.output[0, 1 * 20 + 19] - 0.5 * x[0, 1 * 20 + 19]) <= 1e-12)
    }

    @Test func rejectsMismatchedBase() throws {
        let base = try Diagonal<Double>(features: 3)
        #expect(throws: InvertNNError.self) { try Pixelwise<Double>(base, channels: 4, height: 2, width: 2) }
        #expect(throws: InvertNNError.self) { try Pixelwise<Double>(base, channels: 3, height: 0, width: 2) }
        let layer = try Pixelwise<Double>(base, channels: 3, height: 2, width: 2)
        #expect(throws: InvertNNError.self) { try layer.forward(Matrix(rows: 1, columns: 11)) }
    }
}

/// 2D (1x1-conv) variants of the orthogonal and SVD-composed layers; `features` = 6·channels.
struct PixelwiseLinearFactory: LayerFactory {
    let orthogonalOnly: Bool
    func make<T: Scalar>(features: Int, seed: UInt64, _: T.Type) throws -> any InvertibleLayer<T> {
        var rng = SeededGenerator(seed: seed)
        let channels = features / 6
        let base: any InvertibleLayer<T>
        if orthogonalOnly {
            let h = try Householder<T>(features: channels, hasBias: true, using: &rng)
            try h.bias?.assign(Matrix.randomNormal(rows: 1, columns: channels, using: &rng))
            base = h
        } else {
            let linear = try InvertibleLinear<T>(features: channels, using: &rng)
            try linear.scale.logScale.assign(Matrix.randomNormal(rows: 1, columns: channels, standardDeviation: 0.5, using: &rng))
            base = linear
        }
        return try Pixelwise<T>(base, channels: channels, height: 2, width: 3)
    }
}

@Suite struct Pixelwise2DLinearTests {
    @Test func householder2DContract() throws {
        try checkLayerContract(PixelwiseLinearFactory(orthogonalOnly: true), features: [6, 18], batches: [1, 2, 7])
    }

    @Test func invertibleLinear2DContract() throws {
        try checkLayerContract(PixelwiseLinearFactory(orthogonalOnly: false), features: [6, 18], batches: [1, 2, 7])
    }

    @Test func logDetIsHeightTimesWidthTimesOneDimensional() throws {
        var rng = SeededGenerator(seed: 11)
        let linear = try InvertibleLinear<Double>(features: 4, using: &rng)
        try linear.scale.logScale.assign(Matrix(row: [0.3, -0.2, 0.5, 0.1]))
        let layer = try Pixelwise<Double>(linear, channels: 4, height: 3, width: 5)
        let x = Matrix<Double>.randomNormal(rows: 2, columns: 60, using: &rng)
        let out = try layer.forward(x)
        let oneD = try LAPACK.logAbsDeterminant(try linear.matrix()).logAbsDet
        #expect(abs(oneD - 0.7) <= 1e-12)
        #expect(abs(out.logAbsDet[1] - 15 * oneD) <= 1e-12 * 15)
    }
}
