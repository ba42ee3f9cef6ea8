import InvertNN
import RealModule

extension GreyscaleImage {
    /// `panel` (a ``scatter(_:xRange:yRange:size:dotSize:)`` or ``heatMap(_:width:height:)``
    /// picture whose pixel column `c` covers `x ∈ [x₀ + c·Δx, x₀ + (c+1)·Δx)` and whose top row
    /// is the largest y) framed on white by axes in data units: a y axis on the left and an x
    /// axis below, each with about five "nice" ticks (1, 2 or 5 times a power of ten) inside
    /// the range and their labels, the axis labels, and a title above. The panel's pixels are
    /// copied unchanged; the picture grows by the margins that hold the axes and their text.
    ///
    /// - Parameters:
    ///   - panel: the plot area, at least 8 × 8 pixels.
    ///   - xRange: the x values the panel's width spans, finite and non-empty.
    ///   - yRange: the y values the panel's height spans (bottom to top), finite and non-empty.
    ///   - xLabel: the label under the x axis (may be empty).
    ///   - yLabel: the label above the y axis (may be empty).
    ///   - title: the line above the plot (may be empty).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for a panel below 8 × 8 or
    ///   an empty or non-finite range.
    public static func withAxes(
        _ panel: GreyscaleImage, xRange: ClosedRange<Double>, yRange: ClosedRange<Double>,
        xLabel: String = "", yLabel: String = "", title: String = ""
    ) throws -> GreyscaleImage {
        guard panel.width >= 8, panel.height >= 8, xRange.lowerBound.isFinite, xRange.upperBound.isFinite,
              yRange.lowerBound.isFinite, yRange.upperBound.isFinite,
              xRange.upperBound > xRange.lowerBound, yRange.upperBound > yRange.lowerBound else {
            throw InvertNNError.invalidArgument(
                operation: "GreyscaleImage.withAxes",
                reason: "need a panel of at least 8×8 (got \(panel.width)×\(panel.height)) and finite non-empty ranges")
        }
        let m = axesMargins(xRange: xRange, yRange: yRange, xLabel: xLabel, yLabel: yLabel, title: title)
        var image = try GreyscaleImage(width: m.left + panel.width + m.right, height: m.top + panel.height + m.bottom, value: 255)
        for r in 0..<panel.height {
            let start = (m.top + r) * image.width + m.left
            image.pixels.replaceSubrange(start..<(start + panel.width), with: panel.pixels[(r * panel.width)..<((r + 1) * panel.width)])
        }
        // Data to pixels as the panel draws them: the pixel whose cell holds the value.
        let dx = Double(panel.width) / (xRange.upperBound - xRange.lowerBound)
        let dy = Double(panel.height) / (yRange.upperBound - yRange.lowerBound)
        let column = { (x: Double) in m.left + min(panel.width - 1, Int(((x - xRange.lowerBound) * dx).rounded(.down))) }
        let row = { (y: Double) in m.top + panel.height - 1 - min(panel.height - 1, Int(((y - yRange.lowerBound) * dy).rounded(.down))) }
        image.drawAxes(
            xTicks: axisTicks(xRange), yTicks: axisTicks(yRange), column: column, row: row,
            axisColumn: m.left - 1, axisRow: m.top + panel.height, top: m.top, right: m.left + panel.width - 1, grid: nil)
        image.drawText(xLabel, x: m.left + (panel.width - textWidth(xLabel)) / 2, y: m.top + panel.height + 26)
        image.drawText(yLabel, x: 4, y: m.top - 14)
        // A title wider than the picture is drawn at half size (3×5-pixel glyphs), then clipped.
        let titleScale = textWidth(title) <= image.width - 4 ? 2 : 1
        image.drawText(title, x: max(2, m.left + (panel.width - textWidth(title, scale: titleScale)) / 2), y: 4, scale: titleScale)
        return image
    }

    /// The margins ``withAxes(_:xRange:yRange:xLabel:yLabel:title:)`` adds around a panel, in
    /// pixels: room for the y tick labels on the left, the title and the y label above, the x
    /// tick labels and the x label below, half an x tick label on the right.
    static func axesMargins(
        xRange: ClosedRange<Double>, yRange: ClosedRange<Double>, xLabel: String, yLabel: String, title: String
    ) -> (left: Int, top: Int, right: Int, bottom: Int) {
        let yLabels = tickLabels(axisTicks(yRange)), xLabels = tickLabels(axisTicks(xRange))
        let left = 8 + (yLabels.map { textWidth($0) }.max() ?? 0) + 8
        let top = (title.isEmpty ? 6 : 20) + 16
        let bottom = 8 + 10 + (xLabel.isEmpty ? 4 : 20)
        let right = max(12, (xLabels.map { textWidth($0) }.max() ?? 0) / 2 + 4)
        return (left, top, right, bottom)
    }

    /// ``niceTicks(_:_:)`` of a closed range, keeping those inside it.
    static func axisTicks(_ range: ClosedRange<Double>) -> [Double] {
        let span = range.upperBound - range.lowerBound
        return niceTicks(range.lowerBound, range.upperBound).filter {
            $0 >= range.lowerBound - 1e-9 * span && $0 <= range.upperBound + 1e-9 * span
        }
    }

    /// ``tickLabel(_:step:)`` of every tick, with the step of the first two.
    static func tickLabels(_ ticks: [Double]) -> [String] {
        let step = ticks.count > 1 ? ticks[1] - ticks[0] : 1
        return ticks.map { tickLabel($0, step: step) }
    }

    /// Draws the y axis along column `axisColumn` (rows `top...axisRow`) and the x axis along
    /// row `axisRow` (columns `axisColumn...right`), black; tick marks of 4 pixels pointing
    /// outwards at `row(tick)` and `column(tick)`, with their labels (y labels right-aligned left
    /// of the ticks, x labels centred below); and, with `grid`, a line of that grey across the
    /// plot at each y tick. Shared by ``lineChart(x:series:xLabel:yLabel:width:height:)`` and
    /// ``withAxes(_:xRange:yRange:xLabel:yLabel:title:)``.
    mutating func drawAxes(
        xTicks: [Double], yTicks: [Double], column: (Double) -> Int, row: (Double) -> Int,
        axisColumn: Int, axisRow: Int, top: Int, right: Int, grid: UInt8?
    ) {
        fill(x: axisColumn, y: top, width: 1, height: axisRow - top + 1, value: 0)
        fill(x: axisColumn, y: axisRow, width: right - axisColumn + 1, height: 1, value: 0)
        for (tick, label) in zip(yTicks, Self.tickLabels(yTicks)) {
            let y = row(tick)
            fill(x: axisColumn - 4, y: y, width: 4, height: 1, value: 0)
            if let grid { fill(x: axisColumn + 1, y: y, width: right - axisColumn, height: 1, value: grid) }
            drawText(label, x: axisColumn - 7 - Self.textWidth(label), y: y - 5)
        }
        for (tick, label) in zip(xTicks, Self.tickLabels(xTicks)) {
            let x = column(tick)
            fill(x: x, y: axisRow + 1, width: 1, height: 4, value: 0)
            drawText(label, x: x - Self.textWidth(label) / 2, y: axisRow + 8)
        }
    }
}
