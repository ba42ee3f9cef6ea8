import Testing
import InvertNN

@Suite struct BitsPerDimensionTests {
    @Test func knownValue() throws {
        // Issue 2: D = 3072, K = 256, L = -5000 nats gives 5.6518635402 bits/dim.
        let bpd = try bitsPerDimension(nllNats: -5000, dimensions: 3072, levels: 256)
        #expect(abs(bpd - 5.6518635402) <= 1e-10)
    }

    @Test func uniformModelGivesLog2K() throws {
        // The uniform density on [0,1)^D has NLL 0, so its discrete model is uniform over K^D
        // values: exactly log2 K bits per dimension.
        #expect(abs(try bitsPerDimension(nllNats: 0, dimensions: 64, levels: 17) - Double.log2(17)) <= 1e-12)
    }

    @Test func rejectsBadArguments() {
        #expect(throws: InvertNNError.self) { try bitsPerDimension(nllNats: 1, dimensions: 0, levels: 17) }
        #expect(throws: InvertNNError.self) { try bitsPerDimension(nllNats: 1, dimensions: 4, levels: 1) }
    }
}
