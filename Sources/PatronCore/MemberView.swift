import Foundation

/// When the next tier will be reached at the member's own pace (升级时间预测).
public struct UpgradeForecast: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable {
        /// Reached on `date` at this pace.
        case reached
        /// The rolling window never holds enough growth at this pace.
        case notAtThisPace
        /// Not before the calendar period ends and growth starts again from zero.
        case notBeforeReset
        /// No pace to go by: no recent growth, and no program average given.
        case noPace
    }
    public var outcome: Outcome
    public var nextTier: String
    public var missing: Int64
    public var date: CivilDate?
    /// Growth per day, in thousandths, that the forecast assumes.
    public var pacePerDayMilli: Int64
    /// `member` (the member's last 90 days) or `program` (the program's average, for members with
    /// little history).
    public var basis: String
}

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
    public var upgradeForecast: UpgradeForecast?
}

extension Engine {
    /// The member's standing at `now`, without changing anything stored: the state is brought
    /// to `now` on a copy.
    public static let paceDays = 90

    /// The member's pace (growth per day × 1000 over the last `paceDays`), when the member has at
    /// least two growth entries in that time.
    func memberPace(_ s: MemberState, at t: Timestamp) -> Int64? {
        let from = t.adding(days: -Self.paceDays)
        let recent = s.window.filter { $0.countsAt > from && $0.countsAt <= t }
        guard recent.count >= 2 else { return nil }
        return recent.reduce(0) { $0 + $1.growth } * 1000 / Int64(Self.paceDays)
    }

    func forecast(_ s: MemberState, _ p: ProgramDefinition, v: ProgramVersions.Version, at t: Timestamp, q: Int64, programPaceMilli: Int64?) -> UpgradeForecast? {
        let idx = p.tierIndex(s.tier.tierId) ?? 0
        guard idx + 1 < p.tiers.count else { return nil }
        let next = p.tiers[idx + 1]
        let missing = max(0, next.threshold - q)
        var pace = memberPace(s, at: t), basis = "member"
        if pace == nil, let fallback = programPaceMilli { pace = fallback; basis = "program" }
        guard let pace, pace > 0 else { return UpgradeForecast(outcome: .noPace, nextTier: next.id, missing: missing, date: nil, pacePerDayMilli: 0, basis: basis) }
        let days = Int((Int128(missing) * 1000 + Int128(pace) - 1) / Int128(pace))
        var outcome = UpgradeForecast.Outcome.reached
        switch p.assessment.kind {
        case .lifetime: break
        case .rolling:
            // At a steady pace the window holds pace × windowDays.
            let window = p.assessment.windowDays ?? 365
            if Int128(pace) * Int128(window) / 1000 < Int128(next.threshold) { outcome = .notAtThisPace }
        case .calendar:
            let end = periodEnd(containing: t, p.assessment.period ?? .year, v.clock)
            if t.adding(days: days) >= end { outcome = .notBeforeReset }
        }
        let date = outcome == .reached ? CivilDate(dayNumber: v.clock.dayNumber(t) + Int64(days)) : nil
        return UpgradeForecast(outcome: outcome, nextTier: next.id, missing: missing, date: date, pacePerDayMilli: pace, basis: basis)
    }

    public func standing(_ state: MemberState, now: Timestamp, programPaceMilli: Int64? = nil) -> MemberStanding {
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
            upcomingExpiries: s.upcomingExpiries().map { .init(at: $0.at, lastDay: CivilDate(dayNumber: v.clock.dayNumber($0.at) - 1), points: $0.points) },
            upgradeForecast: forecast(s, p, v: v, at: t, q: q, programPaceMilli: programPaceMilli))
    }
}
