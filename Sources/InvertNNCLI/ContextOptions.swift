import ArgumentParser
import Foundation
import InvertNN

/// The options of `invertnn train` that make the flow conditional, `p(x | c)`.
struct ContextOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Train a conditional flow p(x | c): the CSV columns (header names or 1-based numbers, comma-separated) that form the context c; the other kept columns are x. On digits and mnist, 'label' (or the label's column number, 65 or 785) trains a class-conditional flow.",
        valueName: "A,B,..."))
    var contextColumns: String?

    @Option(parsing: .unconditional, help: "Width of an embedding network (one hidden layer of 64 units, tanh) applied once to the context before every conditioner reads it; 0 = none.")
    var contextEmbedding: Int = 0

    var keys: [String] {
        (contextColumns ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        if contextColumns != nil, keys.isEmpty { throw ValidationError("--context-columns names no column") }
        for key in keys {
            if let number = Int(key), number < 1 { throw ValidationError("--context-columns: column numbers start at 1, got \(number)") }
        }
        guard contextEmbedding >= 0, contextEmbedding <= 4096 else {
            throw ValidationError("--context-embedding must be in 0...4096, got \(contextEmbedding)")
        }
        if contextEmbedding > 0, contextColumns == nil { throw ValidationError("--context-embedding needs --context-columns") }
    }

    /// The context encoder of a new conditional model for `split` (its embedding initialized from `seed`).
    func encoder<T: Scalar>(for split: ContextSplit<T>, seed: UInt64) throws -> ContextEncoder<T> {
        var generator = SeededGenerator(seed: seed ^ 0x6A09_E667_F3BC_C908)
        let width = split.encoding.width(features: split.names.count)
        let embedding = contextEmbedding > 0
            ? try MLP<T>(sizes: [width, 64, contextEmbedding], activation: .tanh, using: &generator) : nil
        return try ContextEncoder(features: split.names.count, encoding: split.encoding, embedding: embedding)
    }
}

/// The context columns of a conditional run, split off the data: names, one matrix per split and
/// the encoding (one-hot classes for image labels, standardization fitted on the training split
/// otherwise).
struct ContextSplit<T: Scalar> {
    var names: [String]
    var train: Matrix<T>
    var validation: Matrix<T>
    var test: Matrix<T>
    var encoding: ContextEncoder<T>.Encoding

    /// One-hot class count of a labelled image dataset, else `nil`.
    var classes: Int? {
        if case let .oneHot(k) = encoding { return k }
        return nil
    }
}

extension ContextEncoder.Encoding {
    /// Columns after the encoding of `features` raw columns.
    func width(features: Int) -> Int {
        if case let .oneHot(classes) = self { return classes }
        return features
    }
}

extension LoadedData {
    /// The data without the columns `keys` (names or 1-based file column numbers), which become
    /// the context; for digits and MNIST the only context is the label.
    ///
    /// - Throws: `ValidationError` for an unknown column, a context that takes every column, or
    ///   data without the asked labels.
    func splittingContext(_ keys: [String], option: String = "--context-columns") throws -> LoadedData<T> {
        if let named = NamedData(rawValue: name) {
            let labelNumber = dimensions + 1
            guard keys.count == 1, keys[0] == "label" || keys[0] == String(labelNumber), labels.count == 3 else {
                throw ValidationError(
                    "\(option): --data \(name) has one context column, its class label ('label' or \(labelNumber))"
                        + (labels.count == 3 ? "" : ", and \(named.rawValue) has no labels"))
            }
            func column(_ values: [Int]) -> Matrix<T> {
                var m = Matrix<T>(rows: values.count, columns: 1)
                for (i, v) in values.enumerated() { m[i, 0] = T(v) }
                return m
            }
            let classes = (labels.flatMap { $0 }.max() ?? 0) + 1
            var copy = self
            copy.context = ContextSplit(
                names: ["label"], train: column(labels[0]), validation: column(labels[1]), test: column(labels[2]),
                encoding: .oneHot(classes: max(2, classes)))
            return copy
        }
        guard levels == nil else {
            throw ValidationError("\(option) is supported on continuous CSV data and on the labels of digits and mnist")
        }
        let names = columnNames ?? (1...dimensions).map { "x\($0)" }
        let sources = sourceColumns ?? Array(0..<dimensions)
        var picked = [Int]()
        for key in keys {
            let index: Int?
            if let number = Int(key) {
                index = sources.firstIndex(of: number - 1)
            } else {
                index = names.firstIndex(of: key)
            }
            guard let index else {
                throw ValidationError("\(option): no column '\(key)' among the kept columns of \(name) (\(names.prefix(12).joined(separator: ", "))\(names.count > 12 ? ", …" : ""))")
            }
            if !picked.contains(index) { picked.append(index) }
        }
        let rest = (0..<dimensions).filter { !picked.contains($0) }
        guard rest.count >= 2 else {
            throw ValidationError("\(option): \(rest.count) column\(rest.count == 1 ? "" : "s") would be left to model; a coupling flow needs at least 2")
        }
        func select(_ m: Matrix<T>, _ columns: [Int]) -> Matrix<T> {
            var out = Matrix<T>(rows: m.rows, columns: columns.count)
            for r in 0..<m.rows { for (k, c) in columns.enumerated() { out[r, k] = m[r, c] } }
            return out
        }
        let contextTrain = select(train, picked)
        var copy = LoadedData(
            name: name, kind: rest.count == 2 ? .points : .tabular, train: select(train, rest),
            validation: select(validation, rest), test: select(test, rest), levels: nil, imageHeight: 1, imageWidth: rest.count,
            columnNames: rest.map { names[$0] }, sourceColumns: rest.map { sources[$0] })
        copy.context = ContextSplit(
            names: picked.map { names[$0] }, train: contextTrain, validation: select(validation, picked),
            test: select(test, picked), encoding: .standardization(try Standardization(fitting: contextTrain)))
        return copy
    }

    init(
        name: String, kind: DataKind, train: Matrix<T>, validation: Matrix<T>, test: Matrix<T>, levels: Int?,
        imageHeight: Int, imageWidth: Int, columnNames: [String]?, sourceColumns: [Int]?
    ) {
        self.name = name
        self.kind = kind
        self.train = train
        self.validation = validation
        self.test = test
        self.levels = levels
        self.imageHeight = imageHeight
        self.imageWidth = imageWidth
        self.columnNames = columnNames
        self.sourceColumns = sourceColumns
    }
}

/// Contexts for the sample picture of a conditional model: `perClass` rows of each class (the
/// grid then shows one class per row), or the given rows (the test contexts) cycled to `count`.
enum ContextSampling {
    static func contexts<T: Scalar>(classes: Int?, rows: Matrix<T>?, count: Int, perClass: Int = 10) -> Matrix<T> {
        if let classes {
            var m = Matrix<T>(rows: classes * perClass, columns: 1)
            for k in 0..<classes { for j in 0..<perClass { m[k * perClass + j, 0] = T(k) } }
            return m
        }
        let source = rows!
        return source.rows(at: (0..<count).map { $0 % source.rows })
    }
}
