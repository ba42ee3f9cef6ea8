extension Checkpoint {
    /// Refuses an architecture read from a file whose parameter count exceeds
    /// ``SizeLimits/maximumParameters``, before any layer is built.
    ///
    /// - Throws: ``CheckpointError/badArchitecture(path:reason:)`` naming the count and the limit.
    static func requireParameterCap(_ architecture: JSONValue, path: String) throws {
        guard case let .object(members) = architecture else { return }
        do {
            try SizeLimits.requireParameterCount(of: members.mapValues(configurationValue), operation: "Checkpoint")
        } catch let error as InvertNNError {
            throw CheckpointError.badArchitecture(path: path, reason: "\(error)")
        }
    }

    /// The typed form of a JSON configuration entry (what ``SizeLimits/parameterCount(of:)``
    /// reads): integral numbers as `.int`, lists of objects as `.layers`, other lists as `.ints`
    /// or `.doubles`.
    private static func configurationValue(_ json: JSONValue) -> ConfigurationValue {
        switch json {
        case .null: return .null
        case let .bool(b): return .bool(b)
        case let .string(s): return .string(s)
        case let .number(v): return v == v.rounded() && abs(v) < 9e18 ? .int(Int(v)) : .double(v)
        case let .object(members): return .layers([members.mapValues(configurationValue)])
        case let .array(items):
            let objects = items.compactMap { item -> [String: ConfigurationValue]? in
                if case let .object(m) = item { return m.mapValues(configurationValue) }
                return nil
            }
            if objects.count == items.count, !items.isEmpty { return .layers(objects) }
            let numbers = items.compactMap(\.doubleValue)
            guard numbers.count == items.count else { return .null }
            if numbers.allSatisfy({ $0 == $0.rounded() && abs($0) < 9e18 }) { return .ints(numbers.map { Int($0) }) }
            return .doubles(numbers)
        }
    }
}
