import RealModule

/// A 2-D convolution (not invertible) on NCHW images, written as one GEMM per batch
/// (im2col / col2im; Chellapilla et al. 2006, "High performance convolutional neural networks
/// for document processing"): a building block of convolutional conditioners, beside ``MLP``.
///
/// `out[b, o, h, w] = bias[o] + Σ_{c, i, j} weight[o, c, i, j] · x[b, c, h + i - p, w + j - p]`,
/// stride 1, zero padding `p = (k - 1)/2` ("same": the output has the input's height and width),
/// for an odd kernel size `k` (3×3 and 1×1 are the cases conditioners use). This is PyTorch's
/// `nn.Conv2d(C_in, C_out, k, padding=p)`, cross-correlation included, with the same weight layout.
///
/// - Shapes: `x` `[batch, C_in·H·W]` → output `[batch, C_out·H·W]`, both NCHW flattened per
///   sample. Parameters `"<name>.weight"` `[C_out, C_in·k·k]` (PyTorch's `[C_out, C_in, k, k]`
///   row-major, entry `(o, c·k² + i·k + j)`) and `"<name>.bias"` `[1, C_out]`.
/// - Cost: forward is `2·C_out·C_in·k²·batch·H·W` flops of GEMM, backward twice that, in one of
///   two forms. With few input channels (`C_in < 8`, or `k = 1`) the patches of the whole batch
///   form one matrix `X̂` `[C_in·k², batch·H·W]` (im2col: contiguous row segments, zeros at the
///   borders); forward is the GEMM `W X̂`, backward the GEMMs `dW += dO X̂ᵀ` and `dX̂ = Wᵀ dO`
///   plus col2im (the adjoint scatter-add). With more input channels the `k²`-fold patch matrix
///   would cost more memory traffic than the GEMMs, so the input is instead copied once into
///   zero-padded planes (`PaddedFrame`) and each kernel position `t` is one GEMM `W_t X_t` over
///   a shifted window of them (`k²` GEMMs with inner dimension `C_in`, computed on the padded
///   pixels too: `(H+2p)(W+2p)/(H·W)` times the flops, border outputs discarded); backward is
///   `dW_t = dO X_tᵀ` and `dX_t += W_tᵀ dO` into the same windows. Then a blockwise copy between
///   the GEMMs' channel-major layout and NCHW. No per-pixel BLAS calls.
///
/// Forward returns a ``Trace`` holding `X̂`, which backward reuses. Besides its parameters the
/// convolution keeps only buffers it reuses from call to call (the step's buffers when a container lends them), as ``MLP`` does.
public final class Conv2D<T: Scalar> {
    /// What ``Conv2D/backward(_:outputGradient:buffers:)`` needs from one forward pass.
    public struct Trace: Sendable {
        /// The batch the convolution was applied to, `[batch, C_in·H·W]`.
        public let input: Matrix<T>
        /// The GEMM operand built from the input (see the type's cost notes): the patch matrix
        /// `X̂` `[C_in·k², batch·H·W]` (row `c·k² + i·k + j`, column `b·H·W + h·W + w` holds
        /// `x[b, c, h + i - p, w + j - p]`, 0 outside the image), or, for a convolution with at
        /// least 8 input channels and `k > 1`, the zero-padded planes `[C_in, batch·(H+2p)·(W+2p)
        /// + 2·(p·(W+2p) + p)]`.
        public let columns: Matrix<T>
        /// The output `[batch, C_out·H·W]` (inside a ``ConvNet``, after its ReLU).
        public let output: Matrix<T>
    }

    /// `C_in`.
    public let inputChannels: Int
    /// `C_out`.
    public let outputChannels: Int
    /// `k`, odd; the padding is `(k - 1)/2`.
    public let kernelSize: Int
    /// `H`, image rows.
    public let height: Int
    /// `W`, image columns.
    public let width: Int
    /// `[C_out, C_in·k·k]`.
    public let weight: Parameter<T>
    /// `[1, C_out]`.
    public let bias: Parameter<T>
    /// `[weight, bias]`.
    public let parameters: [Parameter<T>]

    /// A convolution with He-initialized weights, `weight ~ N(0, gainSquared / (C_in·k²))`
    /// (He et al. 2015: `gainSquared = 2` before a ReLU, `1` before a linear output), and zero
    /// bias; or, with `zeroInitialize`, zero weights (a conditioner's last layer, so the coupling
    /// built on it starts as the identity: Kingma & Dhariwal 2018, §3.3).
    ///
    /// - Parameters:
    ///   - inputChannels: `C_in ≥ 1`.
    ///   - outputChannels: `C_out ≥ 1`.
    ///   - kernelSize: `k`, odd and ≥ 1 (zero padding `k/2` keeps the image size).
    ///   - height: the image height, ≥ 1.
    ///   - width: the image width, ≥ 1.
    ///   - zeroInitialize: start with zero weights (default false).
    ///   - gainSquared: the He gain (default 2, for a ReLU after the convolution).
    ///   - generator: the caller-owned source of randomness.
    ///   - name: prefix of the parameter names (`"<name>.weight"`, `"<name>.bias"`), unique
    ///     within the network that owns the convolution.
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for sizes below 1, an even
    ///   kernel size, a negative or non-finite gain, or sizes beyond the BLAS index limit (2³¹ − 1 elements per matrix).
    public convenience init(
        inputChannels: Int, outputChannels: Int, kernelSize: Int, height: Int, width: Int,
        zeroInitialize: Bool = false, gainSquared: Double = 2, name: String = "conv",
        using generator: inout some RandomNumberGenerator
    ) throws {
        try Self.validate(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize,
                          height: height, width: width)
        guard gainSquared >= 0, gainSquared.isFinite else {
            throw InvertNNError.invalidArgument(operation: "Conv2D", reason: "gainSquared must be finite and ≥ 0, got \(gainSquared)")
        }
        let fanIn = inputChannels * kernelSize * kernelSize
        let w: Matrix<T> = zeroInitialize
            ? Matrix(rows: outputChannels, columns: fanIn)
            : .randomNormal(rows: outputChannels, columns: fanIn,
                            standardDeviation: T((gainSquared / Double(fanIn)).squareRoot()), using: &generator)
        try self.init(weight: w, bias: [T](repeating: 0, count: outputChannels), inputChannels: inputChannels,
                      kernelSize: kernelSize, height: height, width: width, name: name)
    }

    /// A convolution with explicit `weight` `[C_out, C_in·k·k]` and `bias` (`C_out` entries).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for bad sizes (as above),
    ///   a weight whose columns are not `C_in·k²`, a bias of another length, or non-finite values.
    public init(
        weight: Matrix<T>, bias: [T], inputChannels: Int, kernelSize: Int, height: Int, width: Int, name: String = "conv"
    ) throws {
        try Self.validate(inputChannels: inputChannels, outputChannels: weight.rows, kernelSize: kernelSize,
                          height: height, width: width)
        let fanIn = inputChannels * kernelSize * kernelSize
        guard weight.columns == fanIn, bias.count == weight.rows else {
            throw InvertNNError.invalidArgument(
                operation: "Conv2D",
                reason: "weight must be [C_out, \(fanIn)] and bias C_out entries, got \(weight.shape) and \(bias.count)")
        }
        guard weight.firstNonFinite() == nil, bias.allSatisfy({ $0.isFinite }) else {
            throw InvertNNError.invalidArgument(operation: "Conv2D", reason: "weight or bias has a non-finite entry")
        }
        self.inputChannels = inputChannels
        self.outputChannels = weight.rows
        self.kernelSize = kernelSize
        self.height = height
        self.width = width
        self.weight = Parameter(name: "\(name).weight", value: weight)
        self.bias = Parameter(name: "\(name).bias", value: Matrix(row: bias))
        self.parameters = [self.weight, self.bias]
    }

    private static func validate(inputChannels: Int, outputChannels: Int, kernelSize: Int, height: Int, width: Int) throws {
        guard inputChannels >= 1, outputChannels >= 1, height >= 1, width >= 1, kernelSize >= 1, kernelSize % 2 == 1 else {
            throw InvertNNError.invalidArgument(
                operation: "Conv2D",
                reason: "channels \(inputChannels) → \(outputChannels), image \(height)×\(width) must be ≥ 1 and the kernel size \(kernelSize) odd and ≥ 1")
        }
        let pixels = try SizeLimits.product([height, width], operation: "Conv2D", what: "height × width")
        _ = try SizeLimits.product([inputChannels, kernelSize, kernelSize, pixels], operation: "Conv2D", what: "C_in·k²·H·W")
        _ = try SizeLimits.product([outputChannels, inputChannels, kernelSize, kernelSize], operation: "Conv2D", what: "weight")
        _ = try SizeLimits.product([outputChannels, pixels], operation: "Conv2D", what: "C_out·H·W")
    }

    /// `C_in·H·W`.
    public var inputFeatures: Int { inputChannels * height * width }
    /// `C_out·H·W`.
    public var outputFeatures: Int { outputChannels * height * width }
    /// Total number of scalar parameters.
    public var parameterCount: Int { weight.count + bias.count }

    /// Applies the convolution to a batch and keeps what ``backward(_:outputGradient:buffers:)`` needs.
    ///
    /// - Parameters:
    ///   - x: `[batch, C_in·H·W]`, NCHW.
    ///   - buffers: the step's buffers the patches and output are written into (slots in
    ///     `Conv2DSlot`); `nil` allocates them.
    /// - Returns: the ``Trace`` whose `output` is `[batch, C_out·H·W]`.
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` for another column
    ///   count; ``InvertNNError/invalidArgument(operation:reason:)``
    ///   for an empty batch or a batch whose patch matrix exceeds the BLAS index limit (2³¹ − 1 elements per matrix).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func forward(_ x: Matrix<T>, buffers: StepBuffers<T>? = nil) throws -> Trace {
        try forward(x, rectified: false, buffers: buffers)
    }

    /// ``forward(_:buffers:)``, followed by a ReLU when `rectified` (fused into the pass that moves the
    /// GEMM output to NCHW; the trace then holds the rectified output, which
    /// ``backward(_:outputGradient:rectified:buffers:)`` reads as the ReLU's mask).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func forward(_ x: Matrix<T>, rectified: Bool, buffers: StepBuffers<T>?) throws -> Trace {
        try x.requireColumns(inputFeatures, "Conv2D.forward")
        let workspace = LayerBuffers(buffers, owner: self)
        let pixels = height * width
        let total = try SizeLimits.product([x.rows, pixels], operation: "Conv2D.forward", what: "batch·H·W")
        _ = try SizeLimits.product([inputChannels * kernelSize * kernelSize, total], operation: "Conv2D.forward",
                                   what: "the patch matrix C_in·k² × batch·H·W")
        _ = try SizeLimits.product([outputChannels, total], operation: "Conv2D.forward", what: "C_out × batch·H·W")
        guard usesTaps else {
            var columns = workspace.matrix(Conv2DSlot.columns, rows: inputChannels * kernelSize * kernelSize, columns: total)
            patches(of: x, into: &columns)
            var product = workspace.matrix(Conv2DSlot.product, rows: outputChannels, columns: total)
            try BLAS.gemm(weight.value, columns, into: &product)
            var output = workspace.matrix(Conv2DSlot.output, rows: x.rows, columns: outputFeatures)
            Self.moveChannelMajor(product, toImages: &output, channels: outputChannels, pixels: pixels, adding: bias.value.storage,
                                  rectifying: rectified)
            workspace.keep(Conv2DSlot.columns, columns)
            workspace.keep(Conv2DSlot.product, product)
            workspace.keep(Conv2DSlot.output, output)
            return Trace(input: x, columns: columns, output: output)
        }
        let frame = PaddedFrame(batch: x.rows, height: height, width: width, padding: (kernelSize - 1) / 2)
        _ = try SizeLimits.product([max(inputChannels, outputChannels), frame.length], operation: "Conv2D.forward",
                                   what: "the zero-padded planes C × (batch·(H+2p)·(W+2p) + margins)")
        var padded = workspace.matrix(Conv2DSlot.columns, rows: inputChannels, columns: frame.length)
        frame.pad(x, channels: inputChannels, into: &padded)
        var taps = workspace.matrix(Conv2DSlot.taps, rows: kernelSize * kernelSize * outputChannels, columns: inputChannels)
        splitTaps(weight.value, into: &taps)
        var product = workspace.matrix(Conv2DSlot.product, rows: outputChannels, columns: frame.count)
        let tapCount = kernelSize * kernelSize, tapSize = outputChannels * inputChannels
        taps.storage.withUnsafeBufferPointer { pt in
            padded.storage.withUnsafeBufferPointer { px in
                product.withUnsafeMutableBufferPointer { pp in
                    for t in 0..<tapCount {
                        T._gemm(transposeA: false, transposeB: false, m: outputChannels, n: frame.count, k: inputChannels,
                                alpha: 1, a: pt.baseAddress! + t * tapSize, lda: inputChannels,
                                b: px.baseAddress! + frame.offset(tap: t, kernelSize: kernelSize), ldb: frame.length,
                                beta: t == 0 ? 0 : 1, c: pp.baseAddress!, ldc: frame.count)
                    }
                }
            }
        }
        var output = workspace.matrix(Conv2DSlot.output, rows: x.rows, columns: outputFeatures)
        frame.crop(product, channels: outputChannels, into: &output, adding: bias.value.storage, rectifying: rectified)
        workspace.keep(Conv2DSlot.columns, padded)
        workspace.keep(Conv2DSlot.taps, taps)
        workspace.keep(Conv2DSlot.product, product)
        workspace.keep(Conv2DSlot.output, output)
        return Trace(input: x, columns: padded, output: output)
    }

    /// The output alone, `[batch, C_out·H·W]`; see ``forward(_:buffers:)``.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Matrix<T>) throws -> Matrix<T> {
        try forward(x).output
    }

    /// The vector-Jacobian product of ``forward(_:buffers:)``: returns `dL/dx` `[batch, C_in·H·W]` and
    /// *adds* `dL/dW = dO X̂ᵀ` and `dL/db = Σ_{b,h,w} dO` into the parameters' gradients, where
    /// `dO` is `outputGradient` in the channel-major layout `[C_out, batch·H·W]`;
    /// `dL/dx = col2im(Wᵀ dO)`.
    ///
    /// - Parameters:
    ///   - trace: the result of ``forward(_:buffers:)`` with the current parameter values.
    ///   - outputGradient: `dL/d(output)`, `[batch, C_out·H·W]`.
    ///   - buffers: the step's buffers the gradients are written into; `nil` allocates them.
    /// - Throws: ``InvertNNError/shapeMismatch(operation:expected:actual:)`` if the trace is not
    ///   of this convolution's shapes or `outputGradient` does not match its output.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func backward(_ trace: Trace, outputGradient: Matrix<T>, buffers: StepBuffers<T>? = nil) throws -> Matrix<T> {
        try backward(trace, outputGradient: outputGradient, rectified: false, buffers: buffers)
    }

    /// ``backward(_:outputGradient:buffers:)`` of ``forward(_:rectified:buffers:)``: with `rectified`, the
    /// gradient is zero where the trace's (rectified) output is not positive.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func backward(_ trace: Trace, outputGradient: Matrix<T>, rectified: Bool, buffers: StepBuffers<T>?) throws -> Matrix<T> {
        let workspace = LayerBuffers(buffers, owner: self)
        let batch = trace.input.rows, pixels = height * width
        let frame = PaddedFrame(batch: batch, height: height, width: width, padding: (kernelSize - 1) / 2)
        let operandShape = usesTaps ? (inputChannels, frame.length) : (inputChannels * kernelSize * kernelSize, batch * pixels)
        guard trace.input.columns == inputFeatures, trace.output.rows == batch, trace.output.columns == outputFeatures,
              trace.columns.rows == operandShape.0, trace.columns.columns == operandShape.1
        else {
            throw InvertNNError.shapeMismatch(
                operation: "Conv2D.backward", expected: "a trace of [batch, \(inputFeatures)] → [batch, \(outputFeatures)]",
                actual: "input \(trace.input.shape), columns \(trace.columns.shape), output \(trace.output.shape)")
        }
        try outputGradient.requireShape(rows: batch, columns: outputFeatures, "Conv2D.backward outputGradient")
        guard usesTaps else {
            var gradient = workspace.matrix(Conv2DSlot.product, rows: outputChannels, columns: batch * pixels)
            Self.moveImages(outputGradient, toChannelMajor: &gradient, channels: outputChannels, pixels: pixels,
                            passingWhere: rectified ? trace.output : nil, summingInto: &bias.gradient.storage)
            try BLAS.gemm(gradient, trace.columns, transposeB: true, beta: 1, into: &weight.gradient)
            var columnGradient = workspace.matrix(Conv2DSlot.columnGradient, rows: trace.columns.rows, columns: batch * pixels)
            try BLAS.gemm(weight.value, transposeA: true, gradient, into: &columnGradient)
            var inputGradient = workspace.matrix(Conv2DSlot.inputGradient, rows: batch, columns: inputFeatures)
            accumulatePatches(columnGradient, into: &inputGradient)
            workspace.keep(Conv2DSlot.product, gradient)
            workspace.keep(Conv2DSlot.columnGradient, columnGradient)
            workspace.keep(Conv2DSlot.inputGradient, inputGradient)
            return inputGradient
        }
        var gradient = workspace.matrix(Conv2DSlot.product, rows: outputChannels, columns: frame.count)
        frame.embed(outputGradient, channels: outputChannels, into: &gradient, passingWhere: rectified ? trace.output : nil,
                    summingInto: &bias.gradient.storage)
        let tapCount = kernelSize * kernelSize, tapSize = outputChannels * inputChannels
        var taps = workspace.matrix(Conv2DSlot.taps, rows: tapCount * outputChannels, columns: inputChannels)
        splitTaps(weight.value, into: &taps)
        var tapGradients = workspace.matrix(Conv2DSlot.tapGradients, rows: tapCount * outputChannels, columns: inputChannels)
        var paddedGradient = workspace.matrix(Conv2DSlot.columnGradient, rows: inputChannels, columns: frame.length)
        paddedGradient.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        gradient.storage.withUnsafeBufferPointer { pg in
            trace.columns.storage.withUnsafeBufferPointer { px in
                taps.storage.withUnsafeBufferPointer { pt in
                    tapGradients.withUnsafeMutableBufferPointer { pw in
                        paddedGradient.withUnsafeMutableBufferPointer { pd in
                            for t in 0..<tapCount {
                                let offset = frame.offset(tap: t, kernelSize: kernelSize)
                                // dW_t = dO · X_tᵀ over the padded columns (dO is zero on the border).
                                T._gemm(transposeA: false, transposeB: true, m: outputChannels, n: inputChannels, k: frame.count,
                                        alpha: 1, a: pg.baseAddress!, lda: frame.count,
                                        b: px.baseAddress! + offset, ldb: frame.length,
                                        beta: 0, c: pw.baseAddress! + t * tapSize, ldc: inputChannels)
                                // dX_t += W_tᵀ · dO, into the tap's shifted window of the padded planes.
                                T._gemm(transposeA: true, transposeB: false, m: inputChannels, n: frame.count, k: outputChannels,
                                        alpha: 1, a: pt.baseAddress! + t * tapSize, lda: inputChannels,
                                        b: pg.baseAddress!, ldb: frame.count,
                                        beta: 1, c: pd.baseAddress! + offset, ldc: frame.length)
                            }
                        }
                    }
                }
            }
        }
        addTaps(tapGradients, into: &weight.gradient)
        var inputGradient = workspace.matrix(Conv2DSlot.inputGradient, rows: batch, columns: inputFeatures)
        frame.crop(paddedGradient, channels: inputChannels, into: &inputGradient, adding: nil, rectifying: false)
        workspace.keep(Conv2DSlot.product, gradient)
        workspace.keep(Conv2DSlot.taps, taps)
        workspace.keep(Conv2DSlot.tapGradients, tapGradients)
        workspace.keep(Conv2DSlot.columnGradient, paddedGradient)
        workspace.keep(Conv2DSlot.inputGradient, inputGradient)
        return inputGradient
    }

    // MARK: - The tap formulation

    /// Whether this convolution runs as `k²` shifted GEMMs over zero-padded planes rather than one
    /// GEMM over an im2col patch matrix: for wide inputs the patch matrix (`k²` copies of the input)
    /// costs more memory traffic than the GEMMs, while for a few input channels one GEMM with
    /// inner dimension `C_in·k²` runs far faster than `k²` GEMMs with inner dimension `C_in`.
    var usesTaps: Bool { kernelSize > 1 && inputChannels >= Self.tapMinimumInputChannels }

    /// The input width from which ``usesTaps`` holds.
    static var tapMinimumInputChannels: Int { 8 }

    /// `taps[t·C_out + o, c] = weight[o, c·k² + t]`: the `k²` matrices `W_t` `[C_out, C_in]`, one per
    /// kernel position `t = i·k + j`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func splitTaps(_ weight: Matrix<T>, into taps: inout Matrix<T>) {
        let tapCount = kernelSize * kernelSize, co = outputChannels, ci = inputChannels
        weight.storage.withUnsafeBufferPointer { w in
            taps.withUnsafeMutableBufferPointer { out in
                for t in 0..<tapCount {
                    for o in 0..<co {
                        let row = (t * co + o) * ci, source = o * ci * tapCount + t
                        for c in 0..<ci { out[row + c] = w[source + c * tapCount] }
                    }
                }
            }
        }
    }

    /// `gradient[o, c·k² + t] += tapGradients[t·C_out + o, c]`, the adjoint of ``splitTaps(_:into:)``.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func addTaps(_ tapGradients: Matrix<T>, into gradient: inout Matrix<T>) {
        let tapCount = kernelSize * kernelSize, co = outputChannels, ci = inputChannels
        tapGradients.storage.withUnsafeBufferPointer { g in
            gradient.withUnsafeMutableBufferPointer { out in
                for t in 0..<tapCount {
                    for o in 0..<co {
                        let row = (t * co + o) * ci, target = o * ci * tapCount + t
                        for c in 0..<ci { out[target + c * tapCount] += g[row + c] }
                    }
                }
            }
        }
    }

    // MARK: - im2col and col2im

    /// Calls `body(patch, image, valid)` for every (patch row, image, image row) of a batch:
    /// patch-matrix entry `patch + w` reads image entry `image + w` for `w` in `valid` and is
    /// padding (zero) for the other `w` in `0..<W`; `image` is `nil` when the whole source row
    /// is padding. Offsets are into the storage of `[C_in·k², batch·H·W]` and `[batch, C_in·H·W]`.
    @inline(__always)
    private func forEachPatchSegment(batch: Int, _ body: (_ patch: Int, _ image: Int?, _ valid: Range<Int>) -> Void) {
        let k = kernelSize, pad = (k - 1) / 2, pixels = height * width
        for c in 0..<inputChannels {
            for i in 0..<k {
                for j in 0..<k {
                    let rowStart = ((c * k + i) * k + j) * batch * pixels
                    let shift = j - pad
                    // Clamped to 0...W, so a kernel wider than the image gives an empty range.
                    let lower = Swift.min(width, Swift.max(0, -shift))
                    let valid = lower..<Swift.max(lower, Swift.min(width, width - shift))
                    for b in 0..<batch {
                        let plane = b * inputFeatures + c * pixels
                        for h in 0..<height {
                            let sourceRow = h + i - pad
                            let inside = sourceRow >= 0 && sourceRow < height
                            body(rowStart + b * pixels + h * width, inside ? plane + sourceRow * width + shift : nil, valid)
                        }
                    }
                }
            }
        }
    }

    /// im2col: fills `columns` `[C_in·k², batch·H·W]` from `x` (see ``Trace/columns``), one
    /// contiguous row segment per (patch row, image, image row).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func patches(of x: Matrix<T>, into columns: inout Matrix<T>) {
        let w = width
        x.storage.withUnsafeBufferPointer { src in
            columns.storage.withUnsafeMutableBufferPointer { dst in
                let from = src.baseAddress!, to = dst.baseAddress!
                forEachPatchSegment(batch: x.rows) { out, source, valid in
                    guard let source else {
                        (to + out).update(repeating: 0, count: w)
                        return
                    }
                    (to + out).update(repeating: 0, count: valid.lowerBound)
                    (to + out + valid.lowerBound).update(from: from + source + valid.lowerBound, count: valid.count)
                    (to + out + valid.upperBound).update(repeating: 0, count: w - valid.upperBound)
                }
            }
        }
    }

    /// col2im, the adjoint of ``patches(of:into:)``: overwrites `images` `[batch, C_in·H·W]`
    /// with the sum, over the patch entries that read each pixel, of `columns`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func accumulatePatches(_ columns: Matrix<T>, into images: inout Matrix<T>) {
        columns.storage.withUnsafeBufferPointer { src in
            images.storage.withUnsafeMutableBufferPointer { dst in
                dst.update(repeating: 0)
                forEachPatchSegment(batch: images.rows) { from, target, valid in
                    guard let target else { return }
                    let s = src.baseAddress! + from, d = dst.baseAddress! + target
                    for q in valid { d[q] += s[q] }
                }
            }
        }
    }

    /// `images[b, o·P + q] = channelMajor[o, b·P + q] + add[o]` (P pixels per channel), or its
    /// positive part when `rectifying`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func moveChannelMajor(
        _ channelMajor: Matrix<T>, toImages images: inout Matrix<T>, channels: Int, pixels: Int, adding add: [T], rectifying: Bool
    ) {
        let batch = images.rows
        channelMajor.storage.withUnsafeBufferPointer { src in
            images.storage.withUnsafeMutableBufferPointer { dst in
                for o in 0..<channels {
                    let shift = add[o]
                    for b in 0..<batch {
                        let from = o * batch * pixels + b * pixels, to = b * channels * pixels + o * pixels
                        // Offsets applied once per segment: checked index arithmetic inside the
                        // loop would keep it from vectorizing.
                        let s = src.baseAddress! + from, d = dst.baseAddress! + to
                        if rectifying {
                            for q in 0..<pixels {
                                let v = s[q] + shift
                                d[q] = v < 0 ? 0 : v
                            }
                        } else {
                            for q in 0..<pixels { d[q] = s[q] + shift }
                        }
                    }
                }
            }
        }
    }

    /// `channelMajor[o, b·P + q] = images[b, o·P + q]`, adding each channel's sum into `sums[o]`;
    /// with a `mask` (`images`' shape), 0 wherever the mask is not positive (a ReLU's VJP).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func moveImages(
        _ images: Matrix<T>, toChannelMajor channelMajor: inout Matrix<T>, channels: Int, pixels: Int,
        passingWhere mask: Matrix<T>?, summingInto sums: inout [T]
    ) {
        let batch = images.rows
        images.storage.withUnsafeBufferPointer { src in
            (mask ?? images).storage.withUnsafeBufferPointer { m in
                channelMajor.storage.withUnsafeMutableBufferPointer { dst in
                    for o in 0..<channels {
                        for b in 0..<batch {
                            let to = o * batch * pixels + b * pixels, from = b * channels * pixels + o * pixels
                            let s = src.baseAddress! + from, d = dst.baseAddress! + to
                            if mask != nil {
                                let r = m.baseAddress! + from
                                for q in 0..<pixels {
                                    // Both loads unconditional, so this is a select and vectorizes.
                                    let v = s[q], keep = r[q]
                                    d[q] = keep <= 0 ? 0 : v
                                }
                            } else {
                                d.update(from: s, count: pixels)
                            }
                        }
                    }
                }
            }
        }
        channelMajor.addRowSums(into: &sums)
    }
}

/// The ``LayerBuffers`` slots of ``Conv2D``.
enum Conv2DSlot {
    static let columns = 0, product = 1, output = 2, columnGradient = 3, inputGradient = 4, taps = 5, tapGradients = 6
}
