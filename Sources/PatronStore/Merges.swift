import Foundation
import PatronCore

/// One merge of two members of a program (会员合并): who survived, who was absorbed, by whom,
/// and, once undone, when and by whom.
public struct MemberMergeRecord: Codable, Sendable, Equatable {
    public var mergeId: Int64
    public var survivor: MemberID
    public var absorbed: MemberID
    public var mergedAt: Timestamp
    public var mergedBy: String
    public var reason: String?
    public var undoneAt: Timestamp?
    public var undoneBy: String?
}

extension Store {
    /// Who merges made by the program's `mergeOn` rule are recorded as made by.
    public static let ruleMergeBy = "rule:mergeOn"

    /// The member whose state holds `member`'s: the survivor they were merged into, or themselves.
    func survivor(program: String, of member: MemberID) async throws -> MemberID {
        let rows = try await db.query("SELECT merged_into FROM members WHERE program_id = ? AND member_id = ?", [.text(program), .int(member.rawValue)])
        return try rows.first?.intOrNil("merged_into").map(MemberID.init) ?? member
    }

    /// The slot of `absorbed`'s events in `survivor`'s history.
    func mergeSlot(program: String, survivor: MemberID, absorbed: MemberID) async throws -> Int64 {
        let rows = try await db.query("SELECT slot FROM member_merges WHERE program_id = ? AND survivor_id = ? AND absorbed_id = ? AND undone_at IS NULL",
                                      [.text(program), .int(survivor.rawValue), .int(absorbed.rawValue)])
        guard let slot = try rows.first?.int("slot") else { throw StoreError.busy("member \(absorbed) is being merged or unmerged; try again") }
        return slot
    }

    /// The parts of a member's history: their own events, and those of the members merged into them.
    func historyParts(program: String, member: MemberID, registeredAt: Timestamp, excluding: MemberID? = nil) async throws -> [MemberMerge.Part] {
        var parts = [MemberMerge.Part(member: member, slot: 0, registeredAt: registeredAt, events: try await events(program: program, member: member))]
        let merged = try await db.query("""
            SELECT g.absorbed_id, g.slot, m.registered_at FROM member_merges g JOIN members m ON m.program_id = g.program_id AND m.member_id = g.absorbed_id
            WHERE g.program_id = ? AND g.survivor_id = ? AND g.undone_at IS NULL ORDER BY g.slot
            """, [.text(program), .int(member.rawValue)])
        for r in merged {
            let id = MemberID(try r.int("absorbed_id"))
            if id == excluding { continue }
            parts.append(MemberMerge.Part(member: id, slot: try r.int("slot"), registeredAt: Timestamp(seconds: try r.int("registered_at")),
                                          events: try await events(program: program, member: id)))
        }
        return parts
    }

    /// Merges `absorbed` into `survivor`: the survivor's state becomes what both members' events
    /// make together (points, lots, growth and tier recomputed, benefits and tags), the absorbed
    /// member's identities find the survivor, and their later events count for the survivor.
    /// Nothing of the absorbed member's own history is rewritten, so `unmerge` restores both.
    public func mergeMembers(program: String, survivor: MemberID, absorbed: MemberID, by: String, reason: String?, now: Timestamp) async throws -> MemberMergeRecord {
        guard survivor != absorbed else { throw StoreError.invalid([FieldError(path: "absorb", reason: "names the member itself; a member cannot be merged into themselves")]) }
        let engine = try await self.engine(program)
        for _ in 0..<Self.maxAttempts {
            let s = try await loadMember(program: program, id: survivor), b = try await loadMember(program: program, id: absorbed)
            if let into = s.mergedInto { throw StoreError.memberMerged(survivor, into: into) }
            if let into = b.mergedInto { throw StoreError.memberMerged(absorbed, into: into) }
            let absorbedHas = try await db.query("SELECT COUNT(*) AS n FROM member_merges WHERE program_id = ? AND survivor_id = ? AND undone_at IS NULL",
                                                 [.text(program), .int(absorbed.rawValue)]).first?.int("n") ?? 0
            if absorbedHas > 0 { throw StoreError.hasMergedMembers(absorbed) }
            let slot = (try await db.query("SELECT MAX(slot) AS s FROM member_merges WHERE program_id = ? AND survivor_id = ?", [.text(program), .int(survivor.rawValue)])
                .first?.intOrNil("s") ?? 0) + 1
            var parts = try await historyParts(program: program, member: survivor, registeredAt: s.registeredAt)
            parts.append(MemberMerge.Part(member: absorbed, slot: slot, registeredAt: b.registeredAt, events: try await events(program: program, member: absorbed)))
            let until = max(s.state.asOf, b.state.asOf)
            let r: (state: MemberState, effects: Effects, outcomes: [EventID: EventOutcome])
            do { r = try engine.replay(member: survivor, registeredAt: MemberMerge.registeredAt(parts), events: MemberMerge.history(parts), until: until, scores: s.state.scores) }
            catch let e as EngineError { throw StoreError.rule(e) }
            let record = MemberMergeRecord(mergeId: memberIds.next(now: now).rawValue, survivor: survivor, absorbed: absorbed, mergedAt: now, mergedBy: by, reason: reason)
            var plan = WritePlan()
            updateMemberState(&plan, program: program, m: s, state: r.state, lastEventNo: s.lastEventNo, now: now)
            plan.add("""
                UPDATE members SET merged_into = ?, next_due_at = NULL, state_version = state_version + 1, updated_at = ?
                WHERE program_id = ? AND member_id = ? AND state_version = ? AND merged_into IS NULL
                """, [.int(survivor.rawValue), .int(now.seconds), .text(program), .int(absorbed.rawValue), .int(b.stateVersion)], expectRows: 1, else: .conflict("member"))
            plan.touched.append(MemberKey(program: program, member: absorbed.rawValue))
            deleteDerived(&plan, program: program, member: survivor)
            deleteDerived(&plan, program: program, member: absorbed)
            writeEffects(&plan, program: program, member: survivor, r.effects)
            writeTags(&plan, program: program, member: survivor, state: r.state, r.effects, replay: true)
            plan.add("""
                INSERT INTO member_merges (program_id, merge_id, survivor_id, absorbed_id, slot, merged_at, merged_by, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(program), .int(record.mergeId), .int(survivor.rawValue), .int(absorbed.rawValue), .int(slot), .int(now.seconds), .text(by), SQLValue(reason)])
            do {
                try await db.write(plan)
                return record
            } catch GuardFailure.conflict { continue }
        }
        throw StoreError.busy("members \(survivor) and \(absorbed) are receiving too many concurrent writes; try again")
    }

    /// Undoes a merge: both members become what their own events make them, including the
    /// events that arrived for either of them after the merge.
    public func unmergeMembers(program: String, mergeId: Int64, by: String, now: Timestamp) async throws -> MemberMergeRecord {
        let engine = try await self.engine(program)
        for _ in 0..<Self.maxAttempts {
            var merge = try await self.merge(program: program, id: mergeId)
            if merge.undoneAt != nil { throw StoreError.mergeUndone(mergeId) }
            let days = engine.program.at(now).definition.mergeUndoDays
            if now > merge.mergedAt.adding(days: days) { throw StoreError.mergeTooOld(mergeId, days: days) }
            let s = try await loadMember(program: program, id: merge.survivor), b = try await loadMember(program: program, id: merge.absorbed)
            let until = max(s.state.asOf, b.state.asOf)
            let rest = try await historyParts(program: program, member: merge.survivor, registeredAt: s.registeredAt, excluding: merge.absorbed)
            let own = try await events(program: program, member: merge.absorbed)
            let rs: (state: MemberState, effects: Effects, outcomes: [EventID: EventOutcome]), rb: (state: MemberState, effects: Effects, outcomes: [EventID: EventOutcome])
            do {
                rs = try engine.replay(member: merge.survivor, registeredAt: MemberMerge.registeredAt(rest), events: MemberMerge.history(rest), until: until, scores: s.state.scores)
                rb = try engine.replay(member: merge.absorbed, registeredAt: b.registeredAt, events: own, until: until, scores: b.state.scores)
            } catch let e as EngineError { throw StoreError.rule(e) }
            var plan = WritePlan()
            updateMemberState(&plan, program: program, m: s, state: rs.state, lastEventNo: s.lastEventNo, now: now)
            updateMemberState(&plan, program: program, m: b, state: rb.state, lastEventNo: b.lastEventNo, now: now)
            plan.add("UPDATE members SET merged_into = NULL WHERE program_id = ? AND member_id = ?", [.text(program), .int(merge.absorbed.rawValue)])
            for (id, r) in [(merge.survivor, rs), (merge.absorbed, rb)] {
                deleteDerived(&plan, program: program, member: id)
                writeEffects(&plan, program: program, member: id, r.effects)
                writeTags(&plan, program: program, member: id, state: r.state, r.effects, replay: true)
            }
            plan.add("UPDATE member_merges SET undone_at = ?, undone_by = ? WHERE program_id = ? AND merge_id = ? AND undone_at IS NULL",
                     [.int(now.seconds), .text(by), .text(program), .int(mergeId)], expectRows: 1, else: .conflict("merge"))
            do {
                try await db.write(plan)
                merge.undoneAt = now; merge.undoneBy = by
                return merge
            } catch GuardFailure.conflict { continue }
        }
        throw StoreError.busy("the members of merge \(mergeId) are receiving too many concurrent writes; try again")
    }

    public func merge(program: String, id: Int64) async throws -> MemberMergeRecord {
        guard let r = try await db.query("SELECT * FROM member_merges WHERE program_id = ? AND merge_id = ?", [.text(program), .int(id)]).first else {
            throw StoreError.mergeNotFound(id)
        }
        return try Self.mergeRecord(r)
    }

    /// The merges a member took part in, as survivor or absorbed, newest first.
    public func merges(program: String, member: MemberID) async throws -> [MemberMergeRecord] {
        try await ensureMember(program, member)
        return try await db.query("""
            SELECT * FROM member_merges WHERE program_id = ? AND (survivor_id = ? OR absorbed_id = ?) ORDER BY merged_at DESC, merge_id DESC
            """, [.text(program), .int(member.rawValue), .int(member.rawValue)]).map(Self.mergeRecord)
    }

    static func mergeRecord(_ r: SQLRow) throws -> MemberMergeRecord {
        MemberMergeRecord(mergeId: try r.int("merge_id"), survivor: MemberID(try r.int("survivor_id")), absorbed: MemberID(try r.int("absorbed_id")),
                          mergedAt: Timestamp(seconds: try r.int("merged_at")), mergedBy: try r.string("merged_by"), reason: try r.stringOrNil("reason"),
                          undoneAt: try r.intOrNil("undone_at").map { Timestamp(seconds: $0) }, undoneBy: try r.stringOrNil("undone_by"))
    }
}
