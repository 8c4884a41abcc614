import Foundation
import PatronCore
@testable import PatronStore
import Testing

func benefitTestProgram() -> ProgramDefinition {
    let json = """
    {"key": "shop", "name": {"zh-CN": "商店", "en": "Shop"}, "currency": "CNY", "timeZone": "Asia/Shanghai",
     "tiers": [{"id": "basic", "name": "Basic", "threshold": 0},
               {"id": "silver", "name": "Silver", "threshold": 1000, "benefits": ["coupon"]},
               {"id": "gold", "name": "Gold", "threshold": 5000, "allowances": [{"benefit": "ship", "count": 2, "every": "month"}]}],
     "assessment": {"kind": "rolling", "windowDays": 90, "downgrade": "oneTier"},
     "earning": {"points": {"unitMinor": 100, "perUnit": 1}, "growth": {"unitMinor": 100, "perUnit": 1}}, "expiry": {"kind": "afterDays", "days": 30},
     "benefits": [
       {"id": "coupon", "name": {"zh-CN": "满100减20", "en": "20 off 100"}, "kind": "amountOff", "amountMinor": 2000, "minSpendMinor": 10000,
        "claim": {"days": 30}, "use": {"days": 7}, "stores": ["s1", "s2"]},
       {"id": "ship", "name": "Free shipping", "kind": "freeShipping", "autoClaim": true, "use": {"endOf": "month"}, "combinable": true}
     ]}
    """
    let doc = try! JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
    guard case .success(let p) = ProgramParser.parse(doc) else { fatalError("benefit test program invalid") }
    return p
}

@Suite struct BenefitStoreTests {
    /// Upgrade gift → wallet → claim → write-off → refusals → reversal → report, on every backend.
    @Test(arguments: Backend.allCases)
    func lifecycle(_ backend: Backend) async throws {
        try await withStore(backend, program: benefitTestProgram()) { store, m in
            let t = t0.adding(seconds: 60)
            _ = try await store.record(program: "shop", member: m, occurredAt: t, body: order("o1", 150_000), idempotencyKey: "k1", requestHash: "h", now: t)
            var w = try await store.wallet(program: "shop", member: m, status: nil, now: t)
            #expect(w.items.map(\.benefit) == ["coupon"])
            #expect(w.items[0].status == .claimable && w.items[0].cause == .upgrade && w.items[0].tier == "silver")
            #expect(w.items[0].claimBy == Timestamp(iso8601: "2026-04-01T00:00:00+08:00")) // through the 30th day after March 1
            let grant = w.items[0].grant
            // Claim gives the code.
            _ = try await store.record(program: "shop", member: m, occurredAt: t, body: .benefitClaimed(BenefitClaimed(grant: grant)), idempotencyKey: "k2", requestHash: "h", now: t)
            let claimed = try await store.grantView(program: "shop", member: m, grant: grant, now: t)
            let code = try #require(claimed.code)
            #expect(claimed.status == .claimed && code.count == 12)
            #expect(try await store.codeStatus(program: "shop", code: code.lowercased(), now: t).grant == grant)

            // Refusals name the reason and change nothing.
            func redeem(_ key: String, amount: Int64 = 20_000, store s: String? = "s1", code c: String? = nil) async throws -> RedemptionResult {
                try await store.redeem(program: "shop", RedemptionRequest(code: c ?? code, orderId: "pos-1", amountMinor: amount, store: s), idempotencyKey: key, requestHash: key, now: t)
            }
            await #expect(throws: StoreError.rule(.benefit(.belowMinimumSpend(minimum: 10_000, amount: 9_999)))) { try await redeem("r1", amount: 9_999) }
            await #expect(throws: StoreError.rule(.benefit(.storeNotAccepted(store: "s9", accepted: ["s1", "s2"])))) { try await redeem("r2", store: "s9") }
            await #expect(throws: StoreError.codeNotFound("nosuchcode")) { try await redeem("r3", code: "nosuchcode") }
            #expect(try await store.grantView(program: "shop", member: m, grant: grant, now: t).status == .claimed)

            let r = try await redeem("r4")
            #expect(r.discountMinor == 2000 && r.memberId == m && r.benefit == "coupon")
            // The same request again is the same answer; another write-off of the code is refused.
            #expect(try await redeem("r4") == r)
            await #expect(throws: StoreError.rule(.benefit(.alreadyUsed(grant: grant, at: t, orderId: "pos-1")))) { try await redeem("r5") }

            let back = try await store.reverseRedemption(program: "shop", code: code, reason: "order cancelled", idempotencyKey: "v1", requestHash: "v1", now: t.adding(seconds: 30))
            #expect(back.status == .claimed)

            // Gold: this month's free shipping at once, auto-claimed.
            _ = try await store.record(program: "shop", member: m, occurredAt: t.adding(seconds: 90), body: order("o2", 400_000), idempotencyKey: "k3", requestHash: "h", now: t.adding(seconds: 90))
            w = try await store.wallet(program: "shop", member: m, status: .claimed, now: t.adding(seconds: 90))
            #expect(w.items.filter { $0.benefit == "ship" }.count == 2)
            #expect(w.counts == ["claimed": 3])
            // Next month's come with the job run at local midnight.
            let april = Timestamp(iso8601: "2026-04-01T00:00:00+08:00")!
            _ = try await store.runJobs(asOf: april, now: april)
            w = try await store.wallet(program: "shop", member: m, status: nil, now: april)
            #expect(w.items.filter { $0.benefit == "ship" }.count == 4)
            #expect(w.counts["expired"] == 3) // March's shipping, and the coupon's 7 days ran out

            let report = try await store.benefitReport(program: "shop", from: t0.adding(days: -1), until: april.adding(seconds: 1), asOf: april)
            let coupon = try #require(report.benefits.first { $0.benefit == "coupon" })
            #expect(coupon.granted == 1 && coupon.claimed == 1 && coupon.used == 0 && coupon.expired == 1)
            #expect(coupon.claimRatePpm == 1_000_000 && coupon.useRatePpm == 0)
            let ship = try #require(report.byTier.first { $0.benefit == "ship" && $0.tier == "gold" })
            #expect(ship.granted == 4 && ship.claimed == 4 && ship.expired == 2)
        }
    }

    /// The report's orders and revenue of a benefit's users: the orders paid in the period by the
    /// members who used it in the period, each counted once per benefit the member used.
    @Test(arguments: Backend.allCases)
    func usersOrdersAreThePeriodsOrdersOfTheUsers(_ backend: Backend) async throws {
        try await withStore(backend, program: benefitTestProgram()) { store, m in
            let t = t0.adding(seconds: 60)
            func record(_ member: MemberID, _ at: Timestamp, _ body: EventBody, _ key: String) async throws -> RecordedEvent {
                try await store.record(program: "shop", member: member, occurredAt: at, body: body, idempotencyKey: key, requestHash: key, now: at).event
            }
            // m: silver at once (the coupon), a staff-granted free shipping; both used.
            _ = try await record(m, t, order("o1", 150_000), "k1")
            let coupon = try #require(try await store.wallet(program: "shop", member: m, status: nil, now: t).items.first { $0.benefit == "coupon" }?.grant)
            _ = try await record(m, t, .benefitClaimed(BenefitClaimed(grant: coupon)), "k2")
            let ship = try #require(try await record(m, t, .benefitGranted(BenefitGranted(benefit: "ship", reason: "test", staff: "ops")), "k3").outcome.grants?.first)
            for (i, grant) in [coupon, ship].enumerated() {
                let code = try #require(try await store.grantView(program: "shop", member: m, grant: grant, now: t).code)
                _ = try await store.redeem(program: "shop", RedemptionRequest(code: code, orderId: "pos-\(i)", amountMinor: 20_000, shippingMinor: 800, store: "s1"),
                                           idempotencyKey: "r\(i)", requestHash: "r\(i)", now: t)
            }
            _ = try await record(m, t.adding(days: 2), order("o2", 30_000), "k4")
            // After the period: not counted.
            _ = try await record(m, t.adding(days: 20), order("o3", 7_000), "k5")
            // Another member's order in the period, with no benefit used: not counted.
            let other = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .phone, value: "+86 138-0000-0002")], registeredAt: t0),
                                                       idempotencyKey: nil, requestHash: "m2", now: t0).record.id
            _ = try await record(other, t, order("o4", 90_000), "k6")

            let report = try await store.benefitReport(program: "shop", from: t0, until: t.adding(days: 10), asOf: t.adding(days: 10))
            for benefit in ["coupon", "ship"] {
                let row = try #require(report.benefits.first { $0.benefit == benefit })
                #expect(row.used == 1)
                #expect(row.usersOrders == 2 && row.usersRevenueMinor == 180_000, "\(benefit): \(row)")
            }
        }
    }

    /// 16 concurrent write-offs of one code: exactly one succeeds; the others are told it is used.
    @Test(arguments: Backend.allCases)
    func aCodeIsUsedOnce(_ backend: Backend) async throws {
        try await withStore(backend, program: benefitTestProgram()) { store, m in
            let t = t0.adding(seconds: 60)
            let granted = try await store.record(program: "shop", member: m, occurredAt: t, body: .benefitGranted(BenefitGranted(benefit: "coupon", reason: "test", staff: "ops")),
                                                 idempotencyKey: "g", requestHash: "h", now: t)
            let grant = try #require(granted.event.outcome.grants?.first)
            _ = try await store.record(program: "shop", member: m, occurredAt: t, body: .benefitClaimed(BenefitClaimed(grant: grant)), idempotencyKey: "c", requestHash: "h", now: t)
            let code = try #require(try await store.grantView(program: "shop", member: m, grant: grant, now: t).code)
            let results = await withTaskGroup(of: Result<RedemptionResult, any Error>.self) { group in
                for i in 0..<16 {
                    group.addTask {
                        do {
                            return .success(try await store.redeem(program: "shop", RedemptionRequest(code: code, orderId: "race-\(i)", amountMinor: 50_000, store: "s2"),
                                                                   idempotencyKey: "race-\(i)", requestHash: "race-\(i)", now: t.adding(seconds: 5)))
                        } catch { return .failure(error) }
                    }
                }
                var all: [Result<RedemptionResult, any Error>] = []
                for await r in group { all.append(r) }
                return all
            }
            #expect(results.count == 16)
            let wins = results.compactMap { try? $0.get() }
            #expect(wins.count == 1)
            for case .failure(let e) in results {
                guard case StoreError.rule(.benefit(.alreadyUsed(grant: grant, _, let order)))? = e as? StoreError else { Issue.record("\(e)"); continue }
                #expect(order == wins.first?.orderId)
            }
            let g = try await store.grantView(program: "shop", member: m, grant: grant, now: t.adding(seconds: 5))
            #expect(g.status == .used && g.orderId == wins.first?.orderId)
        }
    }
}

func mallTestProgram() -> ProgramDefinition {
    var p = benefitTestProgram()
    let json = """
    {"key": "x", "name": "x", "currency": "CNY", "timeZone": "Asia/Shanghai", "tiers": [{"id": "basic", "name": "Basic", "threshold": 0}],
     "assessment": {"kind": "lifetime"}, "earning": {"points": {"unitMinor": 100, "perUnit": 1}, "growth": {"unitMinor": 100, "perUnit": 1}},
     "benefits": [{"id": "coupon", "name": "c", "kind": "noMinimum", "amountMinor": 500}],
     "mall": [{"id": "tote", "name": "Tote", "kind": "goods", "pointsPrice": 800, "stock": 10},
              {"id": "c5", "name": "5 off", "kind": "benefit", "benefit": "coupon", "pointsPrice": 100}]}
    """
    let doc = try! JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
    guard case .success(let m) = ProgramParser.parse(doc) else { fatalError("mall test program invalid") }
    p.mall = m.mall
    return p
}

@Suite struct MallStoreTests {
    /// 32 members exchange the last 10 totes at once: exactly 10 get one, the stock ends at 0,
    /// and the 22 others keep every point.
    @Test(arguments: Backend.allCases)
    func stockNeverGoesBelowZero(_ backend: Backend) async throws {
        try await withStore(backend, program: mallTestProgram()) { store, _ in
            let t = t0.adding(seconds: 60)
            var members: [MemberID] = []
            for i in 0..<32 {
                let m = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "C-\(i)")], registeredAt: t0),
                                                       idempotencyKey: nil, requestHash: "r\(i)", now: t)
                _ = try await store.record(program: "shop", member: m.record.id, occurredAt: t, body: .pointsAdjusted(PointsAdjusted(points: 1000, reason: "seed", staff: "ops")),
                                           idempotencyKey: "seed-\(i)", requestHash: "h", now: t)
                members.append(m.record.id)
            }
            #expect(try await store.mallItems(program: "shop", now: t).first { $0.item.id == "tote" }?.available == 10)
            let results = await withTaskGroup(of: (MemberID, Result<RecordedEvent, any Error>).self) { group in
                for m in members {
                    group.addTask {
                        do {
                            let r = try await store.record(program: "shop", member: m, occurredAt: t.adding(seconds: 5), body: .mallExchanged(MallExchanged(item: "tote")),
                                                           idempotencyKey: "x-\(m)", requestHash: "h", now: t.adding(seconds: 5))
                            return (m, .success(r.event))
                        } catch { return (m, .failure(error)) }
                    }
                }
                var all: [(MemberID, Result<RecordedEvent, any Error>)] = []
                for await r in group { all.append(r) }
                return all
            }
            #expect(results.count == 32)
            let won = results.filter { if case .success = $0.1 { return true }; return false }.map(\.0)
            #expect(won.count == 10)
            for case (let m, .failure(let e)) in results {
                #expect(e as? StoreError == .outOfStock("tote"), "\(e)")
                #expect(try await store.member(program: "shop", id: m, now: t.adding(seconds: 5)).standing.balance == 1000)
            }
            for m in won { #expect(try await store.member(program: "shop", id: m, now: t.adding(seconds: 5)).standing.balance == 200) }
            let tote = try #require(try await store.mallItems(program: "shop", now: t).first { $0.item.id == "tote" })
            #expect(tote.available == 0 && tote.exchanged == 10)
            #expect(try await store.exchanges(program: "shop", status: .toShip, member: nil, limit: 200).count == 10)

            // Fulfilment: shipped with a tracking number, delivered; a cancelled one gives stock and points back.
            let a = won[0], b = won[1]
            let xa = try await store.exchanges(program: "shop", status: nil, member: a, limit: 10)[0].exchange
            await #expect(throws: StoreError.invalid([FieldError(path: "trackingNo", reason: "is required when goods are shipped")])) {
                _ = try await store.fulfil(program: "shop", member: a, exchange: xa, to: .shipped, trackingNo: nil, now: t.adding(seconds: 10))
            }
            _ = try await store.fulfil(program: "shop", member: a, exchange: xa, to: .shipped, trackingNo: "SF123", now: t.adding(seconds: 10))
            let done = try await store.fulfil(program: "shop", member: a, exchange: xa, to: .delivered, trackingNo: nil, now: t.adding(seconds: 20))
            #expect(done.status == .delivered && done.trackingNo == "SF123")
            await #expect(throws: StoreError.self) {
                _ = try await store.cancelExchange(program: "shop", member: a, exchange: xa, reason: "late", idempotencyKey: "ca", requestHash: "h", now: t.adding(seconds: 30))
            }
            let xb = try await store.exchanges(program: "shop", status: nil, member: b, limit: 10)[0].exchange
            let cancelled = try await store.cancelExchange(program: "shop", member: b, exchange: xb, reason: "no stock at the warehouse", idempotencyKey: "cb", requestHash: "h",
                                                           now: t.adding(seconds: 30))
            #expect(cancelled.status == .cancelled)
            #expect(try await store.member(program: "shop", id: b, now: t.adding(seconds: 30)).standing.balance == 1000)
            #expect(try await store.mallItems(program: "shop", now: t).first { $0.item.id == "tote" }?.available == 1)
            #expect(try await store.audit(program: "shop", member: b).isEmpty)

            let report = try await store.mallReport(program: "shop", from: t0, until: t.adding(seconds: 60), now: t.adding(seconds: 60))
            #expect(report.exchanges == 9 && report.cancelled == 1 && report.pointsSpent == 7200)
            #expect(report.items.first?.item == "tote" && report.items.first?.available == 1)
        }
    }

    /// Benefits and points about to lapse, per member and in bulk, page by page.
    @Test(arguments: Backend.allCases)
    func remindersListWhatLapses(_ backend: Backend) async throws {
        try await withStore(backend, program: benefitTestProgram()) { store, m in
            let t = t0.adding(seconds: 60)
            let granted = try await store.record(program: "shop", member: m, occurredAt: t, body: .benefitGranted(BenefitGranted(benefit: "coupon", count: 3, reason: "r", staff: "s")),
                                                 idempotencyKey: "g", requestHash: "h", now: t)
            let grants = try #require(granted.event.outcome.grants)
            // Claim window: 30 days from 03-01 ends 03-31 24:00 local.
            var page = try await store.reminders(program: "shop", kind: .claimExpiring, member: nil, days: 29, cursor: nil, limit: 2, now: t)
            #expect(page.items.isEmpty)
            page = try await store.reminders(program: "shop", kind: .claimExpiring, member: nil, days: 31, cursor: nil, limit: 2, now: t)
            #expect(page.items.count == 2 && page.nextCursor != nil)
            #expect(page.items[0].lastDay == CivilDate(year: 2026, month: 3, day: 31))
            let rest = try await store.reminders(program: "shop", kind: .claimExpiring, member: nil, days: 31, cursor: page.nextCursor, limit: 2, now: t)
            #expect(rest.items.count == 1 && rest.nextCursor == nil)
            #expect(Set((page.items + rest.items).compactMap(\.grant)) == Set(grants))
            _ = try await store.record(program: "shop", member: m, occurredAt: t, body: .benefitClaimed(BenefitClaimed(grant: grants[0])), idempotencyKey: "c", requestHash: "h", now: t)
            let use = try await store.reminders(program: "shop", kind: .useExpiring, member: m, days: 8, cursor: nil, limit: 10, now: t)
            #expect(use.items.map(\.grant) == [grants[0]])
            // Points: the test program's earning lapses after 30 days.
            _ = try await store.record(program: "shop", member: m, occurredAt: t, body: order("o1", 50_000), idempotencyKey: "o", requestHash: "h", now: t)
            let pts = try await store.reminders(program: "shop", kind: .pointsExpiring, member: m, days: 40, cursor: nil, limit: 10, now: t)
            #expect(pts.items.map(\.points) == [500])
        }
    }
}

@Suite struct BirthdayStoreTests {
    @Test(arguments: Backend.allCases)
    func registeringOrChangingTheBirthdayGivesTheGift(_ backend: Backend) async throws {
        var p = benefitTestProgram()
        p.birthday = BirthdayRule(benefit: "coupon", count: 1, when: .month, tiers: nil)
        try await withStore(backend, program: p) { store, m in
            // t0 is 2026-03-01: a March birthday set now gives this year's gift at once.
            let r = try await store.updateMember(program: "shop", id: m, UpdateMember(profile: MemberProfile(birthday: CivilDate(year: 1991, month: 3, day: 9))),
                                                 idempotencyKey: "u1", requestHash: "u1", now: t0)
            #expect(r.record.profile.birthday == CivilDate(year: 1991, month: 3, day: 9))
            var w = try await store.wallet(program: "shop", member: m, status: nil, now: t0)
            #expect(w.items.map(\.grant) == ["bd.2026.1"])
            let n = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .email, value: "b@example.com")],
                                                                                   profile: MemberProfile(birthday: CivilDate(year: 1985, month: 4, day: 1))),
                                                   idempotencyKey: nil, requestHash: "r", now: t0)
            #expect(try await store.wallet(program: "shop", member: n.record.id, status: nil, now: t0).items.isEmpty)
            // April's comes with the job run at local midnight of April 1.
            let april = Timestamp(iso8601: "2026-04-01T00:00:00+08:00")!
            _ = try await store.runJobs(asOf: april, now: april)
            w = try await store.wallet(program: "shop", member: n.record.id, status: nil, now: april)
            #expect(w.items.map(\.grant) == ["bd.2026.1"])
            #expect(try await store.eventLog(program: "shop", member: n.record.id, cursor: nil, limit: 10).items.map(\.kind) == [.profileSet])
        }
    }
}

@Suite struct GeneratedMallTests {
    /// Random exchanges, cancellations and stock changes by a few members: after every step the
    /// stock equals what was put in less what active exchanges hold, and is never below zero;
    /// every member's ledger balances.
    @Test(arguments: Backend.allCases)
    func stockAndLedgersStayTrue(_ backend: Backend) async throws {
        try await withStore(backend, program: mallTestProgram()) { store, first in
            var rng = SplitMix(seed: 99)
            var t = t0.adding(seconds: 60)
            var members = [first]
            for i in 0..<3 {
                members.append(try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "G-\(i)")], registeredAt: t0),
                                                              idempotencyKey: nil, requestHash: "g\(i)", now: t).record.id)
            }
            for (i, m) in members.enumerated() {
                _ = try await store.record(program: "shop", member: m, occurredAt: t, body: .pointsAdjusted(PointsAdjusted(points: 4000, reason: "seed", staff: "ops")),
                                           idempotencyKey: "seed-\(i)", requestHash: "h", now: t)
            }
            var put: Int64 = 10
            for step in 0..<120 {
                t = t.adding(seconds: 61)
                let m = members[Int(rng.next() % UInt64(members.count))]
                switch rng.next() % 6 {
                case 0, 1, 2:
                    let q = 1 + Int(rng.next() % 3)
                    do {
                        _ = try await store.record(program: "shop", member: m, occurredAt: t, body: .mallExchanged(MallExchanged(item: "tote", quantity: q)),
                                                   idempotencyKey: "x-\(step)", requestHash: "h", now: t)
                    } catch StoreError.outOfStock {} catch StoreError.rule(.insufficientPoints) {}
                case 3, 4:
                    if let x = try await store.exchanges(program: "shop", status: .toShip, member: m, limit: 50).randomElement(using: &rng) {
                        _ = try await store.cancelExchange(program: "shop", member: m, exchange: x.exchange, reason: "r", idempotencyKey: "c-\(step)", requestHash: "h", now: t)
                    }
                default:
                    let q = Int64(rng.next() % 7) - 2
                    if q != 0 {
                        do { _ = try await store.restock(program: "shop", item: "tote", quantity: q, now: t); put += q } catch StoreError.outOfStock {}
                    }
                }
                let held = try await store.exchanges(program: "shop", status: nil, member: nil, limit: 200).filter { $0.item == "tote" && $0.status != .cancelled }
                    .reduce(Int64(0)) { $0 + $1.quantity }
                let stock = try #require(try await store.mallItems(program: "shop", now: t).first { $0.item.id == "tote" })
                #expect(stock.available == put - held, "step \(step)")
                #expect((stock.available ?? -1) >= 0)
            }
            for m in members { #expect(try await store.audit(program: "shop", member: m).isEmpty) }
        }
    }
}
