import Foundation
import Testing
@testable import PatronCore

let tagRules = """
    [
      {"id": "no_repurchase_48h", "name": {"zh-CN": "48小时未复购", "en": "No repurchase in 48h"}, "category": "behaviour",
       "rule": "member.orderCount > 0 && now - member.lastOrderAt >= duration('48h')"},
      {"id": "big_month", "name": "Spent 500 in 30 days", "category": "value", "rule": "orders.within('30d').sum(amount) >= 50000"},
      {"id": "price_sensitive", "name": "Price sensitive", "category": "preference", "rule": "orders.count() >= 2 && orders.filter(o, o.usedCoupon).count() * 2 > orders.count()"},
      {"id": "shoe_lover", "name": "Shoes", "category": "preference", "rule": "orders.within('90d').any(o, 'shoes' in o.categories)"},
      {"id": "gold_plus", "name": "Gold or above", "category": "value", "rule": "member.tier in ['gold', 'diamond']"},
      {"id": "vip_care", "name": "VIP care", "category": "lifecycle"}
    ]
    """

func tagProgram(assessment: String = #"{"kind": "rolling", "windowDays": 30, "downgrade": "toSupported"}"#) throws -> ProgramDefinition {
    var json = programJSON(assessment: assessment)
    json = String(json.dropLast(2)) + #", "tags": \#(tagRules)}"#
    return try parseProgram(json)
}

extension Harness {
    var tagIds: Set<String> { Set(state.tags.keys) }
    /// Every rule evaluated afresh on the member as it is at `t`.
    func recomputed(at t: Timestamp) -> Set<String> {
        let v = engine.program.at(t)
        let env = engine.conditionInputs(state, at: t)
        return Set(v.tagRules.filter { (try? $0.rule.holds(env, now: t, clock: v.clock).get()) == true }.map(\.tag.id))
    }
}

@Suite struct TagTests {
    @Test func rulesAreCheckedWhenTheProgramIsRead() throws {
        let bad = #"[{"id": "x", "name": "X", "rule": "member.tierr == 'gold'"}, {"id": "y", "name": "Y", "rule": "member.identities.size() > 0"}]"#
        var json = programJSON()
        json = String(json.dropLast(2)) + #", "tags": \#(bad)}"#
        let doc = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        guard case .failure(let f) = ProgramParser.parse(doc) else { Issue.record("accepted"); return }
        #expect(f.errors.contains { $0.path == "tags[0].rule" && $0.reason.contains("1:8: unknown field 'tierr' on member") }, "\(f.errors)")
        #expect(f.errors.contains { $0.path == "tags[1].rule" && $0.reason.contains("not available to tag rules") })
    }

    /// A member who buys at 10:00 gets no_repurchase_48h at 10:00 two days later, by the timer.
    @Test func aTimeRuleFlipsAtItsInstant() throws {
        var h = Harness(try tagProgram())
        let t = at("2026-03-02T10:00:00+08:00")
        try h.order("a", 1000, at: t)
        #expect(!h.tagIds.contains("no_repurchase_48h"))
        #expect(h.state.tagsDueAt == t.adding(days: 2))
        #expect(h.state.nextDueAt! <= t.adding(days: 2))
        h.advance(to: t.adding(days: 2).adding(seconds: -1))
        #expect(!h.tagIds.contains("no_repurchase_48h"))
        h.advance(to: t.adding(days: 2))
        #expect(h.tagIds.contains("no_repurchase_48h"))
        #expect(h.state.tags["no_repurchase_48h"]?.since == t.adding(days: 2))
        // Buying again takes it away at once, with the order as the cause.
        try h.order("b", 1000, at: t.adding(days: 3))
        #expect(!h.tagIds.contains("no_repurchase_48h"))
        let last = h.tagChanges.last!
        #expect(last.tag == "no_repurchase_48h" && !last.added && last.cause == .rule && last.eventId == h.events.last!.id)
    }

    @Test func windowsAndCategories() throws {
        var h = Harness(try tagProgram())
        let t = at("2026-03-02T10:00:00+08:00")
        try h.send(.orderPaid(OrderPaid(orderId: "s", lines: [OrderLine(sku: "x", category: "shoes", amountMinor: 60_000)])), at: t)
        #expect(h.tagIds.isSuperset(of: ["big_month", "shoe_lover"]))
        // The order leaves the 30-day window exactly 30 days later, and the 90-day one 90 days later.
        h.advance(to: t.adding(days: 30).adding(seconds: -1))
        #expect(h.tagIds.contains("big_month"))
        h.advance(to: t.adding(days: 30))
        #expect(!h.tagIds.contains("big_month"))
        h.advance(to: t.adding(days: 90))
        #expect(!h.tagIds.contains("shoe_lover"))
    }

    @Test func tierRulesFollowAssessments() throws {
        var h = Harness(try tagProgram())
        let t = at("2026-03-02T10:00:00+08:00")
        try h.order("g", 600_000, at: t)
        #expect(h.tier == "gold" && h.tagIds.contains("gold_plus"))
        // The rolling window ends: the downgrade and the tag removal happen at the same instant.
        h.advance(to: t.adding(days: 31))
        #expect(h.tier == "basic" && !h.tagIds.contains("gold_plus"))
        #expect(h.tagChanges.last { $0.tag == "gold_plus" }!.at == h.tierChanges.last!.at)
    }

    @Test func manualTags() throws {
        var h = Harness(try tagProgram())
        let t = at("2026-03-02T10:00:00+08:00")
        try h.send(.tagSet(TagSet(tag: "vip_care", add: true, by: "ops-7", reason: "complained twice")), at: t)
        #expect(h.state.tags["vip_care"] == TagMark(since: t, manual: true, by: "ops-7"))
        #expect(try h.send(.tagSet(TagSet(tag: "vip_care", add: true, by: "ops-7")), at: t.adding(seconds: 5)).note == "the member already has 'vip_care'")
        do { try h.send(.tagSet(TagSet(tag: "gold_plus", add: true, by: "ops")), at: t); Issue.record("accepted") } catch EngineError.tag(let r) { #expect(r == .ruleTag("gold_plus")) }
        do { try h.send(.tagSet(TagSet(tag: "nope", add: true, by: "ops")), at: t); Issue.record("accepted") } catch EngineError.tag(let r) { #expect(r == .unknownTag("nope")) }
        try h.send(.tagSet(TagSet(tag: "vip_care", add: false, by: "ops-8")), at: t.adding(days: 1))
        #expect(h.state.tags["vip_care"] == nil)
        #expect(h.tagChanges.map(\.event) == ["tag.added", "tag.removed"])
    }

    /// What conditions read of a member's state (`Engine.withConditionSource`) gives what the
    /// same conditions give over `conditionInputs` by the reference evaluator, for generated
    /// expressions over generated histories (orders, refunds, profiles, lapses and timers).
    @Test(arguments: 0..<4)
    func memberSourceAgreesWithConditionInputs(_ seed: Int) throws {
        var rng = SeededRandom(seed: UInt64(seed) &+ 777)
        var generator = ConditionTests.Generator(rng: SplitMix(seed: UInt64(seed) &+ 5))
        var h = Harness(try tagProgram())
        let demo = [
            "member.orderCount == 1 && now - member.lastOrderAt >= duration('48h')",
            "orders.count() >= 3 && orders.filter(o, o.usedCoupon).count() * 2 > orders.count()",
            "orders.within('30d').sum(amount) >= 100000",
            "member.orderCount > 0 && now - member.lastOrderAt >= duration('90d')",
            "member.profile.birthday.month == now.month",
            "member.tier in ['gold', 'diamond'] && 'vip_care' in member.tags && member.points.available + member.growth.qualifying > 0",
            "orders.within('90d').any(o, 'shoes' in o.categories && o.skus.size() > 0 && o.channel != '' && has(o.id))",
            "member.profile.city == null && member.rfm == null && member.lifecycle == null && has(member.profile) && has(member)",
        ].map { try! Condition.compile($0, schema: .member).get() }
        var t = t0, n = 0, compared = 0
        for step in 0..<120 {
            t = t.adding(seconds: Int64.random(in: 1...(6 * 86_400), using: &rng))
            do {
                switch Int.random(in: 0..<8, using: &rng) {
                case 0..<4:
                    n += 1
                    let cat = ["shoes", "bags", "beauty"].randomElement(using: &rng)!
                    let amount = Int64.random(in: 500...80_000, using: &rng)
                    try h.send(.orderPaid(OrderPaid(orderId: "o\(n)", lines: [OrderLine(sku: "s\(n % 3)", category: cat, amountMinor: amount, discountMinor: Bool.random(using: &rng) ? amount / 10 : 0)],
                                                    channel: Bool.random(using: &rng) ? "app" : nil, store: Bool.random(using: &rng) ? "s1" : nil)), at: t)
                case 4:
                    if n > 0 { try h.send(.orderRefunded(OrderRefunded(orderId: "o\(Int.random(in: 1...n, using: &rng))")), at: t) }
                case 5:
                    let profile = MemberProfile(name: "王", birthday: CivilDate(year: 1990, month: Int.random(in: 1...12, using: &rng), day: 3),
                                                city: Bool.random(using: &rng) ? "Shanghai" : nil, marketingConsent: Bool.random(using: &rng))
                    try h.send(.profileSet(ProfileSet(profile: profile)), at: t)
                case 6:
                    try h.send(.tagSet(TagSet(tag: "vip_care", add: Bool.random(using: &rng), by: "ops")), at: t)
                default:
                    h.advance(to: t)
                }
            } catch is EngineError {}
            let clock = h.engine.program.at(t).clock
            let inputs = h.engine.conditionInputs(h.state, at: t)
            var conditions = demo
            for k in 0..<6 {
                let type = ["bool", "int", "string", "timestamp"][k % 4]
                if case .success(let c) = Condition.compile(generator.expr(type, 4, []), schema: .member,
                                                             expecting: [CondType.bool, .int, .string, .timestamp][k % 4]) { conditions.append(c) }
            }
            h.engine.withConditionSource(h.state, at: t) { source in
                for c in conditions {
                    #expect(c.evaluate(source, now: t, clock: clock) == c.referenceEvaluate(inputs, now: t, clock: clock), "step \(step): \(c)")
                    #expect(c.nextChange(source, now: t, clock: clock) == c.referenceNextChange(inputs, now: t, clock: clock), "step \(step): \(c)")
                    compared += 1
                }
            }
        }
        #expect(compared > 1_000)
    }

    /// Tags kept incrementally (on events and by timers) equal a full recomputation from scratch
    /// at every step of generated histories, and a replay gives the same tags.
    @Test(arguments: 0..<10)
    func incrementalEqualsRecomputed(_ seed: Int) throws {
        var rng = SeededRandom(seed: UInt64(seed) &+ 4242)
        var h = Harness(try tagProgram())
        var t = t0
        var n = 0
        for step in 0..<250 {
            t = t.adding(seconds: Int64.random(in: 1...(4 * 86_400), using: &rng))
            do {
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<5:
                    n += 1
                    let cat = ["shoes", "bags", "beauty"].randomElement(using: &rng)!
                    let amount = Int64.random(in: 500...80_000, using: &rng)
                    let discount = Bool.random(using: &rng) ? amount / 10 : 0
                    try h.send(.orderPaid(OrderPaid(orderId: "o\(n)", lines: [OrderLine(sku: "s", category: cat, amountMinor: amount, discountMinor: discount)])), at: t)
                case 5:
                    if n > 0 { try h.send(.orderRefunded(OrderRefunded(orderId: "o\(Int.random(in: 1...n, using: &rng))")), at: t) }
                case 6:
                    try h.send(.tagSet(TagSet(tag: "vip_care", add: Bool.random(using: &rng), by: "ops")), at: t)
                default:
                    h.advance(to: t)
                }
            } catch is EngineError {}
            h.advance(to: t)
            let rules = Set(h.state.tags.filter { !$0.value.manual }.keys)
            #expect(rules == h.recomputed(at: t), "seed \(seed) step \(step)")
        }
        let r = try h.engine.replay(member: h.state.memberId, registeredAt: h.state.registeredAt, events: h.events, until: h.state.asOf)
        #expect(r.state.tags == h.state.tags)
        #expect(r.effects.tagChanges == h.tagChangesAll)
        #expect(try StateCodec.decode(StateCodec.encode(h.state)) == h.state)
    }

    /// A rule over its evaluation budget when its timer falls due keeps the tag as it is and is
    /// tried again the next local day: the clock gets past the instant (it used to stay there).
    @Test func aRuleOverBudgetAtItsTimerDoesNotHoldTheClock() throws {
        let rules = #"[{"id": "heavy", "name": "Heavy", "rule": "now - member.lastOrderAt >= duration('1h') && orders.exists(a, orders.exists(b, orders.exists(c, a.amount + b.amount + c.amount < 0)))"}]"#
        var json = programJSON()
        json = String(json.dropLast(2)) + #", "tags": \#(rules)}"#
        var h = Harness(try parseProgram(json))
        let t = at("2026-03-02T10:00:00+08:00")
        // 40 orders within the hour: the left side is false at each, so the costly right side
        // is not reached until the timer an hour after the last one.
        for i in 0..<40 { try h.order("o\(i)", 1000, at: t.adding(seconds: Int64(i * 60))) }
        let last = t.adding(seconds: 39 * 60)
        #expect(h.state.tagsDueAt == last.adding(seconds: 3600))
        h.advance(to: last.adding(seconds: 7200))
        #expect(!h.tagIds.contains("heavy"))
        let clock = h.engine.program.latest.clock
        #expect(h.state.tagsDueAt == clock.startOfNextDay(last.adding(seconds: 3600)))
        // Still over budget the next day: tried again the day after, and so on.
        h.advance(to: t.adding(days: 3))
        #expect(h.state.tagsDueAt == clock.startOfNextDay(t.adding(days: 3)))
    }

    /// Available points and qualifying growth move with time alone (a pending period ends, growth
    /// leaves the rolling window): rules reading them follow at that instant, not at the next event.
    @Test func rulesOnTimedStateFollowTheClock() throws {
        let rules = #"[{"id": "spendable", "name": "Spendable", "rule": "member.points.available >= 100"}, {"id": "qualified", "name": "Qualified", "rule": "member.growth.qualifying >= 100"}]"#
        var json = programJSON(assessment: #"{"kind": "rolling", "windowDays": 30, "downgrade": "none"}"#, pendingDays: 7)
        json = String(json.dropLast(2)) + #", "tags": \#(rules)}"#
        var h = Harness(try parseProgram(json))
        let t = at("2026-03-02T10:00:00+08:00")
        try h.order("a", 20_000, at: t)
        let availableAt = h.state.lots[0].availableAt, countsAt = h.state.window[0].countsAt
        #expect(availableAt > t)
        #expect(!h.tagIds.contains("spendable") && h.tagIds.contains("qualified"))
        h.advance(to: availableAt.adding(seconds: -1))
        #expect(!h.tagIds.contains("spendable"))
        h.advance(to: availableAt)
        #expect(h.tagIds.contains("spendable"))
        #expect(h.state.tags["spendable"]?.since == availableAt)
        let leaves = countsAt.adding(days: 30)
        h.advance(to: leaves.adding(seconds: -1))
        #expect(h.tagIds.contains("qualified"))
        h.advance(to: leaves)
        #expect(!h.tagIds.contains("qualified"))
        #expect(h.tagIds == h.recomputed(at: leaves))
    }
}
