import Foundation

// The condition language (条件表达式): types, values, the schema and errors.
// See docs/conditions.md for the language itself.

/// The type of a condition expression, or of a value given to one.
public indirect enum CondType: Sendable, Hashable, CustomStringConvertible {
    case int, bool, string, duration, timestamp, date
    /// The type of the literal `null` (and of `[]`'s elements).
    case null
    case list(CondType)
    /// A record type declared in the schema, by name.
    case record(String)
    /// A value that may be missing (null). Never nested: use `CondType.optional(of:)` to build one.
    case optional(CondType)

    /// `t` made optional: `optional(t)`, or `t` itself when it is already optional or null.
    public static func optional(of t: CondType) -> CondType {
        switch t { case .null, .optional: t; default: .optional(t) }
    }

    public var description: String {
        switch self {
        case .int: "int"
        case .bool: "bool"
        case .string: "string"
        case .duration: "duration"
        case .timestamp: "timestamp"
        case .date: "date"
        case .null: "null"
        case .list(let e): "list<\(e)>"
        case .record(let name): name
        case .optional(let t): "\(t)?"
        }
    }

    /// The type without its optionality.
    var base: CondType { if case .optional(let t) = self { t } else { self } }
    var isOptional: Bool { if case .optional = self { true } else { false } }
    /// `self`, made optional when `flag` is set.
    func optional(if flag: Bool) -> CondType { flag ? .optional(of: self) : self }

    /// The type in a sentence, with its article: "an int", "a list<string>", "a member record",
    /// "an optional timestamp", "null".
    var prose: String {
        switch self {
        case .null: "null"
        case .int: "an int"
        case .record(let name): "a \(name) record"
        case .optional(.record(let name)): "an optional \(name) record"
        case .optional(let t): "an optional \(t)"
        default: "a \(self)"
        }
    }
}

/// A value given to or computed by a condition. Money is integer minor units; durations are
/// seconds; records are dictionaries of their fields (a missing field is null).
public enum CondValue: Sendable, Hashable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case string(String)
    /// Seconds (may be negative).
    case duration(Int64)
    case timestamp(Timestamp)
    case date(CivilDate)
    case list([CondValue])
    case record([String: CondValue])

    public var description: String {
        switch self {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .int(let i): String(i)
        case .string(let s): CondPrinter.quote(s)
        case .duration(let s): "duration('\(CondValue.durationText(s))')"
        case .timestamp(let t): "timestamp('\(t.iso8601)')"
        case .date(let d): "date('\(d)')"
        case .list(let xs): "[" + xs.map(\.description).joined(separator: ", ") + "]"
        case .record(let fields): "{" + fields.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }

    /// Seconds as the duration literal text: `90d`, `1h30m`, `-45s`, `0s`.
    static func durationText(_ seconds: Int64) -> String {
        if seconds == 0 { return "0s" }
        if seconds == Int64.min { return "-\(UInt64(Int64.max) + 1)s" }
        var rest = seconds.magnitude, out = seconds < 0 ? "-" : ""
        for (unit, size) in [("d", UInt64(86_400)), ("h", 3_600), ("m", 60), ("s", 1)] where rest >= size {
            out += "\(rest / size)\(unit)"; rest %= size
        }
        return out
    }

    /// The kind of value, for messages: "an int", "a string", "a record".
    var kindProse: String {
        switch self {
        case .null: "null"
        case .bool: "a bool"
        case .int: "an int"
        case .string: "a string"
        case .duration: "a duration"
        case .timestamp: "a timestamp"
        case .date: "a date"
        case .list: "a list"
        case .record: "a record"
        }
    }
}

extension CondValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(stringLiteral s: String) { self = .string(s) }
    public init(integerLiteral i: Int64) { self = .int(i) }
    public init(booleanLiteral b: Bool) { self = .bool(b) }
    public init(arrayLiteral xs: CondValue...) { self = .list(xs) }
    public init(dictionaryLiteral pairs: (String, CondValue)...) {
        self = .record(Dictionary(pairs, uniquingKeysWith: { _, last in last }))
    }
}

/// What a condition may refer to: variables with their types, and the record types they use.
/// `now` (the evaluation instant, a timestamp) is always there and cannot be declared.
public struct CondSchema: Sendable, Equatable {
    public struct Record: Sendable, Equatable {
        public var fields: [String: CondType]
        /// The timestamp field `within(d)` windows on (for orders: `at`); nil when the records
        /// have no time.
        public var timeField: String?
        public init(_ fields: [String: CondType], timeField: String? = nil) {
            self.fields = fields; self.timeField = timeField
        }
    }
    public var variables: [String: CondType]
    public var records: [String: Record]
    public init(variables: [String: CondType] = [:], records: [String: Record] = [:]) {
        self.variables = variables; self.records = records
    }

    /// A member of a loyalty program and the member's orders: `member` and `orders` (see
    /// docs/conditions.md for every field). Profile fields, `rfm`, `lifecycle`, `churn`, `lastOrderAt`,
    /// an order's `category` and `store` may be null.
    public static let member = CondSchema(
        variables: ["member": .record("member"), "orders": .list(.record("order"))],
        records: [
            "member": Record([
                "id": .string, "tier": .string, "registeredAt": .timestamp,
                "profile": .record("profile"), "points": .record("points"), "growth": .record("growth"),
                "tags": .list(.string), "identities": .list(.record("identity")),
                "rfm": .optional(.record("rfm")), "lifecycle": .optional(.string), "churn": .optional(.record("churn")),
                "lastOrderAt": .optional(.timestamp), "orderCount": .int, "spentMinor": .int,
            ]),
            "profile": Record([
                "name": .optional(.string), "gender": .optional(.string), "birthday": .optional(.date),
                "city": .optional(.string), "registeredChannel": .optional(.string),
                "registeredStore": .optional(.string), "marketingConsent": .optional(.bool),
            ]),
            "points": Record(["balance": .int, "available": .int, "pending": .int]),
            "growth": Record(["lifetime": .int, "qualifying": .int]),
            "identity": Record(["kind": .string, "value": .string]),
            "rfm": Record(["r": .int, "f": .int, "m": .int, "score": .int, "topPercent": .int]),
            "churn": Record(["pAlive": .int, "atRisk": .bool, "expectedPurchasesMilli": .int, "expectedValue": .int, "clv": .int]),
            "order": Record([
                "id": .string, "at": .timestamp, "amount": .int, "category": .optional(.string), "categories": .list(.string),
                "channel": .string, "store": .optional(.string), "skus": .list(.string), "usedCoupon": .bool,
            ], timeField: "at"),
        ])
}

/// A problem with a condition: where (1-based line and column, counted in Unicode scalars) and
/// what was expected. Compile-time kinds are `syntax`, `type` and `limit`; evaluation gives
/// `evaluation` (division by zero, overflow, input not matching the schema) and `budget`.
public struct CondError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable { case syntax, type, limit, evaluation, budget }
    public var kind: Kind
    public var line: Int
    public var column: Int
    public var message: String
    public init(kind: Kind, line: Int, column: Int, message: String) {
        self.kind = kind; self.line = line; self.column = column; self.message = message
    }
    init(_ kind: Kind, _ pos: CondPos, _ message: String) {
        self.init(kind: kind, line: pos.line, column: pos.column, message: message)
    }
    /// `line:column: message`.
    public var description: String { "\(line):\(column): \(message)" }
}

/// A place in the source: 1-based line and column.
struct CondPos: Sendable, Hashable {
    var line: Int, column: Int
    static let start = CondPos(line: 1, column: 1)
}
