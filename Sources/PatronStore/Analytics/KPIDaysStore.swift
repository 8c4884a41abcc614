import Foundation
import Logging
import PatronCore

/// Each program's `KPIDays`, built from the KPI aggregates as of one commit and then kept by the
/// writer thread itself: every commit's `WritePlan.kpiDays` are applied right after its COMMIT,
/// so the days are exactly what the tables hold. A build reads a snapshot on a connection of its
/// own while writes go on; the deltas committed meanwhile wait in `pending` and are applied to
/// it before it is kept.
final class KPIRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var days: [String: KPIDays] = [:]
    /// The writer connection's `data_version` when last checked: another process's commits (a
    /// CLI import beside the server) change it, and what is kept is read again.
    private var dataVersion: Int64?
    /// Per build (by its number): its program, and the deltas committed since its snapshot.
    private var pending: [Int: (program: String, deltas: [KPIDayDelta])] = [:]
    private var nextBuild = 0
    /// The build running per program and the epoch it was started in; later callers of the same
    /// epoch wait for it.
    private var builds: [String: (epoch: Int, task: Task<KPIDays, any Error>)] = [:]
    /// Bumped when outside writes are seen: a build whose snapshot is older is not kept, and
    /// callers after it start a build of their own.
    var epoch: Int { lock.lock(); defer { lock.unlock() }; return _epoch }
    private var _epoch = 0

    /// On the writer thread, after a COMMIT.
    func committed(_ plans: [WritePlan]) {
        lock.lock(); defer { lock.unlock() }
        guard !days.isEmpty || !pending.isEmpty else { return }
        for plan in plans {
            for d in plan.kpiDays {
                if days[d.program] != nil { Self.apply(d, to: &days[d.program]!) }
                for (id, p) in pending where p.program == d.program { pending[id]!.deltas.append(d) }
            }
        }
    }

    private static func apply(_ d: KPIDayDelta, to days: inout KPIDays) {
        if d.orders != 0 || d.revenueMinor != 0 {
            days.add(member: d.member, day: d.day, tier: d.tier, channel: d.channel, store: d.store, orders: d.orders, revenueMinor: d.revenueMinor)
        }
        if d.refundedMinor != 0 {
            days.addRefund(day: d.day, tier: d.tier, channel: d.channel, store: d.store, amountMinor: d.refundedMinor)
        }
    }

    /// A build's start, taken between commits (on the writer thread) with its snapshot.
    struct BuildStart: Sendable { var id: Int; var epoch: Int }

    /// As a build takes its snapshot: from now on the program's committed deltas are kept for it.
    func beginBuild(_ program: String) -> BuildStart {
        lock.lock(); defer { lock.unlock() }
        let id = nextBuild
        nextBuild += 1
        pending[id] = (program, [])
        return BuildStart(id: id, epoch: _epoch)
    }

    /// Applies the deltas committed since the build's snapshot, and keeps the result unless
    /// outside writes were seen since the snapshot (then it is only returned: it is exact as of
    /// the snapshot plus this process's writes).
    func finish(_ start: BuildStart, _ built: KPIDays) -> KPIDays {
        lock.lock(); defer { lock.unlock() }
        var d = built
        guard let p = pending.removeValue(forKey: start.id) else { return d }
        for delta in p.deltas { Self.apply(delta, to: &d) }
        if start.epoch == _epoch { days[p.program] = d }
        return d
    }

    /// A build that ended without `finish` (it failed): its pending deltas are dropped (none are
    /// left after `finish`).
    func abandon(_ start: BuildStart) { lock.lock(); pending[start.id] = nil; lock.unlock() }

    /// The program's running build of `epoch`, or `start()`'s, which later callers then share.
    func build(_ program: String, epoch: Int, _ start: @escaping @Sendable () async throws -> KPIDays) -> Task<KPIDays, any Error> {
        lock.lock(); defer { lock.unlock() }
        if let b = builds[program], b.epoch == epoch { return b.task }
        let t = Task { try await start() }
        builds[program] = (epoch, t)
        return t
    }
    /// After a build of `epoch`, kept or failed.
    func buildEnded(_ program: String, epoch: Int) {
        lock.lock(); defer { lock.unlock() }
        if builds[program]?.epoch == epoch { builds[program] = nil }
    }

    /// On the writer thread: when another process has committed since the last check, forgets
    /// everything kept (it is read again on use).
    func checkOutsideWrites(_ version: Int64) {
        lock.lock(); defer { lock.unlock() }
        if let known = dataVersion, known != version {
            days = [:]; near = [:]; _epoch += 1
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
    /// built on first use from the two aggregates (seconds at 10M orders): read from a snapshot
    /// on a connection of their own, while writes go on, and brought up to date with what was
    /// committed meanwhile. Callers during a build wait for it.
    func keptKPIs(program: String, days: Bool) async throws -> KPIDays? {
        guard let sqlite else { return nil }
        let registry = kpiDays
        let (kept, epoch) = try await sqlite.exclusive { connection in
            registry.checkOutsideWrites(try connection.dataVersion())
            return (days ? registry.get(program) : nil, registry.epoch)
        }
        guard days else { return nil }
        if let kept { return kept }
        let logger = self.logger
        let build = registry.build(program, epoch: epoch) {
            defer { registry.buildEnded(program, epoch: epoch) }
            // The snapshot is taken between commits, with the pending deltas begun at that instant.
            enum Start: Sendable { case done(KPIDays), snapshot(SQLiteSnapshot, KPIRegistry.BuildStart) }
            let start: Start = try await sqlite.exclusive { connection in
                if let d = registry.get(program) { return .done(d) }
                guard let snapshot = try sqlite.snapshot() else {
                    // In memory (no other connection sees it): read here, holding writes back.
                    let d = try Self.readKPIDays(connection, program: program, logger: logger)
                    return .done(registry.finish(registry.beginBuild(program), d))
                }
                return .snapshot(snapshot, registry.beginBuild(program))
            }
            switch start {
            case .done(let d): return d
            case .snapshot(let snapshot, let start):
                defer { registry.abandon(start) } // when the read fails; nothing left after `finish`
                return registry.finish(start, try await snapshot.read { try Self.readKPIDays($0, program: program, logger: logger) })
            }
        }
        return try await build.value
    }

    /// The program's KPI days as the connection sees them.
    static func readKPIDays(_ connection: SQLiteConnection, program: String, logger: Logger) throws -> KPIDays {
        let started = ContinuousClock.now
        var d = KPIDays()
        try connection.forEachRow("SELECT member_id, day, tier_id, channel, store, orders, revenue_minor FROM member_days WHERE program_id = ?", [.text(program)]) { int, text in
            d.add(member: int(0), day: int(1), tier: text(2), channel: text(3), store: text(4), orders: int(5), revenueMinor: int(6), bulk: true)
        }
        try connection.forEachRow("SELECT day, tier_id, channel, store, refunded_minor FROM member_refund_days WHERE program_id = ?", [.text(program)]) { int, text in
            d.addRefund(day: int(0), tier: text(1), channel: text(2), store: text(3), amountMinor: int(4))
        }
        d.settle()
        logger.info("KPI days built", metadata: ["program": "\(program)", "days": "\(d.dayCount)", "members": "\(d.members)",
                                                 "seconds": "\(String(format: "%.1f", (ContinuousClock.now - started).seconds))"])
        return d
    }
}
