import Foundation

public enum LotSource: String, Codable, Sendable { case purchase, activity, adjustment }

/// Points earned together: one order, one activity, one staff credit. Spending, expiry and
/// refunds draw lots down; `remaining` is always the sum of the entries that name the lot.
public struct Lot: Codable, Sendable, Equatable {
    public var no: Int
    public var eventId: EventID
    public var source: LotSource
    public var orderId: String?
    public var earnedAt: Timestamp
    public var availableAt: Timestamp
    public var expiresAt: Timestamp?
    public var original: Int64
    public var remaining: Int64
    public init(no: Int, eventId: EventID, source: LotSource, orderId: String?, earnedAt: Timestamp, availableAt: Timestamp,
                expiresAt: Timestamp?, original: Int64, remaining: Int64) {
        self.no = no; self.eventId = eventId; self.source = source; self.orderId = orderId; self.earnedAt = earnedAt
        self.availableAt = availableAt; self.expiresAt = expiresAt; self.original = original; self.remaining = remaining
    }

    public func isAvailable(at t: Timestamp) -> Bool { remaining > 0 && availableAt <= t && !isExpired(at: t) }
    public func isExpired(at t: Timestamp) -> Bool { expiresAt.map { $0 <= t } ?? false }
    /// Spending order: the lot that expires first goes first; lots that never expire go last.
    static func spendOrder(_ a: Lot, _ b: Lot) -> Bool {
        let ea = a.expiresAt?.seconds ?? .max, eb = b.expiresAt?.seconds ?? .max
        if ea != eb { return ea < eb }
        if a.earnedAt != b.earnedAt { return a.earnedAt < b.earnedAt }
        return a.no < b.no
    }
}

public enum EntryReason: String, Codable, Sendable, CaseIterable {
    case purchase, activity, adjustment, redemption, expiry, refund, debtRepayment, debtSettlement
    /// Points returned by a cancelled mall exchange.
    case exchangeCancelled
}
public enum Account: String, Codable, Sendable { case points, debt }

/// One line of the points ledger. Points entries sum to the balance; entries that name a lot sum
/// to that lot's remaining points; points entries without a lot sum to minus the debt.
public struct LedgerEntry: Codable, Sendable, Equatable {
    public var no: Int
    /// The event that made the entry; absent only for expiry, which names its lot.
    public var eventId: EventID?
    public var at: Timestamp
    public var account: Account
    public var points: Int64
    public var reason: EntryReason
    public var lotNo: Int?
    public var orderId: String?
    public var note: String?
    public init(no: Int, eventId: EventID?, at: Timestamp, account: Account, points: Int64, reason: EntryReason, lotNo: Int?, orderId: String?, note: String?) {
        self.no = no; self.eventId = eventId; self.at = at; self.account = account; self.points = points; self.reason = reason
        self.lotNo = lotNo; self.orderId = orderId; self.note = note
    }
}

public enum GrowthReason: String, Codable, Sendable { case purchase, activity, refund }

public struct GrowthEntry: Codable, Sendable, Equatable {
    public var no: Int
    public var eventId: EventID
    public var at: Timestamp
    /// The instant the growth counts at for windows: a refund counts at its order's time.
    public var countsAt: Timestamp
    public var growth: Int64
    public var reason: GrowthReason
    public var orderId: String?
    public init(no: Int, eventId: EventID, at: Timestamp, countsAt: Timestamp, growth: Int64, reason: GrowthReason, orderId: String?) {
        self.no = no; self.eventId = eventId; self.at = at; self.countsAt = countsAt; self.growth = growth; self.reason = reason; self.orderId = orderId
    }
}

public enum TierChangeCause: String, Codable, Sendable { case upgrade, assessment, refund, programChange }

public struct TierChange: Codable, Sendable, Equatable {
    public var no: Int
    public var at: Timestamp
    public var from: String
    public var to: String
    public var cause: TierChangeCause
    public var eventId: EventID?
    /// The growth value the decision stood on.
    public var qualifyingGrowth: Int64
    public init(no: Int, at: Timestamp, from: String, to: String, cause: TierChangeCause, eventId: EventID?, qualifyingGrowth: Int64) {
        self.no = no; self.at = at; self.from = from; self.to = to; self.cause = cause; self.eventId = eventId; self.qualifyingGrowth = qualifyingGrowth
    }
}

public struct TierState: Codable, Sendable, Equatable {
    public var tierId: String
    public var since: Timestamp
    /// When the tier is next assessed (end of its window or period, or end of grace); nil when it
    /// cannot fall (the lowest tier, or a lifetime program).
    public var assessAt: Timestamp?
    /// Set while the member is in the grace period: the instant the failed assessment happened.
    public var graceFrom: Timestamp?
}

public struct LineEarning: Codable, Sendable, Equatable {
    var quantity: Int64
    var points: Int64
    var growth: Int64
    /// What the line paid (its amount less its discounts and its share of the order's), in minor units.
    var paid: Int64
    var refundedQuantity: Int64 = 0
    var refundedPoints: Int64 = 0
    var refundedGrowth: Int64 = 0
    var refundedPaid: Int64 = 0
}

/// What an order earned, line by line, and what of it was refunded: kept in the orders table,
/// not in the member state, and handed to the engine when an event names the order.
public struct OrderRecord: Codable, Sendable, Equatable {
    var eventId: EventID
    var at: Timestamp
    var lines: [LineEarning]
    var lotNo: Int?
    var tierBefore: TierState
    /// Points of this order's lot that lapsed unspent: a refund does not claw them back twice.
    var expiredPoints: Int64 = 0
    var paidMinor: Int64
    /// The tier the member held when the order was paid.
    public var tierAtOrder: String { tierBefore.tierId }
    /// Adds points of the order's lot that lapsed while the record was not loaded.
    public mutating func addLapsed(_ points: Int64) { expiredPoints += points }
    /// The money refunded so far, in minor units.
    public var refundedMinor: Int64 { lines.reduce(0) { $0 + $1.refundedPaid } }
    /// Records stored before lines kept what they paid: the order's paid amount shared among the
    /// lines in proportion to the growth they earned (else the points, else the units), the
    /// remainder to the last line; refunded amounts in proportion to the refunded units.
    mutating func estimateLinePaid() {
        let weights: [Int64]
        if lines.contains(where: { $0.growth > 0 }) { weights = lines.map { max(0, $0.growth) } }
        else if lines.contains(where: { $0.points > 0 }) { weights = lines.map { max(0, $0.points) } }
        else { weights = lines.map { max(0, $0.quantity) } }
        let total = weights.reduce(0, +)
        var left = paidMinor
        for i in lines.indices {
            let share = i == lines.count - 1 || total == 0 ? (i == lines.count - 1 ? left : 0) : Int64(Int128(paidMinor) * Int128(weights[i]) / Int128(total))
            lines[i].paid = share; left -= share
            lines[i].refundedPaid = lines[i].quantity > 0 ? Int64(Int128(share) * Int128(lines[i].refundedQuantity) / Int128(lines[i].quantity)) : 0
        }
    }
}

/// A refund that arrived before its order: applied when the order is recorded.
struct DeferredRefund: Codable, Sendable, Equatable {
    var eventId: EventID
    var at: Timestamp
    var lines: [RefundLine]?
}

struct ActivityMark: Codable, Sendable, Equatable {
    var count: Int
    var lastDay: Int64
}

struct WindowGrowth: Codable, Sendable, Equatable {
    var countsAt: Timestamp
    var growth: Int64
}

/// Everything the engine needs to decide the next event for one member. Derived entirely from
/// the member's events; stored beside them as a snapshot.
public struct MemberState: Codable, Sendable, Equatable {
    public var memberId: MemberID
    public var registeredAt: Timestamp
    public internal(set) var lots: [Lot] = []
    /// Points owed after refunds of spent points (negativeBalance policy).
    public internal(set) var debt: Int64 = 0
    /// Points owed and recorded apart from the balance (recordDebt policy).
    public internal(set) var recordedDebt: Int64 = 0
    public internal(set) var tier: TierState
    public internal(set) var growthTotal: Int64 = 0
    var window: [WindowGrowth] = []
    /// Order records the current step has seen: loaded by the store for the order an event names,
    /// or built during a replay. Not part of the stored snapshot (see `StateCodec`).
    public internal(set) var orders: [String: OrderRecord] = [:]
    var deferredRefunds: [String: [DeferredRefund]] = [:]
    var activities: [String: ActivityMark] = [:]
    var dayNumber: Int64 = .min
    var dayPoints: Int64 = 0
    var dayGrowth: Int64 = 0
    public internal(set) var orderCount: Int = 0
    public internal(set) var spentMinor: Int64 = 0
    /// The latest instant the state has been brought to: the last event's time, or the clock's.
    public internal(set) var asOf: Timestamp
    public internal(set) var lastEventAt: Timestamp?
    public internal(set) var nextEntryNo = 1
    public internal(set) var nextLotNo = 1
    public internal(set) var nextGrowthNo = 1
    public internal(set) var nextTierChangeNo = 1
    public internal(set) var wallet = Wallet()
    /// The profile as the member's history last set it (`member.profile_set`): for the birthday
    /// gift and conditions on profile fields.
    public internal(set) var profile: MemberProfile?
    public var birthday: CivilDate? { profile?.birthday }
    /// Tags the member has now, by tag id.
    public internal(set) var tags: [String: TagMark] = [:]
    /// Recent orders as conditions see them (rule tags, segments): the last 400 days.
    public internal(set) var orderFacts: [OrderFact] = []
    /// When each rule tag's truth could next change with time alone, and the soonest of them.
    public internal(set) var tagDue: [String: Timestamp] = [:]
    public internal(set) var tagsDueAt: Timestamp?
    public internal(set) var nextTagChangeNo = 1
    /// The program version under which every rule tag was last evaluated (or found unchanged) at
    /// an event; rules that read only the profile are then left alone by events that do not set
    /// it. Nil before the first event, or for states stored before it was kept.
    public internal(set) var tagsEvaluatedVersion: Int?
    public internal(set) var lastOrderAt: Timestamp?
    /// Mall exchanges of the last 400 days, and older ones that lifetime limits count.
    public internal(set) var exchanges: [MallExchange] = []
    /// The member's latest scores (RFM, lifecycle, churn): computed from the whole program's
    /// members, not from this member's events, and set by `Engine.rescore`. Replays carry them
    /// over. Nil until the member is first scored.
    public internal(set) var scores: MemberScores?

    /// Hands the engine the stored record of an order an event is about to name.
    public mutating func load(order id: String, _ record: OrderRecord) { orders[id] = record }
    /// The state as stored: without the per-order records.
    public var snapshot: MemberState { var s = self; s.orders = [:]; return s }

    public init(memberId: MemberID, registeredAt: Timestamp, baseTier: String) {
        self.memberId = memberId
        self.registeredAt = registeredAt
        self.tier = TierState(tierId: baseTier, since: registeredAt, assessAt: nil, graceFrom: nil)
        self.asOf = registeredAt
    }

    /// The balance: open lots less the debt. Equal to the sum of the points entries.
    public var balance: Int64 { lots.reduce(0) { $0 + $1.remaining } - debt }
    public func available(at t: Timestamp) -> Int64 {
        max(0, lots.reduce(0) { $0 + ($1.isAvailable(at: t) ? $1.remaining : 0) } - debt)
    }
    public func pending(at t: Timestamp) -> Int64 {
        lots.reduce(0) { $0 + ($1.remaining > 0 && $1.availableAt > t && !$1.isExpired(at: t) ? $1.remaining : 0) }
    }
    /// The next instant something happens without an event: a lot becomes spendable or lapses, or
    /// the tier is assessed.
    public var nextDueAt: Timestamp? {
        var due: Timestamp? = tier.assessAt
        if let a = wallet.nextAllowanceAt { due = min(due ?? a, a) }
        if let b = wallet.nextBirthdayAt { due = min(due ?? b, b) }
        if let g = tagsDueAt { due = min(due ?? g, g) }
        for l in lots where l.remaining > 0 {
            if l.availableAt > asOf { due = min(due ?? l.availableAt, l.availableAt) }
            if let e = l.expiresAt { due = min(due ?? e, e) }
        }
        return due
    }
    /// Points that lapse on each date (the instant they lapse), soonest first.
    public func upcomingExpiries() -> [(at: Timestamp, points: Int64)] {
        var byDate: [Timestamp: Int64] = [:]
        for l in lots where l.remaining > 0 { if let e = l.expiresAt { byDate[e, default: 0] += l.remaining } }
        return byDate.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}
