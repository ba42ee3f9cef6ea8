#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The C boundary to Open MPI: `libmpi` loaded at run time with `dlopen`, the few functions and
/// predefined handles data-parallel training needs looked up with `dlsym`. Loading at run time
/// keeps the build free of MPI headers (`swift build` and `make test` work on a machine without
/// Open MPI); only a process started by `mpirun` loads the library. Open MPI's ABI is assumed:
/// its handles (`MPI_COMM_WORLD`, `MPI_DOUBLE`, `MPI_SUM`) are the addresses of the exported
/// objects `ompi_mpi_comm_world`, `ompi_mpi_double`, `ompi_mpi_op_sum` (mpi.h,
/// `OMPI_PREDEFINED_GLOBAL`), and `MPI_IN_PLACE` is `(void *) 1`. MPICH's integer handles differ.
final class OpenMPILibrary {
    typealias InitThread = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<Int32>) -> Int32
    typealias CommQuery = @convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Int32
    typealias Allreduce = @convention(c) (
        UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, UnsafeMutableRawPointer, UnsafeMutableRawPointer, UnsafeMutableRawPointer
    ) -> Int32
    /// `MPI_Reduce_scatter(sendbuf, recvbuf, recvcounts, datatype, op, comm)`.
    typealias ReduceScatter = @convention(c) (
        UnsafeRawPointer?, UnsafeMutableRawPointer?, UnsafePointer<Int32>, UnsafeMutableRawPointer, UnsafeMutableRawPointer,
        UnsafeMutableRawPointer
    ) -> Int32
    /// `MPI_Allgatherv(sendbuf, sendcount, sendtype, recvbuf, recvcounts, displs, recvtype, comm)`.
    typealias Allgatherv = @convention(c) (
        UnsafeRawPointer?, Int32, UnsafeMutableRawPointer, UnsafeMutableRawPointer?, UnsafePointer<Int32>, UnsafePointer<Int32>,
        UnsafeMutableRawPointer, UnsafeMutableRawPointer
    ) -> Int32
    typealias Abort = @convention(c) (UnsafeMutableRawPointer, Int32) -> Int32
    typealias Barrier = @convention(c) (UnsafeMutableRawPointer) -> Int32
    typealias Finalize = @convention(c) () -> Int32
    typealias Wtime = @convention(c) () -> Double

    /// `MPI_THREAD_FUNNELED` (mpi.h enum: SINGLE 0, FUNNELED 1): only the main thread calls MPI;
    /// OpenBLAS threads never do.
    static let threadFunneled: Int32 = 1
    /// `MPI_IN_PLACE` in Open MPI.
    static var inPlace: UnsafeRawPointer? { UnsafeRawPointer(bitPattern: 1) }

    let initThread: InitThread
    let commRank: CommQuery
    let commSize: CommQuery
    let allreduce: Allreduce
    let reduceScatter: ReduceScatter
    let allgatherv: Allgatherv
    let abort: Abort
    let barrier: Barrier
    let finalize: Finalize
    let wtime: Wtime
    /// `MPI_COMM_WORLD`, `MPI_DOUBLE`, `MPI_FLOAT`, `MPI_SUM`.
    let commWorld, double, float, sum: UnsafeMutableRawPointer

    /// Loads `libmpi.so.40` (Open MPI 3 and 4; the Debian package libopenmpi3), else `libmpi.so`.
    ///
    /// - Throws: ``DistributedError/unavailable(_:)`` with `dlerror`'s reason if the library or a
    ///   symbol is missing.
    init() throws {
        // RTLD_GLOBAL: Open MPI's own plugins (mca_*.so) resolve their symbols against libmpi.
        var handle: UnsafeMutableRawPointer? = nil
        var reasons = [String]()
        for name in ["libmpi.so.40", "libmpi.so"] {
            handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL)
            if handle != nil { break }
            reasons.append(dlerror().map { String(cString: $0) } ?? name)
        }
        guard let handle else {
            throw DistributedError.unavailable("cannot load Open MPI (install openmpi-bin): \(reasons.joined(separator: "; "))")
        }
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let address = dlsym(handle, name) else {
                throw DistributedError.unavailable("libmpi has no symbol \(name) (not Open MPI?)")
            }
            return address
        }
        initThread = unsafeBitCast(try symbol("MPI_Init_thread"), to: InitThread.self)
        commRank = unsafeBitCast(try symbol("MPI_Comm_rank"), to: CommQuery.self)
        commSize = unsafeBitCast(try symbol("MPI_Comm_size"), to: CommQuery.self)
        allreduce = unsafeBitCast(try symbol("MPI_Allreduce"), to: Allreduce.self)
        reduceScatter = unsafeBitCast(try symbol("MPI_Reduce_scatter"), to: ReduceScatter.self)
        allgatherv = unsafeBitCast(try symbol("MPI_Allgatherv"), to: Allgatherv.self)
        abort = unsafeBitCast(try symbol("MPI_Abort"), to: Abort.self)
        barrier = unsafeBitCast(try symbol("MPI_Barrier"), to: Barrier.self)
        finalize = unsafeBitCast(try symbol("MPI_Finalize"), to: Finalize.self)
        wtime = unsafeBitCast(try symbol("MPI_Wtime"), to: Wtime.self)
        commWorld = try symbol("ompi_mpi_comm_world")
        double = try symbol("ompi_mpi_double")
        float = try symbol("ompi_mpi_float")
        sum = try symbol("ompi_mpi_op_sum")
    }
}
