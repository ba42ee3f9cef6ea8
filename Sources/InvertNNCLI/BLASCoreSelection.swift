import Foundation
import InvertNN

/// Works around OpenBLAS falling back to its generic SSE3 kernels ("Prescott") on CPUs it does not
/// recognize, as happens in virtual machines that report a generic model: the SkylakeX (AVX-512)
/// or Haswell (AVX2) kernels run the GEMMs of training about twice as fast there.
///
/// OpenBLAS picks its kernels when the library loads, from the `OPENBLAS_CORETYPE` environment
/// variable if set. So when the variable is unset, the detected core is Prescott, and the kernel
/// advertises the needed instructions in `/proc/cpuinfo` (Linux lists only the features the OS
/// supports), the process re-executes itself once with the variable set. Setting
/// `OPENBLAS_CORETYPE` yourself (any value) disables this.
enum BLASCoreSelection {
    static func reexecuteWithBetterKernelsIfNeeded() {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
              BLAS.coreName.lowercased() == "prescott",
              let core = preferredCore() else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        let arguments = CommandLine.arguments
        var cArguments = arguments.map { strdup($0) }
        cArguments.append(nil)
        execv("/proc/self/exe", &cArguments)
        // execv returns only on failure: carry on with the generic kernels.
        for pointer in cArguments { free(pointer) }
    }

    /// The best OpenBLAS core name the CPU flags support, or nil.
    static func preferredCore() -> String? {
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        if ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { return "SkylakeX" }
        if ["avx2", "fma", "avx"].allSatisfy(flags.contains) { return "Haswell" }
        return nil
    }
}
