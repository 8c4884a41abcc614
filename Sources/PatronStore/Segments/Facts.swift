import Foundation
import PatronCore

/// The members of each program as segment conditions see them (`MemberFacts`), kept in memory
/// once a program's segments are first used: built by reading every member's state once, then
/// kept current by re-reading the members each committed write touched (told by the database
/// wrapper) before the next scan. Writes made by another server instance are not seen until
/// `rebuild`; see docs/segments.md.
final class FactsRegistry: @unchecked Sendable {
    final class Entry: @unchecked Sendable {
        var facts = MemberFacts()
        var dirty = Set<Int64>()
        /// Members read again since the membership tracker last looked (it re-evaluates them).
        var trackerDirty = Set<Int64>()
        /// Saved segments' membership as the tracker keeps it.
        var tracked: [String: TrackedSegment] = [:]
        var builtAt: Timestamp
        init(builtAt: Timestamp) { self.builtAt = builtAt }
    }
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    /// One build or refresh per program at a time.
    private var gates: [String: AsyncGate] = [:]

    func touched(_ keys: [MemberKey]) {
        lock.lock(); defer { lock.unlock() }
        for k in keys { entries[k.program]?.dirty.insert(k.member) }
    }
    func forget(_ program: String) { lock.lock(); entries[program] = nil; lock.unlock() }

    func entry(_ program: String) -> Entry? { lock.lock(); defer { lock.unlock() }; return entries[program] }
    func install(_ program: String, _ e: Entry) { lock.lock(); entries[program] = e; lock.unlock() }
    func gate(_ program: String) -> AsyncGate {
        lock.lock(); defer { lock.unlock() }
        if let g = gates[program] { return g }
        let g = AsyncGate(); gates[program] = g
        return g
    }
    /// Takes the dirty set.
    func takeWork(_ e: Entry) -> Set<Int64> {
        lock.lock(); defer { lock.unlock() }
        let d = e.dirty
        e.dirty = []
        return d
    }
    /// Changes the entry under the registry's lock.
    func update(_ e: Entry, _ body: (Entry) -> Void) { lock.lock(); body(e); lock.unlock() }
    /// Takes the members the tracker has to look at again.
    func takeTrackerDirty(_ e: Entry) -> Set<Int64> {
        lock.lock(); defer { lock.unlock() }
        let d = e.trackerDirty
        e.trackerDirty = []
        return d
    }
    func snapshot(_ e: Entry) -> MemberFacts { lock.lock(); defer { lock.unlock() }; return e.facts }
}

/// A mutex for async code: one holder at a time, others wait in order.
actor AsyncGate {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []
    func lock() async {
        if !busy { busy = true; return }
        await withCheckedContinuation { waiting.append($0) }
    }
    func unlock() {
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }
}

public struct FactsStatus: Codable, Sendable, Equatable {
    public var members: Int
    public var orders: Int
    public var builtAt: Timestamp
    public var buildSeconds: Double?
    public var refreshed: Int
    public var bytes: Int
}

extension Store {
    /// The program's member facts as of now: built on first use, with the members written
    /// since the last call read again.
    public func memberFacts(program: String, now: Timestamp) async throws -> (MemberFacts, FactsStatus) {
        let gate = facts.gate(program)
        await gate.lock()
        do {
            let r = try await currentFacts(program: program, now: now)
            await gate.unlock()
            return r
        } catch {
            await gate.unlock()
            throw error
        }
    }

    /// Builds the program's facts again from the database (after writes by another instance,
    /// or to drop garbage).
    @discardableResult
    public func rebuildFacts(program: String, now: Timestamp) async throws -> FactsStatus {
        facts.forget(program)
        return try await memberFacts(program: program, now: now).1
    }

    func currentFacts(program: String, now: Timestamp) async throws -> (MemberFacts, FactsStatus) {
        let engine = try await self.engine(program)
        var buildSeconds: Double? = nil
        let entry: FactsRegistry.Entry
        if let e = facts.entry(program) {
            entry = e
        } else {
            let started = ContinuousClock.now
            entry = FactsRegistry.Entry(builtAt: now)
            // Registered first, so writes committed during the build are marked dirty and read again.
            facts.install(program, entry)
            var built = MemberFacts()
            var after: Int64 = 0
            while true {
                let rows = try await db.query("SELECT member_id, state, merged_into FROM members WHERE program_id = ? AND member_id > ? ORDER BY member_id LIMIT 5000",
                                              [.text(program), .int(after)])
                guard let last = rows.last else { break }
                // Members merged into others are part of their survivors.
                for r in rows where r["merged_into"] == .null { built.upsert(engine.factsRow(try Coding.state(try r.string("state")), at: now)) }
                after = try last.int("member_id")
            }
            facts.update(entry) { $0.facts = built }
            buildSeconds = (ContinuousClock.now - started).seconds
        }
        // Scores are in the members' states (`syncScores` writes them), so they come with each member.
        let dirty = facts.takeWork(entry)
        if !dirty.isEmpty {
            var rows: [MemberFactsRow] = [], gone: [MemberID] = []
            let ids = Array(dirty)
            for chunk in stride(from: 0, to: ids.count, by: 500) {
                let part = ids[chunk..<min(ids.count, chunk + 500)]
                let marks = Array(repeating: "?", count: part.count).joined(separator: ", ")
                let found = try await db.query("SELECT member_id, state, merged_into FROM members WHERE program_id = ? AND member_id IN (\(marks))",
                                               [.text(program)] + part.map { .int($0) })
                for r in found {
                    if r["merged_into"] != .null { gone.append(MemberID(try r.int("member_id"))); continue }
                    rows.append(engine.factsRow(try Coding.state(try r.string("state")), at: now))
                }
            }
            facts.update(entry) { e in
                for r in rows { e.facts.upsert(r) }
                for m in gone { e.facts.remove(m) }
                e.trackerDirty.formUnion(dirty)
            }
        }
        let f = facts.snapshot(entry)
        return (f, FactsStatus(members: f.count, orders: f.orderRows - f.garbage, builtAt: entry.builtAt, buildSeconds: buildSeconds,
                               refreshed: dirty.count, bytes: f.bytes))
    }
}

extension Store {
    /// Writes members with their states as they are (no events): for benchmarks and for loading
    /// members carried over from another system whose histories were folded elsewhere. Each
    /// state's member id must be new to the program.
    public func loadMemberStates(program: String, _ states: [MemberState], now: Timestamp) async throws {
        _ = try await self.program(program)
        var plans: [WritePlan] = []
        plans.reserveCapacity(states.count)
        for s in states {
            var plan = WritePlan()
            insertMember(&plan, program: program, id: s.memberId, profile: s.profile ?? MemberProfile(), state: s, now: now)
            plans.append(plan)
        }
        let failures = try await db.writeBatch(plans)
        if let i = failures.firstIndex(where: { $0 != nil }) {
            throw StoreError.invalid([FieldError(path: "states[\(i)]", reason: "member \(states[i].memberId) already exists")])
        }
    }
}
