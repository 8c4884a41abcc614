import Foundation
import Logging
import NIOCore
import PostgresNIO

/// PostgreSQL over PostgresNIO's `PostgresClient` (a connection pool).
///
/// Lifecycle: `init` starts the client's `run()` in a background `Task` that the instance owns;
/// `close()` cancels it and waits until the pool has closed its connections. Always call
/// `close()` (`deinit` only cancels the task, without waiting).
///
/// SQL uses `?` placeholders, rewritten to `$1, $2, ...` (not inside quoted literals,
/// identifiers or comments); the rewrite is cached per SQL string. TLS is not used: `sslmode`
/// may be absent, `disable`, `allow` or `prefer`.
///
/// Writes run at READ COMMITTED, one transaction per plan on one pooled connection. Guarded
/// statements compare `expectRows` with the row count of the command tag (`UPDATE 1`,
/// `INSERT 0 1`, `SELECT 3`...). A unique violation (23505) raised by a guarded statement throws
/// its `failure`, as on SQLite; unguarded, it is a `DatabaseError.statement`. Serialization
/// failures and deadlocks (40001, 40P01) throw `GuardFailure.conflict`: read again and retry.
public final class PostgresDatabase: Database {
    public let dialect: SQLDialect = .postgres
    private let client: PostgresClient
    private let runTask: Task<Void, Never>
    private let logger: Logger
    private let placeholders = PlaceholderCache()
    private let state = CloseState()

    static let maxBatchChunk = 1000

    /// - Parameters:
    ///   - url: `postgres://user[:password]@host[:port]/database[?sslmode=disable]` (or
    ///     `postgresql://`). A `host=/path/to/socket-dir` query item selects a Unix socket.
    ///   - maxConnections: the pool's upper bound of connections.
    public init(url: String, logger: Logger = Logger(label: "patron.postgres"), maxConnections: Int = 20) throws {
        let parsed = try PostgresURL(url)
        var configuration = parsed.clientConfiguration
        configuration.options.maximumConnections = max(1, maxConnections)
        // The pool logs its own lifecycle at info (e.g. "Connection creation failed" when
        // close() lands while a connection is being opened); callers see real failures as errors.
        var background = logger
        if background.logLevel < .notice { background.logLevel = .notice }
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        self.client = client
        self.logger = logger
        self.runTask = Task { await client.run() }
    }

    deinit {
        runTask.cancel()
    }

    /// Stops the pool and waits for its connections to close. Calling it again does nothing.
    public func close() async throws {
        guard state.close() else { return }
        runTask.cancel()
        await runTask.value
    }

    // MARK: Database

    public func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        let query = try makeQuery(sql, binds)
        let logger = self.logger
        do {
            let result = try await client.withConnection { connection in
                try await Self.run(query, on: connection, logger: logger)
            }
            return try Self.decode(result.rows)
        } catch {
            throw Self.map(error, sql: sql, statement: nil)
        }
    }

    public func write(_ plan: WritePlan) async throws {
        if plan.isEmpty { return }
        let queries = try plan.statements.map { try makeQuery($0.sql, $0.binds) }
        let logger = self.logger
        try await withConnection { connection in
            try await Self.control("BEGIN", on: connection, logger: logger)
            do {
                try await Self.runPlan(plan, queries, on: connection, logger: logger)
                try await Self.control("COMMIT", on: connection, logger: logger)
            } catch {
                await Self.rollback(connection, logger: logger)
                throw error
            }
        }
    }

    public func writeBatch(_ plans: [WritePlan]) async throws -> [GuardFailure?] {
        if plans.isEmpty { return [] }
        let queries = try plans.map { plan in try plan.statements.map { try makeQuery($0.sql, $0.binds) } }
        let logger = self.logger
        var out: [GuardFailure?] = []
        out.reserveCapacity(plans.count)
        var start = 0
        while start < plans.count {
            let end = min(start + Self.maxBatchChunk, plans.count)
            let chunkStart = start
            let results: [GuardFailure?] = try await withConnection { connection in
                var results: [GuardFailure?] = []
                try await Self.control("BEGIN", on: connection, logger: logger)
                do {
                    for index in chunkStart..<end {
                        try await Self.control("SAVEPOINT p", on: connection, logger: logger)
                        do {
                            try await Self.runPlan(plans[index], queries[index], on: connection, logger: logger)
                            try await Self.control("RELEASE SAVEPOINT p", on: connection, logger: logger)
                            results.append(nil)
                        } catch let failure as GuardFailure {
                            try await Self.control("ROLLBACK TO SAVEPOINT p", on: connection, logger: logger)
                            try await Self.control("RELEASE SAVEPOINT p", on: connection, logger: logger)
                            results.append(failure)
                        } catch {
                            let sql: String
                            let message: String
                            if case DatabaseError.statement(let s, let m) = error { (sql, message) = (s, m) } else { (sql, message) = ("", "\(error)") }
                            throw DatabaseError.statement(
                                sql: sql,
                                message: "batch: plan \(index) failed, its chunk of plans was rolled back: \(message) (plans before \(chunkStart) are committed)")
                        }
                    }
                    try await Self.control("COMMIT", on: connection, logger: logger)
                } catch {
                    await Self.rollback(connection, logger: logger)
                    throw error
                }
                return results
            }
            out.append(contentsOf: results)
            start = end
        }
        return out
    }

    /// Runs the statements in one transaction (PostgreSQL DDL is transactional). A string may
    /// hold several statements separated by `;` (split here, as PostgresNIO only speaks the
    /// extended protocol, which takes one statement at a time); no binds, no `?` rewrite.
    public func executeScript(_ statements: [String]) async throws {
        let logger = self.logger
        let split = statements.flatMap { SQLSplitter.split($0) }
        try await withConnection { connection in
            try await Self.control("BEGIN", on: connection, logger: logger)
            do {
                for sql in split {
                    try await Self.control(sql, on: connection, logger: logger)
                }
                try await Self.control("COMMIT", on: connection, logger: logger)
            } catch {
                await Self.rollback(connection, logger: logger)
                throw error
            }
        }
    }

    // MARK: Scratch databases (tests)

    /// Creates a fresh database `<prefix>_<random hex>` through the admin URL and returns the URL
    /// of the new database (same server and credentials).
    public static func createScratchDatabase(adminURL: String, prefix: String = "patron_test") async throws -> String {
        guard !prefix.isEmpty, prefix.utf8.allSatisfy({ isIdentifierByte($0) }) else {
            throw DatabaseError.connection("scratch database prefix must be [a-z0-9_]: \(prefix)")
        }
        let name = "\(prefix)_\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
        try await withAdminConnection(adminURL) { connection, logger in
            _ = try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(name)\""), logger: logger).get()
        }
        return try PostgresURL(adminURL).replacingDatabase(with: name)
    }

    /// Drops the database named by `url`, closing its other sessions (`WITH (FORCE)`).
    public static func dropDatabase(adminURL: String, url: String) async throws {
        let name = try PostgresURL(url).database
        guard !name.isEmpty, name.utf8.allSatisfy({ isIdentifierByte($0) }) else {
            throw DatabaseError.connection("refusing to drop database with unexpected name '\(name)'")
        }
        try await withAdminConnection(adminURL) { connection, logger in
            _ = try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \"\(name)\" WITH (FORCE)"), logger: logger).get()
        }
    }

    private static func isIdentifierByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x5F
    }

    private static func withAdminConnection(
        _ adminURL: String,
        _ body: (PostgresConnection, Logger) async throws -> Void
    ) async throws {
        let logger = Logger(label: "patron.postgres.admin")
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(
                configuration: try PostgresURL(adminURL).connectionConfiguration, id: 0, logger: logger)
        } catch let error as DatabaseError {
            throw error
        } catch {
            throw map(error, sql: "", statement: nil)
        }
        do {
            try await body(connection, logger)
        } catch {
            try? await connection.close()
            throw map(error, sql: "", statement: nil)
        }
        try? await connection.close()
    }

    // MARK: Running statements

    private func makeQuery(_ sql: String, _ binds: [SQLValue]) throws -> PostgresQuery {
        let (rewritten, count) = placeholders.rewrite(sql)
        guard count == binds.count else {
            throw DatabaseError.statement(sql: sql, message: "the statement has \(count) placeholders but \(binds.count) values were bound")
        }
        var bindings = PostgresBindings(capacity: binds.count)
        for value in binds {
            switch value {
            case .null: bindings.appendNull()
            case .int(let i): bindings.append(i)
            case .text(let s): bindings.append(s)
            }
        }
        return PostgresQuery(unsafeSQL: rewritten, binds: bindings)
    }

    /// Leases a connection; errors that are not already ours become `DatabaseError`s.
    private func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withConnection { connection in try await body(connection) }
        } catch let error as DatabaseError {
            throw error
        } catch let error as GuardFailure {
            throw error
        } catch {
            throw Self.map(error, sql: "", statement: nil)
        }
    }

    /// Runs one query through the EventLoopFuture API, which reports the command tag's row count.
    private static func run(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> PostgresQueryResult {
        let future: EventLoopFuture<PostgresQueryResult> = connection.query(query, logger: logger)
        return try await future.get()
    }

    private static func control(_ sql: String, on connection: PostgresConnection, logger: Logger) async throws {
        do {
            _ = try await run(PostgresQuery(unsafeSQL: sql), on: connection, logger: logger)
        } catch {
            throw map(error, sql: sql, statement: nil)
        }
    }

    /// Rolls back after a failure. If that fails too, the connection's state is unknown: close it
    /// so the pool does not hand out a connection stuck in a transaction.
    private static func rollback(_ connection: PostgresConnection, logger: Logger) async {
        do {
            _ = try await run("ROLLBACK", on: connection, logger: logger)
        } catch {
            logger.warning("ROLLBACK failed, closing the connection: \(String(reflecting: error))")
            try? await connection.close()
        }
    }

    /// Runs a plan's statements inside an open transaction, checking guards.
    private static func runPlan(_ plan: WritePlan, _ queries: [PostgresQuery], on connection: PostgresConnection, logger: Logger) async throws {
        for (statement, query) in zip(plan.statements, queries) {
            let result: PostgresQueryResult
            do {
                result = try await run(query, on: connection, logger: logger)
            } catch {
                throw map(error, sql: statement.sql, statement: statement)
            }
            guard let expected = statement.expectRows else { continue }
            let count = result.metadata.rows ?? Int(result.metadata.command.split(separator: " ").last ?? "") ?? 0
            if count != expected {
                throw statement.failure
                    ?? .conflict("expected \(expected) changed rows, got \(count): \(statement.sql.prefix(120))")
            }
        }
    }

    /// Maps PostgresNIO errors to the store's errors.
    static func map(_ error: any Error, sql: String, statement: Statement?) -> any Error {
        if error is DatabaseError || error is GuardFailure { return error }
        guard let psql = error as? PSQLError else {
            if error is CancellationError { return error }
            return DatabaseError.connection(String(describing: error))
        }
        guard let info = psql.serverInfo, let state = info[.sqlState] else {
            var message = "\(psql.code)"
            if let underlying = psql.underlying { message += ": \(underlying)" }
            return DatabaseError.connection(message)
        }
        let message = info[.message] ?? "error"
        let detail = info[.detail].map { " (\($0))" } ?? ""
        switch state {
        case "40001":
            return GuardFailure.conflict("serialization failure, retry: \(message)")
        case "40P01":
            return GuardFailure.conflict("deadlock detected, retry: \(message)")
        case "23505":
            if let statement, statement.expectRows != nil {
                return statement.failure ?? .taken("unique violation: \(message)")
            }
            return DatabaseError.statement(sql: sql, message: "unique violation (23505): \(message)\(detail)")
        default:
            return DatabaseError.statement(sql: sql, message: "\(state): \(message)\(detail)")
        }
    }

    // MARK: Decoding

    static func decode(_ rows: [PostgresRow]) throws -> [SQLRow] {
        var names: [String]?
        return try rows.map { row in
            var values: [SQLValue] = []
            values.reserveCapacity(row.count)
            var columns: [String] = []
            for cell in row {
                if names == nil { columns.append(cell.columnName) }
                values.append(try decode(cell))
            }
            if names == nil { names = columns }
            return SQLRow(columns: names!, values: values)
        }
    }

    private static func decode(_ cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        do {
            switch cell.dataType {
            case .int2, .int4, .int8:
                return .int(try cell.decode(Int64.self))
            case .text, .varchar, .name, .bpchar, .json, .jsonb, .uuid:
                return .text(try cell.decode(String.self))
            case .bool:
                return .int(try cell.decode(Bool.self) ? 1 : 0)
            case .numeric:
                // SUM(bigint), AVG(...) and the like: keep the integer part.
                var value = try cell.decode(Decimal.self)
                var whole = Decimal()
                NSDecimalRound(&whole, &value, 0, .down)
                guard let i = Int64(whole.description) else {
                    throw DatabaseError.decoding("column \(cell.columnName): numeric \(value) does not fit in a 64-bit integer")
                }
                return .int(i)
            case .float4, .float8:
                let d = try cell.decode(Double.self)
                return .int(Int64(exactly: d.rounded(.towardZero)) ?? 0)
            case .char:
                // "char" (one byte), e.g. from catalog columns.
                return .text(try cell.decode(String.self))
            default:
                throw DatabaseError.decoding(
                    "column \(cell.columnName): unsupported PostgreSQL type \(cell.dataType); cast it to bigint or text in SQL")
            }
        } catch let error as DatabaseError {
            throw error
        } catch {
            throw DatabaseError.decoding("column \(cell.columnName) (\(cell.dataType)): \(error)")
        }
    }
}

// MARK: - Support

/// Whether `close()` already ran.
private final class CloseState: @unchecked Sendable {
    private let lock = NSLock()
    private var closed = false
    /// Returns true the first time.
    func close() -> Bool {
        lock.lock(); defer { lock.unlock() }
        if closed { return false }
        closed = true
        return true
    }
}

/// `?` -> `$n` rewrites, cached per SQL string.
final class PlaceholderCache: @unchecked Sendable {
    private let lock = NSLock()
    private var cache: [String: (String, Int)] = [:]
    private static let limit = 4096

    func rewrite(_ sql: String) -> (sql: String, count: Int) {
        lock.lock()
        if let hit = cache[sql] { lock.unlock(); return hit }
        lock.unlock()
        let result = Self.rewrite(sql)
        lock.lock()
        if cache.count >= Self.limit { cache.removeAll(keepingCapacity: true) }
        cache[sql] = result
        lock.unlock()
        return result
    }

    /// Replaces each `?` outside single-quoted literals, double-quoted identifiers and comments
    /// with `$1`, `$2`, ... Returns the new SQL and the number of placeholders.
    static func rewrite(_ sql: String) -> (String, Int) {
        let bytes = Array(sql.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16)
        var n = 0
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                // Copy through the closing quote; a doubled quote inside is two toggles.
                out.append(b)
                i += 1
                while i < bytes.count {
                    out.append(bytes[i])
                    i += 1
                    if bytes[i - 1] == b { break }
                }
                continue
            case UInt8(ascii: "-") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "-"):
                while i < bytes.count && bytes[i] != UInt8(ascii: "\n") { out.append(bytes[i]); i += 1 }
                continue
            case UInt8(ascii: "/") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "*"):
                out.append(contentsOf: [bytes[i], bytes[i + 1]])
                i += 2
                while i < bytes.count {
                    if bytes[i] == UInt8(ascii: "*"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "/") {
                        out.append(contentsOf: [bytes[i], bytes[i + 1]])
                        i += 2
                        break
                    }
                    out.append(bytes[i])
                    i += 1
                }
                continue
            case UInt8(ascii: "?"):
                n += 1
                out.append(UInt8(ascii: "$"))
                out.append(contentsOf: Array(String(n).utf8))
            default:
                out.append(b)
            }
            i += 1
        }
        return (String(decoding: out, as: UTF8.self), n)
    }
}

/// Splits SQL text into statements at top-level `;` (not inside quotes, comments or
/// dollar-quoted bodies). Blank statements are dropped.
enum SQLSplitter {
    static func split(_ sql: String) -> [String] {
        let b = Array(sql.utf8)
        var statements: [String] = []
        var start = 0
        var i = 0
        func flush(_ end: Int) {
            let text = String(decoding: b[start..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty { statements.append(text) }
        }
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                let q = b[i]
                i += 1
                while i < b.count && b[i] != q { i += 1 }
                i += 1
            case UInt8(ascii: "-") where i + 1 < b.count && b[i + 1] == UInt8(ascii: "-"):
                while i < b.count && b[i] != UInt8(ascii: "\n") { i += 1 }
            case UInt8(ascii: "/") where i + 1 < b.count && b[i + 1] == UInt8(ascii: "*"):
                i += 2
                while i + 1 < b.count && !(b[i] == UInt8(ascii: "*") && b[i + 1] == UInt8(ascii: "/")) { i += 1 }
                i += 2
            case UInt8(ascii: "$"):
                // $tag$ ... $tag$ (tag may be empty); a $1 parameter is not a quote.
                var j = i + 1
                while j < b.count, b[j] == UInt8(ascii: "_") || (b[j] | 0x20 >= UInt8(ascii: "a") && b[j] | 0x20 <= UInt8(ascii: "z")) { j += 1 }
                guard j < b.count, b[j] == UInt8(ascii: "$"), !(i > 0 && isWordByte(b[i - 1])) else { i += 1; continue }
                let tag = Array(b[i...j])
                i = j + 1
                while i < b.count {
                    if b[i] == UInt8(ascii: "$"), i + tag.count <= b.count, Array(b[i..<(i + tag.count)]) == tag {
                        i += tag.count
                        break
                    }
                    i += 1
                }
            case UInt8(ascii: ";"):
                flush(i)
                i += 1
                start = i
            default:
                i += 1
            }
        }
        flush(min(i, b.count))
        return statements
    }

    private static func isWordByte(_ c: UInt8) -> Bool {
        c == UInt8(ascii: "_") || (c >= 0x30 && c <= 0x39) || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "z"))
    }
}

/// A parsed `postgres://` URL.
struct PostgresURL {
    var components: URLComponents
    var host: String
    var port: Int
    var socketDirectory: String?
    var user: String
    var password: String?
    var database: String

    init(_ url: String) throws {
        guard let c = URLComponents(string: url), let scheme = c.scheme?.lowercased(),
              scheme == "postgres" || scheme == "postgresql" else {
            throw DatabaseError.connection("expected a postgres:// or postgresql:// URL, got '\(Self.redacted(url))'")
        }
        components = c
        let items = c.queryItems ?? []
        func item(_ name: String) -> String? { items.first { $0.name == name }?.value }
        if let mode = item("sslmode"), !["disable", "allow", "prefer"].contains(mode) {
            throw DatabaseError.connection("sslmode=\(mode) is not supported: TLS is not configured (use sslmode=disable)")
        }
        user = c.user ?? item("user") ?? "postgres"
        password = c.password ?? item("password")
        host = c.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        port = c.port ?? item("port").flatMap { Int($0) } ?? 5432
        if let h = item("host"), h.hasPrefix("/") { socketDirectory = h }
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        database = path.isEmpty ? user : path
    }

    var clientConfiguration: PostgresClient.Configuration {
        if let socketDirectory {
            return .init(unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user, password: password, database: database)
        }
        return .init(host: host, port: port, username: user, password: password, database: database, tls: .disable)
    }

    var connectionConfiguration: PostgresConnection.Configuration {
        if let socketDirectory {
            return .init(unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user, password: password, database: database)
        }
        return .init(host: host, port: port, username: user, password: password, database: database, tls: .disable)
    }

    func replacingDatabase(with name: String) throws -> String {
        var c = components
        c.path = "/" + name
        guard let s = c.string else { throw DatabaseError.connection("cannot build a URL for database \(name)") }
        return s
    }

    /// The URL without its password, for messages.
    static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url) else { return "(unparsable URL)" }
        guard c.password != nil else { return url }
        c.password = "***"
        return c.string ?? "(unparsable URL)"
    }
}
