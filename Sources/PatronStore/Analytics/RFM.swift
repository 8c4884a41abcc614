import Foundation
import PatronCore

/// One member's RFM scores (quintiles 1–5 over the members who bought in the last 365 days:
/// 5 is the most recent, the most frequent, the most spent) and lifecycle stage.
public struct MemberRFM: Codable, Sendable, Equatable {
    public var memberId: MemberID
    public var r: Int?
    public var f: Int?
    public var m: Int?
    /// Rank of the 365-day spend from the top, in percent (1: the top 1%; nil for members who did not buy).
    public var topPercent: Int?
    public var recencyDays: Int64?
    /// Orders and spend in the last 365 days.
    public var frequency: Int64
    public var monetaryMinor: Int64
    public var lifecycle: LifecycleStage
    public var computedAt: Timestamp
}

public struct RFMReport: Codable, Sendable, Equatable {
    public struct Cell: Codable, Sendable, Equatable {
        public var r: Int
        public var f: Int
        public var members: Int64
        public var averageMonetaryMinor: Int64
    }
    public var program: String
    public var computedAt: Timestamp?
    public var scored: Int64
    /// Members by recency and frequency score (the RFM grid), with their average spend.
    public var grid: [Cell]
    public var lifecycle: [String: Int64]
}

extension Store {
    /// Scores every member of the program as of `asOf` (local day) from the `member_days`
    /// aggregate, and replaces the stored scores; members whose scores changed get them in their
    /// state, and rule tags that read them are evaluated again (`syncScores`). Run daily by
    /// `patron jobs rfm` and the server's jobs, and on demand.
    @discardableResult
    public func computeRFM(program: String, asOf: Timestamp) async throws -> Int {
        let version = try await self.program(program).at(asOf)
        let clock = version.clock, thresholds = version.definition.lifecycle
        let today = clock.dayNumber(asOf)
        let p = SQLValue.text(program)
        // Members merged into others buy as their survivors (who are scored for both), as in
        // `purchaseLog`; days come in increasing order per member.
        var acc: [Int64: PurchaseDays] = [:]
        for r in try await db.queryAside("""
            SELECT COALESCE(m.merged_into, d.member_id) AS member_id, d.day, SUM(d.orders) AS n, SUM(d.revenue_minor) AS revenue
            FROM member_days d JOIN members m ON m.program_id = d.program_id AND m.member_id = d.member_id
            WHERE d.program_id = ? AND d.day <= ? GROUP BY 1, 2 ORDER BY 1, 2
            """, [p, .int(today)]) {
            acc[try r.int("member_id"), default: PurchaseDays()].add(day: try r.int("day"), orders: try r.int("n"), spendMinor: try r.int("revenue"), today: today)
        }
        // Quintiles over the members who bought in the last 365 days.
        let scored = acc.filter { $0.value.orders365 > 0 }
        let rq = RFMScoring.quintiles(scored.mapValues(\.last)), fq = RFMScoring.quintiles(scored.mapValues(\.orders365))
        let mq = RFMScoring.quintiles(scored.mapValues(\.spend365)), top = RFMScoring.topPercents(scored.mapValues(\.spend365))
        var rows: [[SQLValue]] = []
        var scores: [Int64: MemberScores] = [:]
        for r in try await db.queryAside("SELECT member_id, registered_at FROM members WHERE program_id = ? AND merged_into IS NULL", [p]) {
            let id = try r.int("member_id")
            let a = acc[id]
            let stage = RFMScoring.lifecycle(a, registeredDay: clock.dayNumber(Timestamp(seconds: try r.int("registered_at"))), today: today, thresholds)
            rows.append([p, .int(id), SQLValue(rq[id]), SQLValue(fq[id]), SQLValue(mq[id]), SQLValue(a.map { today - $0.last }),
                         .int(a?.orders365 ?? 0), .int(a?.spend365 ?? 0), .text(stage.rawValue), .int(asOf.seconds), SQLValue(top[id])])
            scores[id] = MemberScores(r: rq[id], f: fq[id], m: mq[id], topPercent: top[id], lifecycle: stage)
        }
        var plan = WritePlan()
        plan.add("DELETE FROM member_rfm WHERE program_id = ?", [p])
        RowInsert.memberRFM.add(&plan, rows)
        try await db.write(plan)
        try await syncScores(program: program, asOf: asOf) { id, old in (old ?? MemberScores()).withRFM(of: scores[id.rawValue]) }
        return rows.count
    }

    public func memberRFM(program: String, member: MemberID) async throws -> MemberRFM? {
        try await db.query("SELECT * FROM member_rfm WHERE program_id = ? AND member_id = ?", [.text(program), .int(member.rawValue)]).first.map { r in
            MemberRFM(memberId: member, r: try r.intOrNil("r").map(Int.init), f: try r.intOrNil("f").map(Int.init), m: try r.intOrNil("m").map(Int.init),
                      topPercent: try r.intOrNil("top_percent").map(Int.init),
                      recencyDays: try r.intOrNil("recency_days"), frequency: try r.int("frequency"), monetaryMinor: try r.int("monetary_minor"),
                      lifecycle: LifecycleStage(rawValue: try r.string("lifecycle")) ?? .lost, computedAt: Timestamp(seconds: try r.int("computed_at")))
        }
    }

    public func rfmReport(program: String) async throws -> RFMReport {
        _ = try await self.program(program)
        let p = SQLValue.text(program)
        let grid = try await db.queryAside("""
            SELECT r, f, COUNT(*) AS n, SUM(monetary_minor) AS m FROM member_rfm WHERE program_id = ? AND r IS NOT NULL GROUP BY r, f ORDER BY r, f
            """, [p]).map { row in
            let n = try row.int("n")
            return RFMReport.Cell(r: Int(try row.int("r")), f: Int(try row.int("f")), members: n, averageMonetaryMinor: n > 0 ? (try row.intOrNil("m") ?? 0) / n : 0)
        }
        var stages: [String: Int64] = [:]
        for r in try await db.queryAside("SELECT lifecycle, COUNT(*) AS n FROM member_rfm WHERE program_id = ? GROUP BY lifecycle", [p]) { stages[try r.string("lifecycle")] = try r.int("n") }
        let at = try await db.query("SELECT MAX(computed_at) AS t FROM member_rfm WHERE program_id = ?", [p]).first?.intOrNil("t")
        return RFMReport(program: program, computedAt: at.map(Timestamp.init), scored: grid.reduce(0) { $0 + $1.members }, grid: grid, lifecycle: stages)
    }
}

extension RowInsert {
    static let memberRFM = RowInsert("INSERT INTO member_rfm (program_id, member_id, r, f, m, recency_days, frequency, monetary_minor, lifecycle, computed_at, top_percent)", columns: 11)
}
