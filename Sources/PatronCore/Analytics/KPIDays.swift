import Foundation

/// The program's purchases by local day, in memory, for the KPIs of any day range (issue #5):
/// per day, the members who bought (as sorted dense numbers), those who placed two or more orders
/// that day, and the orders, revenue and refunds; the same per tier held, channel and store. A
/// range's active members, repeat buyers (two or more orders in the range) and returning buyers
/// (also bought in the range before) are counted by one pass over its days' member lists into
/// bitsets, without reading the orders: a month at a million members is a few milliseconds.
/// Fed from the same rows as the `member_days` and `member_refund_days` aggregates.
public struct KPIDays: Sendable {
    public enum Dimension: Int, Sendable, CaseIterable { case tier, channel, store }

    /// One day's purchases, for the whole program or one group of a dimension.
    struct Slice: Sendable {
        var buyers: [UInt32] = []
        var multi: [UInt32] = []
        var orders: Int64 = 0, revenue: Int64 = 0, refunded: Int64 = 0

        /// Adds `orders` orders of member `m` (already in the day: a second order). In bulk, the
        /// member is appended and `settle` sorts the lists once.
        mutating func add(_ m: UInt32, orders n: Int64, revenue: Int64, bulk: Bool) {
            orders += n; self.revenue += revenue
            guard n > 0 else { return }
            if bulk {
                buyers.append(m)
                if n >= 2 { multi.append(m) }
                return
            }
            let i = Self.position(buyers, m)
            if i < buyers.count && buyers[i] == m {
                Self.insert(&multi, m)
            } else {
                buyers.insert(m, at: i)
                if n >= 2 { Self.insert(&multi, m) }
            }
        }
        static func position(_ xs: [UInt32], _ m: UInt32) -> Int {
            var lo = 0, hi = xs.count
            while lo < hi { let mid = (lo + hi) / 2; if xs[mid] < m { lo = mid + 1 } else { hi = mid } }
            return lo
        }
        static func insert(_ xs: inout [UInt32], _ m: UInt32) {
            let i = position(xs, m)
            if i == xs.count || xs[i] != m { xs.insert(m, at: i) }
        }
        /// Sorts what bulk adds appended: a member listed twice bought twice that day.
        mutating func settle() {
            buyers.sort()
            var unique: [UInt32] = []
            unique.reserveCapacity(buyers.count)
            for m in buyers {
                if unique.last == m { multi.append(m) } else { unique.append(m) }
            }
            buyers = unique
            multi.sort()
            var u: [UInt32] = []
            for m in multi where u.last != m { u.append(m) }
            multi = u
        }
    }

    struct Day: Sendable {
        var total = Slice()
        /// Per dimension: group key → slice.
        var groups: [[String: Slice]] = Array(repeating: [:], count: Dimension.allCases.count)
    }

    /// A range's figures, for the program or one group.
    public struct Figures: Sendable, Equatable {
        public var activeMembers: Int64 = 0
        public var repeatBuyers: Int64 = 0
        public var orders: Int64 = 0
        public var revenueMinor: Int64 = 0
        public var refundedMinor: Int64 = 0
        public init() {}
    }

    private var numbers: [Int64: UInt32] = [:]
    private var days: [Int64: Day] = [:]
    public init() {}

    public var members: Int { numbers.count }
    public var dayCount: Int { days.count }

    private mutating func number(_ member: Int64) -> UInt32 {
        if let n = numbers[member] { return n }
        let n = UInt32(numbers.count)
        numbers[member] = n
        return n
    }

    /// Adds a `member_days` row (or what a write added to one). `bulk`: while building, many rows
    /// at a time; call `settle()` before reading.
    public mutating func add(member: Int64, day: Int64, tier: String, channel: String, store: String, orders: Int64, revenueMinor: Int64, bulk: Bool = false) {
        let m = number(member)
        days[day, default: Day()].total.add(m, orders: orders, revenue: revenueMinor, bulk: bulk)
        days[day]!.groups[Dimension.tier.rawValue][tier, default: Slice()].add(m, orders: orders, revenue: revenueMinor, bulk: bulk)
        days[day]!.groups[Dimension.channel.rawValue][channel, default: Slice()].add(m, orders: orders, revenue: revenueMinor, bulk: bulk)
        days[day]!.groups[Dimension.store.rawValue][store, default: Slice()].add(m, orders: orders, revenue: revenueMinor, bulk: bulk)
    }

    /// Sorts the member lists of bulk adds.
    public mutating func settle() {
        for day in Array(days.keys) {
            days[day]!.total.settle()
            for dim in Dimension.allCases { for key in Array(days[day]!.groups[dim.rawValue].keys) { days[day]!.groups[dim.rawValue][key]!.settle() } }
        }
    }

    /// Adds a `member_refund_days` row.
    public mutating func addRefund(day: Int64, tier: String, channel: String, store: String, amountMinor: Int64) {
        days[day, default: Day()].total.refunded += amountMinor
        for (dim, key) in [tier, channel, store].enumerated() { days[day]!.groups[dim][key, default: Slice()].refunded += amountMinor }
    }

    /// Bitsets over the dense member numbers: members seen once or more, and twice or more.
    /// Counting and `reset` visit only the words set since the last reset, so one `Seen` serves
    /// every group of a split (thousands of stores) without a pass over all members each.
    private struct Seen {
        var once: [UInt64], twice: [UInt64]
        var touched: [Int] = []
        init(_ n: Int) { once = Array(repeating: 0, count: (n + 63) / 64); twice = once }
        private mutating func touch(_ w: Int) { if once[w] | twice[w] == 0 { touched.append(w) } }
        mutating func see(_ s: Slice) {
            for m in s.buyers {
                let w = Int(m >> 6), bit = UInt64(1) << UInt64(m & 63)
                touch(w)
                if once[w] & bit != 0 { twice[w] |= bit } else { once[w] |= bit }
            }
            for m in s.multi { let w = Int(m >> 6); touch(w); twice[w] |= UInt64(1) << UInt64(m & 63) }
        }
        var active: Int64 { Int64(touched.reduce(0) { $0 + once[$1].nonzeroBitCount }) }
        var repeats: Int64 { Int64(touched.reduce(0) { $0 + twice[$1].nonzeroBitCount }) }
        mutating func reset() {
            for w in touched { once[w] = 0; twice[w] = 0 }
            touched.removeAll(keepingCapacity: true)
        }
    }

    private func figures(_ slices: [Slice], _ seen: inout Seen) -> Figures {
        var f = Figures()
        for s in slices {
            seen.see(s)
            f.orders += s.orders; f.revenueMinor += s.revenue; f.refundedMinor += s.refunded
        }
        f.activeMembers = seen.active; f.repeatBuyers = seen.repeats
        seen.reset()
        return f
    }

    /// The figures of the local days [from, until): the program's, and per group of `split`.
    public func figures(from: Int64, until: Int64, split: Dimension?) -> (total: Figures, groups: [String: Figures]) {
        let range = (from..<until).compactMap { days[$0] }
        var seen = Seen(numbers.count)
        let total = figures(range.map(\.total), &seen)
        guard let split else { return (total, [:]) }
        var byKey: [String: [Slice]] = [:]
        for d in range { for (k, s) in d.groups[split.rawValue] { byKey[k, default: []].append(s) } }
        return (total, byKey.mapValues { figures($0, &seen) })
    }

    /// Members who bought in [previousFrom, from), and of them those who bought in [from, until) too.
    public func returning(previousFrom: Int64, from: Int64, until: Int64) -> (previous: Int64, returning: Int64) {
        var before = Seen(numbers.count), now = Seen(numbers.count)
        for day in previousFrom..<from { if let d = days[day] { before.see(d.total) } }
        for day in from..<until { if let d = days[day] { now.see(d.total) } }
        let both = zip(before.once, now.once).reduce(0) { $0 + ($1.0 & $1.1).nonzeroBitCount }
        return (before.active, Int64(both))
    }
}
