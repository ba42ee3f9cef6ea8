extension Matrix {
    /// A `[rows, columns]` matrix with unspecified contents: `recycled`'s storage (moved out of
    /// it) when it has that shape, else a new one. Callers overwrite every entry; storage another
    /// value still shares is copied by the first write (copy on write), never changed under it.
    static func recycling(_ recycled: inout Matrix?, rows: Int, columns: Int) -> Matrix {
        var taken: Matrix? = nil
        swap(&taken, &recycled)
        guard let matrix = taken, matrix.rows == rows, matrix.columns == columns else {
            return Matrix(uninitializedRows: rows, columns: columns)
        }
        return matrix
    }
}
