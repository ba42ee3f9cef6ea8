import class CSV.CSVReader

/// The RFC 4180 reader of the CSV.swift package (yaslab/CSV.swift), under a name that this
/// module's own ``CSVReader`` does not shadow.
typealias RFC4180Reader = CSV.CSVReader
