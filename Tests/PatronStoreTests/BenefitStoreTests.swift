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
     "earning": {"points": {"unitMinor": 100, "perUnit": 1}, "growth": {"unitMinor": 100, "perUnit": 1}},
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

    /// 16 concurrent write-offs of one code: exactly one succeeds; the others are told it is used.
    @Test(arguments: Backend.allCases)
    func aCodeIsUsedOnce(_ backend: Backend) async throws {
        try await withStore(backend, program: benefitTestProgram()) { store, m in
            let t = t0.adding(seconds: 60)
            _ = try await store.record(program: "shop", member: m, occurredAt: t, body: .benefitGranted(BenefitGranted(benefit: "coupon", reason: "test", staff: "ops")),
                                       idempotencyKey: "g", requestHash: "h", now: t)
            _ = try await store.record(program: "shop", member: m, occurredAt: t, body: .benefitClaimed(BenefitClaimed(grant: "st.1.1")), idempotencyKey: "c", requestHash: "h", now: t)
            let code = try #require(try await store.grantView(program: "shop", member: m, grant: "st.1.1", now: t).code)
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
                guard case StoreError.rule(.benefit(.alreadyUsed(grant: "st.1.1", _, let order)))? = e as? StoreError else { Issue.record("\(e)"); continue }
                #expect(order == wins.first?.orderId)
            }
            let g = try await store.grantView(program: "shop", member: m, grant: "st.1.1", now: t.adding(seconds: 5))
            #expect(g.status == .used && g.orderId == wins.first?.orderId)
        }
    }
}
