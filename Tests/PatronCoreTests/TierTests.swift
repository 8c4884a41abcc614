import Foundation
import Testing
@testable import PatronCore

@Suite struct TierTests {
    let rolling = #"{"kind": "rolling", "windowDays": 90, "downgrade": "oneTier", "graceDays": 30}"#

    @Test func lifetimeUpgradesAtOnceAndSkipsTiers() throws {
        var h = Harness(try parseProgram(programJSON()))
        try h.order("a", 99_999, at: t0.adding(days: 1))
        #expect(h.tier == "basic")
        try h.order("b", 100, at: t0.adding(days: 2))
        #expect(h.tier == "silver")
        try h.order("c", 2_000_000, at: t0.adding(days: 3))
        #expect(h.tier == "diamond")
        #expect(h.tierChanges.map(\.to) == ["silver", "diamond"])
        #expect(h.tierChanges.allSatisfy { $0.cause == .upgrade })
        let v = h.engine.standing(h.state, now: t0.adding(days: 400))
        #expect(v.nextAssessmentAt == nil)
        #expect(v.tier.id == "diamond")
        #expect(v.missingToNext == nil)
    }

    @Test func standingShowsWhatIsMissing() throws {
        var h = Harness(try parseProgram(programJSON(assessment: rolling)))
        try h.order("a", 120_000, at: at("2026-02-01T12:00:00+08:00"))
        let v = h.engine.standing(h.state, now: at("2026-02-02T12:00:00+08:00"))
        #expect(v.tier.id == "silver")
        #expect(v.qualifyingGrowth == 1200)
        #expect(v.missingToNext == 3800)
        #expect(v.nextAssessmentAt == at("2026-02-01T12:00:00+08:00").adding(days: 90))
        #expect(v.keepingGrowth == 0) // the upgrading order falls out of the next window
        #expect(v.missingToKeep == 1000)
    }

    struct RollingCase: Sendable, CustomStringConvertible {
        var downgrade: String, grace: Int, renewAt: Int?, expected: [(Int, String)]
        var description: String { "\(downgrade) grace \(grace) renew \(renewAt.map(String.init) ?? "-")" }
    }

    @Test(arguments: [
        // Gold from day 1; no activity: assessed at day 91, grace to 121, then one tier down, and again.
        RollingCase(downgrade: "oneTier", grace: 30, renewAt: nil, expected: [(90, "gold"), (120, "gold"), (121, "silver"), (240, "silver"), (241, "basic")]),
        RollingCase(downgrade: "toSupported", grace: 30, renewAt: nil, expected: [(120, "gold"), (121, "basic")]),
        RollingCase(downgrade: "toSupported", grace: 0, renewAt: nil, expected: [(90, "gold"), (91, "basic")]),
        RollingCase(downgrade: "none", grace: 0, renewAt: nil, expected: [(91, "gold"), (1000, "gold")]),
        // Buying again during grace keeps the tier, with a new window from that day.
        RollingCase(downgrade: "oneTier", grace: 30, renewAt: 100, expected: [(121, "gold"), (190, "gold"), (219, "gold"), (221, "silver")]),
    ])
    func rollingWindowAndGrace(_ c: RollingCase) throws {
        let p = try parseProgram(programJSON(assessment: #"{"kind": "rolling", "windowDays": 90, "downgrade": "\#(c.downgrade)", "graceDays": \#(c.grace)}"#))
        var h = Harness(p)
        try h.order("a", 600_000, at: t0.adding(days: 1))
        #expect(h.tier == "gold")
        var events: [(Int, String?)] = c.expected.map { ($0.0, $0.1) }
        if let r = c.renewAt { events.append((r, nil)) }
        for (day, expected) in events.sorted(by: { $0.0 < $1.0 }) {
            if let expected {
                var probe = h
                probe.advance(to: t0.adding(days: day).adding(seconds: 1))
                #expect(probe.tier == expected, "day \(day)")
            } else {
                try h.order("renew", 500_000, at: t0.adding(days: day))
            }
        }
        var end = h
        end.advance(to: t0.adding(days: 1200))
        #expect(end.tierChanges.filter { $0.cause == .assessment }.allSatisfy { $0.eventId == nil })
        #expect(end.audit().isEmpty)
    }

    @Test func calendarYearAssessment() throws {
        let p = try parseProgram(programJSON(assessment: #"{"kind": "calendar", "period": "year", "downgrade": "toSupported", "graceDays": 0}"#))
        var h = Harness(p)
        try h.order("a", 150_000, at: at("2026-06-15T10:00:00+08:00"))
        #expect(h.tier == "silver")
        #expect(h.state.tier.assessAt == at("2027-01-01T00:00:00+08:00"))
        // 2026's growth keeps silver at the turn of 2027; nothing in 2027 loses it at 2028.
        h.advance(to: at("2027-01-01T00:00:00+08:00"))
        #expect(h.tier == "silver")
        #expect(h.state.tier.assessAt == at("2028-01-01T00:00:00+08:00"))
        h.advance(to: at("2027-12-31T23:59:59+08:00"))
        #expect(h.tier == "silver")
        h.advance(to: at("2028-01-01T00:00:00+08:00"))
        #expect(h.tier == "basic")
        // Growth resets with the period: 600 in 2028 and 600 in 2029 never make silver.
        try h.order("b", 60_000, at: at("2028-12-31T23:59:59+08:00"))
        try h.order("c", 60_000, at: at("2029-01-01T00:00:00+08:00"))
        #expect(h.tier == "basic")
    }

    @Test func quarterAssessmentWithGraceLooksAtTheBetterPeriod() throws {
        let p = try parseProgram(programJSON(assessment: #"{"kind": "calendar", "period": "quarter", "downgrade": "oneTier", "graceDays": 15}"#))
        var h = Harness(p)
        try h.order("a", 150_000, at: at("2026-02-10T10:00:00+08:00"))
        h.advance(to: at("2026-04-01T00:00:00+08:00")) // Q1 kept silver
        #expect(h.state.tier.assessAt == at("2026-07-01T00:00:00+08:00"))
        h.advance(to: at("2026-07-01T00:00:00+08:00")) // Q2 had nothing: grace
        #expect(h.state.tier.graceFrom != nil)
        try h.order("b", 100_000, at: at("2026-07-10T00:00:00+08:00")) // earns it back in Q3
        #expect(h.state.tier.graceFrom == nil)
        h.advance(to: at("2026-07-17T00:00:00+08:00"))
        #expect(h.tier == "silver")
    }

    @Test func refundUndoesTheUpgradeItPaidFor() throws {
        var h = Harness(try parseProgram(programJSON()))
        try h.order("a", 60_000, at: t0.adding(days: 1))
        try h.order("b", 60_000, at: t0.adding(days: 2))
        #expect(h.tier == "silver")
        try h.send(.orderRefunded(OrderRefunded(orderId: "b", lines: [RefundLine(line: 1)])), at: t0.adding(days: 3))
        #expect(h.tier == "basic")
        #expect(h.tierChanges.last?.cause == .refund)
        // An old order's refund does not undo a tier earned later by other orders.
        try h.order("c", 200_000, at: t0.adding(days: 4))
        #expect(h.tier == "silver")
        try h.send(.orderRefunded(OrderRefunded(orderId: "a")), at: t0.adding(days: 5))
        #expect(h.tier == "silver")
    }

    @Test func refundThatLeavesEnoughKeepsTheTier() throws {
        var h = Harness(try parseProgram(programJSON()))
        let o = OrderPaid(orderId: "a", lines: [OrderLine(sku: "x", amountMinor: 100_000), OrderLine(sku: "y", amountMinor: 10_000)])
        try h.send(.orderPaid(o), at: t0.adding(days: 1))
        try h.send(.orderRefunded(OrderRefunded(orderId: "a", lines: [RefundLine(line: 2)])), at: t0.adding(days: 2))
        #expect(h.tier == "silver")
    }

    @Test func lateEventsGiveTheSameTiersAsInOrder() throws {
        let p = try parseProgram(programJSON(assessment: rolling))
        var inOrder = Harness(p), late = Harness(p)
        try inOrder.order("a", 60_000, at: t0.adding(days: 1))
        try inOrder.order("b", 60_000, at: t0.adding(days: 10))
        try inOrder.order("c", 500_000, at: t0.adding(days: 50))
        try late.order("c", 500_000, at: t0.adding(days: 50))
        try late.order("a", 60_000, at: t0.adding(days: 1))
        try late.order("b", 60_000, at: t0.adding(days: 10))
        #expect(late.state.tier == inOrder.state.tier)
        #expect(late.tierChanges.map(\.to) == inOrder.tierChanges.map(\.to))
        #expect(late.state.balance == inOrder.state.balance)
    }

    @Test func programVersionsApplyByEventTime() throws {
        let v1 = try parseProgram(programJSON())
        var v2 = v1
        v2.earning.points.perUnitPermille = 2000
        let change = at("2026-06-01T00:00:00+08:00")
        let versions = ProgramVersions([.init(version: 1, effectiveFrom: t0.adding(days: -10), definition: v1), .init(version: 2, effectiveFrom: change, definition: v2)])
        var h = Harness(versions: versions)
        #expect(try h.order("a", 10_000, at: change.adding(seconds: -1)).pointsEarned == 100)
        #expect(try h.order("b", 10_000, at: change).pointsEarned == 200)
    }
}

@Suite struct ReviewFixesTests {
    @Test func aRefundThatArrivesBeforeItsOrderAppliesWhenTheOrderComes() throws {
        var h = Harness(try parseProgram(programJSON()))
        let r = try h.send(.orderRefunded(OrderRefunded(orderId: "a")), at: t0.adding(days: 1))
        #expect(r.status == .deferred)
        // The order carries a later time (clocks differ between systems): the refund still applies.
        try h.order("a", 120_000, at: t0.adding(days: 2))
        #expect(h.state.balance == 0)
        #expect(h.state.growthTotal == 0)
        #expect(h.tier == "basic")
        #expect(h.audit().isEmpty)
        #expect(try StateCodec.decode(StateCodec.encode(h.state)) == h.state)
    }

    @Test func calendarRefundLooksAtThePeriodJustAssessed() throws {
        let p = try parseProgram(programJSON(assessment: #"{"kind": "calendar", "period": "year", "downgrade": "oneTier", "graceDays": 0}"#))
        var h = Harness(p)
        try h.order("a", 600_000, at: at("2026-06-01T10:00:00+08:00")) // gold
        try h.order("b", 100_000, at: at("2026-06-02T10:00:00+08:00"))
        h.advance(to: at("2027-01-01T00:00:00+08:00"))
        #expect(h.tier == "gold")
        // Refunding the small order in January leaves 2026 at 6000: gold stays.
        try h.send(.orderRefunded(OrderRefunded(orderId: "b")), at: at("2027-01-05T10:00:00+08:00"))
        #expect(h.tier == "gold")
    }

    @Test func anUndoneUpgradeIsNeverDatedBeforeTheRefund() throws {
        let p = try parseProgram(programJSON(assessment: #"{"kind": "rolling", "windowDays": 30, "downgrade": "toSupported", "graceDays": 0}"#))
        var h = Harness(p)
        try h.order("a", 150_000, at: t0.adding(days: 1))      // silver, assessed day 31
        try h.order("b", 500_000, at: t0.adding(days: 20))     // gold
        h.advance(to: t0.adding(days: 40))
        try h.send(.orderRefunded(OrderRefunded(orderId: "b")), at: t0.adding(days: 45))
        let refund = t0.adding(days: 45)
        #expect(h.tierChanges.allSatisfy { $0.cause != .refund || $0.at == refund })
        #expect(h.tierChanges.filter { $0.at > t0.adding(days: 20) }.allSatisfy { $0.at >= refund }, "\(h.tierChanges)")
        #expect(h.audit().isEmpty)
    }

    @Test func firstOrderActivitiesCannotBeSentAsEvents() throws {
        var h = Harness(try parseProgram(programJSON(activities: #"[{"id": "first_purchase", "points": 50, "trigger": "firstOrder"}]"#)))
        #expect(throws: EngineError.activityAwardedAutomatically("first_purchase")) {
            try h.send(.activity(ActivityDone(activity: "first_purchase")), at: t0.adding(days: 1))
        }
    }
}

@Suite struct UpgradeForecastTests {
    @Test func atTheMembersOwnPaceOnALifetimeProgram() throws {
        var h = Harness(try parseProgram(programJSON()))
        // 300 growth in each of three orders over the last 90 days: 900 / 90 = 10 a day.
        try h.order("a", 30_000, at: t0.adding(days: 10))
        try h.order("b", 30_000, at: t0.adding(days: 40))
        try h.order("c", 30_000, at: t0.adding(days: 70))
        let f = h.engine.standing(h.state, now: t0.adding(days: 80)).upgradeForecast!
        #expect(f.basis == "member" && f.pacePerDayMilli == 10_000)
        #expect(f.nextTier == "silver" && f.missing == 100)
        #expect(f.outcome == .reached)
        #expect(f.date == ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!).date(t0.adding(days: 90)))
    }

    @Test func aNewMemberGoesByTheProgramAverageOrNotAtAll() throws {
        var h = Harness(try parseProgram(programJSON()))
        try h.order("a", 30_000, at: t0.adding(days: 1))
        #expect(h.engine.standing(h.state, now: t0.adding(days: 2)).upgradeForecast?.outcome == .noPace)
        let f = h.engine.standing(h.state, now: t0.adding(days: 2), programPaceMilli: 7_000).upgradeForecast!
        #expect(f.basis == "program" && f.outcome == .reached && f.missing == 700)
    }

    @Test func rollingWindowsAndCalendarPeriodsCanPutTheTierOutOfReach() throws {
        // A 30-day window at 10 a day holds 300: silver (1000) is out of reach at this pace.
        var r = Harness(try parseProgram(programJSON(assessment: #"{"kind": "rolling", "windowDays": 30, "downgrade": "oneTier"}"#)))
        try r.order("a", 45_000, at: t0.adding(days: 10))
        try r.order("b", 45_000, at: t0.adding(days: 60))
        #expect(r.engine.standing(r.state, now: t0.adding(days: 61)).upgradeForecast?.outcome == .notAtThisPace)
        // A calendar month: 300 in 90 days is far too slow to make up 700 before the month ends.
        var c = Harness(try parseProgram(programJSON(assessment: #"{"kind": "calendar", "period": "month", "downgrade": "oneTier"}"#)))
        try c.order("a", 15_000, at: at("2026-03-01T10:00:00+08:00"))
        try c.order("b", 15_000, at: at("2026-03-05T10:00:00+08:00"))
        let f = c.engine.standing(c.state, now: at("2026-03-06T10:00:00+08:00"), programPaceMilli: nil).upgradeForecast!
        #expect(f.outcome == .notBeforeReset)
        #expect(f.date == nil)
        // The top tier has nothing to forecast.
        var top = Harness(try parseProgram(programJSON()))
        try top.order("a", 3_000_000, at: t0.adding(days: 1))
        #expect(top.engine.standing(top.state, now: t0.adding(days: 2)).upgradeForecast == nil)
    }
}
