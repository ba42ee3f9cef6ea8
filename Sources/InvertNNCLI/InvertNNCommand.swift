import ArgumentParser
import InvertNN

/// `invertnn`: train, sample and evaluate normalizing flows.
@main
struct InvertNNCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invertnn",
        abstract: "Invertible neural networks (normalizing flows) on OpenBLAS.",
        subcommands: [TrainCommand.self, SampleCommand.self, EvalCommand.self, DensityCommand.self])
}
