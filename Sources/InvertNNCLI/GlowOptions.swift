import ArgumentParser
import InvertNN

/// The options of `invertnn train --flow glow`: the multi-scale convolutional flow of
/// ``FlowPresets/glow(channels:height:width:levels:steps:hiddenChannels:scaleBound:learnedPrior:context:seed:as:)``.
/// (`--levels` already names the quantization levels of a CSV, so the squeeze levels are `--scales`.)
struct GlowOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Squeeze levels (scales) of --flow glow; the image height and width must be divisible by 2^scales (default: 2, or 1 for the 8×8 digits).")
    var scales: Int?

    @Option(parsing: .unconditional, help: "Flow steps [ActNorm, 1×1 convolution, conv coupling] per scale of --flow glow (default 8).")
    var steps: Int?

    @Option(name: .customLong("conv-width"), parsing: .unconditional, help: "Channels of each convolutional conditioner of --flow glow (default 64).")
    var convWidth: Int?

    /// Rejects the options without `--flow glow` and out-of-range values.
    func validate(family: FlowFamily) throws {
        if family != .glow {
            for (flag, given) in [("--scales", scales != nil), ("--steps", steps != nil), ("--conv-width", convWidth != nil)] where given {
                throw ValidationError("\(flag) applies to --flow glow")
            }
        }
        if let scales, scales < 1 || scales > 10 { throw ValidationError("--scales must be in 1...10, got \(scales)") }
        if let steps, steps < 1 || steps > 1000 { throw ValidationError("--steps must be in 1...1000, got \(steps)") }
        if let convWidth, convWidth < 1 || convWidth > 4096 { throw ValidationError("--conv-width must be in 1...4096, got \(convWidth)") }
    }

    /// The flow for `dataset`'s images (`C = dimensions / (height·width)` channels).
    ///
    /// With `context` (from `--context-columns`) every conv conditioner reads the encoded context.
    ///
    /// - Throws: `ValidationError` for data that are not images or an image size the scales do not divide.
    func flow<T: Scalar>(
        for dataset: LoadedData<T>, scaleBound: Double, context: ContextEncoder<T>?, seed: UInt64
    ) throws -> NormalizingFlow<T> {
        let height = dataset.imageHeight, width = dataset.imageWidth
        guard dataset.kind == .image, height > 1, dataset.dimensions % (height * width) == 0 else {
            throw ValidationError("--flow glow needs image data (the digits, MNIST or a CSV of pixels with --levels)")
        }
        let scales = self.scales ?? (height <= 8 ? 1 : 2)
        let factor = 1 << scales
        guard height % factor == 0, width % factor == 0 else {
            throw ValidationError("--scales \(scales) needs the image height \(height) and width \(width) divisible by \(factor)")
        }
        return try FlowPresets.glow(
            channels: dataset.dimensions / (height * width), height: height, width: width, levels: scales, steps: steps ?? 8,
            hiddenChannels: convWidth ?? 64, scaleBound: scaleBound, context: context, seed: seed, as: T.self)
    }
}
