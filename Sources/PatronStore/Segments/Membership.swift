import Foundation
import PatronCore

/// A saved segment's members as the tracker keeps them in memory, with the instants at which
/// time could move someone in or out.
final class TrackedSegment: @unchecked Sendable {
    let updatedAt: Timestamp
    let segment: CompiledSegment
    var members = Set<Int64>()
    var due = DueQueue()
    init(updatedAt: Timestamp, segment: CompiledSegment) { self.updatedAt = updatedAt; self.segment = segment }
}

extension RowInsert {
    static let segmentMembers = RowInsert("INSERT INTO segment_members (program_id, member_id, segment_id, since)", columns: 4, tail: " ON CONFLICT DO NOTHING")
    static let segmentChanges = RowInsert("INSERT INTO segment_changes (program_id, member_id, segment_id, at, entered, cause, recorded_at)", columns: 7, tail: " ON CONFLICT DO NOTHING")
}

/// One entry or exit of a member (`segment.entered`, `segment.exited`).
public struct SegmentChange: Codable, Sendable, Equatable {
    public var segment: String
    public var memberId: MemberID
    public var event: String
    public var at: Timestamp
    public var cause: SegmentCause
}

public struct SegmentRefresh: Sendable, Equatable {
    /// Members evaluated, and entries and exits recorded, per saved segment.
    public var evaluated = 0
    public var entered = 0
    public var exited = 0
    public var fullEvaluations = 0
}

extension Store {
    /// Brings every saved segment of the program up to date: segments saved or changed since the
    /// last call are evaluated over every member; otherwise only the members written since, and
    /// those whose time conditions fall due by `now`. Entries and exits are stored as
    /// `segment.entered` and `segment.exited` with their cause. The server runs this every few
    /// seconds; run it on one instance only.
    @discardableResult
    public func refreshSegments(program: String, now: Timestamp) async throws -> SegmentRefresh {
        let saved = try await segments(program: program)
        guard !saved.isEmpty || facts.entry(program).map({ !$0.tracked.isEmpty }) == true else { return SegmentRefresh() }
        let gate = facts.gate(program)
        await gate.lock()
        do {
            let r = try await trackSegments(program: program, saved: saved, now: now)
            await gate.unlock()
            return r
        } catch {
            await gate.unlock()
            throw error
        }
    }

    private func trackSegments(program: String, saved: [SavedSegment], now: Timestamp) async throws -> SegmentRefresh {
        let (f, _) = try await currentFacts(program: program, now: now)
        guard let entry = facts.entry(program) else { return SegmentRefresh() }
        let changed = facts.takeTrackerDirty(entry)
        let clock = try await self.program(program).at(now).clock
        let cursor = MemberFactsCursor(f)
        var report = SegmentRefresh()
        var plan = WritePlan()
        var updates: [(String, TrackedSegment)] = []
        let p = SQLValue.text(program)

        // Every change is history; who is in each segment is written once per member at the end
        // of the pass, from where they ended up (a member may enter and leave within one pass).
        // Entries go in multi-row inserts: a first evaluation may enter a million members.
        var changeRows: [[SQLValue]] = []
        var lastEntry: [String: [Int64: Timestamp]] = [:], touched: [String: [Int64]] = [:]
        func record(_ seg: String, _ member: Int64, entered: Bool, at: Timestamp, cause: SegmentCause) {
            if entered { report.entered += 1; lastEntry[seg, default: [:]][member] = at } else { report.exited += 1 }
            touched[seg, default: []].append(member)
            changeRows.append([p, .int(member), .text(seg), .int(at.seconds), .int(entered ? 1 : 0), .text(cause.rawValue), .int(now.seconds)])
        }
        var finals: [String: TrackedSegment] = [:]

        for s in saved {
            let def = s.definition
            if let t = entry.tracked[def.id], t.updatedAt == s.updatedAt {
                finals[def.id] = t
                func evaluate(_ m: Int64, at: Timestamp, cause: SegmentCause) {
                    report.evaluated += 1
                    var isIn = false
                    if let row = f.row(of: MemberID(m)) {
                        cursor.row = row
                        // A member whose evaluation fails (over its budget) keeps their membership.
                        guard case .success(let r) = t.segment.membership(cursor, now: at, clock: clock) else { return }
                        isIn = r.isIn
                        t.due.schedule(m, at: r.due)
                    } else {
                        t.due.schedule(m, at: nil)
                    }
                    if isIn != t.members.contains(m) {
                        record(def.id, m, entered: isIn, at: at, cause: cause)
                        if isIn { t.members.insert(m) } else { t.members.remove(m) }
                    }
                }
                // Members written since, as they are now; then members due by now, at their
                // instants, soonest first, until none is left (an evaluation may fall due again).
                for m in changed.sorted() { evaluate(m, at: now, cause: .member) }
                while true {
                    let due = t.due.popDue(now)
                    if due.isEmpty { break }
                    for (m, at) in due { evaluate(m, at: at, cause: .time) }
                }
                continue
            }
            // Saved, changed, or not tracked since this process started: every member.
            report.fullEvaluations += 1
            let stored = Set(try await db.query("SELECT member_id FROM segment_members WHERE program_id = ? AND segment_id = ?", [p, .text(def.id)])
                .map { try $0.int("member_id") })
            let asOf = try await db.query("SELECT members_as_of FROM segments WHERE program_id = ? AND segment_id = ?", [p, .text(def.id)]).first?.intOrNil("members_as_of")
            let cause: SegmentCause = asOf == s.updatedAt.seconds ? .recheck : .saved
            let t = TrackedSegment(updatedAt: s.updatedAt, segment: try Self.compiled(def))
            finals[def.id] = t
            for row in 0..<f.rows where f.isPresent(row) {
                cursor.row = row
                report.evaluated += 1
                let m = f.ids[row]
                switch t.segment.membership(cursor, now: now, clock: clock) {
                case .success(let r):
                    if r.isIn { t.members.insert(m) }
                    t.due.schedule(m, at: r.due)
                case .failure:
                    if stored.contains(m) { t.members.insert(m) }
                }
            }
            for m in t.members.subtracting(stored).sorted() { record(def.id, m, entered: true, at: now, cause: cause) }
            for m in stored.subtracting(t.members).sorted() { record(def.id, m, entered: false, at: now, cause: cause) }
            plan.add("UPDATE segments SET members_as_of = ? WHERE program_id = ? AND segment_id = ?", [.int(s.updatedAt.seconds), p, .text(def.id)])
            updates.append((def.id, t))
        }
        // Segments deleted since: forget them.
        let live = Set(saved.map(\.definition.id))
        var memberRows: [[SQLValue]] = []
        for (seg, members) in touched.sorted(by: { $0.key < $1.key }) {
            for m in Set(members).sorted() {
                if finals[seg]?.members.contains(m) == true {
                    memberRows.append([p, .int(m), .text(seg), .int((lastEntry[seg]?[m] ?? now).seconds)])
                } else {
                    plan.add("DELETE FROM segment_members WHERE program_id = ? AND member_id = ? AND segment_id = ?", [p, .int(m), .text(seg)])
                }
            }
        }
        RowInsert.segmentMembers.add(&plan, memberRows)
        RowInsert.segmentChanges.add(&plan, changeRows)
        if !plan.isEmpty { try await db.write(plan) }
        facts.update(entry) { e in
            for (id, t) in updates { e.tracked[id] = t }
            for id in e.tracked.keys where !live.contains(id) { e.tracked[id] = nil }
        }
        return report
    }

    /// A saved segment's entries and exits, oldest first, from `since`.
    public func segmentChanges(program: String, segment: String, since: Timestamp?, limit: Int) async throws -> [SegmentChange] {
        _ = try await self.segment(program: program, id: segment)
        return try await db.query("""
            SELECT member_id, at, entered, cause FROM segment_changes WHERE program_id = ? AND segment_id = ? AND at >= ?
            ORDER BY at, member_id, entered LIMIT ?
            """, [.text(program), .text(segment), .int(since?.seconds ?? Int64.min), .int(Int64(limit))]).map { r in
            SegmentChange(segment: segment, memberId: MemberID(try r.int("member_id")), event: try r.int("entered") == 1 ? "segment.entered" : "segment.exited",
                          at: Timestamp(seconds: try r.int("at")), cause: SegmentCause(rawValue: try r.string("cause")) ?? .member)
        }
    }

    /// How many members each saved segment has, as the tracker last recorded them.
    public func segmentSizes(program: String) async throws -> [String: Int] {
        var out: [String: Int] = [:]
        for r in try await db.query("SELECT segment_id, COUNT(*) AS n FROM segment_members WHERE program_id = ? GROUP BY segment_id", [.text(program)]) {
            out[try r.string("segment_id")] = Int(try r.int("n"))
        }
        return out
    }

    /// The saved segments the member is in, as the tracker last recorded them.
    public func memberSegments(program: String, member: MemberID) async throws -> [(segment: String, since: Timestamp)] {
        try await ensureMember(program, member)
        return try await db.query("SELECT segment_id, since FROM segment_members WHERE program_id = ? AND member_id = ? ORDER BY segment_id",
                           [.text(program), .int(member.rawValue)]).map { (try $0.string("segment_id"), Timestamp(seconds: try $0.int("since"))) }
    }
}
