import Foundation

/// The numbered places a compiled condition reads, worked out from its schema once: every
/// path of scalars and records reachable from the variables (`member.tier`,
/// `member.profile.city`, `member.rfm`, `member.tags`), and every variable that is a list of
/// records (`orders`) with the fields of its records. A `CondSource` answers by these numbers,
/// so evaluating a condition builds no dictionaries.
public struct CondLayout: Sendable, Equatable {
    /// Path (dot-separated, from a variable) → slot. Includes record-typed paths (`member.rfm`,
    /// `member.profile`) and lists of scalars (`member.tags`); not lists of records.
    public let slots: [String: Int]
    /// Variable that is a list of records → list number.
    public let lists: [String: Int]
    /// Per list number: field name → field number.
    public let fields: [[String: Int]]
    /// Per list number: the field number of the records' time field (`within` windows on it).
    public let timeFields: [Int?]

    public init(schema: CondSchema) {
        var slots: [String: Int] = [:], lists: [String: Int] = [:]
        var fields: [[String: Int]] = [], timeFields: [Int?] = []
        func walk(_ path: String, _ type: CondType, depth: Int) {
            slots[path] = slots.count
            guard depth < 8, case .record(let name) = type.base, let r = schema.records[name] else { return }
            for (f, t) in r.fields.sorted(by: { $0.key < $1.key }) { walk(path + "." + f, t, depth: depth + 1) }
        }
        for (v, t) in schema.variables.sorted(by: { $0.key < $1.key }) {
            if case .list(let e) = t.base, case .record(let name) = e.base, let r = schema.records[name] {
                let names = r.fields.keys.sorted()
                lists[v] = fields.count
                let numbered = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
                fields.append(numbered)
                timeFields.append(r.timeField.flatMap { numbered[$0] })
            } else {
                walk(v, t, depth: 0)
            }
        }
        self.slots = slots; self.lists = lists; self.fields = fields; self.timeFields = timeFields
    }

    /// The layout of `CondSchema.member`, worked out once.
    public static let member = CondLayout(schema: .member)
}

/// Where a condition reads its inputs, by the numbers of a `CondLayout`. Implementations read
/// straight from their own data (a member's state, a column of a million members) and
/// need not build the values they are not asked for.
public protocol CondSource {
    /// The value at a slot; null when missing.
    func value(_ slot: Int) -> CondValue
    /// The number of records in list `list`.
    func count(_ list: Int) -> Int
    /// Field `field` of record `index` of list `list`; null when missing.
    func field(_ list: Int, _ index: Int, _ field: Int) -> CondValue
    /// Whether the records of `list` are in ascending order of their time field, none of them
    /// null (so a `within` window is a contiguous run found by binary search).
    func timeOrdered(_ list: Int) -> Bool
}

/// A `CondSource` over the variables as values (`["member": .record(…), "orders": .list(…)]`):
/// for tests and for callers that already hold values. A condition gives over it exactly what
/// it gives over the values themselves, inputs that do not match the schema included (a path
/// through something that is not a record, a list of records that is missing or holds other
/// values: the evaluation then reads those as values, and fails where it failed before).
public struct CondValueSource: CondSource {
    let slotValues: [CondValue]
    let rows: [[CondValue]]
    let fieldNames: [[String]]
    /// Per list: the variable's value when it is not a list of records (null when missing);
    /// evaluation reads it as a plain value.
    let plainLists: [CondValue?]
    /// Every path goes through records or nulls only (else evaluation walks paths field by
    /// field, to fail as the values would).
    let conforms: Bool

    public init(_ env: [String: CondValue], layout: CondLayout) {
        var values = [CondValue](repeating: .null, count: layout.slots.count)
        var conforms = true
        for (path, slot) in layout.slots {
            let parts = path.split(separator: ".")
            var v = env[String(parts[0])] ?? .null
            for p in parts.dropFirst() {
                switch v {
                case .record(let fs): v = fs[String(p)] ?? .null
                case .null: break
                default: v = .null; conforms = false
                }
            }
            values[slot] = v
        }
        slotValues = values
        var rows = [[CondValue]](repeating: [], count: layout.fields.count)
        var names = [[String]](repeating: [], count: layout.fields.count)
        var plain = [CondValue?](repeating: nil, count: layout.fields.count)
        for (name, list) in layout.lists {
            names[list] = layout.fields[list].sorted { $0.value < $1.value }.map(\.key)
            let v = env[name] ?? .null
            if case .list(let xs) = v, xs.allSatisfy({ if case .record = $0 { true } else { false } }) { rows[list] = xs } else { plain[list] = v }
        }
        self.rows = rows; self.fieldNames = names; self.plainLists = plain; self.conforms = conforms
    }

    public func value(_ slot: Int) -> CondValue { slotValues[slot] }
    public func count(_ list: Int) -> Int { rows[list].count }
    public func field(_ list: Int, _ index: Int, _ field: Int) -> CondValue {
        guard case .record(let fs) = rows[list][index] else { return .null }
        return fs[fieldNames[list][field]] ?? .null
    }
    public func timeOrdered(_ list: Int) -> Bool { false }
}
