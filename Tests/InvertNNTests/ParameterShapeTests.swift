import Testing
import InvertNN

/// A parameter value or gradient replaced by one of another shape is reported by the owning
/// layer's next call (and by Adam), never read out of range.
@Suite struct ParameterShapeTests {
    @Test func layersRejectReshapedParameters() throws {
        var rng = SeededGenerator(seed: 5)
        let x = Matrix<Double>.randomNormal(rows: 3, columns: 4, using: &rng)
        let layers: [any InvertibleLayer<Double>] = [
            try Diagonal<Double>(features: 4),
            try Bias<Double>(features: 4),
            try PReLU<Double>(features: 4),
            try Baird<Double>(features: 4),
            try AffineCoupling<Double>(features: 4, hiddenSizes: [8], using: &rng),
            try InvertibleLinear<Double>(features: 4, using: &rng),
            try Householder<Double>(features: 4, using: &rng),
        ]
        for layer in layers {
            let y = try layer.forward(x).output
            let parameter = try #require(layer.parameters.first)
            parameter.value = Matrix(rows: 1, columns: 1)
            #expect(throws: InvertNNError.self, "\(layer.name) forward") { try layer.forward(x) }
            #expect(throws: InvertNNError.self, "\(layer.name) inverse") { try layer.inverse(y) }
            #expect(throws: InvertNNError.self, "\(layer.name) backward") {
                try layer.forwardBackward(input: x, output: y, outputGradient: y, logAbsDetGradient: [0, 0, 0])
            }
        }
    }

    @Test func adamRejectsReshapedGradients() throws {
        let layer = try Diagonal<Double>(features: 3)
        let adam = try Adam<Double>(parameters: layer.parameters)
        layer.logScale.gradient = Matrix(rows: 2, columns: 7)
        #expect(throws: InvertNNError.self) { try adam.update() }
    }
}
