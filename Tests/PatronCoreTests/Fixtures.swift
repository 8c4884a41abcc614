import Foundation
import Testing
@testable import PatronCore

/// 2026-01-01T00:00:00+08:00, the fixed clock of the tests.
let t0 = Timestamp(iso8601: "2026-01-01T00:00:00+08:00")!
func at(_ s: String) -> Timestamp { Timestamp(iso8601: s)! }
func days(_ n: Int) -> Int64 { Int64(n) * 86_400 }

let defaultTiers = """
    [
      {"id": "basic", "name": {"zh-CN": "普通", "en": "Basic"}, "threshold": 0},
      {"id": "silver", "name": {"zh-CN": "白银", "en": "Silver"}, "threshold": 1000},
      {"id": "gold", "name": {"zh-CN": "黄金", "en": "Gold"}, "threshold": 5000},
      {"id": "diamond", "name": {"zh-CN": "钻石", "en": "Diamond"}, "threshold": 20000}
    ]
    """

func programJSON(assessment: String = #"{"kind": "lifetime"}"#, expiry: String = #"{"kind": "none"}"#, pendingDays: Int = 0,
                 extraEarning: String = "", shortfall: String = "negativeBalance", activities: String = "[]",
                 tiers: String? = nil, benefits: String = "[]", benefitPolicy: String = "{}") -> String {
    """
    {
      "key": "test", "name": {"zh-CN": "测试", "en": "Test"}, "currency": "CNY", "timeZone": "Asia/Shanghai",
      "tiers": \(tiers ?? defaultTiers),
      "benefits": \(benefits),
      "benefitPolicy": \(benefitPolicy),
      "assessment": \(assessment),
      "earning": {"points": {"unitMinor": 100, "perUnit": 1}, "growth": {"unitMinor": 100, "perUnit": 1} \(extraEarning)},
      "activities": \(activities),
      "expiry": \(expiry),
      "pendingDays": \(pendingDays),
      "refund": {"shortfall": "\(shortfall)"}
    }
    """
}

func parseProgram(_ json: String) throws -> ProgramDefinition {
    let doc = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
    switch ProgramParser.parse(doc) {
    case .success(let p): return p
    case .failure(let f): throw f
    }
}

/// A member driven through the engine the way the store drives it: each event applied at its
/// time, with the effects collected, and the whole history kept for replays and audits.
struct Harness {
    var engine: Engine
    var state: MemberState
    var entries: [LedgerEntry] = []
    var lots: [Int: Lot] = [:]
    var tierChanges: [TierChange] = []
    var growth: [GrowthEntry] = []
    /// The tag_changes table.
    var tagChangesAll: [TagChange] = []
    var tagChanges: [TagChange] { tagChangesAll }
    /// The benefit_grants table: every grant's latest form.
    var grants: [String: BenefitGrant] = [:]
    var events: [MemberEvent] = []
    var nextId: Int64 = 1
    /// Scratch effects for probes that apply an event by hand.
    var pendingEffects = Effects()
    /// The orders table: order records live outside the member state, as in the store.
    var orderTable: [String: OrderRecord] = [:]

    init(_ p: ProgramDefinition, registeredAt: Timestamp = t0) {
        self.init(versions: ProgramVersions(single: p), registeredAt: registeredAt)
    }
    init(versions: ProgramVersions, registeredAt: Timestamp = t0) {
        engine = Engine(program: versions)
        var fx = Effects()
        state = engine.start(member: MemberID(1), registeredAt: registeredAt, effects: &fx)
        absorb(fx)
    }

    mutating func absorb(_ fx: Effects) {
        entries += fx.entries; growth += fx.growth; tierChanges += fx.tierChanges
        for (k, v) in fx.lots { lots[k] = v }
        for (k, v) in fx.orders { orderTable[k] = v }
        for (k, n) in fx.orderLapses { orderTable[k]?.expiredPoints += n }
        for (k, g) in fx.grants { grants[k] = g }
        tagChangesAll += fx.tagChanges
        // What the store keeps of the state: no order records.
        state = state.snapshot
    }

    @discardableResult
    mutating func send(_ body: EventBody, at t: Timestamp) throws -> EventOutcome {
        let e = MemberEvent(id: EventID(nextId), occurredAt: t, body: body)
        nextId += 1
        if t < state.asOf {
            // A late event: the store replays the member's whole history.
            let r = try engine.replay(member: state.memberId, registeredAt: state.registeredAt, events: events + [e], until: state.asOf, validating: e.id, scores: state.scores)
            events.append(e)
            state = r.state
            entries = []; lots = [:]; tierChanges = []; growth = []; orderTable = [:]; grants = [:]; tagChangesAll = []
            absorb(r.effects)
            return r.outcomes[e.id]!
        }
        var s = state
        // The store loads the record of the order an event names.
        switch body {
        case .orderPaid(let o): if let r = orderTable[o.orderId] { s.load(order: o.orderId, r) }
        case .orderRefunded(let o): if let r = orderTable[o.orderId] { s.load(order: o.orderId, r) }
        default: break
        }
        var fx = Effects()
        let out = try engine.apply(&s, e, effects: &fx)
        state = s
        absorb(fx)
        events.append(e)
        return out
    }
    /// New scores at `t`, as the store's scoring runs give them.
    @discardableResult
    mutating func rescore(_ scores: MemberScores?, at t: Timestamp) -> Bool {
        var fx = Effects()
        let changed = engine.rescore(&state, scores, at: t, effects: &fx)
        absorb(fx)
        return changed
    }
    mutating func advance(to t: Timestamp) {
        var fx = Effects()
        engine.advance(&state, to: t, effects: &fx)
        absorb(fx)
    }
    mutating func order(_ id: String, _ amountMinor: Int64, at t: Timestamp, category: String? = nil, channel: String? = nil) throws -> EventOutcome {
        try send(.orderPaid(OrderPaid(orderId: id, lines: [OrderLine(sku: "sku-\(id)", category: category, amountMinor: amountMinor)], channel: channel)), at: t)
    }
    func audit() -> [LedgerAudit.Problem] { LedgerAudit.check(state: state, entries: entries, lots: Array(lots.values)) }
    var tier: String { state.tier.tierId }
}

typealias SeededRandom = SplitMix
