import RealModule

/// What a pass of a flow carries from layer to layer besides the batch: named side inputs and
/// side outputs, their gradients, and the caller's noise generator. Every method of
/// ``InvertibleLayer`` takes it `inout`; layers that need none of it ignore it.
///
/// This replaces the original invertnn's global inference context: a layer that concatenates a
/// side input reads it here in the forward direction and, in the inverse direction, writes the
/// split-off part back under the same name (the restored side output). Backward passes add
/// `dL/d(side value)` into ``gradients``. Layers that draw noise in the forward direction take
/// it from ``values`` if present (so `forward(inverse(y))` reproduces `y` exactly) and otherwise
/// draw it from ``generator``, which the caller owns and seeds.
///
/// - Shapes: every value is `[batch, width]` with the batch of the pass.
public struct LayerContext<T: Scalar>: Sendable {
    /// Side inputs (read by forward) and restored side outputs (written by inverse), by name.
    public var values: [String: Matrix<T>]
    /// `dL/d(values[name])`, accumulated by backward passes, by name.
    public var gradients: [String: Matrix<T>]
    /// The caller-owned generator for layers that draw noise; `nil` if none was given.
    public var generator: SeededGenerator?
    /// The conditioning input `c` of a conditional flow, `[batch, contextFeatures]` (after the
    /// flow's embedding network, if any), read by every conditioner; `nil` for an unconditional pass.
    public var conditioning: Matrix<T>?
    /// `dL/dc`, `[batch, contextFeatures]`, accumulated by the backward passes of the layers that
    /// read ``conditioning``; `nil` until one does.
    public var conditioningGradient: Matrix<T>?
    /// The step's buffers, lent by the container running the pass (``Sequential``'s taped passes
    /// and their backward, or a pool emptied after each layer of its untaped passes and
    /// rebuilding mode); `nil` makes every layer allocate what it returns and keep nothing.
    /// See ``StepBuffers``.
    public var buffers: StepBuffers<T>?

    /// Side channels holding `values`, with an optional noise generator.
    public init(_ values: [String: Matrix<T>] = [:], generator: SeededGenerator? = nil) {
        self.values = values
        self.gradients = [:]
        self.generator = generator
    }

    /// A context holding the conditioning input `c` `[batch, contextFeatures]` of a conditional pass.
    public init(conditioning: Matrix<T>?) {
        self.init()
        self.conditioning = conditioning
    }

    /// The conditioning input checked to be `[rows, columns]`, or `nil` when `columns == 0`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if a conditional layer gets
    ///   no context; ``InvertNNError/shapeMismatch(operation:expected:actual:)`` for a context of
    ///   another batch or width.
    public func requireConditioning(rows: Int, columns: Int, layer: @autoclosure () -> String) throws -> Matrix<T>? {
        guard columns > 0 else { return nil }
        guard let c = conditioning else {
            throw InvertNNError.invalidArgument(
                operation: layer(), reason: "this layer is conditional and needs a context [\(rows), \(columns)]; none was given")
        }
        guard c.rows == rows, c.columns == columns else {
            throw InvertNNError.shapeMismatch(
                operation: "\(layer()) context", expected: "[\(rows), \(columns)]", actual: "[\(c.rows), \(c.columns)]")
        }
        return c
    }

    /// Adds `gradient` `[batch, contextFeatures]` into ``conditioningGradient``.
    public mutating func accumulateConditioningGradient(_ gradient: Matrix<T>) {
        guard var sum = conditioningGradient, sum.rows == gradient.rows, sum.columns == gradient.columns else {
            conditioningGradient = gradient
            return
        }
        conditioningGradient = nil  // drop the stored reference: the sum below is in place
        sum.storage.withUnsafeMutableBufferPointer { s in
            gradient.storage.withUnsafeBufferPointer { g in
                for i in 0..<s.count { s[i] += g[i] }
            }
        }
        conditioningGradient = sum
    }

    /// The value named `name`, if present.
    public subscript(name: String) -> Matrix<T>? {
        get { values[name] }
        set { values[name] = newValue }
    }

    /// The value named `name`, checked to be `[rows, columns]`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if it is missing;
    ///   ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if its shape differs.
    public func require(_ name: String, rows: Int, columns: Int, layer: String) throws -> Matrix<T> {
        guard let value = values[name] else {
            throw InvertNNError.invalidArgument(
                operation: layer, reason: "side input '\(name)' [\(rows), \(columns)] is missing from the side channels")
        }
        guard value.rows == rows, value.columns == columns else {
            throw InvertNNError.shapeMismatch(
                operation: "\(layer) side input '\(name)'", expected: "[\(rows), \(columns)]",
                actual: "[\(value.rows), \(value.columns)]")
        }
        return value
    }

    /// Adds `gradient` into ``gradients``[`name`].
    public mutating func accumulateGradient(_ name: String, _ gradient: Matrix<T>) {
        if let existing = gradients[name], existing.rows == gradient.rows, existing.columns == gradient.columns {
            gradients[name] = nil  // drop the dictionary's reference: the sum below is in place
            var sum = existing
            sum.storage.withUnsafeMutableBufferPointer { s in
                gradient.storage.withUnsafeBufferPointer { g in
                    for i in 0..<s.count { s[i] += g[i] }
                }
            }
            gradients[name] = sum
        } else {
            gradients[name] = gradient
        }
    }

    /// The same channels converted to another precision (the generator is kept; the buffers,
    /// of this precision, are not).
    public func converted<U: Scalar>(to _: U.Type = U.self) -> LayerContext<U> {
        var out = LayerContext<U>(values.mapValues { $0.converted(to: U.self) }, generator: generator)
        out.gradients = gradients.mapValues { $0.converted(to: U.self) }
        out.conditioning = conditioning?.converted(to: U.self)
        out.conditioningGradient = conditioningGradient?.converted(to: U.self)
        return out
    }
}

/// The former name of ``LayerContext``.
@available(*, deprecated, renamed: "LayerContext")
public typealias SideChannels<T: Scalar> = LayerContext<T>
