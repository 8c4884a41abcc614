import Foundation

/// Why a member has a benefit.
public enum GrantCause: String, Codable, Sendable, CaseIterable {
    /// Reaching a tier (upgrade gift), once per tier per member.
    case upgrade
    /// Holding a tier on the first day of a period.
    case allowance
    /// Given by staff.
    case staff
    /// Exchanged for points in the mall.
    case mall
    /// The member's birthday gift.
    case birthday
}

/// Where a granted benefit is in its life.
public enum GrantStatus: String, Codable, Sendable, CaseIterable {
    case claimable, claimed, used, expired, revoked
    /// Used on an order that was then refunded after the use window closed (or for a benefit
    /// that does not return): it does not come back.
    case usedRefunded = "used_refunded"
}

/// One use of a benefit on an order (核销).
public struct BenefitUse: Codable, Sendable, Equatable {
    public var eventId: EventID
    public var at: Timestamp
    public var orderId: String
    public var discountMinor: Int64
    public var channel: String?
    public var store: String?
    public init(eventId: EventID, at: Timestamp, orderId: String, discountMinor: Int64, channel: String?, store: String?) {
        self.eventId = eventId; self.at = at; self.orderId = orderId; self.discountMinor = discountMinor; self.channel = channel; self.store = store
    }
}

/// One benefit granted to one member, with its windows and its code.
public struct BenefitGrant: Codable, Sendable, Equatable {
    /// Stable under replays (a late event refolds the history; claims, write-offs and codes
    /// must still name the same grant): `st.<event>.<k>` for staff grants, `up.<tier>.<round>.<k>`
    /// for upgrade gifts, `al.<tier>.<benefit>.<period start yyyymmdd>.<k>` for allowances.
    public var id: String
    public var benefitId: String
    public var cause: GrantCause
    /// The tier that granted it (upgrade and allowance grants).
    public var tierId: String?
    public var eventId: EventID?
    public var grantedAt: Timestamp
    /// First instant it can no longer be claimed; nil: no claim deadline.
    public var claimBy: Timestamp?
    public var claimedAt: Timestamp?
    /// First instant it can no longer be used; set at claim.
    public var useBy: Timestamp?
    /// The write-off code, given at claim.
    public var code: String?
    public var use: BenefitUse?
    /// Set when a use was reversed and the benefit did not come back.
    public var refundedAt: Timestamp?
    public var revokedAt: Timestamp?
    public var note: String?

    public init(id: String, benefitId: String, cause: GrantCause, tierId: String?, eventId: EventID?, grantedAt: Timestamp, note: String? = nil) {
        self.id = id; self.benefitId = benefitId; self.cause = cause; self.tierId = tierId; self.eventId = eventId; self.grantedAt = grantedAt; self.note = note
    }

    public func status(at t: Timestamp) -> GrantStatus {
        if revokedAt != nil { return .revoked }
        if refundedAt != nil { return .usedRefunded }
        if use != nil { return .used }
        if claimedAt != nil { return useBy.map { t >= $0 } ?? false ? .expired : .claimed }
        return claimBy.map { t >= $0 } ?? false ? .expired : .claimable
    }
    /// Still claimable or usable at `t`.
    public func isOpen(at t: Timestamp) -> Bool { let s = status(at: t); return s == .claimable || s == .claimed }
    /// The instant after which nothing more can happen to it except a reversal.
    var settledAt: Timestamp? {
        if let r = revokedAt { return r }
        if let r = refundedAt { return r }
        if let u = use { return u.at }
        return claimedAt != nil ? useBy : claimBy
    }
}

/// The member's benefits as the engine keeps them: open grants and the recent past that limits
/// and reversals need.
public struct Wallet: Codable, Sendable, Equatable {
    public internal(set) var grants: [BenefitGrant] = []
    /// Tiers whose upgrade gifts the member has had.
    public internal(set) var upgradeGifted: Set<String> = []
    /// How many times each tier's upgrade gifts were granted (again after a refund undid them).
    var upgradeRounds: [String: Int] = [:]
    /// Per `tier/benefit` allowance, the start of the last period it was granted for.
    var allowanceMarks: [String: Timestamp] = [:]
    /// When the next allowance is due, for the tier held now.
    public internal(set) var nextAllowanceAt: Timestamp?
    /// When the next birthday gift is due, and the last year one was given.
    public internal(set) var nextBirthdayAt: Timestamp?
    var birthdayYear: Int = 0

    public func grant(_ id: String) -> BenefitGrant? { grants.first { $0.id == id } }
}

// MARK: - Events

/// Staff grant a benefit to a member.
public struct BenefitGranted: Codable, Sendable, Equatable {
    public var benefit: String
    public var count: Int
    public var reason: String
    public var staff: String
    public init(benefit: String, count: Int = 1, reason: String, staff: String) { self.benefit = benefit; self.count = count; self.reason = reason; self.staff = staff }
    enum CodingKeys: String, CodingKey { case benefit, count, reason, staff }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        benefit = try c.decode(String.self, forKey: .benefit); count = try c.decodeIfPresent(Int.self, forKey: .count) ?? 1
        reason = try c.decode(String.self, forKey: .reason); staff = try c.decode(String.self, forKey: .staff)
    }
}

/// The member claims a granted benefit (领取).
public struct BenefitClaimed: Codable, Sendable, Equatable {
    public var grant: String
    public init(grant: String) { self.grant = grant }
}

/// A line of the order a benefit is used on, for benefits that depend on categories.
public struct RedemptionLine: Codable, Sendable, Equatable {
    public var sku: String
    public var category: String?
    public var amountMinor: Int64
    public init(sku: String, category: String? = nil, amountMinor: Int64) { self.sku = sku; self.category = category; self.amountMinor = amountMinor }
}

/// A claimed benefit is used on an order (核销). The store resolves the code to the member and
/// the grant.
public struct BenefitRedeemed: Codable, Sendable, Equatable {
    public var grant: String
    public var orderId: String
    /// The order's amount the discount is computed on, in minor units.
    public var amountMinor: Int64
    public var shippingMinor: Int64?
    public var lines: [RedemptionLine]?
    public var channel: String?
    public var store: String?
    /// Codes of other benefits used on the same order in the same checkout.
    public var combinedWith: [String]?
    public init(grant: String, orderId: String, amountMinor: Int64, shippingMinor: Int64? = nil, lines: [RedemptionLine]? = nil,
                channel: String? = nil, store: String? = nil, combinedWith: [String]? = nil) {
        self.grant = grant; self.orderId = orderId; self.amountMinor = amountMinor; self.shippingMinor = shippingMinor; self.lines = lines
        self.channel = channel; self.store = store; self.combinedWith = combinedWith
    }
}

/// A use is taken back: the order was cancelled or refunded.
public struct BenefitReversed: Codable, Sendable, Equatable {
    public var grant: String
    public var reason: String
    public init(grant: String, reason: String) { self.grant = grant; self.reason = reason }
}

/// Why a benefit cannot be claimed or used. Each says exactly what failed.
public enum BenefitRefusal: Error, Sendable, Equatable {
    case unknownBenefit(String)
    case unknownGrant(String)
    case notClaimable(grant: String, status: GrantStatus)
    case claimWindowClosed(grant: String, closedAt: Timestamp)
    case notClaimed(grant: String)
    case alreadyUsed(grant: String, at: Timestamp, orderId: String)
    case useWindowClosed(grant: String, closedAt: Timestamp)
    case notUsable(grant: String, status: GrantStatus)
    case belowMinimumSpend(minimum: Int64, amount: Int64)
    case noEligibleLines(categories: [String])
    case channelNotAccepted(channel: String?, accepted: [String])
    case storeNotAccepted(store: String?, accepted: [String])
    case notCombinable(benefit: String, with: [String])
    case limitReached(benefit: String, count: Int, per: CalendarPeriod)
    case notUsed(grant: String)
    /// A points multiplier is written off before its order is paid.
    case orderAlreadyPaid(orderId: String)
}

/// Makes a grant's write-off code: 12 characters of Crockford's base32 (no I, L, O or U, so it
/// reads aloud and types without confusion), 60 bits. The store keys it with a secret of the
/// program (HMAC), so codes cannot be guessed from member and grant numbers; the same grant
/// always gets the same code, so replaying a member's history gives the same codes.
public struct CodeMaker: Sendable {
    let bits: @Sendable (MemberID, String) -> UInt64
    public init(_ bits: @escaping @Sendable (MemberID, String) -> UInt64) { self.bits = bits }
    public func code(member: MemberID, grant: String) -> String { Self.format(bits(member, grant)) }

    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
    public static func format(_ v: UInt64) -> String {
        var out = [UInt8](repeating: 0, count: 12)
        for i in 0..<12 { out[i] = alphabet[Int((v >> UInt64(5 * (11 - i))) & 31)] }
        return String(decoding: out, as: UTF8.self)
    }
    /// A code as typed: spaces and dashes dropped, lower case raised, and the letters Crockford
    /// reads as digits (O as 0, I and L as 1) mapped.
    public static func normalize(_ s: String) -> String {
        String(s.uppercased().compactMap { c -> Character? in
            switch c { case " ", "-": return nil; case "O": return "0"; case "I", "L": return "1"; default: return c }
        })
    }
    /// Unkeyed codes for tests and tools: deterministic, but guessable.
    public static let unkeyed = CodeMaker { m, g in
        // FNV-1a over the grant id, mixed with the member.
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in g.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        var x = SplitMix(seed: UInt64(bitPattern: m.rawValue) &* 0x9E37_79B9_7F4A_7C15 ^ h)
        return x.next()
    }
}
