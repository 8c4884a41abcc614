import Foundation
import Testing
@testable import PatronCore

/// Random histories against the ledger's invariants, checked after every step.
@Suite struct GeneratedLedgerTests {
    static let program: ProgramDefinition = try! parseProgram(programJSON(
        assessment: #"{"kind": "rolling", "windowDays": 60, "downgrade": "oneTier", "graceDays": 10}"#,
        expiry: #"{"kind": "afterDays", "days": 45}"#, pendingDays: 3,
        extraEarning: #", "multipliers": [{"id": "shoes", "categories": ["shoes"], "factor": 2}], "caps": {"pointsPerDay": 3000}"#,
        activities: #"[{"id": "check_in", "points": 5, "growth": 2, "limit": "daily"}, {"id": "first_purchase", "points": 50, "trigger": "firstOrder"}]"#))
    static let debtProgram: ProgramDefinition = {
        var p = program; p.refund.shortfall = .recordDebt; return p
    }()

    static func randomEvent(_ rng: inout SeededRandom, orders: inout [String], t: Timestamp, spends: Bool) -> EventBody {
        let roll = Int.random(in: 0..<100, using: &rng)
        switch roll {
        case 0..<40:
            let id = "o\(orders.count)"
            orders.append(id)
            let lines = (0..<Int.random(in: 1...3, using: &rng)).map { i in
                OrderLine(sku: "s\(i)", category: Bool.random(using: &rng) ? "shoes" : "bags", quantity: Int64.random(in: 1...3, using: &rng),
                          amountMinor: Int64.random(in: 0...200_000, using: &rng))
            }
            return .orderPaid(OrderPaid(orderId: id, lines: lines))
        case 40..<55 where !orders.isEmpty:
            let id = orders.randomElement(using: &rng)!
            return .orderRefunded(OrderRefunded(orderId: id, lines: Bool.random(using: &rng) ? nil : [RefundLine(line: 1, quantity: 1)]))
        case 55..<65:
            return .activity(ActivityDone(activity: "check_in"))
        case 65..<75:
            return .pointsAdjusted(PointsAdjusted(points: spends && Bool.random(using: &rng) ? -Int64.random(in: 1...500, using: &rng) : Int64.random(in: 1...500, using: &rng), reason: "gen", staff: "t"))
        default:
            if spends { return .pointsRedeemed(PointsRedeemed(points: Int64.random(in: 1...2000, using: &rng), purpose: "gen")) }
            return .activity(ActivityDone(activity: "check_in"))
        }
    }

    final class Stats: @unchecked Sendable {
        let lock = NSLock()
        var debts = 0, expiries = 0, refunds = 0, downgrades = 0, upgrades = 0
        func record(_ h: Harness) {
            lock.lock(); defer { lock.unlock() }
            if h.entries.contains(where: { $0.lotNo == nil || $0.account == .debt }) { debts += 1 }
            if h.entries.contains(where: { $0.reason == .expiry }) { expiries += 1 }
            if h.entries.contains(where: { $0.reason == .refund }) { refunds += 1 }
            if h.tierChanges.contains(where: { $0.cause == .assessment }) { downgrades += 1 }
            if h.tierChanges.contains(where: { $0.cause == .upgrade }) { upgrades += 1 }
        }
    }
    static let stats = Stats()
    var stats: Stats { Self.stats }

    @Test func generatorReachesEdgeCases() throws {
        for seed in UInt64(1000)...1030 { try invariantsHoldAfterEveryStep(seed: seed) }
        #expect(stats.debts > 0 && stats.expiries > 0 && stats.refunds > 0 && stats.downgrades > 0 && stats.upgrades > 0,
                "debts \(stats.debts) expiries \(stats.expiries) refunds \(stats.refunds) downgrades \(stats.downgrades) upgrades \(stats.upgrades)")
    }

    @Test(arguments: [UInt64](1...40))
    func invariantsHoldAfterEveryStep(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let p = seed % 3 == 0 ? Self.debtProgram : Self.program
        var h = Harness(p)
        var orders: [String] = []
        var t = t0
        for _ in 0..<150 {
            // Mostly forward in time; one event in six arrives late, up to 20 days back.
            let late = Int.random(in: 0..<6, using: &rng) == 0
            // Now and then the member goes quiet for months, so tiers are assessed and fall.
            let quiet = Int.random(in: 0..<30, using: &rng) == 0 ? days(90) : 0
            let when = late ? t.adding(seconds: -Int64.random(in: 0...days(20), using: &rng)) : t.adding(seconds: quiet + Int64.random(in: 0...days(3), using: &rng))
            if !late { t = when }
            let body = Self.randomEvent(&rng, orders: &orders, t: when, spends: true)
            let before = h
            let availableBefore = h.engine.standing(h.state, now: when).available
            do {
                let out = try h.send(body, at: max(when, h.state.registeredAt))
                if case .pointsRedeemed(let r) = body, when >= before.state.asOf {
                    #expect(r.points <= availableBefore, "spent more than was available")
                    #expect(out.pointsSpent == r.points)
                }
            } catch is EngineError {
                #expect(h.state == before.state, "a refused event changed the state")
                #expect(h.entries == before.entries)
            }
            let problems = h.audit()
            #expect(problems.isEmpty, "seed \(seed): \(problems)")
            #expect(try StateCodec.decode(StateCodec.encode(h.state)) == h.state, "the stored form of the state round-trips")
            #expect(h.lots.values.allSatisfy { $0.remaining >= 0 })
            if !problems.isEmpty { return }
        }
        // The generator must reach the interesting cases, or the test proves little.
        stats.record(h)
        // Jobs: the clock passes every expiry and assessment.
        h.advance(to: t.adding(days: 400))
        #expect(h.audit().isEmpty)
        #expect(h.state.lots.isEmpty)
        // Replaying the accepted events from scratch gives the same state and the same ledger.
        // (the harness keeps only accepted events)
        let r = try h.engine.replay(member: h.state.memberId, registeredAt: h.state.registeredAt, events: h.events, until: h.state.asOf)
        #expect(r.state.snapshot == h.state)
        var table = r.effects.orders
        for (k, n) in r.effects.orderLapses { table[k]?.addLapsed(n) }
        #expect(table == h.orderTable, "the orders table rebuilt by a replay matches the one kept step by step")
        #expect(r.effects.entries == h.entries.sorted { $0.no < $1.no })
    }

    /// Without spends (whose acceptance depends on what has arrived), the result does not depend
    /// on arrival order: any shuffle of the same events gives the same member.
    @Test(arguments: [UInt64](100...130))
    func arrivalOrderDoesNotMatter(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        var orders: [String] = []
        var timed: [(Timestamp, EventBody)] = []
        var t = t0
        var refunded = Set<String>()
        for _ in 0..<60 {
            t = t.adding(seconds: Int64.random(in: 1...days(4), using: &rng))
            var body = Self.randomEvent(&rng, orders: &orders, t: t, spends: false)
            if case .orderRefunded(let r) = body {
                // whole-order refunds, each order once, so acceptance does not depend on arrival
                if refunded.contains(r.orderId) { continue }
                refunded.insert(r.orderId)
                body = .orderRefunded(OrderRefunded(orderId: r.orderId))
            }
            if case .activity = body { continue } // the daily limit keeps whichever arrives first
            timed.append((t, body))
        }
        var inOrder = Harness(Self.program)
        for (t, b) in timed { try inOrder.send(b, at: t) }
        var shuffled = Harness(Self.program)
        for (t, b) in timed.shuffled(using: &rng) { try shuffled.send(b, at: t) }
        let end = t.adding(days: 1)
        inOrder.advance(to: end); shuffled.advance(to: end)
        let a = inOrder.engine.standing(inOrder.state, now: end), b = shuffled.engine.standing(shuffled.state, now: end)
        #expect(a == b)
        #expect(inOrder.state.tier == shuffled.state.tier)
        #expect(inOrder.state.lots.map(\.remaining) .sorted() == shuffled.state.lots.map(\.remaining).sorted())
        #expect(inOrder.tierChanges.map(\.to) == shuffled.tierChanges.map(\.to))
        #expect(shuffled.audit().isEmpty)
    }
}

@Suite struct StateCodecTests {
    @Test func rejectsDamagedSnapshots() throws {
        var h = Harness(GeneratedLedgerTests.program)
        try h.order("a", 10_000, at: t0.adding(days: 1))
        let bytes = StateCodec.encode(h.state)
        #expect(throws: StateCodec.Failure.truncated) { try StateCodec.decode(Array(bytes.dropLast(3))) }
        #expect(throws: StateCodec.Failure.badFormat(9)) { try StateCodec.decode([9] + bytes.dropFirst()) }
        #expect(throws: (any Error).self) { try StateCodec.decode(bytes + [0]) }
    }
}
