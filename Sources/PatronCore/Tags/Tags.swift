import Foundation

public enum TagCategory: String, Codable, Sendable, CaseIterable { case behaviour, preference, lifecycle, value }

/// A tag of the program (标签). With a `rule` it keeps itself true: the engine evaluates the rule
/// whenever an event touches the member and at the instant its truth could change with time.
/// Without one it is a manual tag that staff add and remove.
public struct TagDefinition: Codable, Sendable, Equatable {
    public var id: String
    public var name: LocalizedText
    public var category: TagCategory
    /// A condition (docs/conditions.md) over `member` and `orders`.
    public var rule: String?
    public var description: LocalizedText?
}

/// A tag a member has.
public struct TagMark: Codable, Sendable, Equatable {
    public var since: Timestamp
    /// Set by staff (a manual tag) rather than by its rule.
    public var manual: Bool
    public var by: String?
}

public enum TagCause: String, Codable, Sendable { case rule, manual }

/// One tag added to or removed from a member (`tag.added`, `tag.removed`), with its cause.
public struct TagChange: Codable, Sendable, Equatable {
    public var no: Int
    public var tag: String
    public var added: Bool
    public var at: Timestamp
    public var cause: TagCause
    public var eventId: EventID?
    public var by: String?
    public var reason: String?
    public var event: String { added ? "tag.added" : "tag.removed" }
}

/// Staff add or remove a manual tag.
public struct TagSet: Codable, Sendable, Equatable {
    public var tag: String
    public var add: Bool
    public var by: String
    public var reason: String?
    public init(tag: String, add: Bool, by: String, reason: String? = nil) { self.tag = tag; self.add = add; self.by = by; self.reason = reason }
}

/// What the engine keeps of an order for conditions: the last 400 days of orders, for
/// programs with rule tags.
public struct OrderFact: Codable, Sendable, Equatable {
    public var orderId: String
    public var at: Timestamp
    public var amountMinor: Int64
    public var categories: [String]
    public var skus: [String]
    public var channel: String?
    public var store: String?
    public var usedCoupon: Bool
}

/// A rule tag compiled, with what it reads (so the engine evaluates it only when that changes).
public struct TagRule: Sendable {
    public var tag: TagDefinition
    public var rule: Condition
    /// Reads points, growth, the tier or the tags (changed by the clock: lapses, assessments).
    public var readsState: Bool
    /// Reads the order list.
    public var readsOrders: Bool
    /// Every identifier in the rule: the record fields it may read (a superset: fields are named
    /// after a dot, or bare in aggregates such as `sum(amount)`).
    public var names: Set<String>
    public init(tag: TagDefinition, rule: Condition) {
        self.tag = tag; self.rule = rule
        readsState = ["member.points", "member.growth", "member.tier", "member.tags"].contains { rule.mentions($0) }
        readsOrders = rule.mentions("orders")
        var names = Set<String>(), current = ""
        for c in rule.source + " " {
            if c.isLetter || c.isNumber || c == "_" { current.append(c) } else {
                if !current.isEmpty { names.insert(current) }
                current = ""
            }
        }
        self.names = names
    }
}

public enum TagRefusal: Error, Sendable, Equatable {
    case unknownTag(String)
    /// A rule tag follows its rule; staff cannot set it.
    case ruleTag(String)
}

extension ProgramParser {
    static func tags(_ r: DocumentReader, _ v: JSONValue?) -> [TagDefinition] {
        var out: [TagDefinition] = []
        var seen = Set<String>()
        for (i, v) in (r.array(v, "tags", required: false, maxCount: 500) ?? []).enumerated() {
            let p = "tags[\(i)]"
            guard let o = r.object(v, p, allowed: ["id", "name", "category", "rule", "description"]) else { continue }
            let id = r.string(o["id"], "\(p).id", maxLength: 64, pattern: Identifier.isValid, patternText: Identifier.rule)
            if let id, !seen.insert(id).inserted { r.fail("\(p).id", "'\(id)' is used by an earlier tag") }
            let name = localized(r, o["name"], "\(p).name")
            let category = r.oneOf(o["category"], "\(p).category", TagCategory.self, default: .behaviour)
            let desc = o["description"] == nil ? nil : localizedLong(r, o["description"], "\(p).description")
            let rule = r.string(o["rule"], "\(p).rule", required: false, maxLength: Condition.maxSourceLength)
            var normal: String? = nil
            if let rule {
                if rule.contains("member.identities") {
                    r.fail("\(p).rule", "member.identities is not available to tag rules yet (identities are kept outside the member's history)")
                }
                switch Condition.compile(rule, schema: .member) {
                case .success(let c): normal = c.source
                case .failure(let e): r.fail("\(p).rule", "\(e)")
                }
            }
            if let id, let name, let category { out.append(TagDefinition(id: id, name: name, category: category, rule: normal, description: desc)) }
        }
        return out
    }
}

extension Engine {
    /// The member and their recent orders as conditions see them.
    /// `fields`: the order fields to fill in (all when nil); others read as null, so pass every
    /// field the conditions evaluated may name.
    public func conditionInputs(_ s: MemberState, at t: Timestamp, orders withOrders: Bool = true, fields: Set<String>? = nil) -> [String: CondValue] {
        let v = program.at(t), p = v.definition
        var profile: [String: CondValue] = [:]
        if let pr = s.profile {
            profile["name"] = pr.name.map { .string($0) } ?? .null
            profile["gender"] = pr.gender.map { .string($0.rawValue) } ?? .null
            profile["birthday"] = pr.birthday.map { .date($0) } ?? .null
            profile["city"] = pr.city.map { .string($0) } ?? .null
            profile["registeredChannel"] = pr.registeredChannel.map { .string($0) } ?? .null
            profile["registeredStore"] = pr.registeredStore.map { .string($0) } ?? .null
            profile["marketingConsent"] = pr.marketingConsent.map { .bool($0) } ?? .null
        }
        let member: [String: CondValue] = [
            "id": .string(s.memberId.description), "tier": .string(s.tier.tierId), "registeredAt": .timestamp(s.registeredAt),
            "profile": .record(profile),
            "points": .record(["balance": .int(s.balance), "available": .int(s.available(at: t)), "pending": .int(s.pending(at: t))]),
            "growth": .record(["lifetime": .int(s.growthTotal), "qualifying": .int(qualifying(s, p, v: v, at: t))]),
            "tags": .list(s.tags.keys.sorted().map { .string($0) }),
            "lastOrderAt": s.orderFacts.last.map { .timestamp($0.at) } ?? s.lastOrderAt.map { .timestamp($0) } ?? .null,
            "orderCount": .int(Int64(s.orderCount)), "spentMinor": .int(s.spentMinor),
        ]
        guard withOrders else { return ["member": .record(member)] }
        func want(_ f: String) -> Bool { fields?.contains(f) ?? true }
        let orders: [CondValue] = s.orderFacts.map { o in
            // `at` always: `within` reads it.
            var r: [String: CondValue] = ["at": .timestamp(o.at)]
            if want("id") { r["id"] = .string(o.orderId) }
            if want("amount") { r["amount"] = .int(o.amountMinor) }
            if want("category") { r["category"] = o.categories.first.map { .string($0) } ?? .null }
            if want("categories") { r["categories"] = .list(o.categories.map { .string($0) }) }
            if want("channel") { r["channel"] = .string(o.channel ?? "") }
            if want("store") { r["store"] = o.store.map { .string($0) } ?? .null }
            if want("skus") { r["skus"] = .list(o.skus.map { .string($0) }) }
            if want("usedCoupon") { r["usedCoupon"] = .bool(o.usedCoupon) }
            return .record(r)
        }
        return ["member": .record(member), "orders": .list(orders)]
    }

    /// Re-evaluates the rule tags (`only` those chosen) at `t`: adds and removes what changed,
    /// and sets when each rule's truth could next change with time alone.
    func evaluateTags(_ s: inout MemberState, at t: Timestamp, event: EventID?, only: (TagRule) -> Bool = { _ in true }, fx: inout Effects) {
        let v = program.at(t)
        guard !v.tagRules.isEmpty else { s.tagsDueAt = nil; s.tagDue = [:]; return }
        let rules = v.tagRules.filter(only)
        guard !rules.isEmpty else { return }
        let env = conditionInputs(s, at: t, orders: rules.contains { $0.readsOrders }, fields: v.tagRuleNames)
        for r in rules {
            // A rule that cannot be evaluated (over its budget) keeps the tag as it is.
            guard case .success(let (holds, next)) = r.rule.holdsAndNextChange(env, now: t, clock: v.clock) else { continue }
            if holds != (s.tags[r.tag.id] != nil) { changeTag(&s, r.tag.id, add: holds, at: t, cause: .rule, event: event, by: nil, reason: nil, fx: &fx) }
            // Uses of `now` the analysis cannot follow are looked at again the next local day,
            // not every second.
            s.tagDue[r.tag.id] = next.map { r.rule.timeIsLinear ? max($0, t.adding(seconds: 1)) : v.clock.startOfNextDay(t) }
        }
        s.tagsDueAt = s.tagDue.values.min()
    }

    func changeTag(_ s: inout MemberState, _ tag: String, add: Bool, at t: Timestamp, cause: TagCause, event: EventID?, by: String?, reason: String?, fx: inout Effects) {
        if add { s.tags[tag] = TagMark(since: t, manual: cause == .manual, by: by) } else { s.tags[tag] = nil }
        fx.tagChanges.append(TagChange(no: s.nextTagChangeNo, tag: tag, added: add, at: t, cause: cause, eventId: event, by: by, reason: reason))
        s.nextTagChangeNo += 1
    }

    func setTag(_ s: inout MemberState, _ c: TagSet, event: EventID, at t: Timestamp, v: ProgramVersions.Version, out: inout EventOutcome, fx: inout Effects) throws {
        guard let def = v.definition.tags.first(where: { $0.id == c.tag }) else { throw EngineError.tag(.unknownTag(c.tag)) }
        guard def.rule == nil else { throw EngineError.tag(.ruleTag(c.tag)) }
        if (s.tags[c.tag] != nil) != c.add {
            changeTag(&s, c.tag, add: c.add, at: t, cause: .manual, event: event, by: c.by, reason: c.reason, fx: &fx)
        } else {
            out.note = c.add ? "the member already has '\(c.tag)'" : "the member does not have '\(c.tag)'"
        }
    }

    /// Keeps what conditions see of an order (programs with rule tags only).
    func recordOrderFact(_ s: inout MemberState, _ o: OrderPaid, at t: Timestamp, v: ProgramVersions.Version) {
        guard !v.tagRules.isEmpty else { return }
        var cats: [String] = [], skus: [String] = []
        for l in o.lines {
            if let c = l.category, !cats.contains(c) { cats.append(c) }
            if skus.count < 20, !skus.contains(l.sku) { skus.append(l.sku) }
        }
        let coupon = o.discountMinor > 0 || o.lines.contains { $0.discountMinor > 0 } || s.wallet.grants.contains { $0.use?.orderId == o.orderId }
        let fact = OrderFact(orderId: o.orderId, at: t, amountMinor: o.paidMinor, categories: cats, skus: skus, channel: o.channel, store: o.store, usedCoupon: coupon)
        let i = s.orderFacts.firstIndex { $0.at > t } ?? s.orderFacts.count
        s.orderFacts.insert(fact, at: i)
        let horizon = s.asOf.adding(days: -Self.orderFactDays)
        if let f = s.orderFacts.first, f.at < horizon { s.orderFacts.removeAll { $0.at < horizon } }
        if s.orderFacts.count > Self.maxOrderFacts { s.orderFacts.removeFirst(s.orderFacts.count - Self.maxOrderFacts) }
    }

    static let orderFactDays = 400
    static let maxOrderFacts = 1000
}
