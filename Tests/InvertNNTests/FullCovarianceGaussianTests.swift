import Testing
import Foundation
@testable import InvertNN

/// ``FullCovarianceGaussian``: the maximum-likelihood fit and its log-density against values
/// worked out by hand, and the baseline scored like ``Trainer``.
struct FullCovarianceGaussianTests {
    @Test func fitAndLogDensityMatchTheClosedForm() throws {
        // Rows (0,0), (2,1), (0,2), (2,2): mean (1, 1.25), covariance worked out by hand below.
        let x = try Matrix<Double>([[0, 0], [2, 1], [0, 2], [2, 2]])
        let g = try FullCovarianceGaussian(fitting: x)
        #expect(g.mean == [1, 1.25])
        // Σ (divisor n = 4): var1 = 1, var2 = (1.5625 + 0.0625 + 0.5625 + 0.5625)/4 = 0.6875,
        // cov = (-1·-1.25 + 1·-0.25 + -1·0.75 + 1·0.75)/4 = 0.25.
        let (s11, s12, s22) = (1.0, 0.25, 0.6875)
        let l11 = s11.squareRoot(), l21 = s12 / l11, l22 = (s22 - l21 * l21).squareRoot()
        #expect(abs(g.cholesky[0, 0] - l11) < 1e-15 && abs(g.cholesky[1, 0] - l21) < 1e-15
            && abs(g.cholesky[1, 1] - l22) < 1e-15 && g.cholesky[0, 1] == 0)
        let det = s11 * s22 - s12 * s12
        let point = try Matrix<Double>([[3, -1]])
        let (u, v) = (3.0 - 1, -1.0 - 1.25)
        let mahalanobis = (s22 * u * u - 2 * s12 * u * v + s11 * v * v) / det
        let expected = -0.5 * mahalanobis - 0.5 * Double.log(det) - Double.log(2 * Double.pi)
        let logDensity = try g.logDensity(point)
        #expect(abs(logDensity[0] - expected) < 1e-13, "\(logDensity[0]) vs \(expected)")
        // Float data give the same fit (the work is in Double).
        let gf = try FullCovarianceGaussian(fitting: x.converted(to: Float.self))
        #expect(abs(try gf.logDensity(point.converted(to: Float.self))[0] - expected) < 1e-6)
    }

    @Test func degenerateDataAreErrorsNotNaN() throws {
        #expect(throws: InvertNNError.self) { try FullCovarianceGaussian(fitting: try Matrix<Double>([[1, 2], [1, 3], [1, 5]])) }
        #expect(throws: InvertNNError.self) { try FullCovarianceGaussian(fitting: try Matrix<Double>([[1, 2]])) }
        #expect(throws: InvertNNError.self) { try FullCovarianceGaussian(fitting: Matrix<Double>(rows: 0, columns: 2)) }
        #expect(throws: InvertNNError.self) { try FullCovarianceGaussian(fitting: try Matrix<Double>([[1, .nan], [2, 3], [0, 1]])) }
        let g = try FullCovarianceGaussian(fitting: try Matrix<Double>([[0, 0], [2, 1], [0, 2], [2, 2]]))
        #expect(throws: InvertNNError.self) { try g.logDensity(Matrix<Double>(rows: 1, columns: 3)) }
    }

    /// On continuous data the baseline is the Gaussian of the data as given: fitting the raw
    /// values directly gives the same NLL as fitting the standardized ones plus the log-det.
    @Test func baselineOfStandardizedDataIsTheGaussianOfTheRawData() throws {
        var rng = SeededGenerator(seed: 3)
        var x = Matrix<Double>.randomNormal(rows: 200, columns: 3, standardDeviation: 1, using: &rng)
        for i in 0..<x.rows { x[i, 0] = 50 + 20 * x[i, 0]; x[i, 2] = 0.01 * x[i, 2] + 0.5 * x[i, 1] }
        let (train, test) = (x.rows(0..<150), x.rows(150..<200))
        let preprocessing = Preprocessing<Double>.standardization(try Standardization(fitting: train))
        let result = try FullCovarianceGaussian.baseline(preprocessing: preprocessing, splits: [train, test], noiseSeeds: [1, 2])
        let direct = try FullCovarianceGaussian(fitting: train).logDensity(test)
        let nll = -direct.reduce(0, +) / Double(test.rows)
        #expect(abs(result.evaluations[1].negativeLogLikelihood - nll) < 1e-10, "\(result.evaluations[1]) vs \(nll)")
        #expect(abs(result.evaluations[1].natsPerDimension - nll / 3) < 1e-10)
    }

    /// On integer data the baseline models the dequantized values with the trainer's noise: its
    /// bits/dim follow the discrete data's formula.
    @Test func baselineOfIntegerDataUsesTheTrainersNoise() throws {
        var rng = SeededGenerator(seed: 5)
        let levels = 4
        let data = try Matrix<Double>(rows: 300, columns: 2, storage: (0..<600).map { _ in Double(Int.random(in: 0..<levels, using: &rng)) })
        let dequantization = try Dequantization<Double>(levels: levels)
        let result = try FullCovarianceGaussian.baseline(
            preprocessing: .dequantization(dequantization), splits: [data, data], noiseSeeds: [7, 7])
        var noise = SeededGenerator(seed: 7)
        let x = try dequantization.dequantize(data, using: &noise)
        let g = try FullCovarianceGaussian(fitting: x)
        let nll = -(try g.logDensity(x)).reduce(0, +) / 300
        #expect(abs(result.evaluations[0].negativeLogLikelihood - nll) < 1e-12)
        #expect(abs(result.evaluations[1].bitsPerDimension - (nll + 2 * Double.log(4)) / (2 * Double.log(2))) < 1e-12)
    }
}
