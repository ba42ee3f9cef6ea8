import InvertNN
import RealModule

extension GreyscaleImage {
    /// One curve of ``lineChart(x:series:xLabel:yLabel:width:height:)``: a name for the legend and
    /// one y value per x (NaN or infinite values leave a gap).
    public struct Series: Sendable {
        /// The legend entry.
        public var name: String
        /// `[x.count]` values.
        public var values: [Double]
        /// A series with its legend name.
        public init(name: String, values: [Double]) {
            self.name = name
            self.values = values
        }
    }

    /// A line chart on white: axes with about five "nice" ticks each (1, 2 or 5 times a power of
    /// ten) and their labels, the axis labels, and a legend; the series are told apart in grey
    /// by their line (solid black, dashed dark grey, dotted grey, then repeating).
    ///
    /// - Parameters:
    ///   - x: the abscissae, increasing (epochs, say).
    ///   - series: the curves, each with `x.count` values.
    ///   - xLabel: the label under the horizontal axis.
    ///   - yLabel: the label beside the vertical axis.
    ///   - width: the picture's width in pixels (at least 160).
    ///   - height: the picture's height in pixels (at least 120).
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for no series, a series of
    ///   another length, no finite value, or a picture too small.
    public static func lineChart(
        x: [Double], series: [Series], xLabel: String, yLabel: String, width: Int = 640, height: Int = 420
    ) throws -> GreyscaleImage {
        func bad(_ reason: String) -> InvertNNError { .invalidArgument(operation: "GreyscaleImage.lineChart", reason: reason) }
        guard !series.isEmpty, !x.isEmpty, series.allSatisfy({ $0.values.count == x.count }) else {
            throw bad("need ≥ 1 series of \(x.count) values each")
        }
        guard width >= 160, height >= 120 else { throw bad("the picture must be at least 160×120, got \(width)×\(height)") }
        let finite = series.flatMap(\.values).filter(\.isFinite)
        let xs = x.filter(\.isFinite)
        guard let yMin = finite.min(), let yMax = finite.max(), let xMin = xs.min(), let xMax = xs.max() else {
            throw bad("no finite value to plot")
        }
        let yTicks = niceTicks(yMin, yMax), xTicks = niceTicks(xMin, xMax)
        let y0 = min(yMin, yTicks.first!), y1 = max(yMax, yTicks.last!)
        let x0 = min(xMin, xTicks.first!), x1 = max(xMax, xTicks.last!)
        let left = 14 + tickLabels(yTicks).map { textWidth($0) }.max()! + 16, right = width - 14
        let top = 26, bottom = height - 44
        var image = try GreyscaleImage(width: width, height: height, value: 255)
        func px(_ v: Double) -> Double { Double(left) + (v - x0) / max(x1 - x0, 1e-300) * Double(right - left) }
        func py(_ v: Double) -> Double { Double(bottom) - (v - y0) / max(y1 - y0, 1e-300) * Double(bottom - top) }
        image.drawAxes(xTicks: xTicks, yTicks: yTicks, column: { Int(px($0).rounded()) }, row: { Int(py($0).rounded()) },
                       axisColumn: left, axisRow: bottom, top: top, right: right, grid: 235)
        image.drawText(xLabel, x: (left + right - textWidth(xLabel)) / 2, y: height - 14)
        image.drawText(yLabel, x: 4, y: 2)
        // The curves: solid, dashed, dotted.
        let styles: [(value: UInt8, on: Int, off: Int)] = [(0, 1, 0), (80, 6, 4), (140, 2, 3)]
        for (index, s) in series.enumerated() {
            let style = styles[index % styles.count]
            var travelled = 0
            for i in 1..<max(x.count, 1) where s.values[i - 1].isFinite && s.values[i].isFinite {
                let (ax, ay, bx, by) = (px(x[i - 1]), py(s.values[i - 1]), px(x[i]), py(s.values[i]))
                let steps = max(1, Int(max(abs(bx - ax), abs(by - ay)).rounded(.up)))
                for k in 0...steps {
                    defer { travelled += 1 }
                    guard style.off == 0 || travelled % (style.on + style.off) < style.on else { continue }
                    let t = Double(k) / Double(steps)
                    image.fill(x: Int((ax + t * (bx - ax)).rounded()), y: Int((ay + t * (by - ay)).rounded()), width: 2, height: 2,
                               value: style.value)
                }
            }
            if x.count == 1, s.values[0].isFinite {
                image.fill(x: Int(px(x[0])) - 2, y: Int(py(s.values[0])) - 2, width: 5, height: 5, value: style.value)
            }
            // Legend entry, top right.
            let entryY = top + 4 + index * 16
            let textX = right - 8 - textWidth(s.name)
            for k in 0..<24 where style.off == 0 || k % (style.on + style.off) < style.on {
                image.fill(x: textX - 32 + k, y: entryY + 4, width: 1, height: 2, value: style.value)
            }
            image.drawText(s.name, x: textX, y: entryY)
        }
        return image
    }

    /// About five ticks covering `[low, high]` at 1, 2 or 5 times a power of ten.
    static func niceTicks(_ low: Double, _ high: Double) -> [Double] {
        let span = high - low
        guard span > 0, span.isFinite else { return [low] }
        let raw = span / 5, magnitude = Double.pow(10, (Double.log10(raw)).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let first = (low / step).rounded(.down) * step
        var ticks = [Double]()
        var t = first
        while t <= high + step * 1e-9, ticks.count < 20 {
            ticks.append(t)
            t += step
        }
        if ticks.last! < high { ticks.append(t) }
        return ticks
    }

    /// A tick value with as many decimals as the tick step needs; in scientific notation
    /// (`1.5e+20`, as many significant digits as the step needs) when the value reaches 1e9 or
    /// the step is below 1e-6, where plain digits would be too long to read (or to hold in an `Int`).
    static func tickLabel(_ value: Double, step: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        guard step.isFinite, step > 0 else { return scientific(value, digits: 6) }
        let rounded = (value / step).rounded() * step
        if max(abs(rounded), step) >= 1e9 || step < 1e-6 {
            // Digits after the point of the mantissa: down to the step's order, 1 to 15.
            let orders = Double.log10(max(abs(rounded), step)) - Double.log10(step)
            return scientific(rounded, digits: Swift.min(15, Swift.max(1, Int(orders.rounded(.up)))))
        }
        let decimals = max(0, Int((-Double.log10(step)).rounded(.up)))
        return decimals == 0 ? String(Int(rounded.rounded())) : String(format(rounded, decimals: decimals))
    }

    /// `value` as `m.mmme±xx` with `digits` digits after the point, trailing zeros dropped.
    private static func scientific(_ value: Double, digits: Int) -> String {
        guard value != 0 else { return "0" }
        var exponent = Int(Double.log10(abs(value)).rounded(.down))
        var mantissa = value / Double.pow(10, Double(exponent))
        let scale = Double.pow(10, Double(digits))
        mantissa = (mantissa * scale).rounded() / scale
        if abs(mantissa) >= 10 { mantissa /= 10; exponent += 1 }
        var text = format(mantissa, decimals: digits)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text + "e" + (exponent < 0 ? "-" : "+") + String(abs(exponent))
    }

    private static func format(_ value: Double, decimals: Int) -> String {
        let scale = Double.pow(10, Double(decimals))
        let scaled = Int((abs(value) * scale).rounded())
        let whole = scaled / Int(scale), fraction = scaled % Int(scale)
        let digits = String(fraction)
        return (value < 0 && scaled != 0 ? "-" : "") + "\(whole)." + String(repeating: "0", count: decimals - digits.count) + digits
    }
}
