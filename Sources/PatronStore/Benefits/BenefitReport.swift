import Foundation
import PatronCore

/// How the benefits granted in a period fared, per benefit and tier: the program's health read
/// from how many granted benefits are claimed and used.
public struct BenefitReport: Codable, Sendable, Equatable {
    public struct Row: Codable, Sendable, Equatable {
        public var benefit: String
        /// The tier that granted them; nil for staff grants (and in the per-benefit totals).
        public var tier: String?
        /// Granted in the period.
        public var granted: Int64
        /// Of those, claimed (by `asOf`).
        public var claimed: Int64
        /// Of those, used and not reversed.
        public var used: Int64
        /// Of those, past their claim or use window unused.
        public var expired: Int64
        public var revoked: Int64
        /// claimed / granted and used / claimed, in parts per million.
        public var claimRatePpm: Int64
        public var useRatePpm: Int64
        /// Discounts given by these uses, in minor units.
        public var discountMinor: Int64
        /// Orders paid in the period by the members who used the benefit in the period, and their amount.
        public var usersOrders: Int64?
        public var usersRevenueMinor: Int64?
    }
    public var program: String
    public var from: Timestamp
    public var until: Timestamp
    public var asOf: Timestamp
    /// One row per benefit (all tiers), then one per benefit and granting tier.
    public var benefits: [Row]
    public var byTier: [Row]
}

extension Store {
    /// Counts over the grants made in [from, until), as they stand at `asOf`.
    public func benefitReport(program: String, from: Timestamp, until: Timestamp, asOf: Timestamp) async throws -> BenefitReport {
        _ = try await self.program(program)
        let p = SQLValue.text(program), f = SQLValue.int(from.seconds), u = SQLValue.int(until.seconds), a = SQLValue.int(asOf.seconds)
        let rows = try await db.queryAside("""
            SELECT benefit_id, tier_id, COUNT(*) AS granted,
              SUM(CASE WHEN claimed_at IS NOT NULL AND claimed_at <= ? THEN 1 ELSE 0 END) AS claimed,
              SUM(CASE WHEN used_at IS NOT NULL AND used_at <= ? AND refunded_at IS NULL THEN 1 ELSE 0 END) AS used,
              SUM(CASE WHEN revoked_at IS NULL AND used_at IS NULL AND refunded_at IS NULL AND (
                    (claimed_at IS NULL AND claim_by IS NOT NULL AND claim_by <= ?) OR (claimed_at IS NOT NULL AND use_by IS NOT NULL AND use_by <= ?))
                  THEN 1 ELSE 0 END) AS expired,
              SUM(CASE WHEN revoked_at IS NOT NULL AND revoked_at <= ? THEN 1 ELSE 0 END) AS revoked,
              SUM(CASE WHEN used_at IS NOT NULL AND used_at <= ? AND refunded_at IS NULL THEN discount_minor ELSE 0 END) AS discount
            FROM benefit_grants WHERE program_id = ? AND granted_at >= ? AND granted_at < ?
            GROUP BY benefit_id, tier_id ORDER BY benefit_id, tier_id
            """, [a, a, a, a, a, a, p, f, u])
        var byTier: [BenefitReport.Row] = []
        for r in rows {
            byTier.append(BenefitReport.Row(benefit: try r.string("benefit_id"), tier: try r.stringOrNil("tier_id"), granted: try r.int("granted"),
                                            claimed: try r.int("claimed"), used: try r.int("used"), expired: try r.int("expired"), revoked: try r.int("revoked"),
                                            claimRatePpm: 0, useRatePpm: 0, discountMinor: try r.intOrNil("discount") ?? 0))
        }
        var totals: [String: BenefitReport.Row] = [:]
        for r in byTier {
            var t = totals[r.benefit] ?? BenefitReport.Row(benefit: r.benefit, tier: nil, granted: 0, claimed: 0, used: 0, expired: 0, revoked: 0,
                                                           claimRatePpm: 0, useRatePpm: 0, discountMinor: 0)
            t.granted += r.granted; t.claimed += r.claimed; t.used += r.used; t.expired += r.expired; t.revoked += r.revoked; t.discountMinor += r.discountMinor
            totals[r.benefit] = t
        }
        // What the members who used each benefit in the period bought in it: the period's orders
        // (by the time they were paid) of the members who used any, summed per member, then
        // counted once for each benefit the member used.
        let used = try await db.queryAside("""
            SELECT DISTINCT member_id, benefit_id FROM benefit_grants WHERE program_id = ? AND used_at >= ? AND used_at < ? AND refunded_at IS NULL
            """, [p, f, u])
        var bought: [Int64: (orders: Int64, revenue: Int64)] = [:]
        if !used.isEmpty {
            for r in try await db.queryAside("""
                SELECT member_id, COUNT(*) AS orders, SUM(amount_minor) AS revenue FROM orders
                WHERE program_id = ? AND paid_at >= ? AND paid_at < ?
                  AND member_id IN (SELECT member_id FROM benefit_grants WHERE program_id = ? AND used_at >= ? AND used_at < ? AND refunded_at IS NULL)
                GROUP BY member_id
                """, [p, f, u, p, f, u]) {
                bought[try r.int("member_id")] = (try r.int("orders"), try r.intOrNil("revenue") ?? 0)
            }
        }
        for r in used {
            guard let b = bought[try r.int("member_id")] else { continue }
            let benefit = try r.string("benefit_id")
            if totals[benefit] == nil {
                totals[benefit] = BenefitReport.Row(benefit: benefit, tier: nil, granted: 0, claimed: 0, used: 0, expired: 0, revoked: 0, claimRatePpm: 0, useRatePpm: 0, discountMinor: 0)
            }
            totals[benefit]!.usersOrders = (totals[benefit]!.usersOrders ?? 0) + b.orders
            totals[benefit]!.usersRevenueMinor = (totals[benefit]!.usersRevenueMinor ?? 0) + b.revenue
        }
        func rated(_ r: BenefitReport.Row) -> BenefitReport.Row {
            var r = r
            r.claimRatePpm = r.granted > 0 ? r.claimed * 1_000_000 / r.granted : 0
            r.useRatePpm = r.claimed > 0 ? r.used * 1_000_000 / r.claimed : 0
            return r
        }
        return BenefitReport(program: program, from: from, until: until, asOf: asOf,
                             benefits: totals.values.sorted { $0.benefit < $1.benefit }.map(rated), byTier: byTier.map(rated))
    }
}
