import Foundation
@testable import PatronStore
import Testing

/// The `Database` contract, run unchanged against every backend (see `Backend`).
@Suite("Database backend contract")
struct DatabaseBackendTests {
    static let createT = "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, n BIGINT)"
    static let insertT = "INSERT INTO t (id, name, n) VALUES (?, ?, ?)"

    private func setUp(_ db: any Database) async throws {
        try await db.executeScript([Self.createT])
    }

    private func insert(_ db: any Database, _ id: Int64, _ name: SQLValue, _ n: SQLValue) async throws {
        var plan = WritePlan()
        plan.add(Self.insertT, [.int(id), name, n])
        try await db.write(plan)
    }

    private func ids(_ db: any Database) async throws -> [Int64] {
        try await db.query("SELECT id FROM t ORDER BY id", []).map { try $0.int("id") }
    }

    @Test("int, text and NULL round-trip", arguments: Backend.allCases)
    func roundTrip(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            #expect(db.dialect == backend.dialect)
            try await setUp(db)
            let text = "héllo 'quoted' ? \"x\" 🎉"
            try await insert(db, 1, .text(text), .int(Int64.max))
            try await insert(db, 2, .null, .null)
            try await insert(db, 3, "", .int(Int64.min))

            let rows = try await db.query("SELECT id, name, n FROM t WHERE id >= ? ORDER BY id", [1])
            #expect(rows.count == 3)
            #expect(rows.map(\.columns) == Array(repeating: ["id", "name", "n"], count: 3))
            #expect(rows[0].values == [.int(1), .text(text), .int(Int64.max)])
            #expect(rows[1].values == [.int(2), .null, .null])
            #expect(rows[2].values == [.int(3), .text(""), .int(Int64.min)])
            #expect(try rows[0].string("name") == text)
            #expect(try rows[1].stringOrNil("name") == nil)

            // NULL bound as a parameter (PostgreSQL needs a context that gives it a type), and a
            // literal '?' that is not a placeholder.
            let matched = try await db.query("SELECT id FROM t WHERE name IS NULL AND CAST(? AS TEXT) IS NULL AND '?' = '?'", [.null])
            #expect(matched.map(\.values) == [[.int(2)]])
            #expect(try await db.query("SELECT id FROM t WHERE id = ?", [99]).isEmpty)
        }
    }

    @Test("INSERT ... ON CONFLICT DO NOTHING guarded by expectRows: 1 throws .taken", arguments: Backend.allCases)
    func insertGuardTaken(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            try await setUp(db)
            var plan = WritePlan()
            plan.add("INSERT INTO t (id, name, n) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", [7, "first", 1],
                     expectRows: 1, else: .taken("id 7"))
            try await db.write(plan)

            var again = WritePlan()
            again.add("UPDATE t SET n = n + 100 WHERE id = ?", [7]) // must be rolled back
            again.add("INSERT INTO t (id, name, n) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", [7, "second", 2],
                      expectRows: 1, else: .taken("id 7"))
            await #expect(throws: GuardFailure.taken("id 7")) { try await db.write(again) }

            // A guarded INSERT that hits the primary key reports its guard failure too.
            var plain = WritePlan()
            plain.add(Self.insertT, [7, "third", 3], expectRows: 1, else: .taken("plain"))
            await #expect(throws: GuardFailure.taken("plain")) { try await db.write(plain) }

            let rows = try await db.query("SELECT name, n FROM t", [])
            #expect(rows.map(\.values) == [[.text("first"), .int(1)]])
        }
    }

    @Test("a guarded UPDATE of a missing row throws and rolls the plan back", arguments: Backend.allCases)
    func updateGuardMissing(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            try await setUp(db)
            var plan = WritePlan()
            plan.add(Self.insertT, [1, "a", 0])
            plan.add("UPDATE t SET n = n + 1 WHERE id = ?", [42], expectRows: 1, else: .missing("row 42"))
            await #expect(throws: GuardFailure.missing("row 42")) { try await db.write(plan) }
            #expect(try await ids(db).isEmpty)

            // Without an explicit failure, a guard reports a conflict.
            var noFailure = WritePlan()
            noFailure.add("UPDATE t SET n = 1 WHERE id = ?", [42], expectRows: 1)
            await #expect {
                try await db.write(noFailure)
            } throws: { error in
                if case GuardFailure.conflict = error { return true }
                return false
            }
        }
    }

    @Test("an unguarded unique violation is a DatabaseError.statement", arguments: Backend.allCases)
    func unguardedUniqueViolation(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            try await setUp(db)
            try await insert(db, 1, "a", 1)
            var plan = WritePlan()
            plan.add(Self.insertT, [2, "b", 2])
            plan.add(Self.insertT, [1, "dup", 3])
            await #expect {
                try await db.write(plan)
            } throws: { error in
                guard case DatabaseError.statement(_, let message) = error else { return false }
                return message.contains("unique violation")
            }
            #expect(try await ids(db) == [1])
        }
    }

    @Test("concurrent plans: failing ones write nothing, the others all commit", arguments: Backend.allCases)
    func failedPlansAmongConcurrentWrites(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            try await setUp(db)
            try await insert(db, 1000, "existing", 0)
            // Plan i inserts row i and bumps row 1000. Every 7th also runs a guard that fails;
            // every 11th (not 7th) runs an invalid statement.
            func fails(_ i: Int64) -> Bool { i % 7 == 3 || i % 11 == 5 }
            let outcomes = try await withThrowingTaskGroup(of: (Int64, Bool).self) { group in
                for i in Int64(0)..<50 {
                    group.addTask {
                        var plan = WritePlan()
                        plan.add(Self.insertT, [.int(i), .text("row \(i)"), .int(i)])
                        plan.add("UPDATE t SET n = n + 1 WHERE id = 1000", [], expectRows: 1)
                        if i % 7 == 3 {
                            plan.add("UPDATE t SET n = 0 WHERE id = ?", [.int(-i)], expectRows: 1, else: .missing("row \(-i)"))
                        } else if i % 11 == 5 {
                            plan.add("INSERT INTO no_such_table (x) VALUES (?)", [.int(i)])
                        }
                        do {
                            try await db.write(plan)
                            return (i, true)
                        } catch let failure as GuardFailure {
                            #expect(failure == .missing("row \(-i)"))
                            return (i, false)
                        } catch let error as DatabaseError {
                            guard case .statement = error else { throw error }
                            #expect(i % 11 == 5)
                            return (i, false)
                        }
                    }
                }
                var outcomes: [Int64: Bool] = [:]
                for try await (i, ok) in group { outcomes[i] = ok }
                return outcomes
            }
            let survivors = (Int64(0)..<50).filter { !fails($0) }
            #expect(outcomes.filter(\.value).keys.sorted() == survivors)
            #expect(try await ids(db) == survivors + [1000])
            let bumps = try await db.query("SELECT n FROM t WHERE id = 1000", [])
            #expect(bumps.first?["n"] == .int(Int64(survivors.count)))
            if let sqlite = db as? SQLiteDatabase {
                let stats = sqlite.writerStats
                print("SQLite group commit (\(backend.testDescription)): \(stats.plans) plans in \(stats.transactions) transactions")
            }
        }
    }

    @Test("SUM over BIGINT decodes as .int", arguments: Backend.allCases)
    func sumDecodesAsInt(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            try await setUp(db)
            let empty = try await db.query("SELECT SUM(n) AS total, COUNT(*) AS c FROM t", [])
            #expect(empty.first?["total"] == .null)
            #expect(empty.first?["c"] == .int(0))

            var plans: [WritePlan] = []
            for i in Int64(1)...10 {
                var plan = WritePlan()
                plan.add(Self.insertT, [.int(i), "x", .int(i * 1_000_000_000_000)])
                plans.append(plan)
            }
            #expect(try await db.writeBatch(plans) == Array(repeating: nil, count: 10))
            let rows = try await db.query("SELECT SUM(n) AS total, COUNT(*) AS c, MAX(n) AS m FROM t WHERE n > ?", [0])
            #expect(rows.first?["total"] == .int(55_000_000_000_000))
            #expect(try rows.first?.int("total") == 55_000_000_000_000)
            #expect(rows.first?["c"] == .int(10))
            #expect(rows.first?["m"] == .int(10_000_000_000_000))
            let negative = try await db.query("SELECT SUM(n) AS total FROM (SELECT -n AS n FROM t) AS s", [])
            #expect(negative.first?["total"] == .int(-55_000_000_000_000))
        }
    }

    @Test("writeBatch reports guard failures per plan and commits the rest", arguments: Backend.allCases)
    func writeBatchWithFailures(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            try await setUp(db)
            try await insert(db, 5, "existing", 0)
            // 2,500 plans: several chunks. Plan i inserts row i; those with i % 100 == 5 collide.
            var plans: [WritePlan] = []
            for i in Int64(0)..<2_500 {
                var plan = WritePlan()
                plan.add("INSERT INTO t (id, name, n) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", [.int(i % 100 == 5 ? 5 : i + 10_000), "b", .int(i)],
                         expectRows: 1, else: .taken("plan \(i)"))
                plan.add("UPDATE t SET n = n + 1 WHERE id = 5")
                plans.append(plan)
            }
            let results = try await db.writeBatch(plans)
            #expect(results.count == plans.count)
            let expected: [GuardFailure?] = (Int64(0)..<2_500).map { $0 % 100 == 5 ? .taken("plan \($0)") : nil }
            #expect(results == expected)
            let count = try await db.query("SELECT COUNT(*) AS c FROM t", [])
            #expect(count.first?["c"] == .int(1 + 2_500 - 25))
            let bumps = try await db.query("SELECT n FROM t WHERE id = 5", [])
            #expect(bumps.first?["n"] == .int(2_500 - 25))
            #expect(try await db.writeBatch([]).isEmpty)
        }
    }

    @Test("writeBatch: a statement error rolls back its chunk and throws", arguments: Backend.allCases)
    func writeBatchStatementError(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            try await setUp(db)
            var plans: [WritePlan] = []
            for i in Int64(0)..<5 {
                var plan = WritePlan()
                plan.add(i == 3 ? "INSERT INTO missing_table (id) VALUES (?)" : Self.insertT,
                         i == 3 ? [.int(i)] : [.int(i), "b", .int(i)])
                plans.append(plan)
            }
            await #expect {
                _ = try await db.writeBatch(plans)
            } throws: { error in
                guard case DatabaseError.statement(_, let message) = error else { return false }
                return message.contains("plan 3")
            }
            #expect(try await ids(db).isEmpty)
        }
    }

    @Test("16 tasks racing a guarded decrement of n = 10 win exactly 10 times", arguments: Backend.allCases)
    func guardedDecrementRace(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            try await setUp(db)
            try await insert(db, 1, "coupon", 10)
            let wins = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        var wins = 0
                        while true {
                            let rows = try await db.query("SELECT n FROM t WHERE id = ?", [1])
                            guard try rows.first?.int("n") ?? 0 > 0 else { return wins }
                            var plan = WritePlan()
                            plan.add("UPDATE t SET n = n - 1 WHERE id = ? AND n > 0", [1], expectRows: 1, else: .conflict("sold out"))
                            do {
                                try await db.write(plan)
                                wins += 1
                            } catch is GuardFailure {
                                continue // someone else took it: read again
                            }
                        }
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(wins == 10)
            let rows = try await db.query("SELECT n FROM t WHERE id = 1", [])
            #expect(rows.first?["n"] == .int(0))
        }
    }

    @Test("a read sees every write that returned", arguments: Backend.allCases)
    func readYourWrites(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            try await setUp(db)
            try await insert(db, 1, "counter", 0)
            for i in Int64(1)...200 {
                var plan = WritePlan()
                plan.add("UPDATE t SET n = ? WHERE id = 1", [.int(i)], expectRows: 1)
                try await db.write(plan)
                let rows = try await db.query("SELECT n FROM t WHERE id = 1", [])
                #expect(rows.first?["n"] == .int(i))
                if rows.first?["n"] != .int(i) { break }
            }
        }
    }

    @Test("executeScript runs in one transaction", arguments: Backend.allCases)
    func scriptIsAtomic(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            try await db.executeScript([
                "CREATE TABLE a (id BIGINT PRIMARY KEY); CREATE TABLE b (id BIGINT PRIMARY KEY, note TEXT)",
                "INSERT INTO b (id, note) VALUES (1, 'semi;colon -- not a comment')",
            ])
            let notes = try await db.query("SELECT note FROM b", [])
            #expect(notes.first?["note"] == .text("semi;colon -- not a comment"))
            await #expect(throws: DatabaseError.self) {
                try await db.executeScript(["CREATE TABLE c (id BIGINT)", "THIS IS NOT SQL"])
            }
            // c was rolled back: creating it again works.
            try await db.executeScript(["CREATE TABLE c (id BIGINT)"])
        }
    }

    @Test("close is idempotent and later calls fail cleanly", arguments: Backend.allCases)
    func closeTwice(_ backend: Backend) async throws {
        guard let test = try await backend.make() else {
            #if compiler(>=6.3)
            try Test.cancel(Comment(rawValue: Backend.postgresSkipReason))
            #else
            return
            #endif
        }
        try await test.db.executeScript([Self.createT])
        try await test.db.close()
        try await test.db.close()
        var plan = WritePlan()
        plan.add(Self.insertT, [1, "a", 1])
        await #expect(throws: (any Error).self) { try await test.db.write(plan) }
        await test.close()
    }
}

/// Backend helpers that need no database.
@Suite("Database backend helpers")
struct DatabaseBackendHelperTests {
    @Test func placeholderRewrite() {
        let (sql, n) = PlaceholderCache.rewrite(
            "SELECT '?', \"a?\", ? -- ?\n FROM t /* ? */ WHERE x = ? AND y = 'it''s ?' AND z = ?")
        #expect(sql == "SELECT '?', \"a?\", $1 -- ?\n FROM t /* ? */ WHERE x = $2 AND y = 'it''s ?' AND z = $3")
        #expect(n == 3)
        let cache = PlaceholderCache()
        #expect(cache.rewrite("SELECT ?").sql == "SELECT $1")
        #expect(cache.rewrite("SELECT ?").count == 1)
    }

    @Test func scriptSplitting() {
        #expect(SQLSplitter.split("CREATE TABLE a (x TEXT DEFAULT ';'); -- c;\n CREATE TABLE b (y INT);;") ==
                ["CREATE TABLE a (x TEXT DEFAULT ';')", "-- c;\n CREATE TABLE b (y INT)"])
        #expect(SQLSplitter.split("CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql; SELECT $1") ==
                ["CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql", "SELECT $1"])
        #expect(SQLSplitter.split("  ").isEmpty)
    }

    @Test func postgresURLParsing() throws {
        let u = try PostgresURL("postgresql://alice:s%40cret@db.example:6543/patron?sslmode=disable")
        #expect(u.user == "alice")
        #expect(u.password == "s@cret")
        #expect(u.host == "db.example")
        #expect(u.port == 6543)
        #expect(u.database == "patron")
        #expect(try u.replacingDatabase(with: "other") == "postgresql://alice:s%40cret@db.example:6543/other?sslmode=disable")
        let d = try PostgresURL("postgres://postgres@127.0.0.1/")
        #expect(d.port == 5432)
        #expect(d.database == "postgres")
        #expect(d.password == nil)
        #expect(throws: DatabaseError.self) { try PostgresURL("mysql://x@y/z") }
        #expect(throws: DatabaseError.self) { try PostgresURL("postgres://x@y/z?sslmode=require") }
    }

    @Test func sqliteRejectsTwoStatementsInOneWrite() async throws {
        let db = try SQLiteDatabase(path: ":memory:")
        try await db.executeScript([DatabaseBackendTests.createT])
        var plan = WritePlan()
        plan.add("INSERT INTO t (id) VALUES (1); INSERT INTO t (id) VALUES (2)")
        await #expect(throws: DatabaseError.self) { try await db.write(plan) }
        var wrongBinds = WritePlan()
        wrongBinds.add("INSERT INTO t (id) VALUES (?)", [1, 2])
        await #expect(throws: DatabaseError.self) { try await db.write(wrongBinds) }
        try await db.close()
    }

    @Test func sqliteSynchronousFullAndReopen() async throws {
        try await withTemporaryFile { path in
            do {
                let db = try SQLiteDatabase(path: path, synchronous: .full)
                try await db.executeScript([DatabaseBackendTests.createT])
                var plan = WritePlan()
                plan.add(DatabaseBackendTests.insertT, [1, "kept", 1])
                try await db.write(plan)
                try await db.close()
            }
            let again = try SQLiteDatabase(path: path)
            let rows = try await again.query("SELECT name FROM t", [])
            #expect(rows.first?["name"] == .text("kept"))
            let mode = try await again.query("PRAGMA journal_mode", [])
            #expect(mode.first?.values.first == .text("wal"))
            try await again.close()
        }
    }

    /// The writer does not checkpoint on commit (the checkpointer thread copies the WAL), so it
    /// must start the WAL over itself: under continuous group commits the WAL file stays near
    /// `restartFrames` pages instead of growing with everything written, and nothing is lost.
    @Test func sqliteWALStartsOverUnderContinuousWrites() async throws {
        try await withTemporaryFile { path in
            let db = try SQLiteDatabase(path: path)
            var rows = PageRows(db: db, path: path)
            try await rows.create()
            // About one 4 KB page per row: 10,000 rows are ~2.4 times `restartFrames` frames.
            let walHigh = try await rows.write(10_000)
            let count = try await db.query("SELECT count(*) AS n, sum(length(body)) AS bytes FROM w", [])
            #expect(try count.first?.int("n") == 10_000)
            #expect(try count.first?.int("bytes") == Int64(10_000 * 3_000))
            let unbounded = Int64(10_000) * PageRows.frameBytes
            // Started over: well below what a WAL that never restarts would hold.
            #expect(walHigh > 0)
            #expect(walHigh < Int64(SQLiteWriter.restartFrames + 1_500) * PageRows.frameBytes, "WAL grew to \(walHigh) bytes (never restarting: ~\(unbounded))")
            try await db.close()
        }
    }

    /// A long read holds checkpoints back, and the WAL grows past `restartFrames` meanwhile. The
    /// writer leaves that backlog to the checkpointer (copying it itself stalled every write), so
    /// once the read ends the checkpointer must work it down and the WAL start over again.
    @Test func sqliteWALStartsOverAfterALongRead() async throws {
        try await withTemporaryFile { path in
            let db = try SQLiteDatabase(path: path)
            var rows = PageRows(db: db, path: path)
            try await rows.create()
            _ = try await rows.write(1_000)
            // A read transaction from here on: nothing written after it can be copied.
            let snapshot = try #require(try await db.exclusive { _ in try db.snapshot() })
            let held = try await rows.write(7_000)
            #expect(held > Int64(SQLiteWriter.restartFrames + SQLiteWriter.writerCopyFrames) * PageRows.frameBytes, "the read held the WAL back: \(held) bytes")
            #expect(try await snapshot.read { try $0.query("SELECT count(*) AS n FROM w", []).first?.int("n") } == 1_000)
            // The read has ended: the WAL must start over (its header's checkpoint sequence number
            // counts the start-overs) while writes go on, however long the backlog takes to copy.
            func sequence() throws -> UInt32 {
                let header = try FileHandle(forReadingFrom: URL(fileURLWithPath: path + "-wal")).read(upToCount: 16) ?? Data()
                return header.count == 16 ? header[12..<16].reduce(0) { $0 << 8 | UInt32($1) } : 0
            }
            let before = try sequence()
            var written = 0
            while try sequence() == before && written < 40_000 {
                _ = try await rows.write(1_000)
                written += 1_000
            }
            #expect(try sequence() != before, "the WAL did not start over in \(written) rows after the read ended")
            #expect(try await db.query("SELECT count(*) AS n FROM w", []).first?.int("n") == Int64(8_000 + written))
            try await db.close()
        }
    }
}

/// A file path in a new temporary folder, removed after `body`.
func withTemporaryFile(_ body: (String) async throws -> Void) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("patron-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try await body(dir.appendingPathComponent("db.sqlite").path)
}

/// Rows of about one 4 KB page each in table `w`, written 100 concurrent plans at a time (so
/// the writer groups them), for the WAL tests.
struct PageRows {
    let db: SQLiteDatabase
    let path: String
    var next = 0
    static let body = String(repeating: "x", count: 3_000)
    /// A WAL frame: its header and a 4 KB page.
    static let frameBytes = Int64(4096 + 24)

    func create() async throws { try await db.executeScript(["CREATE TABLE w (id INTEGER PRIMARY KEY, body TEXT)"]) }

    /// Writes `n` rows; returns the WAL file's largest size seen after each 100.
    mutating func write(_ n: Int) async throws -> Int64 {
        var high: Int64 = 0
        for _ in 0..<(n / 100) {
            let first = next, db = self.db
            next += 100
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<100 {
                    group.addTask {
                        var plan = WritePlan()
                        plan.add("INSERT INTO w (id, body) VALUES (?, ?)", [.int(Int64(first + i)), .text(Self.body)])
                        try await db.write(plan)
                    }
                }
                try await group.waitForAll()
            }
            high = max(high, (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int64) ?? 0)
        }
        return high
    }
}
