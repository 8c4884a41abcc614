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

/// Runs a plan (`CondNode.resolved`) against a `CondSource`. It gives what `CondEvaluator`
/// gives for the same inputs as values (the same value or error, the same steps charged, the
/// same instants noted), without building the member or the orders as dictionaries.
struct CondRunner<S: CondSource> {
    let source: S
    let layout: CondLayout
    let clock: ProgramClock
    let budget: Int
    /// The instant of the evaluation; `tracing` moves it one second on to measure slopes.
    private var now: Int64
    private let realNow: Int64
    private var remaining: Int
    private var locals: [CondVal] = []
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

    init(source: S, layout: CondLayout, clock: ProgramClock, now: Int64, budget: Int, tracing: Bool = false) {
        self.source = source; self.layout = layout; self.clock = clock; self.budget = budget
        self.now = now; self.realNow = now; self.remaining = budget; self.tracing = tracing
        let vs = source as? CondValueSource
        walkPaths = vs?.conforms == false
        plainLists = vs.flatMap { $0.plainLists.contains { $0 != nil } ? $0.plainLists : nil }
    }

    private typealias Ev = CondEvaluator

    private mutating func charge(_ steps: Int, _ pos: CondPos) throws(CondError) {
        remaining -= steps
        if remaining < 0 { throw CondError(.budget, pos, "the evaluation costs more than its budget of \(budget) steps") }
    }
    private mutating func note(_ t: Int64?) {
        guard tracing, !ignoring else { return }
        Ev.note(t, after: realNow, &soonest)
    }
    /// Evaluates `n` again one second later (for slopes), or nil at the end of time.
    private mutating func later(_ n: CondNode) throws(CondError) -> CondValue? {
        guard now < Int64.max else { return nil }
        let saved = now
        now += 1
        defer { now = saved }
        return try value(n)
    }

    // Helpers are `mutating` although most change nothing: called from mutating methods, a
    // non-mutating one is given a copy of the runner.

    /// The record `index` of `list` as a value (when a condition uses a record as a whole).
    private mutating func record(_ list: Int, _ index: Int) -> CondValue {
        if let vs = source as? CondValueSource { return vs.rows[list][index] }
        var fields: [String: CondValue] = [:]
        for (name, f) in layout.fields[list] { fields[name] = source.field(list, index, f) }
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
    mutating func value(_ n: CondNode) throws(CondError) -> CondValue { plain(try eval(n)) }

    /// Each case is its own function, so that the recursion carries small frames.
    mutating func eval(_ n: CondNode) throws(CondError) -> CondVal {
        // Nodes that stand for several: all their steps at once when the budget allows.
        switch n.kind {
        case .slot(let slot, let cost, let original):
            guard remaining >= cost, !walkPaths else { return try eval(original) }
            remaining -= cost
            return .v(source.value(slot))
        case .localField(let i, let fields, let original):
            guard remaining >= 2, case .row(let l, let index) = locals[i] else { return try eval(original) }
            remaining -= 2
            let f = fields[l]
            return .v(f < 0 ? .null : source.field(l, index, f))
        default: break
        }
        try charge(1, n.pos)
        switch n.kind {
        case .value(let v): return .v(v)
        case .now: return .v(.timestamp(Timestamp(seconds: now)))
        case .variable(let name): return variable(name)
        case .rows(let l): return rows(l)
        case .local(let i): return locals[i]
        case .field(let t, let name): return try field(t, name, n.pos)
        case .part(let t, let p, let varies): return .v(try part(t, p, varies, n.pos))
        case .not(let x): return .v(.bool(!(try Ev.truth(try value(x), x.pos))))
        case .logic(let op, let xs): return .v(try logic(op, xs))
        case .neg(let x): return .v(try negate(x, n.pos))
        case .arith(let first, let steps): return .v(try arith(first, steps))
        case .compare(let op, let l, let r, let varies): return .v(try compare(op, l, r, varies, n.pos))
        case .isIn(let l, let r): return .v(try isIn(l, r, n.pos))
        case .choose(let c, let a, let b): return try Ev.truth(try value(c), c.pos) ? try eval(a) : try eval(b)
        case .list(let xs): return .v(try list(xs))
        case .has(let x): return .v(.bool(try has(x)))
        case .text(let op, let t, let arg): return .v(try text(op, t, arg, n.pos))
        case .size(let t): return .v(try list(t, n.pos).map { .int(Int64($0.count)) } ?? .null)
        case .within(let t, let d, let field): return try within(t, d, field, n.pos)
        case .each(let kind, let t, let body): return try each(kind, t, body, n.pos)
        case .reduce(let op, let t, let body): return .v(try reduce(op, t, body, n.pos))
        case .slot, .localField: preconditionFailure("handled above")
        }
    }

    /// A variable by name (the slow way of a slot, or a list).
    private mutating func variable(_ name: String) -> CondVal {
        if let l = layout.lists[name] { return rows(l) }
        return .v(layout.slots[name].map { source.value($0) } ?? .null)
    }

    private mutating func rows(_ l: Int) -> CondVal {
        if let plainLists, let v = plainLists[l] { return .v(v) }
        return .rows(l, .range(0..<source.count(l)))
    }

    private mutating func field(_ t: CondNode, _ name: String, _ pos: CondPos) throws(CondError) -> CondVal {
        switch try eval(t) {
        case .v(.null): return .v(.null)
        case .v(.record(let fields)): return .v(fields[name] ?? .null)
        case .row(let l, let i): return .v(layout.fields[l][name].map { source.field(l, i, $0) } ?? .null)
        case let x: throw Ev.mismatch(pos, "a record", plain(x))
        }
    }

    private mutating func has(_ x: CondNode) throws(CondError) -> Bool {
        switch try eval(x) {
        case .v(let v): return v != .null
        case .row, .rows: return true
        }
    }

    private mutating func part(_ t: CondNode, _ part: CondPart, _ varies: Bool, _ pos: CondPos) throws(CondError) -> CondValue {
        let v = try value(t)
        if tracing && varies, let v1 = try later(t), !ignoring {
            Ev.traceSteps(v, v1, part, now: now, realNow: realNow, clock: clock, &soonest)
        }
        return try Ev.part(v, part, clock, pos)
    }

    /// `||` stops at the first true, `&&` at the first false.
    private mutating func logic(_ op: CondOp, _ xs: [CondNode]) throws(CondError) -> CondValue {
        let stop = op == .or
        for x in xs where try Ev.truth(try value(x), x.pos) == stop { return .bool(stop) }
        return .bool(!stop)
    }

    private mutating func negate(_ x: CondNode, _ pos: CondPos) throws(CondError) -> CondValue {
        switch try value(x) {
        case .null: return .null
        case .int(let i) where i != Int64.min: return .int(-i)
        case .duration(let d) where d != Int64.min: return .duration(-d)
        case .int, .duration: throw CondError(.evaluation, pos, "integer overflow in '-'")
        case let v: throw Ev.mismatch(pos, "an int or a duration", v)
        }
    }

    /// Every operand is evaluated, left to right; a null makes the result null.
    private mutating func arith(_ first: CondNode, _ steps: [CondStep]) throws(CondError) -> CondValue {
        var acc = try value(first)
        for step in steps {
            let b = try value(step.node)
            acc = acc == .null || b == .null ? .null : try Ev.arith(step.op, acc, b, step.pos)
        }
        return acc
    }

    private mutating func compare(_ op: CondOp, _ l: CondNode, _ r: CondNode, _ varies: Bool, _ pos: CondPos) throws(CondError) -> CondValue {
        let before = soonest
        let x = try eval(l)
        let a = plain(x)
        // A side that is null and does not move with time makes the comparison constant: the
        // instants the other side notes (say, the next month of `now.month`) are dropped, so
        // they need not be worked out.
        let dropped = tracing && a == .null && !l.usesTime
        let wasIgnoring = ignoring
        if dropped { ignoring = true }
        let b: CondValue
        do { b = try value(r) } catch { ignoring = wasIgnoring; throw error }
        ignoring = wasIgnoring
        if tracing, dropped || (b == .null && !r.usesTime) {
            soonest = before
        } else if tracing && varies, let a1 = try later(l), let b1 = try later(r), !ignoring {
            Ev.traceCrossing(a, b, a1, b1, now: now, realNow: realNow, &soonest)
        }
        switch x {
        case .v(.list(let xs)): try charge(xs.count, pos)
        case .rows(_, let rs): try charge(rs.count, pos)
        default: break
        }
        switch op {
        case .eq: return .bool(a == b)
        case .ne: return .bool(a != b)
        default:
            if a == .null || b == .null { return .bool(false) }
            let c = try Ev.order(a, b, pos)
            switch op {
            case .lt: return .bool(c < 0)
            case .le: return .bool(c <= 0)
            case .gt: return .bool(c > 0)
            default: return .bool(c >= 0)
            }
        }
    }

    private mutating func isIn(_ l: CondNode, _ r: CondNode, _ pos: CondPos) throws(CondError) -> CondValue {
        let x = try value(l)
        guard let xs = try list(r, r.pos), x != .null else { return .bool(false) }
        switch xs {
        case .values(let ys):
            for y in ys {
                try charge(1, pos)
                if y == x { return .bool(true) }
            }
        case .rows(let l, let rs):
            for k in 0..<rs.count {
                try charge(1, pos)
                if record(l, rs[k]) == x { return .bool(true) }
            }
        }
        return .bool(false)
    }

    private mutating func list(_ xs: [CondNode]) throws(CondError) -> CondValue {
        var out: [CondValue] = []
        for x in xs { out.append(try value(x)) }
        return .list(out)
    }

    private mutating func text(_ op: CondTextOp, _ t: CondNode, _ arg: CondNode?, _ pos: CondPos) throws(CondError) -> CondValue {
        let s: String
        switch try value(t) {
        case .null: return .null
        case .string(let v): s = v
        case let v: throw Ev.mismatch(pos, "a string", v)
        }
        try charge(s.utf8.count / 64, pos)
        guard let arg else { return op == .size ? .int(Int64(s.unicodeScalars.count)) : .string(s.lowercased()) }
        let p: String
        switch try value(arg) {
        case .null: return .null
        case .string(let v): p = v
        case let v: throw Ev.mismatch(arg.pos, "a string", v)
        }
        return .bool(op == .startsWith ? s.hasPrefix(p) : op == .endsWith ? s.hasSuffix(p) : s.contains(p))
    }

    /// The elements whose time is in (now − d, now]; elements without a time are left out. Over
    /// a list in time order, two binary searches.
    private mutating func within(_ t: CondNode, _ d: CondNode, _ field: String?, _ pos: CondPos) throws(CondError) -> CondVal {
        guard let xs = try list(t, pos) else { return .v(.null) }
        let window: Int64
        switch try value(d) {
        case .null: return .v(.null)
        case .duration(let v): window = v
        case let v: throw Ev.mismatch(d.pos, "a duration", v)
        }
        let (from, overflow) = now.subtractingReportingOverflow(window)
        let start = overflow ? (window > 0 ? Int64.min : Int64.max) : from
        switch xs {
        case .values(let xs):
            var kept: [CondValue] = []
            for x in xs {
                try charge(1, pos)
                var time = x
                if let field {
                    guard case .record(let fields) = x else {
                        if x == .null { continue }
                        throw Ev.mismatch(pos, "a record", x)
                    }
                    time = fields[field] ?? .null
                }
                guard case .timestamp(let at) = time else {
                    if time == .null { continue }
                    throw Ev.mismatch(pos, "a timestamp", time)
                }
                if at.seconds > start && at.seconds <= now { kept.append(x) }
                noteWindow(at.seconds, window)
            }
            return .v(.list(kept))
        case .rows(let l, let rs):
            guard let tf = layout.timeFields[l] else { return .rows(l, .some([])) }
            if source.timeOrdered(l) {
                // No element can fail: every one costs its step, at once.
                try charge(rs.count, pos)
                func time(_ k: Int) -> Int64 {
                    if case .timestamp(let at) = source.field(l, rs[k], tf) { return at.seconds }
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
                try charge(1, pos)
                let time = source.field(l, rs[k], tf)
                guard case .timestamp(let at) = time else {
                    if time == .null { continue }
                    throw Ev.mismatch(pos, "a timestamp", time)
                }
                if at.seconds > start && at.seconds <= now { kept.append(rs[k]) }
                noteWindow(at.seconds, window)
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

    private mutating func each(_ kind: CondEach, _ t: CondNode, _ body: CondNode, _ pos: CondPos) throws(CondError) -> CondVal {
        guard let xs = try list(t, pos) else { return .v(.null) }
        var count: Int64 = 0
        switch xs {
        case .values(let xs):
            var kept: [CondValue] = []
            for x in xs {
                try charge(1, pos)
                locals.append(.v(x))
                let ok = try Ev.truth(try value(body), body.pos)
                locals.removeLast()
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
            for k in 0..<rs.count {
                try charge(1, pos)
                locals.append(.row(l, rs[k]))
                let ok = try Ev.truth(try value(body), body.pos)
                locals.removeLast()
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

    /// Nulls are skipped; `sum` of nothing is 0, `avg`, `max` and `min` of nothing null.
    private mutating func reduce(_ op: CondReduce, _ t: CondNode, _ body: CondNode?, _ pos: CondPos) throws(CondError) -> CondValue {
        guard let xs = try list(t, pos) else { return .null }
        var sum: Int64 = 0, count: Int64 = 0, best: CondValue? = nil
        for k in 0..<xs.count {
            try charge(1, pos)
            let x: CondVal
            switch xs {
            case .values(let vs): x = .v(vs[k])
            case .rows(let l, let rs): x = .row(l, rs[k])
            }
            var v: CondValue
            if let body {
                locals.append(x)
                v = try value(body)
                locals.removeLast()
            } else {
                v = plain(x)
            }
            if v == .null { continue }
            switch op {
            case .sum, .avg:
                guard case .int(let i) = v else { throw Ev.mismatch(pos, "an int", v) }
                let (s, o) = sum.addingReportingOverflow(i)
                if o { throw CondError(.evaluation, pos, "integer overflow in \(op.rawValue)") }
                sum = s; count += 1
            case .max, .min:
                if let b = best {
                    let c = try Ev.order(v, b, pos)
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
    private mutating func list(_ t: CondNode, _ pos: CondPos) throws(CondError) -> CondList? {
        switch try eval(t) {
        case .v(.null): return nil
        case .v(.list(let xs)): return .values(xs)
        case .rows(let l, let rs): return .rows(l, rs)
        case let x: throw Ev.mismatch(pos, "a list", plain(x))
        }
    }
}
