import Foundation
import InvertNN
import InvertNNPlots

/// The per-epoch record `train` writes beside the model: a CSV (`<model>.history.csv`) and a
/// training-curve PNG (`<model>.curve.png`) of the train, validation and test figures.
enum TrainingHistory {
    /// `<model without .safetensors>.history.csv` and `.curve.png`.
    static func paths(model: String) -> (csv: String, png: String) {
        let base = model.hasSuffix(".safetensors") ? String(model.dropLast(".safetensors".count)) : model
        return (base + ".history.csv", base + ".curve.png")
    }

    /// One row per epoch (epoch 0 is before training): the NLL (nats per sample) and the
    /// per-dimension figure of each split, whether the epoch is the best so far, samples per
    /// second, elapsed seconds, and the training guard's skipped steps in that epoch.
    /// The first line of ``csv(_:discrete:guardEvents:)``.
    static func header(discrete: Bool) -> String {
        let unit = discrete ? "bits_per_dim" : "nats_per_dim"
        return "epoch,steps,train_nll,train_\(unit),validation_nll,validation_\(unit),test_nll,test_\(unit),best,samples_per_second,elapsed_seconds,guard_skipped_steps"
    }

    static func csv(_ history: [EpochReport], discrete: Bool, guardEvents: [Int: Int]) -> String {
        func figure(_ e: SplitEvaluation?) -> String {
            guard let e else { return "" }
            return "\(e.negativeLogLikelihood),\(discrete ? e.bitsPerDimension : e.natsPerDimension)"
        }
        var lines = [header(discrete: discrete)]
        for r in history {
            lines.append("\(r.epoch),\(r.steps),\(figure(r.train)),\(figure(r.validation)),\(r.test == nil ? "," : figure(r.test)),"
                + "\(r.isBest ? 1 : 0),\(r.samplesPerSecond),\(r.elapsedSeconds),\(guardEvents[r.epoch] ?? 0)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The training curve: the per-dimension figure of each split against the epoch.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if there is nothing finite to draw.
    static func curve(_ history: [EpochReport], discrete: Bool) throws -> GreyscaleImage {
        // The evaluation at initialization (epoch 0) is far above the rest (7.8 bits/dim against
        // 2.2 on the digits) and would flatten every later epoch into one line: it is left out
        // once two trained epochs are there (the history CSV keeps it).
        let history = history.filter { $0.epoch > 0 }.count >= 2 ? history.filter { $0.epoch > 0 } : history
        func figure(_ e: SplitEvaluation?) -> Double { e.map { discrete ? $0.bitsPerDimension : $0.natsPerDimension } ?? .nan }
        var series = [
            GreyscaleImage.Series(name: "train", values: history.map { figure($0.train) }),
            GreyscaleImage.Series(name: "validation", values: history.map { figure($0.validation) }),
        ]
        if history.contains(where: { $0.test != nil }) {
            series.append(GreyscaleImage.Series(name: "test", values: history.map { figure($0.test) }))
        }
        return try GreyscaleImage.lineChart(
            x: history.map { Double($0.epoch) }, series: series, xLabel: "epoch", yLabel: discrete ? "bits/dim" : "nats/dim")
    }
}
