import Foundation

/// A JSON (or YAML) document as plain values, for validation with paths.
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
    public var typeName: String {
        switch self {
        case .null: "null"; case .bool: "boolean"; case .int, .double: "number"
        case .string: "string"; case .array: "array"; case .object: "object"
        }
    }
}

/// One problem found in an input document: where, and why.
public struct FieldError: Error, Sendable, Equatable, Codable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
    public var description: String { "\(path.isEmpty ? "(document)" : path): \(reason)" }
}

/// Every problem found in a document; nothing is stored when there is one.
public struct ValidationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [FieldError]
    public init(_ errors: [FieldError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Reads a `JSONValue` document field by field, collecting every error with its path.
public final class DocumentReader {
    public private(set) var errors: [FieldError] = []
    public init() {}
    public func fail(_ path: String, _ reason: String) { errors.append(FieldError(path: path, reason: reason)) }

    public func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public func object(_ v: JSONValue?, _ path: String, allowed: Set<String>? = nil, required: Bool = true) -> [String: JSONValue]? {
        guard let v, v != .null else { if required { fail(path, "is required") }; return nil }
        guard case .object(let o) = v else { fail(path, "must be an object, got \(v.typeName)"); return nil }
        if let allowed {
            for k in o.keys.sorted() where !allowed.contains(k) {
                fail(join(path, k), "is not a known field (known: \(allowed.sorted().joined(separator: ", ")))")
            }
        }
        return o
    }
    public func array(_ v: JSONValue?, _ path: String, required: Bool = true, maxCount: Int = 1000) -> [JSONValue]? {
        guard let v, v != .null else { if required { fail(path, "is required") }; return nil }
        guard case .array(let a) = v else { fail(path, "must be an array, got \(v.typeName)"); return nil }
        if a.count > maxCount { fail(path, "has \(a.count) items; at most \(maxCount) are allowed"); return nil }
        return a
    }
    public func string(_ v: JSONValue?, _ path: String, required: Bool = true, maxLength: Int = 200,
                       pattern: ((String) -> Bool)? = nil, patternText: String = "") -> String? {
        guard let v, v != .null else { if required { fail(path, "is required") }; return nil }
        guard case .string(let s) = v else { fail(path, "must be a string, got \(v.typeName)"); return nil }
        if s.isEmpty { fail(path, "must not be empty"); return nil }
        if s.count > maxLength { fail(path, "is \(s.count) characters long; at most \(maxLength) are allowed"); return nil }
        if let pattern, !pattern(s) { fail(path, "'\(s)' is not valid: \(patternText)"); return nil }
        return s
    }
    public func int(_ v: JSONValue?, _ path: String, required: Bool = true, min: Int64 = 0, max: Int64 = 1_000_000_000_000) -> Int64? {
        guard let v, v != .null else { if required { fail(path, "is required") }; return nil }
        let i: Int64
        switch v {
        case .int(let x): i = x
        case .double(let d) where d == d.rounded() && abs(d) < 9e15: i = Int64(d)
        default: fail(path, "must be a whole number, got \(v.typeName == "number" ? "a fraction" : v.typeName)"); return nil
        }
        if i < min { fail(path, "must be at least \(min), got \(i)"); return nil }
        if i > max { fail(path, "must be at most \(max), got \(i)"); return nil }
        return i
    }
    /// A decimal number read as thousandths (1.5 -> 1500); more than three decimals is an error.
    public func permille(_ v: JSONValue?, _ path: String, required: Bool = true, min: Int64 = 0, max: Int64) -> Int64? {
        guard let v, v != .null else { if required { fail(path, "is required") }; return nil }
        let value: Int64
        switch v {
        case .int(let x):
            guard abs(x) <= max / 1000 + 1 else { fail(path, "must be at most \(Double(max) / 1000), got \(x)"); return nil }
            value = x * 1000
        case .double(let d):
            let scaled = (d * 1000).rounded()
            guard abs(d * 1000 - scaled) < 1e-6, abs(scaled) < 9e15 else { fail(path, "must have at most three decimal places, got \(d)"); return nil }
            value = Int64(scaled)
        case .string(let s):
            guard let d = Double(s) else { fail(path, "must be a number, got string"); return nil }
            return permille(.double(d), path, required: required, min: min, max: max)
        default: fail(path, "must be a number, got \(v.typeName)"); return nil
        }
        if value < min { fail(path, "must be at least \(Double(min) / 1000), got \(Double(value) / 1000)"); return nil }
        if value > max { fail(path, "must be at most \(Double(max) / 1000), got \(Double(value) / 1000)"); return nil }
        return value
    }
    public func bool(_ v: JSONValue?, _ path: String, default d: Bool) -> Bool {
        guard let v, v != .null else { return d }
        guard case .bool(let b) = v else { fail(path, "must be true or false, got \(v.typeName)"); return d }
        return b
    }
    public func oneOf<E: RawRepresentable & CaseIterable>(_ v: JSONValue?, _ path: String, _ type: E.Type, default d: E? = nil) -> E? where E.RawValue == String {
        guard let v, v != .null else {
            if d == nil { fail(path, "is required (one of: \(E.allCases.map(\.rawValue).joined(separator: ", ")))") }
            return d
        }
        guard case .string(let s) = v, let e = E(rawValue: s) else {
            fail(path, "must be one of: \(E.allCases.map(\.rawValue).joined(separator: ", "))"); return nil
        }
        return e
    }
    public func timestamp(_ v: JSONValue?, _ path: String, required: Bool = true) -> Timestamp? {
        guard let s = string(v, path, required: required, maxLength: 40) else { return nil }
        guard let t = Timestamp(iso8601: s) else { fail(path, "must be an ISO 8601 date-time such as 2026-11-01T00:00:00+08:00, got '\(s)'"); return nil }
        return t
    }
}

public enum Identifier {
    /// Lower-case identifiers used for program, tier, activity and rule ids: `[a-z][a-z0-9_-]{0,63}`.
    public static func isValid(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard let f = b.first, f >= 97 && f <= 122, b.count <= 64 else { return false }
        return b.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45 }
    }
    public static let rule = "use lower-case letters, digits, '_' or '-', starting with a letter, at most 64 characters"
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(stringLiteral v: String) { self = .string(v) }
    public init(integerLiteral v: Int64) { self = .int(v) }
    public init(booleanLiteral v: Bool) { self = .bool(v) }
    public init(arrayLiteral v: JSONValue...) { self = .array(v) }
    public init(dictionaryLiteral v: (String, JSONValue)...) { self = .object(Dictionary(v, uniquingKeysWith: { $1 })) }
}
