import Foundation

/// A segment (人群): a named condition over members (docs/conditions.md), a fixed list of
/// members (uploaded ids or identities), or the two combined.
public struct SegmentDefinition: Codable, Sendable, Equatable {
    public enum Combine: String, Codable, Sendable, CaseIterable {
        /// Members on the list for whom the condition holds.
        case and
        /// Members on the list, and members for whom the condition holds.
        case or
    }
    public var id: String
    public var name: LocalizedText
    public var description: LocalizedText?
    /// The condition in its normal form.
    public var condition: String?
    /// The fixed list: member ids, with identities already resolved to them.
    public var members: [MemberID]?
    public var combine: Combine
    public init(id: String, name: LocalizedText, description: LocalizedText? = nil, condition: String? = nil, members: [MemberID]? = nil, combine: Combine = .and) {
        self.id = id; self.name = name; self.description = description; self.condition = condition; self.members = members; self.combine = combine
    }

    /// Most members a fixed list may name.
    public static let maxListed = 1_000_000
}

/// A segment's definition as written, before identities are resolved to members.
public struct SegmentDraft: Sendable, Equatable {
    public var definition: SegmentDefinition
    /// Listed identities, still to be resolved (by the store), with their paths for errors.
    public var identities: [(path: String, identity: Identity)]
    public init(definition: SegmentDefinition, identities: [(path: String, identity: Identity)] = []) {
        self.definition = definition; self.identities = identities
    }
    public static func == (a: SegmentDraft, b: SegmentDraft) -> Bool {
        a.definition == b.definition && a.identities.map(\.path) == b.identities.map(\.path) && a.identities.map(\.identity) == b.identities.map(\.identity)
    }
}

public enum SegmentParser {
    /// Reads a segment document (JSON or YAML as a `JSONValue`). A preview (`requireId: false`)
    /// needs neither an id nor a name. Every error names its field.
    public static func parse(_ doc: JSONValue, requireId: Bool = true) -> Result<SegmentDraft, ValidationFailure> {
        let r = DocumentReader()
        guard let o = r.object(doc, "", allowed: ["id", "name", "description", "condition", "members", "identities", "combine"]) else {
            return .failure(ValidationFailure(r.errors))
        }
        let id = r.string(o["id"], "id", required: requireId, maxLength: 64, pattern: Identifier.isValid, patternText: Identifier.rule)
        let name = requireId || o["name"] != nil ? ProgramParser.localized(r, o["name"], "name") : LocalizedText(zh: "", en: "")
        let desc = o["description"] == nil ? nil : ProgramParser.localizedLong(r, o["description"], "description")
        var condition: String? = nil
        if let text = r.string(o["condition"], "condition", required: false, maxLength: Condition.maxSourceLength) {
            if text.contains("member.identities") {
                r.fail("condition", "member.identities is not available to segments yet (identities are kept outside the member's history)")
            }
            switch Condition.compile(text, schema: .member) {
            case .success(let c): condition = c.source
            case .failure(let e): r.fail("condition", "\(e)")
            }
        }
        var members: [MemberID]? = nil
        if let xs = r.array(o["members"], "members", required: false, maxCount: SegmentDefinition.maxListed) {
            var seen = Set<Int64>(), out: [MemberID] = []
            for (i, x) in xs.enumerated() {
                guard let n = r.int(x, "members[\(i)]", min: 1, max: Int64.max) else { continue }
                if seen.insert(n).inserted { out.append(MemberID(n)) }
            }
            members = out
        }
        var identities: [(String, Identity)] = []
        for (i, x) in (r.array(o["identities"], "identities", required: false, maxCount: SegmentDefinition.maxListed) ?? []).enumerated() {
            let p = "identities[\(i)]"
            guard let io = r.object(x, p, allowed: ["kind", "value"]) else { continue }
            let kind = r.oneOf(io["kind"], "\(p).kind", IdentityKind.self)
            let value = r.string(io["value"], "\(p).value", maxLength: 128)
            if let kind, let value { identities.append((p, Identity(kind: kind, value: value))) }
        }
        let combine = r.oneOf(o["combine"], "combine", SegmentDefinition.Combine.self, default: .and)
        if condition == nil && members == nil && o["identities"] == nil && o["condition"] == nil {
            r.fail("condition", "a segment needs a condition, a list of members or identities, or both")
        }
        if o["combine"] != nil && (o["condition"] == nil || (o["members"] == nil && o["identities"] == nil)) {
            r.fail("combine", "only applies when the segment has both a condition and a list")
        }
        guard r.errors.isEmpty, let combine, let name else { return .failure(ValidationFailure(r.errors)) }
        let def = SegmentDefinition(id: id ?? "preview", name: name, description: desc, condition: condition,
                                    members: members ?? (identities.isEmpty ? nil : []), combine: combine)
        return .success(SegmentDraft(definition: def, identities: identities))
    }
}

/// What is known of a segment's members: how many, and their make-up (群体画像).
public struct SegmentComposition: Codable, Sendable, Equatable {
    public struct Bucket: Codable, Sendable, Equatable {
        public var key: String
        public var members: Int
    }
    public struct RFMCell: Codable, Sendable, Equatable {
        public var r: Int, f: Int, members: Int
    }
    /// Members in the segment, and members of the program.
    public var members: Int
    public var ofMembers: Int
    /// Members by tier (in the program's order), lifecycle stage, RFM recency × frequency (scored
    /// members only), gender, city (the 10 largest, then `other`), registered channel; `null` is
    /// the key of a missing value.
    public var tiers: [Bucket]
    public var lifecycle: [Bucket]
    public var rfm: [RFMCell]
    public var gender: [Bucket]
    public var cities: [Bucket]
    public var channels: [Bucket]
    /// Lifetime spend and orders per member, and the average order value, over the segment.
    public var averageSpentMinor: Int64
    public var averageOrders: Double
    public var averageOrderValueMinor: Int64
    /// The first members found (ascending by when they were loaded), for a look at who is in.
    public var sample: [MemberID]
    /// Members whose evaluation failed (over its budget): counted out, with the first error.
    public var failed: Int
    public var firstError: String?
}

/// A partial count over some rows; tallies of disjoint rows merge.
public struct SegmentTally: Sendable {
    public var members = 0
    var tiers: [UInt32: Int] = [:]
    var lifecycle = [Int](repeating: 0, count: LifecycleStage.allCases.count + 1)
    var rfm = [Int](repeating: 0, count: 36)
    var gender = [Int](repeating: 0, count: Gender.allCases.count + 1)
    var cities: [UInt32: Int] = [:]
    var channels: [UInt32: Int] = [:]
    var spent: Int64 = 0, orders: Int64 = 0
    public var sample: [MemberID] = []
    public var matched: [MemberID]? = nil
    public var failed = 0
    public var firstError: String?
    public init() {}

    public mutating func merge(_ o: SegmentTally, sampleSize: Int) {
        members += o.members
        tiers.merge(o.tiers, uniquingKeysWith: +); cities.merge(o.cities, uniquingKeysWith: +); channels.merge(o.channels, uniquingKeysWith: +)
        for i in lifecycle.indices { lifecycle[i] += o.lifecycle[i] }
        for i in rfm.indices { rfm[i] += o.rfm[i] }
        for i in gender.indices { gender[i] += o.gender[i] }
        spent &+= o.spent; orders &+= o.orders
        sample.append(contentsOf: o.sample.prefix(max(0, sampleSize - sample.count)))
        if let m = o.matched { matched = (matched ?? []) + m }
        failed += o.failed
        if firstError == nil { firstError = o.firstError }
    }
}

extension MemberFacts {
    /// Counts the rows in `rows` for which `matches` holds, with their make-up. `collect` keeps
    /// every matching member id (for exports and saved memberships).
    public func tally(rows: Range<Int>, sampleSize: Int = 20, collect: Bool = false,
                      _ matches: (Int) -> Result<Bool, CondError>) -> SegmentTally {
        var t = SegmentTally()
        if collect { t.matched = [] }
        for r in rows where present[r] {
            switch matches(r) {
            case .failure(let e):
                t.failed += 1
                if t.firstError == nil { t.firstError = "member \(ids[r]): \(e)" }
                continue
            case .success(false): continue
            case .success(true): break
            }
            t.members += 1
            t.tiers[tier[r], default: 0] += 1
            t.lifecycle[Int(lifecycle[r])] += 1
            if rfmR[r] > 0, rfmF[r] > 0 { t.rfm[Int(rfmR[r]) * 6 + Int(rfmF[r])] += 1 }
            t.gender[Int(gender[r])] += 1
            t.cities[city[r], default: 0] += 1
            t.channels[regChannel[r], default: 0] += 1
            t.spent &+= spentMinor[r]; t.orders &+= orderCount[r]
            if t.sample.count < sampleSize { t.sample.append(MemberID(ids[r])) }
            t.matched?.append(MemberID(ids[r]))
        }
        return t
    }

    /// The make-up of a tally, with the program's tiers in order.
    public func composition(_ t: SegmentTally, tiers order: [String]) -> SegmentComposition {
        func buckets(_ d: [UInt32: Int], top: Int? = nil) -> [SegmentComposition.Bucket] {
            var all = d.filter { $0.value > 0 }.map { SegmentComposition.Bucket(key: string($0.key) ?? "null", members: $0.value) }
                .sorted { ($0.members, $1.key) > ($1.members, $0.key) }
            if let top, all.count > top {
                let rest = all[top...].reduce(0) { $0 + $1.members }
                all = Array(all.prefix(top)) + [.init(key: "other", members: rest)]
            }
            return all
        }
        var tierBuckets: [SegmentComposition.Bucket] = order.map { id in
            .init(key: id, members: stringId(id).flatMap { t.tiers[$0] } ?? 0)
        }
        for (k, n) in t.tiers where !order.contains(string(k) ?? "") { tierBuckets.append(.init(key: string(k) ?? "null", members: n)) }
        let stages = ["null"] + LifecycleStage.allCases.map(\.rawValue)
        let genders = ["null"] + Gender.allCases.map(\.rawValue)
        var cells: [SegmentComposition.RFMCell] = []
        for r in 1...5 { for f in 1...5 { cells.append(.init(r: r, f: f, members: t.rfm[r * 6 + f])) } }
        return SegmentComposition(
            members: t.members, ofMembers: count, tiers: tierBuckets,
            lifecycle: stages.indices.compactMap { t.lifecycle[$0] > 0 ? .init(key: stages[$0], members: t.lifecycle[$0]) : nil },
            rfm: cells,
            gender: genders.indices.compactMap { t.gender[$0] > 0 ? .init(key: genders[$0], members: t.gender[$0]) : nil },
            cities: buckets(t.cities, top: 10), channels: buckets(t.channels),
            averageSpentMinor: t.members == 0 ? 0 : t.spent / Int64(t.members),
            averageOrders: t.members == 0 ? 0 : Double(t.orders) / Double(t.members),
            averageOrderValueMinor: t.orders == 0 ? 0 : t.spent / t.orders,
            sample: t.sample, failed: t.failed, firstError: t.firstError)
    }
}

/// How a member entered or left a saved segment (`segment.entered`, `segment.exited`).
public enum SegmentCause: String, Codable, Sendable, CaseIterable {
    /// The segment was saved or its definition changed: its first evaluation.
    case saved
    /// The member changed (an event, a job, a score).
    case member
    /// A time condition flipped at its instant.
    case time
    /// A full evaluation found a change made while nobody was evaluating (a restart).
    case recheck
}

/// A segment ready to evaluate: its condition compiled once, its list as a set.
public struct CompiledSegment: Sendable {
    public let definition: SegmentDefinition
    public let condition: Condition?
    public let listed: Set<Int64>?

    public init(_ definition: SegmentDefinition) throws(CondError) {
        self.definition = definition
        listed = definition.members.map { Set($0.map(\.rawValue)) }
        switch definition.condition.map({ Condition.compile($0, schema: .member) }) {
        case .success(let c)?: condition = c
        case .failure(let e)?: throw e
        case nil: condition = nil
        }
    }

    /// The answer when the list decides alone: no condition, or `and` with the member off the
    /// list, or `or` with them on it; nil when the condition must be evaluated.
    func listDecides(_ member: Int64) -> Bool? {
        let onList = listed.map { $0.contains(member) }
        guard condition != nil else { return onList ?? false }
        guard let onList else { return nil }
        switch definition.combine {
        case .and: return onList ? nil : false
        case .or: return onList ? true : nil
        }
    }

    /// Counts the segment's members among `rows` of `facts`, with their make-up.
    public func tally(_ facts: MemberFacts, rows: Range<Int>, now: Timestamp, clock: ProgramClock,
                      sampleSize: Int = 20, collect: Bool = false) -> SegmentTally {
        let cursor = MemberFactsCursor(facts)
        return facts.tally(rows: rows, sampleSize: sampleSize, collect: collect) { r in
            if let decided = listDecides(facts.ids[r]) { return .success(decided) }
            cursor.row = r
            return cursor.holds(condition!, now: now, clock: clock)
        }
    }

    /// Whether the member at the cursor's row is in the segment at `now`, and the soonest instant
    /// after `now` at which that could change with time alone (nil when it cannot). Uses of
    /// `now` the analysis cannot follow are looked at again the next local day, as rule tags are.
    public func membership(_ cursor: MemberFactsCursor, now: Timestamp, clock: ProgramClock) -> Result<(isIn: Bool, due: Timestamp?), CondError> {
        if let decided = listDecides(cursor.facts.ids[cursor.row]) { return .success((decided, nil)) }
        let condition = condition!
        return condition.holdsAndNextChange(cursor, now: now, clock: clock).map { holds, next in
            (holds, next.map { condition.timeIsLinear ? max($0, now.adding(seconds: 1)) : clock.startOfNextDay(now) })
        }
    }
}

/// Instants at which members are due to be looked at again, soonest first. A member has at
/// most one live instant: scheduling again replaces it (the old entry is skipped when popped).
public struct DueQueue: Sendable {
    private var heap: [(at: Int64, member: Int64)] = []
    private var live: [Int64: Int64] = [:]
    public init() {}
    public var count: Int { live.count }

    public mutating func schedule(_ member: Int64, at: Timestamp?) {
        guard let at else { live[member] = nil; return }
        guard live[member] != at.seconds else { return }
        live[member] = at.seconds
        heap.append((at.seconds, member))
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard heap[i].at < heap[p].at else { break }
            heap.swapAt(i, p); i = p
        }
        if heap.count > 64 && heap.count > 4 * live.count { rebuild() }
    }

    /// Removes and returns the members due at or before `t`, with their instants.
    public mutating func popDue(_ t: Timestamp) -> [(member: Int64, at: Timestamp)] {
        var out: [(Int64, Timestamp)] = []
        while let top = heap.first, top.at <= t.seconds {
            pop()
            if live[top.member] == top.at {
                live[top.member] = nil
                out.append((top.member, Timestamp(seconds: top.at)))
            }
        }
        return out
    }

    private mutating func pop() {
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && heap[l].at < heap[m].at { m = l }
            if r < heap.count && heap[r].at < heap[m].at { m = r }
            if m == i { return }
            heap.swapAt(i, m); i = m
        }
    }

    private mutating func rebuild() {
        heap = live.map { ($0.value, $0.key) }.sorted { $0.0 < $1.0 }
    }
}
