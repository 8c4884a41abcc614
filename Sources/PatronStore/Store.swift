import Crypto
import Foundation
import Logging
import PatronCore

/// Why the store could not do what was asked. Mapped to HTTP by the server only.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    case programNotFound(String)
    case memberNotFound(MemberID)
    case identityNotFound(Identity)
    case identityTaken(Identity)
    case orderTaken(String)
    case idempotencyMismatch(String)
    case invalid([FieldError])
    case rule(EngineError)
    case busy(String)
    /// No grant of the program has this write-off code.
    case codeNotFound(String)
    /// The mall item has less stock than the exchange asks for.
    case outOfStock(String)
    /// A fulfilment step that does not follow from the exchange's status.
    case exchangeNotOpen(String)
    case segmentNotFound(String)
    /// The member was merged into another: write to the survivor (or undo the merge).
    case memberMerged(MemberID, into: MemberID)
    /// Members were merged into this one; it cannot itself be merged away until they are unmerged.
    case hasMergedMembers(MemberID)
    case mergeNotFound(Int64)
    case mergeUndone(Int64)
    /// The program's `mergeUndoDays` have passed since the merge.
    case mergeTooOld(Int64, days: Int)

    public var description: String {
        switch self {
        case .programNotFound(let p): "program '\(p)' does not exist"
        case .memberNotFound(let m): "member \(m) does not exist in this program"
        case .identityNotFound(let i): "no member has \(i.kind.rawValue) '\(i.value)'"
        case .identityTaken(let i): "\(i.kind.rawValue) '\(i.value)' already belongs to a member of this program"
        case .orderTaken(let o): "order '\(o)' is already recorded for another member"
        case .idempotencyMismatch(let k): "Idempotency-Key '\(k)' was used before with a different request"
        case .invalid(let e): e.map(\.description).joined(separator: "; ")
        case .rule(let e): "\(e)"
        case .busy(let m): m
        case .codeNotFound(let c): "no benefit of this program has the code '\(c)'"
        case .outOfStock(let i): "item '\(i)' is out of stock"
        case .exchangeNotOpen(let m): m
        case .segmentNotFound(let s): "segment '\(s)' does not exist in this program"
        case .memberMerged(let m, let into): "member \(m) was merged into member \(into)"
        case .hasMergedMembers(let m): "other members were merged into member \(m); unmerge them first, or merge them into the survivor directly"
        case .mergeNotFound(let id): "merge \(id) does not exist in this program"
        case .mergeUndone(let id): "merge \(id) was already undone"
        case .mergeTooOld(let id, let days): "merge \(id) is more than \(days) days old (the program's mergeUndoDays); it can no longer be undone"
        }
    }
}

enum Coding {
    static let encoder: JSONEncoder = { let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]; return e }()
    static let decoder = JSONDecoder()
    static func json<T: Encodable>(_ v: T) -> String { String(decoding: try! encoder.encode(v), as: UTF8.self) }
    static func decode<T: Decodable>(_ t: T.Type, _ s: String) throws -> T { try decoder.decode(t, from: Data(s.utf8)) }

    /// Member state snapshots: `StateCodec`'s binary form in base64 behind a "b1:" tag (JSON is
    /// still read, for snapshots written before the codec).
    static func state(_ s: MemberState) -> String { "b1:" + Data(StateCodec.encode(s)).base64EncodedString() }
    static func order(_ o: OrderRecord) -> String { "b1:" + Data(StateCodec.encode(order: o)).base64EncodedString() }
    static func order(_ text: String) throws -> OrderRecord {
        guard text.hasPrefix("b1:"), let d = Data(base64Encoded: String(text.dropFirst(3))) else { throw DatabaseError.decoding("order record is not b1:base64") }
        return try StateCodec.decodeOrder([UInt8](d))
    }
    static func state(_ text: String) throws -> MemberState {
        if text.hasPrefix("b1:") {
            guard let d = Data(base64Encoded: String(text.dropFirst(3))) else { throw DatabaseError.decoding("member state is not base64") }
            return try StateCodec.decode([UInt8](d))
        }
        return try decode(MemberState.self, text)
    }
}

/// Patron's storage: programs, keys, members, events and their effects, on one `Database`.
public final class Store: Sendable {
    public let db: any Database
    let programs = ProgramCache()
    let keys = KeyCache()
    let memberIds = MemberIDGenerator()
    let paces = PaceCache()
    let codeMakers = CodeMakers()
    let logger: Logger
    /// How often a write is retried when another write to the same member got there first.
    static let maxAttempts = 64

    /// Segment facts per program, kept in memory once a segment is previewed or saved.
    let facts: FactsRegistry
    /// The KPI days per program, kept in memory once KPIs are asked for (SQLite only).
    let kpiDays: KPIRegistry
    /// The SQLite database under `db`, when it is one: KPI days are built and kept on its writer thread.
    let sqlite: SQLiteDatabase?

    public init(db: any Database, logger: Logger = Logger(label: "patron.store")) {
        let facts = FactsRegistry()
        self.facts = facts
        // Each store hears its own commits (a database taken from another store is unwrapped first).
        let inner = (db as? NotifyingDatabase)?.inner ?? db
        let kpiDays = KPIRegistry()
        self.db = NotifyingDatabase(inner: inner, committed: { plans in
            let touched = plans.flatMap(\.touched)
            if !touched.isEmpty { facts.touched(touched) }
            kpiDays.historyChanged(plans)
        })
        self.kpiDays = kpiDays
        self.sqlite = inner as? SQLiteDatabase
        sqlite?.observeCommits { kpiDays.committed($0) }
        self.logger = logger
    }

    /// Opens `postgres://…` with PostgreSQL and anything else as a SQLite file path
    /// (`sqlite://path` and `file:path` are accepted too).
    public static func open(_ url: String, synchronousFull: Bool = false, logger: Logger = Logger(label: "patron.store")) async throws -> Store {
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return Store(db: try PostgresDatabase(url: url, logger: logger), logger: logger)
        }
        var path = url
        for prefix in ["sqlite://", "file:"] where path.hasPrefix(prefix) { path = String(path.dropFirst(prefix.count)) }
        return Store(db: try SQLiteDatabase(path: path, synchronous: synchronousFull ? .full : .normal), logger: logger)
    }

    public func close() async throws { try await db.close() }

    // MARK: migrations

    /// Brings the database to the current schema; returns the versions applied now. Stops at
    /// version `upTo` when given (tests stop earlier to check that a migration carries older
    /// data over).
    @discardableResult
    public func migrate(upTo: Int64 = .max) async throws -> [Int64] {
        try await db.executeScript(["CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"])
        let applied = Set(try await db.query("SELECT version FROM schema_migrations", []).map { try $0.int("version") })
        var done: [Int64] = []
        for m in Schema.migrations where !applied.contains(m.version) && m.version <= upTo {
            let now = Int64(Date().timeIntervalSince1970)
            try await db.executeScript(m.statements + ["INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(m.version), '\(m.name)', \(now))"])
            done.append(m.version)
        }
        return done
    }

    public func schemaVersion() async throws -> Int64? {
        let rows = try await db.query("SELECT MAX(version) AS v FROM schema_migrations", [])
        return try rows.first?.intOrNil("v")
    }

    // MARK: idempotency

    public struct Replayed: Sendable {
        public var status: Int
        public var body: String
    }

    /// The stored answer for an idempotency key, if the same request was made before.
    func idempotent(_ program: String, _ key: String?, hash: String) async throws -> Replayed? {
        guard let key else { return nil }
        let rows = try await db.query("SELECT request_hash, status, response FROM idempotency WHERE program_id = ? AND idem_key = ?", [.text(program), .text(key)])
        guard let r = rows.first else { return nil }
        guard try r.string("request_hash") == hash else { throw StoreError.idempotencyMismatch(key) }
        return Replayed(status: Int(try r.int("status")), body: try r.string("response"))
    }

    func rememberAnswer(_ plan: inout WritePlan, program: String, key: String?, hash: String, status: Int, response: String, now: Timestamp) {
        guard let key else { return }
        plan.add("INSERT INTO idempotency (program_id, idem_key, request_hash, status, response, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                 [.text(program), .text(key), .text(hash), .int(Int64(status)), .text(response), .int(now.seconds)],
                 expectRows: 1, else: .taken("idempotency"))
    }

    public static func hash(_ parts: String...) -> String {
        var h = SHA256()
        for p in parts { h.update(data: Data(p.utf8)); h.update(data: Data([0])) }
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](); out.reserveCapacity(64)
        for b in h.finalize() { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Program versions by program. The newest version number is checked again at most once a
/// second, so a version stored by another instance is seen within a second.
final class ProgramCache: @unchecked Sendable {
    private let lock = NSLock()
    private var cache: [String: (version: Int64, versions: ProgramVersions, checked: ContinuousClock.Instant)] = [:]
    static let recheck = Duration.seconds(1)
    func fresh(_ key: String) -> ProgramVersions? {
        lock.lock(); defer { lock.unlock() }
        guard let c = cache[key], ContinuousClock.now - c.checked < Self.recheck else { return nil }
        return c.versions
    }
    func get(_ key: String, latest: Int64) -> ProgramVersions? {
        lock.lock(); defer { lock.unlock() }
        guard let c = cache[key], c.version == latest else { return nil }
        cache[key]!.checked = .now
        return c.versions
    }
    func put(_ key: String, latest: Int64, _ v: ProgramVersions) { lock.lock(); cache[key] = (latest, v, .now); lock.unlock() }
    func forget(_ key: String) { lock.lock(); cache[key] = nil; lock.unlock() }
}

/// The program's average growth pace (for the upgrade forecast of members with little history).
/// Computed in the background (the first requests go without it), served for ten minutes, and
/// refreshed in the background while the old value is still served: no request waits on it.
final class PaceCache: @unchecked Sendable {
    private let lock = NSLock()
    private var cache: [String: (pace: Int64?, until: ContinuousClock.Instant)] = [:]
    private var inFlight: [String: Task<Int64?, any Error>] = [:]
    static let ttl = Duration.seconds(600)

    func value(_ program: String, compute: @escaping @Sendable () async throws -> Int64?) -> Int64? {
        lock.withLock {
            let refresh = { Task { [weak self] () async throws -> Int64? in
                let v = try await compute()
                self?.store(program, v)
                return v
            } }
            if let c = cache[program] {
                if ContinuousClock.now >= c.until && inFlight[program] == nil { inFlight[program] = refresh() }
                return c.pace
            }
            // Nothing yet: start computing, and answer without the average meanwhile rather than make
            // requests wait on an aggregate over the whole program.
            if inFlight[program] == nil { inFlight[program] = refresh() }
            return nil
        }
    }

    private func store(_ program: String, _ pace: Int64?) {
        lock.withLock { cache[program] = (pace, .now + Self.ttl); inFlight[program] = nil }
    }
}

/// Member ids that grow with time: seconds since 2024 in the high bits, a counter (from a random
/// start) in the low 21, within 2^53 so JavaScript clients read them exactly. New members' rows
/// then land at the end of each (program_id, member_id) index instead of at random pages, which
/// keeps bulk writes local. Unique across instances with high probability; the insert is guarded.
final class MemberIDGenerator: @unchecked Sendable {
    private let lock = NSLock()
    private var counter = UInt64.random(in: 0..<(1 << 21))
    static let epoch: Int64 = 1_704_067_200 // 2024-01-01T00:00:00Z
    func next(now: Timestamp) -> MemberID {
        lock.lock(); defer { lock.unlock() }
        counter = (counter + 1) & ((1 << 21) - 1)
        let seconds = max(1, min(now.seconds - Self.epoch, (1 << 32) - 1))
        return MemberID(seconds << 21 | Int64(counter))
    }
}

/// Authenticated API keys for a few seconds, so a request does not hash and look up its key
/// each time. A revoked key stops working here at once and in other instances within `ttl`.
final class KeyCache: @unchecked Sendable {
    private let lock = NSLock()
    private var cache: [String: (key: APIKey, until: ContinuousClock.Instant)] = [:]
    static let ttl = Duration.seconds(10)
    func get(_ token: String) -> APIKey? {
        lock.lock(); defer { lock.unlock() }
        guard let c = cache[token], ContinuousClock.now < c.until else { return nil }
        return c.key
    }
    func put(_ token: String, _ key: APIKey) {
        lock.lock(); defer { lock.unlock() }
        if cache.count > 10_000 { cache.removeAll() }
        cache[token] = (key, .now + Self.ttl)
    }
    func forget(keyId: String) { lock.lock(); cache = cache.filter { $0.value.key.keyId != keyId }; lock.unlock() }
}
