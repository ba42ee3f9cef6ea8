/// A layer whose conditioner reads the conditioning context `c` `[batch, contextFeatures]` of a
/// conditional flow (``LayerContext/conditioning``).
///
/// Containers report the widths of the conditional layers they hold, so a
/// ``NormalizingFlow`` can check at construction that every conditioner expects the width its
/// ``ContextEncoder`` produces. A layer that is not a `ConditionalLayer` ignores the context.
public protocol ConditionalLayer<Element>: InvertibleLayer {
    /// The context widths of this layer and the layers it holds (empty: unconditional).
    var contextWidths: Set<Int> { get }
}

extension Coupling: ConditionalLayer {
    public var contextWidths: Set<Int> { contextFeatures > 0 ? [contextFeatures] : [] }
}

extension Sequential: ConditionalLayer {
    public var contextWidths: Set<Int> {
        layers.reduce(into: Set<Int>()) { widths, layer in
            if let conditional = layer as? any ConditionalLayer<T> { widths.formUnion(conditional.contextWidths) }
        }
    }
}

extension Inverted: ConditionalLayer {
    public var contextWidths: Set<Int> { (base as? any ConditionalLayer<T>)?.contextWidths ?? [] }
}
