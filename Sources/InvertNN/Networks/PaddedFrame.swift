/// The layout of a batch of zero-padded image planes in which a stride-1 convolution is `k²`
/// GEMMs over shifted windows of one matrix (``Conv2D`` with many input channels).
///
/// A channel of the batch is one row of `length` entries: a margin of `M = p·(W+2p) + p` zeros,
/// then the `batch` padded images of `P = (H+2p)·(W+2p)` entries each (the image in the middle,
/// zeros on its `p`-wide border), then another margin. Output column `n` of the GEMMs
/// (`0 ≤ n < count = batch·P`) is padded pixel `n`; the kernel position `t = i·k + j` reads the
/// window of `count` entries starting at `offset(t) = M + (i - p)·(W+2p) + (j - p)`, so for an
/// output inside an image it reads exactly the input pixel `(h + i - p, w + j - p)` or a zero of
/// the border. Outputs on the border read neighbouring images or margins and are discarded.
struct PaddedFrame {
    let batch: Int, height: Int, width: Int, padding: Int

    /// `W + 2p`.
    var paddedWidth: Int { width + 2 * padding }
    /// `P = (H + 2p)·(W + 2p)`.
    var paddedPixels: Int { (height + 2 * padding) * paddedWidth }
    /// `M = p·(W + 2p) + p`, the zeros before the first and after the last image.
    var margin: Int { padding * paddedWidth + padding }
    /// `batch·P`, the GEMMs' column count.
    var count: Int { batch * paddedPixels }
    /// `M + batch·P + M`, the row length of a padded channel.
    var length: Int { count + 2 * margin }

    /// The start of kernel position `t`'s window in a padded channel.
    @inline(__always)
    func offset(tap t: Int, kernelSize k: Int) -> Int {
        margin + (t / k - padding) * paddedWidth + (t % k - padding)
    }

    /// Writes the NCHW batch `x` `[batch, C·H·W]` into `planes` `[C, length]` with zero margins
    /// and borders.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func pad<T: Scalar>(_ x: Matrix<T>, channels: Int, into planes: inout Matrix<T>) {
        let pixels = height * width, features = channels * pixels
        x.storage.withUnsafeBufferPointer { src in
            planes.withUnsafeMutableBufferPointer { dst in
                dst.update(repeating: 0)
                for c in 0..<channels {
                    for b in 0..<batch {
                        let from = b * features + c * pixels
                        let to = c * length + margin + b * paddedPixels + padding * paddedWidth + padding
                        for h in 0..<height {
                            let source = src.baseAddress! + from + h * width
                            (dst.baseAddress! + to + h * paddedWidth).update(from: source, count: width)
                        }
                    }
                }
            }
        }
    }

    /// The inverse of ``pad(_:channels:into:)`` on the images' interiors: `images[b, c·H·W + h·W + w]
    /// = planes[c, start + b·P + (h + p)·(W + 2p) + w + p] + add[c]`, where `start` is the margin
    /// when `planes` has `length` columns and 0 when it has `count` (a GEMM output); the positive
    /// part of that when `rectifying`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func crop<T: Scalar>(_ planes: Matrix<T>, channels: Int, into images: inout Matrix<T>, adding add: [T]?, rectifying: Bool) {
        let pixels = height * width, features = channels * pixels
        let start = planes.columns == length ? margin : 0, stride = planes.columns
        planes.storage.withUnsafeBufferPointer { src in
            images.withUnsafeMutableBufferPointer { dst in
                for c in 0..<channels {
                    let shift = add?[c] ?? 0
                    for b in 0..<batch {
                        let from = c * stride + start + b * paddedPixels + padding * paddedWidth + padding
                        let to = b * features + c * pixels
                        for h in 0..<height {
                            let s = src.baseAddress! + from + h * paddedWidth, d = dst.baseAddress! + to + h * width
                            if rectifying {
                                for w in 0..<width {
                                    let v = s[w] + shift
                                    d[w] = v < 0 ? 0 : v
                                }
                            } else {
                                for w in 0..<width { d[w] = s[w] + shift }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of ``crop(_:channels:into:adding:rectifying:)`` onto a GEMM output: `planes`
    /// `[C, count]` gets the NCHW batch `images` inside each image (0 where a `mask` of their
    /// shape is not positive: a ReLU's VJP) and zeros on the borders, and `sums[c]` the sum of
    /// channel `c` (a bias gradient).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func embed<T: Scalar>(
        _ images: Matrix<T>, channels: Int, into planes: inout Matrix<T>, passingWhere mask: Matrix<T>?, summingInto sums: inout [T]
    ) {
        let pixels = height * width, features = channels * pixels
        images.storage.withUnsafeBufferPointer { src in
            (mask ?? images).storage.withUnsafeBufferPointer { m in
                planes.withUnsafeMutableBufferPointer { dst in
                    dst.update(repeating: 0)
                    for c in 0..<channels {
                        for b in 0..<batch {
                            let from = b * features + c * pixels
                            let to = c * count + b * paddedPixels + padding * paddedWidth + padding
                            for h in 0..<height {
                                let s = src.baseAddress! + from + h * width, d = dst.baseAddress! + to + h * paddedWidth
                                if mask != nil {
                                    let r = m.baseAddress! + from + h * width
                                    for w in 0..<width {
                                        let v = s[w], keep = r[w]
                                        d[w] = keep <= 0 ? 0 : v
                                    }
                                } else {
                                    d.update(from: s, count: width)
                                }
                            }
                        }
                    }
                }
            }
        }
        planes.addRowSums(into: &sums)
    }
}
