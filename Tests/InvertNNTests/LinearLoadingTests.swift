import Foundation
import InvertNN
import Testing

/// Loading takes time linear in the file's size (issue 14 item 6): the files below took 107 s,
/// over 300 s and 17 s with the earlier hand-written parser, whose string scanning was quadratic
/// in escapes. The bounds are loose (debug build, a shared machine); the measured times are in
/// the commit message.
@Suite(.serialized) struct LinearLoadingTests {
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
    }

    static func smallCheckpoint() throws -> Checkpoint<Float> {
        var g = SeededGenerator(seed: 1)
        let flow = try NormalizingFlow(transform: try Sequential<Float>([try AffineCoupling<Float>(features: 2, hiddenSizes: [3], using: &g)]))
        return Checkpoint(flow: flow, preprocessing: .standardization(try Standardization(means: [0, 0], scales: [1, 1])))
    }

    /// 3 MB of `ab"` in one metadata string: 4 MB escaped, one pass to read.
    @Test func escapedMetadataStringLoadsInUnderOneSecond() throws {
        var file = try Self.smallCheckpoint().safeTensors()
        let note = String(repeating: "ab\"", count: 1_000_000)
        file.metadata["note"] = note
        let bytes = try file.encode()
        #expect(bytes.count > 4_000_000)
        var loaded: SafeTensors?
        let elapsed = try Self.seconds {
            let parsed = try SafeTensors.decode(bytes, path: "escapes.safetensors")
            _ = try Checkpoint<Float>(file: parsed, path: "escapes.safetensors")
            loaded = parsed
        }
        #expect(loaded?.metadata["note"] == note)
        #expect(elapsed < 1, "took \(elapsed) s")
    }

    /// An architecture of `count` parameterless layers under one Sequential, as a file.
    static func manyLayers(_ count: Int) throws -> [UInt8] {
        var file = try smallCheckpoint().safeTensors()
        let layer = #"{"features":2,"permutation":[1,0],"type":"Permutation"}"#
        file.metadata["architecture"] = #"{"layers":["# + Array(repeating: layer, count: count).joined(separator: ",") + "]," + #""type":"Sequential"}"#
        file.tensors = []
        return try file.encode()
    }

    /// 100,000 layers (the root and 99,999 children) load in under 5 s; one more is refused by
    /// the documented ``LayerRegistry/maximumLayers`` before any layer is built.
    @Test func hundredThousandLayersLoadOrAreRefusedQuickly() throws {
        let atLimit = try Self.manyLayers(LayerRegistry.maximumLayers - 1)
        var depth = 0
        let loading = try Self.seconds {
            let checkpoint = try Checkpoint<Float>(file: try SafeTensors.decode(atLimit, path: "deep.safetensors"), path: "deep.safetensors")
            depth = checkpoint.flow.transform.layers.count
        }
        #expect(depth == LayerRegistry.maximumLayers - 1)
        #expect(loading < 5, "took \(loading) s")

        let beyond = try Self.manyLayers(LayerRegistry.maximumLayers)
        let refusing = Self.seconds {
            #expect(throws: CheckpointError.badArchitecture(
                path: "deeper.safetensors",
                reason: "LayerRegistry: invalid argument: layer \(LayerRegistry.maximumLayers - 1): the architecture has more than 100000 layers (LayerRegistry.maximumLayers)")) {
                _ = try Checkpoint<Float>(file: try SafeTensors.decode(beyond, path: "deeper.safetensors"), path: "deeper.safetensors")
            }
        }
        #expect(refusing < 5, "took \(refusing) s")
    }

    /// A training state with a 2 MB history (what `--save-state --epochs 6000` writes) loads in
    /// under a second and reads back exactly.
    @Test func twoMegabyteTrainingStateLoadsInUnderOneSecond() throws {
        let fixture = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("rings_state.safetensors").path
        let checkpoint = try Checkpoint<Float>.read(path: fixture)
        var state = try #require(checkpoint.trainingState)
        let entry = state.history[state.history.count - 1]
        state.history += Array(repeating: entry, count: 8_000)
        state.epoch = state.history.count - 1
        let file = try Checkpoint(flow: checkpoint.flow, preprocessing: checkpoint.preprocessing, trainingState: state).safeTensors()
        let text = try #require(file.metadata[Checkpoint<Float>.trainingStateKey])
        #expect(text.utf8.count > 2_000_000)
        let bytes = try file.encode()
        var loaded: TrainingState<Float>?
        let elapsed = try Self.seconds {
            loaded = try Checkpoint<Float>(file: try SafeTensors.decode(bytes, path: "state.safetensors"), path: "state.safetensors").trainingState
        }
        #expect(loaded?.history.count == state.history.count)
        #expect(loaded?.history.last?.elapsedSeconds == entry.elapsedSeconds)
        #expect(elapsed < 1, "took \(elapsed) s")
    }

    /// Malformed JSON anywhere is a typed error naming the key, never a trap.
    @Test func malformedJSONIsATypedError() throws {
        let base = try Self.smallCheckpoint().safeTensors()
        for key in ["architecture", "base", "preprocessing", "dataset", Checkpoint<Float>.trainingStateKey] {
            for text in ["{", "[1,]", "{\"a\" 1}", "nul", "\"\\ud800\"", String(repeating: "[", count: 10_000)] {
                var file = base
                file.metadata[key] = text
                do {
                    _ = try Checkpoint<Float>(file: try SafeTensors.decode(try file.encode(), path: "m"), path: "m")
                    Issue.record("\(key) = \(text.prefix(20)) was accepted")
                } catch let error as CheckpointError {
                    #expect("\(error)".contains(key == Checkpoint<Float>.trainingStateKey ? "training state" : key), "\(error)")
                }
            }
        }
    }
}
