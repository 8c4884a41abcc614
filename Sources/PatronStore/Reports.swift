import Foundation
import PatronCore

/// What the program owes its members in points, as a finance team books it (issue #5's points
/// liability). Every figure comes from the lots and the ledger, and reconciles with the ledger to
/// the point: `ledgerBalance == outstanding + lapsedAwaitingJobs - debt`.
public struct PointsLiability: Codable, Sendable, Equatable {
    public struct Month: Codable, Sendable, Equatable {
        /// `YYYY-MM` in the program's time zone.
        public var month: String
        public var points: Int64
        public var valueMinor: Int64
    }
    public var program: String
    public var asOf: Timestamp
    public var currency: String
    /// Points members hold that have not lapsed: spendable now plus pending.
    public var outstanding: Int64
    public var spendable: Int64
    public var pending: Int64
    /// Points owed by members after refunds of spent points (negativeBalance policy).
    public var debt: Int64
    /// Points owed and recorded apart (recordDebt policy).
    public var recordedDebt: Int64
    /// Points whose lapse instant has passed but whose expiry the job runner has not written yet.
    public var lapsedAwaitingJobs: Int64
    /// The sum of all points entries in the ledger.
    public var ledgerBalance: Int64
    /// `outstanding - debt` valued at the program's point value, in minor units (rounded down).
    public var valueMinor: Int64
    /// Outstanding points by the month of their last usable day (a lot lapsing at 00:00 on the
    /// 1st counts in the month before), for the current month and the 11 after it.
    public var expirySchedule: [Month]
    /// Outstanding points that lapse later than the schedule, and that never lapse.
    public var lapsingLater: Int64
    public var neverLapsing: Int64
    /// Breakage over [breakageFrom, breakageUntil): of the points issued in it, the share that
    /// lapsed unspent (so far).
    public var breakageFrom: Timestamp
    public var breakageUntil: Timestamp
    public var issuedInPeriod: Int64
    public var lapsedOfIssued: Int64
    /// lapsedOfIssued / issuedInPeriod in parts per million (nil when nothing was issued).
    public var breakagePpm: Int64?
}

extension Store {
    public func pointsLiability(program: String, asOf: Timestamp, breakageFrom: Timestamp, breakageUntil: Timestamp) async throws -> PointsLiability {
        let versions = try await self.program(program)
        let v = versions.at(asOf)
        let p = SQLValue.text(program), t = SQLValue.int(asOf.seconds)
        func one(_ sql: String, _ binds: [SQLValue]) async throws -> Int64 { try await db.queryAside(sql, binds).first?.intOrNil("v") ?? 0 }
        let spendable = try await one("SELECT SUM(remaining) AS v FROM lots WHERE program_id = ? AND remaining > 0 AND available_at <= ? AND (expires_at IS NULL OR expires_at > ?)", [p, t, t])
        let pending = try await one("SELECT SUM(remaining) AS v FROM lots WHERE program_id = ? AND remaining > 0 AND available_at > ? AND (expires_at IS NULL OR expires_at > ?)", [p, t, t])
        let awaiting = try await one("SELECT SUM(remaining) AS v FROM lots WHERE program_id = ? AND remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?", [p, t])
        let ledger = try await one("SELECT SUM(points) AS v FROM ledger_entries WHERE program_id = ? AND account = 'points'", [p])
        let unassigned = try await one("SELECT SUM(points) AS v FROM ledger_entries WHERE program_id = ? AND account = 'points' AND lot_no IS NULL", [p])
        let recorded = try await one("SELECT SUM(points) AS v FROM ledger_entries WHERE program_id = ? AND account = 'debt'", [p])
        let never = try await one("SELECT SUM(remaining) AS v FROM lots WHERE program_id = ? AND remaining > 0 AND expires_at IS NULL", [p])
        // The schedule: month boundaries in the program's zone.
        var months: [PointsLiability.Month] = []
        let clock = v.clock
        var start = clock.startOfDay(clock.date(asOf).firstOfMonth(addingMonths: 0))
        var scheduled: Int64 = 0
        for i in 0..<12 {
            let first = clock.date(asOf).firstOfMonth(addingMonths: i)
            let end = clock.startOfDay(first.firstOfMonth(addingMonths: 1))
            // Lapse instants in (start, end]: the last usable day falls in this month.
            let from = max(start, asOf)
            let pts = try await one("SELECT SUM(remaining) AS v FROM lots WHERE program_id = ? AND remaining > 0 AND expires_at > ? AND expires_at <= ?",
                                    [p, .int(from.seconds), .int(end.seconds)])
            scheduled += pts
            months.append(.init(month: String(first.description.prefix(7)), points: pts, valueMinor: v.definition.valueMinor(ofPoints: pts)))
            start = end
        }
        let outstanding = spendable + pending
        let issued = try await one("""
            SELECT SUM(e.points) AS v FROM ledger_entries e
            WHERE e.program_id = ? AND e.account = 'points' AND e.points > 0 AND e.lot_no IS NOT NULL AND e.reason IN ('purchase', 'activity', 'adjustment')
              AND e.at >= ? AND e.at < ?
            """, [p, .int(breakageFrom.seconds), .int(breakageUntil.seconds)])
        let lapsed = try await one("""
            SELECT SUM(-e.points) AS v FROM ledger_entries e JOIN lots l ON l.program_id = e.program_id AND l.member_id = e.member_id AND l.lot_no = e.lot_no
            WHERE e.program_id = ? AND e.reason = 'expiry' AND l.earned_at >= ? AND l.earned_at < ?
            """, [p, .int(breakageFrom.seconds), .int(breakageUntil.seconds)])
        return PointsLiability(
            program: program, asOf: asOf, currency: v.definition.currency, outstanding: outstanding, spendable: spendable, pending: pending,
            debt: -unassigned, recordedDebt: recorded, lapsedAwaitingJobs: awaiting, ledgerBalance: ledger,
            valueMinor: v.definition.valueMinor(ofPoints: outstanding + unassigned), expirySchedule: months,
            lapsingLater: outstanding - never - scheduled, neverLapsing: never,
            breakageFrom: breakageFrom, breakageUntil: breakageUntil, issuedInPeriod: issued, lapsedOfIssued: lapsed,
            breakagePpm: issued > 0 ? lapsed * 1_000_000 / issued : nil)
    }
}
