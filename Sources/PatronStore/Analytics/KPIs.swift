import Foundation
import PatronCore

/// The program's figures over a period of local days [from, until) (issue #5). Order figures come
/// from `member_days`, the aggregate kept as orders arrive (one row per member, day, tier held,
/// channel and store); tier moves from the tier history; claims from the benefit grants.
public struct ProgramKPIs: Codable, Sendable, Equatable {
    public struct Group: Codable, Sendable, Equatable {
        /// The tier held when buying, the channel or the store ("" when the order named none);
        /// nil for the whole program.
        public var key: String?
        /// Members who bought in the period.
        public var activeMembers: Int64
        /// Of those, members with at least two orders in the period.
        public var repeatBuyers: Int64
        /// repeatBuyers / activeMembers, in parts per million.
        public var repurchaseRatePpm: Int64?
        public var orders: Int64
        /// Paid amounts of the period's orders, in minor units (refunds not taken off).
        public var revenueMinor: Int64
        /// Money refunded in the period (by the refund's local day, whenever the order was paid),
        /// under the refunded order's tier held, channel and store; and revenue less it.
        public var refundedMinor: Int64
        public var netRevenueMinor: Int64
        /// revenue / orders, rounded down.
        public var averageOrderMinor: Int64?
        /// orders / active members, in thousandths.
        public var ordersPerActiveMilli: Int64?
    }
    public var program: String
    public var from: CivilDate
    /// Exclusive.
    public var until: CivilDate
    /// Members registered before the period ends, and those registered in it.
    public var members: Int64
    public var newMembers: Int64
    public var total: Group
    /// Of the members who bought in the period just before (same length), the share who bought
    /// again in this one, in ppm; and the counts.
    public var previousBuyers: Int64
    public var returningBuyers: Int64
    public var returnRatePpm: Int64?
    /// Members who moved up (down) a tier in the period, among members not in the top (bottom) tier.
    public var upgradedMembers: Int64
    public var upgradeRatePpm: Int64?
    public var downgradedMembers: Int64
    public var downgradeRatePpm: Int64?
    /// Members in each tier now, and the share in the top tier (the Sephora rule of thumb is ~10%).
    public var tierDistribution: [String: Int64]
    public var topTierSharePpm: Int64?
    /// The loop's funnel: registered (by the period's end) → active in the period → within 20%
    /// of the next tier's threshold now → upgraded in the period → claimed a benefit → bought at
    /// least twice.
    public var funnel: [FunnelStep]
    /// Split by `tier`, `channel` or `store`, when asked.
    public var split: String?
    public var groups: [Group]?
}

public struct FunnelStep: Codable, Sendable, Equatable {
    public var step: String
    public var members: Int64
}

/// Retention by month of first purchase: for each cohort, the share of its members buying in
/// each month after, and the revenue.
public struct Cohorts: Codable, Sendable, Equatable {
    public struct Cohort: Codable, Sendable, Equatable {
        /// `YYYY-MM`.
        public var month: String
        public var members: Int64
        /// Index k: the k-th month after the cohort's (0 is the cohort's own).
        public var buyers: [Int64]
        public var retentionPpm: [Int64]
        public var revenueMinor: [Int64]
    }
    public var program: String
    public var cohorts: [Cohort]
}

/// `segment` groups by the saved segments members are in now (a member in two segments counts in both).
public enum KPISplit: String, Sendable, CaseIterable { case tier, channel, store, segment }

extension Store {
    /// `inMemory`: from the KPI days kept in memory where there are some (SQLite, split by
    /// nothing, tier, channel or store) and the kept near-next-tier counts of past periods; false
    /// reads and computes everything again by SQL (tests compare the two).
    public func kpis(program: String, from: CivilDate, until: CivilDate, split: KPISplit?, now: Timestamp, inMemory: Bool = true) async throws -> ProgramKPIs {
        let versions = try await self.program(program)
        let v = versions.at(now), clock = v.clock
        let p = SQLValue.text(program)
        let d0 = from.dayNumber, d1 = until.dayNumber, len = d1 - d0
        let t0 = clock.startOfDay(from), t1 = clock.startOfDay(until)

        /// A group's figures as the report gives them.
        func group(_ key: String?, _ f: KPIDays.Figures) -> ProgramKPIs.Group {
            .init(key: key, activeMembers: f.activeMembers, repeatBuyers: f.repeatBuyers, repurchaseRatePpm: ppm(f.repeatBuyers, f.activeMembers),
                  orders: f.orders, revenueMinor: f.revenueMinor, refundedMinor: f.refundedMinor, netRevenueMinor: f.revenueMinor - f.refundedMinor,
                  averageOrderMinor: f.orders > 0 ? f.revenueMinor / f.orders : nil, ordersPerActiveMilli: f.activeMembers > 0 ? f.orders * 1000 / f.activeMembers : nil)
        }
        /// The SQL column a split groups by, and the join it needs.
        func grouping(_ split: KPISplit?) -> (column: String?, join: String) {
            (split.map { ["tier": "d.tier_id", "channel": "d.channel", "store": "d.store", "segment": "s.segment_id"][$0.rawValue]! },
             split == .segment ? " JOIN segment_members s ON s.program_id = d.program_id AND s.member_id = d.member_id" : "")
        }
        // Money refunded in the period, per group when split ("" for the whole program).
        func refunds(_ split: KPISplit?) async throws -> [String: Int64] {
            let (col, join) = grouping(split)
            var out: [String: Int64] = [:]
            for r in try await db.queryAside("""
                SELECT \(col ?? "CAST('' AS TEXT)") AS g, SUM(d.refunded_minor) AS v FROM member_refund_days d\(join)
                WHERE d.program_id = ? AND d.day >= ? AND d.day < ?\(col.map { " GROUP BY \($0)" } ?? "")
                """, [p, .int(d0), .int(d1)]) {
                if let v = try r.intOrNil("v") { out[try r.string("g"), default: 0] += v }
            }
            return out
        }
        // One row per member who bought in the period (per group when split).
        func perMember(_ split: KPISplit?) async throws -> [SQLRow] {
            let (col, join) = grouping(split)
            return try await db.queryAside("""
                SELECT d.member_id AS member_id\(col.map { ", \($0) AS g" } ?? ""), SUM(d.orders) AS n, SUM(d.revenue_minor) AS revenue FROM member_days d\(join)
                WHERE d.program_id = ? AND d.day >= ? AND d.day < ? GROUP BY d.member_id\(col.map { ", \($0)" } ?? "")
                """, [p, .int(d0), .int(d1)])
        }
        /// Figures from members' (orders, revenue) in the period.
        func figures(_ members: [(orders: Int64, revenue: Int64)], refunded: Int64) -> KPIDays.Figures {
            var f = KPIDays.Figures()
            for m in members {
                f.activeMembers += 1; f.orders += m.orders; f.revenueMinor += m.revenue
                if m.orders >= 2 { f.repeatBuyers += 1 }
            }
            f.refundedMinor = refunded
            return f
        }
        func one(_ sql: String, _ binds: [SQLValue]) async throws -> Int64 { try await db.queryAside(sql, binds).first?.intOrNil("v") ?? 0 }
        let total: ProgramKPIs.Group, groups: [ProgramKPIs.Group]?, previous: Int64, returning: Int64
        let dimension: KPIDays.Dimension? = switch split { case .tier: .tier; case .channel: .channel; case .store: .store; default: nil }
        // What is kept in memory (SQLite): the KPI days, read when this split uses them, and past
        // near-next-tier counts. The days are a copy, dropped at the end of this branch: the
        // writer thread would copy their storage on its next commit while one is held.
        if inMemory, let days = try await keptKPIs(program: program, days: split == nil || dimension != nil) {
            // From the days kept in memory (the same aggregates, counted by bitsets).
            let f = days.figures(from: d0, until: d1, split: dimension)
            total = group(nil, f.total)
            groups = dimension == nil ? nil : f.groups.sorted { $0.key < $1.key }.map { group($0.key, $0.value) }
            (previous, returning) = days.returning(previousFrom: d0 - len, from: d0, until: d1)
        } else {
            // The whole program counts each member once across groups. Tiers, channels and stores
            // divide a member's days; segments overlap and leave members out, so the total is read apart.
            let rows = try await perMember(split)
            var byKey: [String: [(orders: Int64, revenue: Int64)]] = [:]
            var byMember: [Int64: (orders: Int64, revenue: Int64)] = [:]
            for r in rows where split != nil { byKey[try r.string("g"), default: []].append((try r.int("n"), try r.int("revenue"))) }
            for r in split == .segment ? try await perMember(nil) : rows {
                byMember[try r.int("member_id"), default: (0, 0)].orders += try r.int("n")
                byMember[try r.int("member_id"), default: (0, 0)].revenue += try r.int("revenue")
            }
            let refundedBy = split == nil ? [:] : try await refunds(split)
            // Tiers, channels and stores divide the refunds too; segments do not.
            let refunded = split == nil || split == .segment ? try await refunds(nil)[""] ?? 0 : refundedBy.values.reduce(0, +)
            total = group(nil, figures(Array(byMember.values), refunded: refunded))
            groups = split == nil ? nil : Set(byKey.keys).union(refundedBy.keys).sorted().map { group($0, figures(byKey[$0] ?? [], refunded: refundedBy[$0] ?? 0)) }
            previous = try await one("SELECT COUNT(DISTINCT member_id) AS v FROM member_days WHERE program_id = ? AND day >= ? AND day < ?", [p, .int(d0 - len), .int(d0)])
            returning = try await one("""
                SELECT COUNT(DISTINCT member_id) AS v FROM member_days WHERE program_id = ? AND day >= ? AND day < ?
                  AND member_id IN (SELECT member_id FROM member_days WHERE program_id = ? AND day >= ? AND day < ?)
                """, [p, .int(d0 - len), .int(d0), p, .int(d0), .int(d1)])
        }
        let members = try await one("SELECT COUNT(*) AS v FROM members WHERE program_id = ? AND registered_at < ?", [p, .int(t1.seconds)])
        let newMembers = try await one("SELECT COUNT(*) AS v FROM members WHERE program_id = ? AND registered_at >= ? AND registered_at < ?", [p, .int(t0.seconds), .int(t1.seconds)])
        // Tier moves: compare tier positions in the program.
        let rank = Dictionary(uniqueKeysWithValues: v.definition.tiers.enumerated().map { ($1.id, $0) })
        var up = Set<Int64>(), down = Set<Int64>()
        for r in try await db.queryAside("SELECT member_id, from_tier, to_tier FROM tier_changes WHERE program_id = ? AND at >= ? AND at < ?", [p, .int(t0.seconds), .int(t1.seconds)]) {
            let f = rank[try r.string("from_tier")] ?? 0, t = rank[try r.string("to_tier")] ?? 0
            if t > f { up.insert(try r.int("member_id")) } else if t < f { down.insert(try r.int("member_id")) }
        }
        var tiers: [String: Int64] = [:]
        for r in try await db.queryAside("SELECT tier_id, COUNT(*) AS n FROM members WHERE program_id = ? GROUP BY tier_id", [p]) { tiers[try r.string("tier_id")] = try r.int("n") }
        let all = tiers.values.reduce(0, +)
        let top = v.definition.tiers.last!.id, bottom = v.definition.tiers.first!.id
        let claimed = try await one("SELECT COUNT(DISTINCT member_id) AS v FROM benefit_grants WHERE program_id = ? AND claimed_at >= ? AND claimed_at < ?",
                                    [p, .int(t0.seconds), .int(t1.seconds)])
        // Members near the next threshold at the period's end: from the member facts when the
        // period runs to today or later, else from the growth and tier history at its last second.
        let near: Int64
        // Past counts are kept only where outside writes are seen (SQLite: `keptKPIs` checked them).
        let keepsNear = inMemory && sqlite != nil
        if t1 > now {
            near = Int64(try await memberFacts(program: program, now: now).0.nearNextTier(v.definition.tiers))
        } else {
            let at = t1.adding(seconds: -1)
            if keepsNear, let kept = kpiDays.near(program, at: at) {
                near = kept
            } else {
                let g = kpiDays.nearGeneration(program), started = ContinuousClock.now
                near = try await nearNextTier(program: program, at: at)
                logger.debug("near-next-tier count of a past instant", metadata: ["program": "\(program)", "at": "\(at)",
                                                                                "seconds": "\(String(format: "%.1f", (ContinuousClock.now - started).seconds))"])
                if keepsNear { kpiDays.keepNear(program, at: at, near, generation: g) }
            }
        }
        return ProgramKPIs(program: program, from: from, until: until, members: members, newMembers: newMembers, total: total,
                           previousBuyers: previous, returningBuyers: returning, returnRatePpm: ppm(returning, previous),
                           upgradedMembers: Int64(up.count), upgradeRatePpm: ppm(Int64(up.count), all - (tiers[top] ?? 0)),
                           downgradedMembers: Int64(down.count), downgradeRatePpm: ppm(Int64(down.count), all - (tiers[bottom] ?? 0)),
                           tierDistribution: tiers, topTierSharePpm: ppm(tiers[top] ?? 0, all),
                           funnel: [FunnelStep(step: "registered", members: members), FunnelStep(step: "active", members: total.activeMembers),
                                    FunnelStep(step: "nearNextTier", members: near),
                                    FunnelStep(step: "upgraded", members: Int64(up.count)), FunnelStep(step: "claimedBenefit", members: claimed),
                                    FunnelStep(step: "repurchased", members: total.repeatBuyers)],
                           split: split?.rawValue, groups: groups)
    }

    /// Members (registered by `t`, not merged into another) whose qualifying growth at `t` was
    /// within 20% below the threshold of the tier above the one they held at `t`: the tier from
    /// the tier history, the growth from the growth entries that counted in the assessment's
    /// window at `t` (as `Engine.qualifying` counts them).
    func nearNextTier(program: String, at t: Timestamp) async throws -> Int64 {
        let engine = try await self.engine(program)
        let v = engine.program.at(t), def = v.definition
        let p = SQLValue.text(program)
        // counts_at in (after, t]; from the beginning for a lifetime assessment.
        let after = engine.qualifyingAfter(def, v: v, at: t)
        var growth: [Int64: Int64] = [:]
        for r in try await db.queryAside("""
            SELECT member_id, SUM(growth) AS g FROM growth_entries WHERE program_id = ? AND counts_at > ? AND counts_at <= ? GROUP BY member_id
            """, [p, .int(after?.seconds ?? Int64.min), .int(t.seconds)]) {
            growth[try r.int("member_id")] = try r.int("g")
        }
        var tier: [Int64: String] = [:]
        for r in try await db.queryAside("SELECT member_id, to_tier FROM tier_changes WHERE program_id = ? AND at <= ? ORDER BY member_id, change_no",
                                    [p, .int(t.seconds)]) {
            tier[try r.int("member_id")] = try r.string("to_tier")
        }
        let next = Dictionary(uniqueKeysWithValues: zip(def.tiers.map(\.id), def.tiers.dropFirst().map(\.threshold)))
        var n: Int64 = 0
        for r in try await db.queryAside("SELECT member_id FROM members WHERE program_id = ? AND registered_at <= ? AND merged_into IS NULL", [p, .int(t.seconds)]) {
            let m = try r.int("member_id")
            guard let threshold = next[tier[m] ?? def.tiers[0].id] else { continue }
            if TierDefinition.isNear(growth[m] ?? 0, nextThreshold: threshold) { n += 1 }
        }
        return n
    }

    /// Cohorts by month of first purchase, for first purchases in [from, until), each followed
    /// for `months` months.
    public func cohorts(program: String, from: CivilDate, until: CivilDate, months: Int) async throws -> Cohorts {
        _ = try await self.program(program)
        let p = SQLValue.text(program)
        let m0 = from.monthNumber, m1 = until.monthNumber
        let rows = try await db.queryAside("""
            SELECT f.cohort, d.month, COUNT(DISTINCT d.member_id) AS buyers, SUM(d.revenue_minor) AS revenue
            FROM member_days d JOIN (SELECT member_id, MIN(month) AS cohort FROM member_days WHERE program_id = ? GROUP BY member_id) f ON f.member_id = d.member_id
            WHERE d.program_id = ? AND f.cohort >= ? AND f.cohort < ?
            GROUP BY f.cohort, d.month ORDER BY f.cohort, d.month
            """, [p, p, .int(m0), .int(m1)])
        func index(_ yyyymm: Int64) -> Int64 { yyyymm / 100 * 12 + yyyymm % 100 - 1 }
        var out: [Int64: Cohorts.Cohort] = [:]
        for r in rows {
            let c = try r.int("cohort"), m = try r.int("month")
            let k = Int(index(m) - index(c))
            guard k >= 0, k <= months else { continue }
            var co = out[c] ?? Cohorts.Cohort(month: String(format: "%04d-%02d", c / 100, c % 100), members: 0, buyers: Array(repeating: 0, count: months + 1),
                                              retentionPpm: [], revenueMinor: Array(repeating: 0, count: months + 1))
            co.buyers[k] = try r.int("buyers"); co.revenueMinor[k] = try r.intOrNil("revenue") ?? 0
            out[c] = co
        }
        let cohorts = out.sorted { $0.key < $1.key }.map { _, c -> Cohorts.Cohort in
            var c = c
            c.members = c.buyers[0]
            c.retentionPpm = c.buyers.map { ppm($0, c.members) ?? 0 }
            return c
        }
        return Cohorts(program: program, cohorts: cohorts)
    }
}

func ppm(_ a: Int64, _ b: Int64) -> Int64? { b > 0 ? a * 1_000_000 / b : nil }
