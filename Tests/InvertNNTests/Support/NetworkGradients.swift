import Testing
import InvertNN

/// Checks the VJP of a (not invertible) network `f` (``MLP``, ``Conv2D``) at `x` against central
/// differences of `L = Σ outputGradient ⊙ f(x)`: `inputGradient` for every input entry and the
/// accumulated gradient of every parameter entry, relative error ≤ `tolerance` (DESIGN.md §5.4).
/// Parameter gradients must hold exactly one backward pass's contribution.
func checkNetworkGradients(
    input x: Matrix<Double>, outputGradient: Matrix<Double>, inputGradient: Matrix<Double>,
    parameters: [Parameter<Double>], label: String, tolerance: Double = 1e-6, step h: Double = 1e-6,
    sourceLocation: SourceLocation = #_sourceLocation, _ f: (Matrix<Double>) throws -> Matrix<Double>
) throws {
    func loss(_ input: Matrix<Double>) throws -> Double {
        zip(try f(input).storage, outputGradient.storage).reduce(0) { $0 + $1.0 * $1.1 }
    }
    var worst = 0.0, scale = 1e-3
    for k in 0..<x.count {
        var plus = x, minus = x
        plus.withUnsafeMutableBufferPointer { $0[k] += h }
        minus.withUnsafeMutableBufferPointer { $0[k] -= h }
        let fd = (try loss(plus) - loss(minus)) / (2 * h)
        worst = max(worst, abs(fd - inputGradient.storage[k]))
        scale = max(scale, abs(fd))
    }
    #expect(worst <= tolerance * scale, "input gradient \(label): error \(worst), scale \(scale)", sourceLocation: sourceLocation)
    for parameter in parameters {
        var worst = 0.0, scale = 1e-3
        for k in 0..<parameter.count {
            let saved = parameter.value.storage[k]
            parameter.withUnsafeMutableValue { $0[k] = saved + h }
            let lp = try loss(x)
            parameter.withUnsafeMutableValue { $0[k] = saved - h }
            let lm = try loss(x)
            parameter.withUnsafeMutableValue { $0[k] = saved }
            let fd = (lp - lm) / (2 * h)
            worst = max(worst, abs(fd - parameter.gradient.storage[k]))
            scale = max(scale, abs(fd))
        }
        #expect(worst <= tolerance * scale, "\(parameter.name) gradient \(label): error \(worst), scale \(scale)",
                sourceLocation: sourceLocation)
    }
}
