import ArgumentParser
import Foundation
import InvertNN

/// Where the training data comes from: the bundled digits or a CSV file of integer pixels.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "'digits' (the bundled 8x8 handwritten digits) or the path of a numeric CSV file, optionally gzip-compressed, one sample per line.",
        valueName: "digits|PATH"))
    var data: String = "digits"

    @Option(parsing: .unconditional, help: "Number of pixel levels K of a CSV dataset (every value an integer in 0..<K), e.g. 256 for 8-bit images. Required with a PATH.")
    var levels: Int?

    @Flag(help: "The last column of the CSV file is a label: it is dropped, not modelled.")
    var labelColumn = false

    @Flag(help: "Skip the first line of the CSV file.")
    var header = false

    var isDigits: Bool { data == "digits" }

    func validate() throws {
        if isDigits {
            if let levels, levels != Digits.levels {
                throw ValidationError("--levels does not apply to the digits (they have \(Digits.levels) levels)")
            }
        } else {
            guard let levels else { throw ValidationError("--levels K is required with --data PATH") }
            guard levels >= 2 else { throw ValidationError("--levels must be at least 2, got \(levels)") }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: data, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw ValidationError("no such data file: \(data) (use --data digits or the path of a CSV file)")
            }
        }
    }

    /// The dataset in precision `T`.
    func load<T: Scalar>(_: T.Type) throws -> DiscreteDataset<T> {
        if isDigits { return try Digits.load(as: T.self) }
        return try DiscreteDataset<T>.csv(path: data, levels: levels ?? 256, labelColumn: labelColumn, hasHeader: header)
    }
}
