import RealModule

/// The Adam optimizer with bias correction (Kingma & Ba 2015, "Adam: A method for stochastic
/// optimization", Algorithm 1), optional global gradient-norm clipping (Pascanu et al. 2013,
/// §3.2) and optional decoupled weight decay (Loshchilov & Hutter 2019, AdamW, Algorithm 2).
///
/// For every learnable entry θ with gradient g, at step t (from 1):
/// `m ← β₁m + (1-β₁)g`, `v ← β₂v + (1-β₂)g²`, `m̂ = m/(1-β₁ᵗ)`, `v̂ = v/(1-β₂ᵗ)`,
/// `θ ← θ - η·(m̂/(√v̂ + ε) + λθ)`.
/// With clipping, g is first scaled by `min(1, c/‖g‖)`, `‖g‖` the Euclidean norm over all
/// parameters. Entries marked fixed by ``Parameter/trainableMask`` never move.
///
/// The optimizer reads ``Parameter/gradient``; it does not zero it (the caller does, before the
/// next backward pass).
public final class Adam<T: Scalar> {
    /// The parameters updated, in a fixed order.
    public let parameters: [Parameter<T>]
    /// η, the step size; may be changed between steps (learning-rate schedules).
    public var learningRate: T
    /// β₁, the decay of the first-moment estimate.
    public let beta1: T
    /// β₂, the decay of the second-moment estimate.
    public let beta2: T
    /// ε, added to √v̂ for numerical stability.
    public let epsilon: T
    /// c, the maximum global gradient norm, or `nil` for no clipping.
    public let maxGradientNorm: T?
    /// λ, the decoupled weight decay (0 = plain Adam).
    public let weightDecay: T
    /// Number of updates applied so far (t).
    public private(set) var step: Int = 0

    @usableFromInline var firstMoments: [[T]]
    @usableFromInline var secondMoments: [[T]]
    /// Per parameter with a ``Parameter/trainableMask``: 1 for learnable entries and 0 for fixed
    /// ones, so the update loop stays branch-free and allocation-free (`nil`: all learnable).
    let learnableFactors: [[T]?]

    /// An optimizer over `parameters`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if the learning rate is not
    ///   positive and finite, a β is outside `[0, 1)`, ε or λ is negative, or the clipping norm is
    ///   not positive.
    public init(
        parameters: [Parameter<T>], learningRate: T = 1e-3, beta1: T = 0.9, beta2: T = 0.999,
        epsilon: T = 1e-8, maxGradientNorm: T? = nil, weightDecay: T = 0
    ) throws {
        func invalid(_ reason: String) -> InvertNNError { .invalidArgument(operation: "Adam", reason: reason) }
        guard learningRate > 0, learningRate.isFinite else { throw invalid("learning rate must be positive and finite, got \(learningRate)") }
        guard beta1 >= 0, beta1 < 1, beta2 >= 0, beta2 < 1 else { throw invalid("β₁ and β₂ must lie in [0, 1), got \(beta1), \(beta2)") }
        guard epsilon >= 0, epsilon.isFinite else { throw invalid("ε must be ≥ 0, got \(epsilon)") }
        guard weightDecay >= 0, weightDecay.isFinite else { throw invalid("weight decay must be ≥ 0, got \(weightDecay)") }
        if let c = maxGradientNorm, !(c > 0 && c.isFinite) { throw invalid("max gradient norm must be positive, got \(c)") }
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.maxGradientNorm = maxGradientNorm
        self.weightDecay = weightDecay
        self.firstMoments = parameters.map { [T](repeating: 0, count: $0.count) }
        self.secondMoments = parameters.map { [T](repeating: 0, count: $0.count) }
        self.learnableFactors = parameters.map { p in p.trainableMask.map { mask in mask.map { $0 ? 1 : 0 } } }
    }

    /// The Euclidean norm of all learnable gradient entries, accumulated in Double (so Float
    /// gradients cannot overflow the sum).
    public func gradientNorm() -> Double {
        var sum = 0.0
        for p in parameters {
            p.gradient.storage.withUnsafeBufferPointer { g in
                if let mask = p.trainableMask {
                    for i in 0..<Swift.min(g.count, mask.count) where mask[i] { let v = Double(g[i]); sum += v * v }
                } else {
                    sum += AdamKernel.sumOfSquares(g)
                }
            }
        }
        return sum.squareRoot()
    }

    /// Applies one Adam update from the current gradients.
    ///
    /// - Returns: the global gradient norm before clipping.
    /// - Throws: ``InvertNNError/diverged(step:detail:)`` if a gradient is NaN or infinite (no
    ///   parameter is changed then).
    @discardableResult
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func update() throws -> Double {
        let (norm, constants) = try prepare()
        for (index, p) in parameters.enumerated() {
            p.gradient.storage.withUnsafeBufferPointer { g in
                update(index, 0..<p.count, gradient: g, constants)
            }
        }
        return norm
    }

    /// The global gradient norm, checked to be finite, and the constants of the next step.
    private func prepare() throws -> (norm: Double, constants: AdamKernel.Step<T>) {
        let norm = gradientNorm()
        guard norm.isFinite else {
            let culprit = parameters.first { $0.gradient.firstNonFinite() != nil }?.name ?? "a parameter"
            throw InvertNNError.diverged(step: step + 1, detail: "the gradient of \(culprit) is not finite")
        }
        return (norm, advance(norm: norm))
    }

    /// ``update()`` with a training step's per-entry work in the same pass over memory (see
    /// ``AdamKernel/Companions``): `previous[i]` receives the value of parameter `i` before the
    /// update and, with `averageDecay` (β, 1-β), that value is blended into `average[i]` as
    /// `β·avg + (1-β)·θ` (`average` is not touched otherwise). The arrays have the parameters'
    /// sizes.
    ///
    /// - Returns: the gradient norm before clipping, and whether every updated entry is finite.
    /// - Throws: as ``update()``; nothing is written then.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func update(
        savingInto previous: inout [[T]], average: inout [[T]], averageDecay: (beta: T, oneMinusBeta: T)?
    ) throws -> (norm: Double, finite: Bool) {
        let (norm, constants) = try prepare()
        let finite = Companions.with(&previous, &average, averageDecay) { companions in
            var finite = true
            for (index, p) in parameters.enumerated() {
                p.gradient.storage.withUnsafeBufferPointer { g in
                    finite = update(index, 0..<p.count, gradient: g, constants, companions) && finite
                }
            }
            return finite
        }
        return (norm, finite)
    }

    /// The arrays a fused pass writes besides the optimizer's own (see
    /// ``update(savingInto:average:averageDecay:)``).
    private struct Companions {
        var previous: UnsafeMutablePointer<[[T]]>
        var average: UnsafeMutablePointer<[[T]]>
        var decay: (beta: T, oneMinusBeta: T)?

        /// Runs `body` with companions pointing at `previous` and `average` (valid only inside).
        static func with<R>(
            _ previous: inout [[T]], _ average: inout [[T]], _ decay: (beta: T, oneMinusBeta: T)?, _ body: (Companions) -> R
        ) -> R {
            withUnsafeMutablePointer(to: &previous) { p in
                withUnsafeMutablePointer(to: &average) { a in body(Companions(previous: p, average: a, decay: decay)) }
            }
        }
    }

    /// Counts the step and returns its constants, the clipping factor from the global `norm`.
    private func advance(norm: Double) -> AdamKernel.Step<T> {
        var clip: T = 1
        if let c = maxGradientNorm, norm > Double(c) { clip = T(Double(c) / norm) }
        step += 1
        let t = T(step)
        let correction1 = 1 - T.pow(beta1, t)
        let correction2 = 1 - T.pow(beta2, t)
        return AdamKernel.Step(
            clip: clip, beta1: beta1, beta2: beta2, epsilon: epsilon, stepScale: learningRate / correction1,
            inverseCorrection2: 1 / correction2, decay: learningRate * weightDecay, tiny: T.leastNormalMagnitude)
    }

    /// Updates the entries `range` of parameter `index` from `g`, the gradient of those entries,
    /// with the fused work of `companions` if given. Returns whether the updated entries are
    /// finite (always `true` without companions, which do not check).
    private func update(
        _ index: Int, _ range: Range<Int>, gradient g: UnsafeBufferPointer<T>, _ constants: AdamKernel.Step<T>,
        _ companions: Companions? = nil
    ) -> Bool {
        guard !range.isEmpty else { return true }
        func slice<E>(_ buffer: UnsafeMutableBufferPointer<E>) -> UnsafeMutableBufferPointer<E> {
            UnsafeMutableBufferPointer(rebasing: buffer[range])
        }
        return parameters[index].value.storage.withUnsafeMutableBufferPointer { theta in
            firstMoments[index].withUnsafeMutableBufferPointer { m in
                secondMoments[index].withUnsafeMutableBufferPointer { v in
                    func run(_ factor: UnsafeBufferPointer<T>?) -> Bool {
                        guard let companions else {
                            AdamKernel.update(
                                theta: slice(theta), gradient: g, firstMoment: slice(m), secondMoment: slice(v), factor: factor, constants)
                            return true
                        }
                        return companions.previous.pointee[index].withUnsafeMutableBufferPointer { keep in
                            func fused(_ average: UnsafeMutablePointer<T>?) -> Bool {
                                AdamKernel.update(
                                    theta: slice(theta), gradient: g, firstMoment: slice(m), secondMoment: slice(v), factor: factor,
                                    constants, companions: AdamKernel.Companions(
                                        previous: keep.baseAddress! + range.lowerBound, average: average,
                                        decay: companions.decay ?? (0, 0)))
                            }
                            guard companions.decay != nil else { return fused(nil) }
                            return companions.average.pointee[index].withUnsafeMutableBufferPointer {
                                fused($0.baseAddress! + range.lowerBound)
                            }
                        }
                    }
                    if let factors = learnableFactors[index], factors.count == theta.count {
                        return factors.withUnsafeBufferPointer { run(UnsafeBufferPointer(rebasing: $0[range])) }
                    }
                    return run(nil)
                }
            }
        }
    }

    /// `Σ g²` over the learnable entries of the flat entries `range` (see ``ParameterShard``),
    /// `gradient` holding all flat entries: one rank's part of the global norm.
    func sumOfSquares(_ range: Range<Int>, of gradient: UnsafeBufferPointer<T>, layout: ParameterShard<T>) -> Double {
        var sum = 0.0
        layout.forEachSegment(of: range) { index, local, flat in
            let g = UnsafeBufferPointer(rebasing: gradient[flat..<(flat + local.count)])
            if let mask = parameters[index].trainableMask {
                for (j, i) in local.enumerated() where mask[i] { let v = Double(g[j]); sum += v * v }
            } else {
                sum += AdamKernel.sumOfSquares(g)
            }
        }
        return sum
    }

    /// One Adam step of the flat entries `range` only (a rank's shard in a data-parallel run),
    /// from `gradient`, the summed flat gradient (entries outside `range` are not read), with
    /// clipping by the global gradient `norm` the ranks agreed on. Every rank counts the step.
    ///
    /// The pass also does the fused work of ``update(savingInto:average:averageDecay:)`` on the
    /// entries of `range` (the other entries of `previous` and `average` are not touched).
    /// Returns whether every updated entry is finite.
    func update(
        _ range: Range<Int>, gradient: UnsafeBufferPointer<T>, norm: Double, layout: ParameterShard<T>,
        savingInto previous: inout [[T]], average: inout [[T]], averageDecay: (beta: T, oneMinusBeta: T)?
    ) -> Bool {
        let constants = advance(norm: norm)
        return Companions.with(&previous, &average, averageDecay) { companions in
            var finite = true
            layout.forEachSegment(of: range) { index, local, flat in
                let g = UnsafeBufferPointer(rebasing: gradient[flat..<(flat + local.count)])
                finite = update(index, local, gradient: g, constants, companions) && finite
            }
            return finite
        }
    }

    /// Replaces the moments by `body`'s result (the all-gather of a sharded run).
    func updateMoments(_ body: (inout [[T]]) throws -> Void) rethrows {
        try body(&firstMoments)
        try body(&secondMoments)
    }

    /// The moment estimates `m` and `v`, one array per parameter in ``parameters`` order (each of
    /// the parameter's ``Parameter/count``), for saving the optimizer with a checkpoint.
    public var moments: (first: [[T]], second: [[T]]) { (firstMoments, secondMoments) }

    /// Restores a saved state (``step`` and ``moments``) so that later updates continue exactly
    /// as the optimizer that was saved would have.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` naming the parameter if the
    ///   step is negative, the arrays do not match the parameters' sizes, a moment is NaN or
    ///   infinite, or a second moment is negative (it is an average of squares). On error the
    ///   optimizer keeps its state.
    public func restore(step: Int, firstMoments first: [[T]], secondMoments second: [[T]]) throws {
        func invalid(_ reason: String) -> InvertNNError { .invalidArgument(operation: "Adam.restore", reason: reason) }
        guard step >= 0 else { throw invalid("the step count must be ≥ 0, got \(step)") }
        guard first.count == parameters.count, second.count == parameters.count else {
            throw invalid("moments for \(first.count) and \(second.count) parameters, the optimizer has \(parameters.count)")
        }
        for (index, p) in parameters.enumerated() {
            guard first[index].count == p.count, second[index].count == p.count else {
                throw invalid("the moments of \(p.name) have \(first[index].count) and \(second[index].count) entries, expected \(p.count)")
            }
            if let i = first[index].firstIndex(where: { !$0.isFinite }) {
                throw invalid("first moment \(i) of \(p.name) is \(first[index][i])")
            }
            if let i = second[index].firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
                throw invalid("second moment \(i) of \(p.name) is \(second[index][i]); it must be finite and ≥ 0")
            }
        }
        self.step = step
        firstMoments = first
        secondMoments = second
    }

    /// Forgets the moment estimates and the step count (for a fresh run on the same parameters).
    public func reset() {
        step = 0
        for i in 0..<parameters.count {
            firstMoments[i] = [T](repeating: 0, count: parameters[i].count)
            secondMoments[i] = [T](repeating: 0, count: parameters[i].count)
        }
    }
}
