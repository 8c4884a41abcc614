import Foundation
import PatronCore

/// A value bound to or read from SQL. The schema uses only integers and text (JSON is text), so
/// the same statements run on SQLite and PostgreSQL.
public enum SQLValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case int(Int64)
    case text(String)

    public var description: String {
        switch self { case .null: "NULL"; case .int(let i): String(i); case .text(let s): "'\(s)'" }
    }
}

extension SQLValue: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral, ExpressibleByNilLiteral {
    public init(integerLiteral v: Int64) { self = .int(v) }
    public init(stringLiteral v: String) { self = .text(v) }
    public init(nilLiteral: ()) { self = .null }
    public init(_ v: Int64?) { self = v.map { .int($0) } ?? .null }
    public init(_ v: Int?) { self = v.map { .int(Int64($0)) } ?? .null }
    public init(_ v: String?) { self = v.map { .text($0) } ?? .null }
    public init(_ v: Timestamp?) { self = v.map { .int($0.seconds) } ?? .null }
}

/// One result row, read by column position or name.
public struct SQLRow: Sendable {
    public let columns: [String]
    public let values: [SQLValue]
    public init(columns: [String], values: [SQLValue]) { self.columns = columns; self.values = values }

    public subscript(_ name: String) -> SQLValue {
        guard let i = columns.firstIndex(of: name) else { return .null }
        return values[i]
    }
    public func int(_ name: String) throws -> Int64 {
        switch self[name] {
        case .int(let i): return i
        case .text(let s): if let i = Int64(s) { return i }; fallthrough
        default: throw DatabaseError.decoding("column \(name): expected an integer, got \(self[name])")
        }
    }
    public func intOrNil(_ name: String) throws -> Int64? { self[name] == .null ? nil : try int(name) }
    public func string(_ name: String) throws -> String {
        switch self[name] {
        case .text(let s): return s
        case .int(let i): return String(i)
        case .null: throw DatabaseError.decoding("column \(name): expected text, got NULL")
        }
    }
    public func stringOrNil(_ name: String) throws -> String? { self[name] == .null ? nil : try string(name) }
}

public enum SQLDialect: String, Sendable { case sqlite, postgres }

/// What a guarded statement turns into when it does not touch the expected number of rows.
public enum GuardFailure: Error, Sendable, Equatable {
    /// Someone else changed the row since it was read: read again and retry.
    case conflict(String)
    /// A unique fact is already taken (an identity, an order id, an idempotency key).
    case taken(String)
    /// The row to change does not exist.
    case missing(String)
}

/// One statement of a write plan, with `?` placeholders.
public struct Statement: Sendable {
    public var sql: String
    public var binds: [SQLValue]
    /// When set, the statement must change exactly this many rows, or the whole plan rolls back
    /// with `failure`.
    public var expectRows: Int?
    public var failure: GuardFailure?
    public init(_ sql: String, _ binds: [SQLValue] = [], expectRows: Int? = nil, else failure: GuardFailure? = nil) {
        self.sql = sql; self.binds = binds; self.expectRows = expectRows; self.failure = failure
    }
}

/// Writes that take effect together or not at all. The store builds plans from the engine's
/// effects; a backend runs each plan in one transaction (SQLite may group several plans in one
/// commit, each in its own savepoint, so one failing plan does not undo the others).
public struct WritePlan: Sendable {
    public var statements: [Statement] = []
    /// Members whose state the plan writes: told to the segment facts once it has committed.
    public var touched: [MemberKey] = []
    /// What the plan adds to the KPI aggregates (`member_days`, `member_refund_days`): applied to
    /// the KPI days kept in memory once it has committed.
    public var kpiDays: [KPIDayDelta] = []
    /// Per program, the earliest instant of tier or growth history the plan writes (a replay
    /// rewrites it all: `.min`): KPIs of periods that ended before it stand.
    public var historyFrom: [String: Timestamp] = [:]
    public init() {}
    /// Notes that the plan writes the program's tier or growth history from `at` on.
    public mutating func historyChanges(_ program: String, from at: Timestamp) {
        historyFrom[program] = min(historyFrom[program] ?? at, at)
    }
    public mutating func add(_ sql: String, _ binds: [SQLValue] = [], expectRows: Int? = nil, else failure: GuardFailure? = nil) {
        statements.append(Statement(sql, binds, expectRows: expectRows, else: failure))
    }
    public mutating func append(contentsOf other: WritePlan) {
        statements.append(contentsOf: other.statements); touched.append(contentsOf: other.touched); kpiDays.append(contentsOf: other.kpiDays)
        for (p, t) in other.historyFrom { historyChanges(p, from: t) }
    }
    public var isEmpty: Bool { statements.isEmpty }
}

/// One row added to (or added into) the KPI aggregates: orders and revenue, or refunds.
public struct KPIDayDelta: Sendable, Equatable {
    public var program: String
    public var member: Int64
    public var day: Int64
    public var tier: String, channel: String, store: String
    public var orders: Int64 = 0, revenueMinor: Int64 = 0, refundedMinor: Int64 = 0
}

/// A member of a program.
public struct MemberKey: Sendable, Hashable {
    public var program: String
    public var member: Int64
    public init(program: String, member: Int64) { self.program = program; self.member = member }
}

/// A database that tells `committed` the plans it committed (after they have).
struct NotifyingDatabase: Database {
    let inner: any Database
    let committed: @Sendable ([WritePlan]) -> Void
    var dialect: SQLDialect { inner.dialect }
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] { try await inner.query(sql, binds) }
    func queryAside(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] { try await inner.queryAside(sql, binds) }
    func write(_ plan: WritePlan) async throws {
        try await inner.write(plan)
        committed([plan])
    }
    func writeBatch(_ plans: [WritePlan]) async throws -> [GuardFailure?] {
        let results: [GuardFailure?]
        do { results = try await inner.writeBatch(plans) } catch {
            // Some chunks may have committed: tell all (those told re-read or forget, no more).
            committed(plans)
            throw error
        }
        let done = zip(plans, results).compactMap { plan, failure in failure == nil ? plan : nil }
        if !done.isEmpty { committed(done) }
        return results
    }
    func executeScript(_ statements: [String]) async throws { try await inner.executeScript(statements) }
    func close() async throws { try await inner.close() }
}

public enum DatabaseError: Error, Sendable, CustomStringConvertible {
    case connection(String)
    case statement(sql: String, message: String)
    case decoding(String)
    case migration(String)
    public var description: String {
        switch self {
        case .connection(let m): "database connection: \(m)"
        case .statement(let sql, let m): "database statement failed: \(m) [\(sql.prefix(200))]"
        case .decoding(let m): "database row: \(m)"
        case .migration(let m): "migration: \(m)"
        }
    }
}

extension Database {
    public func queryAside(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] { try await query(sql, binds) }
}

/// The one storage interface. Implemented by `SQLiteDatabase` and `PostgresDatabase`.
public protocol Database: Sendable {
    var dialect: SQLDialect { get }
    /// Runs a read statement (`?` placeholders) and returns all rows.
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow]
    /// Runs a long read (an analytics scan: seconds on a large program) where it does not hold
    /// one of the few threads that serve requests (SQLite reads block their thread).
    func queryAside(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow]
    /// Runs the plan in one transaction. Throws `GuardFailure` (plan rolled back) when a guarded
    /// statement changes an unexpected number of rows.
    func write(_ plan: WritePlan) async throws
    /// Runs many plans as fast as the backend can, each atomically; for bulk import. Returns,
    /// per plan, nil or the guard failure that rolled that plan back.
    func writeBatch(_ plans: [WritePlan]) async throws -> [GuardFailure?]
    /// Runs DDL statements (schema migrations) in one transaction.
    func executeScript(_ statements: [String]) async throws
    func close() async throws
}
