/// Bounds on what a data file may expand to, checked while it is read (after decompression), so that
/// a small hostile file (a 4 MB `.gz` that inflates to 4 GB, or one endless line) fails with a
/// message instead of exhausting memory.
///
/// The defaults allow every dataset this tool is meant for (MNIST's 60,000 training images as CSV
/// are about 110 MB; a row of 100,000 numeric cells about 1 MB); the CLI raises them with
/// `--max-data-bytes` and `--max-line-bytes`.
public struct ReadLimits: Sendable, Equatable {
    /// The largest decompressed size, bytes. Default ``defaultMaximumBytes``.
    public var maximumBytes: Int
    /// The longest line (bytes between two `\n`), or `nil` for no line limit (binary files).
    /// Default ``defaultMaximumLineBytes``.
    public var maximumLineBytes: Int?

    /// 512 MiB: about 4 times that as a matrix of `Double` at worst (short cells such as `1,1`).
    public static let defaultMaximumBytes = 1 << 29
    /// 4 MiB per line.
    public static let defaultMaximumLineBytes = 1 << 22

    /// The default limits of text data.
    public static let `default` = ReadLimits(maximumBytes: defaultMaximumBytes, maximumLineBytes: defaultMaximumLineBytes)

    /// Limits of `maximumBytes` decompressed bytes and lines of at most `maximumLineBytes`.
    public init(maximumBytes: Int = defaultMaximumBytes, maximumLineBytes: Int? = defaultMaximumLineBytes) {
        self.maximumBytes = maximumBytes
        self.maximumLineBytes = maximumLineBytes
    }
}
