import RealModule
import Foundation

/// The handwritten digits shipped with the package: 1797 greyscale 8×8 images with 17 levels
/// (pixel values 0…16) and a label 0…9.
///
/// Source: UCI Machine Learning Repository, "Optical Recognition of Handwritten Digits",
/// E. Alpaydin and C. Kaynak (1998), test part, as shipped in scikit-learn
/// (`sklearn/datasets/data/digits.csv.gz`); licence CC BY 4.0. The file is the package resource
/// `digits.csv.gz`: 1797 lines of 65 integers (64 pixels row by row, then the label).
public enum Digits {
    /// Samples in the file.
    public static let sampleCount = 1797
    /// Pixel levels K (values 0…16).
    public static let levels = 17
    /// The fixed split: 1300 training, 200 validation, 297 test samples.
    public static let splitCounts = (train: 1300, validation: 200, test: 297)
    /// The seed of the fixed split shuffle.
    public static let splitSeed: UInt64 = 1998

    /// Path of the bundled `digits.csv.gz`.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` if the resource bundle lacks the file.
    public static func resourcePath() throws -> String {
        guard let url = Bundle.module.url(forResource: "digits.csv", withExtension: "gz") else {
            throw InvertNNError.io(path: "digits.csv.gz", reason: "not found in the InvertNN resource bundle")
        }
        return url.path
    }

    /// The whole table: pixels `[1797, 64]` (integers 0…16) and the 1797 labels.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` or ``InvertNNError/malformedData(source:line:reason:)``
    ///   if the resource is missing or damaged.
    public static func table() throws -> (pixels: Matrix<Double>, labels: [Int]) {
        let path = try resourcePath()
        let table: Matrix<Double> = try CSVReader.parse(try GzipReader.read(path: path), source: path)
        guard table.rows == sampleCount, table.columns == 65 else {
            throw InvertNNError.malformedData(
                source: path, line: 0, reason: "expected \(sampleCount) × 65 values, found \(table.rows) × \(table.columns)")
        }
        let labels = (0..<table.rows).map { Int(table[$0, 64]) }
        return (table.columns(0..<64), labels)
    }

    /// The digits split 1300 / 200 / 297 (train / validation / test) by the fixed seed
    /// ``splitSeed``, as 8×8 images with 17 levels.
    ///
    /// - Throws: as ``table()``.
    public static func load<T: Scalar>(as _: T.Type = T.self) throws -> DiscreteDataset<T> {
        let (pixels, labels) = try table()
        return try DiscreteDataset(
            name: "digits", pixels: pixels, labels: labels, levels: levels, imageHeight: 8, imageWidth: 8,
            counts: splitCounts, splitSeed: splitSeed)
    }
}
