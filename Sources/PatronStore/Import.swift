import Foundation
import PatronCore

/// One order of a bulk import, with where it came from for error reports.
public struct ImportOrder: Sendable {
    /// The member by id, by one identity, or by several (the program's `identityPriority` picks
    /// the one that decides; a new member gets them all).
    public enum Who: Sendable, Hashable { case member(MemberID), identity(Identity), identities([Identity]) }
    public var line: Int
    public var who: Who
    public var occurredAt: Timestamp
    public var order: OrderPaid
    public init(line: Int, who: Who, occurredAt: Timestamp, order: OrderPaid) { self.line = line; self.who = who; self.occurredAt = occurredAt; self.order = order }
}

public struct ImportReport: Codable, Sendable, Equatable {
    public struct Rejected: Codable, Sendable, Equatable { public var line: Int; public var reason: String; public init(line: Int, reason: String) { self.line = line; self.reason = reason } }
    public var ordersImported = 0
    public var ordersAlreadyThere = 0
    public var membersCreated = 0
    public var membersTouched = 0
    public var rejected: [Rejected] = []
    /// Rows whose identities belong to different members: the row went to the first by the
    /// program's identity priority; an operator may merge the others into it.
    public struct MergeCandidate: Codable, Sendable, Equatable {
        public var line: Int; public var members: [MemberID]; public var identities: [Identity]
        /// Why the program's `mergeOn` rule did not merge them, when it applied.
        public var note: String? = nil
    }
    public var mergeCandidates: [MergeCandidate] = []
    /// Merges the program's `mergeOn` rule made after the orders were in: a row found one member
    /// by an identity of such a kind and another by some other identity (or the other way round).
    public struct RuleMerge: Codable, Sendable, Equatable { public var line: Int; public var mergeId: Int64; public var survivor: MemberID; public var absorbed: MemberID; public var identity: Identity }
    public var merged: [RuleMerge] = []
    public init() {}
}

extension Store {
    /// Imports orders in bulk through the engine: each member's orders are folded in memory in
    /// time order and written with the member's new state in one plan, many members per commit.
    /// Idempotent per order id: orders already recorded are counted and skipped.
    public func importOrders(program: String, _ orders: [ImportOrder], registerMissing: Bool, now: Timestamp,
                             membersPerBatch: Int = 4000, progress: (@Sendable (Int) -> Void)? = nil) async throws -> ImportReport {
        let engine = try await self.engine(program)
        var report = ImportReport()

        // 1. Content checks, and one order id once.
        var valid: [ImportOrder] = []
        var seen = Set<String>()
        for o in orders {
            let errs = EventValidator.validate(.orderPaid(o.order))
            if !errs.isEmpty { report.rejected.append(.init(line: o.line, reason: errs.map(\.description).joined(separator: "; "))); continue }
            if o.occurredAt > now.adding(seconds: 300) { report.rejected.append(.init(line: o.line, reason: "occurred_at is in the future")); continue }
            if !seen.insert(o.order.orderId).inserted { report.rejected.append(.init(line: o.line, reason: "order \(o.order.orderId) appears twice in the file")); continue }
            valid.append(o)
        }
        // 2. Orders already recorded are skipped.
        let existing = try await existingOrders(program: program, ids: valid.map(\.order.orderId))
        report.ordersAlreadyThere = valid.filter { existing.contains($0.order.orderId) }.count
        valid.removeAll { existing.contains($0.order.orderId) }

        // 3. Who is who.
        let identities = Array(Set(valid.flatMap { o -> [Identity] in
            switch o.who {
            case .identity(let i): [i.normalized]
            case .identities(let xs): xs.map(\.normalized)
            case .member: []
            }
        }))
        let known = try await resolve(program: program, identities)
        let priority = engine.program.latest.definition.identityPriority, mergeOn = engine.program.at(now).definition.mergeOn
        // (line, survivor, absorbed, the identity of a `mergeOn` kind that ties them)
        var ruleMerges: [(Int, MemberID, MemberID, Identity)] = []
        var byMember: [MemberID: [ImportOrder]] = [:]
        var newMembers: [Identity: MemberID] = [:]
        var created: [MemberID: [Identity]] = [:]
        rows: for o in valid {
            let ids: [Identity]
            switch o.who {
            case .member(let id): byMember[id, default: []].append(o); continue rows
            case .identity(let raw): ids = [raw.normalized]
            case .identities(let raws):
                ids = raws.map(\.normalized).sorted { (priority.firstIndex(of: $0.kind) ?? 99) < (priority.firstIndex(of: $1.kind) ?? 99) }
            }
            let (owners, tied) = MemberMerge.ruleTies(ids.compactMap { i in (known[i] ?? newMembers[i]).map { ($0, i) } }, mergeOn: mergeOn)
            if let first = owners.first {
                for (other, proof) in tied { ruleMerges.append((o.line, first, other, proof)) }
                if owners.count > 1 + tied.count {
                    report.mergeCandidates.append(.init(line: o.line, members: owners.filter { m in !tied.contains { $0.member == m } }, identities: ids))
                }
                byMember[first, default: []].append(o)
                continue
            }
            guard registerMissing else {
                report.rejected.append(.init(line: o.line, reason: "no member has " + ids.map { "\($0.kind.rawValue) '\($0.value)'" }.joined(separator: " or ")))
                continue
            }
            if let problem = ids.flatMap({ $0.validate(path: "member") }).first { report.rejected.append(.init(line: o.line, reason: problem.description)); continue }
            let id = memberIds.next(now: now)
            for i in ids { newMembers[i] = id }
            created[id] = ids
            byMember[id, default: []].append(o)
        }

        // 4. Fold and write, a batch of members at a time.
        let memberIds = byMember.keys.sorted()
        var done = 0
        var inFlight: (task: Task<[GuardFailure?], any Error>, orders: [[ImportOrder]], creates: [Bool])? = nil
        // Members in a merge (merged into another, or with others merged into them) take the
        // one-event path, which folds the merged history.
        var oneByOne: [(MemberID, [ImportOrder])] = [], merged = Set<MemberID>()
        for chunkStart in stride(from: 0, to: memberIds.count, by: membersPerBatch) {
            let chunk = Array(memberIds[chunkStart..<min(chunkStart + membersPerBatch, memberIds.count)])
            var loaded = try await loadMembers(program: program, ids: chunk.filter { created[$0] == nil })
            let survivors = try await survivors(program: program, among: Array(loaded.keys))
            for (id, m) in loaded where m.mergedInto != nil || survivors.contains(id) {
                oneByOne.append((id, byMember[id]!))
                merged.insert(id)
                loaded[id] = nil
            }
            var plans: [WritePlan] = []
            var planOrders: [[ImportOrder]] = []
            var planCreates: [Bool] = []
            for id in chunk {
                let mine = byMember[id]!.sorted { ($0.occurredAt, $0.line) < ($1.occurredAt, $1.line) }
                var plan = WritePlan()
                var state: MemberState
                var lastNo: Int64
                var m: LoadedMember? = nil
                var fx = Effects()
                if let identities = created[id] {
                    let registeredAt = mine[0].occurredAt
                    state = engine.start(member: id, registeredAt: registeredAt, effects: &fx)
                    lastNo = 0
                    // The member row is written once, after the fold (below).
                    insertIdentities(&plan, program: program, member: id, identities, now: now)
                    m = LoadedMember(id: id, registeredAt: registeredAt, profile: MemberProfile(), state: state, stateVersion: 1, lastEventNo: 0)
                } else if let lm = loaded[id] {
                    m = lm; state = lm.state; lastNo = lm.lastEventNo
                } else if merged.contains(id) {
                    continue
                } else {
                    for o in mine { report.rejected.append(.init(line: o.line, reason: "member \(id) does not exist")) }
                    continue
                }
                var accepted: [(ImportOrder, MemberEvent, EventOutcome)] = []
                let late = mine[0].occurredAt < state.asOf
                var history: [MemberEvent] = late ? try await events(program: program, member: id) : []
                for o in mine {
                    let e = MemberEvent(id: EventID(lastNo + 1), occurredAt: o.occurredAt, body: .orderPaid(o.order))
                    do {
                        if late {
                            let r = try engine.replay(member: id, registeredAt: m!.registeredAt, events: history + [e], until: m!.state.asOf, validating: e.id, scores: m!.state.scores)
                            state = r.state; fx = r.effects
                            history.append(e)
                            accepted.append((o, e, r.outcomes[e.id]!))
                        } else {
                            var s = state
                            var f = fx
                            let out = try engine.apply(&s, e, effects: &f)
                            state = s; fx = f
                            accepted.append((o, e, out))
                        }
                        lastNo += 1
                    } catch let err as EngineError {
                        report.rejected.append(.init(line: o.line, reason: "\(err)"))
                    }
                }
                if accepted.isEmpty && created[id] == nil { continue }
                if created[id] != nil {
                    insertMember(&plan, program: program, id: id, profile: MemberProfile(), state: state, lastEventNo: lastNo, now: now)
                } else {
                    updateMemberState(&plan, program: program, m: m!, state: state, lastEventNo: lastNo, now: now)
                }
                let p = SQLValue.text(program), mid = SQLValue.int(id.rawValue)
                RowInsert.events.add(&plan, accepted.map { o, e, out in
                    [p, mid, .int(e.id.rawValue), .text(EventKind.orderPaid.rawValue), .int(o.occurredAt.seconds), .int(now.seconds),
                     .text("import:\(o.order.orderId)"), .text(e.body.payloadText), .text(out.jsonText)]
                })
                if late { deleteDerived(&plan, program: program, member: id) }
                let newOrders = accepted.map { o, e, _ in (o.order, e.id, o.occurredAt) }
                writeEffects(&plan, program: program, member: id, fx, newOrders: newOrders, clock: engine.program.latest.clock)
                // Refunds that were waiting for these orders (or that a replay moved).
                try await bookRefunds(&plan, program: program, fx, known: [:], newOrders: newOrders, owner: id,
                                      at: accepted.last?.0.occurredAt ?? now, clock: engine.program.latest.clock)
                writeTags(&plan, program: program, member: id, state: state, fx, replay: late)
                plans.append(plan)
                planOrders.append(accepted.map(\.0))
                planCreates.append(created[id] != nil)
            }
            // The batch is written while the next one is built: the writer thread and the engine
            // work at the same time. Members are split between batches, so batches never touch
            // the same member.
            if let previous = inFlight { account(try await previous.task.value, previous.orders, previous.creates, &report) }
            let db = self.db
            inFlight = (Task { try await db.writeBatch(plans) }, planOrders, planCreates)
            done += chunk.reduce(0) { $0 + byMember[$1]!.count }
            progress?(done)
        }
        if let previous = inFlight { account(try await previous.task.value, previous.orders, previous.creates, &report) }
        for (id, orders) in oneByOne {
            var any = false
            for o in orders.sorted(by: { ($0.occurredAt, $0.line) < ($1.occurredAt, $1.line) }) {
                do {
                    _ = try await record(program: program, member: id, occurredAt: o.occurredAt, body: .orderPaid(o.order),
                                         idempotencyKey: "import:\(o.order.orderId)", requestHash: "import:\(o.order.orderId)", now: now)
                    report.ordersImported += 1; any = true
                } catch {
                    report.rejected.append(.init(line: o.line, reason: "\(error)"))
                }
            }
            if any { report.membersTouched += 1 }
        }
        // 5. Rule merges, once every order is in: each folds both members' histories anew.
        for (line, first, other, identity) in ruleMerges {
            let s = try await survivor(program: program, of: first), a = try await survivor(program: program, of: other)
            guard s != a else { continue }
            do {
                let r = try await mergeMembers(program: program, survivor: s, absorbed: a, by: Self.ruleMergeBy,
                                               reason: "import line \(line): \(identity.kind.rawValue) '\(identity.value)' ties member \(a) to member \(s) (program rule mergeOn)", now: now)
                report.merged.append(.init(line: line, mergeId: r.mergeId, survivor: s, absorbed: a, identity: identity))
            } catch let e as StoreError {
                // e.g. members were merged into the other one: left for an operator.
                report.mergeCandidates.append(.init(line: line, members: [s, a], identities: [identity], note: "not merged by rule: \(e)"))
            }
        }
        report.mergeCandidates.sort { $0.line < $1.line }
        report.rejected.sort { $0.line < $1.line }
        return report
    }

    /// Which of `ids` have other members merged into them.
    func survivors(program: String, among ids: [MemberID]) async throws -> Set<MemberID> {
        var out = Set<MemberID>()
        for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) where !chunk.isEmpty {
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
            for r in try await db.query("SELECT DISTINCT survivor_id FROM member_merges WHERE program_id = ? AND undone_at IS NULL AND survivor_id IN (\(marks))",
                                        [.text(program)] + chunk.map { .int($0.rawValue) }) {
                out.insert(MemberID(try r.int("survivor_id")))
            }
        }
        return out
    }

    private func account(_ results: [GuardFailure?], _ planOrders: [[ImportOrder]], _ planCreates: [Bool], _ report: inout ImportReport) {
        for ((failure, os), creates) in zip(zip(results, planOrders), planCreates) {
            if let failure {
                for o in os { report.rejected.append(.init(line: o.line, reason: "not written: \(failure) (another writer changed the member, or the order id belongs to another member); import again")) }
            } else {
                report.ordersImported += os.count
                report.membersTouched += 1
                if creates { report.membersCreated += 1 }
            }
        }
    }

    func existingOrders(program: String, ids: [String]) async throws -> Set<String> {
        var found = Set<String>()
        for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
            let rows = try await db.query("SELECT order_id FROM orders WHERE program_id = ? AND order_id IN (\(marks))", [.text(program)] + chunk.map { .text($0) })
            for r in rows { found.insert(try r.string("order_id")) }
        }
        return found
    }

    func resolve(program: String, _ identities: [Identity]) async throws -> [Identity: MemberID] {
        var out: [Identity: MemberID] = [:]
        let byKind = Dictionary(grouping: identities, by: \.kind)
        for (kind, list) in byKind {
            for chunk in stride(from: 0, to: list.count, by: 500).map({ Array(list[$0..<min($0 + 500, list.count)]) }) {
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
                let rows = try await db.query("SELECT value, member_id FROM identities WHERE program_id = ? AND kind = ? AND value IN (\(marks))",
                                              [.text(program), .text(kind.rawValue)] + chunk.map { .text($0.value) })
                for r in rows { out[Identity(kind: kind, value: try r.string("value"))] = MemberID(try r.int("member_id")) }
            }
        }
        return out
    }

    func loadMembers(program: String, ids: [MemberID]) async throws -> [MemberID: LoadedMember] {
        var out: [MemberID: LoadedMember] = [:]
        for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
            let rows = try await db.query("SELECT \(LoadedMember.columns) FROM members WHERE program_id = ? AND member_id IN (\(marks))",
                                          [.text(program)] + chunk.map { .int($0.rawValue) })
            for r in rows {
                let m = try LoadedMember(row: r)
                out[m.id] = m
            }
        }
        return out
    }
}
