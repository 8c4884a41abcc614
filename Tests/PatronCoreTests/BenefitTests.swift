import Foundation
import Testing
@testable import PatronCore

let benefitTiers = """
    [
      {"id": "basic", "name": "Basic", "threshold": 0},
      {"id": "silver", "name": "Silver", "threshold": 1000, "benefits": ["welcome"]},
      {"id": "gold", "name": "Gold", "threshold": 5000, "benefits": ["gift"],
       "allowances": [{"benefit": "free_ship", "count": 2, "every": "month"}]}
    ]
    """
let benefitDefs = """
    [
      {"id": "welcome", "name": {"zh-CN": "升级礼券", "en": "Upgrade coupon"}, "kind": "amountOff", "amountMinor": 2000, "minSpendMinor": 10000,
       "claim": {"days": 30}, "use": {"days": 7}},
      {"id": "free_ship", "name": "Free shipping", "kind": "freeShipping", "autoClaim": true, "use": {"endOf": "month"},
       "limit": {"count": 2, "per": "month"}, "combinable": true},
      {"id": "pct", "name": "15% off", "kind": "percentOff", "percent": 15, "capMinor": 5000, "use": {"days": 30},
       "channels": ["app"], "stores": ["s1"], "combinable": true},
      {"id": "shoes", "name": "Member price on shoes", "kind": "memberPrice", "percent": 10, "categories": ["shoes"], "combinable": true},
      {"id": "gift", "name": "Gift", "kind": "gift", "giftSku": "G-1", "autoClaim": true},
      {"id": "once", "name": "No return", "kind": "noMinimum", "amountMinor": 500, "returnOnReversal": false},
      {"id": "double", "name": "Double points", "kind": "pointsMultiplier", "factor": 2, "combinable": true}
    ]
    """

func benefitProgram(assessment: String = #"{"kind": "lifetime"}"#, policy: String = "{}") throws -> ProgramDefinition {
    try parseProgram(programJSON(assessment: assessment, tiers: benefitTiers, benefits: benefitDefs, benefitPolicy: policy))
}

extension Harness {
    func grants(_ benefit: String) -> [BenefitGrant] { grants.values.filter { $0.benefitId == benefit }.sorted { ($0.grantedAt, $0.id) < ($1.grantedAt, $1.id) } }
    @discardableResult
    mutating func staffGrant(_ benefit: String, at t: Timestamp, count: Int = 1) throws -> [String] {
        try send(.benefitGranted(BenefitGranted(benefit: benefit, count: count, reason: "test", staff: "ops")), at: t).grants ?? []
    }
    @discardableResult
    mutating func claim(_ grant: String, at t: Timestamp) throws -> EventOutcome { try send(.benefitClaimed(BenefitClaimed(grant: grant)), at: t) }
    @discardableResult
    mutating func redeem(_ grant: String, order: String = "o-1", amount: Int64 = 20_000, at t: Timestamp, channel: String? = "app", store: String? = "s1",
                         shipping: Int64? = nil, lines: [RedemptionLine]? = nil, combinedWith: [String]? = nil) throws -> EventOutcome {
        try send(.benefitRedeemed(BenefitRedeemed(grant: grant, orderId: order, amountMinor: amount, shippingMinor: shipping, lines: lines,
                                                  channel: channel, store: store, combinedWith: combinedWith)), at: t)
    }
}

/// Expects the engine to refuse with exactly this reason.
func expectRefusal(_ r: BenefitRefusal, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do { try body(); Issue.record("expected \(r), but it was accepted", sourceLocation: sourceLocation) } catch let EngineError.benefit(got) {
        #expect(got == r, sourceLocation: sourceLocation)
    } catch { Issue.record("expected \(r), got \(error)", sourceLocation: sourceLocation) }
}

@Suite struct BenefitDefinitionTests {
    @Test func parsesTheDocument() throws {
        let p = try benefitProgram()
        #expect(p.benefits.map(\.id) == ["welcome", "free_ship", "pct", "shoes", "gift", "once", "double"])
        #expect(p.benefit("double")?.factorPermille == 2000)
        #expect(p.benefit("pct")?.percentMilli == 15_000)
        #expect(p.benefit("welcome")?.claimWindow == .days(30))
        #expect(p.benefit("free_ship")?.useWindow == .endOfPeriod(.month))
        #expect(p.tiers[2].allowances == [Allowance(benefit: "free_ship", count: 2, every: .month)])
        // The stored form reads back the same.
        let back = try JSONDecoder().decode(ProgramDefinition.self, from: JSONEncoder().encode(p))
        #expect(back == p)
    }

    @Test(arguments: [
        (#"[{"id": "a", "name": "A", "kind": "percentOff", "percent": 10, "amountMinor": 5}]"#, "benefits[0].amountMinor", "does not apply to kind percentOff"),
        (#"[{"id": "a", "name": "A", "kind": "amountOff"}]"#, "benefits[0].amountMinor", "is required"),
        (#"[{"id": "a", "name": "A", "kind": "memberPrice", "percent": 10}]"#, "benefits[0].categories", "is required for kind memberPrice"),
        (#"[{"id": "a", "name": "A", "kind": "gift", "giftSku": "x", "autoClaim": true, "claim": {"days": 3}}]"#, "benefits[0].claim", "autoClaim"),
        (#"[{"id": "a", "name": "A", "kind": "service", "use": {"days": 3, "endOf": "month"}}]"#, "benefits[0].use", "exactly one of"),
        (#"[{"id": "a", "name": "A", "kind": "service", "limit": {"count": 0, "per": "month"}}]"#, "benefits[0].limit.count", "at least 1"),
        (#"[{"id": "a", "name": "A", "kind": "coupon"}]"#, "benefits[0].kind", "must be one of"),
        (#"[{"id": "a", "name": "A", "kind": "service"}, {"id": "a", "name": "B", "kind": "service"}]"#, "benefits[1].id", "used by an earlier benefit"),
    ])
    func rejectsBadBenefits(_ c: (String, String, String)) throws {
        let doc = try JSONDecoder().decode(JSONValue.self, from: Data(programJSON(benefits: c.0).utf8))
        guard case .failure(let f) = ProgramParser.parse(doc) else { Issue.record("accepted \(c.0)"); return }
        #expect(f.errors.contains { $0.path == c.1 && $0.reason.contains(c.2) }, "\(f.errors)")
    }

    @Test func tiersMustNameDefinedBenefits() throws {
        let tiers = #"[{"id": "basic", "name": "B", "threshold": 0}, {"id": "silver", "name": "S", "threshold": 10, "benefits": ["nope"], "allowances": [{"benefit": "nada", "every": "year"}]}]"#
        let doc = try JSONDecoder().decode(JSONValue.self, from: Data(programJSON(tiers: tiers).utf8))
        guard case .failure(let f) = ProgramParser.parse(doc) else { Issue.record("accepted"); return }
        #expect(f.errors.map(\.path).sorted() == ["tiers[1].allowances[0].benefit", "tiers[1].benefits[0]"])
    }
}

@Suite struct BenefitEngineTests {
    @Test func upgradeGiftIsGrantedOncePerTier() throws {
        var h = Harness(try benefitProgram(assessment: #"{"kind": "rolling", "windowDays": 30, "downgrade": "oneTier"}"#))
        try h.order("a", 100_000, at: at("2026-01-10T10:00:00+08:00"))
        let w = h.grants("welcome")
        #expect(w.count == 1)
        #expect(w[0].cause == .upgrade && w[0].tierId == "silver")
        // Claimable through the end of the 30th local day after the grant.
        #expect(w[0].claimBy == at("2026-02-10T00:00:00+08:00"))
        #expect(w[0].status(at: at("2026-02-09T23:59:59+08:00")) == .claimable)
        #expect(w[0].status(at: at("2026-02-10T00:00:00+08:00")) == .expired)
        // Down at the window's end, up again: no second gift.
        h.advance(to: at("2026-02-20T00:00:00+08:00"))
        #expect(h.tier == "basic")
        try h.order("b", 100_000, at: at("2026-02-21T10:00:00+08:00"))
        #expect(h.tier == "silver")
        #expect(h.grants("welcome").count == 1)
    }

    @Test func upgradeGiftsOncePerYearWhenTheProgramSaysSo() throws {
        var h = Harness(try benefitProgram(assessment: #"{"kind": "rolling", "windowDays": 30, "downgrade": "oneTier"}"#, policy: #"{"upgradeGiftsOncePer": "year"}"#))
        try h.order("a", 100_000, at: at("2026-01-10T10:00:00+08:00"))
        h.advance(to: at("2026-02-20T00:00:00+08:00"))
        try h.order("b", 100_000, at: at("2026-03-01T10:00:00+08:00")) // silver again in 2026: no second gift
        #expect(h.grants("welcome").map(\.id) == ["up.silver.1.1"])
        h.advance(to: at("2026-12-31T00:00:00+08:00"))
        #expect(h.tier == "basic")
        try h.order("c", 100_000, at: at("2027-01-02T10:00:00+08:00")) // a new year: the gift again
        #expect(h.grants("welcome").map(\.id) == ["up.silver.1.1", "up.silver.2.1"])
    }

    struct WindowCase: Sendable, CustomStringConvertible {
        var claimAt: String, redeemAt: String, ok: Bool
        var description: String { "claim \(claimAt) redeem \(redeemAt)" }
    }

    /// `use: {days: 7}`: usable through the end of the 7th local day after the claim.
    @Test(arguments: [
        WindowCase(claimAt: "2026-01-31T10:00:00+08:00", redeemAt: "2026-02-07T23:59:59+08:00", ok: true),
        WindowCase(claimAt: "2026-01-31T10:00:00+08:00", redeemAt: "2026-02-08T00:00:00+08:00", ok: false),
        // A claim just before local midnight counts from that local day, not from UTC's.
        WindowCase(claimAt: "2026-01-31T23:59:59+08:00", redeemAt: "2026-02-07T23:59:59+08:00", ok: true),
        WindowCase(claimAt: "2026-02-01T00:00:00+08:00", redeemAt: "2026-02-08T23:59:59+08:00", ok: true),
        // Leap year: 2028-02-22 + 7 days ends with 02-29.
        WindowCase(claimAt: "2028-02-22T09:00:00+08:00", redeemAt: "2028-02-29T23:59:59+08:00", ok: true),
        WindowCase(claimAt: "2028-02-22T09:00:00+08:00", redeemAt: "2028-03-01T00:00:00+08:00", ok: false),
    ])
    func useWindowEdges(_ c: WindowCase) throws {
        var h = Harness(try benefitProgram(), registeredAt: at("2026-01-01T00:00:00+08:00"))
        let claimAt = at(c.claimAt)
        let g = try h.staffGrant("welcome", at: claimAt)[0]
        try h.claim(g, at: claimAt)
        let useBy = h.grants[g]!.useBy!
        if c.ok {
            #expect(try h.redeem(g, at: at(c.redeemAt)).discountMinor == 2000)
            #expect(h.grants[g]!.status(at: at(c.redeemAt)) == .used)
        } else {
            expectRefusal(.useWindowClosed(grant: g, closedAt: useBy)) { try h.redeem(g, at: at(c.redeemAt)) }
        }
    }

    @Test func claimWindowEdge() throws {
        var h = Harness(try benefitProgram())
        let g1 = try h.staffGrant("welcome", at: at("2026-03-01T08:00:00+08:00"), count: 2)
        #expect(h.grants[g1[0]]!.claimBy == at("2026-04-01T00:00:00+08:00"))
        try h.claim(g1[0], at: at("2026-03-31T23:59:59+08:00"))
        expectRefusal(.claimWindowClosed(grant: g1[1], closedAt: at("2026-04-01T00:00:00+08:00"))) { try h.claim(g1[1], at: at("2026-04-01T00:00:00+08:00")) }
        expectRefusal(.notClaimable(grant: g1[0], status: .claimed)) { try h.claim(g1[0], at: at("2026-03-31T23:59:59+08:00")) }
        #expect(h.grants[g1[0]]!.code?.count == 12)
    }

    @Test func monthlyAllowancesFollowTheProgramTimeZone() throws {
        var h = Harness(try benefitProgram())
        try h.order("a", 600_000, at: at("2026-01-15T10:00:00+08:00"))
        #expect(h.tier == "gold")
        // The current month's allowance at once (auto-claimed), and the upgrade gift.
        var ship = h.grants("free_ship")
        #expect(ship.count == 2)
        #expect(ship.allSatisfy { $0.cause == .allowance && $0.claimedAt == at("2026-01-15T10:00:00+08:00") && $0.code != nil })
        #expect(ship[0].useBy == at("2026-02-01T00:00:00+08:00"))
        #expect(h.grants("gift").count == 1)
        #expect(h.state.nextDueAt == at("2026-02-01T00:00:00+08:00"))
        // Not a second earlier than local midnight of the first day.
        h.advance(to: at("2026-01-31T23:59:59+08:00"))
        #expect(h.grants("free_ship").count == 2)
        h.advance(to: at("2026-02-01T00:00:00+08:00"))
        ship = h.grants("free_ship")
        #expect(ship.count == 4)
        #expect(ship[2].grantedAt == at("2026-01-31T16:00:00Z"))
        #expect(ship[0].status(at: at("2026-02-01T00:00:00+08:00")) == .expired)
        // February 2028 has 29 days: the March allowance comes on 03-01.
        h.advance(to: at("2028-02-29T23:59:59+08:00"))
        #expect(h.state.wallet.nextAllowanceAt == at("2028-03-01T00:00:00+08:00"))
        // Running the clock again grants nothing more.
        let before = h.grants.count
        h.advance(to: at("2028-02-29T23:59:59+08:00"))
        #expect(h.grants.count == before)
    }

    @Test func useLimitPerMonth() throws {
        var h = Harness(try benefitProgram())
        let gs = try h.staffGrant("free_ship", at: at("2026-05-01T00:00:00+08:00"), count: 3)
        try h.redeem(gs[0], order: "a", at: at("2026-05-02T10:00:00+08:00"), shipping: 800)
        try h.redeem(gs[1], order: "b", at: at("2026-05-31T23:59:59+08:00"), shipping: 800)
        expectRefusal(.limitReached(benefit: "free_ship", count: 2, per: .month)) { try h.redeem(gs[2], order: "c", at: at("2026-05-31T23:59:59+08:00"), shipping: 800) }
        // Staff grants are auto-claimed too; the third's window ends with May.
        #expect(h.grants[gs[2]]!.useBy == at("2026-06-01T00:00:00+08:00"))
    }

    @Test func discountsByKind() throws {
        var h = Harness(try benefitProgram())
        let t = at("2026-06-01T10:00:00+08:00")
        let w = try h.staffGrant("welcome", at: t)[0]
        try h.claim(w, at: t)
        expectRefusal(.belowMinimumSpend(minimum: 10_000, amount: 9_999)) { try h.redeem(w, order: "x", amount: 9_999, at: t) }
        #expect(try h.redeem(w, order: "x", amount: 10_000, at: t).discountMinor == 2000)
        expectRefusal(.alreadyUsed(grant: w, at: t, orderId: "x")) { try h.redeem(w, order: "y", at: t.adding(seconds: 1)) }

        let p = try h.staffGrant("pct", at: t)[0]
        try h.claim(p, at: t)
        expectRefusal(.channelNotAccepted(channel: "pos", accepted: ["app"])) { try h.redeem(p, order: "z", at: t, channel: "pos") }
        expectRefusal(.storeNotAccepted(store: nil, accepted: ["s1"])) { try h.redeem(p, order: "z", at: t, store: nil) }
        // 15% of 400.00 is 60.00, capped at 50.00.
        #expect(try h.redeem(p, order: "z", amount: 40_000, at: t).discountMinor == 5000)

        let s = try h.staffGrant("shoes", at: t)[0]
        try h.claim(s, at: t)
        expectRefusal(.noEligibleLines(categories: ["shoes"])) { try h.redeem(s, order: "z", at: t, lines: [RedemptionLine(sku: "a", category: "bags", amountMinor: 9000)]) }
        // Combinable with the percent coupon already on order z; 10% of the shoes line only.
        let out = try h.redeem(s, order: "z", at: t, lines: [RedemptionLine(sku: "a", category: "shoes", amountMinor: 12_345), RedemptionLine(sku: "b", category: "bags", amountMinor: 9000)])
        #expect(out.discountMinor == 1234)
    }

    @Test func aPointsMultiplierIsWrittenOffBeforeTheOrderIsPaid() throws {
        var h = Harness(try benefitProgram())
        let t = at("2026-06-01T10:00:00+08:00")
        let g = try h.staffGrant("double", at: t, count: 2)
        for x in g { try h.claim(x, at: t) }
        try h.redeem(g[0], order: "o-2x", at: t)
        #expect(try h.order("o-2x", 12_345, at: t.adding(seconds: 60)).pointsEarned == 246) // 123 × 2
        #expect(try h.order("o-1x", 12_345, at: t.adding(seconds: 70)).pointsEarned == 123)
        expectRefusal(.orderAlreadyPaid(orderId: "o-1x")) {
            var probe = h
            probe.state.load(order: "o-1x", h.orderTable["o-1x"]!) // the store loads the record the event names
            _ = try probe.engine.apply(&probe.state, MemberEvent(id: EventID(99), occurredAt: t.adding(seconds: 80),
                                                                  body: .benefitRedeemed(BenefitRedeemed(grant: g[1], orderId: "o-1x", amountMinor: 12_345))), effects: &probe.pendingEffects)
        }
        // A refund of the doubled order claws back the doubled points.
        #expect(try h.send(.orderRefunded(OrderRefunded(orderId: "o-2x")), at: t.adding(days: 1)).pointsClawedBack == 246)
        #expect(h.audit().isEmpty)
    }

    @Test func combiningRules() throws {
        var h = Harness(try benefitProgram())
        let t = at("2026-06-01T10:00:00+08:00")
        let w = try h.staffGrant("welcome", at: t, count: 2)
        let p = try h.staffGrant("pct", at: t)[0]
        for g in w + [p] { try h.claim(g, at: t) }
        try h.redeem(p, order: "x", at: t)
        // welcome is not combinable: not on an order that already has a benefit, nor beside another code.
        expectRefusal(.notCombinable(benefit: "welcome", with: ["pct"])) { try h.redeem(w[0], order: "x", at: t) }
        expectRefusal(.notCombinable(benefit: "welcome", with: ["code ABC"])) { try h.redeem(w[0], order: "y", at: t, combinedWith: ["ABC"]) }
        try h.redeem(w[0], order: "y", at: t)
        // Nothing goes on top of a non-combinable one.
        let p2 = try h.staffGrant("pct", at: t)[0]
        try h.claim(p2, at: t)
        expectRefusal(.notCombinable(benefit: "welcome", with: ["pct"])) { try h.redeem(p2, order: "y", at: t) }
    }

    @Test func reversalReturnsWithinTheWindowOnly() throws {
        var h = Harness(try benefitProgram())
        let t = at("2026-07-01T10:00:00+08:00")
        let g = try h.staffGrant("pct", at: t, count: 2)
        for x in g { try h.claim(x, at: t) }
        try h.redeem(g[0], order: "a", at: t)
        try h.send(.benefitReversed(BenefitReversed(grant: g[0], reason: "cancelled")), at: t.adding(days: 1))
        #expect(h.grants[g[0]]!.status(at: t.adding(days: 1)) == .claimed)
        // Usable again, then reversed after its window closed: used and refunded for good.
        try h.redeem(g[0], order: "b", at: t.adding(days: 2))
        try h.send(.benefitReversed(BenefitReversed(grant: g[0], reason: "refund")), at: t.adding(days: 40))
        #expect(h.grants[g[0]]!.status(at: t.adding(days: 40)) == .usedRefunded)
        expectRefusal(.notUsed(grant: g[0])) { try h.send(.benefitReversed(BenefitReversed(grant: g[0], reason: "again")), at: t.adding(days: 41)) }
        // A benefit that does not return is marked at once.
        let o = try h.staffGrant("once", at: t)[0]
        try h.claim(o, at: t)
        try h.redeem(o, order: "c", at: t)
        try h.send(.benefitReversed(BenefitReversed(grant: o, reason: "cancelled")), at: t.adding(seconds: 60))
        #expect(h.grants[o]!.status(at: t.adding(seconds: 60)) == .usedRefunded)
    }

    @Test func aFullRefundReversesTheUses() throws {
        var h = Harness(try benefitProgram())
        let t = at("2026-07-01T10:00:00+08:00")
        let g = try h.staffGrant("pct", at: t)[0]
        try h.claim(g, at: t)
        try h.redeem(g, order: "o-9", at: t)
        try h.order("o-9", 20_000, at: t.adding(seconds: 5))
        try h.send(.orderRefunded(OrderRefunded(orderId: "o-9", lines: [RefundLine(line: 1, quantity: 1)])), at: t.adding(days: 1))
        #expect(h.grants[g]!.status(at: t.adding(days: 1)) == .claimed)
    }

    @Test(arguments: [false, true])
    func downgradeStopsAllowancesAndRevokesWhenTheProgramSays(_ revoke: Bool) throws {
        var h = Harness(try benefitProgram(assessment: #"{"kind": "calendar", "period": "month", "downgrade": "oneTier"}"#,
                                           policy: #"{"revokeOnDowngrade": \#(revoke)}"#))
        try h.order("a", 600_000, at: at("2026-01-15T10:00:00+08:00"))
        #expect(h.tier == "gold")
        h.advance(to: at("2026-01-20T00:00:00+08:00"))
        let gift = h.grants("gift")[0].id
        // Nothing bought in February: down to silver on March 1, and no March allowance.
        h.advance(to: at("2026-03-01T00:00:00+08:00"))
        #expect(h.tier == "silver")
        #expect(h.grants("free_ship").count == 4) // January's and February's
        h.advance(to: at("2026-04-01T00:00:00+08:00"))
        #expect(h.grants("free_ship").count == 4)
        // February's unused allowances (open until March 1) were past their window; the gift has no window.
        #expect(h.grants[gift]!.status(at: at("2026-03-01T00:00:00+08:00")) == (revoke ? .revoked : .claimed))
    }

    @Test func aRefundThatUndoesTheUpgradeTakesBackItsGift() throws {
        var h = Harness(try benefitProgram())
        try h.order("a", 100_000, at: at("2026-01-10T10:00:00+08:00"))
        let w = h.grants("welcome")[0].id
        try h.send(.orderRefunded(OrderRefunded(orderId: "a")), at: at("2026-01-11T10:00:00+08:00"))
        #expect(h.tier == "basic")
        #expect(h.grants[w]!.status(at: at("2026-01-11T10:00:00+08:00")) == .revoked)
        // Reaching silver again earns the gift again.
        try h.order("b", 100_000, at: at("2026-01-12T10:00:00+08:00"))
        #expect(h.grants("welcome").count == 2)
    }

    @Test func codesAreStableAndTheStateRoundTrips() throws {
        var h = Harness(try benefitProgram())
        let t = at("2026-08-01T10:00:00+08:00")
        let g = try h.staffGrant("pct", at: t, count: 3)
        for x in g { try h.claim(x, at: t) }
        try h.redeem(g[0], at: t.adding(seconds: 1))
        // A late event replays the history: same grants, same codes.
        let codes = g.map { h.grants[$0]!.code! }
        try h.order("late", 5_000, at: t.adding(seconds: -3600))
        #expect(g.map { h.grants[$0]!.code! } == codes)
        #expect(Set(codes).count == 3)
        #expect(try StateCodec.decode(StateCodec.encode(h.state)) == h.state)
        #expect(CodeMaker.normalize("abcd-efgh-ijkl o") == "ABCDEFGH1JK10")
    }
}

/// Generated sequences of grants, claims, uses, reversals, refunds and the clock: a benefit is
/// never used twice at once, never outside its windows, and a replay gives the same wallet.
@Suite struct GeneratedBenefitTests {
    @Test(arguments: 0..<12)
    func invariantsHold(_ seed: Int) throws {
        var rng = SeededRandom(seed: UInt64(seed) &* 7919 &+ 13)
        let p = try benefitProgram(assessment: #"{"kind": "calendar", "period": "month", "downgrade": "toSupported"}"#,
                                   policy: seed % 2 == 0 ? #"{"revokeOnDowngrade": true}"# : "{}")
        var h = Harness(p)
        var t = t0
        var orderNo = 0
        var usesByGrant: [String: Int] = [:]
        for _ in 0..<300 {
            t = t.adding(seconds: Int64.random(in: 60...(3 * 86_400), using: &rng))
            let open = h.grants.values.filter { $0.isOpen(at: t) }.map(\.id).sorted()
            let used = h.grants.values.filter { $0.use != nil && $0.refundedAt == nil }.map(\.id).sorted()
            do {
                switch Int.random(in: 0..<8, using: &rng) {
                case 0:
                    orderNo += 1
                    try h.order("o\(orderNo)", Int64.random(in: 1000...400_000, using: &rng), at: t)
                case 1: try h.staffGrant(["welcome", "pct", "free_ship", "once", "shoes"].randomElement(using: &rng)!, at: t)
                case 2, 3:
                    if let g = open.randomElement(using: &rng) { try h.claim(g, at: t) }
                case 4, 5:
                    if let g = open.randomElement(using: &rng) {
                        let before = h.grants[g]!
                        let out = try h.redeem(g, order: "o\(Int.random(in: 0...orderNo + 1, using: &rng))", amount: Int64.random(in: 0...50_000, using: &rng), at: t,
                                               shipping: 600, lines: [RedemptionLine(sku: "x", category: "shoes", amountMinor: 5000)])
                        // Accepted: it was claimed, inside both windows, and not in use.
                        #expect(before.claimedAt != nil && before.claimedAt! <= t && before.use == nil)
                        #expect(before.useBy.map { t < $0 } ?? true)
                        #expect(out.discountMinor ?? -1 >= 0)
                        usesByGrant[g, default: 0] += 1
                    }
                case 6:
                    if let g = used.randomElement(using: &rng) { try h.send(.benefitReversed(BenefitReversed(grant: g, reason: "r")), at: t) }
                default:
                    h.advance(to: t)
                }
            } catch EngineError.benefit { /* refused: nothing may have changed, checked below */ }
            catch EngineError.insufficientPoints {}
            // No grant is in two uses at once, and every recorded use lies inside its windows.
            for g in h.grants.values {
                if let u = g.use {
                    #expect(g.claimedAt != nil && g.claimedAt! <= u.at)
                    #expect(g.useBy.map { u.at < $0 } ?? true)
                    #expect(g.revokedAt == nil || g.revokedAt! > u.at)
                }
                if let c = g.claimedAt, let by = g.claimBy { #expect(c < by) }
            }
        }
        // Replaying the accepted events from scratch gives the same wallet and grants.
        let r = try h.engine.replay(member: h.state.memberId, registeredAt: h.state.registeredAt, events: h.events, until: h.state.asOf)
        #expect(r.state.wallet == h.state.wallet)
        #expect(r.effects.grants == h.grants)
        #expect(usesByGrant.values.reduce(0, +) > 0)
    }
}

let mallItems = """
    [
      {"id": "tote", "name": "Tote", "kind": "goods", "pointsPrice": 800, "stock": 10, "limit": {"count": 2, "per": "year"}},
      {"id": "c20", "name": "Coupon", "kind": "benefit", "benefit": "once", "pointsPrice": 300},
      {"id": "vip", "name": "VIP day", "kind": "experience", "pointsPrice": 100, "moneyMinor": 9900, "tiers": ["gold"]},
      {"id": "tree", "name": "Tree", "kind": "donation", "pointsPrice": 50,
       "visibleFrom": "2026-01-01T00:00:00+08:00", "visibleUntil": "2027-01-01T00:00:00+08:00"}
    ]
    """

@Suite struct MallEngineTests {
    func program() throws -> ProgramDefinition {
        var json = programJSON(tiers: benefitTiers, benefits: benefitDefs)
        json = String(json.dropLast(2)) + #", "mall": \#(mallItems)}"#
        return try parseProgram(json)
    }

    @Test func exchangesSpendPointsAndKeepLimits() throws {
        var h = Harness(try program())
        try h.order("a", 300_000, at: at("2026-02-01T10:00:00+08:00")) // 3000 points, silver
        let t = at("2026-02-02T10:00:00+08:00")
        var out = try h.send(.mallExchanged(MallExchanged(item: "tote", quantity: 2)), at: t)
        #expect(out.pointsSpent == 1600)
        #expect(h.state.balance == 1400)
        // Two a year: a third in the same year is refused, and nothing is spent.
        expectMall(.limitReached(item: "tote", limit: 2, per: .year)) { try h.send(.mallExchanged(MallExchanged(item: "tote")), at: t.adding(days: 300)) }
        #expect(h.state.balance == 1400)
        expectMall(.tierNotEligible(item: "vip", tier: "silver", eligible: ["gold"])) { try h.send(.mallExchanged(MallExchanged(item: "vip")), at: t) }
        expectMall(.notVisible(item: "tree")) { try h.send(.mallExchanged(MallExchanged(item: "tree")), at: at("2027-01-01T00:00:00+08:00")) }
        expectMall(.unknownItem("yacht")) { try h.send(.mallExchanged(MallExchanged(item: "yacht")), at: t) }
        do { try h.send(.mallExchanged(MallExchanged(item: "c20", quantity: 5)), at: t); Issue.record("overspent") } catch EngineError.insufficientPoints(let a, let r) {
            #expect(a == 1400 && r == 1500)
        }
        // A benefit item puts the benefit in the wallet at once.
        out = try h.send(.mallExchanged(MallExchanged(item: "c20", quantity: 2)), at: t)
        #expect(out.grants == ["ml.\(h.events.last!.id).1", "ml.\(h.events.last!.id).2"])
        #expect(h.grants("once").allSatisfy { $0.cause == .mall && $0.claimedAt == t && $0.code != nil })
        #expect(h.audit().isEmpty)
        // The next year the tote can be had again.
        try h.send(.mallExchanged(MallExchanged(item: "tote")), at: at("2027-01-01T00:00:00+08:00"))
    }

    @Test func cancellingReturnsPointsAndTakesBackUnusedBenefits() throws {
        var h = Harness(try program())
        try h.order("a", 300_000, at: at("2026-02-01T10:00:00+08:00"))
        let t = at("2026-02-02T10:00:00+08:00")
        try h.send(.mallExchanged(MallExchanged(item: "c20", quantity: 2)), at: t)
        let ex = h.events.last!.id
        let grants = h.grants("once").map(\.id)
        try h.redeem(grants[0], order: "x", at: t)
        // One of the two coupons was used: the exchange stands.
        expectMall(.notCancellable(ex, reason: "a benefit it gave was used")) { try h.send(.mallCancelled(MallCancelled(exchange: ex, reason: "x")), at: t.adding(seconds: 5)) }
        try h.send(.mallExchanged(MallExchanged(item: "tote")), at: t.adding(seconds: 10))
        let tote = h.events.last!.id
        let before = h.state.balance
        let out = try h.send(.mallCancelled(MallCancelled(exchange: tote, reason: "out of stock at the warehouse")), at: t.adding(seconds: 20))
        #expect(out.pointsEarned == 800 && h.state.balance == before + 800)
        #expect(h.entries.last?.reason == .exchangeCancelled)
        expectMall(.alreadyCancelled(tote)) { try h.send(.mallCancelled(MallCancelled(exchange: tote, reason: "again")), at: t.adding(seconds: 30)) }
        try h.send(.mallExchanged(MallExchanged(item: "tree")), at: t.adding(seconds: 40))
        let tree = h.events.last!.id
        expectMall(.notCancellable(tree, reason: "a donation is final")) { try h.send(.mallCancelled(MallCancelled(exchange: tree, reason: "x")), at: t.adding(seconds: 50)) }
        #expect(h.audit().isEmpty)
        #expect(try StateCodec.decode(StateCodec.encode(h.state)) == h.state)
    }
}

func expectMall(_ r: MallRefusal, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do { try body(); Issue.record("expected \(r), but it was accepted", sourceLocation: sourceLocation) } catch let EngineError.mall(got) {
        #expect(got == r, sourceLocation: sourceLocation)
    } catch { Issue.record("expected \(r), got \(error)", sourceLocation: sourceLocation) }
}

@Suite struct BirthdayTests {
    func program(_ when: String, tiers: String = "") throws -> ProgramDefinition {
        var json = programJSON(tiers: benefitTiers, benefits: benefitDefs)
        json = String(json.dropLast(2)) + #", "birthday": {"benefit": "welcome", "when": "\#(when)"\#(tiers)}}"#
        return try parseProgram(json)
    }

    struct Case: Sendable, CustomStringConvertible {
        var when: String, birthday: String, setAt: String, probe: String, grants: [String]
        var description: String { "\(when) \(birthday) set \(setAt) probe \(probe)" }
    }

    @Test(arguments: [
        // In the birthday month: given at once when set during it, then on the 1st of next year's (local midnight).
        Case(when: "month", birthday: "1990-03-15", setAt: "2026-03-20T10:00:00+08:00", probe: "2027-02-28T23:59:59+08:00", grants: ["bd.2026.1"]),
        Case(when: "month", birthday: "1990-03-15", setAt: "2026-03-20T10:00:00+08:00", probe: "2027-03-01T00:00:00+08:00", grants: ["bd.2026.1", "bd.2027.1"]),
        // Set after this year's month: the first comes next year.
        Case(when: "month", birthday: "1990-03-15", setAt: "2026-04-01T00:00:00+08:00", probe: "2027-02-28T00:00:00+08:00", grants: []),
        Case(when: "day", birthday: "1990-03-15", setAt: "2026-01-05T10:00:00+08:00", probe: "2026-03-14T23:59:59+08:00", grants: []),
        Case(when: "day", birthday: "1990-03-15", setAt: "2026-01-05T10:00:00+08:00", probe: "2026-03-15T00:00:00+08:00", grants: ["bd.2026.1"]),
        // 02-29 birthdays: on 02-28 in common years, on 02-29 in leap years.
        Case(when: "day", birthday: "2000-02-29", setAt: "2027-01-05T10:00:00+08:00", probe: "2027-02-28T00:00:00+08:00", grants: ["bd.2027.1"]),
        Case(when: "day", birthday: "2000-02-29", setAt: "2027-03-05T10:00:00+08:00", probe: "2028-02-28T23:59:59+08:00", grants: []),
        Case(when: "day", birthday: "2000-02-29", setAt: "2027-03-05T10:00:00+08:00", probe: "2028-02-29T00:00:00+08:00", grants: ["bd.2028.1"]),
    ])
    func birthdayGifts(_ c: Case) throws {
        var h = Harness(try program(c.when), registeredAt: at("2026-01-01T00:00:00+08:00"))
        let b = CivilDate(year: Int(c.birthday.prefix(4))!, month: Int(c.birthday.dropFirst(5).prefix(2))!, day: Int(c.birthday.suffix(2))!)
        try h.send(.profileSet(ProfileSet(profile: MemberProfile(birthday: b))), at: at(c.setAt))
        h.advance(to: at(c.probe))
        #expect(h.grants("welcome").map(\.id) == c.grants)
        #expect(h.grants("welcome").allSatisfy { $0.cause == .birthday })
    }

    @Test func onlyForTheTiersNamedAndOnceAYear() throws {
        var h = Harness(try program("month", tiers: #", "tiers": ["gold"]"#), registeredAt: at("2026-01-01T00:00:00+08:00"))
        try h.send(.profileSet(ProfileSet(profile: MemberProfile(birthday: CivilDate(year: 1990, month: 5, day: 2)))), at: at("2026-01-02T00:00:00+08:00"))
        h.advance(to: at("2026-05-02T00:00:00+08:00"))
        #expect(h.grants("welcome").isEmpty) // basic in May 2026
        try h.order("g", 600_000, at: at("2026-06-01T00:00:00+08:00"))
        // Changing the birthday to a month already passed this year does not give a second one.
        try h.send(.profileSet(ProfileSet(profile: MemberProfile(birthday: CivilDate(year: 1990, month: 6, day: 20)))), at: at("2026-06-02T00:00:00+08:00"))
        #expect(h.grants("welcome").isEmpty)
        h.advance(to: at("2027-06-01T00:00:00+08:00"))
        #expect(h.grants("welcome").map(\.id) == ["bd.2027.1"])
        // A replay gives the same.
        let r = try h.engine.replay(member: h.state.memberId, registeredAt: h.state.registeredAt, events: h.events, until: h.state.asOf)
        #expect(r.state.wallet == h.state.wallet)
    }
}
