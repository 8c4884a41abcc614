import Foundation
import PatronCore

/// Each program's `KPIDays`, built from the KPI aggregates on the SQLite writer thread (no commit
/// runs meanwhile) and then kept by the writer thread itself: every commit's `WritePlan.kpiDays`
/// are applied right after its COMMIT, so the days are exactly what the tables hold.
final class KPIRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var days: [String: KPIDays] = [:]
    /// The writer connection's `data_version` when last checked: another process's commits (a
    /// CLI import beside the server) change it, and what is kept is read again.
    private var dataVersion: Int64?

    /// On the writer thread, after a COMMIT.
    func committed(_ plans: [WritePlan]) {
        lock.lock(); defer { lock.unlock() }
        guard !days.isEmpty else { return }
        for plan in plans {
            for d in plan.kpiDays where days[d.program] != nil {
                if d.orders != 0 || d.revenueMinor != 0 {
                    days[d.program]!.add(member: d.member, day: d.day, tier: d.tier, channel: d.channel, store: d.store, orders: d.orders, revenueMinor: d.revenueMinor)
                }
                if d.refundedMinor != 0 {
                    days[d.program]!.addRefund(day: d.day, tier: d.tier, channel: d.channel, store: d.store, amountMinor: d.refundedMinor)
                }
            }
        }
    }

    func install(_ program: String, _ d: KPIDays) { lock.lock(); days[program] = d; lock.unlock() }

    /// On the writer thread: when another process has committed since the last check, forgets
    /// everything kept (it is read again on use).
    func checkOutsideWrites(_ version: Int64) {
        lock.lock(); defer { lock.unlock() }
        if let known = dataVersion, known != version {
            days = [:]; near = [:]
            for p in generation.keys { generation[p]! += 1 }
        }
        dataVersion = version
    }

    // Members near the next tier at past instants (`Store.nearNextTier(program:at:)`: seconds at a
    // million members), kept until a write changes tier or growth history at or before the instant.
    private var near: [String: [Int64: Int64]] = [:]
    private var generation: [String: Int] = [:]

    /// After commits (any backend): drops the near counts the plans' history writes change.
    func historyChanged(_ plans: [WritePlan]) {
        lock.lock(); defer { lock.unlock() }
        for plan in plans {
            for (program, from) in plan.historyFrom {
                generation[program, default: 0] += 1
                near[program] = near[program]?.filter { $0.key < from.seconds }
            }
        }
    }
    func nearGeneration(_ program: String) -> Int { lock.lock(); defer { lock.unlock() }; return generation[program, default: 0] }
    func near(_ program: String, at t: Timestamp) -> Int64? { lock.lock(); defer { lock.unlock() }; return near[program]?[t.seconds] }
    /// Keeps a count computed since `generation` was read, unless a history write came in between.
    func keepNear(_ program: String, at t: Timestamp, _ n: Int64, generation g: Int) {
        lock.lock(); defer { lock.unlock() }
        if generation[program, default: 0] == g { near[program, default: [:]][t.seconds] = n }
    }
    /// A copy to read from (copy-on-write: cheap until the writer changes it).
    func get(_ program: String) -> KPIDays? { lock.lock(); defer { lock.unlock() }; return days[program] }
}

extension Store {
    /// The program's KPI days kept in memory (SQLite; nil on PostgreSQL, whose KPIs are
    /// aggregated by SQL and which cannot tell other processes' writes). First SQLite is asked
    /// whether another process has committed since (`PRAGMA data_version` on the writer
    /// connection): if so, everything kept is dropped. Then, with `days`, the program's KPI days,
    /// read on first use from the two aggregates on the writer thread: writes wait for it
    /// (seconds at 10M orders).
    func keptKPIs(program: String, days: Bool) async throws -> KPIDays? {
        guard let sqlite else { return nil }
        let registry = kpiDays, logger = self.logger
        return try await sqlite.exclusive { connection in
            registry.checkOutsideWrites(try connection.dataVersion())
            guard days else { return nil }
            if let d = registry.get(program) { return d }
            let started = ContinuousClock.now
            var d = KPIDays()
            try connection.forEachRow("SELECT member_id, day, tier_id, channel, store, orders, revenue_minor FROM member_days WHERE program_id = ?", [.text(program)]) { int, text in
                d.add(member: int(0), day: int(1), tier: text(2), channel: text(3), store: text(4), orders: int(5), revenueMinor: int(6), bulk: true)
            }
            try connection.forEachRow("SELECT day, tier_id, channel, store, refunded_minor FROM member_refund_days WHERE program_id = ?", [.text(program)]) { int, text in
                d.addRefund(day: int(0), tier: text(1), channel: text(2), store: text(3), amountMinor: int(4))
            }
            d.settle()
            registry.install(program, d)
            logger.info("KPI days built", metadata: ["program": "\(program)", "days": "\(d.dayCount)", "members": "\(d.members)",
                                                     "seconds": "\(String(format: "%.1f", (ContinuousClock.now - started).seconds))"])
            return d
        }
    }
}
