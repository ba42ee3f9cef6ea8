import Testing
import BLASCoreType

/// The kernel choice `invertnn` and `invertnn-bench` share: SkylakeX or Haswell in place of the
/// generic Prescott kernels, only when OpenBLAS fell back to them and nobody set the variable.
@Suite struct BLASCoreSelectionTests {
    static let sapphireRapids = """
        processor\t: 0
        model name\t: Intel(R) Xeon(R) Processor
        flags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl amx_tile
        """
    static let haswell = "model name\t: Intel Core\nflags\t\t: fpu sse2 avx avx2 fma\n"

    @Test func preferredCoreFollowsTheFlagsLine() {
        #expect(BLASCoreSelection.preferredCore(cpuinfo: Self.sapphireRapids) == "SkylakeX")
        #expect(BLASCoreSelection.preferredCore(cpuinfo: Self.haswell) == "Haswell")
        // AVX-512 without VL is not enough for SkylakeX; AVX2 without FMA not for Haswell.
        #expect(BLASCoreSelection.preferredCore(cpuinfo: "flags : avx avx2 fma avx512f avx512cd avx512bw avx512dq") == "Haswell")
        #expect(BLASCoreSelection.preferredCore(cpuinfo: "flags : sse2 avx avx2") == nil)
        #expect(BLASCoreSelection.preferredCore(cpuinfo: "model name : no flags line") == nil)
    }

    @Test func coreIsChosenOnlyForPrescottWithoutTheVariable() {
        #expect(BLASCoreSelection.coreToSelect(environment: [:], detectedCore: "Prescott", cpuinfo: Self.sapphireRapids) == "SkylakeX")
        #expect(BLASCoreSelection.coreToSelect(environment: [:], detectedCore: "PRESCOTT", cpuinfo: Self.haswell) == "Haswell")
        // A core OpenBLAS recognized, a variable the user set (any value), or no /proc/cpuinfo: kept.
        #expect(BLASCoreSelection.coreToSelect(environment: [:], detectedCore: "Haswell", cpuinfo: Self.sapphireRapids) == nil)
        #expect(BLASCoreSelection.coreToSelect(
            environment: ["OPENBLAS_CORETYPE": "Prescott"], detectedCore: "Prescott", cpuinfo: Self.sapphireRapids) == nil)
        #expect(BLASCoreSelection.coreToSelect(environment: [:], detectedCore: "Prescott", cpuinfo: nil) == nil)
    }
}
