import Foundation

/// What a member (or staff) sees of the member's standing at an instant.
public struct MemberStanding: Codable, Sendable, Equatable {
    public struct TierInfo: Codable, Sendable, Equatable {
        public var id: String
        public var name: LocalizedText
        public var threshold: Int64
    }
    public struct Expiry: Codable, Sendable, Equatable {
        public var at: Timestamp
        /// The last local date the points can be used.
        public var lastDay: CivilDate
        public var points: Int64
    }
    public var asOf: Timestamp
    public var balance: Int64
    public var available: Int64
    public var pending: Int64
    public var debt: Int64
    public var recordedDebt: Int64
    public var tier: TierInfo
    public var tierSince: Timestamp
    public var nextTier: TierInfo?
    /// Growth counted by the assessment now (lifetime total, the rolling window, or the period).
    public var qualifyingGrowth: Int64
    public var lifetimeGrowth: Int64
    /// Growth earned so far that the next assessment will count (nil when the tier cannot fall).
    public var keepingGrowth: Int64?
    /// Growth still missing to keep the current tier at its next assessment (0 when kept).
    public var missingToKeep: Int64
    /// Growth still missing to reach the next tier (nil at the top).
    public var missingToNext: Int64?
    public var nextAssessmentAt: Timestamp?
    public var inGrace: Bool
    public var orderCount: Int
    public var spentMinor: Int64
    public var upcomingExpiries: [Expiry]
}

extension Engine {
    /// The member's standing at `now`, without changing anything stored: the state is brought
    /// to `now` on a copy.
    public func standing(_ state: MemberState, now: Timestamp) -> MemberStanding {
        var s = state
        var fx = Effects()
        if now > s.asOf { advance(&s, to: now, effects: &fx) }
        let t = max(now, s.asOf)
        let v = program.at(t), p = v.definition
        let idx = p.tierIndex(s.tier.tierId) ?? 0
        let q = qualifying(s, p, v: v, at: t)
        func info(_ i: Int) -> MemberStanding.TierInfo { .init(id: p.tiers[i].id, name: p.tiers[i].name, threshold: p.tiers[i].threshold) }
        let next = idx + 1 < p.tiers.count ? idx + 1 : nil
        var keep: Int64? = nil
        if let a = s.tier.assessAt {
            switch p.assessment.kind {
            case .lifetime: keep = nil
            case .rolling:
                let w = p.assessment.windowDays ?? 365
                // In grace the decision looks at the window ending with the grace period.
                keep = sum(s, from: a.adding(days: -w).adding(seconds: 1), until: t.adding(seconds: 1))
            case .calendar:
                let cur = sum(s, from: periodStart(containing: t, p.assessment.period ?? .year, v.clock), until: t.adding(seconds: 1))
                if let g = s.tier.graceFrom {
                    keep = max(cur, sum(s, from: periodStart(containing: g.adding(seconds: -1), p.assessment.period ?? .year, v.clock), until: g))
                } else { keep = cur }
            }
        }
        return MemberStanding(
            asOf: t, balance: s.balance, available: s.available(at: t), pending: s.pending(at: t), debt: s.debt, recordedDebt: s.recordedDebt,
            tier: info(idx), tierSince: s.tier.since, nextTier: next.map(info), qualifyingGrowth: q, lifetimeGrowth: s.growthTotal,
            keepingGrowth: keep,
            missingToKeep: keep.map { max(0, p.tiers[idx].threshold - $0) } ?? 0,
            missingToNext: next.map { max(0, p.tiers[$0].threshold - q) },
            nextAssessmentAt: s.tier.assessAt, inGrace: s.tier.graceFrom != nil,
            orderCount: s.orderCount, spentMinor: s.spentMinor,
            upcomingExpiries: s.upcomingExpiries().map { .init(at: $0.at, lastDay: CivilDate(dayNumber: v.clock.dayNumber($0.at) - 1), points: $0.points) })
    }
}
