import Foundation
import PatronCore

/// What is about to lapse, as facts with their dates: the messages are sent by a later part
/// (automated reminders); this is what they are about.
public enum ReminderKind: String, Codable, Sendable, CaseIterable {
    case claimExpiring = "benefit.claim_expiring"
    case useExpiring = "benefit.use_expiring"
    case pointsExpiring = "points.expiring"
}

public struct Reminder: Codable, Sendable, Equatable {
    public var event: ReminderKind
    public var memberId: MemberID
    /// The instant it lapses.
    public var at: Timestamp
    /// The last local day it can still be claimed, used or spent.
    public var lastDay: CivilDate
    public var grant: String?
    public var benefit: String?
    public var points: Int64?
}

public struct ReminderPage: Codable, Sendable, Equatable {
    public var asOf: Timestamp
    public var days: Int
    public var items: [Reminder]
    public var nextCursor: String?
}

extension Store {
    /// Reminders of one kind lapsing in (now, now + days], in time order, for one member or all.
    public func reminders(program: String, kind: ReminderKind, member: MemberID?, days: Int, cursor: String?, limit: Int, now: Timestamp) async throws -> ReminderPage {
        let clock = try await self.program(program).at(now).clock
        if let member { try await ensureMember(program, member) }
        let until = now.adding(days: days)
        // Cursor: "<at>~<member>~<ref>", the last item of the previous page.
        var after: (Int64, Int64, String) = (now.seconds, -1, "")
        if let cursor {
            let parts = cursor.split(separator: "~", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, let a = Int64(parts[0]), let m = Int64(parts[1]) else { throw StoreError.invalid([FieldError(path: "cursor", reason: "is not a cursor of this list")]) }
            after = (a, m, parts[2])
        }
        var binds: [SQLValue] = [.text(program), .int(until.seconds), .int(after.0), .int(after.0), .int(after.1), .int(after.0), .int(after.1), .text(after.2)]
        let memberFilter = member == nil ? "" : " AND member_id = ?"
        if let member { binds.append(.int(member.rawValue)) }
        binds.append(.int(Int64(limit + 1)))
        let sql: String
        // (t > a) OR (t = a AND m > b) OR (t = a AND m = b AND ref > c): the same in both dialects.
        func keyset(_ t: String, _ ref: String) -> String {
            "\(t) <= ? AND (\(t) > ? OR (\(t) = ? AND member_id > ?) OR (\(t) = ? AND member_id = ? AND \(ref) > ?))"
        }
        switch kind {
        case .claimExpiring:
            sql = """
                SELECT member_id, claim_by AS t, grant_id AS ref, benefit_id, 0 AS points FROM benefit_grants
                WHERE program_id = ? AND claimed_at IS NULL AND revoked_at IS NULL AND claim_by IS NOT NULL AND \(keyset("claim_by", "grant_id"))\(memberFilter)
                ORDER BY claim_by, member_id, grant_id LIMIT ?
                """
        case .useExpiring:
            sql = """
                SELECT member_id, use_by AS t, grant_id AS ref, benefit_id, 0 AS points FROM benefit_grants
                WHERE program_id = ? AND used_at IS NULL AND revoked_at IS NULL AND refunded_at IS NULL AND claimed_at IS NOT NULL AND use_by IS NOT NULL
                  AND \(keyset("use_by", "grant_id"))\(memberFilter)
                ORDER BY use_by, member_id, grant_id LIMIT ?
                """
        case .pointsExpiring:
            sql = """
                SELECT member_id, expires_at AS t, '' AS ref, '' AS benefit_id, SUM(remaining) AS points FROM lots
                WHERE program_id = ? AND remaining > 0 AND expires_at IS NOT NULL AND \(keyset("expires_at", "''"))\(memberFilter)
                GROUP BY member_id, expires_at ORDER BY expires_at, member_id LIMIT ?
                """
        }
        let rows = try await db.query(sql, binds)
        var items: [Reminder] = []
        for r in rows.prefix(limit) {
            let at = Timestamp(seconds: try r.int("t"))
            let ref = try r.string("ref")
            items.append(Reminder(event: kind, memberId: MemberID(try r.int("member_id")), at: at, lastDay: clock.date(at.adding(seconds: -1)),
                                  grant: ref.isEmpty ? nil : ref, benefit: kind == .pointsExpiring ? nil : try r.string("benefit_id"),
                                  points: kind == .pointsExpiring ? try r.int("points") : nil))
        }
        let next = rows.count > limit ? items.last.map { "\($0.at.seconds)~\($0.memberId.rawValue)~\($0.grant ?? "")" } : nil
        return ReminderPage(asOf: now, days: days, items: items, nextCursor: next)
    }
}
