import Foundation
import PatronCore
@testable import PatronStore
import Testing

@Suite struct AnalyticsStoreTests {
    /// A program's orders as a purchase log: local dates in the program's time zone, one
    /// transaction per order; two orders on one local day are one purchase day in the summary.
    @Test(arguments: Backend.allCases)
    func purchaseLogFromTheOrders(_ backend: Backend) async throws {
        try await withStore(backend) { store, m in
            // t0 is 2026-03-01 10:00 Shanghai; 23:30 the same local day is 15:30 UTC.
            for (i, (at, amount)) in [(t0, Int64(12_345)), (Timestamp(iso8601: "2026-03-01T23:30:00+08:00")!, 1_000), (t0.adding(days: 7), 5_000)].enumerated() {
                _ = try await store.record(program: "shop", member: m, occurredAt: at, body: order("a\(i)", amount), idempotencyKey: "a\(i)", requestHash: "h", now: at)
            }
            let log = try await store.purchaseLog(program: "shop")
            #expect(log.map(\.day) == [CivilDate(year: 2026, month: 3, day: 1), CivilDate(year: 2026, month: 3, day: 1), CivilDate(year: 2026, month: 3, day: 8)])
            #expect(log.map(\.amountMinor) == [12_345, 1_000, 5_000])
            let s = try #require(PurchaseSummary.summaries(of: log, calibrationEnd: CivilDate(year: 2026, month: 3, day: 15)).first)
            #expect(s.memberId == m.description && s.frequency == 1 && s.recency == 1 && s.T == 2)
        }
    }
}

@Suite struct KPIStoreTests {
    func buy(_ store: Store, _ m: MemberID, _ id: String, _ amount: Int64, _ at: Timestamp, channel: String = "store") async throws {
        _ = try await store.record(program: "shop", member: m, occurredAt: at, body: .orderPaid(OrderPaid(orderId: id, lines: [OrderLine(sku: "s", amountMinor: amount)], channel: channel)),
                                   idempotencyKey: id, requestHash: "h", now: at)
    }
    func day(_ s: String) -> CivilDate { CivilDate(string: s)! }
    func at(_ s: String) -> Timestamp { Timestamp(iso8601: s)! }
    /// The harness member and `count` more, with cards `prefix0`, `prefix1`, ….
    func members(_ store: Store, _ first: MemberID, _ count: Int, cards prefix: String) async throws -> [MemberID] {
        var out = [first]
        for i in 0..<count {
            out.append(try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "\(prefix)\(i)")], registeredAt: t0),
                                                      idempotencyKey: nil, requestHash: "\(prefix.lowercased())\(i)", now: t0).record.id)
        }
        return out
    }

    /// A hand-made history whose figures are worked out here.
    @Test(arguments: Backend.allCases)
    func handMadeHistory(_ backend: Backend) async throws {
        try await withStore(backend) { store, a in
            let b = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "B")], registeredAt: at("2026-03-02T09:00:00+08:00")),
                                                   idempotencyKey: nil, requestHash: "b", now: at("2026-03-02T09:00:00+08:00")).record.id
            let c = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "C")], registeredAt: at("2026-03-05T09:00:00+08:00")),
                                                   idempotencyKey: nil, requestHash: "c", now: at("2026-03-05T09:00:00+08:00")).record.id
            // February (previous period): a buys. March: a twice (one on the app), b once (300.00, silver at once), c once on 03-31 23:30 local.
            try await buy(store, a, "a0", 5_000, at("2026-02-10T12:00:00+08:00"))
            try await buy(store, a, "a1", 10_000, at("2026-03-03T12:00:00+08:00"))
            try await buy(store, a, "a2", 20_000, at("2026-03-04T12:00:00+08:00"), channel: "app")
            try await buy(store, b, "b1", 120_000, at("2026-03-10T12:00:00+08:00"))
            try await buy(store, c, "c1", 7_000, at("2026-03-31T23:30:00+08:00"))
            // April 1 00:30 local is still March 31 in UTC: it counts in April.
            try await buy(store, c, "c2", 3_000, at("2026-04-01T00:30:00+08:00"))
            let k = try await store.kpis(program: "shop", from: day("2026-03-01"), until: day("2026-04-01"), split: .channel, now: at("2026-04-02T00:00:00+08:00"))
            #expect(k.members == 3 && k.newMembers == 3) // a registered at t0 = 03-01 10:00, inside March too
            #expect(k.total.activeMembers == 3 && k.total.repeatBuyers == 1 && k.total.repurchaseRatePpm == 333_333)
            #expect(k.total.orders == 4 && k.total.revenueMinor == 157_000 && k.total.averageOrderMinor == 39_250 && k.total.ordersPerActiveMilli == 1333)
            // February's buyer (a) bought again in March; the previous period is the 31 days before.
            #expect(k.previousBuyers == 1 && k.returningBuyers == 1 && k.returnRatePpm == 1_000_000)
            #expect(k.upgradedMembers == 1) // b: basic → silver
            #expect(k.groups?.map(\.key) == ["app", "store"])
            #expect(k.groups?.first { $0.key == "app" }?.orders == 1)
            #expect(k.groups?.first { $0.key == "store" }?.activeMembers == 3)
            // Near the next tier now: nobody (a has 350 of silver's 1,000; b 1,200 of gold's 5,000; c 100).
            #expect(k.funnel.map(\.step) == ["registered", "active", "nearNextTier", "upgraded", "claimedBenefit", "repurchased"])
            #expect(k.funnel.map(\.members) == [3, 3, 0, 1, 0, 1])
            let co = try await store.cohorts(program: "shop", from: day("2026-02-01"), until: day("2026-05-01"), months: 2)
            #expect(co.cohorts.map(\.month) == ["2026-02", "2026-03"])
            #expect(co.cohorts[0].members == 1 && co.cohorts[0].buyers == [1, 1, 0] && co.cohorts[0].revenueMinor == [5_000, 30_000, 0])
            #expect(co.cohorts[1].members == 2 && co.cohorts[1].buyers == [2, 1, 0] && co.cohorts[1].retentionPpm == [1_000_000, 500_000, 0])
        }
    }

    /// Refunds are taken off revenue on the refund's local day, under the refunded order's
    /// channel: a partial refund, a whole one of an order from an earlier month, a refund that
    /// arrived before its order, and one that a late order's replay applies; none counts twice.
    @Test(arguments: Backend.allCases)
    func netRevenueTakesRefundsOff(_ backend: Backend) async throws {
        try await withStore(backend) { store, a in
            func refund(_ m: MemberID, _ order: String, _ lines: [RefundLine]?, _ t: Timestamp, key: String) async throws -> EventOutcome {
                try await store.record(program: "shop", member: m, occurredAt: t, body: .orderRefunded(OrderRefunded(orderId: order, lines: lines)),
                                       idempotencyKey: key, requestHash: key, now: t).event.outcome
            }
            try await buy(store, a, "f1", 8_000, at("2026-02-20T12:00:00+08:00"))
            _ = try await store.record(program: "shop", member: a, occurredAt: at("2026-03-03T12:00:00+08:00"),
                                       body: .orderPaid(OrderPaid(orderId: "m1", lines: [OrderLine(sku: "s", quantity: 4, amountMinor: 10_000)], channel: "app")),
                                       idempotencyKey: "m1", requestHash: "m1", now: at("2026-03-03T12:00:00+08:00"))
            // March: one unit of m1 (2,500), all of February's f1 (8,000, booked in March), and the
            // same refund sent again (answered from its key, not booked again).
            #expect(try await refund(a, "m1", [RefundLine(line: 1, quantity: 1)], at("2026-03-05T12:00:00+08:00"), key: "r1").refundedMinor == 2_500)
            #expect(try await refund(a, "f1", nil, at("2026-03-06T12:00:00+08:00"), key: "r2").refundedMinor == 8_000)
            #expect(try await refund(a, "m1", [RefundLine(line: 1, quantity: 1)], at("2026-03-05T12:00:00+08:00"), key: "r1").refundedMinor == 2_500)
            // A refund before its order: booked when the order arrives (03-08), with the order's 1,200.
            #expect(try await refund(a, "w1", nil, at("2026-03-07T12:00:00+08:00"), key: "r3").status == .deferred)
            try await buy(store, a, "w1", 1_200, at("2026-03-08T12:00:00+08:00"))
            // A late order (03-09) refunded on 03-10, recorded before it: the late order's replay applies it (booked on 03-09).
            #expect(try await refund(a, "l1", nil, at("2026-03-10T12:00:00+08:00"), key: "r4").status == .deferred)
            try await buy(store, a, "x1", 500, at("2026-03-12T12:00:00+08:00"))
            try await buy(store, a, "l1", 900, at("2026-03-09T12:00:00+08:00"))
            let k = try await store.kpis(program: "shop", from: day("2026-03-01"), until: day("2026-04-01"), split: .channel, now: at("2026-04-02T00:00:00+08:00"))
            #expect(k.total.orders == 4 && k.total.revenueMinor == 10_000 + 1_200 + 500 + 900)
            #expect(k.total.refundedMinor == 2_500 + 8_000 + 1_200 + 900)
            #expect(k.total.netRevenueMinor == k.total.revenueMinor - k.total.refundedMinor)
            #expect(k.groups?.first { $0.key == "app" }?.refundedMinor == 2_500)
            let storeRefunds = k.groups?.first { $0.key == "store" }?.refundedMinor
            let expected: Int64 = 8_000 + 1_200 + 900
            #expect(storeRefunds == expected)
            let feb = try await store.kpis(program: "shop", from: day("2026-02-01"), until: day("2026-03-01"), split: nil, now: at("2026-04-02T00:00:00+08:00"))
            #expect(feb.total.revenueMinor == 8_000 && feb.total.refundedMinor == 0)
            #expect(try await store.member(program: "shop", id: a, now: at("2026-04-02T00:00:00+08:00")).standing.balance == 75 + 5)   // m1's 100 less a quarter, and x1's 5
        }
    }

    /// The KPI days kept in memory (built on the first KPI request, then kept by every commit)
    /// give exactly what the SQL aggregates give, between and after writes of orders, refunds,
    /// refunds that wait for their order and late orders, for every range and split.
    @Test(arguments: Backend.allCases)
    func daysInMemoryAgreeWithTheAggregates(_ backend: Backend) async throws {
        try await withStore(backend) { store, first in
            var rng = SplitMix(seed: 77)
            let members = try await members(store, first, 7, cards: "D")
            let clock = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
            let base = clock.date(t0).dayNumber
            func compare(_ step: Int) async throws {
                for (from, until) in [(base, base + 30), (base + 10, base + 17), (base + 25, base + 60), (base, base + 1)] {
                    for split in [nil, KPISplit.tier, .channel, .store] {
                        let asOf = t0.adding(days: 90)
                        let memory = try await store.kpis(program: "shop", from: CivilDate(dayNumber: from), until: CivilDate(dayNumber: until), split: split, now: asOf)
                        let sql = try await store.kpis(program: "shop", from: CivilDate(dayNumber: from), until: CivilDate(dayNumber: until), split: split, now: asOf, inMemory: false)
                        #expect(memory == sql, "step \(step), days \(from - base)..<\(until - base), split \(split?.rawValue ?? "none")")
                    }
                }
            }
            var orders: [(MemberID, String)] = []
            for i in 0..<90 {
                let m = members[Int(rng.next() % UInt64(members.count))]
                let at = t0.adding(seconds: Int64(rng.next() % (50 * 86_400)))
                switch rng.next() % 6 {
                case 0 where !orders.isEmpty:
                    let (owner, order) = orders[Int(rng.next() % UInt64(orders.count))]
                    _ = try? await store.record(program: "shop", member: owner, occurredAt: at.adding(days: 1), body: .orderRefunded(OrderRefunded(orderId: order)),
                                                idempotencyKey: "rf\(i)", requestHash: "rf\(i)", now: at.adding(days: 1))
                case 1:
                    // A refund before its order, then the order.
                    _ = try await store.record(program: "shop", member: m, occurredAt: at, body: .orderRefunded(OrderRefunded(orderId: "w\(i)")),
                                               idempotencyKey: "rw\(i)", requestHash: "rw\(i)", now: at)
                    _ = try await store.record(program: "shop", member: m, occurredAt: at.adding(seconds: 60),
                                               body: .orderPaid(OrderPaid(orderId: "w\(i)", lines: [OrderLine(sku: "s", amountMinor: 700)], channel: "app", store: "s2")),
                                               idempotencyKey: "w\(i)", requestHash: "w\(i)", now: at.adding(seconds: 60))
                default:
                    let amount = Int64(100 + rng.next() % 40_000)
                    _ = try await store.record(program: "shop", member: m, occurredAt: at,
                                               body: .orderPaid(OrderPaid(orderId: "o\(i)", lines: [OrderLine(sku: "s", amountMinor: amount)],
                                                                          channel: ["app", "store"][Int(rng.next() % 2)], store: ["s1", "s2", nil][Int(rng.next() % 3)])),
                                               idempotencyKey: "o\(i)", requestHash: "o\(i)", now: at)
                    orders.append((m, "o\(i)"))
                }
                if i % 30 == 29 { try await compare(i) }
            }
            // SQLite keeps the days in memory from the first request on (PostgreSQL aggregates by SQL).
            #expect((store.kpiDays.get("shop") != nil) == (backend != .postgres))
        }
    }

    /// The days are built from a snapshot while writes go on (SQLite file): what commits between
    /// the snapshot and the end of the build is applied to them once, and the kept figures are
    /// the tables' figures.
    @Test func keptDaysBuiltWhileWritesGoOnMissNothing() async throws {
        try await withStore(.sqlite) { store, first in
            guard let file = (store.db as? NotifyingDatabase)?.inner as? SQLiteDatabase else { Issue.record("not a SQLite file"); return }
            let others = try await members(store, first, 3, cards: "S")
            let from = day("2026-03-01"), until = day("2026-04-01"), asOf = at("2026-05-01T00:00:00+08:00")
            for (i, m) in others.enumerated() { try await buy(store, m, "a\(i)", 10_000 + Int64(i), at("2026-03-0\(i + 2)T12:00:00+08:00")) }
            // The build's start, as `keptKPIs` makes it: between commits, the snapshot and the pending deltas.
            let (start, snapshot) = try await file.exclusive { _ in (store.kpiDays.beginBuild("shop"), try file.snapshot()!) }
            // Written after the snapshot: new orders, one for a new member, one on a new day, and a refund.
            try await buy(store, first, "b1", 20_000, at("2026-03-02T13:00:00+08:00"))
            try await buy(store, others[1], "b2", 30_000, at("2026-03-20T12:00:00+08:00"), channel: "app")
            _ = try await store.record(program: "shop", member: others[0], occurredAt: at("2026-03-21T12:00:00+08:00"), body: .orderRefunded(OrderRefunded(orderId: "a0")),
                                       idempotencyKey: "r1", requestHash: "h", now: at("2026-03-21T12:00:00+08:00"))
            let built = try await snapshot.read { try Store.readKPIDays($0, program: "shop", logger: store.logger) }
            let seen = built.figures(from: from.dayNumber, until: until.dayNumber, split: nil).total
            #expect(seen.orders == 4 && seen.refundedMinor == 0, "the snapshot holds only what was committed before it: \(seen)")
            let kept = store.kpiDays.finish(start, built)
            let total = kept.figures(from: from.dayNumber, until: until.dayNumber, split: nil).total
            #expect(total.orders == 6 && total.refundedMinor == 10_000 && total.activeMembers == 4)
            for split in [nil, KPISplit.tier, .channel, .store] {
                let memory = try await store.kpis(program: "shop", from: from, until: until, split: split, now: asOf)
                let sql = try await store.kpis(program: "shop", from: from, until: until, split: split, now: asOf, inMemory: false)
                #expect(memory == sql, "split \(split?.rawValue ?? "none")")
            }
            // Requests that come while writes go on share one build and agree with the tables.
            store.kpiDays.checkOutsideWrites(-1)
            async let writes: Void = {
                for i in 0..<20 { try await buy(store, others[i % 4], "c\(i)", 1_000 + Int64(i), at("2026-03-1\(i % 10)T12:00:00+08:00")) }
            }()
            async let reads = [store.kpis(program: "shop", from: from, until: until, split: .channel, now: asOf),
                               store.kpis(program: "shop", from: from, until: until, split: nil, now: asOf)]
            _ = try await (writes, reads)
            #expect(try await store.kpis(program: "shop", from: from, until: until, split: .channel, now: asOf)
                    == store.kpis(program: "shop", from: from, until: until, split: .channel, now: asOf, inMemory: false))

            // Another process writes while a build runs: that build is not kept (its snapshot
            // predates the outside write) but still carries this process's writes; the request
            // that sees the outside write builds again and sees everything.
            let (late, lateSnapshot) = try await file.exclusive { _ in (store.kpiDays.beginBuild("shop"), try file.snapshot()!) }
            try await buy(store, first, "d1", 4_000, at("2026-03-22T12:00:00+08:00"))
            let other = Store(db: try SQLiteDatabase(path: file.path))
            try await buy(other, others[2], "d2", 6_000, at("2026-03-23T12:00:00+08:00"))
            try await other.close()
            let fresh = try await store.kpis(program: "shop", from: from, until: until, split: nil, now: asOf)
            #expect(fresh == (try await store.kpis(program: "shop", from: from, until: until, split: nil, now: asOf, inMemory: false)))
            let lateDays = store.kpiDays.finish(late, try await lateSnapshot.read { try Store.readKPIDays($0, program: "shop", logger: store.logger) })
            let lateTotal = lateDays.figures(from: from.dayNumber, until: until.dayNumber, split: nil).total
            #expect(lateTotal.orders == fresh.total.orders - 1 && lateTotal.revenueMinor == fresh.total.revenueMinor - 6_000, "the late build has d1, not d2")
            #expect(try await store.kpis(program: "shop", from: from, until: until, split: nil, now: asOf) == fresh, "the late build was not kept")
        }
    }

    /// What is kept in memory follows writes it did not see commit: another process writing the
    /// same SQLite file (a CLI import beside the server), and a program version that counts from
    /// the past (its thresholds change a past period's near-next-tier count).
    @Test(arguments: Backend.allCases)
    func keptFiguresFollowOutsideWritesAndPastVersions(_ backend: Backend) async throws {
        try await withStore(backend) { store, first in
            let from = CivilDate(string: "2026-03-01")!, until = CivilDate(string: "2026-04-01")!, asOf = at("2026-05-01T00:00:00+08:00")
            func same(_ why: String) async throws {
                let memory = try await store.kpis(program: "shop", from: from, until: until, split: .channel, now: asOf)
                let sql = try await store.kpis(program: "shop", from: from, until: until, split: .channel, now: asOf, inMemory: false)
                #expect(memory == sql, "\(why)")
            }
            try await buy(store, first, "k1", 90_000, at("2026-03-10T12:00:00+08:00"))
            try await same("first request")
            // Gold needs 5,000 growth; the member has 900 + 3,300 = 4,200, near gold (within 20%).
            try await buy(store, first, "k2", 330_000, at("2026-03-20T12:00:00+08:00"))
            try await same("after an order in the period")
            #expect(try await store.kpis(program: "shop", from: from, until: until, split: nil, now: asOf).funnel.first { $0.step == "nearNextTier" }?.members == 1)
            // A version from 03-15 puts gold at 10,000: the member is no longer near it.
            var higher = testProgram()
            higher.tiers[2].threshold = 10_000
            _ = try await store.applyProgram(higher, effectiveFrom: at("2026-03-15T00:00:00+08:00"), now: asOf)
            #expect(try await store.kpis(program: "shop", from: from, until: until, split: nil, now: asOf).funnel.first { $0.step == "nearNextTier" }?.members == 0)
            try await same("after a version effective in the past")
            guard backend == .sqlite, let file = (store.db as? NotifyingDatabase)?.inner as? SQLiteDatabase else { return }
            // Another process: its own connection on the same file.
            let other = Store(db: try SQLiteDatabase(path: file.path))
            try await buy(other, first, "k3", 12_000, at("2026-03-25T12:00:00+08:00"))
            try await other.close()
            try await same("after another process wrote")
            let k = try await store.kpis(program: "shop", from: from, until: until, split: nil, now: asOf)
            #expect(k.total.orders == 3 && k.total.revenueMinor == 432_000)
        }
    }

    /// The funnel's "near the next tier" for a past period is counted at the period's end, from
    /// the tier and growth history, not from the members as they are now.
    @Test(arguments: Backend.allCases)
    func nearTheNextTierAtAPeriodsEnd(_ backend: Backend) async throws {
        try await withStore(backend) { store, a in
            let b = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "B")], registeredAt: at("2026-03-02T09:00:00+08:00")),
                                                   idempotencyKey: nil, requestHash: "b", now: at("2026-03-02T09:00:00+08:00")).record.id
            // a: 850 growth by the end of March (silver at 1,000: within 20%), silver in April.
            try await buy(store, a, "a1", 85_000, at("2026-03-10T12:00:00+08:00"))
            try await buy(store, a, "a2", 20_000, at("2026-04-05T12:00:00+08:00"))
            // b: 4,500 in March (silver; gold at 5,000: within 20%); it leaves the 90-day window in June.
            try await buy(store, b, "b1", 450_000, at("2026-03-15T12:00:00+08:00"))
            // c registers in April: not in March's count.
            let c = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "C")], registeredAt: at("2026-04-10T09:00:00+08:00")),
                                                   idempotencyKey: nil, requestHash: "c", now: at("2026-04-10T09:00:00+08:00")).record.id
            try await buy(store, c, "c1", 90_000, at("2026-04-11T12:00:00+08:00"))
            let now = at("2026-06-20T12:00:00+08:00")
            _ = try await store.runJobs(asOf: now, now: now)
            func near(_ from: String, _ until: String) async throws -> Int64? {
                try await store.kpis(program: "shop", from: day(from), until: day(until), split: nil, now: now).funnel.first { $0.step == "nearNextTier" }?.members
            }
            #expect(try await near("2026-03-01", "2026-04-01") == 2)
            // At the end of February nobody had bought.
            #expect(try await near("2026-02-01", "2026-03-01") == 0)
            // At the end of April: a is silver with 1,050 (gold far), b silver with 4,500 (near gold), c 900 (near silver).
            #expect(try await near("2026-04-01", "2026-05-01") == 2)
            // The current period counts the members as they are now: a has 200 in the window (a1 left it
            // on 06-08), b none, c 900 (near silver, if still basic); whatever their tiers, it is what the facts say.
            let facts = try await store.memberFacts(program: "shop", now: now).0.nearNextTier(testProgram().tiers)
            #expect(try await near("2026-06-01", "2026-07-01") == Int64(facts))
        }
    }

    /// Generated histories: the aggregate's figures equal a direct recomputation from the orders.
    @Test(arguments: Backend.allCases)
    func generatedHistoriesAgreeWithARecomputation(_ backend: Backend) async throws {
        try await withStore(backend) { store, first in
            var rng = SplitMix(seed: 31)
            let members = try await members(store, first, 9, cards: "K")
            let clock = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
            var log: [(MemberID, Int64, Int64, String)] = [] // member, local day, amount, channel
            for i in 0..<120 {
                let m = members[Int(rng.next() % 10)]
                let at = t0.adding(seconds: Int64(rng.next() % (60 * 86_400)))
                let amount = Int64(100 + rng.next() % 30_000), channel = ["app", "store"][Int(rng.next() % 2)]
                try await buy(store, m, "g\(i)", amount, at, channel: channel)
                log.append((m, clock.dayNumber(at), amount, channel))
            }
            let from = clock.date(t0).dayNumber + 20, until = from + 25
            let k = try await store.kpis(program: "shop", from: CivilDate(dayNumber: from), until: CivilDate(dayNumber: until), split: .channel, now: t0.adding(days: 90))
            let inside = log.filter { $0.1 >= from && $0.1 < until }, before = log.filter { $0.1 >= from - 25 && $0.1 < from }
            let counts = Dictionary(grouping: inside, by: \.0).mapValues(\.count)
            #expect(k.total.activeMembers == Int64(counts.count))
            #expect(k.total.repeatBuyers == Int64(counts.values.filter { $0 >= 2 }.count))
            #expect(k.total.orders == Int64(inside.count) && k.total.revenueMinor == inside.reduce(0) { $0 + $1.2 })
            let prev = Set(before.map(\.0))
            #expect(k.previousBuyers == Int64(prev.count) && k.returningBuyers == Int64(prev.intersection(counts.keys).count))
            for g in k.groups ?? [] {
                let mine = inside.filter { $0.3 == g.key }
                #expect(g.orders == Int64(mine.count) && g.activeMembers == Int64(Set(mine.map(\.0)).count))
            }
        }
    }
}

@Suite struct PortraitStoreTests {
    @Test(arguments: Backend.allCases)
    func portraitSumsUpTheMember(_ backend: Backend) async throws {
        try await withStore(backend) { store, m in
            let orders: [(String, [OrderLine], Int64, String, String, Timestamp)] = [
                ("p1", [OrderLine(sku: "a", category: "shoes", amountMinor: 30_000), OrderLine(sku: "b", category: "bags", amountMinor: 10_000)], 4_000, "app", "s1", t0),
                ("p2", [OrderLine(sku: "c", category: "shoes", amountMinor: 5_000)], 0, "app", "s2", t0.adding(days: 40)),
                ("p3", [OrderLine(sku: "d", category: "beauty", amountMinor: 2_000)], 0, "store", "s2", t0.adding(days: 41)),
            ]
            for (id, lines, discount, ch, st, at) in orders {
                _ = try await store.record(program: "shop", member: m, occurredAt: at, body: .orderPaid(OrderPaid(orderId: id, lines: lines, discountMinor: discount, channel: ch, store: st)),
                                           idempotencyKey: id, requestHash: "h", now: at)
            }
            _ = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 42), body: .orderRefunded(OrderRefunded(orderId: "p3")), idempotencyKey: "r", requestHash: "h", now: t0.adding(days: 42))
            let p = try await store.portrait(program: "shop", member: m, now: t0.adding(days: 43))
            #expect(p.orders.count == 3 && p.orders.totalMinor == 43_000 && p.orders.averageMinor == 14_333 && p.orders.refunded == 1)
            #expect(p.orders.first == t0 && p.orders.last == t0.adding(days: 41))
            #expect(p.orders.byMonth.map(\.month) == ["2026-03", "2026-04"])
            // The order discount is shared 3:1 between the lines: shoes 27,000 + 5,000, bags 9,000.
            #expect(p.categoriesBySpend.map(\.key) == ["shoes", "bags", "beauty"] && p.categoriesBySpend[0].spentMinor == 32_000)
            #expect(p.preferredChannel == "app" && p.preferredStore == "s2")
            #expect(p.timeline.first?.kind == .orderRefunded && p.member.id == m)
        }
    }
}

@Suite struct RFMStoreTests {
    /// Five buyers with distinct recency, frequency and spend get quintiles 1–5; lifecycle stages
    /// follow the thresholds (30/60/120/365 days) at their edges.
    @Test(arguments: Backend.allCases)
    func quintilesAndStages(_ backend: Backend) async throws {
        var p = testProgram()
        p.tags = [TagDefinition(id: "high_value", name: LocalizedText(zh: "高价值会员", en: "Top 20% by spend"), category: .value, rule: "member.rfm.topPercent <= 20"),
                  TagDefinition(id: "recalled", name: LocalizedText(zh: "召回", en: "Recalled"), category: .lifecycle, rule: "member.lifecycle == 'recalled'")]
        try await withStore(backend, program: p) { store, first in
            let asOf = Timestamp(iso8601: "2027-03-01T12:00:00+08:00")!
            func member(_ i: Int) async throws -> MemberID {
                try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "R\(i)")], registeredAt: t0),
                                               idempotencyKey: nil, requestHash: "r\(i)", now: t0).record.id
            }
            // (days before asOf of each order, amount): recency 0/59/60/119/120 days, 5/4/3/2/1 orders.
            let plans: [[(Int, Int64)]] = [
                [(200, 1000), (150, 1000), (100, 1000), (50, 1000), (0, 1000)],   // active (recent, frequent), spend 5,000
                [(300, 2000), (200, 2000), (100, 2000), (59, 2000)],               // active, at the edge of at_risk, spend 8,000
                [(250, 10_000), (200, 10_000), (60, 10_000)],                      // at_risk from day 60, spend 30,000
                [(300, 20_000), (119, 20_000)],                                    // at_risk (119 < 120), spend 40,000
                [(120, 90_000)],                                                   // silent from day 120, spend 90,000
            ]
            var ids: [MemberID] = []
            for (i, orders) in plans.enumerated() {
                let m = try await member(i)
                ids.append(m)
                for (j, (daysBefore, amount)) in orders.enumerated() {
                    let at = asOf.adding(days: -daysBefore)
                    _ = try await store.record(program: "shop", member: m, occurredAt: at, body: order("r\(i)-\(j)", amount), idempotencyKey: "r\(i)-\(j)", requestHash: "h", now: at)
                }
            }
            let lost = try await member(9) // never bought, registered long before
            let recalled = try await member(10)
            for (j, d) in [400, 10].enumerated() {
                let at = asOf.adding(days: -d)
                _ = try await store.record(program: "shop", member: recalled, occurredAt: at, body: order("c\(j)", 500), idempotencyKey: "c\(j)", requestHash: "h", now: at)
            }
            try await store.computeRFM(program: "shop", asOf: asOf)
            let scores = try await ids.asyncMap { try await store.memberRFM(program: "shop", member: $0)! }
            #expect(scores.map(\.lifecycle) == [.active, .active, .atRisk, .atRisk, .silent])
            #expect(scores.map(\.recencyDays) == [0, 59, 60, 119, 120])
            // Six buyers in the last 365 days (the recalled member, 500 spent 10 days ago, is the sixth):
            // score = 1 + rank × 5 / 6 by ascending value, so spends 500, 5,000 … 90,000 score 1, 1, 2, 3, 4, 5.
            #expect(scores.map(\.m) == [1, 2, 3, 4, 5])
            #expect(scores.map(\.r) == [5, 3, 2, 1, 1] && scores[0].f == 5)
            #expect(try await store.memberRFM(program: "shop", member: lost)?.lifecycle == .lost)
            #expect(try await store.memberRFM(program: "shop", member: recalled)?.lifecycle == .recalled)
            #expect(try await store.memberRFM(program: "shop", member: first)?.lifecycle == .lost)
            let report = try await store.rfmReport(program: "shop")
            #expect(report.scored == 6 && report.lifecycle["at_risk"] == 2)

            // The scores are in the members' states, and the rule tags that read them follow at
            // the scoring run: the top 20% of six buyers by spend (ranks 1 + 100 × t / 6: 1, 17, 34 …).
            #expect(scores.map(\.topPercent) == [67, 51, 34, 17, 1])
            func tagged(_ tag: String) async throws -> [MemberID] {
                try await store.db.query("SELECT member_id FROM member_tags WHERE program_id = 'shop' AND tag_id = ? ORDER BY member_id", [.text(tag)])
                    .map { MemberID(try $0.int("member_id")) }
            }
            #expect(try await tagged("high_value") == [ids[3], ids[4]].sorted { $0.rawValue < $1.rawValue })
            #expect(try await tagged("recalled") == [recalled])
            let state = try await store.loadMember(program: "shop", id: ids[4]).state
            #expect(state.scores == MemberScores(r: 1, f: 1, m: 5, topPercent: 1, lifecycle: .silent))
            let change = try await store.db.query("SELECT * FROM tag_changes WHERE program_id = 'shop' AND member_id = ? AND tag_id = 'high_value'", [.int(ids[4].rawValue)])
            let cause = try change.first?.string("cause"), changedAt = try change.first?.int("at")
            #expect(change.count == 1 && cause == "rule" && change.first?["event_no"] == .null && changedAt == asOf.seconds)
            // Segments read the same scores from the same states.
            let top = try segmentDraft(#"{"condition": "member.rfm.topPercent <= 20"}"#, requireId: false)
            #expect(try await store.previewSegment(program: "shop", top, now: asOf).composition.members == 2)

            // A bigger spender pushes the 40,000 member out of the top 20% at the next run; the
            // run after that, with nothing changed, writes nothing.
            let later = asOf.adding(days: 1)
            _ = try await store.record(program: "shop", member: lost, occurredAt: later, body: order("big", 100_000), idempotencyKey: "big", requestHash: "h", now: later)
            try await store.computeRFM(program: "shop", asOf: later)
            #expect(try await tagged("high_value") == [lost, ids[4]].sorted { $0.rawValue < $1.rawValue })
            #expect(try await store.previewSegment(program: "shop", top, now: later).composition.members == 2)
            let removed = try await store.db.query("SELECT added FROM tag_changes WHERE program_id = 'shop' AND member_id = ? AND tag_id = 'high_value' ORDER BY change_no",
                                                   [.int(ids[3].rawValue)]).map { try $0.int("added") }
            #expect(removed == [1, 0])
            let versions = try await store.db.query("SELECT SUM(state_version) AS v FROM members WHERE program_id = 'shop'", []).first?.int("v")
            let again = try await store.syncScores(program: "shop", asOf: later) { _, old in old }
            #expect(again.changed == 0 && again.members == 8)
            #expect(try await store.db.query("SELECT SUM(state_version) AS v FROM members WHERE program_id = 'shop'", []).first?.int("v") == versions)
        }
    }
}

extension RFMStoreTests {
    /// The program's own lifecycle thresholds decide the stages.
    @Test(arguments: Backend.allCases)
    func stagesFollowTheProgramsThresholds(_ backend: Backend) async throws {
        var p = testProgram()
        p.lifecycle = LifecycleThresholds(newDays: 7, atRiskDays: 30, silentDays: 90, lostDays: 180)
        try await withStore(backend, program: p) { store, first in
            let asOf = Timestamp(iso8601: "2027-03-01T12:00:00+08:00")!
            for (i, daysBefore) in [10, 45, 100, 200].enumerated() {
                let at = asOf.adding(days: -daysBefore)
                _ = try await store.record(program: "shop", member: first, occurredAt: at, body: order("lc\(i)", 1_000), idempotencyKey: "lc\(i)", requestHash: "h", now: at)
            }
            // The last order was 10 days before: active (with the defaults it would be too), then
            // as the days pass without an order: at risk from 30, silent from 90, lost from 180.
            var stages: [LifecycleStage] = []
            for later in [0, 35, 95, 185] {
                try await store.computeRFM(program: "shop", asOf: asOf.adding(days: later))
                stages.append(try await store.memberRFM(program: "shop", member: first)!.lifecycle)
            }
            #expect(stages == [.active, .atRisk, .silent, .lost])
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ f: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for x in self { out.append(try await f(x)) }
        return out
    }
}

@Suite struct ChurnStoreTests {
    /// The first 400 customers of the CDNOW sample as a program's orders: the models fit, every
    /// buyer gets P(alive) and CLV, and the at-risk flag follows the program's threshold.
    @Test(arguments: Backend.allCases)
    func churnWarningFromTheProgramsOrders(_ backend: Backend) async throws {
        var p = testProgram()
        p.churn = ChurnPolicy(atRiskBelowPermille: 400, horizonWeeks: 39)
        p.tags = [TagDefinition(id: "churn_risk", name: LocalizedText(zh: "流失预警", en: "Churn risk"), category: .lifecycle, rule: "member.churn.atRisk")]
        try await withStore(backend, program: p) { store, _ in
            let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("PatronCoreTests/Fixtures/cdnow/CDNOW_sample.txt")
            let clock = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
            var orders: [ImportOrder] = []
            for (i, line) in try String(contentsOf: file, encoding: .utf8).split(whereSeparator: \.isNewline).enumerated() {
                let f = line.split(whereSeparator: { $0 == " " || $0 == "\r" })
                guard f.count == 5, let customer = Int(f[1]), customer <= 400, let ymd = Int(f[2]), let dollars = Decimal(string: String(f[4])) else { continue }
                let day = CivilDate(year: ymd / 10000, month: ymd / 100 % 100, day: ymd % 100)
                orders.append(ImportOrder(line: i + 1, who: .identity(Identity(kind: .card, value: "C\(customer)")), occurredAt: clock.startOfDay(day).adding(seconds: 43_200 + Int64(i)),
                                          order: OrderPaid(orderId: "cd\(i)", lines: [OrderLine(sku: "cd", amountMinor: NSDecimalNumber(decimal: dollars * 100).int64Value)])))
            }
            let asOf = clock.startOfDay(CivilDate(year: 1997, month: 10, day: 1)).adding(seconds: 3600)
            let imported = try await store.importOrders(program: "shop", orders.filter { $0.occurredAt < asOf }, registerMissing: true, now: asOf)
            #expect(imported.rejected.isEmpty, "\(imported.rejected.prefix(3))")
            #expect(imported.ordersImported > 400, "\(orders.count) orders read")
            let r = try await store.computeChurn(program: "shop", asOf: asOf)
            #expect(r.calibrationEnd == CivilDate(year: 1997, month: 9, day: 30))
            #expect(r.members == 400 && r.atRisk > 0 && r.atRisk < 400)
            #expect(r.atRiskBelowPpm == 400_000 && r.mostValuableAtRisk.allSatisfy { $0.atRisk && $0.pAlivePpm < 400_000 })
            #expect(r.mostValuableAtRisk.map(\.clvMinor) == r.mostValuableAtRisk.map(\.clvMinor).sorted(by: >))
            guard case .object(let models)? = r.models, case .object(let bg)? = models["bgnbd"], case .double(let a)? = bg["a"] else { Issue.record("no models"); return }
            #expect(a > 0)
            // A member who bought once, long ago, is less likely alive than one who bought often and lately.
            let all = try await store.db.query("SELECT member_id FROM member_churn WHERE program_id = 'shop'", []).count
            #expect(all == 400)
            // The fit is in the members' states (`member.churn`): the churn_risk rule tags exactly
            // the members flagged at risk, and segments see the same.
            let tagged = try await store.db.query("SELECT member_id FROM member_tags WHERE program_id = 'shop' AND tag_id = 'churn_risk' ORDER BY member_id", []).map { try $0.int("member_id") }
            let flagged = try await store.db.query("SELECT member_id FROM member_churn WHERE program_id = 'shop' AND at_risk = 1 ORDER BY member_id", []).map { try $0.int("member_id") }
            #expect(tagged == flagged && tagged.count == Int(r.atRisk))
            let row = try await store.db.query("SELECT * FROM member_churn WHERE program_id = 'shop' ORDER BY member_id LIMIT 1", [])[0]
            let s = try await store.loadMember(program: "shop", id: MemberID(try row.int("member_id"))).state.scores
            let ppm = try row.int("p_alive_ppm")
            let clv = try row.int("clv_minor"), atRisk = try row.int("at_risk") == 1, purchases = try row.int("expected_purchases_milli")
            #expect(s.map { abs(Int64($0.pAlivePermille!) * 1000 - ppm) <= 500 } == true && s?.clvMinor == clv)
            #expect(s?.atRisk == atRisk && s?.expectedPurchasesMilli == purchases)
            let risky = try segmentDraft(#"{"condition": "member.churn.atRisk"}"#, requireId: false)
            #expect(try await store.previewSegment(program: "shop", risky, now: asOf).composition.members == Int(r.atRisk))
        }
    }
}
