import Foundation
import Testing
@testable import PatronCore

/// The condition language: parsing and printing, type errors, evaluation (time edges, nulls,
/// time zones), limits, the next-change instant, and generated inputs.
@Suite struct ConditionTests {
    static let shanghai = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
    static let utc = ProgramClock(timeZone: TimeZone(identifier: "UTC")!)
    static let newYork = ProgramClock(timeZone: TimeZone(identifier: "America/New_York")!)
    /// 2026-11-11T10:00:00+08:00 (a Wednesday).
    static let now = Timestamp(iso8601: "2026-11-11T10:00:00+08:00")!

    static func instant(_ s: String) -> Timestamp { Timestamp(iso8601: s)! }
    static func order(_ id: String, daysAgo: Int, _ amount: Int64, _ category: String?, coupon: Bool = false) -> CondValue {
        ["id": .string(id), "at": .timestamp(now.adding(days: -daysAgo)), "amount": .int(amount),
         "category": category.map { .string($0) } ?? .null, "channel": "app", "store": .null, "skus": ["sku-1"],
         "usedCoupon": .bool(coupon)]
    }
    static let member: CondValue = [
        "id": "m1", "tier": "gold", "registeredAt": .timestamp(instant("2025-01-01T00:00:00+08:00")),
        "profile": ["name": "王小明", "birthday": .date(CivilDate(year: 1990, month: 11, day: 20)), "city": "Shanghai",
                    "marketingConsent": true],
        "points": ["balance": 1500, "available": 1200, "pending": 300],
        "growth": ["lifetime": 4200, "qualifying": 3800],
        "tags": ["vip", "48小时未复购"], "identities": [["kind": "phone", "value": "13800000000"]],
        "lastOrderAt": .timestamp(now.adding(days: -1)), "orderCount": 4, "spentMinor": 88000,
    ]
    /// Four orders: 1, 10, 90 and 200 days before `now`; two with a coupon.
    static let orders: CondValue = [
        order("o1", daysAgo: 1, 30000, "shoes", coupon: true), order("o2", daysAgo: 10, 25000, "bags", coupon: true),
        order("o3", daysAgo: 90, 20000, nil), order("o4", daysAgo: 200, 13000, "shoes"),
    ]
    static let env: [String: CondValue] = ["member": member, "orders": orders]

    static func compile(_ s: String, expecting: CondType = .bool) throws -> Condition {
        try Condition.compile(s, schema: .member, expecting: expecting).get()
    }
    static func value(_ s: String, expecting: CondType = .bool, env: [String: CondValue] = env, at t: Timestamp = now,
                      clock: ProgramClock = shanghai) throws -> CondValue {
        try compile(s, expecting: expecting).evaluate(env, now: t, clock: clock).get()
    }

    // MARK: parsing and printing

    @Test(arguments: [
        "member.tier in ['gold', 'diamond'] && member.points.available >= 1000",
        "orders.within('90d').count() >= 3",
        "orders.within(\"30d\").sum(amount) >= 50000",
        "now - member.lastOrderAt > duration('48h')",
        "(1 + 2) * 3 - -4 % 5 / 6",
        "1 - (2 - 3) - 4",
        "!(a || b) && !c || d",
        "a ? b ? 1 : 2 : c ? 3 : 4",
        "(a ? b : c) ? d : e",
        "(a ? 1 : 2) + 3",
        "x.y.z(1, [2, 3], 'it\\'s \\\\ \\n')",
        "(-1).size() + -(1).size()",
        "('vip' in member.tags) == true",
        "(1 < 2) == (3 < 4)",
        "orders.any(o, o.category == 'shoes' && o.skus.exists(s, s.startsWith('N')))",
        "member.profile.birthday.month == now.month",
        "timestamp('2026-11-11T00:00:00+08:00') < now && date('2026-11-11') != null",
        "[] == [[1], []]",
        "\n  member.points.available\n    >= 1000",
    ])
    func printingThenParsingGivesTheSameTree(_ source: String) throws {
        let tree = try CondParser.parse(source)
        let printed = CondPrinter.print(tree)
        #expect(try CondParser.parse(printed) == tree, "\(printed)")
        #expect(CondPrinter.print(try CondParser.parse(printed)) == printed)
    }

    @Test func sourceIsTheNormalForm() throws {
        let c = try Self.compile("  member.tier==\"gold\"&&((member.points.available>=1000))  ")
        #expect(c.source == "member.tier == 'gold' && member.points.available >= 1000")
        #expect(c.description == c.source)
        #expect(try Self.compile("(1 + 2) * 3 > (4)").source == "(1 + 2) * 3 > 4")
    }

    // MARK: errors

    struct ErrorCase: Sendable, CustomStringConvertible {
        var source: String, expected: String, kind: CondError.Kind
        var description: String { source }
    }

    @Test(arguments: [
        ErrorCase(source: "member.orderCount > 'abc'", expected: "1:21: expected an int, found a string ('abc')", kind: .type),
        ErrorCase(source: "member.tier == 'gold' &&\n    member.tierr == 'x'", expected: "2:12: unknown field 'tierr' on member (did you mean 'tier'?)", kind: .type),
        ErrorCase(source: "(member.orderCount > 1", expected: "1:23: expected ')'", kind: .syntax),
        ErrorCase(source: "member.profile.cityy == 'x'", expected: "1:16: unknown field 'cityy' on profile (did you mean 'city'?)", kind: .type),
        ErrorCase(source: "nw > member.registeredAt", expected: "1:1: unknown name 'nw' (did you mean 'now'?)", kind: .type),
        ErrorCase(source: "orders.within('90x').count() > 1", expected: "1:15: expected a duration such as '90d'", kind: .type),
        ErrorCase(source: "orders.sum(amountt) > 1", expected: "1:12: unknown field 'amountt' on order (did you mean 'amount'?)", kind: .type),
        ErrorCase(source: "orders.sum(category) > 1", expected: "1:12: sum needs ints, found an optional string", kind: .type),
        ErrorCase(source: "member.points", expected: "1:1: the expression must give a bool, found a points record", kind: .type),
        ErrorCase(source: "now - member.tier > duration('1h')", expected: "1:7: expected a duration or a timestamp, found a string", kind: .type),
        ErrorCase(source: "1 < 2 < 3", expected: "1:7: comparisons cannot be chained", kind: .syntax),
        ErrorCase(source: "member.tier = 'gold'", expected: "1:13: unexpected '=': compare with '=='", kind: .syntax),
        ErrorCase(source: "orders.count() > 90d", expected: "1:20: unexpected 'd' after a number", kind: .syntax),
        ErrorCase(source: "member.tags.size > 1", expected: "1:13: size is a method: write size()", kind: .type),
        ErrorCase(source: "now.month() == 1", expected: "1:5: month is a field: write .month without ()", kind: .type),
        ErrorCase(source: "orders.any(member, true)", expected: "1:12: 'member' is already a name here", kind: .type),
        ErrorCase(source: "orders.any(o)", expected: "1:8: any takes a name for the element and an expression", kind: .type),
        ErrorCase(source: "member.tier in 'gold'", expected: "1:16: 'in' needs a list on its right, found a string ('gold')", kind: .type),
        ErrorCase(source: "1 in ['a']", expected: "1:1: expected a string to look for in a list<string>, found an int (1)", kind: .type),
        ErrorCase(source: "member == member", expected: "1:1: records cannot be compared", kind: .type),
        ErrorCase(source: "member.lastOrderAt < null", expected: "1:22: '<' with null is always false", kind: .type),
        ErrorCase(source: "[1, 'a'].size() > 0", expected: "1:5: list elements must have one type: expected an int, found a string ('a')", kind: .type),
        ErrorCase(source: "(true ? 1 : 'a') > 0", expected: "1:13: both branches of '?:' must have one type", kind: .type),
        ErrorCase(source: "member.tier && true", expected: "1:1: '&&' needs bools, found a string", kind: .type),
        ErrorCase(source: "orders.within('7d').count() >= 1 &&", expected: "1:36: expected a value, found end of input", kind: .syntax),
        ErrorCase(source: "'unterminated", expected: "1:1: unterminated string", kind: .syntax),
        ErrorCase(source: "'a\\qb' == 'x'", expected: "1:3: unknown escape '\\q'", kind: .syntax),
        ErrorCase(source: "member.tier # 1", expected: "1:13: unexpected character '#'", kind: .syntax),
        ErrorCase(source: "member.tier 'x'", expected: "1:13: expected an operator or the end of the expression, found 'x'", kind: .syntax),
        ErrorCase(source: "foo(1)", expected: "1:1: unknown function 'foo'", kind: .type),
        ErrorCase(source: "timestamp('2026-01-01') < now", expected: "1:11: expected a date-time with a zone", kind: .type),
        ErrorCase(source: "date('2026-02-30') < now.date", expected: "1:6: expected a date YYYY-MM-DD", kind: .type),
        ErrorCase(source: "duration(member.tier) > duration('1h')", expected: "1:1: duration takes one string literal", kind: .type),
        ErrorCase(source: "member.identities.within('1d').size() > 0", expected: "1:19: within needs elements with a time, and identity records have none", kind: .type),
        ErrorCase(source: "99999999999999999999 > 1", expected: "1:1: the number is too large", kind: .syntax),
        ErrorCase(source: "member.profile.birthday > now", expected: "1:27: expected a date, found a timestamp", kind: .type),
    ])
    func reportsErrorsWithTheirPlace(_ c: ErrorCase) {
        switch Condition.compile(c.source, schema: .member) {
        case .success(let cond): Issue.record("compiled: \(cond.source)")
        case .failure(let e):
            #expect(e.description.contains(c.expected), "\(e)")
            #expect(e.kind == c.kind)
        }
    }

    @Test func otherResultTypesOnRequest() throws {
        #expect(try Self.value("orders.within('30d').sum(amount)", expecting: .int) == .int(55000))
        #expect(try Self.value("member.tier", expecting: .string) == "gold")
        #expect(try Self.compile("member.rfm.score", expecting: .int).type == .optional(.int))
        #expect(throws: CondError.self) { try Self.compile("member.tier", expecting: .int) }
        #expect(try Self.value("orders.filter(o, o.usedCoupon)", expecting: .list(.record("order"))) == .list(Array(Self.orders.listItems.prefix(2))))
    }

    // MARK: evaluation

    struct EvalCase: Sendable, CustomStringConvertible {
        var source: String, expected: CondValue, type: CondType = .bool
        var description: String { source }
    }

    @Test(arguments: [
        EvalCase(source: "orders.within('90d').count() >= 3", expected: false),  // the order 90 days ago is out
        EvalCase(source: "orders.within('91d').count() >= 3", expected: true),
        EvalCase(source: "orders.within('30d').sum(amount) >= 50000", expected: true),
        EvalCase(source: "orders.any(o, o.category == 'shoes')", expected: true),
        EvalCase(source: "now - member.lastOrderAt > duration('48h')", expected: false),
        EvalCase(source: "member.tier in ['gold', 'diamond'] && member.points.available >= 1000", expected: true),
        EvalCase(source: "'vip' in member.tags", expected: true),
        EvalCase(source: "'48小时未复购' in member.tags", expected: true),
        EvalCase(source: "member.profile.birthday.month == now.month", expected: true),
        EvalCase(source: "orders.filter(o, o.usedCoupon).count() * 2 > orders.count()", expected: false),
        EvalCase(source: "orders.count(o, o.usedCoupon) * 2 >= orders.count()", expected: true),
        EvalCase(source: "orders.avg(amount)", expected: 22000, type: .int),
        EvalCase(source: "orders.max(amount)", expected: 30000, type: .int),
        EvalCase(source: "orders.min(o, o.amount / 1000)", expected: 13, type: .int),
        EvalCase(source: "orders.max(at)", expected: .timestamp(now.adding(days: -1)), type: .timestamp),
        EvalCase(source: "orders.all(o, o.amount > 10000)", expected: true),
        EvalCase(source: "orders.all(o, o.category == 'shoes')", expected: false),
        EvalCase(source: "member.identities.exists(i, i.kind == 'phone' && i.value.startsWith('138'))", expected: true),
        EvalCase(source: "member.profile.city.lower().contains('hang') && member.profile.city.endsWith('hai')", expected: true),
        EvalCase(source: "member.profile.name.size()", expected: 3, type: .int),
        EvalCase(source: "(now - member.registeredAt).days", expected: 679, type: .int),
        EvalCase(source: "now.dayOfWeek * 100 + now.hour", expected: 310, type: .int),
        EvalCase(source: "now.date == date('2026-11-11') && now.year == 2026 && now.day == 11", expected: true),
        EvalCase(source: "date('2026-11-15').dayOfWeek", expected: 7, type: .int),
        EvalCase(source: "member.growth.qualifying >= 5000 ? 'diamond' : member.growth.qualifying >= 3000 ? 'gold' : 'silver'", expected: "gold", type: .string),
        EvalCase(source: "5000 - member.growth.qualifying", expected: 1200, type: .int),
        EvalCase(source: "-7 / 2 * 10 + -7 % 2", expected: -31, type: .int),
        EvalCase(source: "duration('1h30m') == duration('90m') && duration('1d') > duration('23h59m59s')", expected: true),
        EvalCase(source: "now - duration('10h') == timestamp('2026-11-11T00:00:00+08:00')", expected: true),
        EvalCase(source: "(timestamp('2026-11-11T00:00:00+08:00') - now).hours", expected: -10, type: .int),
        EvalCase(source: "[1, 2] == [1, 2] && [] != [1] && 2 in [1, 2] && !(3 in [])", expected: true),
        EvalCase(source: "orders.within('90d').filter(o, o.category == 'shoes').size()", expected: 1, type: .int),
        EvalCase(source: "orders.within(duration('90d') + duration('1s')).count()", expected: 3, type: .int),
    ])
    func evaluates(_ c: EvalCase) throws {
        #expect(try Self.value(c.source, expecting: c.type) == c.expected)
    }

    @Test(arguments: [(-1, false), (0, false), (1, true)])
    func fortyEightHoursIsStrict(_ offset: Int64, _ expected: Bool) throws {
        let last = Self.instant("2026-11-09T10:00:00+08:00")
        let env: [String: CondValue] = ["member": ["lastOrderAt": .timestamp(last)]]
        let t = last.adding(seconds: 48 * 3600 + offset)
        #expect(try Self.value("now - member.lastOrderAt > duration('48h')", env: env, at: t) == .bool(expected))
    }

    @Test(arguments: [(-1, 1), (0, 0), (1, 0)])
    func windowIsOpenAtItsStart(_ offset: Int64, _ expected: Int64) throws {
        // (now − 90d, now]: an order exactly 90 days old is out.
        let env: [String: CondValue] = ["orders": [["at": .timestamp(Self.now.adding(days: -90)), "amount": 5]]]
        #expect(try Self.value("orders.within('90d').count()", expecting: .int, env: env, at: Self.now.adding(seconds: offset)) == .int(expected))
        // An order in the future (of this `now`) is not in the window either.
        #expect(try Self.value("orders.within('90d').count()", expecting: .int, env: env, at: Self.now.adding(days: -91)) == .int(0))
    }

    @Test func emptyHistories() throws {
        let env: [String: CondValue] = ["member": Self.member, "orders": []]
        #expect(try Self.value("orders.count()", expecting: .int, env: env) == 0)
        #expect(try Self.value("orders.within('90d').sum(amount)", expecting: .int, env: env) == 0)
        #expect(try Self.value("orders.avg(amount)", expecting: .int, env: env) == .null)
        #expect(try Self.value("orders.max(amount)", expecting: .int, env: env) == .null)
        #expect(try Self.value("orders.any(o, o.amount > 0)", env: env) == false)
        #expect(try Self.value("orders.all(o, o.amount > 0)", env: env) == true)
        #expect(try Self.value("orders.avg(amount) > 0", env: env) == false)
        #expect(try Self.value("orders.filter(o, o.usedCoupon).count() * 2 > orders.count()", env: env) == false)
    }

    @Test func nullRules() throws {
        // A member who never ordered, with no profile, RFM or lifecycle.
        let env: [String: CondValue] = ["member": ["tier": "basic", "lastOrderAt": .null], "orders": []]
        let cases: [(String, Bool)] = [
            ("now - member.lastOrderAt > duration('48h')", false),
            ("now - member.lastOrderAt <= duration('48h')", false),
            ("!(now - member.lastOrderAt > duration('48h'))", true),
            ("has(member.lastOrderAt)", false),
            ("member.lastOrderAt == null", true),
            ("member.lastOrderAt != null", false),
            ("!has(member.lastOrderAt) || now - member.lastOrderAt > duration('90d')", true),
            ("member.lifecycle == 'lost'", false),
            ("member.lifecycle != 'lost'", true),
            ("member.rfm.score >= 4", false),
            ("member.rfm.score < 4", false),
            ("member.profile.city.startsWith('Sh')", false),
            ("!member.profile.city.startsWith('Sh')", true),
            ("member.profile.marketingConsent", false),
            ("member.profile.birthday.month == now.month", false),
            ("null == null && member.lifecycle == member.profile.city", true),
            ("member.lifecycle in ['lost', 'silent']", false),
            ("member.tags.size() == 0", false),  // the tags are missing: size() is null
            ("member.points.available + 1 > 0", false),
            ("(member.lifecycle == null ? 'none' : member.lifecycle) == 'none'", true),
            ("orders.within('90d').count() == 0", true),
        ]
        for (source, expected) in cases {
            #expect(try Self.value(source, env: env) == .bool(expected), "\(source)")
        }
        #expect(try Self.value("member.points.available + 1", expecting: .int, env: env) == .null)
        #expect(try Self.value("member.lastOrderAt", expecting: .timestamp, env: env) == .null)
    }

    @Test func partsAreInTheProgramsTimeZone() throws {
        // 2026-10-31T16:30Z is 2026-11-01 00:30 in Shanghai and still October in UTC.
        let t = Self.instant("2026-10-31T16:30:00Z")
        #expect(try Self.value("now.month", expecting: .int, at: t, clock: Self.shanghai) == 11)
        #expect(try Self.value("now.month", expecting: .int, at: t, clock: Self.utc) == 10)
        #expect(try Self.value("member.profile.birthday.month == now.month", at: t, clock: Self.shanghai) == true)
        #expect(try Self.value("member.profile.birthday.month == now.month", at: t, clock: Self.utc) == false)
        #expect(try Self.value("now.hour", expecting: .int, at: t, clock: Self.shanghai) == 0)
        #expect(try Self.value("now.date", expecting: .date, at: t, clock: Self.utc) == .date(CivilDate(year: 2026, month: 10, day: 31)))
        #expect(try Self.value("now.dayOfWeek", expecting: .int, at: t, clock: Self.shanghai) == 7)  // Sunday
    }

    @Test func runtimeErrorsHaveTheirPlace() throws {
        func error(_ s: String, _ env: [String: CondValue] = Self.env, budget: Int = Condition.defaultBudget) throws -> CondError? {
            if case .failure(let e) = try Self.compile(s, expecting: .int).evaluate(env, now: Self.now, clock: Self.shanghai, budget: budget) { return e }
            return nil
        }
        #expect(try error("member.orderCount / (member.orderCount - 4)")?.description == "1:19: division by zero in '/'")
        #expect(try error("member.orderCount % 0")?.kind == .evaluation)
        #expect(try error("9223372036854775807 + member.orderCount")?.description == "1:21: integer overflow in '+'")
        #expect(try error("member.spentMinor * 9223372036854775807")?.description.contains("integer overflow in '*'") == true)
        #expect(try error("member.orderCount", ["member": ["orderCount": "many"]]) == nil)  // passed through as given
        #expect(try error("member.orderCount + 1", ["member": ["orderCount": "many"]])?.message.contains("does not match the schema") == true)
        #expect(try error("orders.count(o, o.amount > 0)", budget: 10)?.kind == .budget)
    }

    @Test func schemasCanBeExtended() throws {
        var schema = CondSchema.member
        schema.records["member"]?.fields["referralCount"] = .int
        let c = try Condition.compile("member.referralCount >= 5 && member.orderCount >= 1", schema: schema).get()
        var m = Self.member
        if case .record(var fields) = m { fields["referralCount"] = 6; m = .record(fields) }
        #expect(c.holds(["member": m], now: Self.now, clock: Self.shanghai) == .success(true))
        #expect(throws: CondError.self) { try Condition.compile("member.referralCount >= 5", schema: .member).get() }
    }

    // MARK: limits

    @Test func limits() throws {
        func failure(_ s: String) -> CondError? {
            if case .failure(let e) = Condition.compile(s, schema: .member) { return e }
            return nil
        }
        let long = "member.tier == '" + String(repeating: "x", count: Condition.maxSourceLength) + "'"
        #expect(failure(long)?.kind == .limit)
        #expect(failure(long)?.message.contains("limit is 4000") == true)
        let deep = String(repeating: "(", count: 40) + "1" + String(repeating: ")", count: 40) + " > 0"
        #expect(failure(deep)?.description == "1:33: the expression nests deeper than 32 levels")
        #expect(failure(String(repeating: "!", count: 40) + "true")?.kind == .limit)
        #expect(failure(String(repeating: "1+", count: 997) + "1 > 0")?.message == "the expression has more than 1000 parts")
        // Just under: 996 ones, the chain, 0 and '>'. A chain is one level deep and evaluates in a loop.
        let chain = String(repeating: "1+", count: 995) + "1 > 0"
        #expect(try Self.value(chain) == true)
        let ors = (0..<150).map { "member.tier == 't\($0)'" }.joined(separator: " || ")
        #expect(try Self.value(ors) == false)
        // Over budget: each element an aggregate visits costs.
        let many: [String: CondValue] = ["orders": .list(Array(repeating: Self.order("x", daysAgo: 1, 100, "a"), count: 40_000))]
        let c = try Self.compile("orders.filter(o, o.amount > 0).count() > 0")
        guard case .failure(let e) = c.evaluate(many, now: Self.now, clock: Self.shanghai) else { Issue.record("no budget error"); return }
        #expect(e.kind == .budget)
        #expect(e.message == "the evaluation costs more than its budget of 100000 steps")
        #expect(c.evaluate(many, now: Self.now, clock: Self.shanghai, budget: 1_000_000) == .success(true))
        // size() does not visit the elements.
        #expect(try Self.value("orders.count() == 40000", env: many) == true)
    }

    // MARK: next change

    @Test func nextChangeOfTheFortyEightHourRule() throws {
        let last = Self.instant("2026-11-09T10:00:00+08:00")
        let env: [String: CondValue] = ["member": ["lastOrderAt": .timestamp(last)]]
        let c = try Self.compile("now - member.lastOrderAt > duration('48h')")
        let first = try c.nextChange(env, now: last.adding(seconds: 3600), clock: Self.shanghai).get()
        #expect(first == last.adding(seconds: 48 * 3600))  // not later than the flip
        #expect(c.holds(env, now: first!, clock: Self.shanghai) == .success(false))
        let second = try c.nextChange(env, now: first!, clock: Self.shanghai).get()
        #expect(second == last.adding(seconds: 48 * 3600 + 1))
        #expect(c.holds(env, now: second!, clock: Self.shanghai) == .success(true))
        #expect(try c.nextChange(env, now: second!, clock: Self.shanghai).get() == nil)  // true from then on
        #expect(try c.nextChange(["member": [:]], now: Self.now, clock: Self.shanghai).get() == nil)  // never ordered
        // Equality holds for one second only.
        let exact = try Self.compile("member.lastOrderAt + duration('2d') == now")
        let on = try exact.nextChange(env, now: last, clock: Self.shanghai).get()
        #expect(on == last.adding(seconds: 2 * 86_400))
        #expect(try exact.nextChange(env, now: on!, clock: Self.shanghai).get() == on!.adding(seconds: 1))
    }

    @Test func nextChangeOfWindowsPartsAndConstants() throws {
        let c = try Self.compile("orders.within('30d').sum(amount) >= 50000")
        // The order 10 days ago leaves the 30-day window 20 days from now.
        #expect(try c.nextChange(Self.env, now: Self.now, clock: Self.shanghai).get() == Self.now.adding(days: 20))
        let month = try Self.compile("member.profile.birthday.month == now.month")
        #expect(try month.nextChange(Self.env, now: Self.now, clock: Self.shanghai).get() == Self.instant("2026-12-01T00:00:00+08:00"))
        #expect(try month.nextChange(Self.env, now: Self.now, clock: Self.utc).get() == Self.instant("2026-12-01T00:00:00Z"))
        let constant = try Self.compile("member.tier == 'gold' && orders.any(o, o.amount > 100)")
        #expect(!constant.dependsOnTime)
        #expect(try constant.nextChange(Self.env, now: Self.now, clock: Self.shanghai).get() == nil)
        // `now` inside an aggregate's expression: no exact answer, so the next second.
        let opaque = try Self.compile("orders.max(o, now - o.at) > duration('100d')")
        #expect(try opaque.nextChange(Self.env, now: Self.now, clock: Self.shanghai).get() == Self.now.adding(seconds: 1))
    }

    /// Between `now` and the next change the value does not change (sampled), with random
    /// inputs, for rules of every kind, in a zone with and one without daylight saving time.
    @Test(arguments: [
        "now - member.lastOrderAt > duration('48h')",
        "orders.within('7d').count() >= 2",
        "orders.within('30d').sum(amount) >= 50000 || member.lastOrderAt < now - duration('90d')",
        "member.profile.birthday.month == now.month",
        "now.dayOfWeek >= 6 && now.hour >= 10 && now.hour < 22",
        "(now - member.registeredAt).days >= 365",
        "orders.any(o, now - o.at < duration('3d') && o.amount > 20000)",
        "(has(member.lastOrderAt) ? member.lastOrderAt + duration('7d') : member.registeredAt + duration('30d')) > now",
    ])
    func nextChangeIsNeverLate(_ source: String) throws {
        let c = try Self.compile(source)
        var rng = SplitMix(seed: 0xC0FFEE)
        for clock in [Self.shanghai, Self.newYork] {
            for _ in 0..<12 {
                let env = Self.randomEnv(&rng)
                var t = Self.now
                for _ in 0..<25 {
                    let v = try c.evaluate(env, now: t, clock: clock).get()
                    guard let next = try c.nextChange(env, now: t, clock: clock).get() else {
                        for _ in 0..<10 {
                            let later = t.adding(seconds: Int64.random(in: 1...400 * 86_400, using: &rng))
                            #expect(try c.evaluate(env, now: later, clock: clock).get() == v, "\(source) at \(later)")
                        }
                        break
                    }
                    #expect(next > t)
                    let span = next.seconds - t.seconds
                    var probes = [next.seconds - 1]
                    for _ in 0..<6 { probes.append(t.seconds + Int64.random(in: 0..<span, using: &rng)) }
                    for p in probes {
                        #expect(try c.evaluate(env, now: Timestamp(seconds: p), clock: clock).get() == v, "\(source) at \(p), next \(next)")
                    }
                    t = next
                }
            }
        }
    }

    // MARK: generated inputs

    static func randomEnv(_ rng: inout SplitMix) -> [String: CondValue] {
        func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }
        func time(_ maxDaysAgo: Int) -> CondValue { .timestamp(now.adding(seconds: -Int64.random(in: -86_400...Int64(maxDaysAgo) * 86_400, using: &rng))) }
        func maybe(_ v: CondValue) -> CondValue { Bool.random(using: &rng) ? v : .null }
        var orders: [CondValue] = []
        for i in 0..<Int.random(in: 0...12, using: &rng) {
            orders.append(["id": .string("o\(i)"), "at": time(120), "amount": .int(Int64.random(in: 100...60_000, using: &rng)),
                           "category": maybe(.string(pick(["shoes", "bags", "鞋"]))), "channel": .string(pick(["app", "store"])),
                           "store": maybe("s1"), "skus": .list([.string(pick(["a", "b"]))]), "usedCoupon": .bool(Bool.random(using: &rng))])
        }
        let member: CondValue = [
            "id": "m", "tier": .string(pick(["basic", "silver", "gold", "diamond"])), "registeredAt": time(900),
            "profile": ["birthday": maybe(.date(CivilDate(year: 1990, month: Int.random(in: 1...12, using: &rng), day: 1))),
                        "city": maybe(.string(pick(["Shanghai", "北京"]))), "marketingConsent": maybe(.bool(Bool.random(using: &rng)))],
            "points": ["balance": .int(Int64.random(in: 0...5000, using: &rng)), "available": .int(Int64.random(in: 0...5000, using: &rng)), "pending": 0],
            "growth": ["lifetime": .int(Int64.random(in: 0...30000, using: &rng)), "qualifying": .int(Int64.random(in: 0...30000, using: &rng))],
            "tags": .list(Bool.random(using: &rng) ? ["vip"] : []), "identities": [],
            "rfm": maybe(["r": 3, "f": 4, "m": 5, "score": .int(Int64.random(in: 1...5, using: &rng))]),
            "lifecycle": maybe(.string(pick(["new", "active", "lost"]))), "lastOrderAt": maybe(time(Bool.random(using: &rng) ? 4 : 120)),
            "orderCount": .int(Int64(orders.count)), "spentMinor": .int(Int64.random(in: 0...1_000_000, using: &rng)),
        ]
        return ["member": member, "orders": .list(orders)]
    }

    /// A random well-typed expression of `type` against `CondSchema.member`; `scope` holds the
    /// names of order elements bound by enclosing aggregates.
    struct Generator {
        var rng: SplitMix
        var names = 0

        mutating func int(_ n: Int) -> Int { Int.random(in: 0..<n, using: &rng) }
        mutating func pick(_ xs: [String]) -> String { xs[int(xs.count)] }

        mutating func expr(_ type: String, _ depth: Int, _ scope: [String]) -> String {
            let leaf = depth <= 0 || int(3) == 0
            let o = scope.last
            switch type {
            case "int":
                if leaf {
                    return pick(["0", "1", "7", "1000", "50000", "9223372036854775807", "member.orderCount", "member.points.available",
                                 "member.growth.qualifying", "member.rfm.score", "now.month", "member.profile.birthday.day",
                                 o.map { "\($0).amount" } ?? "member.spentMinor"])
                }
                switch int(9) {
                case 0, 1: return "(\(expr("int", depth - 1, scope)) \(pick(["+", "-", "*", "/", "%"])) \(expr("int", depth - 1, scope)))"
                case 2: return "-\(expr("int", depth - 1, scope))"
                case 3: return "\(expr("orders", depth - 1, scope)).\(pick(["count()", "sum(amount)", "avg(amount)", "max(amount)", "min(amount)"]))"
                case 4: let v = fresh(); return "\(expr("orders", depth - 1, scope)).count(\(v), \(expr("bool", depth - 1, scope + [v])))"
                case 5: return "(\(expr("duration", depth - 1, scope))).\(pick(["days", "hours", "minutes", "seconds"]))"
                case 6: return "(\(expr("bool", depth - 1, scope)) ? \(expr("int", depth - 1, scope)) : \(expr("int", depth - 1, scope)))"
                case 7: return "\(expr("string", depth - 1, scope)).size()"
                default: let v = fresh(); return "\(expr("orders", depth - 1, scope)).\(pick(["sum", "max", "avg"]))(\(v), \(v).amount * \(expr("int", depth - 1, scope)))"
                }
            case "bool":
                if leaf {
                    return pick(["true", "false", "has(member.lastOrderAt)", "member.profile.marketingConsent", "'vip' in member.tags",
                                 o.map { "\($0).usedCoupon" } ?? "member.rfm == null"])
                }
                switch int(10) {
                case 0, 1: return "\(expr("int", depth - 1, scope)) \(pick(["==", "!=", "<", "<=", ">", ">="])) \(expr("int", depth - 1, scope))"
                case 2: return "(\(expr("bool", depth - 1, scope)) \(pick(["&&", "||"])) \(expr("bool", depth - 1, scope)))"
                case 3: return "!(\(expr("bool", depth - 1, scope)))"
                case 4: return "\(expr("string", depth - 1, scope)) \(pick(["==", "!=", "<"])) \(expr("string", depth - 1, scope))"
                case 5: return "\(expr("string", depth - 1, scope)) in \(expr("strings", depth - 1, scope))"
                case 6: let v = fresh(); return "\(expr("orders", depth - 1, scope)).\(pick(["any", "exists", "all"]))(\(v), \(expr("bool", depth - 1, scope + [v])))"
                case 7: return "\(expr("duration", depth - 1, scope)) \(pick(["<", ">=", "=="])) \(expr("duration", depth - 1, scope))"
                case 8: return "\(expr("timestamp", depth - 1, scope)) \(pick(["<", ">", "!="])) \(expr("timestamp", depth - 1, scope))"
                default: return "\(expr("string", depth - 1, scope)).\(pick(["startsWith", "endsWith", "contains"]))(\(expr("string", depth - 1, scope)))"
                }
            case "string":
                if leaf {
                    return pick(["'gold'", "''", "'it\\'s'", "\"鞋\\n\"", "member.tier", "member.profile.city", "member.lifecycle",
                                 o.map { "\($0).category" } ?? "member.id"])
                }
                return int(2) == 0 ? "\(expr("string", depth - 1, scope)).lower()"
                    : "(\(expr("bool", depth - 1, scope)) ? \(expr("string", depth - 1, scope)) : \(expr("string", depth - 1, scope)))"
            case "strings":
                return pick(["member.tags", "['gold', 'diamond']", "[]", o.map { "\($0).skus" } ?? "['a', null]"])
            case "duration":
                if leaf { return pick(["duration('48h')", "duration('90d')", "duration('1h30m')", "duration('0s')", "(now - member.lastOrderAt)"]) }
                switch int(3) {
                case 0: return "(\(expr("timestamp", depth - 1, scope)) - \(expr("timestamp", depth - 1, scope)))"
                case 1: return "(\(expr("duration", depth - 1, scope)) \(pick(["+", "-"])) \(expr("duration", depth - 1, scope)))"
                default: return "-\(expr("duration", depth - 1, scope))"
                }
            case "timestamp":
                if leaf { return pick(["now", "member.registeredAt", "member.lastOrderAt", "timestamp('2026-11-11T00:00:00+08:00')", o.map { "\($0).at" } ?? "now"]) }
                return int(2) == 0 ? "(\(expr("timestamp", depth - 1, scope)) \(pick(["+", "-"])) \(expr("duration", depth - 1, scope)))"
                    : "\(expr("orders", depth - 1, scope)).max(at)"
            default:  // orders
                if leaf { return "orders" }
                if int(2) == 0 { return "orders.within(\(pick(["'7d'", "'90d'", "duration('1d')"])))" }
                let v = fresh()
                return "\(expr("orders", depth - 1, scope)).filter(\(v), \(expr("bool", depth - 1, scope + [v])))"
            }
        }
        mutating func fresh() -> String { names += 1; return "x\(names)" }
    }

    @Test func generatedExpressionsCheckEvaluateAndRoundTrip() throws {
        var rng = SplitMix(seed: 20_261_111)
        var generator = Generator(rng: SplitMix(seed: 7))
        var outcomes: [String: Int] = [:]
        for i in 0..<2_000 {
            let source = generator.expr(["bool", "int", "string", "timestamp"][i % 4], 5, [])
            let type: CondType = [.bool, .int, .string, .timestamp][i % 4]
            let c: Condition
            switch Condition.compile(source, schema: .member, expecting: type) {
            case .success(let ok): c = ok
            case .failure(let e): Issue.record("\(source): \(e)"); continue
            }
            let tree = try CondParser.parse(source)
            #expect(try CondParser.parse(c.source) == tree, "\(source)")
            let env = Self.randomEnv(&rng)
            let budget = [30, 300, Condition.defaultBudget][i % 3]
            switch c.evaluate(env, now: Self.now, clock: Self.shanghai, budget: budget) {
            case .success(let v):
                // Within the budget: the same value with more.
                #expect(c.evaluate(env, now: Self.now, clock: Self.shanghai, budget: budget * 10) == .success(v))
                outcomes["value", default: 0] += 1
            case .failure(let e):
                #expect(e.kind == .budget || e.kind == .evaluation, "\(source): \(e)")
                if e.kind == .evaluation { #expect(e.message.contains("overflow") || e.message.contains("division by zero"), "\(e)") }
                outcomes[e.kind.rawValue, default: 0] += 1
            }
            _ = c.nextChange(env, now: Self.now, clock: Self.shanghai, budget: budget)
        }
        #expect(outcomes["value", default: 0] > 1_000)
        #expect(outcomes["budget", default: 0] > 0)
    }

    // MARK: the plan against the reference

    /// Damages one input in three the way callers get them wrong: a missing or mistyped list of
    /// orders, a null among the orders, a path through something that is not a record.
    static func damaged(_ env: [String: CondValue], _ rng: inout SplitMix) -> [String: CondValue] {
        var env = env
        switch Int.random(in: 0..<9, using: &rng) {
        case 0: env["orders"] = nil
        case 1: env["orders"] = "many"
        case 2: if case .list(let xs) = env["orders"] { env["orders"] = .list(xs + [.null]) }
        case 3: if case .record(var m) = env["member"] { m["profile"] = "none"; env["member"] = .record(m) }
        case 4: env["member"] = 7
        case 5: if case .record(var m) = env["member"] { m["orderCount"] = "many"; env["member"] = .record(m) }
        default: break
        }
        return env
    }

    /// The orders in time order, and a source that says so (as the engine's and the columns' do),
    /// so that `within` takes its binary searches.
    static func timeOrdered(_ env: [String: CondValue]) -> [String: CondValue] {
        guard case .list(let xs) = env["orders"] else { return env }
        func at(_ x: CondValue) -> Int64 { if case .record(let f) = x, case .timestamp(let t)? = f["at"] { t.seconds } else { .min } }
        var env = env
        env["orders"] = .list(xs.sorted { at($0) < at($1) })
        return env
    }
    struct TimeOrderedSource: CondSource {
        let base: CondValueSource
        func value(_ slot: Int) -> CondValue { base.value(slot) }
        func count(_ list: Int) -> Int { base.count(list) }
        func field(_ list: Int, _ index: Int, _ field: Int) -> CondValue { base.field(list, index, field) }
        func timeOrdered(_ list: Int) -> Bool { true }
    }

    /// Generated expressions over generated inputs (some of them not matching the schema) give
    /// exactly what the reference evaluator gives: the value or the error (kind, place and
    /// message), the next change and both at once, within budgets small and large.
    @Test func evaluationAgreesWithTheReference() throws {
        var rng = SplitMix(seed: 20_261_123)
        var generator = Generator(rng: SplitMix(seed: 31))
        var outcomes: [String: Int] = [:]
        func shown(_ r: Result<(holds: Bool, next: Timestamp?), CondError>) -> String {
            switch r { case .success(let (h, n)): "\(h) \(n.map(\.seconds) ?? -1)"; case .failure(let e): "\(e.kind) \(e)" }
        }
        for i in 0..<3_000 {
            let type: CondType = [.bool, .int, .string, .timestamp][i % 4]
            let source = generator.expr(["bool", "int", "string", "timestamp"][i % 4], 5, [])
            guard case .success(let c) = Condition.compile(source, schema: .member, expecting: type) else { Issue.record("\(source)"); continue }
            let budget = [30, 300, Condition.defaultBudget][i % 3]
            let t = Self.now.adding(seconds: Int64.random(in: -86_400...86_400, using: &rng))
            let clock = i % 2 == 0 ? Self.shanghai : Self.newYork
            let plain = Self.randomEnv(&rng)
            let env = i % 3 == 0 ? Self.damaged(plain, &rng) : plain
            let sorted = Self.timeOrdered(plain)
            let sources: [(env: [String: CondValue], source: any CondSource)] = [
                (env, CondValueSource(env, layout: c.layout)),
                (sorted, TimeOrderedSource(base: CondValueSource(sorted, layout: c.layout))),
            ]
            for (e, src) in sources {
                let expected = c.referenceEvaluate(e, now: t, clock: clock, budget: budget)
                #expect(c.evaluate(src, now: t, clock: clock, budget: budget) == expected, "\(source)")
                #expect(c.nextChange(src, now: t, clock: clock, budget: budget) == c.referenceNextChange(e, now: t, clock: clock, budget: budget), "\(source)")
                if type == .bool {
                    #expect(shown(c.holdsAndNextChange(src, now: t, clock: clock, budget: budget))
                            == shown(c.referenceHoldsAndNextChange(e, now: t, clock: clock, budget: budget)), "\(source)")
                }
                switch expected {
                case .success: outcomes["value", default: 0] += 1
                case .failure(let f): outcomes[f.kind.rawValue, default: 0] += 1
                }
            }
            // The dictionary API reads through a CondValueSource.
            #expect(c.evaluate(env, now: t, clock: clock, budget: budget) == c.referenceEvaluate(env, now: t, clock: clock, budget: budget))
        }
        #expect(outcomes["value", default: 0] > 3_000)
        #expect(outcomes["budget", default: 0] > 50)
        #expect(outcomes["evaluation", default: 0] > 50)
    }

    /// Parts of moving instants next change where the reference's bisection says, around
    /// daylight-saving transitions too.
    @Test func nextChangesOfPartsAgreeWithTheReference() throws {
        let sources = [
            "now.hour", "now.day", "now.date", "now.dayOfWeek", "now.month", "now.year", "(now + duration('90m')).hour",
            "(now + (now - member.registeredAt)).day", "(member.registeredAt - (now - member.registeredAt)).month",
            "(now - member.lastOrderAt).days", "(now - member.registeredAt).hours", "member.profile.birthday.month == now.month",
        ]
        var rng = SplitMix(seed: 8)
        let anchors = ["2026-03-08T06:30:00Z", "2026-11-01T05:30:00Z", "2026-12-31T15:59:59Z", "2026-11-11T10:00:00+08:00"].map(Self.instant)
        for source in sources {
            let c = try Self.compile(source, expecting: source.contains("==") ? .bool : source.hasSuffix(".date") ? .date : .int)
            for _ in 0..<60 {
                let env = Self.randomEnv(&rng)
                let t = anchors[Int.random(in: 0..<anchors.count, using: &rng)].adding(seconds: Int64.random(in: -7_200...7_200, using: &rng))
                for clock in [Self.shanghai, Self.newYork, Self.utc] {
                    #expect(c.nextChange(env, now: t, clock: clock) == c.referenceNextChange(env, now: t, clock: clock), "\(source) at \(t)")
                }
            }
        }
    }

    @Test func randomTokensNeverCrash() {
        let vocabulary = ["member", ".", "tier", "tags", "profile", "birthday", "month", "(", ")", "[", "]", ",", "'x'", "\"y\"", "'90d'",
                          "1", "0", "-", "+", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "!", "?", ":", "in",
                          "now", "orders", "within", "count", "sum", "amount", "avg", "o", "o.amount", "any", "all", "filter", "null",
                          "true", "duration", "timestamp", "date", "has", "size", "=", "&", "#", "'", "\\", "\n", "鞋", "9999999999999999999999",
                          "9223372036854775807", "lastOrderAt", "startsWith", "lower", "days", "dayOfWeek", "\"", "'\\q'"]
        var rng = SplitMix(seed: 42)
        var compiled = 0
        for _ in 0..<5_000 {
            var s = ""
            for _ in 0..<Int.random(in: 0...14, using: &rng) {
                s += vocabulary[Int.random(in: 0..<vocabulary.count, using: &rng)]
                if Bool.random(using: &rng) { s += " " }
            }
            let env = Self.randomEnv(&rng)
            for type: CondType in [.bool, .int] {
                guard case .success(let c) = Condition.compile(s, schema: .member, expecting: type) else { continue }
                compiled += 1
                #expect((try? CondParser.parse(c.source)) == (try? CondParser.parse(s)), "\(s)")
                _ = c.evaluate(env, now: Self.now, clock: Self.shanghai)
                _ = c.nextChange(env, now: Self.now, clock: Self.shanghai)
            }
            if let tree = try? CondParser.parse(s) {
                #expect((try? CondParser.parse(CondPrinter.print(tree))) == tree, "\(s)")
            }
        }
        #expect(compiled > 10)
    }
}

extension CondValue {
    fileprivate var listItems: [CondValue] { if case .list(let xs) = self { xs } else { [] } }
}
