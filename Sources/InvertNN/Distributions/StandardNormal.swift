import RealModule
/// The standard normal base distribution N(0, I) on `features` dimensions:
/// `log p(z) = -½‖z‖² - (D/2)·log 2π` nats.
public struct StandardNormal<T: Scalar>: BaseDistribution {
    public typealias Element = T
    /// The feature count of every sample, `[batch, features]`.
    public let features: Int

    /// N(0, I) in `features` dimensions.
    public init(features: Int) { self.features = features }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func logProbability(_ z: Matrix<T>) throws -> [T] {
        try z.requireColumns(features, "StandardNormal.logProbability")
        let constant = -T(features) / 2 * T.log(2 * T.pi)
        var out = [T](repeating: constant, count: z.rows)
        for r in 0..<z.rows {
            var sum: T = 0
            for j in 0..<features { let v = z.storage[r * features + j]; sum += v * v }
            out[r] -= sum / 2
        }
        return out
    }

    /// In one pass: `log p(z_r)` and `scale · (-z)`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func logProbabilityAndGradient(
        _ z: Matrix<T>, scaledBy scale: T, logProbability: inout [T], gradient: inout Matrix<T>
    ) throws {
        try requireSameBatch(z, logProbability: logProbability, gradient: gradient)
        let constant = -T(features) / 2 * T.log(2 * T.pi), n = features
        z.storage.withUnsafeBufferPointer { pz in
            gradient.storage.withUnsafeMutableBufferPointer { pg in
                logProbability.withUnsafeMutableBufferPointer { lp in
                    for r in 0..<z.rows {
                        var sum: T = 0
                        for j in 0..<n {
                            let v = pz[r * n + j]
                            sum += v * v
                            pg[r * n + j] = -scale * v
                        }
                        lp[r] = constant - sum / 2
                    }
                }
            }
        }
    }

    public func logProbabilityGradient(_ z: Matrix<T>) throws -> Matrix<T> {
        try z.requireColumns(features, "StandardNormal.logProbabilityGradient")
        return -1 * z
    }

    public func sample(count: Int, temperature: T = 1, using generator: inout some RandomNumberGenerator) -> Matrix<T> {
        Matrix.randomNormal(rows: count, columns: features, standardDeviation: temperature, using: &generator)
    }
}
