import Foundation
import PatronCore

public struct MemberSegment: Codable, Sendable, Equatable {
    public var segment: String
    public var since: Timestamp
}

/// Everything known about one member in one answer (会员画像).
public struct MemberPortrait: Codable, Sendable {
    public struct Share: Codable, Sendable, Equatable {
        public var key: String
        public var orders: Int64
        public var spentMinor: Int64
    }
    public struct Month: Codable, Sendable, Equatable {
        /// `YYYY-MM`, local.
        public var month: String
        public var orders: Int64
        public var spentMinor: Int64
    }
    public struct OrderStats: Codable, Sendable, Equatable {
        public var count: Int64
        public var totalMinor: Int64
        public var averageMinor: Int64?
        public var first: Timestamp?
        public var last: Timestamp?
        /// Orders fully refunded (counted above, as paid).
        public var refunded: Int64
        public var byMonth: [Month]
    }
    public var member: MemberRecord
    /// RFM scores and lifecycle stage as of the last scoring run (`patron jobs rfm`).
    public var rfm: MemberRFM?
    /// P(alive), expected purchases, CLV and the churn warning from the last model fit.
    public var churn: MemberChurn?
    public var tags: [MemberTagView]
    /// The saved segments the member is in, with since when.
    public var segments: [MemberSegment]
    /// Benefits by status now.
    public var benefits: [String: Int]
    public var orders: OrderStats
    /// Top categories by spend and by count of order lines; channels and stores by orders.
    public var categoriesBySpend: [Share]
    public var categoriesByCount: [Share]
    public var channels: [Share]
    public var stores: [Share]
    public var preferredChannel: String?
    public var preferredStore: String?
    /// The latest events, newest first.
    public var timeline: [Store.StoredEvent]
}

extension Store {
    /// The member's portrait. Order statistics are read from the member's own events (a
    /// member's history, not a scan of the program's orders).
    public func portrait(program: String, member id: MemberID, now: Timestamp, timeline: Int = 50) async throws -> MemberPortrait {
        let record = try await member(program: program, id: id, now: now)
        let clock = try await self.program(program).at(now).clock
        let history = try await events(program: program, member: id)
        var count: Int64 = 0, total: Int64 = 0, first: Timestamp? = nil, last: Timestamp? = nil
        var months: [String: (Int64, Int64)] = [:], cats: [String: (Int64, Int64)] = [:], channels: [String: (Int64, Int64)] = [:], stores: [String: (Int64, Int64)] = [:]
        var refundedWhole = Set<String>()
        for e in history {
            switch e.body {
            case .orderPaid(let o):
                let paid = o.paidMinor
                count += 1; total += paid
                first = min(first ?? e.occurredAt, e.occurredAt); last = max(last ?? e.occurredAt, e.occurredAt)
                let d = clock.date(e.occurredAt)
                let m = String(format: "%04d-%02d", d.year, d.month)
                months[m, default: (0, 0)].0 += 1; months[m, default: (0, 0)].1 += paid
                // Line amounts after their own discounts; the order discount is shared as the engine shares it.
                for (line, net) in zip(o.lines, Engine.allocateOrderDiscount(o)) {
                    let c = line.category ?? ""
                    cats[c, default: (0, 0)].0 += 1; cats[c, default: (0, 0)].1 += net
                }
                if let ch = o.channel { channels[ch, default: (0, 0)].0 += 1; channels[ch, default: (0, 0)].1 += paid }
                if let st = o.store { stores[st, default: (0, 0)].0 += 1; stores[st, default: (0, 0)].1 += paid }
            case .orderRefunded(let r) where r.lines == nil:
                refundedWhole.insert(r.orderId)
            default: break
            }
        }
        func shares(_ d: [String: (Int64, Int64)], bySpend: Bool) -> [MemberPortrait.Share] {
            d.map { MemberPortrait.Share(key: $0.key, orders: $0.value.0, spentMinor: $0.value.1) }
                .sorted { bySpend ? ($0.spentMinor, $1.key) > ($1.spentMinor, $0.key) : ($0.orders, $1.key) > ($1.orders, $0.key) }
        }
        let wallet = try await self.wallet(program: program, member: id, status: nil, now: now)
        let ch = shares(channels, bySpend: false), st = shares(stores, bySpend: false)
        return MemberPortrait(member: record, rfm: try await memberRFM(program: program, member: id), churn: try await memberChurn(program: program, member: id), tags: try await memberTags(program: program, member: id, now: now),
                              segments: try await memberSegments(program: program, member: id).map { MemberSegment(segment: $0.segment, since: $0.since) }, benefits: wallet.counts,
                              orders: .init(count: count, totalMinor: total, averageMinor: count > 0 ? total / count : nil, first: first, last: last,
                                            refunded: Int64(refundedWhole.count),
                                            byMonth: months.sorted { $0.key < $1.key }.map { MemberPortrait.Month(month: $0.key, orders: $0.value.0, spentMinor: $0.value.1) }),
                              categoriesBySpend: Array(shares(cats, bySpend: true).prefix(10)), categoriesByCount: Array(shares(cats, bySpend: false).prefix(10)),
                              channels: ch, stores: Array(st.prefix(10)), preferredChannel: ch.first?.key, preferredStore: st.first?.key,
                              timeline: try await eventLog(program: program, member: id, cursor: nil, limit: timeline).items)
    }
}
