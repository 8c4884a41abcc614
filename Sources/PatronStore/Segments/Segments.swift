import Foundation
import PatronCore

/// A saved segment.
public struct SavedSegment: Codable, Sendable, Equatable {
    public var definition: SegmentDefinition
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
}

/// A segment's size and make-up now, and what it cost to find.
public struct SegmentPreview: Codable, Sendable, Equatable {
    public struct Scan: Codable, Sendable, Equatable {
        /// Members and their recent orders the scan read through, and how long it took.
        public var members: Int
        public var orders: Int
        public var seconds: Double
        public var membersPerSecond: Double
    }
    public var asOf: Timestamp
    public var composition: SegmentComposition
    /// Listed identities no member of the program has, and listed member ids not in the program.
    public var unknownIdentities: [Identity]
    public var unknownMembers: [MemberID]
    public var scan: Scan
    public var facts: FactsStatus
}

/// One member of a segment, as exported.
public struct SegmentMember: Sendable, Equatable {
    public var row: MemberFactsRow
    /// The member's scores (empty when unscored).
    public var scores: MemberScores { row.scores ?? MemberScores() }
}

extension Store {
    /// The definition with listed identities resolved to members; identities no member has are
    /// returned apart (a preview shows them; saving refuses them).
    func resolve(program: String, _ draft: SegmentDraft) async throws -> (SegmentDefinition, unknown: [(path: String, identity: Identity)]) {
        var def = draft.definition
        var unknown: [(String, Identity)] = []
        guard !draft.identities.isEmpty else { return (def, []) }
        var listed = def.members ?? []
        var seen = Set(listed)
        let owners = try await resolve(program: program, draft.identities.map(\.identity.normalized))
        for (path, identity) in draft.identities {
            if let id = owners[identity.normalized] {
                if seen.insert(id).inserted { listed.append(id) }
            } else {
                unknown.append((path, identity))
            }
        }
        def.members = listed
        return (def, unknown)
    }

    /// Who is in the segment now, and their make-up: evaluated over the program's member facts
    /// on every core.
    public func previewSegment(program: String, _ draft: SegmentDraft, now: Timestamp, sampleSize: Int = 20) async throws -> SegmentPreview {
        let (def, unknown) = try await resolve(program: program, draft)
        let (f, status) = try await memberFacts(program: program, now: now)
        let versions = try await self.program(program)
        let started = ContinuousClock.now
        let tally = try await evaluate(def, facts: f, clock: versions.at(now).clock, now: now, sampleSize: sampleSize, collect: false)
        let seconds = (ContinuousClock.now - started).seconds
        let unknownMembers = (def.members ?? []).filter { f.row(of: $0) == nil }
        return SegmentPreview(asOf: now, composition: f.composition(tally, tiers: versions.at(now).definition.tiers.map(\.id)),
                              unknownIdentities: unknown.map(\.identity), unknownMembers: unknownMembers,
                              scan: .init(members: f.count, orders: f.orderRows - f.garbage, seconds: seconds,
                                          membersPerSecond: seconds > 0 ? Double(f.count) / seconds : 0),
                              facts: status)
    }

    /// Runs the segment over every row, split across the cores.
    func evaluate(_ def: SegmentDefinition, facts f: MemberFacts, clock: ProgramClock, now: Timestamp, sampleSize: Int, collect: Bool) async throws -> SegmentTally {
        let segment = try Self.compiled(def)
        let parts = max(1, min(ProcessInfo.processInfo.activeProcessorCount, f.rows / 10_000 + 1))
        let size = (f.rows + parts - 1) / max(parts, 1)
        return await withTaskGroup(of: (Int, SegmentTally).self) { group in
            for p in 0..<parts {
                let rows = min(f.rows, p * size)..<min(f.rows, (p + 1) * size)
                group.addTask { (p, segment.tally(f, rows: rows, now: now, clock: clock, sampleSize: sampleSize, collect: collect)) }
            }
            var partials: [(Int, SegmentTally)] = []
            for await x in group { partials.append(x) }
            var total = SegmentTally()
            if collect { total.matched = [] }
            for (_, t) in partials.sorted(by: { $0.0 < $1.0 }) { total.merge(t, sampleSize: sampleSize) }
            return total
        }
    }

    /// The segment compiled; a stored condition that no longer compiles is a field error.
    static func compiled(_ def: SegmentDefinition) throws -> CompiledSegment {
        do { return try CompiledSegment(def) } catch { throw StoreError.invalid([FieldError(path: "condition", reason: "\(error)")]) }
    }

    /// Saves the segment (new or replacing the one with its id). Listed identities must all
    /// belong to members.
    public func saveSegment(program: String, _ draft: SegmentDraft, now: Timestamp) async throws -> (SavedSegment, created: Bool) {
        _ = try await self.program(program)
        let (def, unknown) = try await resolve(program: program, draft)
        guard unknown.isEmpty else {
            throw StoreError.invalid(unknown.map { FieldError(path: $0.path, reason: "no member has \($0.identity.kind.rawValue) '\($0.identity.value)'") })
        }
        let existing = try? await segment(program: program, id: def.id)
        var plan = WritePlan()
        let text = Coding.json(def)
        if let existing {
            plan.add("UPDATE segments SET definition = ?, updated_at = ? WHERE program_id = ? AND segment_id = ?",
                     [.text(text), .int(now.seconds), .text(program), .text(def.id)], expectRows: 1, else: .conflict("segment"))
            try await db.write(plan)
            return (SavedSegment(definition: def, createdAt: existing.createdAt, updatedAt: now), false)
        }
        plan.add("INSERT INTO segments (program_id, segment_id, definition, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                 [.text(program), .text(def.id), .text(text), .int(now.seconds), .int(now.seconds)], expectRows: 1, else: .taken("segment"))
        do { try await db.write(plan) } catch GuardFailure.taken { return try await saveSegment(program: program, draft, now: now) }
        return (SavedSegment(definition: def, createdAt: now, updatedAt: now), true)
    }

    public func segments(program: String) async throws -> [SavedSegment] {
        _ = try await self.program(program)
        return try await db.query("SELECT definition, created_at, updated_at FROM segments WHERE program_id = ? ORDER BY segment_id", [.text(program)]).map(Self.savedSegment)
    }

    public func segment(program: String, id: String) async throws -> SavedSegment {
        _ = try await self.program(program)
        guard let r = try await db.query("SELECT definition, created_at, updated_at FROM segments WHERE program_id = ? AND segment_id = ?",
                                         [.text(program), .text(id)]).first else { throw StoreError.segmentNotFound(id) }
        return try Self.savedSegment(r)
    }

    static func savedSegment(_ r: SQLRow) throws -> SavedSegment {
        SavedSegment(definition: try Coding.decode(SegmentDefinition.self, try r.string("definition")),
                     createdAt: Timestamp(seconds: try r.int("created_at")), updatedAt: Timestamp(seconds: try r.int("updated_at")))
    }

    public func deleteSegment(program: String, id: String) async throws {
        _ = try await segment(program: program, id: id)
        var plan = WritePlan()
        plan.add("DELETE FROM segments WHERE program_id = ? AND segment_id = ?", [.text(program), .text(id)])
        // Its entries and exits stay as history; who is in it now goes.
        plan.add("DELETE FROM segment_members WHERE program_id = ? AND segment_id = ?", [.text(program), .text(id)])
        try await db.write(plan)
    }

    /// A saved segment's members now (ascending by id), with what is known of them.
    public func segmentMembers(program: String, id: String, now: Timestamp) async throws -> [SegmentMember] {
        let def = try await segment(program: program, id: id).definition
        let (f, _) = try await memberFacts(program: program, now: now)
        let clock = try await self.program(program).at(now).clock
        let tally = try await evaluate(def, facts: f, clock: clock, now: now, sampleSize: 0, collect: true)
        return (tally.matched ?? []).sorted { $0.rawValue < $1.rawValue }.compactMap { m in
            f.row(of: m).map { SegmentMember(row: f.memberRow($0)) }
        }
    }
}
