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
///
/// A target of its own so that `invertnn` and `invertnn-bench` choose the same kernels: the
/// benchmark is meant to measure what the CLI runs. Process-wide (environment, `execv`), so it is
/// the executables' to do, not the library's.
public enum BLASCoreSelection {
    /// The environment variable OpenBLAS reads its core name from when it loads.
    public static let variable = "OPENBLAS_CORETYPE"

    /// Re-executes the process (`/proc/self/exe`, same arguments) with `OPENBLAS_CORETYPE` set to
    /// ``coreToSelect(environment:detectedCore:cpuinfo:)``'s choice, when there is one; returns
    /// otherwise, and also when `execv` fails (the process carries on with the kernels it has).
    public static func reexecuteWithBetterKernelsIfNeeded() {
        guard let core = coreToSelect() else { return }
        reexecute(setting: [variable: core])
    }

    /// The core to set `OPENBLAS_CORETYPE` to before OpenBLAS loads, or nil to keep what it chose:
    /// nil when `environment` already sets the variable, when `detectedCore` (case-insensitive) is
    /// not `"Prescott"`, or when the `flags` line of `cpuinfo` (the text of `/proc/cpuinfo`) lacks
    /// the instructions of both SkylakeX and Haswell (``preferredCore(cpuinfo:)``).
    public static func coreToSelect(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        detectedCore: String = BLAS.coreName,
        cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
    ) -> String? {
        guard environment[variable] == nil, detectedCore.lowercased() == "prescott", let cpuinfo else { return nil }
        return preferredCore(cpuinfo: cpuinfo)
    }

    /// The best OpenBLAS core name the CPU flags in `cpuinfo` (the text of `/proc/cpuinfo`; its
    /// first `flags` line) support: `"SkylakeX"` with AVX-512 F/CD/BW/DQ/VL, else `"Haswell"`
    /// with AVX2, FMA and AVX, else nil.
    public static func preferredCore(cpuinfo: String) -> String? {
        guard let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        if ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { return "SkylakeX" }
        if ["avx2", "fma", "avx"].allSatisfy(flags.contains) { return "Haswell" }
        return nil
    }

    /// Sets the variables `setting` (name to value) and re-executes the process with the same
    /// arguments, so that libraries reading them at load time (OpenBLAS) see them. Returns only if
    /// `execv` fails, with the variables left set.
    public static func reexecute(setting variables: [String: String]) {
        for (name, value) in variables { setenv(name, value, 1) }
        var cArguments = CommandLine.arguments.map { strdup($0) }
        cArguments.append(nil)
        execv("/proc/self/exe", &cArguments)
        // execv returns only on failure: the caller carries on as it is.
        for pointer in cArguments { free(pointer) }
    }
}
