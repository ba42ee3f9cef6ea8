import RealModule

/// A layer that can keep, from a taped call, what its next backward call would otherwise
/// recompute (an ``AffineCoupling``'s conditioner activations), trading memory for the
/// recomputation the way a tape trades memory for rebuilding.
///
/// ``Sequential/forwardTaped(_:)`` and ``Sequential/inverseTaped(_:)`` call these instead of
/// ``InvertibleLayer/forward(_:)`` / ``InvertibleLayer/inverse(_:)``; the untaped calls (and so the
/// rebuilding mode, whose activation memory must not grow with depth) never retain anything.
/// The retained state is used by the next backward call of the same direction only if that call's
/// input holds the same values and the parameters were not changed since (checked, not assumed);
/// otherwise the backward recomputes as usual. Either way the backward call releases it.
public protocol RetainingLayer<Element>: InvertibleLayer {
    /// ``InvertibleLayer/forward(_:)``, keeping what ``InvertibleLayer/forwardBackward(input:output:outputGradient:logAbsDetGradient:)`` needs.
    func forwardRetaining(_ x: Matrix<Element>, context: inout LayerContext<Element>) throws -> LayerOutput<Element>
    /// ``InvertibleLayer/inverse(_:)``, keeping what ``InvertibleLayer/inverseBackward(input:output:outputGradient:logAbsDetGradient:)`` needs.
    func inverseRetaining(_ y: Matrix<Element>, context: inout LayerContext<Element>) throws -> LayerOutput<Element>
    /// Drops anything retained (frees its memory).
    func releaseRetained()
}

extension RetainingLayer {
    /// ``forwardRetaining(_:context:)`` with an empty context.
    public func forwardRetaining(_ x: Matrix<Element>) throws -> LayerOutput<Element> {
        var context = LayerContext<Element>()
        return try forwardRetaining(x, context: &context)
    }

    /// ``inverseRetaining(_:context:)`` with an empty context.
    public func inverseRetaining(_ y: Matrix<Element>) throws -> LayerOutput<Element> {
        var context = LayerContext<Element>()
        return try inverseRetaining(y, context: &context)
    }
}
