import Foundation

/// An integer id that says what it identifies: `MemberID` and `EventID` cannot be mixed up.
/// JSON carries it as a string (member ids use up to 53 bits; strings keep every client exact).
public struct NumericID<Tag>: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var rawValue: Int64
    public init(_ v: Int64) { rawValue = v }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self), let v = Int64(s) { rawValue = v } else { rawValue = try c.decode(Int64.self) }
    }
    public func encode(to encoder: any Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(String(rawValue)) }
}
public enum MemberTag {}
public enum EventTag {}
public typealias MemberID = NumericID<MemberTag>
/// The arrival sequence number of an event within its member; with the event's time it orders
/// the member's history.
public typealias EventID = NumericID<EventTag>

public struct OrderLine: Codable, Sendable, Equatable {
    public var sku: String
    public var category: String?
    public var quantity: Int64
    /// The line's price before discounts, in minor units.
    public var amountMinor: Int64
    public var discountMinor: Int64
    public init(sku: String, category: String? = nil, quantity: Int64 = 1, amountMinor: Int64, discountMinor: Int64 = 0) {
        self.sku = sku; self.category = category; self.quantity = quantity; self.amountMinor = amountMinor; self.discountMinor = discountMinor
    }
    enum CodingKeys: String, CodingKey { case sku, category, quantity, amountMinor, discountMinor }
    /// `quantity` defaults to 1 and `discountMinor` to 0.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sku = try c.decode(String.self, forKey: .sku)
        category = try c.decodeIfPresent(String.self, forKey: .category)
        quantity = try c.decodeIfPresent(Int64.self, forKey: .quantity) ?? 1
        amountMinor = try c.decode(Int64.self, forKey: .amountMinor)
        discountMinor = try c.decodeIfPresent(Int64.self, forKey: .discountMinor) ?? 0
    }
}

public struct OrderPaid: Codable, Sendable, Equatable {
    public var orderId: String
    public var currency: String?
    public var lines: [OrderLine]
    /// An order-level discount, shared among the lines in proportion to their amounts.
    public var discountMinor: Int64
    public var channel: String?
    public var store: String?
    public init(orderId: String, currency: String? = nil, lines: [OrderLine], discountMinor: Int64 = 0, channel: String? = nil, store: String? = nil) {
        self.orderId = orderId; self.currency = currency; self.lines = lines; self.discountMinor = discountMinor; self.channel = channel; self.store = store
    }
    enum CodingKeys: String, CodingKey { case orderId, currency, lines, discountMinor, channel, store }
    /// `discountMinor` defaults to 0.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        orderId = try c.decode(String.self, forKey: .orderId)
        currency = try c.decodeIfPresent(String.self, forKey: .currency)
        lines = try c.decode([OrderLine].self, forKey: .lines)
        discountMinor = try c.decodeIfPresent(Int64.self, forKey: .discountMinor) ?? 0
        channel = try c.decodeIfPresent(String.self, forKey: .channel)
        store = try c.decodeIfPresent(String.self, forKey: .store)
    }
    public var paidMinor: Int64 { lines.reduce(0) { $0 + $1.amountMinor - $1.discountMinor } - discountMinor }
}

public struct RefundLine: Codable, Sendable, Equatable {
    /// 1-based position of the line in the paid order.
    public var line: Int
    /// Units refunded; the whole remaining quantity when absent.
    public var quantity: Int64?
    public init(line: Int, quantity: Int64? = nil) { self.line = line; self.quantity = quantity }
}

public struct OrderRefunded: Codable, Sendable, Equatable {
    public var orderId: String
    /// The refunded lines; the whole order (what is left of it) when absent.
    public var lines: [RefundLine]?
    public init(orderId: String, lines: [RefundLine]? = nil) { self.orderId = orderId; self.lines = lines }
}

public struct PointsAdjusted: Codable, Sendable, Equatable {
    public var points: Int64
    public var reason: String
    public var staff: String
    public init(points: Int64, reason: String, staff: String) { self.points = points; self.reason = reason; self.staff = staff }
}

public struct ActivityDone: Codable, Sendable, Equatable {
    public var activity: String
    public init(activity: String) { self.activity = activity }
}

public struct PointsRedeemed: Codable, Sendable, Equatable {
    public var points: Int64
    public var purpose: String
    public var reference: String?
    public init(points: Int64, purpose: String, reference: String? = nil) { self.points = points; self.purpose = purpose; self.reference = reference }
}

/// Staff settle points owed under the `recordDebt` refund policy: with points from the balance,
/// paid in money, or waived.
public struct DebtSettled: Codable, Sendable, Equatable {
    public enum Method: String, Codable, Sendable, CaseIterable { case points, money, waived }
    public var points: Int64
    public var method: Method
    public var reason: String
    public var staff: String
    public init(points: Int64, method: Method, reason: String, staff: String) { self.points = points; self.method = method; self.reason = reason; self.staff = staff }
}

public enum EventKind: String, Codable, Sendable, CaseIterable {
    case orderPaid = "order.paid"
    case orderRefunded = "order.refunded"
    case pointsAdjusted = "points.adjusted"
    case activity = "activity"
    case pointsRedeemed = "points.redeemed"
    case debtSettled = "debt.settled"
    case benefitGranted = "benefit.granted"
    case benefitClaimed = "benefit.claimed"
    case benefitRedeemed = "benefit.redeemed"
    case benefitReversed = "benefit.reversed"
    case mallExchanged = "mall.exchanged"
    case mallCancelled = "mall.cancelled"
    /// The member's profile was set or changed (recorded by the store with the profile): the
    /// birthday gift and conditions on profile fields read it from the member's history.
    case profileSet = "member.profile_set"
    case tagSet = "tag.set"
}

public struct ProfileSet: Codable, Sendable, Equatable {
    public var profile: MemberProfile
    public init(profile: MemberProfile) { self.profile = profile }
}

public enum EventBody: Sendable, Equatable {
    case orderPaid(OrderPaid)
    case orderRefunded(OrderRefunded)
    case pointsAdjusted(PointsAdjusted)
    case activity(ActivityDone)
    case pointsRedeemed(PointsRedeemed)
    case debtSettled(DebtSettled)
    case benefitGranted(BenefitGranted)
    case benefitClaimed(BenefitClaimed)
    case benefitRedeemed(BenefitRedeemed)
    case benefitReversed(BenefitReversed)
    case mallExchanged(MallExchanged)
    case mallCancelled(MallCancelled)
    case profileSet(ProfileSet)
    case tagSet(TagSet)

    public var kind: EventKind {
        switch self {
        case .orderPaid: .orderPaid; case .orderRefunded: .orderRefunded; case .pointsAdjusted: .pointsAdjusted
        case .activity: .activity; case .pointsRedeemed: .pointsRedeemed; case .debtSettled: .debtSettled
        case .benefitGranted: .benefitGranted; case .benefitClaimed: .benefitClaimed; case .benefitRedeemed: .benefitRedeemed
        case .benefitReversed: .benefitReversed; case .mallExchanged: .mallExchanged; case .mallCancelled: .mallCancelled
        case .profileSet: .profileSet; case .tagSet: .tagSet
        }
    }
    /// The body as stored: kind plus the payload's JSON.
    public func payloadJSON() -> Data {
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
        switch self {
        case .orderPaid(let x): return try! e.encode(x)
        case .orderRefunded(let x): return try! e.encode(x)
        case .pointsAdjusted(let x): return try! e.encode(x)
        case .activity(let x): return try! e.encode(x)
        case .pointsRedeemed(let x): return try! e.encode(x)
        case .debtSettled(let x): return try! e.encode(x)
        case .benefitGranted(let x): return try! e.encode(x)
        case .benefitClaimed(let x): return try! e.encode(x)
        case .benefitRedeemed(let x): return try! e.encode(x)
        case .benefitReversed(let x): return try! e.encode(x)
        case .mallExchanged(let x): return try! e.encode(x)
        case .mallCancelled(let x): return try! e.encode(x)
        case .profileSet(let x): return try! e.encode(x)
        case .tagSet(let x): return try! e.encode(x)
        }
    }
    public static func decode(kind: EventKind, payload: Data) throws -> EventBody {
        let d = JSONDecoder()
        switch kind {
        case .orderPaid: return .orderPaid(try d.decode(OrderPaid.self, from: payload))
        case .orderRefunded: return .orderRefunded(try d.decode(OrderRefunded.self, from: payload))
        case .pointsAdjusted: return .pointsAdjusted(try d.decode(PointsAdjusted.self, from: payload))
        case .activity: return .activity(try d.decode(ActivityDone.self, from: payload))
        case .pointsRedeemed: return .pointsRedeemed(try d.decode(PointsRedeemed.self, from: payload))
        case .debtSettled: return .debtSettled(try d.decode(DebtSettled.self, from: payload))
        case .benefitGranted: return .benefitGranted(try d.decode(BenefitGranted.self, from: payload))
        case .benefitClaimed: return .benefitClaimed(try d.decode(BenefitClaimed.self, from: payload))
        case .benefitRedeemed: return .benefitRedeemed(try d.decode(BenefitRedeemed.self, from: payload))
        case .benefitReversed: return .benefitReversed(try d.decode(BenefitReversed.self, from: payload))
        case .mallExchanged: return .mallExchanged(try d.decode(MallExchanged.self, from: payload))
        case .mallCancelled: return .mallCancelled(try d.decode(MallCancelled.self, from: payload))
        case .profileSet: return .profileSet(try d.decode(ProfileSet.self, from: payload))
        case .tagSet: return .tagSet(try d.decode(TagSet.self, from: payload))
        }
    }
}

public struct MemberEvent: Sendable, Equatable {
    public var id: EventID
    public var occurredAt: Timestamp
    public var body: EventBody
    public init(id: EventID, occurredAt: Timestamp, body: EventBody) { self.id = id; self.occurredAt = occurredAt; self.body = body }
    /// The order in which a member's events are folded: by time, then by arrival.
    public static func precedes(_ a: MemberEvent, _ b: MemberEvent) -> Bool {
        a.occurredAt != b.occurredAt ? a.occurredAt < b.occurredAt : a.id < b.id
    }
}

/// Checks of an event's own content, before any member state is read. Every problem names its field.
public enum EventValidator {
    public static let maxLines = 500, maxAmountMinor: Int64 = 10_000_000_000, maxPoints: Int64 = 1_000_000_000
    public static func validate(_ body: EventBody) -> [FieldError] {
        var errs: [FieldError] = []
        func text(_ s: String?, _ path: String, required: Bool, max: Int = 128) {
            guard let s else { if required { errs.append(.init(path: path, reason: "is required")) }; return }
            if s.isEmpty { errs.append(.init(path: path, reason: "must not be empty")) }
            if s.count > max { errs.append(.init(path: path, reason: "is longer than \(max) characters")) }
        }
        switch body {
        case .orderPaid(let o):
            text(o.orderId, "orderId", required: true)
            text(o.channel, "channel", required: false, max: 64); text(o.store, "store", required: false, max: 64)
            if o.lines.isEmpty { errs.append(.init(path: "lines", reason: "must have at least one line")) }
            if o.lines.count > maxLines { errs.append(.init(path: "lines", reason: "has \(o.lines.count) lines; at most \(maxLines) are allowed")) }
            var gross: Int64 = 0
            for (i, l) in o.lines.prefix(maxLines).enumerated() {
                let p = "lines[\(i)]"
                text(l.sku, "\(p).sku", required: true); text(l.category, "\(p).category", required: false, max: 64)
                if l.quantity < 1 || l.quantity > 1_000_000 { errs.append(.init(path: "\(p).quantity", reason: "must be between 1 and 1000000, got \(l.quantity)")) }
                if l.amountMinor < 0 || l.amountMinor > maxAmountMinor { errs.append(.init(path: "\(p).amountMinor", reason: "must be between 0 and \(maxAmountMinor), got \(l.amountMinor)")) }
                if l.discountMinor < 0 || l.discountMinor > l.amountMinor { errs.append(.init(path: "\(p).discountMinor", reason: "must be between 0 and the line's amountMinor (\(l.amountMinor)), got \(l.discountMinor)")) }
                gross += max(0, min(l.amountMinor, maxAmountMinor) - max(0, min(l.discountMinor, l.amountMinor)))
            }
            if o.discountMinor < 0 || o.discountMinor > gross { errs.append(.init(path: "discountMinor", reason: "must be between 0 and the lines' total after their discounts (\(gross)), got \(o.discountMinor)")) }
            if let c = o.currency, c.count != 3 { errs.append(.init(path: "currency", reason: "must be an ISO 4217 code such as CNY")) }
        case .orderRefunded(let r):
            text(r.orderId, "orderId", required: true)
            if let lines = r.lines {
                if lines.isEmpty { errs.append(.init(path: "lines", reason: "must list at least one line; leave it out to refund the whole order")) }
                for (i, l) in lines.prefix(maxLines).enumerated() {
                    if l.line < 1 || l.line > maxLines { errs.append(.init(path: "lines[\(i)].line", reason: "must be a line number from 1, got \(l.line)")) }
                    if let q = l.quantity, q < 1 { errs.append(.init(path: "lines[\(i)].quantity", reason: "must be at least 1, got \(q)")) }
                }
            }
        case .pointsAdjusted(let a):
            if a.points == 0 || abs(a.points) > maxPoints { errs.append(.init(path: "points", reason: "must be a non-zero whole number within ±\(maxPoints), got \(a.points)")) }
            text(a.reason, "reason", required: true, max: 500); text(a.staff, "staff", required: true)
        case .activity(let a):
            text(a.activity, "activity", required: true, max: 64)
        case .pointsRedeemed(let r):
            if r.points < 1 || r.points > maxPoints { errs.append(.init(path: "points", reason: "must be between 1 and \(maxPoints), got \(r.points)")) }
            text(r.purpose, "purpose", required: true, max: 200); text(r.reference, "reference", required: false)
        case .debtSettled(let d):
            if d.points < 1 || d.points > maxPoints { errs.append(.init(path: "points", reason: "must be between 1 and \(maxPoints), got \(d.points)")) }
            text(d.reason, "reason", required: true, max: 500); text(d.staff, "staff", required: true)
        case .benefitGranted(let g):
            text(g.benefit, "benefit", required: true, max: 64)
            if g.count < 1 || g.count > 100 { errs.append(.init(path: "count", reason: "must be between 1 and 100, got \(g.count)")) }
            text(g.reason, "reason", required: true, max: 500); text(g.staff, "staff", required: true)
        case .benefitClaimed(let c):
            text(c.grant, "grant", required: true, max: 200)
        case .benefitRedeemed(let r):
            text(r.grant, "grant", required: true, max: 200)
            text(r.orderId, "orderId", required: true)
            text(r.channel, "channel", required: false, max: 64); text(r.store, "store", required: false, max: 64)
            if r.amountMinor < 0 || r.amountMinor > maxAmountMinor { errs.append(.init(path: "amountMinor", reason: "must be between 0 and \(maxAmountMinor), got \(r.amountMinor)")) }
            if let sh = r.shippingMinor, sh < 0 || sh > maxAmountMinor { errs.append(.init(path: "shippingMinor", reason: "must be between 0 and \(maxAmountMinor), got \(sh)")) }
            if let lines = r.lines {
                if lines.count > maxLines { errs.append(.init(path: "lines", reason: "has \(lines.count) lines; at most \(maxLines) are allowed")) }
                for (i, l) in lines.prefix(maxLines).enumerated() {
                    text(l.sku, "lines[\(i)].sku", required: true); text(l.category, "lines[\(i)].category", required: false, max: 64)
                    if l.amountMinor < 0 || l.amountMinor > maxAmountMinor { errs.append(.init(path: "lines[\(i)].amountMinor", reason: "must be between 0 and \(maxAmountMinor), got \(l.amountMinor)")) }
                }
            }
            if let c = r.combinedWith, c.count > 20 { errs.append(.init(path: "combinedWith", reason: "lists \(c.count) codes; at most 20 are allowed")) }
        case .benefitReversed(let r):
            text(r.grant, "grant", required: true, max: 200)
            text(r.reason, "reason", required: true, max: 500)
        case .mallExchanged(let x):
            text(x.item, "item", required: true, max: 64)
            if x.quantity < 1 || x.quantity > 100 { errs.append(.init(path: "quantity", reason: "must be between 1 and 100, got \(x.quantity)")) }
            text(x.address, "address", required: false, max: 500)
        case .mallCancelled(let c):
            if c.exchange.rawValue < 1 { errs.append(.init(path: "exchange", reason: "must be the event id of a mall.exchanged event")) }
            text(c.reason, "reason", required: true, max: 500)
        case .profileSet: break
        case .tagSet(let c):
            text(c.tag, "tag", required: true, max: 64); text(c.by, "by", required: true); text(c.reason, "reason", required: false, max: 500)
        }
        return errs
    }
}
