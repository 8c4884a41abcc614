import Foundation

/// What conditions see of one member, taken from the member's state (the same values rule tags
/// see) and kept by `MemberFacts`.
public struct MemberFactsRow: Sendable, Equatable {
    public var id: MemberID
    public var tier: String
    public var registeredAt: Timestamp
    public var profile: MemberProfile?
    public var balance: Int64, available: Int64, pending: Int64
    public var growthLifetime: Int64, growthQualifying: Int64
    public var tags: [String]
    public var lastOrderAt: Timestamp?
    public var orderCount: Int64, spentMinor: Int64
    /// The recent orders conditions see (the last 400 days), oldest first.
    public var orders: [OrderFact]
    /// The member's scores (RFM, lifecycle, churn), as their state holds them.
    public var scores: MemberScores?
    public init(id: MemberID, tier: String, registeredAt: Timestamp, profile: MemberProfile? = nil, balance: Int64 = 0, available: Int64 = 0,
                pending: Int64 = 0, growthLifetime: Int64 = 0, growthQualifying: Int64 = 0, tags: [String] = [], lastOrderAt: Timestamp? = nil,
                orderCount: Int64 = 0, spentMinor: Int64 = 0, orders: [OrderFact] = [], scores: MemberScores? = nil) {
        self.id = id; self.tier = tier; self.registeredAt = registeredAt; self.profile = profile
        self.balance = balance; self.available = available; self.pending = pending
        self.growthLifetime = growthLifetime; self.growthQualifying = growthQualifying
        self.tags = tags; self.lastOrderAt = lastOrderAt; self.orderCount = orderCount; self.spentMinor = spentMinor; self.orders = orders
        self.scores = scores
    }
}

/// Scores computed apart from the member's history, from the whole program's members: RFM
/// and lifecycle (daily, `Store.computeRFM`) and the customer-base models' figures (`Store.computeChurn`).
/// Kept in the member's state, so rule tags and segments read the same values
/// (`member.rfm`, `member.lifecycle`, `member.churn`).
public struct MemberScores: Codable, Sendable, Equatable {
    /// RFM quintiles 1–5 over the members who bought in the last 365 days (nil for others).
    public var r: Int?, f: Int?, m: Int?
    /// Where the member's 365-day spend ranks among those members, from the top: 1 for the top
    /// 1%, at most 10 for the top 10%, 100 for the bottom (`member.rfm.topPercent`).
    public var topPercent: Int?
    public var lifecycle: LifecycleStage?
    /// The last churn fit: P(alive) in per mille, the at-risk flag (P(alive) below the program's
    /// threshold), expected purchases over the horizon in thousandths, and the expected value of
    /// a purchase and the horizon's discounted value in minor units. All nil when not fitted.
    public var pAlivePermille: Int?
    public var atRisk: Bool?
    public var expectedPurchasesMilli: Int64?
    public var expectedValueMinor: Int64?
    public var clvMinor: Int64?
    public init(r: Int? = nil, f: Int? = nil, m: Int? = nil, topPercent: Int? = nil, lifecycle: LifecycleStage? = nil,
                pAlivePermille: Int? = nil, atRisk: Bool? = nil, expectedPurchasesMilli: Int64? = nil, expectedValueMinor: Int64? = nil, clvMinor: Int64? = nil) {
        self.r = r; self.f = f; self.m = m; self.topPercent = topPercent; self.lifecycle = lifecycle
        self.pAlivePermille = pAlivePermille; self.atRisk = atRisk; self.expectedPurchasesMilli = expectedPurchasesMilli
        self.expectedValueMinor = expectedValueMinor; self.clvMinor = clvMinor
    }
    /// `member.rfm.score`: the mean of the three scores, rounded half up (1–5).
    public var score: Int? {
        guard let r, let f, let m else { return nil }
        return (2 * (r + f + m) + 3) / 6
    }
    /// Whether `member.rfm` is a record (the member is scored) rather than null.
    public var hasRFM: Bool { r != nil && f != nil && m != nil }
    /// Whether `member.churn` is a record rather than null.
    public var hasChurn: Bool { pAlivePermille != nil }
    /// The RFM part (and lifecycle) replaced by `other`'s, the churn part kept.
    public func withRFM(of other: MemberScores?) -> MemberScores {
        var s = self
        s.r = other?.r; s.f = other?.f; s.m = other?.m; s.topPercent = other?.topPercent; s.lifecycle = other?.lifecycle
        return s
    }
    /// The churn part replaced by `other`'s, the RFM part kept.
    public func withChurn(of other: MemberScores?) -> MemberScores {
        var s = self
        s.pAlivePermille = other?.pAlivePermille; s.atRisk = other?.atRisk; s.expectedPurchasesMilli = other?.expectedPurchasesMilli
        s.expectedValueMinor = other?.expectedValueMinor; s.clvMinor = other?.clvMinor
        return s
    }
    /// What a condition sees at `field`: null when the field's record is (`member.rfm` unscored,
    /// `member.churn` not fitted) or the lifecycle is unknown.
    public func value(_ field: ScoreField) -> CondValue {
        func int<I: BinaryInteger>(_ v: I?) -> CondValue { v.map { .int(Int64($0)) } ?? .null }
        switch field.record {
        case .rfm?: guard hasRFM else { return .null }
        case .churn?: guard hasChurn else { return .null }
        case nil: break
        }
        switch field {
        case .r: return int(r)
        case .f: return int(f)
        case .m: return int(m)
        case .score: return int(score)
        case .topPercent: return int(topPercent)
        case .lifecycle: return lifecycle.map { .string($0.rawValue) } ?? .null
        case .pAlive: return int(pAlivePermille)
        case .atRisk: return .bool(atRisk ?? false)
        case .expectedPurchases: return .int(expectedPurchasesMilli ?? 0)
        case .expectedValue: return .int(expectedValueMinor ?? 0)
        case .clv: return .int(clvMinor ?? 0)
        }
    }
    /// The record `member.rfm` or `member.churn` (null when unscored or not fitted).
    public func record(_ record: ScoreField.Record) -> CondValue {
        guard record == .rfm ? hasRFM : hasChurn else { return .null }
        return .record(Dictionary(uniqueKeysWithValues: ScoreField.allCases.filter { $0.record == record }.map { ($0.name, value($0)) }))
    }
}

/// The scores as conditions name them: `member.rfm.{r, f, m, score, topPercent}`,
/// `member.lifecycle`, `member.churn.{pAlive, atRisk, expectedPurchasesMilli, expectedValue, clv}`.
public enum ScoreField: CaseIterable, Sendable {
    case r, f, m, score, topPercent, lifecycle, pAlive, atRisk, expectedPurchases, expectedValue, clv
    public enum Record: String, Sendable { case rfm, churn }
    /// The record the field is in (`member.lifecycle` is in none).
    public var record: Record? {
        switch self {
        case .r, .f, .m, .score, .topPercent: .rfm
        case .lifecycle: nil
        case .pAlive, .atRisk, .expectedPurchases, .expectedValue, .clv: .churn
        }
    }
    /// The field's name in its record.
    public var name: String {
        switch self {
        case .r: "r"
        case .f: "f"
        case .m: "m"
        case .score: "score"
        case .topPercent: "topPercent"
        case .lifecycle: "lifecycle"
        case .pAlive: "pAlive"
        case .atRisk: "atRisk"
        case .expectedPurchases: "expectedPurchasesMilli"
        case .expectedValue: "expectedValue"
        case .clv: "clv"
        }
    }
    /// The path conditions read it at.
    public var path: String { record.map { "member.\($0.rawValue).\(name)" } ?? "member.\(name)" }
    /// Paths of the fields and of their records (`member.rfm`, `member.churn`).
    public static let paths: [String: ScoreField] = Dictionary(uniqueKeysWithValues: allCases.map { ($0.path, $0) })
    public static let recordPaths: [String: Record] = ["member.rfm": .rfm, "member.churn": .churn]
}

extension Engine {
    /// The member as conditions see them at `t` (points and the qualifying growth as of `t`).
    public func factsRow(_ s: MemberState, at t: Timestamp) -> MemberFactsRow {
        let v = program.at(t)
        return MemberFactsRow(
            id: s.memberId, tier: s.tier.tierId, registeredAt: s.registeredAt, profile: s.profile,
            balance: s.balance, available: s.available(at: t), pending: s.pending(at: t),
            growthLifetime: s.growthTotal, growthQualifying: qualifying(s, v.definition, v: v, at: t),
            tags: s.tags.keys.sorted(), lastOrderAt: s.orderFacts.last?.at ?? s.lastOrderAt,
            orderCount: Int64(s.orderCount), spentMinor: s.spentMinor, orders: s.orderFacts, scores: s.scores)
    }
}

/// Every member of a program as conditions see them, in columns, for segments: a condition
/// is evaluated for a million members by reading the columns in place (`MemberFactsCursor`),
/// without building any member's values. Rows are updated in place as members change; each
/// member's tags and orders are contiguous runs in shared pools, appended anew when they
/// change (the old run is garbage until `compact`).
public struct MemberFacts: Sendable {
    static let none = UInt32.max
    // Strings, interned.
    var strings: [String] = []
    var stringIds: [String: UInt32] = [:]

    // Per member row.
    public private(set) var ids: [Int64] = []
    var rowOf: [Int64: Int32] = [:]
    var present: [Bool] = []
    var tier: [UInt32] = []
    var registeredAt: [Int64] = []
    var name: [String?] = []
    var gender: [UInt8] = []           // 0: null; else Gender's index + 1
    var birthday: [Int32] = []         // day number; Int32.min: null
    var city: [UInt32] = [], regChannel: [UInt32] = [], regStore: [UInt32] = []
    var consent: [Int8] = []           // -1: null
    var balance: [Int64] = [], available: [Int64] = [], pending: [Int64] = []
    var growthLifetime: [Int64] = [], growthQualifying: [Int64] = []
    var lastOrderAt: [Int64] = []      // Int64.min: null
    var orderCount: [Int64] = [], spentMinor: [Int64] = []
    var rfmR: [UInt8] = [], rfmF: [UInt8] = [], rfmM: [UInt8] = []   // 0: null
    var lifecycle: [UInt8] = []        // 0: null; else LifecycleStage's index + 1
    var rfmTop: [UInt8] = []           // 0: null
    /// The churn fit: P(alive) in per mille (-1: not fitted), and its other figures.
    var churnP: [Int16] = [], churnRisk: [Bool] = [], churnPurchases: [Int64] = [], churnValue: [Int64] = [], churnCLV: [Int64] = []
    var tagStart: [UInt32] = [], tagCount: [UInt16] = []
    var orderStart: [UInt32] = [], orderRun: [UInt16] = []

    // Pools.
    var tagPool: [UInt32] = []
    var oAt: [Int64] = [], oAmount: [Int64] = []
    var oChannel: [UInt32] = [], oStore: [UInt32] = []
    var oCoupon: [Bool] = []
    var oId: [String] = []
    var oCatStart: [UInt32] = [], oCatCount: [UInt8] = []
    var oSkuStart: [UInt32] = [], oSkuCount: [UInt8] = []
    var catPool: [UInt32] = [], skuPool: [UInt32] = []
    /// Pool entries no row points at any more.
    public private(set) var garbage = 0

    public init() {}

    /// Members held (rows removed by `remove` are not counted).
    public var count: Int { rowOf.count }
    /// Rows, including removed ones (for scans: check `isPresent`).
    public var rows: Int { ids.count }
    /// Orders held in the pools, including garbage.
    public var orderRows: Int { oAt.count }
    public func isPresent(_ row: Int) -> Bool { present[row] }
    public func row(of id: MemberID) -> Int? { rowOf[id.rawValue].map(Int.init) }

    mutating func intern(_ s: String?) -> UInt32 {
        guard let s else { return Self.none }
        if let id = stringIds[s] { return id }
        let id = UInt32(strings.count)
        strings.append(s); stringIds[s] = id
        return id
    }
    func string(_ id: UInt32) -> String? { id == Self.none ? nil : strings[Int(id)] }
    func stringId(_ s: String) -> UInt32? { stringIds[s] }

    /// Adds the member, or replaces what is held of them.
    public mutating func upsert(_ m: MemberFactsRow) {
        let row: Int
        if let r = rowOf[m.id.rawValue] {
            row = Int(r)
            garbage += Int(tagCount[row]) + Int(orderRun[row])
            present[row] = true
        } else {
            row = ids.count
            rowOf[m.id.rawValue] = Int32(row)
            ids.append(m.id.rawValue); present.append(true)
            tier.append(0); registeredAt.append(0); name.append(nil); gender.append(0); birthday.append(0)
            city.append(0); regChannel.append(0); regStore.append(0); consent.append(-1)
            balance.append(0); available.append(0); pending.append(0); growthLifetime.append(0); growthQualifying.append(0)
            lastOrderAt.append(0); orderCount.append(0); spentMinor.append(0)
            rfmR.append(0); rfmF.append(0); rfmM.append(0); lifecycle.append(0); rfmTop.append(0)
            churnP.append(-1); churnRisk.append(false); churnPurchases.append(0); churnValue.append(0); churnCLV.append(0)
            tagStart.append(0); tagCount.append(0); orderStart.append(0); orderRun.append(0)
        }
        tier[row] = intern(m.tier)
        registeredAt[row] = m.registeredAt.seconds
        let p = m.profile
        name[row] = p?.name
        gender[row] = p?.gender.map { UInt8(Gender.allCases.firstIndex(of: $0)! + 1) } ?? 0
        birthday[row] = p?.birthday.map { Int32(clamping: $0.dayNumber) } ?? Int32.min
        city[row] = intern(p?.city); regChannel[row] = intern(p?.registeredChannel); regStore[row] = intern(p?.registeredStore)
        consent[row] = p?.marketingConsent.map { $0 ? 1 : 0 } ?? -1
        balance[row] = m.balance; available[row] = m.available; pending[row] = m.pending
        growthLifetime[row] = m.growthLifetime; growthQualifying[row] = m.growthQualifying
        lastOrderAt[row] = m.lastOrderAt?.seconds ?? Int64.min
        orderCount[row] = m.orderCount; spentMinor[row] = m.spentMinor
        tagStart[row] = UInt32(tagPool.count); tagCount[row] = UInt16(min(m.tags.count, Int(UInt16.max)))
        for t in m.tags.prefix(Int(UInt16.max)) { tagPool.append(intern(t)) }
        let orders = m.orders.suffix(Int(UInt16.max))
        orderStart[row] = UInt32(oAt.count); orderRun[row] = UInt16(orders.count)
        for o in orders {
            oAt.append(o.at.seconds); oAmount.append(o.amountMinor)
            oChannel.append(intern(o.channel)); oStore.append(intern(o.store)); oCoupon.append(o.usedCoupon); oId.append(o.orderId)
            oCatStart.append(UInt32(catPool.count)); oCatCount.append(UInt8(min(o.categories.count, 255)))
            for c in o.categories.prefix(255) { catPool.append(intern(c)) }
            oSkuStart.append(UInt32(skuPool.count)); oSkuCount.append(UInt8(min(o.skus.count, 255)))
            for s in o.skus.prefix(255) { skuPool.append(intern(s)) }
        }
        setScores(row: row, m.scores ?? MemberScores())
        if garbage > 1_000_000 && garbage > oAt.count / 2 { compact() }
    }

    /// Sets the member's scores (RFM, lifecycle, churn); unknown members are ignored.
    public mutating func setScores(_ id: MemberID, _ s: MemberScores) {
        guard let r = rowOf[id.rawValue].map(Int.init) else { return }
        setScores(row: r, s)
    }

    mutating func setScores(row r: Int, _ s: MemberScores) {
        func small(_ v: Int?) -> UInt8 { v.map { UInt8(clamping: $0) } ?? 0 }
        rfmR[r] = small(s.r); rfmF[r] = small(s.f); rfmM[r] = small(s.m); rfmTop[r] = small(s.topPercent)
        lifecycle[r] = s.lifecycle.map { UInt8(LifecycleStage.allCases.firstIndex(of: $0)! + 1) } ?? 0
        churnP[r] = s.pAlivePermille.map { Int16(clamping: $0) } ?? -1
        churnRisk[r] = s.atRisk ?? false
        churnPurchases[r] = s.expectedPurchasesMilli ?? 0; churnValue[r] = s.expectedValueMinor ?? 0; churnCLV[r] = s.clvMinor ?? 0
    }

    /// Forgets a member (merged away, deleted): the row stays, marked absent.
    public mutating func remove(_ id: MemberID) {
        guard let r = rowOf.removeValue(forKey: id.rawValue).map(Int.init) else { return }
        present[r] = false
        garbage += Int(tagCount[r]) + Int(orderRun[r])
        tagCount[r] = 0; orderRun[r] = 0
    }

    /// Rewrites the pools without garbage, in row order.
    public mutating func compact() {
        var tags: [UInt32] = []; tags.reserveCapacity(tagPool.count - min(garbage, tagPool.count))
        var at: [Int64] = [], amount: [Int64] = [], ch: [UInt32] = [], st: [UInt32] = [], coupon: [Bool] = [], oid: [String] = []
        var cs: [UInt32] = [], cc: [UInt8] = [], ss: [UInt32] = [], sc: [UInt8] = [], cats: [UInt32] = [], skus: [UInt32] = []
        for r in 0..<ids.count {
            let t0 = Int(tagStart[r]), tn = Int(tagCount[r])
            tagStart[r] = UInt32(tags.count); tags.append(contentsOf: tagPool[t0..<t0 + tn])
            let o0 = Int(orderStart[r]), on = Int(orderRun[r])
            orderStart[r] = UInt32(at.count)
            for i in o0..<o0 + on {
                at.append(oAt[i]); amount.append(oAmount[i]); ch.append(oChannel[i]); st.append(oStore[i]); coupon.append(oCoupon[i]); oid.append(oId[i])
                let c0 = Int(oCatStart[i]), s0 = Int(oSkuStart[i])
                cs.append(UInt32(cats.count)); cc.append(oCatCount[i]); cats.append(contentsOf: catPool[c0..<c0 + Int(oCatCount[i])])
                ss.append(UInt32(skus.count)); sc.append(oSkuCount[i]); skus.append(contentsOf: skuPool[s0..<s0 + Int(oSkuCount[i])])
            }
        }
        tagPool = tags; oAt = at; oAmount = amount; oChannel = ch; oStore = st; oCoupon = coupon; oId = oid
        oCatStart = cs; oCatCount = cc; oSkuStart = ss; oSkuCount = sc; catPool = cats; skuPool = skus
        garbage = 0
    }

    /// The row as it was given (for tests and the member sample).
    public func memberRow(_ r: Int) -> MemberFactsRow {
        var p: MemberProfile? = MemberProfile(
            name: name[r], gender: gender[r] == 0 ? nil : Gender.allCases[Int(gender[r]) - 1],
            birthday: birthday[r] == Int32.min ? nil : CivilDate(dayNumber: Int64(birthday[r])),
            city: string(city[r]), registeredChannel: string(regChannel[r]), registeredStore: string(regStore[r]),
            marketingConsent: consent[r] < 0 ? nil : consent[r] == 1)
        if p == MemberProfile() { p = nil }
        let t0 = Int(tagStart[r]), o0 = Int(orderStart[r])
        return MemberFactsRow(
            id: MemberID(ids[r]), tier: strings[Int(tier[r])], registeredAt: Timestamp(seconds: registeredAt[r]), profile: p,
            balance: balance[r], available: available[r], pending: pending[r], growthLifetime: growthLifetime[r], growthQualifying: growthQualifying[r],
            tags: tagPool[t0..<t0 + Int(tagCount[r])].map { strings[Int($0)] },
            lastOrderAt: lastOrderAt[r] == Int64.min ? nil : Timestamp(seconds: lastOrderAt[r]),
            orderCount: orderCount[r], spentMinor: spentMinor[r],
            orders: (o0..<o0 + Int(orderRun[r])).map { i in
                let c0 = Int(oCatStart[i]), s0 = Int(oSkuStart[i])
                return OrderFact(orderId: oId[i], at: Timestamp(seconds: oAt[i]), amountMinor: oAmount[i],
                                 categories: catPool[c0..<c0 + Int(oCatCount[i])].map { strings[Int($0)] },
                                 skus: skuPool[s0..<s0 + Int(oSkuCount[i])].map { strings[Int($0)] },
                                 channel: string(oChannel[i]), store: string(oStore[i]), usedCoupon: oCoupon[i])
            }, scores: { let s = scores(r); return s == MemberScores() ? nil : s }())
    }

    public func scores(_ r: Int) -> MemberScores {
        let fitted = churnP[r] >= 0
        return MemberScores(r: rfmR[r] == 0 ? nil : Int(rfmR[r]), f: rfmF[r] == 0 ? nil : Int(rfmF[r]), m: rfmM[r] == 0 ? nil : Int(rfmM[r]),
                            topPercent: rfmTop[r] == 0 ? nil : Int(rfmTop[r]),
                            lifecycle: lifecycle[r] == 0 ? nil : LifecycleStage.allCases[Int(lifecycle[r]) - 1],
                            pAlivePermille: fitted ? Int(churnP[r]) : nil, atRisk: fitted ? churnRisk[r] : nil,
                            expectedPurchasesMilli: fitted ? churnPurchases[r] : nil, expectedValueMinor: fitted ? churnValue[r] : nil,
                            clvMinor: fitted ? churnCLV[r] : nil)
    }

    /// Approximate bytes held.
    public var bytes: Int {
        ids.count * 200 + oAt.count * 60 + (tagPool.count + catPool.count + skuPool.count) * 4 + strings.reduce(0) { $0 + $1.utf8.count + 40 }
    }
}

extension MemberFacts {
    /// Members below the top tier whose qualifying growth is at least `1 − withinPermille/1000`
    /// of the next tier's threshold (the funnel's "within 20% of the next threshold"), as of
    /// each member's last write. Tiers are in the program's order.
    public func nearNextTier(_ tiers: [TierDefinition], withinPermille: Int64 = 200) -> Int {
        var next: [UInt32: Int64] = [:]
        for (i, t) in tiers.enumerated() where i + 1 < tiers.count {
            if let id = stringIds[t.id] { next[id] = tiers[i + 1].threshold }
        }
        var n = 0
        for r in 0..<ids.count where present[r] {
            guard let threshold = next[tier[r]] else { continue }
            let g = growthQualifying[r]
            if TierDefinition.isNear(g, nextThreshold: threshold, withinPermille: withinPermille) { n += 1 }
        }
        return n
    }
}
