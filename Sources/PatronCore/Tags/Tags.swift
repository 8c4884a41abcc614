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
    /// A tag as a program document declares it; the rule is compiled and checked when the
    /// program is applied (`ProgramParser`), like a document's.
    public init(id: String, name: LocalizedText, category: TagCategory = .behaviour, rule: String? = nil, description: LocalizedText? = nil) {
        self.id = id; self.name = name; self.category = category; self.rule = rule; self.description = description
    }
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

/// What the engine keeps of an order for conditions (rule tags and segments): the last 400
/// days of orders.
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
    /// Reads nothing but the profile, the member's id and registration instant and the scores
    /// (`member.rfm`, …), by its compiled plan, and cannot run out of budget: only a profile
    /// change, new scores or time change its value, so other events leave it (and its timer) as it is.
    public var readsOnlyProfile: Bool
    /// Reads the scores (`member.rfm`, `member.lifecycle`, `member.churn`): evaluated again when
    /// the member is scored.
    public var readsScores: Bool
    /// Reads values that move with time alone in the state: available and pending points (a
    /// lot's pending period ends) or qualifying growth (growth leaves a rolling window, or a new
    /// period begins). The condition's own analysis sees them as fixed, so the engine also looks
    /// at such a rule again when they next move (`Engine.stateMoves`).
    public var readsTimedState: Bool
    public init(tag: TagDefinition, rule: Condition) {
        self.tag = tag; self.rule = rule
        readsState = ["member.points", "member.growth", "member.tier", "member.tags"].contains { rule.mentions($0) }
        readsOrders = rule.mentions("orders")
        let reads = rule.layout == .member ? rule.plan.reads : nil
        readsOnlyProfile = reads.map(Self.onlyProfile) ?? false
        readsTimedState = reads.map(Self.timedState) ?? true
        readsScores = reads.map(Self.scores) ?? true
    }

    /// `reads`: of a rule over the member layout.
    static func timedState(_ reads: CondReads) -> Bool {
        if reads.unnumbered { return true }
        let fields = MemberConditionSource.tables.fields
        return reads.slots.contains { slot in
            switch fields[slot] {
            case .available, .pending, .qualifying: true
            case .record(let path): path == "member" || path == "member.points" || path == "member.growth"
            default: false
            }
        }
    }

    static func onlyProfile(_ rule: Condition) -> Bool { rule.layout == .member && onlyProfile(rule.plan.reads) }

    static func onlyProfile(_ reads: CondReads) -> Bool {
        guard !reads.unnumbered, reads.lists.isEmpty, let steps = reads.maxSteps, steps <= Condition.defaultBudget else { return false }
        let fields = MemberConditionSource.tables.fields
        return reads.slots.allSatisfy { slot in
            switch fields[slot] {
            case .id, .registeredAt, .name, .gender, .birthday, .city, .registeredChannel, .registeredStore, .marketingConsent, .missing: true
            case .score, .scoreRecord: true
            case .record(let path): path == "member.profile"
            case .tier, .balance, .available, .pending, .lifetime, .qualifying, .tags, .lastOrderAt, .orderCount, .spentMinor: false
            }
        }
    }

    /// `reads`: of a rule over the member layout. Whether it reads the scores (RFM, lifecycle,
    /// churn), which change when the program's members are scored (`Engine.rescore`).
    static func scores(_ reads: CondReads) -> Bool {
        if reads.unnumbered { return true }
        let fields = MemberConditionSource.tables.fields
        return reads.slots.contains { slot in
            switch fields[slot] {
            case .score, .scoreRecord: true
            case .record(let path): path == "member"
            default: false
            }
        }
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
            "rfm": s.scores?.record(.rfm) ?? .null, "lifecycle": s.scores?.value(.lifecycle) ?? .null,
            "churn": s.scores?.record(.churn) ?? .null,
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

    /// Runs `body` with what conditions read of the member at `t` (read from the state when
    /// asked). The source is valid only inside `body`.
    public func withConditionSource<R>(_ s: MemberState, at t: Timestamp, _ body: (MemberConditionSource) throws -> R) rethrows -> R {
        try withUnsafePointer(to: self) { engine in
            try withUnsafePointer(to: s) { state in
                try body(MemberConditionSource(engine: engine, state: state, version: program.index(at: t), at: t))
            }
        }
    }

    /// Which rule tags to evaluate.
    enum TagRuleChoice {
        case all
        /// After an event: all, but those that read only the profile (`TagRule.readsOnlyProfile`)
        /// when the event did not set it and every rule was evaluated at an earlier event of the
        /// same program version (`MemberState.tagsEvaluatedVersion`): their value and timer stay.
        case event(setsProfile: Bool)
        /// Those that read points, growth, the tier or the tags (after a lapse or an assessment).
        case readingState
        /// Those whose timer is due at the instant.
        case due(Timestamp)
        /// Those that read the scores (after the member is scored).
        case scores
    }

    /// Re-evaluates the rule tags (`only` those chosen) at `t`: adds and removes what changed,
    /// and sets when each rule's truth could next change with time alone.
    func evaluateTags(_ s: inout MemberState, at t: Timestamp, event: EventID?, only choice: TagRuleChoice = .all, fx: inout Effects) {
        let vi = program.index(at: t)
        guard !program.versions[vi].tagRules.isEmpty else { s.tagsDueAt = nil; s.tagDue = [:]; return }
        let clock = program.versions[vi].clock
        struct Outcome { var rule: Int, holds: Bool, next: Timestamp? }
        // Rules are read in place (copying a rule copies its condition's tree and layout).
        program.versions[vi].tagRules.withUnsafeBufferPointer { rules in
        withUnsafeTemporaryAllocation(of: Outcome.self, capacity: rules.count) { outcomes in
            // Every chosen rule sees the member as it is before any of them changes a tag.
            var n = 0
            withUnsafePointer(to: self) { engine in
                withUnsafePointer(to: &s) { state in
                    let source = MemberConditionSource(engine: engine, state: state, version: vi, at: t)
                    // At a timer: the rules due, in one pass over the timers (there are few).
                    var due: UnsafeMutableBufferPointer<Bool>? = nil
                    if case .due(let at) = choice {
                        due = .allocate(capacity: rules.count)
                        due!.initialize(repeating: false)
                        for (id, when) in state.pointee.tagDue where when <= at {
                            let length = id.utf8.count
                            if let i = rules.firstIndex(where: { $0.tag.id.utf8.count == length && $0.tag.id == id }) { due![i] = true }
                        }
                    }
                    defer { due?.deallocate() }
                    let keepProfileRules: Bool
                    if case .event(let setsProfile) = choice {
                        keepProfileRules = !setsProfile && state.pointee.tagsEvaluatedVersion == program.versions[vi].version
                    } else {
                        keepProfileRules = false
                    }
                    for i in rules.indices {
                        switch choice {
                        case .all: break
                        case .event:
                            if keepProfileRules && rules[i].readsOnlyProfile {
                                // Kept only while its timer is not due (timers up to `t` ran before the event).
                                guard let k = Self.find(state.pointee.tagDue, rules[i].tag.id), state.pointee.tagDue.values[k] <= t else { continue }
                            }
                        case .readingState: if !rules[i].readsState { continue }
                        case .due: if !due![i] { continue }
                        case .scores: if !rules[i].readsScores { continue }
                        }
                        // A rule that cannot be evaluated (over its budget) keeps the tag as it is and
                        // is tried again the next local day (keeping its old timer would leave it due
                        // at an instant already passed, and the clock would never get past it).
                        let outcome: Outcome
                        switch rules[i].rule.holdsAndNextChange(source, now: t, clock: clock) {
                        case .success(let (holds, next)): outcome = Outcome(rule: i, holds: holds, next: next)
                        case .failure: outcome = Outcome(rule: i, holds: Self.find(state.pointee.tags, rules[i].tag.id) != nil, next: clock.startOfNextDay(t))
                        }
                        outcomes.initializeElement(at: n, to: outcome)
                        n += 1
                    }
                }
            }
            if case .event = choice { s.tagsEvaluatedVersion = program.versions[vi].version }
            guard n > 0 else { return }
            // When the state's time-bound values next move, for the rules that read them (tag
            // changes below do not move them).
            let moves = outcomes[..<n].contains { rules[$0.rule].readsTimedState } ? stateMoves(s, after: t, version: vi) : nil
            for o in outcomes[..<n] {
                let id = rules[o.rule].tag.id
                if o.holds != (Self.find(s.tags, id) != nil) { changeTag(&s, id, add: o.holds, at: t, cause: .rule, event: event, by: nil, reason: nil, fx: &fx) }
                // Uses of `now` the analysis cannot follow are looked at again the next local day,
                // not every second.
                var due = o.next.map { rules[o.rule].rule.timeIsLinear ? max($0, t.adding(seconds: 1)) : clock.startOfNextDay(t) }
                if rules[o.rule].readsTimedState, let moves { due = min(due ?? moves, moves) }
                if let k = Self.find(s.tagDue, id) {
                    if let due { if s.tagDue.values[k] != due { s.tagDue.values[k] = due } } else { s.tagDue.remove(at: k) }
                } else if let due {
                    s.tagDue[id] = due
                }
            }
            s.tagsDueAt = s.tagDue.values.min()
        }
        }
    }

    /// The first instant after `t` at which the state's time-bound values move without an event:
    /// a lot's points become available, or qualifying growth changes (an entry counts from a
    /// later instant, leaves a rolling window, or a calendar period begins).
    func stateMoves(_ s: MemberState, after t: Timestamp, version vi: Int) -> Timestamp? {
        var next: Timestamp? = nil
        func consider(_ x: Timestamp) { if x > t, next.map({ x < $0 }) ?? true { next = x } }
        for l in s.lots where l.remaining > 0 { consider(l.availableAt) }
        let v = program.versions[vi], a = v.definition.assessment
        switch a.kind {
        case .lifetime: break
        case .rolling:
            // An entry leaves the window when the window's start reaches it.
            let days = a.windowDays ?? 365
            for w in s.window { consider(w.countsAt); consider(w.countsAt.adding(days: days)) }
        case .calendar:
            for w in s.window { consider(w.countsAt) }
            if !s.window.isEmpty { consider(periodEnd(containing: t, a.period ?? .year, v.clock)) }
        }
        return next
    }

    /// Where `key` is in `d`: by comparing keys when there are few (a member has a few tags and
    /// timers, and hashing a tag's id costs more than comparing it with a few others).
    static func find<V>(_ d: [String: V], _ key: String) -> Dictionary<String, V>.Index? {
        if d.isEmpty { return nil }
        guard d.count <= 8 else { return d.index(forKey: key) }
        let length = key.utf8.count
        var i = d.startIndex
        while i != d.endIndex {
            let k = d.keys[i]
            if k.utf8.count == length && k == key { return i }
            d.formIndex(after: &i)
        }
        return nil
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

    /// Keeps what conditions (rule tags, segments) see of an order.
    func recordOrderFact(_ s: inout MemberState, _ o: OrderPaid, at t: Timestamp, v: ProgramVersions.Version) {
        var cats: [String] = [], skus: [String] = []
        for l in o.lines {
            if let c = l.category, !cats.contains(c) { cats.append(c) }
            if skus.count < 20, !skus.contains(l.sku) { skus.append(l.sku) }
        }
        // By index: iterating the grants would copy each one.
        var coupon = o.discountMinor > 0 || o.lines.contains { $0.discountMinor > 0 }
        var g = 0
        while !coupon && g < s.wallet.grants.count {
            coupon = s.wallet.grants[g].use?.orderId == o.orderId
            g += 1
        }
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

extension ProgramVersions {
    /// The index of the version in force at `t` (what `at(t)` gives, without copying it).
    func index(at t: Timestamp) -> Int {
        if versions.count == 1 { return 0 }
        var lo = 0, hi = versions.count - 1
        while lo < hi { let mid = (lo + hi + 1) / 2; if versions[mid].effectiveFrom <= t { lo = mid } else { hi = mid - 1 } }
        return lo
    }
}

/// A member's state at an instant as conditions see it (`CondSchema.member`, by the numbers of
/// `CondLayout.member`): what `Engine.conditionInputs` gives, computed only when read. Orders
/// are the state's order facts, in time order.
public struct MemberConditionSource: CondSource {
    enum Field {
        case id, tier, registeredAt, name, gender, birthday, city, registeredChannel, registeredStore, marketingConsent
        case balance, available, pending, lifetime, qualifying, tags, lastOrderAt, orderCount, spentMinor
        /// A score (`MemberState.scores`), and a record of them (`member.rfm`, `member.churn`).
        case score(ScoreField), scoreRecord(ScoreField.Record)
        /// Paths not kept: `member.identities` (kept outside the member's history; refused in
        /// tag rules).
        case missing
        /// Record-valued paths (`member`, `member.profile`, …), from `conditionInputs`.
        case record(String)
    }
    enum OrderField { case id, at, amount, category, categories, channel, store, skus, usedCoupon, missing }

    /// The tables below, kept where a source can point at them (a static is looked up through
    /// a one-time check at every use; a source reads its fields millions of times).
    struct Tables: @unchecked Sendable {
        let fields: UnsafeBufferPointer<Field>
        let orderFields: UnsafeBufferPointer<OrderField>
        let ordersList: Int
        /// Never freed: one per process.
        init() {
            func kept<T>(_ xs: [T]) -> UnsafeBufferPointer<T> {
                let p = UnsafeMutableBufferPointer<T>.allocate(capacity: xs.count)
                _ = p.initialize(from: xs)
                return UnsafeBufferPointer(p)
            }
            fields = kept(MemberConditionSource.fields)
            orderFields = kept(MemberConditionSource.orderFields)
            ordersList = MemberConditionSource.ordersList
        }
    }
    static let tables = Tables()

    static let fields: [Field] = {
        let named: [String: Field] = [
            "member.id": .id, "member.tier": .tier, "member.registeredAt": .registeredAt,
            "member.profile.name": .name, "member.profile.gender": .gender, "member.profile.birthday": .birthday,
            "member.profile.city": .city, "member.profile.registeredChannel": .registeredChannel,
            "member.profile.registeredStore": .registeredStore, "member.profile.marketingConsent": .marketingConsent,
            "member.points.balance": .balance, "member.points.available": .available, "member.points.pending": .pending,
            "member.growth.lifetime": .lifetime, "member.growth.qualifying": .qualifying,
            "member.tags": .tags, "member.lastOrderAt": .lastOrderAt, "member.orderCount": .orderCount, "member.spentMinor": .spentMinor,
            "member": .record("member"), "member.profile": .record("member.profile"), "member.points": .record("member.points"),
            "member.growth": .record("member.growth"),
        ].merging(ScoreField.paths.mapValues { .score($0) }) { a, _ in a }
         .merging(ScoreField.recordPaths.mapValues { .scoreRecord($0) }) { a, _ in a }
        var out = [Field](repeating: .missing, count: CondLayout.member.slots.count)
        for (path, slot) in CondLayout.member.slots { out[slot] = named[path] ?? .missing }
        return out
    }()
    static let ordersList = CondLayout.member.lists["orders"]!
    static let orderFields: [OrderField] = {
        let named: [String: OrderField] = ["id": .id, "at": .at, "amount": .amount, "category": .category, "categories": .categories,
                                           "channel": .channel, "store": .store, "skus": .skus, "usedCoupon": .usedCoupon]
        var out = [OrderField](repeating: .missing, count: CondLayout.member.fields[ordersList].count)
        for (name, f) in CondLayout.member.fields[ordersList] { out[f] = named[name] ?? .missing }
        return out
    }()

    // Pointers, so that the source costs nothing to copy: it lives only while the engine and the
    // state it points to are held still (`Engine.withConditionSource`, `evaluateTags`).
    private let enginePointer: UnsafePointer<Engine>
    private let statePointer: UnsafePointer<MemberState>
    private let tables: Tables
    /// The index of the program's version in force at `t`.
    let version: Int
    let t: Timestamp
    var engine: Engine { _read { yield enginePointer.pointee } }
    var state: MemberState { _read { yield statePointer.pointee } }

    init(engine: UnsafePointer<Engine>, state: UnsafePointer<MemberState>, version: Int, at t: Timestamp) {
        enginePointer = engine; statePointer = state; self.version = version; self.t = t
        tables = Self.tables
    }

    public func value(_ slot: Int) -> CondValue {
        let s = statePointer
        switch tables.fields[slot] {
        case .id: return .string(s.pointee.memberId.description)
        case .tier: return .string(s.pointee.tier.tierId)
        case .registeredAt: return .timestamp(s.pointee.registeredAt)
        case .name: return s.pointee.profile?.name.map { .string($0) } ?? .null
        case .gender: return s.pointee.profile?.gender.map { .string($0.rawValue) } ?? .null
        case .birthday: return s.pointee.profile?.birthday.map { .date($0) } ?? .null
        case .city: return s.pointee.profile?.city.map { .string($0) } ?? .null
        case .registeredChannel: return s.pointee.profile?.registeredChannel.map { .string($0) } ?? .null
        case .registeredStore: return s.pointee.profile?.registeredStore.map { .string($0) } ?? .null
        case .marketingConsent: return s.pointee.profile?.marketingConsent.map { .bool($0) } ?? .null
        case .balance: return .int(s.pointee.balance)
        case .available: return .int(s.pointee.available(at: t))
        case .pending: return .int(s.pointee.pending(at: t))
        case .lifetime: return .int(s.pointee.growthTotal)
        case .qualifying:
            return .int(engine.qualifying(s.pointee, engine.program.versions[version].definition, v: engine.program.versions[version], at: t))
        case .tags: return .list(s.pointee.tags.keys.sorted().map { .string($0) })
        case .lastOrderAt:
            let n = s.pointee.orderFacts.count
            return n > 0 ? .timestamp(s.pointee.orderFacts[n - 1].at) : s.pointee.lastOrderAt.map { .timestamp($0) } ?? .null
        case .orderCount: return .int(Int64(s.pointee.orderCount))
        case .spentMinor: return .int(s.pointee.spentMinor)
        case .score(let f): return s.pointee.scores?.value(f) ?? .null
        case .scoreRecord(let r): return s.pointee.scores?.record(r) ?? .null
        case .missing: return .null
        case .record(let path):
            var v = engine.conditionInputs(s.pointee, at: t, orders: false)["member"] ?? .null
            for p in path.split(separator: ".").dropFirst() {
                if case .record(let fs) = v { v = fs[String(p)] ?? .null } else { v = .null }
            }
            return v
        }
    }

    public func count(_ list: Int) -> Int { list == tables.ordersList ? state.orderFacts.count : 0 }

    public func field(_ list: Int, _ index: Int, _ field: Int) -> CondValue {
        guard list == tables.ordersList else { return .null }
        switch tables.orderFields[field] {
        case .id: return .string(state.orderFacts[index].orderId)
        case .at: return .timestamp(state.orderFacts[index].at)
        case .amount: return .int(state.orderFacts[index].amountMinor)
        case .category: return state.orderFacts[index].categories.first.map { .string($0) } ?? .null
        case .categories: return .list(state.orderFacts[index].categories.map { .string($0) })
        case .channel: return .string(state.orderFacts[index].channel ?? "")
        case .store: return state.orderFacts[index].store.map { .string($0) } ?? .null
        case .skus: return .list(state.orderFacts[index].skus.map { .string($0) })
        case .usedCoupon: return .bool(state.orderFacts[index].usedCoupon)
        case .missing: return .null
        }
    }

    /// Order facts are kept in time order.
    public func timeOrdered(_ list: Int) -> Bool { true }
}
