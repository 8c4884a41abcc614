import Foundation
import PatronCore

public struct MemberTagView: Codable, Sendable, Equatable {
    public var tag: String
    public var name: LocalizedText?
    public var category: TagCategory?
    public var since: Timestamp
    public var cause: TagCause
    public var by: String?
}

public struct TagChangeView: Codable, Sendable, Equatable {
    public var no: Int
    public var event: String
    public var tag: String
    public var at: Timestamp
    public var cause: TagCause
    public var eventId: EventID?
    public var by: String?
    public var reason: String?
}

public struct TaggedMember: Codable, Sendable, Equatable {
    public var memberId: MemberID
    public var since: Timestamp
    public var cause: TagCause
    public var by: String?
}

public struct TagSummary: Codable, Sendable, Equatable {
    public var tag: TagDefinition
    public var members: Int64
}

extension Store {
    public func memberTags(program: String, member: MemberID, now: Timestamp) async throws -> [MemberTagView] {
        try await ensureMember(program, member)
        let def = try await self.program(program).at(now).definition
        return try await db.query("SELECT tag_id, since, manual, set_by FROM member_tags WHERE program_id = ? AND member_id = ? ORDER BY tag_id",
                                  [.text(program), .int(member.rawValue)]).map { r in
            let id = try r.string("tag_id")
            let d = def.tags.first { $0.id == id }
            return MemberTagView(tag: id, name: d?.name, category: d?.category, since: Timestamp(seconds: try r.int("since")),
                                 cause: try r.int("manual") == 1 ? .manual : .rule, by: try r.stringOrNil("set_by"))
        }
    }

    /// Every tag change of the member, newest first.
    public func tagHistory(program: String, member: MemberID, limit: Int) async throws -> [TagChangeView] {
        try await ensureMember(program, member)
        return try await db.query("""
            SELECT change_no, tag_id, added, at, cause, event_no, set_by, reason FROM tag_changes
            WHERE program_id = ? AND member_id = ? ORDER BY change_no DESC LIMIT ?
            """, [.text(program), .int(member.rawValue), .int(Int64(limit))]).map { r in
            TagChangeView(no: Int(try r.int("change_no")), event: try r.int("added") == 1 ? "tag.added" : "tag.removed", tag: try r.string("tag_id"),
                          at: Timestamp(seconds: try r.int("at")), cause: TagCause(rawValue: try r.string("cause")) ?? .rule,
                          eventId: try r.intOrNil("event_no").map(EventID.init), by: try r.stringOrNil("set_by"), reason: try r.stringOrNil("reason"))
        }
    }

    /// The program's tags with how many members have each now.
    public func tagSummaries(program: String, now: Timestamp) async throws -> [TagSummary] {
        let def = try await self.program(program).at(now).definition
        var counts: [String: Int64] = [:]
        for r in try await db.query("SELECT tag_id, COUNT(*) AS n FROM member_tags WHERE program_id = ? GROUP BY tag_id", [.text(program)]) {
            counts[try r.string("tag_id")] = try r.int("n")
        }
        return def.tags.map { TagSummary(tag: $0, members: counts[$0.id] ?? 0) }
    }

    /// Members who have `tag` now, in id order, a page at a time.
    public func membersWithTag(program: String, tag: String, cursor: String?, limit: Int, now: Timestamp) async throws -> Page<TaggedMember> {
        let def = try await self.program(program).at(now).definition
        guard def.tags.contains(where: { $0.id == tag }) else { throw StoreError.rule(.tag(.unknownTag(tag))) }
        var after: Int64 = 0
        if let cursor {
            guard let v = Int64(cursor) else { throw StoreError.invalid([FieldError(path: "cursor", reason: "is not a cursor this API returned")]) }
            after = v
        }
        let rows = try await db.query("SELECT member_id, since, manual, set_by FROM member_tags WHERE program_id = ? AND tag_id = ? AND member_id > ? ORDER BY member_id LIMIT ?",
                                      [.text(program), .text(tag), .int(after), .int(Int64(limit + 1))])
        let items = try rows.prefix(limit).map { r in
            TaggedMember(memberId: MemberID(try r.int("member_id")), since: Timestamp(seconds: try r.int("since")),
                         cause: try r.int("manual") == 1 ? .manual : .rule, by: try r.stringOrNil("set_by"))
        }
        return Page(items: items, nextCursor: rows.count > limit ? items.last.map { String($0.memberId.rawValue) } : nil)
    }
}

/// What tagging a segment did.
public struct SegmentTagging: Codable, Sendable, Equatable {
    public var segment: String
    public var tag: String
    public var action: String
    /// Members of the segment when the request was made.
    public var members: Int
    /// Of those, members whose tags changed, and members who already had (or lacked) the tag.
    public var changed: Int
    public var unchanged: Int
}

extension Store {
    /// Staff add or remove a manual tag on every member of a saved segment as it is now: one
    /// `tag.set` event per member (each member's history says who and why), each under its own
    /// idempotency key (`key` and the member's id). The same key and body again answers what the
    /// first request answered; a request cut short and sent again goes on where it stopped and
    /// changes nobody twice. An unknown or rule tag, or an unknown segment, changes nothing.
    public func tagSegment(program: String, segment: String, _ set: TagSet, idempotencyKey key: String, now: Timestamp) async throws -> (SegmentTagging, json: String, replayed: Bool) {
        let hash = "segment-tag:\(segment):\(set.tag):\(set.add):\(set.by):\(set.reason ?? "")"
        func firstAnswer() async throws -> (SegmentTagging, json: String, replayed: Bool)? {
            try await idempotent(program, key, hash: hash).map { (try Coding.decode(SegmentTagging.self, $0.body), $0.body, true) }
        }
        if let first = try await firstAnswer() { return first }
        let errors = EventValidator.validate(.tagSet(set))
        guard errors.isEmpty else { throw StoreError.invalid(errors) }
        let engine = try await self.engine(program)
        guard let def = engine.program.at(now).definition.tags.first(where: { $0.id == set.tag }) else { throw StoreError.rule(.tag(.unknownTag(set.tag))) }
        guard def.rule == nil else { throw StoreError.rule(.tag(.ruleTag(set.tag))) }
        let members = try await segmentMembers(program: program, id: segment, now: now)
        var changed = 0
        for m in members {
            let r = try await record(program: program, member: m.row.id, occurredAt: now, body: .tagSet(set), idempotencyKey: "\(key):\(m.row.id)", requestHash: hash, now: now)
            if r.event.outcome.note == nil { changed += 1 }
        }
        let result = SegmentTagging(segment: segment, tag: set.tag, action: set.add ? "add" : "remove", members: members.count, changed: changed, unchanged: members.count - changed)
        let json = Coding.json(result)
        var plan = WritePlan()
        rememberAnswer(&plan, program: program, key: key, hash: hash, status: 201, response: json, now: now)
        do { try await db.write(plan) } catch GuardFailure.taken {
            // A concurrent request with the same key finished first: its answer stands.
            if let first = try await firstAnswer() { return first }
        }
        return (result, json, false)
    }
}
