import Foundation
import PatronCore

extension Store {
    static func cursorValue(_ cursor: String?, _ tag: String) throws -> Int64? {
        guard let cursor else { return nil }
        guard let d = Data(base64Encoded: cursor), let s = String(data: d, encoding: .utf8), s.hasPrefix(tag + ":"), let v = Int64(s.dropFirst(tag.count + 1)) else {
            throw StoreError.invalid([FieldError(path: "cursor", reason: "is not a cursor this API returned")])
        }
        return v
    }
    static func cursor(_ tag: String, _ v: Int64) -> String { Data("\(tag):\(v)".utf8).base64EncodedString() }

    func ensureMember(_ program: String, _ member: MemberID) async throws {
        let rows = try await db.query("SELECT 1 AS x FROM members WHERE program_id = ? AND member_id = ?", [.text(program), .int(member.rawValue)])
        if rows.isEmpty { throw StoreError.memberNotFound(member) }
    }

    /// Ledger entries, newest first.
    public func ledger(program: String, member: MemberID, cursor: String?, limit: Int) async throws -> Page<LedgerEntry> {
        try await ensureMember(program, member)
        let before = try Self.cursorValue(cursor, "e") ?? .max
        let rows = try await db.query("""
            SELECT entry_no, event_no, at, account, points, reason, lot_no, order_id, note FROM ledger_entries
            WHERE program_id = ? AND member_id = ? AND entry_no < ? ORDER BY entry_no DESC LIMIT ?
            """, [.text(program), .int(member.rawValue), .int(before), .int(Int64(limit + 1))])
        let items = try rows.prefix(limit).map(Self.entry)
        return Page(items: items, nextCursor: rows.count > limit ? items.last.map { Self.cursor("e", Int64($0.no)) } : nil)
    }

    static func entry(_ r: SQLRow) throws -> LedgerEntry {
        LedgerEntry(no: Int(try r.int("entry_no")), eventId: try r.intOrNil("event_no").map(EventID.init), at: Timestamp(seconds: try r.int("at")),
                    account: Account(rawValue: try r.string("account")) ?? .points, points: try r.int("points"),
                    reason: EntryReason(rawValue: try r.string("reason")) ?? .adjustment, lotNo: try r.intOrNil("lot_no").map { Int($0) },
                    orderId: try r.stringOrNil("order_id"), note: try r.stringOrNil("note"))
    }

    public func allEntries(program: String, member: MemberID) async throws -> [LedgerEntry] {
        try await db.query("SELECT entry_no, event_no, at, account, points, reason, lot_no, order_id, note FROM ledger_entries WHERE program_id = ? AND member_id = ? ORDER BY entry_no",
                           [.text(program), .int(member.rawValue)]).map(Self.entry)
    }

    public func lots(program: String, member: MemberID) async throws -> [Lot] {
        try await db.query("""
            SELECT lot_no, event_no, source, order_id, earned_at, available_at, expires_at, original, remaining FROM lots
            WHERE program_id = ? AND member_id = ? ORDER BY lot_no
            """, [.text(program), .int(member.rawValue)]).map { r in
            Lot(no: Int(try r.int("lot_no")), eventId: EventID(try r.int("event_no")), source: LotSource(rawValue: try r.string("source")) ?? .purchase,
                orderId: try r.stringOrNil("order_id"), earnedAt: Timestamp(seconds: try r.int("earned_at")), availableAt: Timestamp(seconds: try r.int("available_at")),
                expiresAt: try r.intOrNil("expires_at").map(Timestamp.init), original: try r.int("original"), remaining: try r.int("remaining"))
        }
    }

    public func tierHistory(program: String, member: MemberID) async throws -> [TierChange] {
        try await ensureMember(program, member)
        return try await db.query("""
            SELECT change_no, at, from_tier, to_tier, cause, event_no, qualifying_growth FROM tier_changes
            WHERE program_id = ? AND member_id = ? ORDER BY change_no
            """, [.text(program), .int(member.rawValue)]).map { r in
            TierChange(no: Int(try r.int("change_no")), at: Timestamp(seconds: try r.int("at")), from: try r.string("from_tier"), to: try r.string("to_tier"),
                       cause: TierChangeCause(rawValue: try r.string("cause")) ?? .upgrade, eventId: try r.intOrNil("event_no").map(EventID.init),
                       qualifyingGrowth: try r.int("qualifying_growth"))
        }
    }

    public func growthEntries(program: String, member: MemberID, cursor: String?, limit: Int) async throws -> Page<GrowthEntry> {
        try await ensureMember(program, member)
        let before = try Self.cursorValue(cursor, "g") ?? .max
        let rows = try await db.query("""
            SELECT growth_no, event_no, at, counts_at, growth, reason, order_id FROM growth_entries
            WHERE program_id = ? AND member_id = ? AND growth_no < ? ORDER BY growth_no DESC LIMIT ?
            """, [.text(program), .int(member.rawValue), .int(before), .int(Int64(limit + 1))])
        let items = try rows.prefix(limit).map { r in
            GrowthEntry(no: Int(try r.int("growth_no")), eventId: EventID(try r.int("event_no")), at: Timestamp(seconds: try r.int("at")),
                        countsAt: Timestamp(seconds: try r.int("counts_at")), growth: try r.int("growth"),
                        reason: GrowthReason(rawValue: try r.string("reason")) ?? .purchase, orderId: try r.stringOrNil("order_id"))
        }
        return Page(items: items, nextCursor: rows.count > limit ? items.last.map { Self.cursor("g", Int64($0.no)) } : nil)
    }

    public struct StoredEvent: Codable, Sendable {
        public var eventId: EventID
        public var kind: EventKind
        public var occurredAt: Timestamp
        public var recordedAt: Timestamp
        public var payload: JSONValue
        public var outcome: EventOutcome
    }

    /// The member's events, newest arrival first.
    public func eventLog(program: String, member: MemberID, cursor: String?, limit: Int) async throws -> Page<StoredEvent> {
        try await ensureMember(program, member)
        let before = try Self.cursorValue(cursor, "v") ?? .max
        let rows = try await db.query("""
            SELECT event_no, kind, occurred_at, recorded_at, payload, outcome FROM events
            WHERE program_id = ? AND member_id = ? AND event_no < ? ORDER BY event_no DESC LIMIT ?
            """, [.text(program), .int(member.rawValue), .int(before), .int(Int64(limit + 1))])
        let items = try rows.prefix(limit).map { r in
            StoredEvent(eventId: EventID(try r.int("event_no")), kind: EventKind(rawValue: try r.string("kind")) ?? .activity,
                        occurredAt: Timestamp(seconds: try r.int("occurred_at")), recordedAt: Timestamp(seconds: try r.int("recorded_at")),
                        payload: try Coding.decode(JSONValue.self, try r.string("payload")), outcome: try Coding.decode(EventOutcome.self, try r.string("outcome")))
        }
        return Page(items: items, nextCursor: rows.count > limit ? items.last.map { Self.cursor("v", $0.eventId.rawValue) } : nil)
    }

    /// Re-checks one member's stored ledger against its state (see `LedgerAudit`).
    public func audit(program: String, member: MemberID) async throws -> [LedgerAudit.Problem] {
        let m = try await loadMember(program: program, id: member)
        return LedgerAudit.check(state: m.state, entries: try await allEntries(program: program, member: member), lots: try await lots(program: program, member: member))
    }
}
