import Foundation

/// What a benefit gives when it is used.
public enum BenefitKind: String, Codable, Sendable, CaseIterable {
    /// `amountMinor` off an order of at least `minSpendMinor`.
    case amountOff
    /// An amount off with no minimum spend (无门槛券).
    case noMinimum
    /// `percent` off the order, at most `capMinor`, from `minSpendMinor`.
    case percentOff
    /// The order's shipping fee, at most `capMinor` when set.
    case freeShipping
    /// A gift item (`giftSku`) handed over with the order or at the counter.
    case gift
    /// `percent` off the lines in `categories` (会员价), at most `capMinor`.
    case memberPrice
    /// Early access to a sale or priority purchase: used once, no money off.
    case priorityAccess
    /// A service such as free alteration: used once, no money off.
    case service
    /// Multiplies the points the order earns (`factor`, e.g. 2 for double points). Written off
    /// at checkout, before the order is paid: the order then earns with it.
    case pointsMultiplier
}

/// When a granted benefit may still be claimed, or a claimed one used.
public enum BenefitWindow: Codable, Sendable, Equatable {
    /// Through the end of the local day `n` days after the start (a claim on 11-01 with 7 days
    /// can be used until 11-08 23:59:59 in the program's time zone).
    case days(Int)
    /// Until a fixed instant (exclusive).
    case until(Timestamp)
    /// Until the end of the calendar month or year in which the benefit was granted.
    case endOfPeriod(ExpiryPeriod)

    enum CodingKeys: String, CodingKey { case days, until, endOf }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let n = try c.decodeIfPresent(Int.self, forKey: .days) { self = .days(n) }
        else if let t = try c.decodeIfPresent(Timestamp.self, forKey: .until) { self = .until(t) }
        else { self = .endOfPeriod(try c.decode(ExpiryPeriod.self, forKey: .endOf)) }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .days(let n): try c.encode(n, forKey: .days)
        case .until(let t): try c.encode(t, forKey: .until)
        case .endOfPeriod(let p): try c.encode(p, forKey: .endOf)
        }
    }

    /// The first instant outside the window that starts at `start` for a grant made at `grantedAt`.
    public func end(start: Timestamp, grantedAt: Timestamp, clock: ProgramClock) -> Timestamp {
        switch self {
        case .days(let n): return clock.startOfDay(CivilDate(dayNumber: clock.dayNumber(start) + Int64(n) + 1))
        case .until(let t): return t
        case .endOfPeriod(let p):
            let d = clock.date(grantedAt)
            return clock.startOfDay(p == .month ? d.firstOfMonth(addingMonths: 1) : CivilDate(year: d.year + 1, month: 1, day: 1))
        }
    }
}

public struct UseLimit: Codable, Sendable, Equatable {
    public var count: Int
    public var per: CalendarPeriod
}

public struct BenefitDefinition: Codable, Sendable, Equatable {
    public var id: String
    public var name: LocalizedText
    public var description: LocalizedText?
    public var kind: BenefitKind
    public var amountMinor: Int64?
    public var minSpendMinor: Int64
    /// Percent off, in thousandths of a percent (12.5% is 12500).
    public var percentMilli: Int64?
    public var capMinor: Int64?
    public var categories: [String]?
    public var giftSku: String?
    /// Points factor in thousandths (2 is 2000), for `pointsMultiplier`.
    public var factorPermille: Int64?
    /// How long after the grant it may be claimed; nil: as long as it could be used.
    public var claimWindow: BenefitWindow?
    /// How long after the claim it may be used; nil: without end.
    public var useWindow: BenefitWindow?
    /// Claimed at once when granted (the member does not have to act).
    public var autoClaim: Bool
    public var limit: UseLimit?
    public var channels: [String]?
    public var stores: [String]?
    /// May be used on an order together with other benefits.
    public var combinable: Bool
    /// A reversed use returns the benefit to the wallet when its use window is still open.
    public var returnOnReversal: Bool

    /// The discount for an order, or why the benefit does not apply to it. Windows, limits and
    /// combinability are checked by the engine; this is the money.
    public func discount(for r: BenefitRedeemed) -> Result<Int64, BenefitRefusal> {
        if r.amountMinor < minSpendMinor { return .failure(.belowMinimumSpend(minimum: minSpendMinor, amount: r.amountMinor)) }
        switch kind {
        case .amountOff, .noMinimum: return .success(min(amountMinor ?? 0, r.amountMinor))
        case .percentOff:
            let d = Int64(Int128(r.amountMinor) * Int128(percentMilli ?? 0) / 100_000)
            return .success(min(d, capMinor ?? .max))
        case .freeShipping: return .success(min(r.shippingMinor ?? 0, capMinor ?? .max))
        case .memberPrice:
            let cats = Set(categories ?? [])
            let base = (r.lines ?? []).reduce(Int64(0)) { $0 + (cats.contains($1.category ?? "") ? $1.amountMinor : 0) }
            guard base > 0 else { return .failure(.noEligibleLines(categories: categories ?? [])) }
            return .success(min(Int64(Int128(base) * Int128(percentMilli ?? 0) / 100_000), capMinor ?? .max))
        case .gift, .priorityAccess, .service, .pointsMultiplier: return .success(0)
        }
    }
}

/// How a tier grants a benefit while it is held: `count` of it on the first day of every period.
public struct Allowance: Codable, Sendable, Equatable {
    public var benefit: String
    public var count: Int
    public var every: ExpiryPeriod
}

public struct BenefitPolicy: Codable, Sendable, Equatable {
    public enum GiftEvery: String, Codable, Sendable, CaseIterable {
        /// A tier's upgrade gifts once per member.
        case lifetime
        /// Once per member per calendar year (local): reaching the tier again in a later year gives them again.
        case year
    }
    /// On a downgrade, unclaimed and unused benefits granted by the lost tiers are taken back.
    public var revokeOnDowngrade: Bool
    public var upgradeGiftsOncePer: GiftEvery
    public init(revokeOnDowngrade: Bool = false, upgradeGiftsOncePer: GiftEvery = .lifetime) {
        self.revokeOnDowngrade = revokeOnDowngrade; self.upgradeGiftsOncePer = upgradeGiftsOncePer
    }
    enum CodingKeys: String, CodingKey { case revokeOnDowngrade, upgradeGiftsOncePer }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        revokeOnDowngrade = try c.decode(Bool.self, forKey: .revokeOnDowngrade)
        upgradeGiftsOncePer = try c.decodeIfPresent(GiftEvery.self, forKey: .upgradeGiftsOncePer) ?? .lifetime
    }
}

/// The birthday gift: `benefit`, `count` of it, once a year, on the first day of the birthday
/// month or on the day itself (in the program's time zone; 02-29 birthdays on 02-28 in other years).
public struct BirthdayRule: Codable, Sendable, Equatable {
    public enum When: String, Codable, Sendable, CaseIterable { case month, day }
    public var benefit: String
    public var count: Int
    public var when: When
    /// Tiers whose members get it; nil: every tier.
    public var tiers: [String]?
    public init(benefit: String, count: Int = 1, when: When = .month, tiers: [String]? = nil) {
        self.benefit = benefit; self.count = count; self.when = when; self.tiers = tiers
    }
}

extension ProgramParser {
    static let maxBenefits = 200

    static func benefits(_ r: DocumentReader, _ v: JSONValue?) -> [BenefitDefinition] {
        var out: [BenefitDefinition] = []
        var seen = Set<String>()
        for (i, v) in (r.array(v, "benefits", required: false, maxCount: maxBenefits) ?? []).enumerated() {
            let p = "benefits[\(i)]"
            guard let o = r.object(v, p, allowed: ["id", "name", "description", "kind", "amountMinor", "minSpendMinor", "percent", "capMinor",
                                                   "categories", "giftSku", "claim", "use", "autoClaim", "limit", "channels", "stores",
                                                   "combinable", "returnOnReversal", "factor"]) else { continue }
            let id = r.string(o["id"], "\(p).id", maxLength: 64, pattern: Identifier.isValid, patternText: Identifier.rule)
            if let id, !seen.insert(id).inserted { r.fail("\(p).id", "'\(id)' is used by an earlier benefit") }
            let name = localized(r, o["name"], "\(p).name")
            let desc = o["description"] == nil ? nil : localizedLong(r, o["description"], "\(p).description")
            let kind = r.oneOf(o["kind"], "\(p).kind", BenefitKind.self)
            func only(_ field: String, _ kinds: Set<BenefitKind>) {
                if let kind, o[field] != nil, !kinds.contains(kind) {
                    r.fail("\(p).\(field)", "does not apply to kind \(kind.rawValue); it applies to \(kinds.map(\.rawValue).sorted().joined(separator: ", "))")
                }
            }
            only("amountMinor", [.amountOff, .noMinimum]); only("minSpendMinor", [.amountOff, .percentOff])
            only("percent", [.percentOff, .memberPrice]); only("capMinor", [.percentOff, .memberPrice, .freeShipping])
            only("categories", [.memberPrice]); only("giftSku", [.gift]); only("factor", [.pointsMultiplier])
            var amount: Int64? = nil, percent: Int64? = nil, giftSku: String? = nil, cats: [String]? = nil, factor: Int64? = nil
            switch kind {
            case .amountOff?, .noMinimum?: amount = r.int(o["amountMinor"], "\(p).amountMinor", min: 1, max: EventValidator.maxAmountMinor)
            case .percentOff?, .memberPrice?:
                percent = r.permille(o["percent"], "\(p).percent", min: 1, max: 100_000)
                if kind == .memberPrice { cats = strings(r, o["categories"], "\(p).categories"); if cats == nil, o["categories"] == nil { r.fail("\(p).categories", "is required for kind memberPrice") } }
            case .gift?: giftSku = r.string(o["giftSku"], "\(p).giftSku", maxLength: 128)
            case .pointsMultiplier?: factor = r.permille(o["factor"], "\(p).factor", min: 1001, max: 100_000)
            default: break
            }
            let minSpend = r.int(o["minSpendMinor"], "\(p).minSpendMinor", required: false, max: EventValidator.maxAmountMinor) ?? 0
            let cap = r.int(o["capMinor"], "\(p).capMinor", required: false, min: 1, max: EventValidator.maxAmountMinor)
            let claim = window(r, o["claim"], "\(p).claim")
            let use = window(r, o["use"], "\(p).use")
            let autoClaim = r.bool(o["autoClaim"], "\(p).autoClaim", default: false)
            if autoClaim, o["claim"] != nil { r.fail("\(p).claim", "does not apply to a benefit with autoClaim: it is claimed when granted") }
            var limit: UseLimit? = nil
            if let l = r.object(o["limit"], "\(p).limit", allowed: ["count", "per"], required: false) {
                let c = r.int(l["count"], "\(p).limit.count", min: 1, max: 1000)
                let per = r.oneOf(l["per"], "\(p).limit.per", CalendarPeriod.self)
                if let c, let per { limit = UseLimit(count: Int(c), per: per) }
            }
            let channels = strings(r, o["channels"], "\(p).channels")
            let stores = strings(r, o["stores"], "\(p).stores")
            let combinable = r.bool(o["combinable"], "\(p).combinable", default: false)
            let back = r.bool(o["returnOnReversal"], "\(p).returnOnReversal", default: true)
            if let id, let name, let kind {
                out.append(BenefitDefinition(id: id, name: name, description: desc, kind: kind, amountMinor: amount, minSpendMinor: minSpend,
                                             percentMilli: percent, capMinor: cap, categories: cats, giftSku: giftSku, factorPermille: factor, claimWindow: claim, useWindow: use,
                                             autoClaim: autoClaim, limit: limit, channels: channels, stores: stores, combinable: combinable,
                                             returnOnReversal: back))
            }
        }
        return out
    }

    /// `{days: 30}`, `{until: "2026-12-31T16:00:00Z"}` or `{endOf: month|year}`.
    static func window(_ r: DocumentReader, _ v: JSONValue?, _ path: String) -> BenefitWindow? {
        guard let o = r.object(v, path, allowed: ["days", "until", "endOf"], required: false) else { return nil }
        if o.count != 1 { r.fail(path, "must give exactly one of days, until or endOf"); return nil }
        if o["days"] != nil { return r.int(o["days"], "\(path).days", min: 0, max: 3660).map { .days(Int($0)) } }
        if o["until"] != nil { return r.timestamp(o["until"], "\(path).until").map { .until($0) } }
        return r.oneOf(o["endOf"], "\(path).endOf", ExpiryPeriod.self).map { .endOfPeriod($0) }
    }

    static func localizedLong(_ r: DocumentReader, _ v: JSONValue?, _ path: String) -> LocalizedText? {
        if case .string(let s)? = v { return LocalizedText(zh: s, en: s) }
        guard let o = r.object(v, path, allowed: ["zh-CN", "en"]) else { return nil }
        let zh = r.string(o["zh-CN"], "\(path).zh-CN", maxLength: 1000)
        let en = r.string(o["en"], "\(path).en", maxLength: 1000)
        guard let zh, let en else { return nil }
        return LocalizedText(zh: zh, en: en)
    }

    static func allowances(_ r: DocumentReader, _ v: JSONValue?, _ path: String) -> [Allowance] {
        var out: [Allowance] = []
        for (i, x) in (r.array(v, path, required: false, maxCount: 50) ?? []).enumerated() {
            let p = "\(path)[\(i)]"
            guard let o = r.object(x, p, allowed: ["benefit", "count", "every"]) else { continue }
            let b = r.string(o["benefit"], "\(p).benefit", maxLength: 64, pattern: Identifier.isValid, patternText: Identifier.rule)
            let c = r.int(o["count"], "\(p).count", required: false, min: 1, max: 100) ?? 1
            let every = r.oneOf(o["every"], "\(p).every", ExpiryPeriod.self)
            if let b, let every { out.append(Allowance(benefit: b, count: Int(c), every: every)) }
        }
        return out
    }
}
