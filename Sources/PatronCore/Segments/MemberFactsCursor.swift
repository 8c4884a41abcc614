import Foundation

/// Reads one row of `MemberFacts` as a condition's `member` and `orders` (schema
/// `CondSchema.member`): move `row` and evaluate again. Values are read from the columns when
/// asked; nothing is built for fields the condition does not read.
public final class MemberFactsCursor: CondSource {
    enum Column {
        case id, tier, registeredAt, name, gender, birthday, city, regChannel, regStore, consent
        case balance, available, pending, growthLifetime, growthQualifying
        case tags, lastOrderAt, orderCount, spentMinor
        /// A score, and a record of them (`member.rfm`, `member.churn`), from the score columns.
        case score(ScoreField), scoreRecord(ScoreField.Record)
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
            "member.spentMinor": .spentMinor,
        ].merging(ScoreField.paths.mapValues { .score($0) }) { a, _ in a }
         .merging(ScoreField.recordPaths.mapValues { .scoreRecord($0) }) { a, _ in a }
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

    public func value(_ slot: Int) -> CondValue {
        let r = row
        switch columns[slot] {
        case .id: return .string(String(facts.ids[r]))
        case .tier: return .string(facts.strings[Int(facts.tier[r])])
        case .registeredAt: return .timestamp(Timestamp(seconds: facts.registeredAt[r]))
        case .name: return facts.name[r].map { .string($0) } ?? .null
        case .gender: return facts.gender[r] == 0 ? .null : .string(Gender.allCases[Int(facts.gender[r]) - 1].rawValue)
        case .birthday: return facts.birthday[r] == Int32.min ? .null : .date(CivilDate(dayNumber: Int64(facts.birthday[r])))
        case .city: return str(facts.city[r])
        case .regChannel: return str(facts.regChannel[r])
        case .regStore: return str(facts.regStore[r])
        case .consent: return facts.consent[r] < 0 ? .null : .bool(facts.consent[r] == 1)
        case .balance: return .int(facts.balance[r])
        case .available: return .int(facts.available[r])
        case .pending: return .int(facts.pending[r])
        case .growthLifetime: return .int(facts.growthLifetime[r])
        case .growthQualifying: return .int(facts.growthQualifying[r])
        case .tags:
            let t0 = Int(facts.tagStart[r])
            return .list(facts.tagPool[t0..<t0 + Int(facts.tagCount[r])].map { .string(facts.strings[Int($0)]) })
        case .lastOrderAt: return facts.lastOrderAt[r] == Int64.min ? .null : .timestamp(Timestamp(seconds: facts.lastOrderAt[r]))
        case .orderCount: return .int(facts.orderCount[r])
        case .spentMinor: return .int(facts.spentMinor[r])
        case .score(let f): return facts.scores(r).value(f)
        case .scoreRecord(let record): return facts.scores(r).record(record)
        case .record(let path): return record(path)
        case .missing: return .null
        }
    }

    /// A record-valued path, from its fields' slots.
    func record(_ path: String) -> CondValue {
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
        let i = Int(facts.orderStart[row]) + index
        switch orderColumns[field] {
        case .id: return .string(facts.oId[i])
        case .at: return .timestamp(Timestamp(seconds: facts.oAt[i]))
        case .amount: return .int(facts.oAmount[i])
        case .category: return facts.oCatCount[i] == 0 ? .null : .string(facts.strings[Int(facts.catPool[Int(facts.oCatStart[i])])])
        case .categories:
            let c0 = Int(facts.oCatStart[i])
            return .list(facts.catPool[c0..<c0 + Int(facts.oCatCount[i])].map { .string(facts.strings[Int($0)]) })
        case .channel: return .string(facts.oChannel[i] == MemberFacts.none ? "" : facts.strings[Int(facts.oChannel[i])])
        case .store: return str(facts.oStore[i])
        case .skus:
            let s0 = Int(facts.oSkuStart[i])
            return .list(facts.skuPool[s0..<s0 + Int(facts.oSkuCount[i])].map { .string(facts.strings[Int($0)]) })
        case .usedCoupon: return .bool(facts.oCoupon[i])
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
