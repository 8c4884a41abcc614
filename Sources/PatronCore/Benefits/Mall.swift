import Foundation

/// What a points-mall item is.
public enum MallItemKind: String, Codable, Sendable, CaseIterable {
    /// Goods shipped to the member: exchanges get a fulfilment status.
    case goods
    /// A benefit of the program (coupon, service, …) put in the member's wallet at once.
    case benefit
    /// An experience or event ticket, fulfilled by staff.
    case experience
    /// Points given to a charity: fulfilled at once.
    case donation
}

public enum MallLimitPeriod: String, Codable, Sendable, CaseIterable { case lifetime, month, year }

/// An item of the points mall (积分商城), defined in the program. Stock lives in the store (it
/// changes with every exchange); `initialStock` seeds it when the item first appears.
public struct MallItem: Codable, Sendable, Equatable {
    public var id: String
    public var name: LocalizedText
    public var description: LocalizedText?
    public var kind: MallItemKind
    public var pointsPrice: Int64
    /// Money paid on top of the points (points + money items), in minor units.
    public var moneyMinor: Int64
    /// The benefit put in the wallet (kind benefit).
    public var benefit: String?
    public var initialStock: Int64?
    /// At most this many per member per period.
    public var limit: Int?
    public var limitPer: MallLimitPeriod
    /// Tiers that may exchange it; nil: every tier.
    public var tiers: [String]?
    public var visibleFrom: Timestamp?
    public var visibleUntil: Timestamp?
    public var imageURL: String?

    public func isVisible(at t: Timestamp) -> Bool { (visibleFrom.map { t >= $0 } ?? true) && (visibleUntil.map { t < $0 } ?? true) }
}

/// A member exchanges points for an item (积分兑换).
public struct MallExchanged: Codable, Sendable, Equatable {
    public var item: String
    public var quantity: Int
    /// Where goods go (free text; the fulfilment system reads it).
    public var address: String?
    public init(item: String, quantity: Int = 1, address: String? = nil) { self.item = item; self.quantity = quantity; self.address = address }
    enum CodingKeys: String, CodingKey { case item, quantity, address }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        item = try c.decode(String.self, forKey: .item); quantity = try c.decodeIfPresent(Int.self, forKey: .quantity) ?? 1
        address = try c.decodeIfPresent(String.self, forKey: .address)
    }
}

/// An exchange is cancelled (not shipped, out of stock at the warehouse, or returned): the points
/// come back, the stock is released, and the benefits it put in the wallet are taken back unless used.
public struct MallCancelled: Codable, Sendable, Equatable {
    /// The exchange: the event id of its `mall.exchanged` event.
    public var exchange: EventID
    public var reason: String
    public init(exchange: EventID, reason: String) { self.exchange = exchange; self.reason = reason }
}

/// One exchange as the engine keeps it (for limits and cancellation), and as the store records it.
public struct MallExchange: Codable, Sendable, Equatable {
    public var eventId: EventID
    public var at: Timestamp
    public var item: String
    public var kind: MallItemKind
    public var quantity: Int
    public var points: Int64
    public var moneyMinor: Int64
    public var grants: [String]
    public var address: String?
    public var cancelledAt: Timestamp?
}

public enum MallRefusal: Error, Sendable, Equatable {
    case unknownItem(String)
    case notVisible(item: String)
    case tierNotEligible(item: String, tier: String, eligible: [String])
    case limitReached(item: String, limit: Int, per: MallLimitPeriod)
    case unknownExchange(EventID)
    case alreadyCancelled(EventID)
    /// Donations are final; a benefit exchange whose benefit was used cannot be undone.
    case notCancellable(EventID, reason: String)
}

extension Engine {
    func exchange(_ s: inout MemberState, _ x: MallExchanged, event: EventID, at t: Timestamp, v: ProgramVersions.Version, mode: Mode,
                  out: inout EventOutcome, fx: inout Effects) throws {
        let p = v.definition
        guard let item = p.mallItem(x.item) else { throw EngineError.mall(.unknownItem(x.item)) }
        guard item.isVisible(at: t) else { throw EngineError.mall(.notVisible(item: item.id)) }
        if let tiers = item.tiers, !tiers.contains(s.tier.tierId) { throw EngineError.mall(.tierNotEligible(item: item.id, tier: s.tier.tierId, eligible: tiers)) }
        if let limit = item.limit {
            let from: Timestamp? = switch item.limitPer {
            case .lifetime: nil
            case .month: periodStart(containing: t, .month, v.clock)
            case .year: periodStart(containing: t, .year, v.clock)
            }
            let had = s.exchanges.filter { x in x.item == item.id && x.cancelledAt == nil && (from.map { x.at >= $0 } ?? true) }.reduce(0) { $0 + $1.quantity }
            if had + x.quantity > limit { throw EngineError.mall(.limitReached(item: item.id, limit: limit, per: item.limitPer)) }
        }
        let points = item.pointsPrice * Int64(x.quantity)
        if points > 0 { try spend(&s, points, event: event, at: t, reason: .redemption, note: "mall:\(item.id)", mode: mode, fx: &fx) }
        var grants: [String] = []
        if item.kind == .benefit, let bid = item.benefit, let b = p.benefit(bid) {
            for k in 1...x.quantity {
                let id = grant(&s, b, id: "ml.\(event).\(k)", cause: .mall, tier: nil, event: event, at: t, v: v, note: "mall:\(item.id)", fx: &fx)
                // Bought with points: in the wallet claimed, ready to use.
                if let gi = s.wallet.grants.lastIndex(where: { $0.id == id }), s.wallet.grants[gi].claimedAt == nil {
                    claim(&s.wallet.grants[gi], b, member: s.memberId, at: t, v: v)
                    s.wallet.grants[gi].claimBy = nil
                    fx.grants[id] = s.wallet.grants[gi]
                }
                grants.append(id)
            }
        }
        let e = MallExchange(eventId: event, at: t, item: item.id, kind: item.kind, quantity: x.quantity, points: points, moneyMinor: item.moneyMinor * Int64(x.quantity),
                             grants: grants, address: x.address)
        s.exchanges.append(e)
        fx.exchanges.append(e)
        out.pointsSpent = points
        out.grants = grants.isEmpty ? nil : grants
    }

    func cancelExchange(_ s: inout MemberState, _ c: MallCancelled, event: EventID, at t: Timestamp, v: ProgramVersions.Version,
                        out: inout EventOutcome, fx: inout Effects) throws {
        guard let i = s.exchanges.firstIndex(where: { $0.eventId == c.exchange }) else { throw EngineError.mall(.unknownExchange(c.exchange)) }
        guard s.exchanges[i].cancelledAt == nil else { throw EngineError.mall(.alreadyCancelled(c.exchange)) }
        if s.exchanges[i].kind == .donation { throw EngineError.mall(.notCancellable(c.exchange, reason: "a donation is final")) }
        if s.exchanges[i].grants.contains(where: { id in s.wallet.grant(id)?.use != nil }) {
            throw EngineError.mall(.notCancellable(c.exchange, reason: "a benefit it gave was used"))
        }
        s.exchanges[i].cancelledAt = t
        let x = s.exchanges[i]
        if x.points > 0 {
            addLot(&s, v: v, event: event, at: t, source: .adjustment, order: nil, points: x.points, pending: false, reason: .exchangeCancelled, note: "mall:\(x.item)", fx: &fx)
            out.pointsEarned = x.points
        }
        for id in x.grants {
            guard let gi = s.wallet.grants.firstIndex(where: { $0.id == id }), s.wallet.grants[gi].use == nil, s.wallet.grants[gi].revokedAt == nil else { continue }
            s.wallet.grants[gi].revokedAt = t
            fx.grants[id] = s.wallet.grants[gi]
        }
        fx.exchanges.append(s.exchanges[i])
    }

    /// Keeps exchanges the limits and cancellations can still need: the last 400 days.
    func pruneExchanges(_ s: inout MemberState) {
        guard let first = s.exchanges.first, first.at < s.asOf.adding(days: -400) else { return }
        // Lifetime limits count every exchange of their item: those are kept.
        s.exchanges.removeAll { $0.at < s.asOf.adding(days: -400) && $0.cancelledAt != nil }
    }
}

extension ProgramParser {
    static func mall(_ r: DocumentReader, _ v: JSONValue?, benefits: Set<String>, tiers: Set<String>) -> [MallItem] {
        var out: [MallItem] = []
        var seen = Set<String>()
        for (i, v) in (r.array(v, "mall", required: false, maxCount: 500) ?? []).enumerated() {
            let p = "mall[\(i)]"
            guard let o = r.object(v, p, allowed: ["id", "name", "description", "kind", "pointsPrice", "moneyMinor", "benefit", "stock", "limit",
                                                   "tiers", "visibleFrom", "visibleUntil", "image"]) else { continue }
            let id = r.string(o["id"], "\(p).id", maxLength: 64, pattern: Identifier.isValid, patternText: Identifier.rule)
            if let id, !seen.insert(id).inserted { r.fail("\(p).id", "'\(id)' is used by an earlier item") }
            let name = localized(r, o["name"], "\(p).name")
            let desc = o["description"] == nil ? nil : localizedLong(r, o["description"], "\(p).description")
            let kind = r.oneOf(o["kind"], "\(p).kind", MallItemKind.self)
            let price = r.int(o["pointsPrice"], "\(p).pointsPrice", max: EventValidator.maxPoints)
            let money = r.int(o["moneyMinor"], "\(p).moneyMinor", required: false, max: EventValidator.maxAmountMinor) ?? 0
            if price == 0 && money == 0 { r.fail("\(p).pointsPrice", "an item must cost points (or points plus money)") }
            var benefit: String? = nil
            if kind == .benefit {
                benefit = r.string(o["benefit"], "\(p).benefit", maxLength: 64)
                if let b = benefit, !benefits.contains(b) { r.fail("\(p).benefit", "names benefit '\(b)', which is not in benefits") }
            } else if o["benefit"] != nil { r.fail("\(p).benefit", "only applies to kind benefit") }
            let stock = r.int(o["stock"], "\(p).stock", required: false, max: 1_000_000_000)
            var limit: Int? = nil, per = MallLimitPeriod.lifetime
            if let l = r.object(o["limit"], "\(p).limit", allowed: ["count", "per"], required: false) {
                limit = r.int(l["count"], "\(p).limit.count", min: 1, max: 10_000).map { Int($0) }
                per = r.oneOf(l["per"], "\(p).limit.per", MallLimitPeriod.self, default: .lifetime) ?? .lifetime
            }
            let eligible = strings(r, o["tiers"], "\(p).tiers")
            for (j, t) in (eligible ?? []).enumerated() where !tiers.contains(t) { r.fail("\(p).tiers[\(j)]", "names tier '\(t)', which is not in tiers") }
            let from = r.timestamp(o["visibleFrom"], "\(p).visibleFrom", required: false)
            let until = r.timestamp(o["visibleUntil"], "\(p).visibleUntil", required: false)
            if let from, let until, until <= from { r.fail("\(p).visibleUntil", "must be after visibleFrom") }
            let image = r.string(o["image"], "\(p).image", required: false, maxLength: 500, pattern: { $0.hasPrefix("https://") || $0.hasPrefix("http://") || $0.hasPrefix("/") },
                                 patternText: "must be an http(s) URL or a path")
            if let id, let name, let kind, let price {
                out.append(MallItem(id: id, name: name, description: desc, kind: kind, pointsPrice: price, moneyMinor: money, benefit: benefit, initialStock: stock,
                                    limit: limit, limitPer: per, tiers: eligible, visibleFrom: from, visibleUntil: until, imageURL: image))
            }
        }
        return out
    }
}
