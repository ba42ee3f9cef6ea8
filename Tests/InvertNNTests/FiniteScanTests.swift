import Testing
import InvertNN

/// `Matrix.firstNonFinite()` sums `v - v` per chunk (0 for finite entries, NaN otherwise):
/// every position of a chunk, the unrolled tail, and extreme finite values must be handled.
@Suite struct FiniteScanTests {
    @Test(arguments: [Float.nan, .infinity, -.infinity])
    func findsTheFirstNonFiniteEntryAnywhere(bad: Float) throws {
        let rows = 7, columns = 331  // 2317 entries: three chunks of 1024, a tail that is not a multiple of 8
        for index in [0, 1, 7, 8, 1023, 1024, 1025, 2047, 2048, 2311, 2316] {
            var m = Matrix<Float>(rows: rows, columns: columns, repeating: 1)
            m.withUnsafeMutableBufferPointer { $0[index] = bad }
            if index + 5 < m.count { m.withUnsafeMutableBufferPointer { $0[index + 5] = .nan } }  // a later one must not win
            let found = try #require(m.firstNonFinite())
            #expect(found.row == index / columns && found.column == index % columns, "index \(index)")
        }
    }

    @Test func extremeFiniteValuesAreFinite() {
        var m = Matrix<Double>(rows: 3, columns: 5, repeating: 0)
        let extremes: [Double] = [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude,
                                  -.leastNormalMagnitude, 0, -0.0, 1e308, -3 * .leastNonzeroMagnitude]
        for (i, v) in extremes.enumerated() { m.withUnsafeMutableBufferPointer { $0[i] = v } }
        #expect(m.firstNonFinite() == nil)
        #expect(Matrix<Float>(rows: 0, columns: 4).firstNonFinite() == nil)
    }
}
