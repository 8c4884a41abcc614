import Foundation

/// Parts of timestamps (in the program's time zone), dates and durations (whole units,
/// truncated toward zero).
enum CondPart: String, Sendable, CaseIterable {
    case year, month, day, dayOfWeek, hour, date
    case days, hours, minutes, seconds

    static func of(_ t: CondType) -> [CondPart] {
        switch t {
        case .timestamp: [.year, .month, .day, .dayOfWeek, .hour, .date]
        case .date: [.year, .month, .day, .dayOfWeek]
        case .duration: [.days, .hours, .minutes, .seconds]
        default: []
        }
    }
    var type: CondType { self == .date ? .date : .int }
}

enum CondTextOp: String, Sendable { case startsWith, endsWith, contains, size, lower }
/// Per-element operations whose argument is a condition on the element.
enum CondEach: String, Sendable { case exists, all, filter, count }
/// Aggregates over the elements, or over a field or expression of each element. Nulls are skipped.
enum CondReduce: String, Sendable { case sum, max, min, avg }

/// The checked tree the evaluator runs: names resolved, methods chosen, shorthands expanded.
struct CondNode: Sendable {
    indirect enum Kind: Sendable {
        case value(CondValue)
        case now
        case variable(String)
        /// An element bound by a method such as `exists(o, …)`: its index on the evaluator's stack.
        case local(Int)
        case field(CondNode, String)
        /// `varies`: the operand may change with `now` (for `nextChange`).
        case part(CondNode, CondPart, varies: Bool)
        case not(CondNode)
        /// `a && b && …` or `a || b || …`, left to right, stopping when the answer is known.
        case logic(CondOp, [CondNode])
        case neg(CondNode)
        /// `first op₁ x₁ op₂ x₂ …`, left to right.
        case arith(CondNode, [CondStep])
        /// `varies`: the operands are timestamps or durations that may change with `now`.
        case compare(CondOp, CondNode, CondNode, varies: Bool)
        case isIn(CondNode, CondNode)
        case choose(CondNode, CondNode, CondNode)
        case list([CondNode])
        case has(CondNode)
        case text(CondTextOp, CondNode, CondNode?)
        case size(CondNode)
        /// Elements whose time (the record's `field`, or the element itself) is in (now − d, now].
        case within(CondNode, CondNode, field: String?)
        /// The body sees the element as the newest local.
        case each(CondEach, CondNode, body: CondNode)
        case reduce(CondReduce, CondNode, body: CondNode?)
        // Only in a plan (`CondNode.resolved`): names turned into a layout's numbers.
        /// A variable and its fields (`member.profile.city`, `original`, `cost` nodes) read from one slot.
        case slot(Int, cost: Int, original: CondNode)
        /// A variable that is a list of records, by its list number.
        case rows(Int)
        /// A field of an element bound by a method (`o.amount`, `original`): its field number per
        /// list number (-1 when the list's records have no such field).
        case localField(Int, fields: [Int], original: CondNode)
    }
    let kind: Kind
    let pos: CondPos
    /// Whether the value may depend on the evaluation instant (`now` or a `within` window):
    /// worked out once, as evaluation asks it of subtrees again and again.
    let usesTime: Bool
    init(_ kind: Kind, _ pos: CondPos) {
        self.kind = kind; self.pos = pos
        switch kind {
        case .now, .within: usesTime = true
        case .value, .variable, .local, .slot, .rows, .localField: usesTime = false
        case .field(let a, _), .part(let a, _, _), .not(let a), .neg(let a), .has(let a), .size(let a): usesTime = a.usesTime
        case .logic(_, let xs), .list(let xs): usesTime = xs.contains { $0.usesTime }
        case .arith(let a, let steps): usesTime = a.usesTime || steps.contains { $0.node.usesTime }
        case .compare(_, let a, let b, _), .isIn(let a, let b), .each(_, let a, let b): usesTime = a.usesTime || b.usesTime
        case .text(_, let a, let b), .reduce(_, let a, let b): usesTime = a.usesTime || (b?.usesTime ?? false)
        case .choose(let a, let b, let c): usesTime = a.usesTime || b.usesTime || c.usesTime
        }
    }

    var children: [CondNode] {
        switch kind {
        case .value, .now, .variable, .local, .slot, .rows, .localField: []
        case .field(let a, _), .part(let a, _, _), .not(let a), .neg(let a), .has(let a), .size(let a): [a]
        case .logic(_, let xs): xs
        case .arith(let a, let steps): [a] + steps.map(\.node)
        case .compare(_, let a, let b, _), .isIn(let a, let b), .within(let a, let b, _), .each(_, let a, let b): [a, b]
        case .text(_, let a, let b), .reduce(_, let a, let b): [a] + (b.map { [$0] } ?? [])
        case .choose(let a, let b, let c): [a, b, c]
        case .list(let xs): xs
        }
    }
    /// Whether `nextChange` can find the next instant exactly: `now` is used only through
    /// `+`, `-` and the branches of `?:` up to a comparison or a part (`.month`, `.days`, …).
    func timeIsLinear(_ linear: Bool = false) -> Bool {
        switch kind {
        case .now: return linear
        case .arith, .neg: return children.allSatisfy { $0.timeIsLinear(linear) }
        case .choose(let c, let a, let b): return c.timeIsLinear() && a.timeIsLinear(linear) && b.timeIsLinear(linear)
        case .compare, .part: return children.allSatisfy { $0.timeIsLinear(true) }
        default: return children.allSatisfy { $0.timeIsLinear() }
        }
    }
}

/// One `op operand` of an arithmetic chain, with the operator's position.
struct CondStep: Sendable {
    var op: CondOp
    var node: CondNode
    var pos: CondPos
}

/// Resolves names against the schema and types every expression.
struct CondChecker {
    let schema: CondSchema
    private var scope: [(name: String, type: CondType)] = []
    init(schema: CondSchema) { self.schema = schema }

    private func fail(_ pos: CondPos, _ message: String) -> CondError { CondError(.type, pos, message) }
    /// "found a string ('abc')": the type, and the literal itself when the expression is one.
    private func found(_ e: CondExpr, _ t: CondType) -> String {
        "found \(t.prose)" + (e.isLiteral ? " (\(CondPrinter.print(e)))" : "")
    }
    private func isBoolish(_ t: CondType) -> Bool { t.base == .bool || t == .null }
    private func isOrdered(_ t: CondType) -> Bool { [.int, .string, .duration, .timestamp, .date].contains(t) }

    /// Each case is its own function, so that the recursion carries small frames.
    mutating func check(_ e: CondExpr) throws(CondError) -> (CondNode, CondType) {
        switch e.kind {
        case .int(let v): return (CondNode(.value(.int(v)), e.pos), .int)
        case .string(let s): return (CondNode(.value(.string(s)), e.pos), .string)
        case .bool(let b): return (CondNode(.value(.bool(b)), e.pos), .bool)
        case .null: return (CondNode(.value(.null), e.pos), .null)
        case .ident(let name): return try ident(name, e.pos)
        case .list(let xs): return try list(xs, e.pos)
        case .unary(let op, let x): return try unary(op, x, e.pos)
        case .binary(let op, let l, let r): return try binary(op, l, r, e.pos)
        case .chain(let first, let links): return try chain(first, links, e.pos)
        case .ternary(let c, let a, let b): return try ternary(c, a, b, e.pos)
        case .member(let target, let name): return try member(target, name, e.pos)
        case .call(nil, let name, let args): return try function(name, args, e.pos)
        case .call(let target?, let name, let args): return try method(target, name, args, e.pos)
        }
    }

    private func ident(_ name: String, _ pos: CondPos) throws(CondError) -> (CondNode, CondType) {
        if let i = scope.lastIndex(where: { $0.name == name }) { return (CondNode(.local(i), pos), scope[i].type) }
        if name == "now" { return (CondNode(.now, pos), .timestamp) }
        if let t = schema.variables[name] { return (CondNode(.variable(name), pos), t) }
        throw fail(pos, "unknown name '\(name)'" + suggest(name, scope.map(\.name) + Array(schema.variables.keys) + ["now"]))
    }

    private mutating func list(_ xs: [CondExpr], _ pos: CondPos) throws(CondError) -> (CondNode, CondType) {
        var nodes: [CondNode] = [], elem: CondType? = nil
        for x in xs {
            let (n, t) = try check(x)
            guard let u = elem.map({ unify($0, t) }) ?? t else {
                throw fail(x.start, "list elements must have one type: expected \(elem?.prose ?? ""), \(found(x, t))")
            }
            nodes.append(n); elem = u
        }
        return (CondNode(.list(nodes), pos), .list(elem ?? .null))
    }

    private mutating func unary(_ op: CondOp, _ x: CondExpr, _ pos: CondPos) throws(CondError) -> (CondNode, CondType) {
        let (n, t) = try check(x)
        if op == .not {
            guard isBoolish(t) else { throw fail(x.start, "'!' needs a bool, \(found(x, t))") }
            return (CondNode(.not(n), pos), .bool)
        }
        guard t.base == .int || t.base == .duration else { throw fail(x.start, "'-' needs an int or a duration, \(found(x, t))") }
        return (CondNode(.neg(n), pos), t)
    }

    private mutating func ternary(_ c: CondExpr, _ a: CondExpr, _ b: CondExpr, _ pos: CondPos) throws(CondError) -> (CondNode, CondType) {
        let (cn, ct) = try check(c)
        guard isBoolish(ct) else { throw fail(c.start, "expected a bool before '?', \(found(c, ct))") }
        let (an, at) = try check(a), (bn, bt) = try check(b)
        guard let t = unify(at, bt) else { throw fail(b.start, "both branches of '?:' must have one type: expected \(at.prose), \(found(b, bt))") }
        return (CondNode(.choose(cn, an, bn), pos), t)
    }

    /// A record's field, or a part of a timestamp, date or duration.
    private mutating func member(_ target: CondExpr, _ name: String, _ pos: CondPos) throws(CondError) -> (CondNode, CondType) {
        let (tn, tt) = try check(target)
        let opt = tt.isOptional
        if case .record(let r) = tt.base {
            let fields = try record(r, pos).fields
            guard let ft = fields[name] else { throw fail(pos, "unknown field '\(name)' on \(r)" + suggest(name, Array(fields.keys))) }
            return (CondNode(.field(tn, name), pos), ft.optional(if: opt))
        }
        let parts = CondPart.of(tt.base)
        if let p = parts.first(where: { $0.rawValue == name }) {
            return (CondNode(.part(tn, p, varies: tn.usesTime), pos), p.type.optional(if: opt))
        }
        if ["size", "count", "lower"].contains(name) { throw fail(pos, "\(name) is a method: write \(name)()") }
        let known = parts.isEmpty ? "" : " (it has \(parts.map(\.rawValue).joined(separator: ", ")))"
        throw fail(pos, "\(tt.prose) has no field '\(name)'\(known)" + suggest(name, parts.map(\.rawValue)))
    }

    private func record(_ name: String, _ pos: CondPos) throws(CondError) -> CondSchema.Record {
        guard let r = schema.records[name] else { throw fail(pos, "record type '\(name)' is not declared in the schema") }
        return r
    }

    /// One type for two (list elements, `?:` branches): equal types, or one of them null.
    func unify(_ a: CondType, _ b: CondType) -> CondType? {
        if a == b { return a }
        if a == .null { return .optional(of: b) }
        if b == .null { return .optional(of: a) }
        if case .list(let x) = a, case .list(let y) = b {
            if x == .null { return b }
            if y == .null { return a }
            return unify(x, y).map { .list($0) }
        }
        if a.isOptional || b.isOptional { return unify(a.base, b.base).map { .optional(of: $0) } }
        return nil
    }

    /// Whether `==` may compare the two: the same type apart from optionality, not records.
    private func comparable(_ a: CondType, _ b: CondType) -> Bool {
        let (x, y) = (a.base, b.base)
        if x == .null || y == .null { return true }
        if case .record = x { return false }
        if case .record = y { return false }
        if case .list(let p) = x, case .list(let q) = y { return comparable(p, q) }
        return x == y
    }

    /// `||` and `&&` runs, and arithmetic runs typed left to right.
    private mutating func chain(_ first: CondExpr, _ links: [CondLink], _ pos: CondPos) throws(CondError) -> (CondNode, CondType) {
        var (acc, at) = try check(first)
        if links[0].op == .or || links[0].op == .and {
            let op = links[0].op
            guard isBoolish(at) else { throw fail(first.start, "'\(op.rawValue)' needs bools, \(found(first, at))") }
            var nodes = [acc]
            for link in links {
                let (n, t) = try check(link.operand)
                guard isBoolish(t) else { throw fail(link.operand.start, "'\(op.rawValue)' needs bools, \(found(link.operand, t))") }
                nodes.append(n)
            }
            return (CondNode(.logic(op, nodes), pos), .bool)
        }
        var steps: [CondStep] = [], optional = at.isOptional, left = first
        for link in links {
            let (n, t) = try check(link.operand)
            at = try arithmetic(link.op, left, at.base, link.operand, t)
            optional = optional || t.isOptional
            steps.append(CondStep(op: link.op, node: n, pos: link.pos))
            left = link.operand
        }
        acc = CondNode(.arith(acc, steps), pos)
        return (acc, at.optional(if: optional))
    }

    /// The type of `a op b` (a's type given, already without its optionality).
    private func arithmetic(_ op: CondOp, _ l: CondExpr, _ a: CondType, _ r: CondExpr, _ rt: CondType) throws(CondError) -> CondType {
        switch (a, rt.base, op) {
        case (.int, .int, _): return .int
        case (.timestamp, .duration, .add), (.duration, .timestamp, .add), (.timestamp, .duration, .sub): return .timestamp
        case (.timestamp, .timestamp, .sub), (.duration, .duration, .add), (.duration, .duration, .sub): return .duration
        default: break
        }
        let expected: String
        switch (a, op) {
        case (.int, _): expected = "an int"
        case (.timestamp, .add): expected = "a duration"
        case (.timestamp, .sub): expected = "a duration or a timestamp"
        case (.duration, .add): expected = "a duration or a timestamp"
        case (.duration, .sub): expected = "a duration"
        case (.duration, _), (.timestamp, _): throw fail(l.start, "'\(op.rawValue)' needs ints, found \(a.prose)")
        default: throw fail(l.start, "'\(op.rawValue)' needs ints, durations or timestamps, \(found(l, a))")
        }
        throw fail(r.start, "expected \(expected), \(found(r, rt))")
    }

    /// Comparisons and `in`.
    private mutating func binary(_ op: CondOp, _ l: CondExpr, _ r: CondExpr, _ pos: CondPos) throws(CondError) -> (CondNode, CondType) {
        let (ln, lt) = try check(l), (rn, rt) = try check(r)
        let (a, b) = (lt.base, rt.base)
        let varies = (a == .timestamp || a == .duration) && (ln.usesTime || rn.usesTime)
        switch op {
        case .eq, .ne:
            guard comparable(lt, rt) else {
                if case .record = a { throw fail(l.start, "records cannot be compared with '\(op.rawValue)': compare their fields") }
                throw fail(r.start, "expected \(a.prose), \(found(r, rt))")
            }
            return (CondNode(.compare(op, ln, rn, varies: varies), pos), .bool)
        case .lt, .le, .gt, .ge:
            if a == .null || b == .null {
                throw fail(a == .null ? l.start : r.start, "'\(op.rawValue)' with null is always false: test with has(…) or == null")
            }
            guard isOrdered(a) else { throw fail(l.start, "'\(op.rawValue)' needs ints, strings, durations, timestamps or dates, \(found(l, lt))") }
            guard a == b else { throw fail(r.start, "expected \(a.prose), \(found(r, rt))") }
            return (CondNode(.compare(op, ln, rn, varies: varies), pos), .bool)
        case .in:
            guard case .list(let e) = b else { throw fail(r.start, "'in' needs a list on its right, \(found(r, rt))") }
            guard comparable(lt, e) else { throw fail(l.start, "expected \(e.base.prose) to look for in \(rt.prose), \(found(l, lt))") }
            return (CondNode(.isIn(ln, rn), pos), .bool)
        default:
            throw fail(pos, "'\(op.rawValue)' is not a comparison")
        }
    }

    /// `duration('48h')`, `timestamp('…')`, `date('…')`, `has(x)`.
    private mutating func function(_ name: String, _ args: [CondExpr], _ pos: CondPos) throws(CondError) -> (CondNode, CondType) {
        if name == "has" {
            guard args.count == 1 else { throw fail(pos, "has takes one value, e.g. has(member.lastOrderAt)") }
            return (CondNode(.has(try check(args[0]).0), pos), .bool)
        }
        let example = ["duration": "duration('48h')", "timestamp": "timestamp('2026-11-11T00:00:00+08:00')", "date": "date('2026-11-11')"]
        guard let ex = example[name] else {
            throw fail(pos, "unknown function '\(name)'" + suggest(name, ["has", "duration", "timestamp", "date"]))
        }
        guard args.count == 1, case .string(let s) = args[0].kind else { throw fail(pos, "\(name) takes one string literal, e.g. \(ex)") }
        let at = args[0].pos
        switch name {
        case "duration": return (CondNode(.value(.duration(try Self.duration(s, at))), pos), .duration)
        case "timestamp":
            guard s.utf8.count > 10, let t = Timestamp(iso8601: s) else {
                throw fail(at, "expected a date-time with a zone, e.g. \(ex), found '\(s)'")
            }
            return (CondNode(.value(.timestamp(t)), pos), .timestamp)
        default:
            guard let d = CivilDate(string: s) else { throw fail(at, "expected a date YYYY-MM-DD, e.g. \(ex), found '\(s)'") }
            return (CondNode(.value(.date(d)), pos), .date)
        }
    }

    /// Seconds of a duration literal: one or more `<digits><unit>`, units d, h, m, s.
    static func duration(_ s: String, _ pos: CondPos) throws(CondError) -> Int64 {
        let bad = CondError(.type, pos, "expected a duration such as '90d', '48h' or '1h30m' (units d, h, m, s), found '\(s)'")
        var total: Int64 = 0, digits: Int64? = nil
        for c in s.unicodeScalars {
            if c >= "0" && c <= "9" {
                let (m, o1) = (digits ?? 0).multipliedReportingOverflow(by: 10)
                let (v, o2) = m.addingReportingOverflow(Int64(c.value - 48))
                if o1 || o2 { throw bad }
                digits = v
                continue
            }
            let unit: Int64
            switch c { case "d": unit = 86_400; case "h": unit = 3_600; case "m": unit = 60; case "s": unit = 1; default: throw bad }
            guard let n = digits else { throw bad }
            let (x, o1) = n.multipliedReportingOverflow(by: unit)
            let (t, o2) = total.addingReportingOverflow(x)
            if o1 || o2 { throw bad }
            total = t; digits = nil
        }
        guard digits == nil, !s.isEmpty else { throw bad }
        return total
    }

    private static let textMethods = ["startsWith", "endsWith", "contains", "size", "lower"]
    private static let listMethods = ["size", "count", "exists", "any", "all", "filter", "within", "sum", "max", "min", "avg"]

    private mutating func method(_ target: CondExpr, _ name: String, _ args: [CondExpr], _ pos: CondPos) throws(CondError) -> (CondNode, CondType) {
        let (tn, tt) = try check(target)
        let opt = tt.isOptional
        switch tt.base {
        case .string:
            guard let op = CondTextOp(rawValue: name) else {
                throw fail(pos, "a string has no method '\(name)'" + suggest(name, Self.textMethods))
            }
            if op == .size || op == .lower {
                guard args.isEmpty else { throw fail(pos, "\(name)() takes no arguments") }
                return (CondNode(.text(op, tn, nil), pos), (op == .size ? CondType.int : .string).optional(if: opt))
            }
            guard args.count == 1 else { throw fail(pos, "\(name) takes one string, e.g. s.\(name)('abc')") }
            let (an, at) = try check(args[0])
            guard at.base == .string else { throw fail(args[0].start, "expected a string, \(found(args[0], at))") }
            return (CondNode(.text(op, tn, an), pos), CondType.bool.optional(if: opt || at.isOptional))
        case .list(let elem):
            return try listMethod(tn, elem, opt, name, args, pos)
        default:
            if CondPart.of(tt.base).contains(where: { $0.rawValue == name }) { throw fail(pos, "\(name) is a field: write .\(name) without ()") }
            throw fail(pos, "\(tt.prose) has no method '\(name)'")
        }
    }

    private mutating func listMethod(_ tn: CondNode, _ elem: CondType, _ opt: Bool, _ name: String, _ args: [CondExpr],
                                     _ pos: CondPos) throws(CondError) -> (CondNode, CondType) {
        switch name {
        case "size" where args.isEmpty, "count" where args.isEmpty:
            return (CondNode(.size(tn), pos), CondType.int.optional(if: opt))
        case "size": throw fail(pos, "size() takes no arguments")
        case "count", "exists", "any", "all", "filter":
            let kind: CondEach = name == "any" ? .exists : CondEach(rawValue: name)!
            let (body, bt) = try bind(args, elem, name, pos)
            guard isBoolish(bt) else { throw fail(args[1].start, "\(name) needs a condition, \(found(args[1], bt))") }
            let result: CondType = kind == .filter ? .list(elem) : kind == .count ? .int : .bool
            return (CondNode(.each(kind, tn, body: body), pos), result.optional(if: opt))
        case "within":
            let timeField: String?
            switch elem.base {
            case .timestamp: timeField = nil
            case .record(let r):
                guard let f = try record(r, pos).timeField else { throw fail(pos, "within needs elements with a time, and \(r) records have none") }
                timeField = f
            default: throw fail(pos, "within needs a list of timestamps or of records with a time, found \(CondType.list(elem).prose)")
            }
            guard args.count == 1 else { throw fail(pos, "within takes one duration, e.g. within('90d')") }
            let d: CondNode
            if case .string(let s) = args[0].kind {
                d = CondNode(.value(.duration(try Self.duration(s, args[0].pos))), args[0].pos)
            } else {
                let (n, t) = try check(args[0])
                guard t.base == .duration else { throw fail(args[0].start, "expected a duration, \(found(args[0], t))") }
                d = n
            }
            return (CondNode(.within(tn, d, field: timeField), pos), CondType.list(elem).optional(if: opt))
        case "sum", "max", "min", "avg":
            let op = CondReduce(rawValue: name)!
            var body: CondNode? = nil, value = elem
            if args.count == 1 {
                // `sum(amount)` is `sum(x, x.amount)`.
                guard case .record = elem.base, let path = Self.rebase(args[0]) else {
                    throw fail(args[0].start, "\(name) takes a field of the elements, e.g. orders.\(name)(amount), or a name and an expression, e.g. \(name)(o, o.amount)")
                }
                scope.append((name: "", type: elem)); defer { scope.removeLast() }
                let (n, t) = try check(path)
                body = n; value = t
            } else if !args.isEmpty {
                let (n, t) = try bind(args, elem, name, pos)
                body = n; value = t
            }
            let at = args.last?.start ?? pos
            if op == .sum || op == .avg {
                guard value.base == .int else { throw fail(at, "\(name) needs ints, found \(value.prose)") }
                return (CondNode(.reduce(op, tn, body: body), pos), (op == .sum ? CondType.int : .optional(.int)).optional(if: opt))
            }
            guard isOrdered(value.base) else { throw fail(at, "\(name) needs ints, strings, durations, timestamps or dates, found \(value.prose)") }
            return (CondNode(.reduce(op, tn, body: body), pos), .optional(of: value.base))
        default:
            throw fail(pos, "\(CondType.list(elem).prose) has no method '\(name)'" + suggest(name, Self.listMethods))
        }
    }

    /// `field` or `a.b` as a path on the anonymous element (the local named "").
    private static func rebase(_ e: CondExpr) -> CondExpr? {
        switch e.kind {
        case .ident(let n): CondExpr(kind: .member(CondExpr(kind: .ident(""), pos: e.pos), n), pos: e.pos)
        case .member(let t, let n): rebase(t).map { CondExpr(kind: .member($0, n), pos: e.pos) }
        default: nil
        }
    }

    /// `(x, body)`: checks body with `x` bound to an element.
    private mutating func bind(_ args: [CondExpr], _ elem: CondType, _ name: String, _ pos: CondPos) throws(CondError) -> (CondNode, CondType) {
        guard args.count == 2, case .ident(let v) = args[0].kind else {
            throw fail(pos, "\(name) takes a name for the element and an expression, e.g. orders.\(name)(o, o.amount >= 10000)")
        }
        if v == "now" || schema.variables[v] != nil || scope.contains(where: { $0.name == v }) || ["true", "false", "null"].contains(v) {
            throw fail(args[0].pos, "'\(v)' is already a name here: choose another name for the element")
        }
        scope.append((name: v, type: elem)); defer { scope.removeLast() }
        return try check(args[1])
    }

    /// " (did you mean 'tier'?)" when a candidate is close to `name`, else "".
    private func suggest(_ name: String, _ candidates: [String]) -> String {
        func distance(_ a: String, _ b: String) -> Int {
            let x = Array(a.lowercased().unicodeScalars), y = Array(b.lowercased().unicodeScalars)
            var row = Array(0...y.count)
            for i in x.indices {
                var diagonal = row[0]; row[0] = i + 1
                for j in y.indices {
                    let above = row[j + 1]
                    row[j + 1] = min(above + 1, row[j] + 1, diagonal + (x[i] == y[j] ? 0 : 1))
                    diagonal = above
                }
            }
            return row[y.count]
        }
        let limit = name.count <= 4 ? 1 : 2
        var best: (name: String, distance: Int)? = nil
        for c in candidates.sorted() where !c.isEmpty {
            let d = distance(name, c)
            if d <= limit, d < best?.distance ?? Int.max { best = (c, d) }
        }
        return best.map { " (did you mean '\($0.name)'?)" } ?? ""
    }
}
