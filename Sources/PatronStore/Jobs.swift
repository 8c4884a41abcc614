import Foundation
import PatronCore

public struct JobReport: Codable, Sendable, Equatable {
    public var members = 0
    public var expiredPoints: Int64 = 0
    public var tierChanges = 0
    public var conflicts = 0
    public init() {}
    public static func + (a: JobReport, b: JobReport) -> JobReport {
        var r = a; r.members += b.members; r.expiredPoints += b.expiredPoints; r.tierChanges += b.tierChanges; r.conflicts += b.conflicts; return r
    }
}

extension Store {
    /// Runs all scheduled work due up to `asOf`: points that lapse, pending points that become
    /// spendable, tier assessments and grace ends. The queue is the members' `next_due_at`; a
    /// member whose work is done gets its next date, so running again does nothing more.
    public func runJobs(asOf: Timestamp, now: Timestamp, batchSize: Int = 500, progress: (@Sendable (JobReport) -> Void)? = nil) async throws -> JobReport {
        var total = JobReport()
        for program in try await programKeys() {
            let engine = try await self.engine(program)
            var rounds = 0
            while rounds < 10_000 {
                rounds += 1
                let ids = try await db.query("""
                    SELECT member_id FROM members WHERE program_id = ? AND next_due_at IS NOT NULL AND next_due_at <= ?
                    ORDER BY next_due_at, member_id LIMIT ?
                    """, [.text(program), .int(asOf.seconds), .int(Int64(batchSize))]).map { MemberID(try $0.int("member_id")) }
                if ids.isEmpty { break }
                var plans: [WritePlan] = []
                var reports: [JobReport] = []
                for id in ids {
                    let m = try await loadMember(program: program, id: id)
                    var state = m.state
                    var fx = Effects()
                    engine.advance(&state, to: asOf, effects: &fx)
                    var plan = WritePlan()
                    updateMemberState(&plan, program: program, m: m, state: state, lastEventNo: m.lastEventNo, now: now)
                    writeEffects(&plan, program: program, member: id, fx)
                    writeTags(&plan, program: program, member: id, state: state, fx, replay: false)
                    plans.append(plan)
                    var r = JobReport()
                    r.members = 1
                    r.expiredPoints = -fx.entries.filter { $0.reason == .expiry }.reduce(0) { $0 + $1.points }
                    r.tierChanges = fx.tierChanges.count
                    reports.append(r)
                }
                let results = try await db.writeBatch(plans)
                for (r, failure) in zip(reports, results) {
                    if failure == nil { total = total + r } else { total.conflicts += 1 }
                }
                progress?(total)
                if results.allSatisfy({ $0 != nil }) { break } // every member moved on under us: try again later
            }
        }
        return total
    }
}
