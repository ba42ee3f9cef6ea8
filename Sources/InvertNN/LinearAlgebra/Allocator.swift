import CBLAS

/// Process-wide settings of the C allocator (glibc `malloc`) for training loops.
///
/// Every layer call returns new matrices, so a training step frees and allocates the same
/// buffer sizes again and again. With glibc's defaults, blocks over 128 KiB are `mmap`ed and a
/// free top of the heap over 128 KiB is returned to the kernel, so each step faults its pages back
/// in (measured here: about 575 page faults per coupling step on `[1024, 64]`, 10-20 % of the
/// step). ``keepFreedMemoryForReuse()`` keeps that memory in the heap, where the next step reuses
/// it without a page fault. It is what `invertnn train` and `invertnn-bench` do at start-up;
/// library users opt in by calling it once.
public enum Allocator {
    /// Raises glibc's `M_MMAP_THRESHOLD` to its maximum (32 MiB on 64-bit) and
    /// `M_TRIM_THRESHOLD` to 1 GiB with `mallopt`.
    ///
    /// Cost: up to the largest step's worth of freed memory stays resident after a step (as in
    /// PyTorch's caching allocator); blocks over 32 MiB are still `mmap`ed and returned.
    /// - Returns: `true` if glibc accepted both settings.
    @discardableResult
    public static func keepFreedMemoryForReuse() -> Bool {
        let mmap = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        let trim = mallopt(M_TRIM_THRESHOLD, 1 << 30)
        return mmap == 1 && trim == 1
    }

    /// Returns the heap's free memory to the kernel now (glibc `malloc_trim(0)`), for example after
    /// training, or before measuring resident memory: freed blocks otherwise stay resident until
    /// the top of the heap is free, so the resident size depends on the heap's layout.
    /// - Returns: `true` if some memory was returned.
    @discardableResult
    public static func returnFreeMemory() -> Bool {
        malloc_trim(0) == 1
    }
}
