import Foundation
import InvertNN

/// Shows training progress on stderr: on a terminal one line rewritten with `\r` (at most ten
/// times a second), otherwise a plain line at most every five seconds; plus one line per epoch
/// with the train, validation and test figures (bits/dim for integer data, nats/dim otherwise).
final class ProgressReporter {
    let epochs: Int
    let discrete: Bool
    let quiet: Bool
    private let clock = ContinuousClock()
    private var lastDraw: ContinuousClock.Instant?
    private var lineOpen = false

    init(epochs: Int, discrete: Bool = true, quiet: Bool = false) {
        self.epochs = epochs
        self.discrete = discrete
        self.quiet = quiet
    }

    private var unit: String { discrete ? "bits/dim" : "nats/dim" }
    private func perDimension(_ e: SplitEvaluation) -> Double { discrete ? e.bitsPerDimension : e.natsPerDimension }

    func handle(_ event: TrainingEvent) {
        guard !quiet else { return }
        switch event {
        case let .step(p):
            let now = clock.now
            let interval: Duration = StandardError.isTerminal ? .milliseconds(100) : .seconds(5)
            if let lastDraw, now - lastDraw < interval, p.step != p.stepsPerEpoch { return }
            if !StandardError.isTerminal && p.step == p.stepsPerEpoch { return }
            lastDraw = now
            let running = discrete ? p.runningBitsPerDimension : p.runningBitsPerDimension * Double.log(2)
            let text = "epoch \(p.epoch)/\(p.epochs)  step \(p.step)/\(p.stepsPerEpoch)  "
                + "nll \(String(format: "%.2f", p.runningNegativeLogLikelihood)) nats (\(format(running)) \(unit))  "
                + "\(Int(p.samplesPerSecond.rounded())) samples/s  lr \(String(format: "%.2e", p.learningRate))"
            if StandardError.isTerminal {
                StandardError.write("\r\u{1B}[K" + text)
                lineOpen = true
            } else {
                StandardError.line(text)
            }
        case let .epoch(r):
            clearLine()
            let test = r.test.map { "  test \(format(perDimension($0)))" } ?? ""
            let speed = r.epoch > 0 ? "  \(Int(r.samplesPerSecond.rounded())) samples/s" : ""
            StandardError.line(
                "epoch \(r.epoch)/\(epochs)  \(unit): train \(format(perDimension(r.train)))  "
                    + "validation \(format(perDimension(r.validation)))\(test)\(r.isBest ? "  *best" : "")"
                    + "\(speed)  \(String(format: "%.1f", r.elapsedSeconds)) s")
        case let .recovered(epoch, step, reason, failures, scale):
            clearLine()
            StandardError.line(
                "epoch \(epoch) step \(step): skipped, \(reason); restored the last good parameters, learning rate now "
                    + "\(scale)× the schedule (failure \(failures) in a row)")
        }
    }

    func finish() { clearLine() }

    private func clearLine() {
        if lineOpen { StandardError.write("\r\u{1B}[K"); lineOpen = false }
    }
}

/// A progress line for long operations other than training (evaluation, density grids):
/// rewritten on a terminal, silent otherwise except for the final line.
struct ProgressLine {
    let label: String
    let quiet: Bool

    func update(_ done: Int, of total: Int) {
        guard !quiet, StandardError.isTerminal else { return }
        StandardError.write("\r\u{1B}[K\(label): \(done)/\(total)")
    }

    func finish() {
        guard !quiet, StandardError.isTerminal else { return }
        StandardError.write("\r\u{1B}[K")
    }
}

/// The training summary printed at the end of `invertnn train`.
enum SummaryTable {
    /// A table of at most 12 epochs (evenly spaced, always the first, the best and the last).
    static func render(result: TrainingResult, unit: String, perDimension: (SplitEvaluation) -> Double) -> String {
        let history = result.history
        var picked = Set([0, history.count - 1, history.firstIndex { $0.epoch == result.best.epoch } ?? 0])
        let stride = max(1, history.count / 10)
        for i in Swift.stride(from: 0, to: history.count, by: stride) { picked.insert(i) }
        var lines = ["", "summary (\(unit); * = selected, lowest validation NLL)",
                     "  epoch       train  validation        test   samples/s   seconds"]
        for i in picked.sorted() {
            let r = history[i]
            let test = r.test.map { format(perDimension($0)) } ?? "-"
            func pad(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
            let speed = r.epoch == 0 ? "-" : "\(Int(r.samplesPerSecond.rounded()))"
            lines.append(
                (r.epoch == result.best.epoch ? " *" : "  ") + pad("\(r.epoch)", 5) + pad(format(perDimension(r.train)), 12)
                    + pad(format(perDimension(r.validation)), 12) + pad(test, 12) + pad(speed, 12)
                    + pad(String(format: "%.1f", r.elapsedSeconds), 10))
        }
        lines.append("  \(result.steps) steps in \(String(format: "%.1f", result.seconds)) s")
        return lines.joined(separator: "\n") + "\n"
    }
}
