import RealModule

/// Two-dimensional densities for teaching and debugging flows, drawn from seeded generators.
///
/// Each has a known shape that a picture of a learned density shows at a glance (see
/// `invertnn density`). Coordinates are roughly in `[-4, 4]²`.
public enum ToyDensity: String, Sendable, CaseIterable {
    /// Two interleaving half circles (as scikit-learn's `make_moons`), radius 1, centres (0, 0)
    /// and (1, 0.5), Gaussian noise σ = 0.08, scaled by 2 and centred.
    case moons
    /// Three concentric rings of radii 1, 2 and 3 (points proportional to the circumference),
    /// Gaussian radial noise σ = 0.08.
    case rings
    /// A 4×4 checkerboard on `[-4, 4]²`: uniform on the 8 dark squares.
    case checkerboard
    /// A mixture of 8 isotropic Gaussians (σ = 0.35) with equal weights, centred on a circle of
    /// radius 3.
    case mixture

    /// `count` independent points, `[count, 2]`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if `count < 1`.
    public func sample<T: Scalar>(count: Int, using generator: inout some RandomNumberGenerator, as _: T.Type = T.self) throws -> Matrix<T> {
        guard count >= 1 else {
            throw InvertNNError.invalidArgument(operation: "ToyDensity.sample", reason: "count must be ≥ 1, got \(count)")
        }
        var out = Matrix<T>(rows: count, columns: 2)
        for i in 0..<count {
            let (x, y) = point(using: &generator)
            out[i, 0] = T(x)
            out[i, 1] = T(y)
        }
        return out
    }

    private func point(using g: inout some RandomNumberGenerator) -> (Double, Double) {
        func uniform() -> Double { g.nextUniform(Double.self) }
        func normal() -> Double { g.nextNormal(Double.self) }
        switch self {
        case .moons:
            let angle = Double.pi * uniform()
            let upper = uniform() < 0.5
            var x = upper ? Double.cos(angle) : 1 - Double.cos(angle)
            var y = upper ? Double.sin(angle) : 0.5 - Double.sin(angle)
            x += 0.08 * normal(); y += 0.08 * normal()
            return (2 * (x - 0.5), 2 * (y - 0.25))
        case .rings:
            // Ring k has radius k; choosing k with probability ∝ k keeps the point density even.
            let u = uniform() * 6
            let radius: Double = u < 1 ? 1 : (u < 3 ? 2 : 3)
            let angle = 2 * Double.pi * uniform()
            let r = radius + 0.08 * normal()
            return (r * Double.cos(angle), r * Double.sin(angle))
        case .checkerboard:
            while true {
                let cx = Int(uniform() * 4), cy = Int(uniform() * 4)
                guard (cx + cy) % 2 == 0 else { continue }
                return (-4 + 2 * (Double(cx) + uniform()), -4 + 2 * (Double(cy) + uniform()))
            }
        case .mixture:
            let k = Double(Int(uniform() * 8) % 8)
            let angle = 2 * Double.pi * k / 8
            return (3 * Double.cos(angle) + 0.35 * normal(), 3 * Double.sin(angle) + 0.35 * normal())
        }
    }

    /// The dataset `invertnn train --data NAME` uses: `count` points (default 3000) from
    /// `SeededGenerator(seed: seed)`, split 75% / 10% / 15%.
    ///
    /// - Throws: as ``sample(count:using:as:)`` and ``TabularDataset/init(name:values:columnNames:sourceColumns:splitSeed:recordLines:split:)``.
    public func dataset<T: Scalar>(count: Int = 3000, seed: UInt64 = 2024, as _: T.Type = T.self) throws -> TabularDataset<T> {
        var generator = SeededGenerator(seed: seed)
        let points: Matrix<Double> = try sample(count: count, using: &generator)
        return try TabularDataset(name: rawValue, values: points, columnNames: ["x", "y"], splitSeed: seed &+ 1)
    }
}
