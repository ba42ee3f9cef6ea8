import Testing
import InvertNN

/// Shapes whose byte count overflows are a malformed header, not a trap (found by a new-user run).
@Suite struct SafeTensorsOverflowTests {
    func file(shape: String) -> [UInt8] {
        let header = Array("{\"w\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[0,16]}}".utf8)
        var bytes = [UInt8]()
        var length = UInt64(header.count)
        for _ in 0..<8 { bytes.append(UInt8(length & 0xFF)); length >>= 8 }
        return bytes + header + [UInt8](repeating: 0, count: 16)
    }

    @Test(arguments: ["[2147483648,2147483648]", "[3037000500,3037000500]", "[4294967296,4294967296]", "[9223372036854775807,2]"])
    func overflowingShapesThrow(shape: String) {
        #expect(throws: (any Error).self) { try SafeTensors.decode(file(shape: shape), path: "bad.safetensors") }
    }

    @Test func aConsistentShapeDecodes() throws {
        _ = try SafeTensors.decode(file(shape: "[2,2]"), path: "ok.safetensors")
    }
}
