import Testing
import Foundation
@testable import InvertNN
@testable import InvertNNPlots

/// Library-side checks of issue 14: decimal-only CSV cells, CR-only line ends, preprocessing
/// validated when a checkpoint is written.
@Suite struct HostileLibraryTests {
    /// Item 11: hexadecimal and other non-decimal spellings are rejected with the cell named;
    /// decimal forms are still read.
    @Test func onlyDecimalNumbersAreRead() throws {
        for cell in ["0x10", "0x1p3", "1_0", "١٢"] {
            do {
                let _: Matrix<Double> = try CSVReader.parse(Array("1,2\n3,\(cell)\n".utf8), source: "x.csv")
                Issue.record("\(cell) was read")
            } catch let InvertNNError.malformedData(source, line, reason) {
                #expect(source == "x.csv" && line == 2 && reason.hasPrefix("column 2: \"\(cell)\""), "\(reason)")
            }
        }
        do {
            let _: Matrix<Double> = try CSVReader.parse(Array("0x10\n".utf8), source: "x.csv")
        } catch let InvertNNError.malformedData(_, _, reason) {
            #expect(reason.contains("is not a decimal number"), "\(reason)")
        }
        let m: Matrix<Double> = try CSVReader.parse(Array(" -2.5, +3 ,1e-2,.5,7.\n".utf8), source: "x.csv")
        #expect(m.storage == [-2.5, 3, 0.01, 0.5, 7])
    }

    /// Item 13: a file whose lines end in CR alone reads as its records, with file lines in errors.
    @Test func crOnlyLineEnds() throws {
        let table: (columnNames: [String], values: Matrix<Double>) = try CSVReader.parseTable(Array("a,b\r1,2\r3,4\r".utf8), source: "m.csv")
        #expect(table.columnNames == ["a", "b"] && table.values.storage == [1, 2, 3, 4])
        do {
            let _: Matrix<Double> = try CSVReader.parse(Array("1,2\r3,x\r".utf8), source: "m.csv")
            Issue.record("x was read")
        } catch let InvertNNError.malformedData(_, line, _) {
            #expect(line == 2)
        }
        #expect(CSVReader.nonBlankLineNumbers(Array("a\r\rb".utf8)) == [1, 3])
    }

    /// Item 12: a checkpoint whose standardization does not fit the flow's width is refused at
    /// write time, and nothing is written.
    @Test func preprocessingWidthIsCheckedAtWrite() throws {
        var generator = SeededGenerator(seed: 3)
        let flow = try NormalizingFlow<Double>(
            transform: Sequential([try AffineCoupling<Double>(features: 2, hiddenSizes: [4], using: &generator)]))
        let wrong = Preprocessing<Double>.standardization(try Standardization(means: [0, 0, 0], scales: [1, 1, 1]))
        let path = temporaryPath("width.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: InvertNNError.self) { try Checkpoint(flow: flow, preprocessing: wrong).write(to: path) }
        #expect(!FileManager.default.fileExists(atPath: path))
        let right = Preprocessing<Double>.standardization(try Standardization(means: [0, 1], scales: [1, 2]))
        try Checkpoint(flow: flow, preprocessing: right).write(to: path)
        #expect(try Checkpoint<Double>.read(path: path).flow.features == 2)
    }
}

extension HostileLibraryTests {
    /// Item 4: the parameter count comes from the configuration alone (checked against a hand
    /// count), and a checkpoint, an MLP or a preset beyond ``SizeLimits/maximumParameters`` is
    /// refused before anything is allocated (it used to allocate 6 GB for minutes).
    @Test func parameterCapBeforeAllocation() throws {
        // D = 6, 2 couplings of permutation (6 entries) + MLP [3, 5, 6]: 3·5+5 + 5·6+6 = 56.
        let flow = try FlowPresets.realNVP(features: 6, couplings: 2, hiddenSizes: [5], mixing: .permutation, as: Double.self)
        #expect(SizeLimits.parameterCount(of: LayerConfiguration(flow.transform)) == 2 * (6 + 56))
        #expect(FlowPresets.realNVPParameterCount(features: 6, couplings: 2, hiddenSizes: [5], mixing: .permutation) == 124)
        #expect(flow.transform.parameterCount == 2 * 56)
        // InvertibleLinear with m = 2 reflectors per factor: 6·4 + 6 (log-scales) + 36 (dense) + 6 (bias) = 72.
        let linear = try InvertibleLinear<Double>(features: 6, reflectors: 2)
        #expect(SizeLimits.parameterCount(of: LayerConfiguration(linear)) == 72)
        #expect(linear.parameterCount == 72 - 36)

        let clock = ContinuousClock()
        let start = clock.now
        var generator = SeededGenerator(seed: 1)
        #expect(throws: InvertNNError.self) { try MLP<Float>(sizes: [2, 40_000, 40_000, 2], using: &generator) }
        #expect(throws: InvertNNError.self) { try FlowPresets.realNVP(features: 64, couplings: 8, hiddenSizes: [40_000, 40_000], as: Float.self) }
        #expect(SizeLimits.mlpParameterCount(sizes: [Int.max, Int.max]) == Int.max)

        let path = temporaryPath("cap.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let small = try FlowPresets.realNVP(features: 4, couplings: 1, hiddenSizes: [8], as: Float.self)
        try Checkpoint(flow: small, preprocessing: .standardization(try Standardization(means: [0, 0, 0, 0], scales: [1, 1, 1, 1])))
            .write(to: path)
        var file = try SafeTensors.read(path: path)
        let architecture = try #require(file.metadata["architecture"])
        file.metadata["architecture"] = architecture.replacingOccurrences(
            of: #""hiddenSizes"\s*:\s*\[8\]"#, with: "\"hiddenSizes\": [40000, 40000]", options: .regularExpression)
        #expect(file.metadata["architecture"] != architecture)
        try file.write(to: path)
        do {
            _ = try Checkpoint<Float>.read(path: path)
            Issue.record("the checkpoint was loaded")
        } catch let error as CheckpointError {
            #expect("\(error)".contains("beyond the limit of 500000000"), "\(error)")
        }
        #expect(clock.now - start < .seconds(5))
    }
}

extension HostileLibraryTests {
    /// Item 15: a flow scores an empty batch as an empty result, in both precisions, and the
    /// preprocessing passes it through.
    @Test func emptyBatchThroughAFlow() throws {
        func check<T: Scalar>(_: T.Type) throws {
            let flow = try FlowPresets.realNVP(features: 4, couplings: 2, hiddenSizes: [6], as: T.self)
            let empty = Matrix<T>(rows: 0, columns: 4)
            #expect(try flow.logProbability(empty).isEmpty)
            let forward = try flow.transform.forward(empty)
            #expect(forward.output.shape == [0, 4] && forward.logAbsDet.isEmpty)
            let standardization = Preprocessing<T>.standardization(try Standardization(means: [0, 0, 0, 0], scales: [1, 2, 1, 1]))
            var noise = SeededGenerator(seed: 0)
            #expect(try standardization.transform(empty, using: &noise).output.shape == [0, 4])
            let dequantization = Preprocessing<T>.dequantization(try Dequantization(levels: 4))
            #expect(try dequantization.transform(empty, using: &noise).output.shape == [0, 4])
            // A batch of real rows after an empty one gives the same as alone.
            let x = Matrix<T>.randomNormal(rows: 3, columns: 4, using: &noise)
            let before = try flow.logProbability(x)
            _ = try flow.logProbability(empty)
            #expect(try flow.logProbability(x) == before)
        }
        try check(Float.self)
        try check(Double.self)
    }
}

extension HostileLibraryTests {
    /// Item 17: a PReLU whose log-slope is set to -∞, NaN, +∞ or a finite value whose slope
    /// overflows or underflows refuses every call with an error naming the parameter and entry
    /// (it used to return a log-det of -∞ and an inverse of -∞).
    @Test func preluRejectsNonFiniteSlopes() throws {
        func check<T: Scalar>(_: T.Type, overflow: T) throws {
            for bad in [-T.infinity, T.nan, T.infinity, overflow, -overflow] {
                let layer = try PReLU<T>(features: 3)
                layer.logSlope.value[0, 1] = bad
                let x = try Matrix<T>(rows: 2, columns: 3, storage: [-1, -2, 3, 4, -5, -6])
                let calls: [(String, () throws -> Void)] = [
                    ("forward", { _ = try layer.forward(x) }),
                    ("inverse", { _ = try layer.inverse(x) }),
                    ("forwardBackward", { _ = try layer.forwardBackward(input: x, output: x, outputGradient: x, logAbsDetGradient: [1, 1]) }),
                    ("inverseBackward", { _ = try layer.inverseBackward(input: x, output: x, outputGradient: x, logAbsDetGradient: [1, 1]) }),
                ]
                for (label, call) in calls {
                    do {
                        try call()
                        Issue.record("\(T.self) \(label) with log-slope \(bad) did not throw")
                    } catch let error as InvertNNError {
                        #expect("\(error)".contains("PReLU(3) parameter logSlope") && "\(error)".contains("[0, 1]"), "\(error)")
                    }
                }
            }
            // A finite, representable slope is fine.
            let layer = try PReLU<T>(features: 3)
            layer.logSlope.value[0, 1] = 3
            let y = try layer.forward(try Matrix<T>(rows: 1, columns: 3, storage: [-1, -1, 1]))
            #expect(abs(Double(y.output[0, 1]) + Double.exp(3)) < 1e-4 && abs(Double(y.logAbsDet[0]) - (3 + Double.log(0.25))) < 1e-5)
        }
        try check(Float.self, overflow: 200)
        try check(Double.self, overflow: 1000)
    }
}

extension HostileLibraryTests {
    /// Item 18: the line chart's ticks, axes and legend.
    @Test func lineChartHasAxesTicksAndLegend() throws {
        #expect(GreyscaleImage.niceTicks(0, 1) == [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1])
        #expect(GreyscaleImage.niceTicks(1.5, 1.75).count >= 3)
        #expect(GreyscaleImage.tickLabel(1.55, step: 0.05) == "1.55" && GreyscaleImage.tickLabel(10, step: 5) == "10")
        // Values beyond Int and steps below 1e-6 in scientific notation, never a trap.
        #expect(GreyscaleImage.tickLabel(1.5e20, step: 5e19) == "1.5e+20")
        #expect(GreyscaleImage.tickLabel(-2e30, step: 1e30) == "-2e+30")
        #expect(GreyscaleImage.tickLabel(3e-9, step: 1e-9) == "3e-9")
        #expect(GreyscaleImage.tickLabel(1.7e308, step: 1e307) == "1.7e+308")
        #expect(GreyscaleImage.tickLabel(5, step: 0) == "5e+0" && GreyscaleImage.tickLabel(.infinity, step: 1) == "inf")
        for scale in [1e15, 1e19, 1e25, 1e300, 1e-12, 1e-300] {
            let ticks = GreyscaleImage.axisTicks(-3 * scale...7 * scale)
            #expect(!ticks.isEmpty && GreyscaleImage.tickLabels(ticks).allSatisfy { !$0.isEmpty }, "\(scale)")
        }
        let image = try GreyscaleImage.lineChart(
            x: [0, 1, 2, 3], series: [.init(name: "train", values: [3, 2, 1.5, 1.2]), .init(name: "validation", values: [3, 2.2, .nan, 1.4])],
            xLabel: "epoch", yLabel: "nats/dim", width: 320, height: 200)
        #expect(image.width == 320 && image.height == 200)
        // Black pixels in the axis column and the plot, white background in a corner.
        let black = image.pixels.filter { $0 == 0 }.count
        #expect(black > 500 && image.pixels[image.width * image.height - 1] == 255, "\(black) black pixels")
        #expect(throws: InvertNNError.self) { try GreyscaleImage.lineChart(x: [0, 1], series: [.init(name: "a", values: [1])], xLabel: "", yLabel: "") }
        #expect(throws: InvertNNError.self) { try GreyscaleImage.lineChart(x: [0], series: [.init(name: "a", values: [.nan])], xLabel: "", yLabel: "") }
    }
}
