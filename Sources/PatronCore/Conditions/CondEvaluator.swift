import Foundation

/// Walks a checked tree, reading the variables from dictionaries: the reference for `CondRunner`,
/// which evaluates conditions (tests check the two agree). Every node and every element an aggregate visits costs one step of the
/// budget. With `tracing` on it also notes the instants after `now` at which the value could
/// change (see `Condition.nextChange`).
struct CondEvaluator {
    let env: [String: CondValue]
    let clock: ProgramClock
    let budget: Int
    /// The instant of the evaluation; `tracing` moves it one second on to measure slopes.
    private var now: Int64
    private let realNow: Int64
    private var remaining: Int
    private var locals: [CondValue] = []
    let tracing: Bool
    private(set) var soonest: Int64?

    init(env: [String: CondValue], clock: ProgramClock, now: Int64, budget: Int, tracing: Bool = false) {
        self.env = env; self.clock = clock; self.budget = budget
        self.now = now; self.realNow = now; self.remaining = budget; self.tracing = tracing
    }

    /// Timestamps within ±30 million years: parts and time zones are only computed there.
    static let timeRange: ClosedRange<Int64> = -1_000_000_000_000_000...1_000_000_000_000_000

    static func mismatch(_ pos: CondPos, _ expected: String, _ v: CondValue) -> CondError {
        CondError(.evaluation, pos, "expected \(expected), found \(v.kindProse): the input does not match the schema")
    }
    /// Null is false wherever a bool is needed.
    static func truth(_ v: CondValue, _ pos: CondPos) throws(CondError) -> Bool {
        switch v {
        case .bool(let b): return b
        case .null: return false
        default: throw mismatch(pos, "a bool", v)
        }
    }

    private mutating func charge(_ steps: Int, _ pos: CondPos) throws(CondError) {
        remaining -= steps
        if remaining < 0 { throw CondError(.budget, pos, "the evaluation costs more than its budget of \(budget) steps") }
    }
    private mutating func note(_ t: Int64?) {
        guard tracing else { return }
        Self.note(t, after: realNow, &soonest)
    }
    /// Keeps the earliest instant after `realNow` in `soonest`.
    static func note(_ t: Int64?, after realNow: Int64, _ soonest: inout Int64?) {
        guard let t, t > realNow else { return }
        soonest = min(soonest ?? t, t)
    }
    /// Evaluates `n` again one second later (for slopes), or nil at the end of time.
    private mutating func later(_ n: CondNode) throws(CondError) -> CondValue? {
        guard now < Int64.max else { return nil }
        let saved = now
        now += 1
        defer { now = saved }
        return try eval(n)
    }

    /// Each case is its own function, so that the recursion carries small frames.
    mutating func eval(_ n: CondNode) throws(CondError) -> CondValue {
        try charge(1, n.pos)
        switch n.kind {
        case .value(let v): return v
        case .now: return .timestamp(Timestamp(seconds: now))
        case .variable(let name): return env[name] ?? .null
        case .local(let i): return locals[i]
        case .field(let t, let name): return try field(t, name, n.pos)
        case .part(let t, let p, let varies): return try part(t, p, varies, n.pos)
        case .not(let x): return .bool(!(try Self.truth(try eval(x), x.pos)))
        case .logic(let op, let xs): return try logic(op, xs)
        case .neg(let x): return try negate(x, n.pos)
        case .arith(let first, let steps): return try arith(first, steps)
        case .compare(let op, let l, let r, let varies): return try compare(op, l, r, varies, n.pos)
        case .isIn(let l, let r): return try isIn(l, r, n.pos)
        case .choose(let c, let a, let b): return try Self.truth(try eval(c), c.pos) ? try eval(a) : try eval(b)
        case .list(let xs): return try list(xs)
        case .has(let x): return .bool(try eval(x) != .null)
        case .text(let op, let t, let arg): return try text(op, t, arg, n.pos)
        case .size(let t): return try list(t, n.pos).map { .int(Int64($0.count)) } ?? .null
        case .within(let t, let d, let field): return try within(t, d, field, n.pos)
        case .each(let kind, let t, let body): return try each(kind, t, body, n.pos)
        case .reduce(let op, let t, let body): return try reduce(op, t, body, n.pos)
        case .slot, .rows, .localField: preconditionFailure("a plan is run by CondRunner")
        }
    }

    private mutating func field(_ t: CondNode, _ name: String, _ pos: CondPos) throws(CondError) -> CondValue {
        switch try eval(t) {
        case .null: return .null
        case .record(let fields): return fields[name] ?? .null
        case let v: throw Self.mismatch(pos, "a record", v)
        }
    }

    private mutating func part(_ t: CondNode, _ part: CondPart, _ varies: Bool, _ pos: CondPos) throws(CondError) -> CondValue {
        let v = try eval(t)
        if tracing && varies, let v1 = try later(t) { Self.traceSteps(v, v1, part, now: now, realNow: realNow, clock: clock, &soonest) }
        return try Self.part(v, part, clock, pos)
    }

    /// `||` stops at the first true, `&&` at the first false.
    private mutating func logic(_ op: CondOp, _ xs: [CondNode]) throws(CondError) -> CondValue {
        let stop = op == .or
        for x in xs where try Self.truth(try eval(x), x.pos) == stop { return .bool(stop) }
        return .bool(!stop)
    }

    private mutating func negate(_ x: CondNode, _ pos: CondPos) throws(CondError) -> CondValue {
        switch try eval(x) {
        case .null: return .null
        case .int(let i) where i != Int64.min: return .int(-i)
        case .duration(let d) where d != Int64.min: return .duration(-d)
        case .int, .duration: throw CondError(.evaluation, pos, "integer overflow in '-'")
        case let v: throw Self.mismatch(pos, "an int or a duration", v)
        }
    }

    /// Every operand is evaluated, left to right; a null makes the result null.
    private mutating func arith(_ first: CondNode, _ steps: [CondStep]) throws(CondError) -> CondValue {
        var acc = try eval(first)
        for step in steps {
            let b = try eval(step.node)
            acc = acc == .null || b == .null ? .null : try Self.arith(step.op, acc, b, step.pos)
        }
        return acc
    }

    private mutating func compare(_ op: CondOp, _ l: CondNode, _ r: CondNode, _ varies: Bool, _ pos: CondPos) throws(CondError) -> CondValue {
        let before = soonest
        let a = try eval(l), b = try eval(r)
        // A side that is null and does not move with time makes the comparison constant: the
        // instants the other side noted (say, the next month of `now.month`) cannot change it.
        if tracing, (a == .null && !l.usesTime) || (b == .null && !r.usesTime) {
            soonest = before
        } else if tracing && varies, let a1 = try later(l), let b1 = try later(r) {
            Self.traceCrossing(a, b, a1, b1, now: now, realNow: realNow, &soonest)
        }
        if case .list(let xs) = a { try charge(xs.count, pos) }
        return try Self.compared(op, a, b, pos)
    }

    /// `a op b` for a comparison operator: equality on any values; ordering false with a null.
    static func compared(_ op: CondOp, _ a: CondValue, _ b: CondValue, _ pos: CondPos) throws(CondError) -> CondValue {
        switch op {
        case .eq: return .bool(a == b)
        case .ne: return .bool(a != b)
        default:
            if a == .null || b == .null { return .bool(false) }
            let c = try order(a, b, pos)
            switch op {
            case .lt: return .bool(c < 0)
            case .le: return .bool(c <= 0)
            case .gt: return .bool(c > 0)
            default: return .bool(c >= 0)
            }
        }
    }

    private mutating func isIn(_ l: CondNode, _ r: CondNode, _ pos: CondPos) throws(CondError) -> CondValue {
        let x = try eval(l)
        guard let xs = try list(r, r.pos), x != .null else { return .bool(false) }
        for y in xs {
            try charge(1, pos)
            if y == x { return .bool(true) }
        }
        return .bool(false)
    }

    private mutating func list(_ xs: [CondNode]) throws(CondError) -> CondValue {
        var out: [CondValue] = []
        for x in xs { out.append(try eval(x)) }
        return .list(out)
    }

    private mutating func text(_ op: CondTextOp, _ t: CondNode, _ arg: CondNode?, _ pos: CondPos) throws(CondError) -> CondValue {
        let s: String
        switch try eval(t) {
        case .null: return .null
        case .string(let v): s = v
        case let v: throw Self.mismatch(pos, "a string", v)
        }
        try charge(s.utf8.count / 64, pos)
        guard let arg else { return op == .size ? .int(Int64(s.unicodeScalars.count)) : .string(s.lowercased()) }
        let p: String
        switch try eval(arg) {
        case .null: return .null
        case .string(let v): p = v
        case let v: throw Self.mismatch(arg.pos, "a string", v)
        }
        return .bool(op == .startsWith ? s.hasPrefix(p) : op == .endsWith ? s.hasSuffix(p) : s.contains(p))
    }

    /// The elements whose time is in (now − d, now]; elements without a time are left out.
    private mutating func within(_ t: CondNode, _ d: CondNode, _ field: String?, _ pos: CondPos) throws(CondError) -> CondValue {
        guard let xs = try list(t, pos) else { return .null }
        let window: Int64
        switch try eval(d) {
        case .null: return .null
        case .duration(let v): window = v
        case let v: throw Self.mismatch(d.pos, "a duration", v)
        }
        let (from, overflow) = now.subtractingReportingOverflow(window)
        let start = overflow ? (window > 0 ? Int64.min : Int64.max) : from
        var kept: [CondValue] = []
        for x in xs {
            try charge(1, pos)
            var time = x
            if let field {
                guard case .record(let fields) = x else {
                    if x == .null { continue }
                    throw Self.mismatch(pos, "a record", x)
                }
                time = fields[field] ?? .null
            }
            guard case .timestamp(let at) = time else {
                if time == .null { continue }
                throw Self.mismatch(pos, "a timestamp", time)
            }
            if at.seconds > start && at.seconds <= now { kept.append(x) }
            // In from `at`, out from `at + window`.
            note(at.seconds)
            let (out, o) = at.seconds.addingReportingOverflow(window)
            if !o { note(out) }
        }
        return .list(kept)
    }

    private mutating func each(_ kind: CondEach, _ t: CondNode, _ body: CondNode, _ pos: CondPos) throws(CondError) -> CondValue {
        guard let xs = try list(t, pos) else { return .null }
        var count: Int64 = 0, kept: [CondValue] = []
        for x in xs {
            try charge(1, pos)
            locals.append(x)
            let ok = try Self.truth(try eval(body), body.pos)
            locals.removeLast()
            switch kind {
            case .exists: if ok { return .bool(true) }
            case .all: if !ok { return .bool(false) }
            case .filter: if ok { kept.append(x) }
            case .count: if ok { count += 1 }
            }
        }
        switch kind {
        case .exists: return .bool(false)
        case .all: return .bool(true)
        case .filter: return .list(kept)
        case .count: return .int(count)
        }
    }

    /// Nulls are skipped; `sum` of nothing is 0, `avg`, `max` and `min` of nothing null.
    private mutating func reduce(_ op: CondReduce, _ t: CondNode, _ body: CondNode?, _ pos: CondPos) throws(CondError) -> CondValue {
        guard let xs = try list(t, pos) else { return .null }
        var sum: Int64 = 0, count: Int64 = 0, best: CondValue? = nil
        for x in xs {
            try charge(1, pos)
            var v = x
            if let body {
                locals.append(x)
                v = try eval(body)
                locals.removeLast()
            }
            if v == .null { continue }
            switch op {
            case .sum, .avg:
                guard case .int(let i) = v else { throw Self.mismatch(pos, "an int", v) }
                let (s, o) = sum.addingReportingOverflow(i)
                if o { throw CondError(.evaluation, pos, "integer overflow in \(op.rawValue)") }
                sum = s; count += 1
            case .max, .min:
                if let b = best {
                    let c = try Self.order(v, b, pos)
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
    private mutating func list(_ t: CondNode, _ pos: CondPos) throws(CondError) -> [CondValue]? {
        switch try eval(t) {
        case .null: return nil
        case .list(let xs): return xs
        case let v: throw Self.mismatch(pos, "a list", v)
        }
    }

    static func arith(_ op: CondOp, _ a: CondValue, _ b: CondValue, _ pos: CondPos) throws(CondError) -> CondValue {
        func checked(_ r: (partialValue: Int64, overflow: Bool)) throws(CondError) -> Int64 {
            guard !r.overflow else { throw CondError(.evaluation, pos, "integer overflow in '\(op.rawValue)'") }
            return r.partialValue
        }
        switch (a, b, op) {
        case (.int(let x), .int(let y), _):
            switch op {
            case .add: return .int(try checked(x.addingReportingOverflow(y)))
            case .sub: return .int(try checked(x.subtractingReportingOverflow(y)))
            case .mul: return .int(try checked(x.multipliedReportingOverflow(by: y)))
            default:
                guard y != 0 else { throw CondError(.evaluation, pos, "division by zero in '\(op.rawValue)'") }
                return .int(try checked(op == .div ? x.dividedReportingOverflow(by: y) : x.remainderReportingOverflow(dividingBy: y)))
            }
        case (.timestamp(let t), .duration(let d), .add), (.duration(let d), .timestamp(let t), .add):
            return .timestamp(Timestamp(seconds: try checked(t.seconds.addingReportingOverflow(d))))
        case (.timestamp(let t), .duration(let d), .sub):
            return .timestamp(Timestamp(seconds: try checked(t.seconds.subtractingReportingOverflow(d))))
        case (.timestamp(let t), .timestamp(let u), .sub):
            return .duration(try checked(t.seconds.subtractingReportingOverflow(u.seconds)))
        case (.duration(let d), .duration(let e), .add):
            return .duration(try checked(d.addingReportingOverflow(e)))
        case (.duration(let d), .duration(let e), .sub):
            return .duration(try checked(d.subtractingReportingOverflow(e)))
        default:
            throw CondError(.evaluation, pos, "'\(op.rawValue)' cannot combine \(a.kindProse) and \(b.kindProse): the input does not match the schema")
        }
    }

    /// -1, 0 or 1.
    static func order(_ a: CondValue, _ b: CondValue, _ pos: CondPos) throws(CondError) -> Int {
        func cmp<T: Comparable>(_ x: T, _ y: T) -> Int { x < y ? -1 : x == y ? 0 : 1 }
        switch (a, b) {
        case (.int(let x), .int(let y)), (.duration(let x), .duration(let y)): return cmp(x, y)
        case (.timestamp(let x), .timestamp(let y)): return cmp(x.seconds, y.seconds)
        case (.date(let x), .date(let y)): return x.year != y.year ? cmp(x.year, y.year) : x.month != y.month ? cmp(x.month, y.month) : cmp(x.day, y.day)
        case (.string(let x), .string(let y)): return cmp(x, y)
        default: throw CondError(.evaluation, pos, "cannot order \(a.kindProse) and \(b.kindProse): the input does not match the schema")
        }
    }

    static func part(_ v: CondValue, _ part: CondPart, _ clock: ProgramClock, _ pos: CondPos) throws(CondError) -> CondValue {
        switch (v, part) {
        case (.null, _): return .null
        case (.timestamp(let t), .year), (.timestamp(let t), .month), (.timestamp(let t), .day), (.timestamp(let t), .dayOfWeek),
             (.timestamp(let t), .hour), (.timestamp(let t), .date):
            guard timeRange.contains(t.seconds) else { throw CondError(.evaluation, pos, "the timestamp \(t.seconds) is out of range") }
            let day = clock.dayNumber(t)
            if part == .hour { return .int((t.seconds + clock.offset(at: t) - day * 86_400) / 3_600) }
            return datePart(CivilDate(dayNumber: day), day, part)
        case (.date(let d), .year), (.date(let d), .month), (.date(let d), .day), (.date(let d), .dayOfWeek):
            guard d.year > -30_000_000, d.year < 30_000_000 else { throw CondError(.evaluation, pos, "the date's year \(d.year) is out of range") }
            return datePart(d, d.dayNumber, part)
        case (.duration(let s), .days): return .int(s / 86_400)
        case (.duration(let s), .hours): return .int(s / 3_600)
        case (.duration(let s), .minutes): return .int(s / 60)
        case (.duration(let s), .seconds): return .int(s)
        default: throw mismatch(pos, "a value with a \(part.rawValue)", v)
        }
    }
    private static func datePart(_ d: CivilDate, _ day: Int64, _ part: CondPart) -> CondValue {
        switch part {
        case .year: .int(Int64(d.year))
        case .month: .int(Int64(d.month))
        case .day: .int(Int64(d.day))
        case .dayOfWeek: .int((day + 3) - floorDiv(day + 3, 7) * 7 + 1)  // 1970-01-01 was a Thursday (4)
        default: .date(d)
        }
    }

    // MARK: next change

    /// Seconds between two timestamps or two durations; nil otherwise or on overflow.
    private static func gap(_ a: CondValue, _ b: CondValue) -> Int64? {
        let r: (partialValue: Int64, overflow: Bool)
        switch (a, b) {
        case (.timestamp(let x), .timestamp(let y)): r = x.seconds.subtractingReportingOverflow(y.seconds)
        case (.duration(let x), .duration(let y)): r = x.subtractingReportingOverflow(y)
        default: return nil
        }
        return r.overflow ? nil : r.partialValue
    }
    private static func seconds(_ v: CondValue) -> Int64? {
        switch v { case .timestamp(let t): t.seconds; case .duration(let d): d; default: nil }
    }

    /// Seconds from `x` to the next local boundary of `part` (hour, day, month, year), with the
    /// offset at `x`; nil for other parts or out of range.
    private static func boundary(_ x: Int64, _ part: CondPart, _ clock: ProgramClock) -> Int64? {
        guard timeRange.contains(x) else { return nil }
        let local = x + clock.offset(at: Timestamp(seconds: x))
        let day = floorDiv(local, 86_400)
        let next: Int64
        switch part {
        case .hour: next = (floorDiv(local, 3_600) + 1) * 3_600
        case .day, .date, .dayOfWeek: next = (day + 1) * 86_400
        case .month, .year:
            let d = CivilDate(dayNumber: day)
            let (y, m) = part == .year ? (d.year + 1, 1) : d.month == 12 ? (d.year + 1, 1) : (d.year, d.month + 1)
            next = CivilDate(year: y, month: m, day: 1).dayNumber * 86_400
        default: return nil
        }
        return next - local
    }

    /// `a − b` is linear in `now` with slope k (measured over one second): notes where it crosses 0.
    static func traceCrossing(_ a: CondValue, _ b: CondValue, _ a1: CondValue, _ b1: CondValue, now: Int64, realNow: Int64, _ soonest: inout Int64?) {
        func note(_ t: Int64?) { Self.note(t, after: realNow, &soonest) }
        guard let d0 = Self.gap(a, b), let d1 = Self.gap(a1, b1) else { return }
        let (k, o) = d1.subtractingReportingOverflow(d0)
        guard !o, k != 0, d0 != Int64.min else { return }
        let q = floorDiv(-d0, k)
        func at(_ s: Int64) {
            guard s > 0 else { return }
            let (t, o2) = now.addingReportingOverflow(s)
            note(o2 ? nil : t)
        }
        at(q)
        at(q &+ 1)
    }

    /// The operand of a part moves by k per second: notes the first second at which the part
    /// changes, found by bisection (the part is monotone in the operand between time-zone
    /// transitions, which are noted themselves).
    ///
    /// `direct`: for a timestamp moving forward, first try the next local hour, day, month or
    /// year boundary, kept when it is where the value changes and did not change a second
    /// before (the part is monotone there, so the bisection would find that instant too).
    static func traceSteps(_ v0: CondValue, _ v1: CondValue, _ part: CondPart, now: Int64, realNow: Int64, clock: ProgramClock,
                           direct: Bool = false, _ soonest: inout Int64?) {
        func note(_ t: Int64?) { Self.note(t, after: realNow, &soonest) }
        guard let x0 = Self.seconds(v0), let x1 = Self.seconds(v1) else { return }
        let (k, o) = x1.subtractingReportingOverflow(x0)
        guard !o, k != 0 else { return }
        func key(_ x: Int64) -> Int64? {
            guard Self.timeRange.contains(x) else { return nil }
            switch part {
            case .days: return x / 86_400
            case .hours: return x / 3_600
            case .minutes: return x / 60
            case .seconds: return x
            case .hour: return floorDiv(x + clock.offset(at: Timestamp(seconds: x)), 3_600)
            default:
                let d = CivilDate(dayNumber: clock.dayNumber(Timestamp(seconds: x)))
                return part == .year ? Int64(d.year) : part == .month ? Int64(d.year * 12 + d.month) : d.dayNumber
            }
        }
        let k0 = key(x0)
        func changed(_ s: Int64) -> Bool {
            let (m, o1) = k.multipliedReportingOverflow(by: s)
            let (x, o2) = x0.addingReportingOverflow(m)
            return o1 || o2 || k0 == nil || key(x) != k0
        }
        var hi: Int64 = 1 << 36
        if case .timestamp = v0, k > 0, Self.timeRange.contains(x0),
           let next = clock.timeZone.nextDaylightSavingTimeTransition(after: Date(timeIntervalSince1970: TimeInterval(x0)))?.timeIntervalSince1970,
           abs(next) < 1e17 {
            let s = max(1, floorDiv(Int64(next.rounded(.down)) - x0, k))
            note(now &+ s)
            hi = min(hi, s)
        }
        guard changed(hi) else { return }
        if direct, case .timestamp = v0, k > 0, k < 1 << 32, let c = boundary(x0, part, clock).map({ floorDiv($0 + k - 1, k) }),
           c >= 1, c < hi, changed(c), c == 1 || !changed(c - 1) {
            note(now &+ c)
            return
        }
        var lo: Int64 = 0
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if changed(mid) { hi = mid } else { lo = mid }
        }
        note(now &+ hi)
    }
}
