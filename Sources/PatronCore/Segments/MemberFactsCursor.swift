import Foundation

/// Reads one row of `MemberFacts` as a condition's `member` and `orders` (schema
/// `CondSchema.member`): move `row` and evaluate again. Values are read from the columns when
/// asked; nothing is built for fields the condition does not read.
public final class MemberFactsCursor: CondSource {
    enum Column {
        case id, tier, registeredAt, name, gender, birthday, city, regChannel, regStore, consent
        case balance, available, pending, growthLifetime, growthQualifying
        case tags, lastOrderAt, orderCount, spentMinor, rfmR, rfmF, rfmM, rfmScore, lifecycle
        /// Record-valued paths (`member`, `member.profile`, `member.rfm`, …) and paths not
        /// kept (`member.identities`): built from the record's fields, or null.
        case record(String), missing
    }
    enum OrderColumn { case id, at, amount, category, categories, channel, store, skus, usedCoupon, missing }

    public let facts: MemberFacts
    public var row = 0
    let columns: [Column]
    let orderColumns: [OrderColumn]
    let ordersList: Int?
    let layout: CondLayout

    public init(_ facts: MemberFacts, layout: CondLayout = .member) {
        self.facts = facts; self.layout = layout
        var columns = [Column](repeating: .missing, count: layout.slots.count)
        let named: [String: Column] = [
            "member.id": .id, "member.tier": .tier, "member.registeredAt": .registeredAt,
            "member.profile.name": .name, "member.profile.gender": .gender, "member.profile.birthday": .birthday,
            "member.profile.city": .city, "member.profile.registeredChannel": .regChannel,
            "member.profile.registeredStore": .regStore, "member.profile.marketingConsent": .consent,
            "member.points.balance": .balance, "member.points.available": .available, "member.points.pending": .pending,
            "member.growth.lifetime": .growthLifetime, "member.growth.qualifying": .growthQualifying,
            "member.tags": .tags, "member.lastOrderAt": .lastOrderAt, "member.orderCount": .orderCount,
            "member.spentMinor": .spentMinor, "member.rfm.r": .rfmR, "member.rfm.f": .rfmF, "member.rfm.m": .rfmM,
            "member.rfm.score": .rfmScore, "member.lifecycle": .lifecycle,
        ]
        for (path, slot) in layout.slots {
            if let c = named[path] { columns[slot] = c } else if path != "member.identities" { columns[slot] = .record(path) }
        }
        self.columns = columns
        ordersList = layout.lists["orders"]
        var oc: [OrderColumn] = []
        if let l = ordersList {
            let byName: [String: OrderColumn] = ["id": .id, "at": .at, "amount": .amount, "category": .category, "categories": .categories,
                                                 "channel": .channel, "store": .store, "skus": .skus, "usedCoupon": .usedCoupon]
            oc = layout.fields[l].sorted { $0.value < $1.value }.map { byName[$0.key] ?? .missing }
        }
        orderColumns = oc
    }

    @inline(__always) func str(_ id: UInt32) -> CondValue { id == MemberFacts.none ? .null : .string(facts.strings[Int(id)]) }
    @inline(__always) func small(_ v: UInt8) -> CondValue { v == 0 ? .null : .int(Int64(v)) }

    public func value(_ slot: Int) -> CondValue {
        let r = row, f = facts
        switch columns[slot] {
        case .id: return .string(String(f.ids[r]))
        case .tier: return .string(f.strings[Int(f.tier[r])])
        case .registeredAt: return .timestamp(Timestamp(seconds: f.registeredAt[r]))
        case .name: return f.name[r].map { .string($0) } ?? .null
        case .gender: return f.gender[r] == 0 ? .null : .string(Gender.allCases[Int(f.gender[r]) - 1].rawValue)
        case .birthday: return f.birthday[r] == Int32.min ? .null : .date(CivilDate(dayNumber: Int64(f.birthday[r])))
        case .city: return str(f.city[r])
        case .regChannel: return str(f.regChannel[r])
        case .regStore: return str(f.regStore[r])
        case .consent: return f.consent[r] < 0 ? .null : .bool(f.consent[r] == 1)
        case .balance: return .int(f.balance[r])
        case .available: return .int(f.available[r])
        case .pending: return .int(f.pending[r])
        case .growthLifetime: return .int(f.growthLifetime[r])
        case .growthQualifying: return .int(f.growthQualifying[r])
        case .tags:
            let t0 = Int(f.tagStart[r])
            return .list(f.tagPool[t0..<t0 + Int(f.tagCount[r])].map { .string(f.strings[Int($0)]) })
        case .lastOrderAt: return f.lastOrderAt[r] == Int64.min ? .null : .timestamp(Timestamp(seconds: f.lastOrderAt[r]))
        case .orderCount: return .int(f.orderCount[r])
        case .spentMinor: return .int(f.spentMinor[r])
        case .rfmR: return small(f.rfmR[r])
        case .rfmF: return small(f.rfmF[r])
        case .rfmM: return small(f.rfmM[r])
        case .rfmScore: return f.scores(r).score.map { .int(Int64($0)) } ?? .null
        case .lifecycle: return f.lifecycle[r] == 0 ? .null : .string(LifecycleStage.allCases[Int(f.lifecycle[r]) - 1].rawValue)
        case .record(let path): return record(path)
        case .missing: return .null
        }
    }

    /// A record-valued path, from its fields' slots (null for `member.rfm` when unscored).
    func record(_ path: String) -> CondValue {
        if path == "member.rfm" && facts.rfmR[row] == 0 { return .null }
        var fields: [String: CondValue] = [:]
        let prefix = path + "."
        for (p, slot) in layout.slots where p.hasPrefix(prefix) && !p.dropFirst(prefix.count).contains(".") {
            let v = value(slot)
            if v != .null { fields[String(p.dropFirst(prefix.count))] = v }
        }
        return .record(fields)
    }

    public func count(_ list: Int) -> Int { list == ordersList ? Int(facts.orderRun[row]) : 0 }

    public func field(_ list: Int, _ index: Int, _ field: Int) -> CondValue {
        let f = facts, i = Int(f.orderStart[row]) + index
        switch orderColumns[field] {
        case .id: return .string(f.oId[i])
        case .at: return .timestamp(Timestamp(seconds: f.oAt[i]))
        case .amount: return .int(f.oAmount[i])
        case .category: return f.oCatCount[i] == 0 ? .null : .string(f.strings[Int(f.catPool[Int(f.oCatStart[i])])])
        case .categories:
            let c0 = Int(f.oCatStart[i])
            return .list(f.catPool[c0..<c0 + Int(f.oCatCount[i])].map { .string(f.strings[Int($0)]) })
        case .channel: return .string(f.oChannel[i] == MemberFacts.none ? "" : f.strings[Int(f.oChannel[i])])
        case .store: return str(f.oStore[i])
        case .skus:
            let s0 = Int(f.oSkuStart[i])
            return .list(f.skuPool[s0..<s0 + Int(f.oSkuCount[i])].map { .string(f.strings[Int($0)]) })
        case .usedCoupon: return .bool(f.oCoupon[i])
        case .missing: return .null
        }
    }

    public func timeOrdered(_ list: Int) -> Bool { true }

    /// The row's `member` and `orders` as values (what `Engine.conditionInputs` gives for the
    /// member's state, with the scores added).
    public func values() -> [String: CondValue] {
        var out: [String: CondValue] = [:]
        if let slot = layout.slots["member"] { out["member"] = value(slot) }
        if let l = ordersList {
            let names = layout.fields[l].sorted { $0.value < $1.value }.map(\.key)
            out["orders"] = .list((0..<count(l)).map { i in
                .record(Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, field(l, i, $0)) }))
            })
        }
        return out
    }
}

extension MemberFactsCursor {
    /// Whether `c` holds for the current row at `now`.
    public func holds(_ c: Condition, now: Timestamp, clock: ProgramClock) -> Result<Bool, CondError> {
        c.holds(self, now: now, clock: clock)
    }
}

extension SegmentDefinition {
    /// Counts this segment's members among `rows` of `facts`, with their make-up. `condition`
    /// is the compiled `self.condition`; `listed` the fixed list as a set.
    public func tally(_ facts: MemberFacts, condition: Condition?, listed: Set<Int64>?, rows: Range<Int>, now: Timestamp, clock: ProgramClock,
                      sampleSize: Int = 20, collect: Bool = false) -> SegmentTally {
        let cursor = MemberFactsCursor(facts)
        let combine = self.combine
        return facts.tally(rows: rows, sampleSize: sampleSize, collect: collect) { r in
            let onList = listed.map { $0.contains(facts.ids[r]) }
            guard let condition else { return .success(onList ?? false) }
            if let onList {
                if combine == .and && !onList { return .success(false) }
                if combine == .or && onList { return .success(true) }
            }
            cursor.row = r
            return cursor.holds(condition, now: now, clock: clock)
        }
    }
}
