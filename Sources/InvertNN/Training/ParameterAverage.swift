/// The exponential moving average of the parameters that a ``Trainer`` evaluates and selects
/// with (Polyak & Juditsky 1992; ``TrainingConfiguration/parameterAveraging``).
///
/// ``values`` hold the uncorrected average `θ̄ ← βθ̄ + (1-β)θ`, one row-major array per parameter
/// in the order of ``NormalizingFlow/parameters``; ``weight`` is `1 - βᵗ`, its bias correction.
/// In a sharded run each rank blends only its shard of ``values`` after a step (the other entries
/// are gathered at the end of each epoch).
struct ParameterAverage<T: Scalar> {
    /// The decay β in `[0, 1)`.
    let beta: Double
    var values: [[T]]
    var weight = 0.0
    /// Whether the parameters hold an iterate not yet blended in. A step's blend is deferred to
    /// the next step's optimizer pass, which reads the parameters anyway
    /// (``takeOwedBlend()``); ``settle(_:shard:)`` does it alone before anyone reads the average.
    var owesBlend = false

    /// An empty average of `parameters` with decay `beta`.
    init(beta: Double, parameters: [Parameter<T>]) {
        self.beta = beta
        values = parameters.map { [T](repeating: 0, count: $0.count) }
    }

    /// Blends the current parameters (only the entries of `shard`'s range, if given) into the
    /// average.
    mutating func update(_ parameters: [Parameter<T>], shard: ParameterShard<T>?) {
        weight = beta * weight + (1 - beta)
        let b = T(beta), oneMinus = T(1 - beta)
        func blend(_ index: Int, _ entries: Range<Int>) {
            parameters[index].value.storage.withUnsafeBufferPointer { theta in
                values[index].withUnsafeMutableBufferPointer { avg in
                    for i in entries { avg[i] = b * avg[i] + oneMinus * theta[i] }
                }
            }
        }
        if let shard {
            shard.forEachSegment(of: shard.range) { index, entries, _ in blend(index, entries) }
        } else {
            for index in parameters.indices { blend(index, 0..<parameters[index].count) }
        }
    }

    /// Counts the owed blend as done by the caller's pass and returns β and 1-β to blend with
    /// (rounded as ``update(_:shard:)`` rounds them), or `nil` if nothing is owed.
    mutating func takeOwedBlend() -> (beta: T, oneMinusBeta: T)? {
        guard owesBlend else { return nil }
        owesBlend = false
        weight = beta * weight + (1 - beta)
        return (T(beta), T(1 - beta))
    }

    /// Does the owed blend, if any, of the current parameters.
    mutating func settle(_ parameters: [Parameter<T>], shard: ParameterShard<T>?) {
        guard owesBlend else { return }
        owesBlend = false
        update(parameters, shard: shard)
    }

    /// Runs `body` with the bias-corrected average in `parameters` and puts the iterate back
    /// afterwards (before the first step, `body` sees the iterate).
    func withAveraged<R>(_ parameters: [Parameter<T>], _ body: () throws -> R) rethrows -> R {
        assert(!owesBlend, "settle the average before reading it")
        guard weight > 0 else { return try body() }
        let iterate = parameters.map { $0.value }
        let correction = T(1 / weight)
        for (p, avg) in zip(parameters, values) {
            p.value.storage.withUnsafeMutableBufferPointer { theta in
                if let mask = p.trainableMask {
                    // Fixed entries keep their exact structural value (the corrected average of
                    // a constant differs from it by rounding).
                    for i in 0..<theta.count where mask[i] { theta[i] = avg[i] * correction }
                } else {
                    for i in 0..<theta.count { theta[i] = avg[i] * correction }
                }
            }
        }
        defer { for (p, v) in zip(parameters, iterate) { p.value = v } }
        return try body()
    }
}
