import Foundation
import PatronStore
import Testing

/// The storage backends store tests run against. Use it as test arguments:
///
///     @Test(arguments: Backend.allCases)
///     func something(_ backend: Backend) async throws {
///         try await backend.withDatabase { db in ... }
///     }
///
/// PostgreSQL runs only when `PATRON_TEST_POSTGRES_URL` names a server (an admin URL such as
/// `postgres://postgres@127.0.0.1:55432/postgres`, see `scripts/postgres-test-cluster.sh`); each
/// test then gets its own scratch database, so tests run in parallel. Without it, the PostgreSQL
/// cases print why and are skipped.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// SQLite in a temporary file (writer thread + read-only connections).
    case sqlite
    /// SQLite `:memory:` (reads go through the writer).
    case sqliteMemory
    /// A scratch database on the server named by `PATRON_TEST_POSTGRES_URL`.
    case postgres

    static let postgresURLVariable = "PATRON_TEST_POSTGRES_URL"

    /// The admin URL, when PostgreSQL tests are configured.
    static var postgresAdminURL: String? {
        guard let url = ProcessInfo.processInfo.environment[postgresURLVariable], !url.isEmpty else { return nil }
        return url
    }

    static var postgresSkipReason: String {
        "PostgreSQL contract tests skipped: \(postgresURLVariable) is not set"
            + " (run scripts/postgres-test-cluster.sh start, then export \(postgresURLVariable)=$(scripts/postgres-test-cluster.sh url))"
    }

    var testDescription: String {
        switch self {
        case .sqlite: "SQLite (file)"
        case .sqliteMemory: "SQLite (:memory:)"
        case .postgres: "PostgreSQL"
        }
    }

    var dialect: SQLDialect { self == .postgres ? .postgres : .sqlite }

    /// Opens a fresh, empty database; nil (after printing why) when this is PostgreSQL and
    /// `PATRON_TEST_POSTGRES_URL` is not set. Call `close()` on the result when done.
    func make() async throws -> TestDatabase? {
        switch self {
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory
                .appendingPathComponent("patron-tests-\(UUID().uuidString)", isDirectory: true)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let db = try SQLiteDatabase(path: dir.appendingPathComponent("test.sqlite").path)
            return TestDatabase(db: db) { try? FileManager.default.removeItem(at: dir) }
        case .sqliteMemory:
            return TestDatabase(db: try SQLiteDatabase(path: ":memory:")) {}
        case .postgres:
            guard let admin = Self.postgresAdminURL else {
                Self.reportPostgresSkipped()
                return nil
            }
            let url = try await PostgresDatabase.createScratchDatabase(adminURL: admin)
            let db = try PostgresDatabase(url: url, maxConnections: 8)
            return TestDatabase(db: db) {
                do {
                    try await PostgresDatabase.dropDatabase(adminURL: admin, url: url)
                } catch {
                    print("note: could not drop scratch database \(url): \(error)")
                }
            }
        }
    }

    /// Runs `body` with a fresh database, then closes it and removes it (temporary file or
    /// scratch database), also when `body` throws. When PostgreSQL is not configured, prints
    /// `postgresSkipReason` (once per run) and cancels the test case (`Test.cancel`; the console
    /// reporter of Swift Testing 6.3 still lists a cancelled case as passed).
    func withDatabase(_ body: (any Database) async throws -> Void) async throws {
        guard let test = try await make() else {
            #if compiler(>=6.3)
            try Test.cancel(Comment(rawValue: Self.postgresSkipReason))
            #else
            return
            #endif
        }
        do {
            try await body(test.db)
        } catch {
            await test.close()
            throw error
        }
        await test.close()
    }

    private static let skipReported = SkipReported()
    private static func reportPostgresSkipped() {
        if skipReported.first() { print(postgresSkipReason) }
    }
}

/// A database opened for one test, with its cleanup.
struct TestDatabase: Sendable {
    let db: any Database
    let remove: @Sendable () async -> Void

    init(db: any Database, remove: @escaping @Sendable () async -> Void) {
        self.db = db
        self.remove = remove
    }

    /// Closes the database, then deletes its file or drops it.
    func close() async {
        do { try await db.close() } catch { print("note: closing test database failed: \(error)") }
        await remove()
    }
}

/// Prints the skip line once per test run, not once per test case.
private final class SkipReported: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    func first() -> Bool {
        lock.lock(); defer { lock.unlock() }
        if done { return false }
        done = true
        return true
    }
}
