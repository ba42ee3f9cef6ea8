extension Array where Element: Scalar {
    /// Makes the array `count` entries long with unspecified contents, keeping its storage when it
    /// already has that size (values rebuilt every training step from the parameters, such as a
    /// Householder plan's unit vectors and block factors). Callers overwrite every entry; if the
    /// storage is still shared, the first write copies it (copy on write), so no other holder of
    /// the old values sees them change.
    @inline(__always)
    mutating func prepareForOverwrite(count: Int) {
        if self.count != count {
            self = [Element](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        }
    }
}
