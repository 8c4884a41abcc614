import Foundation

/// Text in the languages the product speaks.
public struct LocalizedText: Codable, Sendable, Equatable {
    public var zh: String
    public var en: String
    public init(zh: String, en: String) { self.zh = zh; self.en = en }
    enum CodingKeys: String, CodingKey { case zh = "zh-CN", en }
}

public enum Rounding: String, Codable, Sendable, CaseIterable { case floor, round, ceil }
public enum AssessmentKind: String, Codable, Sendable, CaseIterable { case lifetime, rolling, calendar }
public enum CalendarPeriod: String, Codable, Sendable, CaseIterable { case month, quarter, year }
public enum DowngradePolicy: String, Codable, Sendable, CaseIterable { case none, oneTier, toSupported }
public enum ExpiryKind: String, Codable, Sendable, CaseIterable { case none, afterDays, endOfPeriod }
public enum ExpiryPeriod: String, Codable, Sendable, CaseIterable { case month, year }
public enum ShortfallPolicy: String, Codable, Sendable, CaseIterable { case negativeBalance, recordDebt }
public enum ActivityLimit: String, Codable, Sendable, CaseIterable { case once, daily, unlimited }
public enum ActivityTrigger: String, Codable, Sendable, CaseIterable { case event, firstOrder }
public enum MultiplierTarget: String, Codable, Sendable, CaseIterable { case points, growth, both }
public enum Stacking: String, Codable, Sendable, CaseIterable { case max, multiply }

public struct TierDefinition: Codable, Sendable, Equatable {
    public var id: String
    public var name: LocalizedText
    public var threshold: Int64
    /// Granted once on reaching the tier (upgrade gifts).
    public var benefits: [String]
    /// Granted on the first day of every period while the tier is held.
    public var allowances: [Allowance]
    public init(id: String, name: LocalizedText, threshold: Int64, benefits: [String], allowances: [Allowance] = []) {
        self.id = id; self.name = name; self.threshold = threshold; self.benefits = benefits; self.allowances = allowances
    }
    enum CodingKeys: String, CodingKey { case id, name, threshold, benefits, allowances }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id); name = try c.decode(LocalizedText.self, forKey: .name)
        threshold = try c.decode(Int64.self, forKey: .threshold); benefits = try c.decode([String].self, forKey: .benefits)
        allowances = try c.decodeIfPresent([Allowance].self, forKey: .allowances) ?? []
    }
}

public struct Assessment: Codable, Sendable, Equatable {
    public var kind: AssessmentKind
    public var windowDays: Int?
    public var period: CalendarPeriod?
    public var downgrade: DowngradePolicy
    public var graceDays: Int
}

public struct EarningRate: Codable, Sendable, Equatable {
    /// Award `perUnitPermille / 1000` per `unitMinor` minor units paid.
    public var unitMinor: Int64
    public var perUnitPermille: Int64
}

public struct Multiplier: Codable, Sendable, Equatable {
    public var id: String
    public var factorPermille: Int64
    public var applyTo: MultiplierTarget
    public var categories: [String]?
    public var skus: [String]?
    public var channels: [String]?
    public var from: Timestamp?
    public var until: Timestamp?

    func matches(line: OrderLine, channel: String?, at t: Timestamp) -> Bool {
        if let c = categories, !c.contains(line.category ?? "") { return false }
        if let s = skus, !s.contains(line.sku) { return false }
        if let ch = channels, !ch.contains(channel ?? "") { return false }
        if let f = from, t < f { return false }
        if let u = until, t >= u { return false }
        return true
    }
}

public struct Caps: Codable, Sendable, Equatable {
    public var pointsPerOrder: Int64?
    public var pointsPerDay: Int64?
    public var growthPerOrder: Int64?
    public var growthPerDay: Int64?
}

public struct EarningRules: Codable, Sendable, Equatable {
    public var points: EarningRate
    public var growth: EarningRate
    public var rounding: Rounding
    public var stacking: Stacking
    public var multipliers: [Multiplier]
    public var caps: Caps
}

public struct ActivityRule: Codable, Sendable, Equatable {
    public var id: String
    public var name: LocalizedText?
    public var points: Int64
    public var growth: Int64
    public var limit: ActivityLimit
    public var trigger: ActivityTrigger
}

public struct ExpiryPolicy: Codable, Sendable, Equatable {
    public var kind: ExpiryKind
    public var days: Int?
    public var period: ExpiryPeriod?
    public var months: Int?
}

public struct RefundPolicy: Codable, Sendable, Equatable {
    public var shortfall: ShortfallPolicy
    /// A refund that takes away the growth an upgrade stood on undoes that upgrade at once.
    public var undoUpgrade: Bool
}

/// One brand's scheme, validated. Stored as versions, each with the instant it takes effect.
public struct ProgramDefinition: Codable, Sendable, Equatable {
    public var key: String
    public var name: LocalizedText
    public var currency: String
    public var timeZone: String
    /// What one point is worth in minor units, times 1000 (for liability reports).
    public var pointValueMinorPermille: Int64
    public var tiers: [TierDefinition]
    public var assessment: Assessment
    public var earning: EarningRules
    public var activities: [ActivityRule]
    public var expiry: ExpiryPolicy
    public var pendingDays: Int
    public var refund: RefundPolicy
    public var benefits: [BenefitDefinition] = []
    public var benefitPolicy = BenefitPolicy()
    public var mall: [MallItem] = []
    public var birthday: BirthdayRule?
    public var tags: [TagDefinition] = []
    /// Churn warning: members whose P(alive) falls below `atRiskBelow` are flagged at risk.
    public var churn: ChurnPolicy?
    /// The order in which an import row's identities find its member (the first one any member
    /// has wins; the others are the kinds not named, in the default order).
    public var identityPriority: [IdentityKind] = ProgramDefinition.defaultIdentityPriority
    public static let defaultIdentityPriority: [IdentityKind] = [.phone, .card, .app, .wechat, .email, .storeCustomer]
    /// How long after a merge it can still be undone, in days.
    public var mergeUndoDays: Int = 365
    /// Identity kinds that prove two members are one person (a phone number the channels verify
    /// by text message): a member who gains such an identity that another member holds, or an
    /// import row that finds one member by such an identity and another by any other, merges them
    /// without an operator (docs/merges.md). Empty: only operators merge.
    public var mergeOn: [IdentityKind] = []
    /// The lifecycle stages' thresholds in days (`new` within `newDays`, `at_risk`, `silent` and
    /// `lost` after that long without an order); retail defaults 30/60/120/365.
    public var lifecycle = LifecycleThresholds()

    public init(key: String, name: LocalizedText, currency: String, timeZone: String, pointValueMinorPermille: Int64, tiers: [TierDefinition],
                assessment: Assessment, earning: EarningRules, activities: [ActivityRule], expiry: ExpiryPolicy, pendingDays: Int, refund: RefundPolicy,
                benefits: [BenefitDefinition] = [], benefitPolicy: BenefitPolicy = BenefitPolicy(), mall: [MallItem] = [],
                birthday: BirthdayRule? = nil, tags: [TagDefinition] = [], churn: ChurnPolicy? = nil) {
        self.key = key; self.name = name; self.currency = currency; self.timeZone = timeZone; self.pointValueMinorPermille = pointValueMinorPermille
        self.tiers = tiers; self.assessment = assessment; self.earning = earning; self.activities = activities; self.expiry = expiry
        self.pendingDays = pendingDays; self.refund = refund; self.benefits = benefits; self.benefitPolicy = benefitPolicy
        self.mall = mall; self.birthday = birthday; self.tags = tags; self.churn = churn
    }
    enum CodingKeys: String, CodingKey {
        case key, name, currency, timeZone, pointValueMinorPermille, tiers, assessment, earning, activities, expiry, pendingDays, refund, benefits, benefitPolicy, mall, birthday, tags, churn
        case identityPriority, mergeUndoDays, mergeOn, lifecycle
    }
    /// Definitions stored before benefits existed read as having none.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(key: try c.decode(String.self, forKey: .key), name: try c.decode(LocalizedText.self, forKey: .name),
                  currency: try c.decode(String.self, forKey: .currency), timeZone: try c.decode(String.self, forKey: .timeZone),
                  pointValueMinorPermille: try c.decode(Int64.self, forKey: .pointValueMinorPermille), tiers: try c.decode([TierDefinition].self, forKey: .tiers),
                  assessment: try c.decode(Assessment.self, forKey: .assessment), earning: try c.decode(EarningRules.self, forKey: .earning),
                  activities: try c.decode([ActivityRule].self, forKey: .activities), expiry: try c.decode(ExpiryPolicy.self, forKey: .expiry),
                  pendingDays: try c.decode(Int.self, forKey: .pendingDays), refund: try c.decode(RefundPolicy.self, forKey: .refund),
                  benefits: try c.decodeIfPresent([BenefitDefinition].self, forKey: .benefits) ?? [],
                  benefitPolicy: try c.decodeIfPresent(BenefitPolicy.self, forKey: .benefitPolicy) ?? BenefitPolicy(),
                  mall: try c.decodeIfPresent([MallItem].self, forKey: .mall) ?? [],
                  birthday: try c.decodeIfPresent(BirthdayRule.self, forKey: .birthday),
                  tags: try c.decodeIfPresent([TagDefinition].self, forKey: .tags) ?? [],
                  churn: try c.decodeIfPresent(ChurnPolicy.self, forKey: .churn))
        identityPriority = try c.decodeIfPresent([IdentityKind].self, forKey: .identityPriority) ?? Self.defaultIdentityPriority
        mergeUndoDays = try c.decodeIfPresent(Int.self, forKey: .mergeUndoDays) ?? 365
        mergeOn = try c.decodeIfPresent([IdentityKind].self, forKey: .mergeOn) ?? []
        lifecycle = try c.decodeIfPresent(LifecycleThresholds.self, forKey: .lifecycle) ?? LifecycleThresholds()
    }

    public func tierIndex(_ id: String) -> Int? { tiers.firstIndex { $0.id == id } }
    func with(_ change: (inout ProgramDefinition) -> Void) -> ProgramDefinition { var d = self; change(&d); return d }
    /// What `points` are worth in minor units at the program's point value (rounded down).
    public func valueMinor(ofPoints points: Int64) -> Int64 { Int64(Int128(points) * Int128(pointValueMinorPermille) / 1000) }
    public func activity(_ id: String) -> ActivityRule? { activities.first { $0.id == id } }
    public func benefit(_ id: String) -> BenefitDefinition? { benefits.first { $0.id == id } }
    public func mallItem(_ id: String) -> MallItem? { mall.first { $0.id == id } }
    public var clock: ProgramClock { ProgramClock(timeZone: TimeZone(identifier: timeZone) ?? .gmt) }
}

// MARK: - Parsing and validation

public enum ProgramParser {
    public static let maxTiers = 20, maxMultipliers = 100, maxActivities = 100

    /// Validates a program document. Every problem is reported with its path; the result is
    /// either a complete definition or the full list of errors.
    public static func parse(_ doc: JSONValue) -> Result<ProgramDefinition, ValidationFailure> {
        let r = DocumentReader()
        let top = r.object(doc, "", allowed: ["key", "name", "currency", "timeZone", "pointValue", "tiers", "assessment",
                                              "earning", "activities", "expiry", "pendingDays", "refund",
                                              "benefits", "benefitPolicy", "mall", "birthday", "tags", "churn", "identityPriority", "mergeUndoDays", "mergeOn", "lifecycle"]) ?? [:]
        let key = r.string(top["key"], "key", maxLength: 64, pattern: Identifier.isValid, patternText: Identifier.rule)
        let name = localized(r, top["name"], "name")
        let currency = r.string(top["currency"], "currency", maxLength: 10, pattern: { s in
            s.count == 3 && s.utf8.allSatisfy { $0 >= 65 && $0 <= 90 } }, patternText: "an ISO 4217 code in capitals, e.g. CNY")
        let tzName = r.string(top["timeZone"], "timeZone", maxLength: 64)
        if let tzName, !(TimeZone.knownTimeZoneIdentifiers.contains(tzName) || tzName == "UTC") || TimeZone(identifier: tzName) == nil {
            r.fail("timeZone", "'\(tzName)' is not an IANA time zone name such as Asia/Shanghai (abbreviations like CST are ambiguous)")
        }
        let pointValue = r.permille(top["pointValue"], "pointValue", required: false, min: 0, max: 1_000_000_000) ?? 0

        // Tiers
        var tiers: [TierDefinition] = []
        if let arr = r.array(top["tiers"], "tiers", maxCount: maxTiers) {
            if arr.isEmpty { r.fail("tiers", "must list at least one tier") }
            var seen = Set<String>()
            for (i, v) in arr.enumerated() {
                let p = "tiers[\(i)]"
                guard let o = r.object(v, p, allowed: ["id", "name", "threshold", "benefits", "allowances"]) else { continue }
                let id = r.string(o["id"], "\(p).id", maxLength: 64, pattern: Identifier.isValid, patternText: Identifier.rule)
                let nm = localized(r, o["name"], "\(p).name")
                let th = r.int(o["threshold"], "\(p).threshold", max: 1_000_000_000_000)
                var benefits: [String] = []
                if let b = r.array(o["benefits"], "\(p).benefits", required: false, maxCount: 100) {
                    for (j, x) in b.enumerated() {
                        if let s = r.string(x, "\(p).benefits[\(j)]", maxLength: 64, pattern: Identifier.isValid, patternText: Identifier.rule) { benefits.append(s) }
                    }
                }
                if let id { if !seen.insert(id).inserted { r.fail("\(p).id", "'\(id)' is used by an earlier tier") } }
                if let th {
                    if i == 0 && th != 0 { r.fail("\(p).threshold", "the first tier is where every member starts: its threshold must be 0, got \(th)") }
                    if i > 0, let prev = tiers.last, th <= prev.threshold {
                        r.fail("\(p).threshold", "must be greater than the previous tier's threshold (\(prev.threshold)), got \(th)")
                    }
                }
                let allowances = allowances(r, o["allowances"], "\(p).allowances")
                if i == 0, !benefits.isEmpty { r.fail("\(p).benefits", "every member starts in the first tier, nobody reaches it: give the first tier allowances instead of upgrade gifts") }
                if let id, let nm, let th { tiers.append(TierDefinition(id: id, name: nm, threshold: th, benefits: benefits, allowances: allowances)) }
            }
        }

        // Assessment
        var assessment: Assessment?
        if let o = r.object(top["assessment"], "assessment", allowed: ["kind", "windowDays", "period", "downgrade", "graceDays"]) {
            let kind = r.oneOf(o["kind"], "assessment.kind", AssessmentKind.self)
            var window: Int?, period: CalendarPeriod?
            switch kind {
            case .rolling?: window = r.int(o["windowDays"], "assessment.windowDays", min: 1, max: 3660).map(Int.init)
            case .calendar?: period = r.oneOf(o["period"], "assessment.period", CalendarPeriod.self)
            case .lifetime?:
                if o["windowDays"] != nil { r.fail("assessment.windowDays", "only applies to kind rolling") }
                if o["period"] != nil { r.fail("assessment.period", "only applies to kind calendar") }
            case nil: break
            }
            if kind == .rolling, o["period"] != nil { r.fail("assessment.period", "only applies to kind calendar") }
            if kind == .calendar, o["windowDays"] != nil { r.fail("assessment.windowDays", "only applies to kind rolling") }
            let down = r.oneOf(o["downgrade"], "assessment.downgrade", DowngradePolicy.self, default: kind == .lifetime ? DowngradePolicy.none : .oneTier)
            let grace = r.int(o["graceDays"], "assessment.graceDays", required: false, max: 366).map(Int.init) ?? 0
            if kind == .lifetime, down != DowngradePolicy.none, o["downgrade"] != nil {
                r.fail("assessment.downgrade", "a lifetime assessment never downgrades; use none, or a rolling or calendar assessment")
            }
            if let kind, let down { assessment = Assessment(kind: kind, windowDays: window, period: period, downgrade: down, graceDays: grace) }
        }

        // Earning
        var earning: EarningRules?
        if let o = r.object(top["earning"], "earning", allowed: ["points", "growth", "rounding", "stacking", "multipliers", "caps"]) {
            let pts = rate(r, o["points"], "earning.points")
            let gro = rate(r, o["growth"], "earning.growth")
            let rounding = r.oneOf(o["rounding"], "earning.rounding", Rounding.self, default: .floor)
            let stacking = r.oneOf(o["stacking"], "earning.stacking", Stacking.self, default: .max)
            var mults: [Multiplier] = []
            var seen = Set<String>()
            for (i, v) in (r.array(o["multipliers"], "earning.multipliers", required: false, maxCount: maxMultipliers) ?? []).enumerated() {
                let p = "earning.multipliers[\(i)]"
                guard let m = r.object(v, p, allowed: ["id", "factor", "applyTo", "categories", "skus", "channels", "from", "until"]) else { continue }
                let id = r.string(m["id"], "\(p).id", maxLength: 64, pattern: Identifier.isValid, patternText: Identifier.rule)
                if let id, !seen.insert(id).inserted { r.fail("\(p).id", "'\(id)' is used by an earlier multiplier") }
                let factor = r.permille(m["factor"], "\(p).factor", min: 0, max: 100_000)
                let target = r.oneOf(m["applyTo"], "\(p).applyTo", MultiplierTarget.self, default: .points)
                let cats = strings(r, m["categories"], "\(p).categories")
                let skus = strings(r, m["skus"], "\(p).skus")
                let chans = strings(r, m["channels"], "\(p).channels")
                let from = r.timestamp(m["from"], "\(p).from", required: false)
                let until = r.timestamp(m["until"], "\(p).until", required: false)
                if let from, let until, until <= from { r.fail("\(p).until", "must be after from (\(from))") }
                if cats == nil, skus == nil, chans == nil, from == nil, until == nil {
                    r.fail(p, "needs at least one condition: categories, skus, channels, from or until")
                }
                if let id, let factor, let target {
                    mults.append(Multiplier(id: id, factorPermille: factor, applyTo: target, categories: cats, skus: skus, channels: chans, from: from, until: until))
                }
            }
            var caps = Caps()
            if let c = r.object(o["caps"], "earning.caps", allowed: ["pointsPerOrder", "pointsPerDay", "growthPerOrder", "growthPerDay"], required: false) {
                caps.pointsPerOrder = r.int(c["pointsPerOrder"], "earning.caps.pointsPerOrder", required: false, min: 1)
                caps.pointsPerDay = r.int(c["pointsPerDay"], "earning.caps.pointsPerDay", required: false, min: 1)
                caps.growthPerOrder = r.int(c["growthPerOrder"], "earning.caps.growthPerOrder", required: false, min: 1)
                caps.growthPerDay = r.int(c["growthPerDay"], "earning.caps.growthPerDay", required: false, min: 1)
            }
            if let pts, let gro, let rounding, let stacking {
                earning = EarningRules(points: pts, growth: gro, rounding: rounding, stacking: stacking, multipliers: mults, caps: caps)
            }
        }

        // Activities
        var activities: [ActivityRule] = []
        var seenAct = Set<String>()
        for (i, v) in (r.array(top["activities"], "activities", required: false, maxCount: maxActivities) ?? []).enumerated() {
            let p = "activities[\(i)]"
            guard let o = r.object(v, p, allowed: ["id", "name", "points", "growth", "limit", "trigger"]) else { continue }
            let id = r.string(o["id"], "\(p).id", maxLength: 64, pattern: Identifier.isValid, patternText: Identifier.rule)
            if let id, !seenAct.insert(id).inserted { r.fail("\(p).id", "'\(id)' is used by an earlier activity") }
            let nm = o["name"] == nil ? nil : localized(r, o["name"], "\(p).name")
            let pts = r.int(o["points"], "\(p).points", required: false, max: 10_000_000) ?? 0
            let gro = r.int(o["growth"], "\(p).growth", required: false, max: 10_000_000) ?? 0
            if pts == 0 && gro == 0 && r.errors.allSatisfy({ !$0.path.hasPrefix("\(p).points") && !$0.path.hasPrefix("\(p).growth") }) {
                r.fail(p, "awards nothing: give points or growth above 0")
            }
            let limit = r.oneOf(o["limit"], "\(p).limit", ActivityLimit.self, default: .unlimited)
            let trigger = r.oneOf(o["trigger"], "\(p).trigger", ActivityTrigger.self, default: .event)
            if trigger == .firstOrder, limit != .once, o["limit"] != nil { r.fail("\(p).limit", "a firstOrder activity is awarded once; use limit once") }
            if let id, let limit, let trigger {
                activities.append(ActivityRule(id: id, name: nm, points: pts, growth: gro, limit: trigger == .firstOrder ? .once : limit, trigger: trigger))
            }
        }

        // Expiry
        var expiry = ExpiryPolicy(kind: .none)
        if let o = r.object(top["expiry"], "expiry", allowed: ["kind", "days", "period", "months"], required: false) {
            let kind = r.oneOf(o["kind"], "expiry.kind", ExpiryKind.self)
            if kind != .afterDays, o["days"] != nil { r.fail("expiry.days", "only applies to kind afterDays") }
            if kind != .endOfPeriod, o["period"] != nil { r.fail("expiry.period", "only applies to kind endOfPeriod") }
            if kind != .endOfPeriod, o["months"] != nil { r.fail("expiry.months", "only applies to kind endOfPeriod") }
            switch kind {
            case .afterDays?: expiry = ExpiryPolicy(kind: .afterDays, days: r.int(o["days"], "expiry.days", min: 1, max: 3660).map(Int.init))
            case .endOfPeriod?:
                expiry = ExpiryPolicy(kind: .endOfPeriod, period: r.oneOf(o["period"], "expiry.period", ExpiryPeriod.self),
                                      months: r.int(o["months"], "expiry.months", required: false, min: 0, max: 120).map(Int.init) ?? 0)
            case .none?, nil: break
            }
        }
        let pending = r.int(top["pendingDays"], "pendingDays", required: false, max: 365).map(Int.init) ?? 0
        var refund = RefundPolicy(shortfall: .negativeBalance, undoUpgrade: true)
        if let o = r.object(top["refund"], "refund", allowed: ["shortfall", "undoUpgrade"], required: false) {
            refund.shortfall = r.oneOf(o["shortfall"], "refund.shortfall", ShortfallPolicy.self, default: .negativeBalance) ?? .negativeBalance
            refund.undoUpgrade = r.bool(o["undoUpgrade"], "refund.undoUpgrade", default: true)
        }
        let benefits = benefits(r, top["benefits"])
        let known = Set(benefits.map(\.id))
        for (i, t) in tiers.enumerated() {
            for (j, b) in t.benefits.enumerated() where !known.contains(b) { r.fail("tiers[\(i)].benefits[\(j)]", "names benefit '\(b)', which is not in benefits") }
            for (j, a) in t.allowances.enumerated() where !known.contains(a.benefit) { r.fail("tiers[\(i)].allowances[\(j)].benefit", "names benefit '\(a.benefit)', which is not in benefits") }
        }
        var benefitPolicy = BenefitPolicy()
        if let o = r.object(top["benefitPolicy"], "benefitPolicy", allowed: ["revokeOnDowngrade", "upgradeGiftsOncePer"], required: false) {
            benefitPolicy.revokeOnDowngrade = r.bool(o["revokeOnDowngrade"], "benefitPolicy.revokeOnDowngrade", default: false)
            benefitPolicy.upgradeGiftsOncePer = r.oneOf(o["upgradeGiftsOncePer"], "benefitPolicy.upgradeGiftsOncePer", BenefitPolicy.GiftEvery.self, default: .lifetime) ?? .lifetime
        }
        let mall = mall(r, top["mall"], benefits: known, tiers: Set(tiers.map(\.id)))
        let tags = tags(r, top["tags"])
        var churn: ChurnPolicy? = nil
        if let o = r.object(top["churn"], "churn", allowed: ["atRiskBelow", "horizonWeeks", "discountRate"], required: false) {
            let below = r.permille(o["atRiskBelow"], "churn.atRiskBelow", min: 1, max: 999)
            let weeks = r.int(o["horizonWeeks"], "churn.horizonWeeks", required: false, min: 1, max: 520) ?? 52
            let rate = r.permille(o["discountRate"], "churn.discountRate", required: false, min: 0, max: 1000) ?? 0
            if let below { churn = ChurnPolicy(atRiskBelowPermille: below, horizonWeeks: Int(weeks), discountRatePermille: rate) }
        }
        var birthday: BirthdayRule? = nil
        if let o = r.object(top["birthday"], "birthday", allowed: ["benefit", "count", "when", "tiers"], required: false) {
            let b = r.string(o["benefit"], "birthday.benefit", maxLength: 64)
            if let b, !known.contains(b) { r.fail("birthday.benefit", "names benefit '\(b)', which is not in benefits") }
            let count = r.int(o["count"], "birthday.count", required: false, min: 1, max: 10) ?? 1
            let when = r.oneOf(o["when"], "birthday.when", BirthdayRule.When.self, default: .month)
            let eligible = strings(r, o["tiers"], "birthday.tiers")
            for (j, t) in (eligible ?? []).enumerated() where !tiers.contains(where: { $0.id == t }) { r.fail("birthday.tiers[\(j)]", "names tier '\(t)', which is not in tiers") }
            if let b, let when { birthday = BirthdayRule(benefit: b, count: Int(count), when: when, tiers: eligible) }
        }
        var priority = ProgramDefinition.defaultIdentityPriority
        if let xs = r.array(top["identityPriority"], "identityPriority", required: false, maxCount: IdentityKind.allCases.count) {
            var named: [IdentityKind] = []
            for (i, x) in xs.enumerated() {
                guard let k = r.oneOf(x, "identityPriority[\(i)]", IdentityKind.self) else { continue }
                if named.contains(k) { r.fail("identityPriority[\(i)]", "'\(k.rawValue)' is named twice") } else { named.append(k) }
            }
            priority = named + ProgramDefinition.defaultIdentityPriority.filter { !named.contains($0) }
        }
        let undoDays = r.int(top["mergeUndoDays"], "mergeUndoDays", required: false, min: 0, max: 3650) ?? 365
        var lifecycle = LifecycleThresholds()
        if let o = r.object(top["lifecycle"], "lifecycle", allowed: ["newDays", "atRiskDays", "silentDays", "lostDays"], required: false) {
            let d = LifecycleThresholds()
            lifecycle.newDays = Int(r.int(o["newDays"], "lifecycle.newDays", required: false, min: 1, max: 3650) ?? Int64(d.newDays))
            lifecycle.atRiskDays = Int(r.int(o["atRiskDays"], "lifecycle.atRiskDays", required: false, min: 1, max: 3650) ?? Int64(d.atRiskDays))
            lifecycle.silentDays = Int(r.int(o["silentDays"], "lifecycle.silentDays", required: false, min: 1, max: 3650) ?? Int64(d.silentDays))
            lifecycle.lostDays = Int(r.int(o["lostDays"], "lifecycle.lostDays", required: false, min: 1, max: 3650) ?? Int64(d.lostDays))
            if lifecycle.silentDays <= lifecycle.atRiskDays { r.fail("lifecycle.silentDays", "must be more than atRiskDays (\(lifecycle.atRiskDays))") }
            if lifecycle.lostDays <= lifecycle.silentDays { r.fail("lifecycle.lostDays", "must be more than silentDays (\(lifecycle.silentDays))") }
        }
        var mergeOn: [IdentityKind] = []
        for (i, x) in (r.array(top["mergeOn"], "mergeOn", required: false, maxCount: IdentityKind.allCases.count) ?? []).enumerated() {
            guard let k = r.oneOf(x, "mergeOn[\(i)]", IdentityKind.self) else { continue }
            if mergeOn.contains(k) { r.fail("mergeOn[\(i)]", "'\(k.rawValue)' is named twice") } else { mergeOn.append(k) }
        }
        guard r.errors.isEmpty, let key, let name, let currency, let tzName, let assessment, let earning else {
            return .failure(ValidationFailure(r.errors.isEmpty ? [FieldError(path: "", reason: "is incomplete")] : r.errors))
        }
        return .success(ProgramDefinition(key: key, name: name, currency: currency, timeZone: tzName, pointValueMinorPermille: pointValue,
                                          tiers: tiers, assessment: assessment, earning: earning, activities: activities,
                                          expiry: expiry, pendingDays: pending, refund: refund, benefits: benefits, benefitPolicy: benefitPolicy, mall: mall, birthday: birthday, tags: tags, churn: churn)
            .with { $0.identityPriority = priority; $0.mergeUndoDays = Int(undoDays); $0.mergeOn = mergeOn; $0.lifecycle = lifecycle })
    }

    static func localized(_ r: DocumentReader, _ v: JSONValue?, _ path: String) -> LocalizedText? {
        if case .string(let s)? = v { return LocalizedText(zh: s, en: s) }
        guard let o = r.object(v, path, allowed: ["zh-CN", "en"]) else { return nil }
        let zh = r.string(o["zh-CN"], "\(path).zh-CN", maxLength: 100)
        let en = r.string(o["en"], "\(path).en", maxLength: 100)
        guard let zh, let en else { return nil }
        return LocalizedText(zh: zh, en: en)
    }
    static func rate(_ r: DocumentReader, _ v: JSONValue?, _ path: String) -> EarningRate? {
        guard let o = r.object(v, path, allowed: ["unitMinor", "perUnit"]) else { return nil }
        let unit = r.int(o["unitMinor"], "\(path).unitMinor", min: 1, max: 1_000_000)
        let per = r.permille(o["perUnit"], "\(path).perUnit", min: 0, max: 1_000_000)
        guard let unit, let per else { return nil }
        return EarningRate(unitMinor: unit, perUnitPermille: per)
    }
    static func strings(_ r: DocumentReader, _ v: JSONValue?, _ path: String) -> [String]? {
        guard let a = r.array(v, path, required: false, maxCount: 1000) else { return nil }
        if a.isEmpty { r.fail(path, "must not be empty; leave it out to match everything"); return nil }
        return a.enumerated().compactMap { r.string($1, "\(path)[\($0)]", maxLength: 100) }
    }
}

extension TierDefinition {
    /// Within `withinPermille` below the next tier's threshold (the funnel's "near the next tier").
    public static func isNear(_ qualifying: Int64, nextThreshold: Int64, withinPermille: Int64 = 200) -> Bool {
        qualifying < nextThreshold && qualifying * 1000 >= nextThreshold * (1000 - withinPermille)
    }
}
