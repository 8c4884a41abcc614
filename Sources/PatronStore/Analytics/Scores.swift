import Foundation
import PatronCore

/// What `syncScores` did.
public struct ScoreSync: Codable, Sendable, Equatable {
    /// Members looked at, and those whose scores changed (written with their new state).
    public var members = 0
    public var changed = 0
    public init() {}
}

extension Store {
    /// Members read per query by `syncScores`.
    static let scoreBatch = 1_000

    /// Gives every member of the program (not merged into another) the scores `update` makes of
    /// their current ones, in their state (`MemberState.scores`), at `asOf`: members whose
    /// scores change (or whose rule tags were not all evaluated under the program's rules in
    /// force) are brought to `asOf` and their rule tags evaluated again (`Engine.rescore`), each member one guarded write (a member changed by an event meanwhile
    /// is read again and done again). Rule tags and segments then read the same scores.
    @discardableResult
    func syncScores(program: String, asOf: Timestamp,
                    _ update: (MemberID, MemberScores?) -> MemberScores?) async throws -> ScoreSync {
        let engine = try await self.engine(program)
        var out = ScoreSync()
        func normal(_ s: MemberScores?) -> MemberScores? { s == MemberScores() ? nil : s }
        var after: Int64 = 0
        while true {
            let rows = try await db.query("""
                SELECT \(LoadedMember.columns) FROM members
                WHERE program_id = ? AND member_id > ? AND merged_into IS NULL ORDER BY member_id LIMIT ?
                """, [.text(program), .int(after), .int(Int64(Self.scoreBatch))])
            guard let last = rows.last else { break }
            after = try last.int("member_id")
            var pending: [LoadedMember] = []
            for r in rows {
                let id = MemberID(try r.int("member_id"))
                let state = try Coding.state(try r.string("state"))
                out.members += 1
                guard engine.needsRescore(state, normal(update(id, state.scores)), at: asOf) else { continue }
                pending.append(try LoadedMember(row: r, state: state))
            }
            var attempts = 0
            while !pending.isEmpty {
                attempts += 1
                var plans: [WritePlan] = []
                for m in pending {
                    var state = m.state
                    var fx = Effects()
                    engine.rescore(&state, normal(update(m.id, m.state.scores)), at: asOf, effects: &fx)
                    var plan = WritePlan()
                    updateMemberState(&plan, program: program, m: m, state: state, lastEventNo: m.lastEventNo, now: asOf)
                    writeEffects(&plan, program: program, member: m.id, fx)
                    writeTags(&plan, program: program, member: m.id, state: state, fx, replay: false)
                    plans.append(plan)
                }
                let results = try await db.writeBatch(plans)
                var retry: [MemberID] = []
                for (i, failure) in results.enumerated() {
                    if failure == nil { out.changed += 1 } else { retry.append(pending[i].id) }
                }
                guard !retry.isEmpty else { break }
                // Changed by an event since it was read: read again (still to be scored, or not).
                guard attempts < 5 else { throw StoreError.busy("members kept changing while their scores were written: \(retry.map(\.description).joined(separator: ", "))") }
                pending = try await loadMembers(program: program, ids: retry).values
                    .filter { $0.mergedInto == nil && engine.needsRescore($0.state, normal(update($0.id, $0.state.scores)), at: asOf) }
                    .sorted { $0.id.rawValue < $1.id.rawValue }
            }
        }
        return out
    }
}
