import RealModule

/// A coupling layer on NCHW images whose conditioner is a small convolutional network
/// (``ConvNet``): RealNVP's image coupling (Dinh et al. 2017, §3.4) and Glow's (Kingma &
/// Dhariwal 2018, §3.3), with any ``CouplingTransformer``.
///
/// The image `x` `[C, H, W]` splits by an ``ImageMask`` into a conditioning part `x_a` and a
/// transformed part `x_b` (`M` entries); the conditioner maps the conditioning part, as an image,
/// to `P` parameters per transformed entry, and the transformer maps each transformed entry:
///
///     h   = ConvNet(x_a)                          [batch, P·C_h·H·W]  (P = transformer.parametersPerFeature)
///     y_a = x_a,   y_b[j] = τ(x_b[j]; h[·, j])    log|det ∂y/∂x| = Σ_j log|τ'(x_b[j])|
///
/// - ``ImageMask/channels``: `x_a` is the `d` conditioning channels (`d = ⌊C/2⌋` for the first
///   block), the conditioner maps `d → P·(C - d)` channels, and transformed channel `c`, pixel
///   `q` reads parameter `p` from output channel `p·(C - d) + c`.
/// - ``ImageMask/checkerboard``: the conditioner reads all `C` channels with the transformed
///   pixels set to 0 and maps them to `P·C` channels; transformed entry `(c, q)` reads parameter
///   `p` from output channel `p·C + c` (the outputs at conditioning pixels are unused).
/// - Context (class-conditional images): with `contextFeatures = K > 0` the
///   layer models a conditional bijection `y = f(x; c)` with `c` `[batch, K]` read from
///   ``LayerContext/conditioning``. Each context feature enters the conditioner as one more
///   input channel, constant over the image (`c[row, k]` at every pixel, zero-padded at the border
///   like every channel), so the first convolution learns a per-class bias map; the backward
///   passes add `dL/dc[row, k]`, the sum over pixels of the conditioner's input gradient on
///   channel `k`, into ``LayerContext/conditioningGradient``. Chosen over a per-channel bias from
///   a linear map of `c` because it needs no second parameter path: the conditioner's own
///   hand-written backward gives the context gradient.
/// - Shapes: `x`, `y` `[batch, C·H·W]` (NCHW flattened); log-dets `[batch]` in nats.
/// - Parameters: the conditioner's (`conv<k>.weight`, `conv<k>.bias`); the last convolution
///   starts at zero, so an affine or additive coupling starts as the identity.
/// - Backward passes recompute the conditioner from the layer input unless a taped call retained
///   its trace (``RetainingLayer``), then run the transformer's block VJP and the conditioner's
///   hand-written backward, whose input gradient is added to the conditioning entries.
/// - Throws: ``InvertNNError/outOfDomain(layer:value:row:column:domain:)`` when an inverse input
///   lies outside the transformer's inverse domain; shape errors as every layer.
public final class ConvCoupling<Transformer: CouplingTransformer>: RetainingLayer, RebuildableLayer {
    public typealias Element = Transformer.Element
    public typealias T = Transformer.Element

    /// `C`.
    public let channels: Int
    /// `H`.
    public let height: Int
    /// `W`.
    public let width: Int
    /// The split of the image.
    public let mask: ImageMask
    /// Which block of the mask conditions the other.
    public let conditioningBlock: CouplingBlock
    /// The per-entry bijection.
    public let transformer: Transformer
    /// The conditioner, `[batch, (C_a + K)·H·W] → [batch, P·C_h·H·W]`.
    public let conditioner: ConvNet<T>
    /// `K`, the width of the conditioning context (0: unconditional).
    public let contextFeatures: Int

    /// Per conditioner-input entry, the position in a sample it copies, or -1 for a zero.
    let conditionerSource: [Int]
    /// The positions (in a sample, `0..<C·H·W`) of the transformed entries, ascending.
    let transformedPositions: [Int]
    /// Per transformed entry, its position within one parameter's plane of the conditioner output.
    let parameterPositions: [Int]
    /// Entries of one parameter's plane, `C_h·H·W`.
    let parameterPlane: Int
    /// Whether the transformed entries are one run and read the parameter planes in order (the
    /// channel mask): then the transformer works on the batch and the conditioner output in place.
    let isContiguous: Bool

    /// The conditioner trace kept by a retaining call (see ``Coupling``).
    struct Retained {
        let isForward: Bool
        let input: [T]
        let context: [T]
        let trace: ConvNet<T>.Trace
        let versions: [UInt64]
    }
    var retained: Retained?

    /// A convolutional coupling with a new conditioner (He-initialized hidden convolutions, a
    /// zero last convolution).
    ///
    /// - Parameters:
    ///   - channels: `C` of the image shape `C × H × W`, ≥ 1.
    ///   - height: `H`, ≥ 1.
    ///   - width: `W`, ≥ 1.
    ///   - transformer: the per-entry bijection.
    ///   - hiddenChannels: the conditioner's hidden widths (Glow: `[512, 512]`; empty: one 3×3
    ///     convolution).
    ///   - mask: channel-wise (needs `C ≥ 2`) or checkerboard (needs `H·W ≥ 2`).
    ///   - conditioningBlock: which block of the mask conditions (alternate it in a flow).
    ///   - contextFeatures: `K`, the width of the conditioning context (default 0: unconditional).
    ///   - generator: the caller-owned source of randomness.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for sizes the mask cannot
    ///   split or beyond the BLAS index limit (2³¹ − 1 elements per matrix).
    public init(
        channels: Int, height: Int, width: Int, transformer: Transformer, hiddenChannels: [Int],
        mask: ImageMask = .channels, conditioningBlock: CouplingBlock = .first, contextFeatures: Int = 0,
        using generator: inout some RandomNumberGenerator
    ) throws {
        let operation = "Conv" + Transformer.couplingTypeName
        guard channels >= 1, height >= 1, width >= 1, hiddenChannels.allSatisfy({ $0 >= 1 }), contextFeatures >= 0 else {
            throw InvertNNError.invalidArgument(
                operation: operation,
                reason: "channels, height, width and hidden widths must be ≥ 1 and the context width ≥ 0, got "
                    + "\(channels)×\(height)×\(width), \(hiddenChannels), \(contextFeatures)")
        }
        if contextFeatures > 0 { try SizeLimits.features(contextFeatures, operation: operation) }
        let pixels = try SizeLimits.product([height, width], operation: operation, what: "H·W")
        let features = try SizeLimits.product([channels, pixels], operation: operation, what: "C·H·W")
        let p = transformer.parametersPerFeature
        var source = [Int](), transformed = [Int](), parameterPositions = [Int]()
        let conditionerIn: Int, conditionerOut: Int
        switch mask {
        case .channels:
            guard channels >= 2 else {
                throw InvertNNError.invalidArgument(operation: operation, reason: "a channel mask needs ≥ 2 channels, got \(channels)")
            }
            let d = channels / 2
            let a = conditioningBlock == .first ? 0..<d : d..<channels
            let b = conditioningBlock == .first ? d..<channels : 0..<d
            source = Array((a.lowerBound * pixels)..<(a.upperBound * pixels))
            transformed = Array((b.lowerBound * pixels)..<(b.upperBound * pixels))
            parameterPositions = Array(0..<transformed.count)
            conditionerIn = a.count
            conditionerOut = p * b.count
        case .checkerboard:
            guard pixels >= 2 else {
                throw InvertNNError.invalidArgument(operation: operation, reason: "a checkerboard mask needs ≥ 2 pixels, got \(height)×\(width)")
            }
            let conditioningParity = conditioningBlock == .first ? 0 : 1
            source = [Int](repeating: -1, count: features)
            for c in 0..<channels {
                for h in 0..<height {
                    for w in 0..<width {
                        let i = c * pixels + h * width + w
                        if (h + w) % 2 == conditioningParity { source[i] = i } else { transformed.append(i) }
                    }
                }
            }
            parameterPositions = transformed
            conditionerIn = channels
            conditionerOut = p * channels
        }
        _ = try SizeLimits.product([conditionerOut, pixels], operation: operation, what: "the conditioner output")
        self.conditioner = try ConvNet<T>(
            inputChannels: conditionerIn + contextFeatures, hiddenChannels: hiddenChannels, outputChannels: conditionerOut,
            height: height, width: width, using: &generator)
        self.channels = channels
        self.height = height
        self.width = width
        self.mask = mask
        self.conditioningBlock = conditioningBlock
        self.contextFeatures = contextFeatures
        self.transformer = transformer
        self.conditionerSource = source
        self.transformedPositions = transformed
        self.parameterPositions = parameterPositions
        self.parameterPlane = conditionerOut / p * pixels
        self.isContiguous = mask == .channels
    }

    /// `"Conv"` + the transformer's coupling name (`"ConvAffineCoupling"`).
    public static var typeName: String { "Conv" + Transformer.couplingTypeName }
    public var name: String {
        "\(Self.typeName)(\(channels)×\(height)×\(width), \(mask.rawValue) \(conditioningBlock.rawValue) conditions, \(transformer.name)"
            + (contextFeatures > 0 ? ", context \(contextFeatures))" : ")")
    }
    public var inputFeatures: Int { channels * height * width }
    public var outputFeatures: Int { inputFeatures }
    public var parameters: [Parameter<T>] { conditioner.parameters }

    public func releaseRetained() { retained = nil }

    // MARK: - Directions

    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    public func forward(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try run(x, isForward: true, retain: false, context: &context)
    }

    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    public func inverse(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try run(y, isForward: false, retain: false, context: &context)
    }

    public func forwardRetaining(_ x: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try run(x, isForward: true, retain: true, context: &context)
    }

    public func inverseRetaining(_ y: Matrix<T>, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try run(y, isForward: false, retain: true, context: &context)
    }

    private func run(_ input: Matrix<T>, isForward: Bool, retain: Bool, context: inout LayerContext<T>) throws -> LayerOutput<T> {
        try input.requireColumns(inputFeatures, "\(name).\(isForward ? "forward" : "inverse")")
        let c = try context.requireConditioning(rows: input.rows, columns: contextFeatures, layer: name)
        let workspace = context.buffers(for: self)
        guard retain else {
            retained = nil
            let h = try conditionerOutput(input, context: c, pool: context.buffers)
            return try apply(input, conditionerOutput: h, isForward: isForward, workspace: workspace)
        }
        let trace = try conditioner.forward(conditionerInput(input, context: c, workspace: workspace), buffers: context.buffers)
        let result = try apply(input, conditionerOutput: trace.output, isForward: isForward, workspace: workspace)
        retained = Retained(isForward: isForward, input: input.storage, context: c?.storage ?? [], trace: trace,
                            versions: parameters.map(\.version))
        return result
    }

    /// Rows per conditioner call of an untaped pass: the patch matrices of a large evaluation
    /// batch (600 rows of 4×14×14 at width 64: 270 MB for the last 3×3 convolution) would
    /// otherwise be allocated and streamed through memory whole.
    public static var untapedChunkRows: Int { 128 }

    /// The conditioner output `[rows, P·C_h·H·W]` without a trace, in chunks of ``untapedChunkRows``
    /// rows, with the buffers of a single chunk borrowed from `pool`.
    private func conditionerOutput(_ input: Matrix<T>, context c: Matrix<T>?, pool: StepBuffers<T>?) throws -> Matrix<T> {
        let chunk = Self.untapedChunkRows
        let workspace = LayerBuffers(pool, owner: self)
        guard input.rows > chunk else {
            return try conditioner.forward(conditionerInput(input, context: c, workspace: workspace), buffers: pool).output
        }
        var h = Matrix<T>(rows: input.rows, columns: conditioner.outputFeatures)
        var start = 0
        while start < input.rows {
            let end = Swift.min(start + chunk, input.rows)
            let part = try conditioner.forward(
                conditionerInput(input.rows(start..<end), context: c?.rows(start..<end), workspace: LayerBuffers(nil, owner: self))).output
            h.storage.withUnsafeMutableBufferPointer { dst in
                part.storage.withUnsafeBufferPointer { src in
                    (dst.baseAddress! + start * h.columns).update(from: src.baseAddress!, count: src.count)
                }
            }
            start = end
        }
        return h
    }

    /// The conditioner's input `[rows, (C_a + K)·H·W]`: the conditioning entries (zeros
    /// elsewhere), then each context feature as a constant channel; in a buffer of `workspace`.
    private func conditionerInput(_ x: Matrix<T>, context c: Matrix<T>?, workspace: LayerBuffers<T>) -> Matrix<T> {
        let rows = x.rows, d = inputFeatures, n = conditionerSource.count, pixels = height * width, k = contextFeatures
        let total = n + k * pixels
        var out = workspace.matrix(ConvCouplingSlot.conditionerInput, rows: rows, columns: total)
        x.storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                conditionerSource.withUnsafeBufferPointer { s in
                    for r in 0..<rows {
                        let from = r * d, to = r * total
                        for i in 0..<n { dst[to + i] = s[i] >= 0 ? src[from + s[i]] : 0 }
                        guard let c, k > 0 else { continue }
                        for j in 0..<k {
                            let value = c[r, j], start = to + n + j * pixels
                            for q in 0..<pixels { dst[start + q] = value }
                        }
                    }
                }
            }
        }
        workspace.keep(ConvCouplingSlot.conditionerInput, out)
        return out
    }

    /// Copies the transformed entries of `source` `[rows, C·H·W]` into `[rows, M]` (`scatter`
    /// false) or back (`scatter` true).
    private func moveTransformed(_ batch: UnsafeMutablePointer<T>, _ packed: UnsafeMutablePointer<T>, rows: Int, scatter: Bool) {
        let d = inputFeatures, m = transformedPositions.count
        transformedPositions.withUnsafeBufferPointer { positions in
            for r in 0..<rows {
                for k in 0..<m {
                    if scatter { batch[r * d + positions[k]] = packed[r * m + k] } else { packed[r * m + k] = batch[r * d + positions[k]] }
                }
            }
        }
    }

    /// Gathers the parameters of the transformed entries, `[rows, P·M]` from `h`
    /// `[rows, P·plane]`, or (`scatter`) writes them back, leaving the other entries untouched.
    private func moveParameters(_ h: UnsafeMutablePointer<T>, _ packed: UnsafeMutablePointer<T>, rows: Int, scatter: Bool) {
        let p = transformer.parametersPerFeature, m = parameterPositions.count, plane = parameterPlane
        parameterPositions.withUnsafeBufferPointer { positions in
            for r in 0..<rows {
                for q in 0..<p {
                    let hp = r * p * plane + q * plane, pp = r * p * m + q * m
                    for k in 0..<m {
                        if scatter { h[hp + positions[k]] = packed[pp + k] } else { packed[pp + k] = h[hp + positions[k]] }
                    }
                }
            }
        }
    }

    /// One direction given the conditioner output `h`, with the output and packing buffers
    /// borrowed from `workspace`.
    private func apply(
        _ input: Matrix<T>, conditionerOutput h: Matrix<T>, isForward: Bool, workspace: LayerBuffers<T>
    ) throws -> LayerOutput<T> {
        let outputSlot = isForward ? ConvCouplingSlot.output : ConvCouplingSlot.inverseOutput
        var out = workspace.copy(outputSlot, of: input)
        defer { workspace.keep(outputSlot, out) }
        var logDet = [T](repeating: 0, count: input.rows)
        let rows = input.rows, m = transformedPositions.count, p = transformer.parametersPerFeature
        let failure: (row: Int, feature: Int, value: T)?
        if isContiguous {
            let block = TransformedBlock(rows: rows, features: m, rowStride: inputFeatures, offset: transformedPositions[0])
            failure = h.storage.withUnsafeBufferPointer { hp in
                out.storage.withUnsafeMutableBufferPointer { op in
                    logDet.withUnsafeMutableBufferPointer { lp in
                        transformer.apply(op.baseAddress!, block: block, parameters: hp.baseAddress!, logAbsDet: lp.baseAddress!,
                                          inverse: !isForward)
                    }
                }
            }
        } else {
            var packed = workspace.take(ConvCouplingSlot.packed, count: rows * m)
            var parameters = workspace.take(ConvCouplingSlot.packedParameters, count: rows * p * m)
            failure = out.storage.withUnsafeMutableBufferPointer { op in
                h.storage.withUnsafeBufferPointer { hp in
                    packed.withUnsafeMutableBufferPointer { xp in
                        parameters.withUnsafeMutableBufferPointer { pp in
                            logDet.withUnsafeMutableBufferPointer { lp in
                                moveTransformed(op.baseAddress!, xp.baseAddress!, rows: rows, scatter: false)
                                // A gather only reads `h`.
                                moveParameters(UnsafeMutablePointer(mutating: hp.baseAddress!), pp.baseAddress!, rows: rows, scatter: false)
                                let failure = transformer.apply(
                                    xp.baseAddress!, block: TransformedBlock(rows: rows, features: m, rowStride: m, offset: 0),
                                    parameters: UnsafePointer(pp.baseAddress!), logAbsDet: lp.baseAddress!, inverse: !isForward)
                                moveTransformed(op.baseAddress!, xp.baseAddress!, rows: rows, scatter: true)
                                return failure
                            }
                        }
                    }
                }
            }
            workspace.keep(ConvCouplingSlot.packed, packed)
            workspace.keep(ConvCouplingSlot.packedParameters, parameters)
        }
        if let failure {
            throw InvertNNError.outOfDomain(
                layer: "\(name).\(isForward ? "forward" : "inverse")", value: Double(failure.value), row: failure.row,
                column: transformedPositions[failure.feature], domain: "the transformer's inverse domain")
        }
        return LayerOutput(output: out, logAbsDet: logDet)
    }

    // MARK: - Backward

    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    public func forwardBackward(
        input x: Matrix<T>, output y: Matrix<T>, outputGradient dy: Matrix<T>, logAbsDetGradient dld: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("forwardBackward", input: x, inFeatures: inputFeatures, output: y, outFeatures: outputFeatures,
                             outputGradient: dy, logAbsDetGradient: dld)
        return try backward(input: x, outputGradient: dy, logAbsDetGradient: dld, isForward: true, context: &context)
    }

    @_specialize(where Transformer == AffineTransformer<Float>)
    @_specialize(where Transformer == AffineTransformer<Double>)
    public func inverseBackward(
        input y: Matrix<T>, output x: Matrix<T>, outputGradient dx: Matrix<T>, logAbsDetGradient dld: [T],
        context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        try validateBackward("inverseBackward", input: y, inFeatures: inputFeatures, output: x, outFeatures: outputFeatures,
                             outputGradient: dx, logAbsDetGradient: dld)
        return try backward(input: y, outputGradient: dx, logAbsDetGradient: dld, isForward: false, context: &context)
    }

    /// The retained conditioner trace if it was taken in this direction at this input with the
    /// current parameters, else a recomputed one (in buffers borrowed from `pool`); the retained
    /// state is released either way.
    private func trace(
        for input: Matrix<T>, context c: Matrix<T>?, isForward: Bool, pool: StepBuffers<T>?
    ) throws -> ConvNet<T>.Trace {
        defer { retained = nil }
        if let kept = retained, kept.isForward == isForward, kept.input == input.storage, kept.context == c?.storage ?? [],
           kept.versions == parameters.map(\.version) {
            return kept.trace
        }
        return try conditioner.forward(conditionerInput(input, context: c, workspace: LayerBuffers(pool, owner: self)), buffers: pool)
    }

    /// Both VJPs: the transformer's block backward, then the conditioner's backward added into
    /// the conditioning entries.
    private func backward(
        input: Matrix<T>, outputGradient: Matrix<T>, logAbsDetGradient dld: [T], isForward: Bool, context: inout LayerContext<T>
    ) throws -> Matrix<T> {
        let c = try context.requireConditioning(rows: input.rows, columns: contextFeatures, layer: name)
        let trace = try trace(for: input, context: c, isForward: isForward, pool: context.buffers)
        let workspace = context.buffers(for: self)
        let h = trace.output
        let rows = input.rows, m = transformedPositions.count, p = transformer.parametersPerFeature
        var gradient = workspace.copy(ConvCouplingSlot.inputGradient, of: outputGradient)
        var dh = workspace.matrix(ConvCouplingSlot.conditionerGradient, rows: rows, columns: h.columns)
        if isContiguous {
            let block = TransformedBlock(rows: rows, features: m, rowStride: inputFeatures, offset: transformedPositions[0])
            input.storage.withUnsafeBufferPointer { ip in
                h.storage.withUnsafeBufferPointer { hp in
                    gradient.storage.withUnsafeMutableBufferPointer { gp in
                        dh.storage.withUnsafeMutableBufferPointer { dhp in
                            dld.withUnsafeBufferPointer { lp in
                                transformer.backward(
                                    input: ip.baseAddress!, block: block, parameters: hp.baseAddress!, gradient: gp.baseAddress!,
                                    logAbsDetGradient: lp.baseAddress!, parameterGradient: dhp.baseAddress!, inverse: !isForward)
                            }
                        }
                    }
                }
            }
        } else {
            var packedInput = [T](repeating: 0, count: rows * m), packedGradient = [T](repeating: 0, count: rows * m)
            var parameters = [T](repeating: 0, count: rows * p * m), parameterGradient = [T](repeating: 0, count: rows * p * m)
            input.storage.withUnsafeBufferPointer { ip in
                h.storage.withUnsafeBufferPointer { hp in
                    gradient.storage.withUnsafeMutableBufferPointer { gp in
                        dh.storage.withUnsafeMutableBufferPointer { dhp in
                            packedInput.withUnsafeMutableBufferPointer { xp in
                                packedGradient.withUnsafeMutableBufferPointer { gpp in
                                    parameters.withUnsafeMutableBufferPointer { pp in
                                        parameterGradient.withUnsafeMutableBufferPointer { dpp in
                                            dld.withUnsafeBufferPointer { lp in
                                                // Gathers only read the input and `h`.
                                                moveTransformed(UnsafeMutablePointer(mutating: ip.baseAddress!), xp.baseAddress!, rows: rows, scatter: false)
                                                moveTransformed(gp.baseAddress!, gpp.baseAddress!, rows: rows, scatter: false)
                                                moveParameters(UnsafeMutablePointer(mutating: hp.baseAddress!), pp.baseAddress!, rows: rows, scatter: false)
                                                transformer.backward(
                                                    input: xp.baseAddress!, block: TransformedBlock(rows: rows, features: m, rowStride: m, offset: 0),
                                                    parameters: pp.baseAddress!, gradient: gpp.baseAddress!,
                                                    logAbsDetGradient: lp.baseAddress!, parameterGradient: dpp.baseAddress!,
                                                    inverse: !isForward)
                                                moveTransformed(gp.baseAddress!, gpp.baseAddress!, rows: rows, scatter: true)
                                                dhp.update(repeating: 0)
                                                moveParameters(dhp.baseAddress!, dpp.baseAddress!, rows: rows, scatter: true)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        workspace.keep(ConvCouplingSlot.conditionerGradient, dh)
        let da = try conditioner.backward(trace, outputGradient: dh, buffers: context.buffers)
        let d = inputFeatures, n = conditionerSource.count, total = da.columns, pixels = height * width, k = contextFeatures
        var dc = Matrix<T>(rows: k > 0 ? rows : 0, columns: k)
        da.storage.withUnsafeBufferPointer { ap in
            gradient.storage.withUnsafeMutableBufferPointer { gp in
                conditionerSource.withUnsafeBufferPointer { s in
                    for r in 0..<rows {
                        for i in 0..<n where s[i] >= 0 { gp[r * d + s[i]] += ap[r * total + i] }
                    }
                }
            }
            // A constant channel's gradient is the sum of its pixels' gradients.
            dc.storage.withUnsafeMutableBufferPointer { cp in
                for r in 0..<dc.rows {
                    for j in 0..<k {
                        let start = r * total + n + j * pixels
                        var sum: T = 0
                        for q in 0..<pixels { sum += ap[start + q] }
                        cp[r * k + j] = sum
                    }
                }
            }
        }
        if k > 0 { context.accumulateConditioningGradient(dc) }
        workspace.keep(ConvCouplingSlot.inputGradient, gradient)
        return gradient
    }

    // MARK: - Configuration

    /// The hyper-parameters: the image shape, the mask, the conditioning block, the conditioner's
    /// hidden widths and the transformer's own fields, all in one object.
    public struct Configuration: Codable, Sendable {
        /// `C`.
        public var channels: Int
        /// `H`.
        public var height: Int
        /// `W`.
        public var width: Int
        /// The split of the image.
        public var mask: ImageMask
        /// Which block conditions the other.
        public var conditioningBlock: CouplingBlock
        /// The conditioner's hidden widths.
        public var hiddenChannels: [Int]
        /// The context width `K`; `nil` (absent from the file) for 0.
        public var contextFeatures: Int?
        /// The transformer's hyper-parameters.
        public var transformer: Transformer.Configuration

        private enum CodingKeys: String, CodingKey {
            case channels, height, width, mask, conditioningBlock, hiddenChannels, contextFeatures
        }

        init(channels: Int, height: Int, width: Int, mask: ImageMask, conditioningBlock: CouplingBlock, hiddenChannels: [Int],
             contextFeatures: Int?, transformer: Transformer.Configuration) {
            self.channels = channels
            self.height = height
            self.width = width
            self.mask = mask
            self.conditioningBlock = conditioningBlock
            self.hiddenChannels = hiddenChannels
            self.contextFeatures = contextFeatures
            self.transformer = transformer
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            channels = try c.decode(Int.self, forKey: .channels)
            height = try c.decode(Int.self, forKey: .height)
            width = try c.decode(Int.self, forKey: .width)
            mask = try c.decode(ImageMask.self, forKey: .mask)
            conditioningBlock = try c.decode(CouplingBlock.self, forKey: .conditioningBlock)
            hiddenChannels = try c.decode([Int].self, forKey: .hiddenChannels)
            contextFeatures = try c.decodeIfPresent(Int.self, forKey: .contextFeatures)
            transformer = try Transformer.Configuration(from: decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(channels, forKey: .channels)
            try c.encode(height, forKey: .height)
            try c.encode(width, forKey: .width)
            try c.encode(mask, forKey: .mask)
            try c.encode(conditioningBlock, forKey: .conditioningBlock)
            try c.encode(hiddenChannels, forKey: .hiddenChannels)
            try c.encodeIfPresent(contextFeatures, forKey: .contextFeatures)
            try transformer.encode(to: encoder)  // the transformer's fields join the coupling's object
        }
    }

    public var configuration: Configuration {
        Configuration(channels: channels, height: height, width: width, mask: mask, conditioningBlock: conditioningBlock,
                      hiddenChannels: conditioner.hiddenChannels, contextFeatures: contextFeatures > 0 ? contextFeatures : nil,
                      transformer: transformer.configuration)
    }

    /// A coupling of the configured shape with placeholder parameters (a checkpoint overwrites them).
    ///
    /// - Throws: as ``init(channels:height:width:transformer:hiddenChannels:mask:conditioningBlock:contextFeatures:using:)``
    ///   and the transformer's configuration initializer.
    public convenience init(configuration c: Configuration) throws {
        var generator = SeededGenerator(seed: 0)
        try self.init(
            channels: c.channels, height: c.height, width: c.width, transformer: try Transformer(configuration: c.transformer),
            hiddenChannels: c.hiddenChannels, mask: c.mask, conditioningBlock: c.conditioningBlock,
            contextFeatures: c.contextFeatures ?? 0, using: &generator)
    }
}

extension ConvCoupling: ConditionalLayer {
    public var contextWidths: Set<Int> { contextFeatures > 0 ? [contextFeatures] : [] }
}

/// A convolutional coupling with the bounded affine transformer (RealNVP, Glow).
public typealias ConvAffineCoupling<T: Scalar> = ConvCoupling<AffineTransformer<T>>
/// A convolutional coupling with the rational-quadratic spline transformer (Durkan et al. 2019).
public typealias ConvSplineCoupling<T: Scalar> = ConvCoupling<RationalQuadraticSpline<T>>

/// The ``LayerBuffers`` slots of ``ConvCoupling``.
enum ConvCouplingSlot {
    static let conditionerInput = 0, output = 1, inverseOutput = 2, packed = 3, packedParameters = 4
    static let inputGradient = 5, conditionerGradient = 6
}
