import ArgumentParser
import Foundation
import InvertNN

/// `invertnn`: train, sample and evaluate normalizing flows.
@main
struct InvertNNCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invertnn",
        abstract: "Invertible neural networks (normalizing flows) on OpenBLAS.",
        subcommands: [TrainCommand.self, SampleCommand.self, EvalCommand.self, DensityCommand.self, SBICommand.self])

    /// Exit code of a library error (bad data, bad file, diverged training): `EXIT_FAILURE`.
    /// Usage errors keep swift-argument-parser's `EX_USAGE` (64); both are below 128, the range
    /// shells reserve for deaths by signal.
    static let libraryErrorExitCode: Int32 = 1

    /// Parses, runs, and turns every error into exactly one line on stderr,
    /// `invertnn: error: <message>`, and a non-zero exit code below 128. `--help` and
    /// `--version` print as usual and exit 0.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as InvertNNError {
            StandardError.line("invertnn: error: \(oneLine(error.description))")
            Foundation.exit(libraryErrorExitCode)
        } catch {
            let code = exitCode(for: error)
            // Help, version and clean exits print their full text and exit 0.
            if code == .success { exit(withError: error) }
            var message = message(for: error)
            if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
            StandardError.line("invertnn: error: \(oneLine(message.isEmpty ? "\(error)" : message))")
            let raw = code.rawValue
            Foundation.exit(raw > 0 && raw < 128 ? raw : libraryErrorExitCode)
        }
    }

    /// `text` with its lines joined by "; " (argument-parser adds suggestions on new lines).
    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: "; ")
    }
}
