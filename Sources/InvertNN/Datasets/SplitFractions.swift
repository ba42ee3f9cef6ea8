/// The fractions of a data file's rows that go to the training, validation and test splits
/// (`invertnn train --split 0.8,0.1,0.1`).
///
/// Row counts are rounded as the loaders always did: `validation = round(n·v)`,
/// `test = round(n·t)` (each at least 1 when its fraction is positive, 0 when it is 0) and the
/// training split takes the rest, so ``default`` reproduces the historical 75/10/15 split row
/// for row.
public struct SplitFractions: Sendable, Equatable {
    /// Fraction of the rows used for training, in (0, 1].
    public let train: Double
    /// Fraction of the rows used for model selection, in [0, 1).
    public let validation: Double
    /// Fraction of the rows reported as the test split, in [0, 1).
    public let test: Double

    /// 75 % / 10 % / 15 %: the split of every CSV file and toy density.
    public static let `default` = SplitFractions(checked: 0.75, 0.10, 0.15)

    private init(checked train: Double, _ validation: Double, _ test: Double) {
        self.train = train
        self.validation = validation
        self.test = test
    }

    /// Fractions that are finite, non-negative, sum to 1 within 1e-9, with `train > 0`.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` naming the bad value.
    public init(train: Double, validation: Double, test: Double) throws {
        for (name, value) in [("train", train), ("validation", validation), ("test", test)] {
            guard value.isFinite, value >= 0 else {
                throw InvertNNError.invalidArgument(operation: "SplitFractions", reason: "the \(name) fraction \(value) is not a finite number ≥ 0")
            }
        }
        guard train > 0 else {
            throw InvertNNError.invalidArgument(operation: "SplitFractions", reason: "the train fraction must be positive, got \(train)")
        }
        let sum = train + validation + test
        guard Swift.abs(sum - 1) <= 1e-9 else {
            throw InvertNNError.invalidArgument(
                operation: "SplitFractions", reason: "the fractions \(train), \(validation), \(test) sum to \(sum), not 1")
        }
        self.init(checked: train, validation, test)
    }

    /// Parses `"TRAIN,VALIDATION,TEST"` (three decimal numbers; spaces allowed).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` for another count of
    ///   fields, a field that is not a decimal number, or fractions ``init(train:validation:test:)`` refuses.
    public init(parsing text: String) throws {
        let fields = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        guard fields.count == 3 else {
            throw InvertNNError.invalidArgument(
                operation: "SplitFractions", reason: "expected three fractions TRAIN,VALIDATION,TEST (e.g. 0.8,0.1,0.1), got '\(text.prefix(60))'")
        }
        let values = try fields.map { field -> Double in
            // Decimal only: Double(String) would also take "0x1p-1", "nan" and "inf".
            guard !field.isEmpty, field.allSatisfy({ "0123456789.eE+-".contains($0) }), let value = Double(field) else {
                throw InvertNNError.invalidArgument(operation: "SplitFractions", reason: "'\(field.prefix(40))' is not a decimal fraction")
            }
            return value
        }
        try self.init(train: values[0], validation: values[1], test: values[2])
    }

    /// The three row counts of `rows` rows: see the type's rounding rule.
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` when the training split
    ///   would be empty (too few rows for the held-out splits).
    public func counts(rows n: Int) throws -> (train: Int, validation: Int, test: Int) {
        func count(_ fraction: Double) -> Int { fraction > 0 ? max(1, Int((Double(n) * fraction).rounded())) : 0 }
        let validation = count(self.validation), test = count(self.test)
        let train = n - validation - test
        guard train >= 1 else {
            throw InvertNNError.invalidArgument(
                operation: "SplitFractions",
                reason: "\(n) rows are too few to split \(train)/\(validation)/\(test) (the training split would be empty)")
        }
        return (train, validation, test)
    }

    /// These fractions over the splits still taken from one file when the others come from
    /// their own files: the fractions of the kept splits scaled to sum to 1, the others 0
    /// (`--test T` alone splits the training file 0.75 : 0.10, that is 88.2 % / 11.8 %).
    ///
    /// - Throws: ``InvertNNError/invalidArgument(operation:reason:)`` if a kept held-out split
    ///   has fraction 0.
    public func keeping(validation keepValidation: Bool, test keepTest: Bool) throws -> SplitFractions {
        let v = keepValidation ? validation : 0, t = keepTest ? test : 0
        for (name, kept, value) in [("validation", keepValidation, validation), ("test", keepTest, test)] where kept && value == 0 {
            throw InvertNNError.invalidArgument(
                operation: "SplitFractions", reason: "the \(name) split has fraction 0 and no file of its own; it would be empty")
        }
        let total = train + v + t
        return SplitFractions(checked: train / total, v / total, t / total)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
