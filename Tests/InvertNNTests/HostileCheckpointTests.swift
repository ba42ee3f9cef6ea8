import Testing
import Foundation
import InvertNN

/// Checkpoints edited by hand or by the fuzzer (`CheckpointCLIFuzzTests`): tensors of the other
/// dtype, a `dtype` metadata entry that names neither precision, and an architecture far larger
/// than the tensors the file holds.
@Suite struct HostileCheckpointTests {
    /// A small Float checkpoint (a 2-D RealNVP, 2 couplings of hidden width 8) as a parsed file.
    static func smallFile() throws -> SafeTensors {
        let flow = try FlowPresets.realNVP(features: 2, couplings: 2, hiddenSizes: [8], seed: 3, as: Float.self)
        return try Checkpoint(flow: flow, preprocessing: .dequantization(try Dequantization(levels: 4))).safeTensors()
    }

    /// `tensor` re-encoded in the other dtype, same values.
    static func converted(_ tensor: SafeTensors.Tensor) throws -> SafeTensors.Tensor {
        tensor.dtype == .f32
            ? try SafeTensors.Tensor(name: tensor.name, shape: tensor.shape, values: tensor.values(as: Double.self))
            : try SafeTensors.Tensor(name: tensor.name, shape: tensor.shape, values: tensor.values(as: Float.self))
    }

    @Test func tensorsOfTheOtherDtypeAreRefused() throws {
        let file = try Self.smallFile()
        #expect(file.metadata["dtype"] == "F32")
        // One F64 tensor in an F32 checkpoint: it used to be converted silently.
        var one = file
        one.tensors[1] = try Self.converted(file.tensors[1])
        let name = file.tensors[1].name
        #expect(throws: CheckpointError.mixedDtype(path: "x", tensor: name, dtype: "F64", stored: "F32")) {
            try Checkpoint<Float>(file: one, path: "x")
        }
        #expect(throws: CheckpointError.mixedDtype(path: "x", tensor: name, dtype: "F64", stored: "F32")) {
            try Checkpoint<Double>(file: one, path: "x")
        }
        // Every tensor F64 under `dtype: F32` metadata (the header's dtype over what the model expects).
        var all = file
        all.tensors = try file.tensors.map(Self.converted)
        #expect(throws: CheckpointError.mixedDtype(path: "x", tensor: file.tensors[0].name, dtype: "F64", stored: "F32")) {
            try Checkpoint<Float>(file: all, path: "x")
        }
        // The reverse: F32 tensors under `dtype: F64`.
        var reverse = file
        reverse.metadata["dtype"] = "F64"
        #expect(throws: CheckpointError.mixedDtype(path: "x", tensor: file.tensors[0].name, dtype: "F32", stored: "F64")) {
            try Checkpoint<Double>(file: reverse, path: "x")
        }
        // The documented rule: a whole file in one precision, read as the other, is converted.
        all.metadata["dtype"] = "F64"
        let x = Matrix<Float>(rows: 1, columns: 2, repeating: 1.5)
        let reference = try Checkpoint<Float>(file: file, path: "x").flow.logProbability(x)
        let asDouble = try Checkpoint<Float>(file: all, path: "x").flow.logProbability(x)
        #expect(abs(reference[0] - asDouble[0]) < 1e-5 && reference[0].isFinite)
        // The message names both dtypes.
        let message = "\(CheckpointError.mixedDtype(path: "m.safetensors", tensor: name, dtype: "F64", stored: "F32"))"
        #expect(message.contains("is F64 but the checkpoint stores F32"))
    }

    @Test func unknownDtypeMetadataIsRefused() throws {
        var file = try Self.smallFile()
        file.metadata["dtype"] = "F16"
        #expect(throws: CheckpointError.badMetadata(path: "x", key: "dtype", reason: "expected F32 or F64, got \"F16\"")) {
            try Checkpoint<Float>(file: file, path: "x")
        }
    }

    /// Under the 5e8 parameter cap but far beyond the file: refused before anything is built,
    /// for every conditioner family (the affine case used to take 3.5 GB and 90 s in `eval`; the
    /// spline, MAF and Glow conditioners were not counted at all and took over 1 GB and 60 s).
    @Test func architectureLargerThanTheTensorsIsRefusedFirst() throws {
        let dequantization = Preprocessing<Float>.dequantization(try Dequantization(levels: 4))
        let flows: [(String, NormalizingFlow<Float>, String, String)] = [
            ("realnvp", try FlowPresets.realNVP(features: 2, couplings: 2, hiddenSizes: [8], seed: 3),
             "\"hiddenSizes\":[8]", "\"hiddenSizes\":[15000,15000]"),
            ("nsf", try FlowPresets.neuralSplineFlow(features: 2, couplings: 2, hiddenSizes: [8], seed: 3),
             "\"hiddenSizes\":[8]", "\"hiddenSizes\":[15000,15000]"),
            ("maf", try FlowPresets.maskedAutoregressiveFlow(features: 2, layers: 2, hiddenSizes: [8], seed: 3),
             "\"hiddenSizes\":[8]", "\"hiddenSizes\":[15000,15000]"),
            ("glow", try FlowPresets.glow(channels: 1, height: 4, width: 4, levels: 1, steps: 1, hiddenChannels: 4, seed: 3),
             "\"hiddenChannels\":[4,4]", "\"hiddenChannels\":[15000,15000]"),
        ]
        for (name, flow, small, wide) in flows {
            var file = try Checkpoint(flow: flow, preprocessing: dequantization).safeTensors()
            // The presets themselves load: the bound never refuses a file written by the library.
            _ = try Checkpoint<Float>(file: file, path: name)
            let architecture = try #require(file.metadata["architecture"])
            #expect(architecture.contains(small), "\(name): \(architecture.prefix(300))")
            file.metadata["architecture"] = architecture.replacingOccurrences(of: small, with: wide)
            let start = Date()
            do {
                _ = try Checkpoint<Float>(file: file, path: name)
                Issue.record("\(name): a 15000-wide conditioner over a few hundred stored values loaded")
            } catch let CheckpointError.badArchitecture(path, reason) {
                #expect(path == name)
                #expect(reason.contains("parameters but the file's tensors hold only"), "\(name): \(reason)")
            }
            #expect(Date().timeIntervalSince(start) < 1, "\(name)")
        }
    }
}
