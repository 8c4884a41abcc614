import Foundation

/// Lifecycle stages (会员生命周期) by recency, with the program's thresholds in days.
public enum LifecycleStage: String, Codable, Sendable, CaseIterable {
    /// Registered or first bought within `newDays`.
    case new
    case active
    /// No order for `atRiskDays` or more.
    case atRisk = "at_risk"
    /// No order for `silentDays` or more.
    case silent
    /// No order for `lostDays` or more, or never bought and registered long ago.
    case lost
    /// Bought again after having been silent: the last order came `silentDays` or more after the one before.
    case recalled
}

public struct LifecycleThresholds: Codable, Sendable, Equatable {
    public var newDays = 30, atRiskDays = 60, silentDays = 120, lostDays = 365
    public init() {}
    public init(newDays: Int, atRiskDays: Int, silentDays: Int, lostDays: Int) {
        self.newDays = newDays; self.atRiskDays = atRiskDays; self.silentDays = silentDays; self.lostDays = lostDays
    }
}

/// What scoring needs of one member's purchases, in local day numbers.
public struct PurchaseDays: Sendable, Equatable {
    public var first = Int64.max, last = Int64.min
    /// The purchase day before `last`.
    public var previous: Int64?
    /// Orders and spend in the 365 days up to the scoring day.
    public var orders365: Int64 = 0, spend365: Int64 = 0
    public init() {}
    /// Adds one purchase day (days in increasing order) as of `today`.
    public mutating func add(day: Int64, orders: Int64, spendMinor: Int64, today: Int64) {
        first = min(first, day)
        if day > last { if last != Int64.min { previous = last }; last = day }
        if day > today - 365 { orders365 += orders; spend365 += spendMinor }
    }
}

/// RFM quintiles and lifecycle stages (issue #4).
public enum RFMScoring {
    /// The stage of a member on `today`: from their purchase days, or from the day they registered
    /// when they never bought.
    public static func lifecycle(_ d: PurchaseDays?, registeredDay: Int64, today: Int64, _ th: LifecycleThresholds) -> LifecycleStage {
        guard let d else { return today - registeredDay < Int64(th.newDays) ? .new : .lost }
        let recency = today - d.last
        if recency >= Int64(th.lostDays) { return .lost }
        if recency >= Int64(th.silentDays) { return .silent }
        if recency >= Int64(th.atRiskDays) { return .atRisk }
        if today - d.first < Int64(th.newDays) { return .new }
        if let prev = d.previous, d.last - prev >= Int64(th.silentDays) { return .recalled }
        return .active
    }

    /// Quintile scores 1–5 by ascending value (5 for the largest): 1 + ⌊5 × rank / n⌋, ties
    /// sharing the score of the first of them.
    public static func quintiles<K: Hashable & Comparable>(_ values: [K: Int64]) -> [K: Int] {
        buckets(values, 5, largestFirst: false)
    }

    /// Rank from the top in percent (1–100): 1 + ⌊100 × t / n⌋, where t is the number of values
    /// larger than the member's (ties share the better rank). The top 10% have at most 10 (with
    /// n = 1,000, the first 100; ties at the boundary all count in).
    public static func topPercents<K: Hashable & Comparable>(_ values: [K: Int64]) -> [K: Int] {
        buckets(values, 100, largestFirst: true)
    }

    /// 1 + ⌊count × rank / n⌋ in the order asked (keys break ties in the sort), equal values
    /// sharing the bucket of the first of them.
    static func buckets<K: Hashable & Comparable>(_ values: [K: Int64], _ count: Int, largestFirst: Bool) -> [K: Int] {
        let sorted = values.sorted { a, b in
            a.value != b.value ? (a.value > b.value) == largestFirst : a.key < b.key
        }
        var out: [K: Int] = [:]
        var i = 0
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1].value == sorted[i].value { j += 1 }
            for k in i...j { out[sorted[k].key] = 1 + i * count / sorted.count }
            i = j + 1
        }
        return out
    }
}
