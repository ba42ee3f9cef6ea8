import RealModule

/// A layer whose directions read or write ``SideChannels`` (side inputs, restored side outputs,
/// given or drawn noise). It implements the channel-taking methods of ``InvertibleLayer``; this
/// protocol supplies the plain ones, which run with empty side channels (so a layer that needs a
/// side input throws ``InvertNNError/invalidArgument(operation:reason:)`` naming it).
public protocol SideChannelLayer: InvertibleLayer {}

extension SideChannelLayer {
    public func forward(_ x: Matrix<Element>) throws -> LayerOutput<Element> {
        var channels = SideChannels<Element>()
        return try forward(x, sideChannels: &channels)
    }

    public func inverse(_ y: Matrix<Element>) throws -> LayerOutput<Element> {
        var channels = SideChannels<Element>()
        return try inverse(y, sideChannels: &channels)
    }

    public func forwardBackward(
        input: Matrix<Element>, output: Matrix<Element>, outputGradient: Matrix<Element>, logAbsDetGradient: [Element]
    ) throws -> Matrix<Element> {
        var channels = SideChannels<Element>()
        return try forwardBackward(input: input, output: output, outputGradient: outputGradient,
                                   logAbsDetGradient: logAbsDetGradient, sideChannels: &channels)
    }

    public func inverseBackward(
        input: Matrix<Element>, output: Matrix<Element>, outputGradient: Matrix<Element>, logAbsDetGradient: [Element]
    ) throws -> Matrix<Element> {
        var channels = SideChannels<Element>()
        return try inverseBackward(input: input, output: output, outputGradient: outputGradient,
                                   logAbsDetGradient: logAbsDetGradient, sideChannels: &channels)
    }
}
