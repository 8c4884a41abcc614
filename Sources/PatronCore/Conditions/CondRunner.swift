import Foundation

extension CondNode {
    /// The plan of a checked tree for `layout`: paths from a variable (`member.profile.city`)
    /// become slots, variables that are lists of records become list numbers, and fields of
    /// bound elements (`o.amount`, the `amount` of `sum(amount)`) field numbers. Positions and
    /// the steps each node costs stay as they were.
    func resolved(_ layout: CondLayout) -> CondNode {
        func r(_ n: CondNode) -> CondNode { n.resolved(layout) }
        let k: Kind
        switch kind {
        case .value, .now, .local, .slot, .rows, .localField: return self
        case .variable(let name):
            if let l = layout.lists[name] { k = .rows(l) } else if let s = layout.slots[name] { k = .slot(s, cost: 1, original: self) } else { return self }
        case .field(let t, let name):
            if case .local(let i) = t.kind {
                k = .localField(i, fields: layout.fields.map { $0[name] ?? -1 }, original: self)
            } else if let (path, cost) = slotPath(), let s = layout.slots[path] {
                k = .slot(s, cost: cost, original: self)
            } else {
                k = .field(r(t), name)
            }
        case .part(let t, let p, let varies): k = .part(r(t), p, varies: varies)
        case .not(let x): k = .not(r(x))
        case .logic(let op, let xs): k = .logic(op, xs.map(r))
        case .neg(let x): k = .neg(r(x))
        case .arith(let first, let steps): k = .arith(r(first), steps.map { CondStep(op: $0.op, node: r($0.node), pos: $0.pos) })
        case .compare(let op, let a, let b, let varies): k = .compare(op, r(a), r(b), varies: varies)
        case .isIn(let a, let b): k = .isIn(r(a), r(b))
        case .choose(let c, let a, let b): k = .choose(r(c), r(a), r(b))
        case .list(let xs): k = .list(xs.map(r))
        case .has(let x): k = .has(r(x))
        case .text(let op, let t, let arg): k = .text(op, r(t), arg.map(r))
        case .size(let t): k = .size(r(t))
        case .within(let t, let d, let field): k = .within(r(t), r(d), field: field)
        case .each(let e, let t, let body): k = .each(e, r(t), body: r(body))
        case .reduce(let op, let t, let body): k = .reduce(op, r(t), body: body.map(r))
        }
        return CondNode(k, pos)
    }

    /// `member.profile.city` as a dotted path and its number of nodes, for a chain of fields
    /// from a variable.
    private func slotPath() -> (String, Int)? {
        switch kind {
        case .variable(let name): return (name, 1)
        case .field(let t, let name): return t.slotPath().map { ($0.0 + "." + name, $0.1 + 1) }
        default: return nil
        }
    }
}

/// A resolved tree (`CondNode.resolved`) flattened into an array of plain nodes, so that
/// evaluation reads numbers instead of walking enums that hold their children (which costs a
/// retain and a release per child visited).
final class CondPlan: Sendable {
    enum Op: UInt8, Sendable {
        case value, now, variable, local, field, part, not, logic, neg, arith, compare, isIn, choose, list, has, text, size
        case within, each, reduce, slot, rows, localField
    }
    /// One node; `a`, `b`, `c` are node numbers or numbers into the plan's tables, by `op`.
    struct Node: Sendable {
        var op: Op
        var usesTime = false
        /// `part` and `compare`: the operand may change with `now`.
        var varies = false
        var cmp: CondOp = .eq
        var part: CondPart = .year
        var text: CondTextOp = .size
        var each: CondEach = .count
        var reduce: CondReduce = .sum
        var a: Int32 = -1, b: Int32 = -1, c: Int32 = -1
        init(_ op: Op) { self.op = op }
    }
    struct Step: Sendable { var op: CondOp, node: Int32, pos: CondPos }

    let nodes: [Node]
    let positions: [CondPos]
    let constants: [CondValue]
    let names: [String]
    /// Children of `logic` and `list` nodes, `b..<b+c`.
    let kids: [Int32]
    /// Steps of `arith` nodes, `b..<b+c`.
    let steps: [Step]
    /// Per `localField` node (`b`): field number per list number, -1 when missing.
    let fieldTables: [[Int]]
    let layout: CondLayout
    let root: Int32

    init(_ tree: CondNode, layout: CondLayout) {
        var nodes: [Node] = [], positions: [CondPos] = [], constants: [CondValue] = [], names: [String] = []
        var kids: [Int32] = [], steps: [Step] = [], tables: [[Int]] = []
        func name(_ s: String) -> Int32 {
            if let i = names.firstIndex(of: s) { return Int32(i) }
            names.append(s); return Int32(names.count - 1)
        }
        func add(_ t: CondNode) -> Int32 {
            var n: Node
            switch t.kind {
            case .value(let v): n = Node(.value); n.a = Int32(constants.count); constants.append(v)
            case .now: n = Node(.now)
            case .variable(let v): n = Node(.variable); n.a = name(v)
            case .local(let i): n = Node(.local); n.a = Int32(i)
            case .field(let x, let f): n = Node(.field); n.a = add(x); n.b = name(f)
            case .part(let x, let p, let varies): n = Node(.part); n.a = add(x); n.part = p; n.varies = varies
            case .not(let x): n = Node(.not); n.a = add(x)
            case .logic(let op, let xs):
                n = Node(.logic); n.cmp = op
                let ids = xs.map(add)
                n.b = Int32(kids.count); n.c = Int32(ids.count); kids += ids
            case .neg(let x): n = Node(.neg); n.a = add(x)
            case .arith(let first, let ss):
                n = Node(.arith); n.a = add(first)
                let ids = ss.map { Step(op: $0.op, node: add($0.node), pos: $0.pos) }
                n.b = Int32(steps.count); n.c = Int32(ids.count); steps += ids
            case .compare(let op, let l, let r, let varies): n = Node(.compare); n.cmp = op; n.a = add(l); n.b = add(r); n.varies = varies
            case .isIn(let l, let r): n = Node(.isIn); n.a = add(l); n.b = add(r)
            case .choose(let c, let x, let y): n = Node(.choose); n.a = add(c); n.b = add(x); n.c = add(y)
            case .list(let xs):
                n = Node(.list)
                let ids = xs.map(add)
                n.b = Int32(kids.count); n.c = Int32(ids.count); kids += ids
            case .has(let x): n = Node(.has); n.a = add(x)
            case .text(let op, let x, let arg): n = Node(.text); n.text = op; n.a = add(x); n.b = arg.map(add) ?? -1
            case .size(let x): n = Node(.size); n.a = add(x)
            case .within(let x, let d, let f): n = Node(.within); n.a = add(x); n.b = add(d); n.c = f.map(name) ?? -1
            case .each(let kind, let x, let body): n = Node(.each); n.each = kind; n.a = add(x); n.b = add(body)
            case .reduce(let op, let x, let body): n = Node(.reduce); n.reduce = op; n.a = add(x); n.b = body.map(add) ?? -1
            case .slot(let slot, let cost, let original): n = Node(.slot); n.a = Int32(slot); n.b = Int32(cost); n.c = add(original)
            case .rows(let l): n = Node(.rows); n.a = Int32(l)
            case .localField(let i, let fields, let original):
                n = Node(.localField); n.a = Int32(i); n.b = Int32(tables.count); tables.append(fields); n.c = add(original)
            }
            n.usesTime = t.usesTime
            nodes.append(n); positions.append(t.pos)
            return Int32(nodes.count - 1)
        }
        root = add(tree.resolved(layout))
        self.nodes = nodes; self.positions = positions; self.constants = constants; self.names = names
        self.kids = kids; self.steps = steps; self.fieldTables = tables; self.layout = layout
    }
}

/// Indices of records of one list of a `CondSource`, ascending.
enum CondRows {
    case range(Range<Int>)
    case some([Int])
    var count: Int {
        switch self { case .range(let r): r.count; case .some(let xs): xs.count }
    }
    subscript(_ k: Int) -> Int {
        switch self { case .range(let r): r.lowerBound + k; case .some(let xs): xs[k] }
    }
    /// The `k`-th to the `m`-th (excluded).
    func slice(_ k: Int, _ m: Int) -> CondRows {
        switch self {
        case .range(let r): .range(r.lowerBound + k..<r.lowerBound + m)
        case .some(let xs): .some(Array(xs[k..<m]))
        }
    }
}

/// A value during evaluation: a plain value, or records of a source's list named by their
/// indices (so that lists of orders are never built to be counted, filtered or summed).
enum CondVal {
    case v(CondValue)
    /// Record `index` of list `list`.
    case row(Int, Int)
    /// Records of list `list`.
    case rows(Int, CondRows)
}

/// A list being evaluated: plain values, or records of a source's list.
enum CondList {
    case values([CondValue])
    case rows(Int, CondRows)
    var count: Int {
        switch self { case .values(let xs): xs.count; case .rows(_, let rs): rs.count }
    }
}

/// Runs a `CondPlan` against a `CondSource`. It gives what `CondEvaluator` gives for the same
/// inputs as values (the same value or error, the same steps charged, the same instants
/// noted), without building the member or the orders as dictionaries.
struct CondRunner<S: CondSource> {
    typealias Node = Int32
    let source: S
    let plan: CondPlan
    let clock: ProgramClock
    let budget: Int
    /// The instant of the evaluation; `tracing` moves it one second on to measure slopes.
    private var now: Int64
    private let realNow: Int64
    private var remaining: Int
    /// The elements bound by methods, innermost last: the first four in place, the rest in
    /// `moreLocals` (an array would be allocated at every evaluation that binds one).
    private var local0: CondVal = .v(.null), local1: CondVal = .v(.null), local2: CondVal = .v(.null), local3: CondVal = .v(.null)
    private var moreLocals: [CondVal] = []
    private var depth = 0
    let tracing: Bool
    /// Set while evaluating what a comparison will ignore for `nextChange` (its other side is a
    /// constant null): instants are not worked out (everything else, steps included, is done).
    private var ignoring = false
    private(set) var soonest: Int64?
    /// Over a `CondValueSource` whose values do not match the schema: paths are walked field by
    /// field, to give the errors `CondEvaluator` gives.
    private let walkPaths: Bool
    /// Over a `CondValueSource`: per list, its value when it is not a list of records.
    private let plainLists: [CondValue?]?

    init(source: S, plan: CondPlan, clock: ProgramClock, now: Int64, budget: Int, tracing: Bool = false) {
        self.source = source; self.plan = plan; self.clock = clock; self.budget = budget
        self.now = now; self.realNow = now; self.remaining = budget; self.tracing = tracing
        if S.self == CondValueSource.self, let vs = source as? CondValueSource {
            walkPaths = !vs.conforms
            plainLists = vs.plainLists.contains { $0 != nil } ? vs.plainLists : nil
        } else {
            walkPaths = false; plainLists = nil
        }
    }

    private typealias Ev = CondEvaluator

    // Helpers are `mutating` although most change nothing: called from mutating methods, a
    // non-mutating one is given a copy of the runner.

    private mutating func pos(_ n: Node) -> CondPos { plan.positions[Int(n)] }

    @inline(__always)
    private mutating func bind(_ x: CondVal) {
        switch depth {
        case 0: local0 = x
        case 1: local1 = x
        case 2: local2 = x
        case 3: local3 = x
        default: moreLocals.append(x)
        }
        depth += 1
    }
    @inline(__always)
    private mutating func unbind() {
        depth -= 1
        if depth >= 4 { moreLocals.removeLast() }
    }
    @inline(__always)
    private mutating func local(_ i: Int) -> CondVal {
        switch i {
        case 0: local0
        case 1: local1
        case 2: local2
        case 3: local3
        default: moreLocals[i - 4]
        }
    }
    @inline(__always)
    private mutating func usesTime(_ n: Node) -> Bool { plan.nodes[Int(n)].usesTime }

    @inline(__always)
    private mutating func charge(_ steps: Int, _ n: Node) throws(CondError) {
        remaining -= steps
        if remaining < 0 { throw overBudget(n) }
    }
    @inline(never)
    private mutating func overBudget(_ n: Node) -> CondError {
        CondError(.budget, pos(n), "the evaluation costs more than its budget of \(budget) steps")
    }
    private mutating func note(_ t: Int64?) {
        guard tracing, !ignoring else { return }
        Ev.note(t, after: realNow, &soonest)
    }
    /// Evaluates `n` again one second later (for slopes), or nil at the end of time.
    private mutating func later(_ n: Node) throws(CondError) -> CondValue? {
        guard now < Int64.max else { return nil }
        let saved = now
        now += 1
        defer { now = saved }
        return try value(n)
    }

    /// `later(n)` for `n` evaluated just now to `v` in `steps` steps: a side that does not use
    /// time has the same value a second later and costs the same, so it is charged, not
    /// evaluated again (unless the budget would run out on the way: then the error is where
    /// evaluating it again would stop).
    private mutating func later(_ n: Node, was v: CondValue, steps: Int) throws(CondError) -> CondValue? {
        guard !usesTime(n), now < Int64.max, remaining >= steps else { return try later(n) }
        remaining -= steps
        return v
    }

    /// The record `index` of `list` as a value (when a condition uses a record as a whole).
    private mutating func record(_ list: Int, _ index: Int) -> CondValue {
        if S.self == CondValueSource.self, let vs = source as? CondValueSource { return vs.rows[list][index] }
        var fields: [String: CondValue] = [:]
        for (name, f) in plan.layout.fields[list] { fields[name] = source.field(list, index, f) }
        return .record(fields)
    }
    private mutating func plain(_ x: CondVal) -> CondValue {
        switch x {
        case .v(let v): return v
        case .row(let l, let i): return record(l, i)
        case .rows(let l, let rs): return .list((0..<rs.count).map { record(l, rs[$0]) })
        }
    }

    /// `n`'s value as a plain value.
    mutating func value(_ n: Node) throws(CondError) -> CondValue {
        let x = try eval(n)
        if case .v(let v) = x { return v }
        return plain(x)
    }

    mutating func eval(_ i: Node) throws(CondError) -> CondVal {
        let n = plan.nodes[Int(i)]
        // Nodes that stand for several: all their steps at once when the budget allows.
        switch n.op {
        case .slot:
            guard remaining >= Int(n.b), !walkPaths else { return try eval(n.c) }
            remaining -= Int(n.b)
            return .v(source.value(Int(n.a)))
        case .localField:
            guard remaining >= 2, case .row(let l, let index) = local(Int(n.a)) else { return try eval(n.c) }
            remaining -= 2
            let f = plan.fieldTables[Int(n.b)][l]
            return .v(f < 0 ? .null : source.field(l, index, f))
        default: break
        }
        try charge(1, i)
        switch n.op {
        case .value: return .v(plan.constants[Int(n.a)])
        case .now: return .v(.timestamp(Timestamp(seconds: now)))
        case .variable: return variable(plan.names[Int(n.a)])
        case .rows: return rows(Int(n.a))
        case .local: return local(Int(n.a))
        case .field: return try field(n.a, plan.names[Int(n.b)], i)
        case .part: return .v(try part(n.a, n.part, n.varies, i))
        case .not: return .v(.bool(!(try Ev.truth(try value(n.a), pos(n.a)))))
        case .logic: return .v(try logic(n.cmp, Int(n.b), Int(n.c)))
        case .neg: return .v(try negate(n.a, i))
        case .arith: return .v(try arith(n.a, Int(n.b), Int(n.c)))
        case .compare: return .v(try compare(n.cmp, n.a, n.b, n.varies, i))
        case .isIn: return .v(try isIn(n.a, n.b, i))
        case .choose: return try Ev.truth(try value(n.a), pos(n.a)) ? try eval(n.b) : try eval(n.c)
        case .list: return .v(try list(Int(n.b), Int(n.c)))
        case .has: return .v(.bool(try has(n.a)))
        case .text: return .v(try text(n.text, n.a, n.b, i))
        case .size:
            // The size of a filter is its count: the kept elements are not gathered.
            if plan.nodes[Int(n.a)].op == .each, plan.nodes[Int(n.a)].each == .filter {
                let f = plan.nodes[Int(n.a)]
                try charge(1, n.a)
                return .v(try filterCount(f.a, f.b, n.a).map { .int($0) } ?? .null)
            }
            return .v(try list(n.a, i).map { .int(Int64($0.count)) } ?? .null)
        case .within: return try within(n.a, n.b, n.c < 0 ? nil : plan.names[Int(n.c)], i)
        case .each: return try each(n.each, n.a, n.b, i)
        case .reduce: return .v(try reduce(n.reduce, n.a, n.b, i))
        case .slot, .localField: preconditionFailure("handled above")
        }
    }

    /// A variable by name (the slow way of a slot, or a list).
    private mutating func variable(_ name: String) -> CondVal {
        if let l = plan.layout.lists[name] { return rows(l) }
        return .v(plan.layout.slots[name].map { source.value($0) } ?? .null)
    }

    private mutating func rows(_ l: Int) -> CondVal {
        if let plainLists, let v = plainLists[l] { return .v(v) }
        return .rows(l, .range(0..<source.count(l)))
    }

    private mutating func field(_ t: Node, _ name: String, _ at: Node) throws(CondError) -> CondVal {
        switch try eval(t) {
        case .v(.null): return .v(.null)
        case .v(.record(let fields)): return .v(fields[name] ?? .null)
        case .row(let l, let i): return .v(plan.layout.fields[l][name].map { source.field(l, i, $0) } ?? .null)
        case let x: throw Ev.mismatch(pos(at), "a record", plain(x))
        }
    }

    private mutating func has(_ x: Node) throws(CondError) -> Bool {
        switch try eval(x) {
        case .v(let v): return !v.isNull
        case .row, .rows: return true
        }
    }

    private mutating func part(_ t: Node, _ part: CondPart, _ varies: Bool, _ at: Node) throws(CondError) -> CondValue {
        let v = try value(t)
        if tracing && varies, let v1 = try later(t), !ignoring {
            Ev.traceSteps(v, v1, part, now: now, realNow: realNow, clock: clock, direct: true, &soonest)
        }
        return try Ev.part(v, part, clock, pos(at))
    }

    /// `||` stops at the first true, `&&` at the first false.
    private mutating func logic(_ op: CondOp, _ start: Int, _ count: Int) throws(CondError) -> CondValue {
        let stop = op == .or
        for k in start..<start + count {
            let x = plan.kids[k]
            if try Ev.truth(try value(x), pos(x)) == stop { return .bool(stop) }
        }
        return .bool(!stop)
    }

    private mutating func negate(_ x: Node, _ at: Node) throws(CondError) -> CondValue {
        switch try value(x) {
        case .null: return .null
        case .int(let i) where i != Int64.min: return .int(-i)
        case .duration(let d) where d != Int64.min: return .duration(-d)
        case .int, .duration: throw CondError(.evaluation, pos(at), "integer overflow in '-'")
        case let v: throw Ev.mismatch(pos(at), "an int or a duration", v)
        }
    }

    /// Every operand is evaluated, left to right; a null makes the result null.
    private mutating func arith(_ first: Node, _ start: Int, _ count: Int) throws(CondError) -> CondValue {
        var acc = try value(first)
        for k in start..<start + count {
            let step = plan.steps[k]
            let b = try value(step.node)
            acc = acc.isNull || b.isNull ? .null : try Ev.arith(step.op, acc, b, step.pos)
        }
        return acc
    }

    private mutating func compare(_ op: CondOp, _ l: Node, _ r: Node, _ varies: Bool, _ at: Node) throws(CondError) -> CondValue {
        let before = soonest
        let startL = remaining
        let x = try eval(l)
        let stepsL = startL - remaining
        let a = plain(x)
        // A side that is null and does not move with time makes the comparison constant: the
        // instants the other side notes (say, the next month of `now.month`) are dropped, so
        // they need not be worked out.
        let dropped = tracing && a.isNull && !usesTime(l)
        let wasIgnoring = ignoring
        if dropped { ignoring = true }
        let b: CondValue
        let startR = remaining
        do { b = try value(r) } catch { ignoring = wasIgnoring; throw error }
        let stepsR = startR - remaining
        ignoring = wasIgnoring
        if tracing, dropped || (b.isNull && !usesTime(r)) {
            soonest = before
        } else if tracing && varies, let a1 = try later(l, was: a, steps: stepsL), let b1 = try later(r, was: b, steps: stepsR), !ignoring {
            Ev.traceCrossing(a, b, a1, b1, now: now, realNow: realNow, &soonest)
        }
        switch x {
        case .v(.list(let xs)): try charge(xs.count, at)
        case .rows(_, let rs): try charge(rs.count, at)
        default: break
        }
        return try Ev.compared(op, a, b, pos(at))
    }

    private mutating func isIn(_ l: Node, _ r: Node, _ at: Node) throws(CondError) -> CondValue {
        let x = try value(l)
        guard let xs = try list(r, r), !x.isNull else { return .bool(false) }
        switch xs {
        case .values(let ys):
            for y in ys {
                try charge(1, at)
                if y == x { return .bool(true) }
            }
        case .rows(let l, let rs):
            for k in 0..<rs.count {
                try charge(1, at)
                if record(l, rs[k]) == x { return .bool(true) }
            }
        }
        return .bool(false)
    }

    private mutating func list(_ start: Int, _ count: Int) throws(CondError) -> CondValue {
        var out: [CondValue] = []
        for k in start..<start + count { out.append(try value(plan.kids[k])) }
        return .list(out)
    }

    private mutating func text(_ op: CondTextOp, _ t: Node, _ arg: Node, _ at: Node) throws(CondError) -> CondValue {
        let s: String
        switch try value(t) {
        case .null: return .null
        case .string(let v): s = v
        case let v: throw Ev.mismatch(pos(at), "a string", v)
        }
        try charge(s.utf8.count / 64, at)
        guard arg >= 0 else { return op == .size ? .int(Int64(s.unicodeScalars.count)) : .string(s.lowercased()) }
        let p: String
        switch try value(arg) {
        case .null: return .null
        case .string(let v): p = v
        case let v: throw Ev.mismatch(pos(arg), "a string", v)
        }
        return .bool(op == .startsWith ? s.hasPrefix(p) : op == .endsWith ? s.hasSuffix(p) : s.contains(p))
    }

    /// The elements whose time is in (now − d, now]; elements without a time are left out. Over
    /// a list in time order, binary searches.
    private mutating func within(_ t: Node, _ d: Node, _ field: String?, _ at: Node) throws(CondError) -> CondVal {
        guard let xs = try list(t, at) else { return .v(.null) }
        let window: Int64
        switch try value(d) {
        case .null: return .v(.null)
        case .duration(let v): window = v
        case let v: throw Ev.mismatch(pos(d), "a duration", v)
        }
        let (from, overflow) = now.subtractingReportingOverflow(window)
        let start = overflow ? (window > 0 ? Int64.min : Int64.max) : from
        switch xs {
        case .values(let xs):
            var kept: [CondValue] = []
            for x in xs {
                try charge(1, at)
                var time = x
                if let field {
                    guard case .record(let fields) = x else {
                        if x.isNull { continue }
                        throw Ev.mismatch(pos(at), "a record", x)
                    }
                    time = fields[field] ?? .null
                }
                guard case .timestamp(let t) = time else {
                    if time.isNull { continue }
                    throw Ev.mismatch(pos(at), "a timestamp", time)
                }
                if t.seconds > start && t.seconds <= now { kept.append(x) }
                noteWindow(t.seconds, window)
            }
            return .v(.list(kept))
        case .rows(let l, let rs):
            guard let tf = plan.layout.timeFields[l] else { return .rows(l, .some([])) }
            if source.timeOrdered(l) {
                // No element can fail: every one costs its step, at once.
                try charge(rs.count, at)
                let source = self.source
                func time(_ k: Int) -> Int64 {
                    if case .timestamp(let t) = source.field(l, rs[k], tf) { return t.seconds }
                    return Int64.min
                }
                /// The first k whose time is after `x`.
                func after(_ x: Int64) -> Int {
                    var lo = 0, hi = rs.count
                    while lo < hi {
                        let mid = (lo + hi) / 2
                        if time(mid) > x { hi = mid } else { lo = mid + 1 }
                    }
                    return lo
                }
                let lo = after(start), hi = max(lo, after(now))
                if tracing && !ignoring {
                    // The earliest element to enter (its time after now) and to leave (its time
                    // plus the window after now).
                    let next = after(realNow)
                    if next < rs.count { note(time(next)) }
                    let (edge, o) = realNow.subtractingReportingOverflow(window)
                    let first = o ? (window > 0 ? 0 : rs.count) : after(edge)
                    if first < rs.count {
                        let (out, o2) = time(first).addingReportingOverflow(window)
                        if !o2 { note(out) }
                    }
                }
                return .rows(l, rs.slice(lo, hi))
            }
            var kept: [Int] = []
            for k in 0..<rs.count {
                try charge(1, at)
                let time = source.field(l, rs[k], tf)
                guard case .timestamp(let t) = time else {
                    if time.isNull { continue }
                    throw Ev.mismatch(pos(at), "a timestamp", time)
                }
                if t.seconds > start && t.seconds <= now { kept.append(rs[k]) }
                noteWindow(t.seconds, window)
            }
            return .rows(l, .some(kept))
        }
    }
    /// An element enters a window at its time and leaves it `window` later.
    private mutating func noteWindow(_ at: Int64, _ window: Int64) {
        note(at)
        let (out, o) = at.addingReportingOverflow(window)
        if !o { note(out) }
    }

    private mutating func each(_ kind: CondEach, _ t: Node, _ body: Node, _ at: Node) throws(CondError) -> CondVal {
        guard let xs = try list(t, at) else { return .v(.null) }
        var count: Int64 = 0
        switch xs {
        case .values(let xs):
            var kept: [CondValue] = []
            for x in xs {
                try charge(1, at)
                bind(.v(x))
                let ok = try Ev.truth(try value(body), pos(body))
                unbind()
                switch kind {
                case .exists: if ok { return .v(.bool(true)) }
                case .all: if !ok { return .v(.bool(false)) }
                case .filter: if ok { kept.append(x) }
                case .count: if ok { count += 1 }
                }
            }
            if kind == .filter { return .v(.list(kept)) }
        case .rows(let l, let rs):
            var kept: [Int] = []
            if kind == .filter { kept.reserveCapacity(rs.count) }
            for k in 0..<rs.count {
                try charge(1, at)
                bind(.row(l, rs[k]))
                let ok = try Ev.truth(try value(body), pos(body))
                unbind()
                switch kind {
                case .exists: if ok { return .v(.bool(true)) }
                case .all: if !ok { return .v(.bool(false)) }
                case .filter: if ok { kept.append(rs[k]) }
                case .count: if ok { count += 1 }
                }
            }
            if kind == .filter { return .rows(l, .some(kept)) }
        }
        switch kind {
        case .exists: return .v(.bool(false))
        case .all: return .v(.bool(true))
        case .filter: preconditionFailure("returned above")
        case .count: return .v(.int(count))
        }
    }

    /// How many elements `each(.filter, t, body)` keeps (nil when the list is null): the same
    /// steps, errors and instants as the filter.
    private mutating func filterCount(_ t: Node, _ body: Node, _ at: Node) throws(CondError) -> Int64? {
        guard let xs = try list(t, at) else { return nil }
        var count: Int64 = 0
        for k in 0..<xs.count {
            try charge(1, at)
            switch xs {
            case .values(let vs): bind(.v(vs[k]))
            case .rows(let l, let rs): bind(.row(l, rs[k]))
            }
            let ok = try Ev.truth(try value(body), pos(body))
            unbind()
            if ok { count += 1 }
        }
        return count
    }

    /// Nulls are skipped; `sum` of nothing is 0, `avg`, `max` and `min` of nothing null.
    private mutating func reduce(_ op: CondReduce, _ t: Node, _ body: Node, _ at: Node) throws(CondError) -> CondValue {
        guard let xs = try list(t, at) else { return .null }
        var sum: Int64 = 0, count: Int64 = 0, best: CondValue? = nil
        for k in 0..<xs.count {
            try charge(1, at)
            let x: CondVal
            switch xs {
            case .values(let vs): x = .v(vs[k])
            case .rows(let l, let rs): x = .row(l, rs[k])
            }
            var v: CondValue
            if body >= 0 {
                bind(x)
                v = try value(body)
                unbind()
            } else {
                v = plain(x)
            }
            if v.isNull { continue }
            switch op {
            case .sum, .avg:
                guard case .int(let i) = v else { throw Ev.mismatch(pos(at), "an int", v) }
                let (s, o) = sum.addingReportingOverflow(i)
                if o { throw CondError(.evaluation, pos(at), "integer overflow in \(op.rawValue)") }
                sum = s; count += 1
            case .max, .min:
                if let b = best {
                    let c = try Ev.order(v, b, pos(at))
                    if op == .max ? c > 0 : c < 0 { best = v }
                } else {
                    best = v
                }
            }
        }
        switch op {
        case .sum: return .int(sum)
        case .avg: return count == 0 ? .null : .int(floorDiv(sum, count))
        case .max, .min: return best ?? .null
        }
    }

    /// The elements of a list-valued node; nil for null.
    private mutating func list(_ t: Node, _ at: Node) throws(CondError) -> CondList? {
        switch try eval(t) {
        case .v(.null): return nil
        case .v(.list(let xs)): return .values(xs)
        case .rows(let l, let rs): return .rows(l, rs)
        case let x: throw Ev.mismatch(pos(at), "a list", plain(x))
        }
    }
}

extension CondValue {
    var isNull: Bool { if case .null = self { true } else { false } }
}

/// What a plan reads of its source, worked out from the nodes evaluation visits: the slots
/// (`member.profile.birthday`), the lists of records (`orders`) and whether it names a variable
/// the layout does not number (read by name: anything). Records read through a slot
/// (`member.profile`, `member`) are their slot: whoever interprets the slots knows what they
/// hold.
struct CondReads: Equatable, Sendable {
    var slots: Set<Int> = []
    var lists: Set<Int> = []
    /// A variable read by name (not in the layout).
    var unnumbered = false
    /// At most this many steps in one evaluation or one `holdsAndNextChange`, whatever the
    /// inputs, provided every slot read holds a scalar or a record (not a list); nil when it
    /// depends on the inputs (lists, strings).
    var maxSteps: Int?
}

extension CondPlan {
    /// The most steps evaluating node `i` can take, when that does not depend on the inputs
    /// (no lists, strings or variables read by name; slots holding scalars or records). A
    /// comparison or a part that moves with time evaluates its operands again one second
    /// later when tracing, so it counts them twice.
    private func bound(_ i: Int32) -> Int? {
        let n = nodes[Int(i)]
        func sum(_ xs: [Int?]) -> Int? {
            var total = 1
            for x in xs {
                guard let x else { return nil }
                let (t, o) = total.addingReportingOverflow(x)
                if o || t > 1 << 40 { return nil }
                total = t
            }
            return total
        }
        func twice(_ x: Int?) -> Int? { n.varies ? x.map { $0 * 2 } : x }
        switch n.op {
        // A path's slot costs its nodes, the same whether read at once or field by field.
        case .slot: return Int(n.b)
        case .value, .now, .local: return 1
        case .field, .not, .neg, .has: return sum([bound(n.a)])
        case .part: return sum([twice(bound(n.a))])
        case .logic: return sum((Int(n.b)..<Int(n.b + n.c)).map { bound(kids[$0]) })
        case .arith: return sum([bound(n.a)] + (Int(n.b)..<Int(n.b + n.c)).map { bound(steps[$0].node) })
        case .compare: return sum([twice(bound(n.a)), twice(bound(n.b))])
        case .choose:
            guard let x = bound(n.b), let y = bound(n.c) else { return nil }
            return sum([bound(n.a), max(x, y)])
        case .variable, .list, .isIn, .text, .size, .within, .each, .reduce, .rows, .localField: return nil
        }
    }

    /// The reads of the plan (see `CondReads`).
    var reads: CondReads {
        var r = CondReads()
        // Paths as they were written (`original` of a slot) read the same slot by name: they are
        // evaluated only when the budget is nearly spent, and are not visited here.
        func visit(_ i: Int32) {
            guard i >= 0 else { return }
            let n = nodes[Int(i)]
            switch n.op {
            case .slot: r.slots.insert(Int(n.a)); return
            case .rows: r.lists.insert(Int(n.a)); return
            case .variable: r.unnumbered = true; return
            case .localField: return
            case .logic, .list:
                for k in Int(n.b)..<Int(n.b + n.c) { visit(kids[k]) }
                return
            case .arith:
                visit(n.a)
                for k in Int(n.b)..<Int(n.b + n.c) { visit(steps[k].node) }
                return
            case .value, .now, .local: return
            case .field, .part, .not, .neg, .has, .size: visit(n.a)
            case .compare, .isIn, .within, .each, .reduce: visit(n.a); visit(n.b)
            case .text: visit(n.a); visit(n.b)
            case .choose: visit(n.a); visit(n.b); visit(n.c)
            }
        }
        visit(root)
        r.maxSteps = bound(root).flatMap { $0 <= Int.max / 4 ? $0 * 2 : nil }
        return r
    }
}
