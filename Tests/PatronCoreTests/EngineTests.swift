import Foundation
import Testing
@testable import PatronCore

@Suite struct EarningTests {
    struct Case: Sendable, CustomStringConvertible {
        var amount: Int64, unit: Int64, perUnit: Int64, factor: Int64, rounding: Rounding, expected: Int64
        var description: String { "\(amount)×\(perUnit)/\(unit)×\(factor)‰ \(rounding) = \(expected)" }
    }
    @Test(arguments: [
        Case(amount: 12_345, unit: 100, perUnit: 1000, factor: 1000, rounding: .floor, expected: 123),
        Case(amount: 12_345, unit: 100, perUnit: 1000, factor: 1000, rounding: .ceil, expected: 124),
        Case(amount: 12_349, unit: 100, perUnit: 1000, factor: 1000, rounding: .round, expected: 123),
        Case(amount: 12_350, unit: 100, perUnit: 1000, factor: 1000, rounding: .round, expected: 124),
        Case(amount: 12_300, unit: 100, perUnit: 1000, factor: 2000, rounding: .floor, expected: 246),
        Case(amount: 999, unit: 1000, perUnit: 1000, factor: 1000, rounding: .floor, expected: 0),
        Case(amount: 10_000, unit: 100, perUnit: 1500, factor: 1500, rounding: .floor, expected: 225),
        Case(amount: 0, unit: 100, perUnit: 1000, factor: 3000, rounding: .ceil, expected: 0),
        // The largest order line does not overflow: 1e10 minor × 1000 per unit × 100×.
        Case(amount: 10_000_000_000, unit: 1, perUnit: 1_000_000, factor: 100_000, rounding: .floor, expected: 1_000_000_000_000_000),
    ])
    func earnsByRate(_ c: Case) {
        #expect(Engine.earn(c.amount, EarningRate(unitMinor: c.unit, perUnitPermille: c.perUnit), factorPermille: c.factor, rounding: c.rounding) == c.expected)
    }

    @Test func proportionalSplitsAddUpExactly() {
        var rng = SeededRandom(seed: 11)
        for _ in 0..<500 {
            let n = Int.random(in: 1...8, using: &rng)
            let w = (0..<n).map { _ in Int64.random(in: 0...100_000, using: &rng) }
            let total = Int64.random(in: 0...(w.reduce(0, +)), using: &rng)
            let parts = Engine.proportional(w, total: total)
            if w.reduce(0, +) > 0 { #expect(parts.reduce(0, +) == total) }
            #expect(zip(parts, w).allSatisfy { $0 <= $1 || total > w.reduce(0, +) })
        }
    }

    @Test func multipliersByCategoryChannelAndWindow() throws {
        let p = try parseProgram(programJSON(extraEarning: #"""
            , "multipliers": [
              {"id": "shoes", "categories": ["shoes"], "factor": 1.5, "applyTo": "both"},
              {"id": "app", "channels": ["app"], "factor": 2},
              {"id": "double11", "factor": 3, "from": "2026-11-01T00:00:00+08:00", "until": "2026-11-12T00:00:00+08:00"}
            ]
            """#))
        var h = Harness(p)
        #expect(try h.order("a", 10_000, at: at("2026-03-01T10:00:00+08:00"), category: "shoes").pointsEarned == 150)
        #expect(try h.order("b", 10_000, at: at("2026-03-01T10:00:00+08:00"), category: "shoes", channel: "app").pointsEarned == 200) // max
        #expect(try h.order("c", 10_000, at: at("2026-11-11T23:59:59+08:00")).pointsEarned == 300)
        #expect(try h.order("d", 10_000, at: at("2026-11-12T00:00:00+08:00")).pointsEarned == 100) // the window's end is exclusive
        let o = try h.order("e", 10_000, at: at("2026-03-02T10:00:00+08:00"), category: "shoes")
        #expect(o.growthEarned == 150) // growth multiplier applies to "both"
        let o2 = try h.order("f", 10_000, at: at("2026-03-02T10:00:00+08:00"), channel: "app")
        #expect(o2.growthEarned == 100) // points only
        #expect(h.audit().isEmpty)
    }

    @Test func multiplyStacking() throws {
        let p = try parseProgram(programJSON(extraEarning: #", "stacking": "multiply", "multipliers": [{"id": "shoes", "categories": ["shoes"], "factor": 1.5}, {"id": "app", "channels": ["app"], "factor": 2}]"#))
        var h = Harness(p)
        #expect(try h.order("a", 10_000, at: t0.adding(days: 1), category: "shoes", channel: "app").pointsEarned == 300)
    }

    @Test func perOrderAndPerDayCaps() throws {
        let p = try parseProgram(programJSON(extraEarning: #", "caps": {"pointsPerOrder": 500, "pointsPerDay": 800, "growthPerOrder": 700}"#))
        var h = Harness(p)
        let two = OrderPaid(orderId: "a", lines: [OrderLine(sku: "x", amountMinor: 60_000), OrderLine(sku: "y", amountMinor: 40_000)])
        let o = try h.send(.orderPaid(two), at: at("2026-02-01T09:00:00+08:00"))
        #expect(o.pointsEarned == 500)
        #expect(o.growthEarned == 700)
        #expect(h.orderTable["a"]!.lines.map(\.points) == [300, 200])
        #expect(try h.order("b", 100_000, at: at("2026-02-01T23:59:59+08:00")).pointsEarned == 300) // 800 a day
        #expect(try h.order("c", 100_000, at: at("2026-02-02T00:00:00+08:00")).pointsEarned == 500) // a new local day
    }

    @Test func orderDiscountIsSharedAmongLines() throws {
        var h = Harness(try parseProgram(programJSON()))
        let o = OrderPaid(orderId: "a", lines: [OrderLine(sku: "x", amountMinor: 30_000, discountMinor: 0), OrderLine(sku: "y", amountMinor: 10_000, discountMinor: 0)], discountMinor: 10_000)
        let out = try h.send(.orderPaid(o), at: t0.adding(days: 1))
        #expect(out.pointsEarned == 300)
        #expect(h.orderTable["a"]!.lines.map(\.points) == [225, 75])
    }
}

@Suite struct LedgerTests {
    @Test func spendTakesTheLotThatExpiresFirst() throws {
        let p = try parseProgram(programJSON(expiry: #"{"kind": "afterDays", "days": 30}"#))
        var h = Harness(p)
        try h.order("a", 10_000, at: at("2026-01-10T12:00:00+08:00"))   // 100, lapses at 02-10 00:00
        try h.order("b", 20_000, at: at("2026-01-05T12:00:00+08:00"))   // late: 200, lapses 02-05
        try h.send(.pointsRedeemed(PointsRedeemed(points: 250, purpose: "mall")), at: at("2026-01-20T00:00:00+08:00"))
        #expect(h.state.lots.map(\.remaining) == [50])
        #expect(h.state.lots[0].orderId == "a")
        #expect(h.audit().isEmpty)
    }

    @Test func expiryAtTheLastSecond() throws {
        let p = try parseProgram(programJSON(expiry: #"{"kind": "afterDays", "days": 30}"#))
        var h = Harness(p)
        try h.order("a", 10_000, at: at("2026-01-01T09:00:00+08:00"))
        #expect(h.engine.standing(h.state, now: at("2026-01-01T10:00:00+08:00")).upcomingExpiries.map(\.lastDay) == [CivilDate(year: 2026, month: 1, day: 31)])
        var h2 = h
        try h.send(.pointsRedeemed(PointsRedeemed(points: 100, purpose: "x")), at: at("2026-01-31T23:59:59+08:00"))
        #expect(h.state.balance == 0)
        #expect(throws: EngineError.insufficientPoints(available: 0, requested: 100)) {
            try h2.send(.pointsRedeemed(PointsRedeemed(points: 100, purpose: "x")), at: at("2026-02-01T00:00:00+08:00"))
        }
        h2.advance(to: at("2026-02-01T00:00:00+08:00"))
        #expect(h2.entries.last?.reason == .expiry)
        #expect(h2.entries.last?.points == -100)
        #expect(h2.audit().isEmpty)
    }

    @Test(arguments: [
        (CivilDate(year: 2026, month: 1, day: 15), ExpiryPeriod.month, 0, CivilDate(year: 2026, month: 2, day: 1)),
        (CivilDate(year: 2026, month: 1, day: 31), ExpiryPeriod.month, 1, CivilDate(year: 2026, month: 3, day: 1)),
        (CivilDate(year: 2024, month: 2, day: 29), ExpiryPeriod.month, 12, CivilDate(year: 2025, month: 3, day: 1)),
        (CivilDate(year: 2026, month: 6, day: 1), ExpiryPeriod.year, 0, CivilDate(year: 2027, month: 1, day: 1)),
        (CivilDate(year: 2026, month: 12, day: 31), ExpiryPeriod.year, 12, CivilDate(year: 2028, month: 1, day: 1)),
    ])
    func endOfPeriodExpiry(_ earned: CivilDate, _ period: ExpiryPeriod, _ months: Int, _ lapse: CivilDate) {
        let clock = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
        let t = clock.startOfDay(earned).adding(seconds: 3600 * 23 + 3599)
        #expect(Engine.expiry(of: t, ExpiryPolicy(kind: .endOfPeriod, period: period, months: months), clock) == clock.startOfDay(lapse))
    }

    @Test func pendingPointsCannotBeSpentUntilTheReturnWindowCloses() throws {
        var h = Harness(try parseProgram(programJSON(pendingDays: 7)))
        let t = at("2026-03-01T10:00:00+08:00")
        try h.order("a", 10_000, at: t)
        var early = h
        #expect(throws: EngineError.insufficientPoints(available: 0, requested: 10)) {
            try early.send(.pointsRedeemed(PointsRedeemed(points: 10, purpose: "x")), at: t.adding(days: 7).adding(seconds: -1))
        }
        #expect(h.engine.standing(h.state, now: t.adding(days: 1)).pending == 100)
        try h.send(.pointsRedeemed(PointsRedeemed(points: 10, purpose: "x")), at: t.adding(days: 7))
        #expect(h.state.balance == 90)
    }

    @Test func refundWithSpentPointsGoesNegativeAndLaterEarningsRepay() throws {
        var h = Harness(try parseProgram(programJSON()))
        try h.order("a", 10_000, at: t0.adding(days: 1))
        try h.send(.pointsRedeemed(PointsRedeemed(points: 80, purpose: "mall")), at: t0.adding(days: 2))
        let r = try h.send(.orderRefunded(OrderRefunded(orderId: "a")), at: t0.adding(days: 3))
        #expect(r.pointsClawedBack == 100)
        #expect(h.state.balance == -80)
        #expect(h.state.debt == 80)
        #expect(h.engine.standing(h.state, now: t0.adding(days: 3)).available == 0)
        try h.order("b", 5_000, at: t0.adding(days: 4))
        #expect(h.state.balance == -30)
        try h.order("c", 5_000, at: t0.adding(days: 5))
        #expect(h.state.balance == 20)
        #expect(h.state.debt == 0)
        #expect(h.audit().isEmpty)
    }

    @Test func refundWithSpentPointsRecordedAsDebt() throws {
        var h = Harness(try parseProgram(programJSON(shortfall: "recordDebt")))
        try h.order("a", 10_000, at: t0.adding(days: 1))
        try h.send(.pointsRedeemed(PointsRedeemed(points: 80, purpose: "mall")), at: t0.adding(days: 2))
        try h.send(.orderRefunded(OrderRefunded(orderId: "a")), at: t0.adding(days: 3))
        #expect(h.state.balance == 0)
        #expect(h.state.recordedDebt == 80)
        #expect(h.entries.last?.account == .debt)
        try h.order("b", 5_000, at: t0.adding(days: 4))
        #expect(h.state.balance == 50)
        #expect(h.audit().isEmpty)
    }

    @Test func recordedDebtIsSettledWithPointsMoneyOrWaived() throws {
        var h = Harness(try parseProgram(programJSON(shortfall: "recordDebt")))
        try h.order("a", 10_000, at: t0.adding(days: 1))
        try h.send(.pointsRedeemed(PointsRedeemed(points: 100, purpose: "mall")), at: t0.adding(days: 2))
        try h.send(.orderRefunded(OrderRefunded(orderId: "a")), at: t0.adding(days: 3))
        #expect(h.state.recordedDebt == 100)
        try h.order("b", 5_000, at: t0.adding(days: 4))
        #expect(throws: EngineError.insufficientPoints(available: 50, requested: 60)) {
            try h.send(.debtSettled(DebtSettled(points: 60, method: .points, reason: "collect", staff: "ops")), at: t0.adding(days: 5))
        }
        try h.send(.debtSettled(DebtSettled(points: 50, method: .points, reason: "collect", staff: "ops")), at: t0.adding(days: 5))
        #expect(h.state.balance == 0 && h.state.recordedDebt == 50)
        #expect(throws: EngineError.settlementExceedsDebt(debt: 50, requested: 80)) {
            try h.send(.debtSettled(DebtSettled(points: 80, method: .money, reason: "paid at counter", staff: "ops")), at: t0.adding(days: 6))
        }
        try h.send(.debtSettled(DebtSettled(points: 30, method: .money, reason: "paid at counter", staff: "ops")), at: t0.adding(days: 6))
        try h.send(.debtSettled(DebtSettled(points: 20, method: .waived, reason: "goodwill", staff: "manager")), at: t0.adding(days: 7))
        #expect(h.state.recordedDebt == 0)
        #expect(h.entries.filter { $0.reason == .debtSettlement }.count == 4) // a points spend and three debt entries
        #expect(h.audit().isEmpty)
    }

    @Test func partialRefundsReverseExactlyWhatTheLinesEarned() throws {
        var h = Harness(try parseProgram(programJSON()))
        let o = OrderPaid(orderId: "a", lines: [OrderLine(sku: "x", quantity: 3, amountMinor: 10_000), OrderLine(sku: "y", amountMinor: 5_000)])
        try h.send(.orderPaid(o), at: t0.adding(days: 1))
        #expect(h.state.balance == 150)
        let first = try h.send(.orderRefunded(OrderRefunded(orderId: "a", lines: [RefundLine(line: 1, quantity: 1)])), at: t0.adding(days: 2))
        #expect(first.pointsClawedBack == 33 && first.refundedMinor == 3_333)
        let second = try h.send(.orderRefunded(OrderRefunded(orderId: "a", lines: [RefundLine(line: 1, quantity: 1)])), at: t0.adding(days: 2))
        #expect(second.pointsClawedBack == 33 && second.refundedMinor == 3_333)
        #expect(h.state.spentMinor == 15_000 - 6_666 && h.state.orderFacts.first?.amountMinor == 15_000 - 6_666)
        #expect(throws: EngineError.refundExceedsOrder(line: 1, remaining: 1, requested: 2)) {
            try h.send(.orderRefunded(OrderRefunded(orderId: "a", lines: [RefundLine(line: 1, quantity: 2)])), at: t0.adding(days: 2))
        }
        let rest = try h.send(.orderRefunded(OrderRefunded(orderId: "a")), at: t0.adding(days: 3))
        #expect(rest.pointsClawedBack == 84 && rest.refundedMinor == 3_334 + 5_000)
        #expect(h.state.spentMinor == 0 && h.state.orderFacts.isEmpty)
        #expect(h.state.balance == 0)
        #expect(h.state.growthTotal == 0)
        #expect(throws: EngineError.orderFullyRefunded("a")) { try h.send(.orderRefunded(OrderRefunded(orderId: "a")), at: t0.adding(days: 4)) }
        #expect(h.audit().isEmpty)
    }

    /// A refund gives back what the refunded lines paid: their amounts less their discounts and
    /// their share of the order's; a refund that arrives before its order is booked with the order.
    @Test func refundsGiveBackWhatTheLinesPaid() throws {
        var h = Harness(try parseProgram(programJSON()))
        // Lines pay 8,000 − 500 and 4,000; the order's 1,150 off is shared 7,500 : 4,000 → 750 and 400.
        let o = OrderPaid(orderId: "d", lines: [OrderLine(sku: "x", quantity: 2, amountMinor: 8_000, discountMinor: 500), OrderLine(sku: "y", amountMinor: 4_000)],
                          discountMinor: 1_150)
        try h.send(.orderPaid(o), at: t0.adding(days: 1))
        #expect(h.state.spentMinor == 10_350)
        #expect(try h.send(.orderRefunded(OrderRefunded(orderId: "d", lines: [RefundLine(line: 2)])), at: t0.adding(days: 2)).refundedMinor == 3_600)
        #expect(try h.send(.orderRefunded(OrderRefunded(orderId: "d", lines: [RefundLine(line: 1, quantity: 1)])), at: t0.adding(days: 2)).refundedMinor == 3_375)
        #expect(try h.send(.orderRefunded(OrderRefunded(orderId: "d")), at: t0.adding(days: 3)).refundedMinor == 3_375)
        #expect(h.state.spentMinor == 0)

        // Refund first (an offline store's upload), order later: the order's outcome books it.
        let early = try h.send(.orderRefunded(OrderRefunded(orderId: "e")), at: t0.adding(days: 5))
        #expect(early.status == .deferred && early.refundedMinor == nil)
        let paid = try h.send(.orderPaid(OrderPaid(orderId: "e", lines: [OrderLine(sku: "z", amountMinor: 2_500)])), at: t0.adding(days: 5))
        #expect(paid.refundedMinor == 2_500)
        #expect(h.state.spentMinor == 0)
        #expect(h.audit().isEmpty)
    }

    /// Order records stored before lines kept their paid amounts get them estimated from the
    /// growth each line earned; refunded amounts follow the refunded units.
    @Test func olderOrderRecordsEstimateWhatLinesPaid() {
        var r = OrderRecord(eventId: EventID(1), at: t0, lines: [
            LineEarning(quantity: 2, points: 70, growth: 70, paid: 0, refundedQuantity: 1, refundedPoints: 35, refundedGrowth: 35),
            LineEarning(quantity: 1, points: 30, growth: 30, paid: 0),
        ], lotNo: nil, tierBefore: TierState(tierId: "basic", since: t0, assessAt: nil, graceFrom: nil), paidMinor: 10_001)
        r.estimateLinePaid()
        #expect(r.lines.map(\.paid) == [7_000, 3_001] && r.lines.map(\.refundedPaid) == [3_500, 0] && r.refundedMinor == 3_500)
    }

    @Test func lapsedPointsAreNotClawedBackTwice() throws {
        var h = Harness(try parseProgram(programJSON(expiry: #"{"kind": "afterDays", "days": 10}"#)))
        try h.order("a", 10_000, at: t0.adding(days: 1))
        try h.order("b", 10_000, at: t0.adding(days: 15))
        let r = try h.send(.orderRefunded(OrderRefunded(orderId: "a")), at: t0.adding(days: 16))
        #expect(r.pointsClawedBack == 0)
        #expect(r.growthClawedBack == 100)
        #expect(h.state.balance == 100)
        #expect(h.audit().isEmpty)
    }

    @Test func staffAdjustmentsAndActivities() throws {
        let acts = #"[{"id": "check_in", "points": 5, "growth": 1, "limit": "daily"}, {"id": "profile_completed", "points": 100, "growth": 10, "limit": "once"}, {"id": "first_purchase", "points": 50, "trigger": "firstOrder"}]"#
        var h = Harness(try parseProgram(programJSON(activities: acts)))
        try h.send(.activity(ActivityDone(activity: "check_in")), at: at("2026-01-05T23:59:59+08:00"))
        #expect(throws: EngineError.activityLimitReached(activity: "check_in", limit: .daily)) {
            try h.send(.activity(ActivityDone(activity: "check_in")), at: at("2026-01-05T23:59:59+08:00"))
        }
        try h.send(.activity(ActivityDone(activity: "check_in")), at: at("2026-01-06T00:00:00+08:00"))
        try h.send(.activity(ActivityDone(activity: "profile_completed")), at: at("2026-01-06T01:00:00+08:00"))
        #expect(throws: EngineError.activityLimitReached(activity: "profile_completed", limit: .once)) {
            try h.send(.activity(ActivityDone(activity: "profile_completed")), at: at("2026-01-07T01:00:00+08:00"))
        }
        #expect(throws: EngineError.activityAwardedAutomatically("first_purchase")) { try h.send(.activity(ActivityDone(activity: "first_purchase")), at: at("2026-01-07T01:00:00+08:00")) }
        #expect(try h.order("a", 1_000, at: at("2026-01-08T01:00:00+08:00")).pointsEarned == 60)
        #expect(try h.order("b", 1_000, at: at("2026-01-08T02:00:00+08:00")).pointsEarned == 10)
        try h.send(.pointsAdjusted(PointsAdjusted(points: -100, reason: "correction", staff: "ops-1")), at: at("2026-01-09T00:00:00+08:00"))
        #expect(throws: EngineError.insufficientPoints(available: 80, requested: 1000)) {
            try h.send(.pointsAdjusted(PointsAdjusted(points: -1000, reason: "too much", staff: "ops-1")), at: at("2026-01-09T00:00:00+08:00"))
        }
        #expect(h.state.balance == 80)
        #expect(h.state.growthTotal == 12 + 20)
        #expect(h.audit().isEmpty)
    }
}

@Suite struct JSONTextTests {
    @Test func handWrittenJSONDecodesToTheSameValues() throws {
        var rng = SeededRandom(seed: 5)
        let odd = ["", "plain", "引号\"和\\反斜杠", "tab\tnew\nline", "\u{01}ctl", "emoji 🎉"]
        for _ in 0..<300 {
            let lines = (0..<Int.random(in: 1...3, using: &rng)).map { _ in
                OrderLine(sku: odd.randomElement(using: &rng)! + "x", category: Bool.random(using: &rng) ? nil : odd.randomElement(using: &rng),
                          quantity: Int64.random(in: 1...9, using: &rng), amountMinor: Int64.random(in: 0...Int64(1e10), using: &rng), discountMinor: Int64.random(in: 0...9, using: &rng))
            }
            let o = OrderPaid(orderId: odd.randomElement(using: &rng)! + "o", currency: Bool.random(using: &rng) ? "CNY" : nil, lines: lines,
                              discountMinor: Int64.random(in: 0...5, using: &rng), channel: Bool.random(using: &rng) ? nil : "app", store: odd.randomElement(using: &rng))
            #expect(try JSONDecoder().decode(OrderPaid.self, from: Data(o.jsonText.utf8)) == o)
            let out = EventOutcome(status: Bool.random(using: &rng) ? .applied : .deferred, pointsEarned: Int64.random(in: -9...9_999, using: &rng),
                                   growthEarned: 3, pointsSpent: 0, pointsClawedBack: -1, growthClawedBack: 7, tierBefore: "basic", tierAfter: "gold",
                                   note: Bool.random(using: &rng) ? nil : odd.randomElement(using: &rng))
            #expect(try JSONDecoder().decode(EventOutcome.self, from: Data(out.jsonText.utf8)) == out)
        }
    }
}
