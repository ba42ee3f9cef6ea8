import Foundation
import InvertNN

/// Shows training progress on stderr: on a terminal one line rewritten with `\r` (at most ten
/// times a second), otherwise a plain line at most every five seconds; plus one line per epoch
/// with the train, validation and test bits/dim.
final class ProgressReporter {
    let epochs: Int
    private let clock = ContinuousClock()
    private var lastDraw: ContinuousClock.Instant?
    private var lineOpen = false

    init(epochs: Int) { self.epochs = epochs }

    func handle(_ event: TrainingEvent) {
        switch event {
        case let .step(p):
            let now = clock.now
            let interval: Duration = StandardError.isTerminal ? .milliseconds(100) : .seconds(5)
            if let lastDraw, now - lastDraw < interval, p.step != p.stepsPerEpoch { return }
            if !StandardError.isTerminal && p.step == p.stepsPerEpoch { return }
            lastDraw = now
            let text = "epoch \(p.epoch)/\(p.epochs)  step \(p.step)/\(p.stepsPerEpoch)  "
                + "nll \(String(format: "%.2f", p.runningNegativeLogLikelihood)) nats (\(format(p.runningBitsPerDimension)) bits/dim)  "
                + "\(Int(p.samplesPerSecond.rounded())) samples/s  lr \(String(format: "%.2e", p.learningRate))"
            if StandardError.isTerminal {
                StandardError.write("\r\u{1B}[K" + text)
                lineOpen = true
            } else {
                StandardError.line(text)
            }
        case let .epoch(r):
            clearLine()
            let test = r.test.map { "  test \(format($0.bitsPerDimension))" } ?? ""
            let speed = r.epoch > 0 ? "  \(Int(r.samplesPerSecond.rounded())) samples/s" : ""
            StandardError.line(
                "epoch \(r.epoch)/\(epochs)  bits/dim: train \(format(r.train.bitsPerDimension))  "
                    + "validation \(format(r.validation.bitsPerDimension))\(test)\(r.isBest ? "  *best" : "")"
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
