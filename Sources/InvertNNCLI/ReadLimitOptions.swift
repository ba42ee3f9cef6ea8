import ArgumentParser
import InvertNN

/// `--max-data-bytes` and `--max-line-bytes`: the bounds on a data file (``ReadLimits``), for
/// every command that reads one.
struct ReadLimitOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp(
        "The largest a data file may be once decompressed, in bytes (default 536870912 = 512 MiB).", valueName: "BYTES"))
    var maxDataBytes: Int = ReadLimits.defaultMaximumBytes

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "The longest line of a data file, in bytes (default 4194304 = 4 MiB).", valueName: "BYTES"))
    var maxLineBytes: Int = ReadLimits.defaultMaximumLineBytes

    func validate() throws {
        guard maxDataBytes >= 1 else { throw ValidationError("--max-data-bytes must be at least 1, got \(maxDataBytes)") }
        guard maxLineBytes >= 1 else { throw ValidationError("--max-line-bytes must be at least 1, got \(maxLineBytes)") }
    }

    var limits: ReadLimits { ReadLimits(maximumBytes: maxDataBytes, maximumLineBytes: maxLineBytes) }
}
