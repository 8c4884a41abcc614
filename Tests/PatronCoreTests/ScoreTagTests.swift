import Foundation
import Testing
@testable import PatronCore

/// Rule tags on the scores the program's scoring runs give members (`member.rfm`,
/// `member.lifecycle`, `member.churn`).
@Suite struct ScoreTagTests {
    static let rules = """
        [
          {"id": "high_value", "name": "Top 10% by 12-month spend", "category": "value", "rule": "member.rfm.topPercent <= 10"},
          {"id": "churn_risk", "name": "Churn risk", "category": "lifecycle", "rule": "member.churn.atRisk"},
          {"id": "at_risk_quiet", "name": "At risk, no order in 30 days", "category": "lifecycle",
           "rule": "member.churn.pAlive < 300 && orders.within('30d').count() == 0"},
          {"id": "recalled", "name": "Recalled", "category": "lifecycle", "rule": "member.lifecycle == 'recalled'"},
          {"id": "big_month", "name": "Spent 500 in 30 days", "category": "value", "rule": "orders.within('30d').sum(amount) >= 50000"}
        ]
        """

    func program() throws -> ProgramDefinition {
        var json = programJSON()
        json = String(json.dropLast(2)) + #", "tags": \#(Self.rules)}"#
        return try parseProgram(json)
    }

    let t = at("2026-03-02T10:00:00+08:00")

    @Test func scoresDriveTheirTagsAtTheScoringRun() throws {
        var h = Harness(try program())
        _ = try h.order("o1", 10_000, at: t)
        #expect(h.tagIds.isEmpty)
        let top = MemberScores(r: 5, f: 4, m: 5, topPercent: 3, lifecycle: .active)
        let changed = h.rescore(top, at: t.adding(days: 1))
        #expect(changed)
        #expect(h.tagIds == ["high_value"])
        let added = h.tagChanges.last!
        #expect(added.tag == "high_value" && added.added && added.cause == .rule && added.eventId == nil && added.at == t.adding(days: 1))
        // The same scores again change nothing, and write no tag change.
        let changes = h.tagChangesAll.count
        let again = h.rescore(top, at: t.adding(days: 2))
        #expect(!again)
        #expect(h.tagChangesAll.count == changes)
        // At the boundary: 10 is in, 11 is out.
        var s = top; s.topPercent = 10
        h.rescore(s, at: t.adding(days: 3))
        #expect(h.tagIds.contains("high_value"))
        s.topPercent = 11
        h.rescore(s, at: t.adding(days: 4))
        #expect(!h.tagIds.contains("high_value"))
        // The churn fit: at risk, and P(alive) under 30% with no order in 30 days.
        s.pAlivePermille = 250; s.atRisk = true; s.expectedPurchasesMilli = 120; s.expectedValueMinor = 8_000; s.clvMinor = 900
        h.rescore(s, at: t.adding(days: 40))
        #expect(h.tagIds == ["churn_risk", "at_risk_quiet"])
        // Scores gone (the member no longer scored): their tags go too.
        h.rescore(nil, at: t.adding(days: 41))
        #expect(h.tagIds.isEmpty)
        #expect(h.state.scores == nil)
        #expect(h.recomputed(at: t.adding(days: 41)) == h.tagIds)
    }

    /// Events leave rules that read only scores alone, but a rule that reads scores and orders
    /// follows the orders; the kept tags always equal a recomputation from scratch.
    @Test func eventsAndTimersSeeTheScores() throws {
        var h = Harness(try program())
        _ = try h.order("o1", 10_000, at: t)
        h.rescore(MemberScores(r: 1, f: 1, m: 1, topPercent: 80, lifecycle: .recalled, pAlivePermille: 200, atRisk: true,
                               expectedPurchasesMilli: 50, expectedValueMinor: 5_000, clvMinor: 300), at: t.adding(days: 1))
        #expect(h.tagIds == ["churn_risk", "recalled"])
        // The order leaves the 30-day window: the timer adds at_risk_quiet then.
        h.advance(to: t.adding(days: 30).adding(seconds: -1))
        #expect(!h.tagIds.contains("at_risk_quiet"))
        h.advance(to: t.adding(days: 30))
        #expect(h.tagIds.contains("at_risk_quiet"))
        // A new order takes it off, in the order's event; the score-only tags stay.
        _ = try h.order("o2", 60_000, at: t.adding(days: 35))
        #expect(h.tagIds == ["churn_risk", "recalled", "big_month"])
        #expect(h.tagChanges.last!.eventId == h.events.last!.id)
        #expect(h.recomputed(at: t.adding(days: 35)) == h.tagIds)
        // A late event replays the history with the member's scores: the tags are the same.
        _ = try h.order("late", 1_000, at: t.adding(days: 2))
        #expect(h.state.scores?.lifecycle == .recalled)
        #expect(h.tagIds == ["churn_risk", "recalled", "big_month"])
        #expect(try StateCodec.decode(StateCodec.encode(h.state)) == h.state)
    }

    @Test func conditionsSeeTheScoresAsRecords() throws {
        var h = Harness(try program())
        _ = try h.order("o1", 10_000, at: t)
        let s = MemberScores(r: 4, f: 2, m: 3, topPercent: 45, lifecycle: .active, pAlivePermille: 870, atRisk: false,
                             expectedPurchasesMilli: 1_250, expectedValueMinor: 12_000, clvMinor: 14_500)
        h.rescore(s, at: t)
        let clock = h.engine.program.at(t).clock
        func value(_ text: String, _ type: CondType = .int) throws -> CondValue {
            let c = try Condition.compile(text, schema: .member, expecting: type).get()
            return try h.engine.withConditionSource(h.state, at: t) { try c.evaluate($0, now: t, clock: clock).get() }
        }
        #expect(try value("member.rfm.score") == .int(3))
        #expect(try value("member.rfm.topPercent") == .int(45))
        #expect(try value("member.churn.pAlive + member.churn.expectedPurchasesMilli") == .int(2_120))
        #expect(try value("member.churn.clv - member.churn.expectedValue") == .int(2_500))
        #expect(try value("member.churn.atRisk || member.lifecycle == 'active'", .bool) == .bool(true))
        // The whole record, as the slot source gives it and as the value inputs give it.
        #expect(try value("member.churn == null", .bool) == .bool(false))
        let env = h.engine.conditionInputs(h.state, at: t)
        guard case .record(let m)? = env["member"], case .record(let churn)? = m["churn"], case .record(let rfm)? = m["rfm"] else {
            Issue.record("no churn or rfm record"); return
        }
        #expect(churn["pAlive"] == .int(870) && churn["atRisk"] == .bool(false) && churn["clv"] == .int(14_500))
        #expect(rfm["topPercent"] == .int(45) && rfm["score"] == .int(3))
        // Unscored members: null records, and comparisons on them do not hold.
        var fresh = Harness(try program())
        _ = try fresh.order("o1", 10_000, at: t)
        let c = try Condition.compile("member.rfm.topPercent <= 10 || member.churn.atRisk", schema: .member).get()
        #expect(try fresh.engine.withConditionSource(fresh.state, at: t) { try c.holds($0, now: t, clock: clock).get() } == false)
    }

    /// A replay (merge, unmerge, late event) folds events only; the scores come back at its end,
    /// so a member with no events to fold keeps the tags their scores give.
    @Test func replaysGiveTheScoresBack() throws {
        let engine = Engine(program: ProgramVersions(single: try program()))
        let s = MemberScores(r: 5, f: 5, m: 5, topPercent: 2, lifecycle: .recalled)
        let r = try engine.replay(member: MemberID(7), registeredAt: t, events: [], until: t.adding(days: 3), scores: s)
        #expect(Set(r.state.tags.keys) == ["high_value", "recalled"] && r.state.scores == s)
        #expect(r.effects.tagChanges.allSatisfy { $0.at == t.adding(days: 3) && $0.eventId == nil })
    }

    /// A rule added in a new program version reaches a member whose scores do not change at the
    /// next scoring run (a member without events would otherwise never be evaluated under it).
    @Test func aNewRuleReachesUnchangedMembersAtTheRun() throws {
        let p1 = try program()
        var p2 = p1
        p2.tags.append(TagDefinition(id: "lost", name: LocalizedText(zh: "流失", en: "Lost"), category: .lifecycle, rule: "member.lifecycle == 'lost'"))
        let change = t.adding(days: 10)
        var h = Harness(versions: ProgramVersions([.init(version: 1, effectiveFrom: t.adding(days: -30), definition: p1), .init(version: 2, effectiveFrom: change, definition: p2)]),
                        registeredAt: t)
        let lost = MemberScores(lifecycle: .lost)
        let first = h.rescore(lost, at: t.adding(days: 1))
        #expect(first && h.tagIds.isEmpty)
        // Same scores, same rules: nothing to do.
        #expect(!h.engine.needsRescore(h.state, lost, at: t.adding(days: 2)))
        // Same scores under version 2: every rule is evaluated, and the new one holds.
        #expect(h.engine.needsRescore(h.state, lost, at: change.adding(days: 1)))
        h.rescore(lost, at: change.adding(days: 1))
        #expect(h.tagIds == ["lost"] && h.state.tagsEvaluatedVersion == 2)
        #expect(!h.engine.needsRescore(h.state, lost, at: change.adding(days: 2)))
    }

    /// Ranks from the top, ties sharing the better rank.
    @Test func topPercents() {
        let spend: [Int: Int64] = Dictionary(uniqueKeysWithValues: (1...20).map { ($0, Int64(1_000 - $0 * 10)) })
        let top = RFMScoring.topPercents(spend)
        #expect(top[1] == 1 && top[2] == 6 && top[3] == 11 && top[20] == 96)
        #expect(RFMScoring.topPercents([7: 500, 8: 500, 9: 100]) == [7: 1, 8: 1, 9: 67])
        // The top 10% of 1,000 distinct spenders: exactly 100 members at 10 or less.
        let many = RFMScoring.topPercents(Dictionary(uniqueKeysWithValues: (0..<1_000).map { ($0, Int64($0 * 3)) }))
        #expect(many.values.filter { $0 <= 10 }.count == 100)
        #expect(many[999] == 1 && many[0] == 100)
    }
}
