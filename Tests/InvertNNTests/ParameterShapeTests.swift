import Testing
import InvertNN

/// A parameter's shape is fixed at creation: the throwing setters refuse another shape (naming
/// the parameter and both shapes) and leave the parameter as it was; in-place writes keep the
/// shape and bump the version, so layers see the new values.
@Suite struct ParameterShapeTests {
    @Test func assignRejectsAnotherShapeAndKeepsTheValue() throws {
        let layer = try Diagonal<Double>(features: 3)
        let before = layer.logScale.value
        let version = layer.logScale.version
        #expect(throws: InvertNNError.shapeMismatch(
            operation: "parameter 'logScale' value", expected: "[1, 3]", actual: "[2, 7]")) {
            try layer.logScale.assign(Matrix(rows: 2, columns: 7))
        }
        #expect(throws: InvertNNError.shapeMismatch(
            operation: "parameter 'logScale' value", expected: "[1, 3]", actual: "[3, 1]")) {
            try layer.logScale.assign(Matrix(rows: 3, columns: 1))  // same count, other shape
        }
        #expect(layer.logScale.value == before)
        #expect(layer.logScale.version == version)
        try layer.logScale.assign(Matrix(row: [0.1, 0.2, 0.3]))
        #expect(layer.logScale.value.storage == [0.1, 0.2, 0.3])
        #expect(layer.logScale.version != version)
        #expect(try abs(layer.forward(Matrix(row: [1, 1, 1])).logAbsDet[0] - 0.6) <= 1e-15)
    }

    @Test func assignGradientRejectsAnotherShapeAndKeepsTheGradient() throws {
        let layer = try Bias<Double>(features: 4)
        try layer.bias.assignGradient(Matrix(row: [1, 2, 3, 4]))
        #expect(throws: InvertNNError.shapeMismatch(
            operation: "parameter 'bias' gradient", expected: "[1, 4]", actual: "[1, 5]")) {
            try layer.bias.assignGradient(Matrix(row: [1, 2, 3, 4, 5]))
        }
        #expect(layer.bias.gradient.storage == [1, 2, 3, 4])
        // Adam reads the assigned gradient.
        let adam = try Adam<Double>(parameters: layer.parameters, learningRate: 0.5, epsilon: 0)
        try adam.update()
        #expect(layer.bias.value.storage == [-0.5, -0.5, -0.5, -0.5])
    }

    @Test func inPlaceWritesKeepTheShapeAndBumpTheVersion() throws {
        var rng = SeededGenerator(seed: 5)
        let layer = try Householder<Double>(features: 4, using: &rng)
        let x = Matrix<Double>.randomNormal(rows: 3, columns: 4, using: &rng)
        let y = try layer.forward(x).output
        let shape = layer.reflectors.value.shape, version = layer.reflectors.version
        let count = layer.reflectors.withUnsafeMutableValue { value in
            value[5] += 0.25  // a learnable entry ([1, 1])
            return value.count
        }
        #expect(count == layer.reflectors.count)
        #expect(layer.reflectors.value.shape == shape)
        #expect(layer.reflectors.version != version)
        // The layer's cached plan follows the in-place write.
        #expect(try (layer.forward(x).output - y).maxAbs > 1e-6)

        layer.reflectors.withUnsafeMutableGradient { $0.update(repeating: 2) }
        #expect(layer.reflectors.gradient.shape == shape)
        #expect(layer.reflectors.gradient.storage.allSatisfy { $0 == 2 })
    }

    @Test func matrixInPlaceWritesKeepTheShape() throws {
        var m = Matrix<Double>(rows: 2, columns: 3)
        let copy = m
        m.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = Double(i) } }
        m[1, 2] = 50
        #expect(m.shape == [2, 3] && m.count == 6)
        #expect(m.storage == [0, 1, 2, 3, 4, 50])
        #expect(copy.storage == [0, 0, 0, 0, 0, 0])  // copy on write: the copy is untouched
    }
}
