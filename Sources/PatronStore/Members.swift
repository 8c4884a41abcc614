import Foundation
import PatronCore

public struct MemberRecord: Codable, Sendable, Equatable {
    public var id: MemberID
    public var program: String
    public var registeredAt: Timestamp
    public var identities: [Identity]
    public var profile: MemberProfile
    public var standing: MemberStanding
    /// Set when the member was merged into another: the survivor (whose standing this is).
    public var mergedInto: MemberID? = nil
}

public struct RegisterMember: Codable, Sendable, Equatable {
    public var identities: [Identity]
    public var profile: MemberProfile?
    public var registeredAt: Timestamp?
    public init(identities: [Identity], profile: MemberProfile? = nil, registeredAt: Timestamp? = nil) {
        self.identities = identities; self.profile = profile; self.registeredAt = registeredAt
    }
}

public struct UpdateMember: Codable, Sendable, Equatable {
    public var profile: MemberProfile?
    public var addIdentities: [Identity]?
    public init(profile: MemberProfile? = nil, addIdentities: [Identity]? = nil) { self.profile = profile; self.addIdentities = addIdentities }
}

public struct Page<T: Codable & Sendable>: Codable, Sendable {
    public var items: [T]
    /// Pass as `cursor` to get the next page; absent on the last page.
    public var nextCursor: String?
}

/// What a stored member row holds for the engine.
struct LoadedMember {
    var id: MemberID
    var registeredAt: Timestamp
    var profile: MemberProfile
    var state: MemberState
    var stateVersion: Int64
    var lastEventNo: Int64
    /// Set when the member was merged into another: the survivor, whose state holds theirs.
    var mergedInto: MemberID? = nil
    /// The stored values of the member row's indexed state columns, when read with it: a state
    /// write sets them only when they change, so the indexes on them (`members_tier`,
    /// `members_due`) are not rewritten by every event.
    var indexed: IndexedColumns? = nil

    struct IndexedColumns: Equatable {
        var tierId: String
        var nextDueAt: Int64?
        init(tierId: String, nextDueAt: Int64?) { self.tierId = tierId; self.nextDueAt = nextDueAt }
        init(_ r: SQLRow) throws { self.init(tierId: try r.string("tier_id"), nextDueAt: try r.intOrNil("next_due_at")) }
        init(_ s: MemberState) { self.init(tierId: s.tier.tierId, nextDueAt: s.nextDueAt?.seconds) }
    }
}

extension LoadedMember {
    /// The members columns `init(row:)` reads.
    static let columns = "member_id, registered_at, profile, state, state_version, last_event_no, merged_into, tier_id, next_due_at"

    /// A member as its row (`columns`) holds it; `state` when already decoded from it.
    init(row r: SQLRow, state: MemberState? = nil) throws {
        self.init(id: MemberID(try r.int("member_id")), registeredAt: Timestamp(seconds: try r.int("registered_at")),
                  profile: try Coding.decode(MemberProfile.self, try r.string("profile")), state: try state ?? Coding.state(try r.string("state")),
                  stateVersion: try r.int("state_version"), lastEventNo: try r.int("last_event_no"),
                  mergedInto: try r.intOrNil("merged_into").map(MemberID.init), indexed: try IndexedColumns(r))
    }
}

extension Optional {
    func asyncMap<T>(_ f: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let x = self else { return nil }
        return try await f(x)
    }
}

extension Store {
    static let maxIdentities = 20

    public func registerMember(program: String, _ req: RegisterMember, idempotencyKey: String?, requestHash: String, now: Timestamp) async throws -> (record: MemberRecord, replayed: Bool) {
        let versions = try await self.program(program)
        var errors: [FieldError] = []
        if req.identities.isEmpty { errors.append(FieldError(path: "identities", reason: "must list at least one identity (phone, email, card, app, wechat or store_customer)")) }
        if req.identities.count > Self.maxIdentities { errors.append(FieldError(path: "identities", reason: "has \(req.identities.count) items; at most \(Self.maxIdentities) are allowed")) }
        let ids = req.identities.map(\.normalized)
        for (i, id) in req.identities.enumerated() { errors += id.validate(path: "identities[\(i)]") }
        if Set(ids).count != ids.count { errors.append(FieldError(path: "identities", reason: "lists the same identity twice")) }
        let v = versions.at(now)
        errors += (req.profile ?? MemberProfile()).validate(path: "profile", today: v.clock.date(now))
        let registeredAt = req.registeredAt ?? now
        if registeredAt > now.adding(seconds: 300) { errors.append(FieldError(path: "registeredAt", reason: "is in the future")) }
        guard errors.isEmpty else { throw StoreError.invalid(errors) }

        for _ in 0..<Self.maxAttempts {
            if let r = try await idempotent(program, idempotencyKey, hash: requestHash) {
                return (try Coding.decode(MemberRecord.self, r.body), true)
            }
            let id = memberIds.next(now: now)
            let engine = try await self.engine(program)
            var fx = Effects()
            var state = engine.start(member: id, registeredAt: registeredAt, effects: &fx)
            if registeredAt < now { engine.advance(&state, to: now, effects: &fx) }
            let profile = req.profile ?? MemberProfile()
            var plan = WritePlan()
            insertMember(&plan, program: program, id: id, profile: profile, state: state, now: now)
            insertIdentities(&plan, program: program, member: id, ids, now: now)
            if profile != MemberProfile() {
                let m = LoadedMember(id: id, registeredAt: registeredAt, profile: profile, state: state, stateVersion: 1, lastEventNo: 0, indexed: .init(state))
                state = try appendEvent(&plan, program: program, m: m, engine: engine, body: .profileSet(ProfileSet(profile: profile)), now: now, fx: &fx)
            }
            writeEffects(&plan, program: program, member: id, fx)
            writeTags(&plan, program: program, member: id, state: state, fx, replay: false)
            let record = MemberRecord(id: id, program: program, registeredAt: registeredAt, identities: ids, profile: profile, standing: engine.standing(state, now: now))
            rememberAnswer(&plan, program: program, key: idempotencyKey, hash: requestHash, status: 201, response: Coding.json(record), now: now)
            if try await writeMemberPlan(plan) { return (record, false) }
        }
        throw StoreError.busy("could not register the member; try again")
    }

    /// Identities belong to one member of a program: a taken one fails the plan with a
    /// `taken("identity:<kind>:<value>")` that `takenIdentity` reads back.
    func insertIdentities(_ plan: inout WritePlan, program: String, member: MemberID, _ ids: [Identity], now: Timestamp) {
        for ident in ids {
            plan.add("INSERT INTO identities (program_id, kind, value, member_id, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     [.text(program), .text(ident.kind.rawValue), .text(ident.value), .int(member.rawValue), .int(now.seconds)],
                     expectRows: 1, else: .taken("identity:\(ident.kind.rawValue):\(ident.value)"))
        }
    }

    /// Writes a member plan: true when written, false when a concurrent write got there first and
    /// the caller should read again and retry. A taken identity is the caller's error.
    func writeMemberPlan(_ plan: WritePlan) async throws -> Bool {
        do {
            try await db.write(plan)
            return true
        } catch let GuardFailure.taken(what) {
            if let taken = Self.takenIdentity(what) { throw StoreError.identityTaken(taken) }
            return false
        } catch GuardFailure.conflict { return false }
    }

    static func takenIdentity(_ what: String) -> Identity? {
        let parts = what.split(separator: ":", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "identity", let kind = IdentityKind(rawValue: parts[1]) else { return nil }
        return Identity(kind: kind, value: parts[2])
    }

    /// `lastEventNo`: the events the state has folded (a member created by an import is written
    /// once, with its orders folded in). The point columns are as of now or the state's instant,
    /// whichever is later, as `updateMemberState` writes them.
    func insertMember(_ plan: inout WritePlan, program: String, id: MemberID, profile: MemberProfile, state: MemberState, lastEventNo: Int64 = 0, now: Timestamp) {
        let t = max(now, state.asOf)
        plan.touched.append(MemberKey(program: program, member: id.rawValue))
        plan.add("""
            INSERT INTO members (program_id, member_id, registered_at, name, profile, tier_id, balance, points_available, points_pending, growth_total,
              state, state_version, last_event_no, as_of, next_due_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?) ON CONFLICT DO NOTHING
            """, [.text(program), .int(id.rawValue), .int(state.registeredAt.seconds), SQLValue(profile.name), .text(Coding.json(profile)),
                  .text(state.tier.tierId), .int(state.balance), .int(state.available(at: t)), .int(state.pending(at: t)), .int(state.growthTotal),
                  .text(Coding.state(state)), .int(lastEventNo), .int(state.asOf.seconds), SQLValue(state.nextDueAt), .int(now.seconds)],
            expectRows: 1, else: .taken("member id"))
    }

    func loadMember(program: String, id: MemberID) async throws -> LoadedMember {
        let rows = try await db.query("SELECT \(LoadedMember.columns) FROM members WHERE program_id = ? AND member_id = ?", [.text(program), .int(id.rawValue)])
        guard let r = rows.first else { throw StoreError.memberNotFound(id) }
        return try LoadedMember(row: r)
    }

    func identities(program: String, id: MemberID) async throws -> [Identity] {
        try await db.query("SELECT kind, value FROM identities WHERE program_id = ? AND member_id = ? ORDER BY kind, value", [.text(program), .int(id.rawValue)]).compactMap { r in
            IdentityKind(rawValue: try r.string("kind")).map { k in Identity(kind: k, value: (try? r.string("value")) ?? "") }
        }
    }

    public func member(program: String, id: MemberID, now: Timestamp) async throws -> MemberRecord {
        let versions = try await self.program(program)
        let m = try await loadMember(program: program, id: id)
        // A merged member stands as the survivor does.
        let state = try await m.mergedInto.asyncMap { try await loadMember(program: program, id: $0).state } ?? m.state
        return MemberRecord(id: id, program: program, registeredAt: m.registeredAt, identities: try await identities(program: program, id: id),
                            profile: m.profile, standing: Engine(program: versions).standing(state, now: now, programPaceMilli: programPace(program, now: now)),
                            mergedInto: m.mergedInto)
    }

    /// Growth per day × 1000 of the program's members who earned any in the last 90 days.
    public func programPace(_ program: String, now: Timestamp) -> Int64? {
        let db = self.db
        return paces.value(program) {
            let rows = try await db.query("""
                SELECT SUM(growth) AS total, COUNT(DISTINCT member_id) AS members FROM growth_entries
                WHERE program_id = ? AND counts_at > ? AND counts_at <= ?
                """, [.text(program), .int(now.adding(days: -Engine.paceDays).seconds), .int(now.seconds)])
            guard let r = rows.first, let total = try r.intOrNil("total"), let n = try r.intOrNil("members"), n > 0, total > 0 else { return nil }
            return total * 1000 / (n * Int64(Engine.paceDays))
        }
    }

    public func memberId(program: String, identity: Identity) async throws -> MemberID {
        let n = identity.normalized
        let rows = try await db.query("SELECT member_id FROM identities WHERE program_id = ? AND kind = ? AND value = ?",
                                      [.text(program), .text(n.kind.rawValue), .text(n.value)])
        guard let r = rows.first else { throw StoreError.identityNotFound(n) }
        return MemberID(try r.int("member_id"))
    }

    public func updateMember(program: String, id: MemberID, _ req: UpdateMember, idempotencyKey: String?, requestHash: String, now: Timestamp) async throws -> (record: MemberRecord, replayed: Bool) {
        let versions = try await self.program(program)
        var errors: [FieldError] = []
        let adds = (req.addIdentities ?? []).map(\.normalized)
        for (i, id) in (req.addIdentities ?? []).enumerated() { errors += id.validate(path: "addIdentities[\(i)]") }
        if adds.count > Self.maxIdentities { errors.append(FieldError(path: "addIdentities", reason: "at most \(Self.maxIdentities) at once")) }
        if let p = req.profile { errors += p.validate(path: "profile", today: versions.at(now).clock.date(now)) }
        if req.profile == nil && adds.isEmpty { errors.append(FieldError(path: "", reason: "nothing to change: give profile fields or addIdentities")) }
        guard errors.isEmpty else { throw StoreError.invalid(errors) }
        // An identity of a kind the program merges on (`mergeOn`), held by another member: that
        // member is merged into this one first (a rule merge), and the identity finds this member.
        let mergeOn = versions.at(now).definition.mergeOn
        if !mergeOn.isEmpty, !adds.isEmpty {
            // A retried request merges nothing again.
            if let r = try await idempotent(program, idempotencyKey, hash: requestHash) { return (try Coding.decode(MemberRecord.self, r.body), true) }
            let me = try await loadMember(program: program, id: id)
            if let into = me.mergedInto { throw StoreError.memberMerged(id, into: into) }
            for (ident, owner) in try await resolve(program: program, adds.filter { mergeOn.contains($0.kind) }).sorted(by: { $0.value.rawValue < $1.value.rawValue }) {
                let other = try await survivor(program: program, of: owner)
                guard other != id else { continue }
                _ = try await mergeMembers(program: program, survivor: id, absorbed: other, by: Self.ruleMergeBy,
                                           reason: "\(ident.kind.rawValue) '\(ident.value)' was added to member \(id) and belongs to member \(other) (program rule mergeOn)", now: now)
            }
        }
        for _ in 0..<Self.maxAttempts {
            if let r = try await idempotent(program, idempotencyKey, hash: requestHash) { return (try Coding.decode(MemberRecord.self, r.body), true) }
            let m = try await loadMember(program: program, id: id)
            if let into = m.mergedInto { throw StoreError.memberMerged(id, into: into) }
            let current = try await identities(program: program, id: id)
            let profile = req.profile.map { m.profile.merged(with: $0) } ?? m.profile
            // Identities that already find this member (through a member merged into them) are not added again.
            var held = Set<Identity>()
            for (ident, owner) in try await resolve(program: program, adds) where owner != id {
                if try await survivor(program: program, of: owner) == id { held.insert(ident) } else { throw StoreError.identityTaken(ident) }
            }
            let newIds = adds.filter { !current.contains($0) && !held.contains($0) }
            if current.count + newIds.count > Self.maxIdentities {
                throw StoreError.invalid([FieldError(path: "addIdentities", reason: "a member has at most \(Self.maxIdentities) identities")])
            }
            var plan = WritePlan()
            var state = m.state
            if profile != m.profile {
                // The profile feeds the birthday gift and conditions: it goes into the member's history as an event.
                let engine = try await self.engine(program)
                var fx = Effects()
                state = try appendEvent(&plan, program: program, m: m, engine: engine, body: .profileSet(ProfileSet(profile: profile)), now: now, fx: &fx)
                writeEffects(&plan, program: program, member: id, fx)
                writeTags(&plan, program: program, member: id, state: state, fx, replay: false)
                plan.add("UPDATE members SET profile = ?, name = ? WHERE program_id = ? AND member_id = ?",
                         [.text(Coding.json(profile)), SQLValue(profile.name), .text(program), .int(id.rawValue)])
            } else {
                plan.add("UPDATE members SET profile = ?, name = ?, state_version = state_version + 1, updated_at = ? WHERE program_id = ? AND member_id = ? AND state_version = ?",
                         [.text(Coding.json(profile)), SQLValue(profile.name), .int(now.seconds), .text(program), .int(id.rawValue), .int(m.stateVersion)],
                         expectRows: 1, else: .conflict("member"))
            }
            insertIdentities(&plan, program: program, member: id, newIds, now: now)
            let record = MemberRecord(id: id, program: program, registeredAt: m.registeredAt, identities: (current + newIds).sorted { ($0.kind.rawValue, $0.value) < ($1.kind.rawValue, $1.value) },
                                      profile: profile, standing: Engine(program: versions).standing(state, now: now))
            rememberAnswer(&plan, program: program, key: idempotencyKey, hash: requestHash, status: 200, response: Coding.json(record), now: now)
            if try await writeMemberPlan(plan) { return (record, false) }
        }
        throw StoreError.busy("the member is being changed by others; try again")
    }

    public struct MemberSummary: Codable, Sendable, Equatable {
        public var id: MemberID
        public var name: String?
        public var tier: String
        public var balance: Int64
        public var pointsAvailable: Int64
        public var growthTotal: Int64
        public var registeredAt: Timestamp
    }

    /// Members with at least `points` spendable now, in id order.
    public func membersWithPoints(program: String, atLeast points: Int64, limit: Int) async throws -> [MemberSummary] {
        try await db.query("""
            SELECT member_id, name, tier_id, balance, points_available, growth_total, registered_at FROM members
            WHERE program_id = ? AND points_available >= ? ORDER BY member_id LIMIT ?
            """, [.text(program), .int(points), .int(Int64(limit))]).map {
            MemberSummary(id: MemberID(try $0.int("member_id")), name: try $0.stringOrNil("name"), tier: try $0.string("tier_id"), balance: try $0.int("balance"),
                          pointsAvailable: try $0.int("points_available"), growthTotal: try $0.int("growth_total"), registeredAt: Timestamp(seconds: try $0.int("registered_at")))
        }
    }

    /// Members in id order, a page at a time; optionally of one tier or with a name starting so.
    /// Members merged into others are left out (their survivors stand for them).
    public func listMembers(program: String, cursor: String?, limit: Int, tier: String? = nil, namePrefix: String? = nil) async throws -> Page<MemberSummary> {
        _ = try await self.program(program)
        var after: Int64 = 0
        if let cursor {
            guard let d = Data(base64Encoded: cursor), let s = String(data: d, encoding: .utf8), s.hasPrefix("m:"), let v = Int64(s.dropFirst(2)) else {
                throw StoreError.invalid([FieldError(path: "cursor", reason: "is not a cursor this API returned")])
            }
            after = v
        }
        var sql = "SELECT member_id, name, tier_id, balance, points_available, growth_total, registered_at FROM members WHERE program_id = ? AND member_id > ? AND merged_into IS NULL"
        var binds: [SQLValue] = [.text(program), .int(after)]
        if let tier { sql += " AND tier_id = ?"; binds.append(.text(tier)) }
        if let namePrefix {
            let escaped = namePrefix.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
            sql += " AND name LIKE ? ESCAPE '\\'"; binds.append(.text(escaped + "%"))
        }
        sql += " ORDER BY member_id LIMIT ?"
        binds.append(.int(Int64(limit + 1)))
        let rows = try await db.query(sql, binds)
        let items = try rows.prefix(limit).map {
            MemberSummary(id: MemberID(try $0.int("member_id")), name: try $0.stringOrNil("name"), tier: try $0.string("tier_id"), balance: try $0.int("balance"),
                          pointsAvailable: try $0.int("points_available"), growthTotal: try $0.int("growth_total"), registeredAt: Timestamp(seconds: try $0.int("registered_at")))
        }
        let next = rows.count > limit ? items.last.map { Data("m:\($0.id.rawValue)".utf8).base64EncodedString() } : nil
        return Page(items: items, nextCursor: next)
    }
}
