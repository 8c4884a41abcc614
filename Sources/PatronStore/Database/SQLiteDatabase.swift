import CSQLite
import Foundation

/// `SQLITE_TRANSIENT`: SQLite copies the bound bytes before `sqlite3_bind_*` returns.
private var SQLITE_TRANSIENT: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }
// Extended result codes are function-like macros in sqlite3.h, which Swift does not import.
private let SQLITE_CONSTRAINT_PRIMARYKEY_CODE: Int32 = SQLITE_CONSTRAINT | (6 << 8)
private let SQLITE_CONSTRAINT_UNIQUE_CODE: Int32 = SQLITE_CONSTRAINT | (8 << 8)

/// SQLite over its C API.
///
/// - One writer connection, owned by a dedicated thread that takes jobs from a queue. Writes are
///   group-committed: the writer drains what is queued (up to 512 plans), runs them in one
///   `BEGIN IMMEDIATE ... COMMIT`, each plan in its own savepoint (a failing plan is rolled back
///   alone), so one fsync covers many concurrent requests. Callers resume after the `COMMIT`.
/// - The writer does not checkpoint on commit: a checkpointer thread with a connection of its
///   own copies the WAL into the database file and flushes it, and the writer only copies what
///   is left once the WAL holds `SQLiteWriter.restartFrames` pages, so that it starts over (see
///   `SQLiteCheckpointer`).
/// - Reads run synchronously on the caller's thread, on a pool of two read-only connections (WAL
///   lets them read while the writer writes). They see every write whose `write` has returned.
///   For `:memory:` (or `""`), reads go through the writer connection, as a second connection
///   cannot see a private in-memory database.
/// - Call `close()` when done; `deinit` stops the writer thread and closes connections too.
///
/// Guarded statements: `expectRows` is compared with `sqlite3_changes()` for statements that
/// write, and with the number of rows returned for read-only statements (a guarded `SELECT`).
/// A unique or primary key violation raised by a guarded statement counts as a guard failure
/// (its `failure` is thrown), the same as on PostgreSQL.
public final class SQLiteDatabase: Database {
    public enum Synchronous: String, Sendable { case normal = "NORMAL", full = "FULL" }

    public let dialect: SQLDialect = .sqlite
    public let path: String
    private let writer: SQLiteWriter
    private let readers: SQLiteReaderPool?

    /// The number of read-only connections used for a file database.
    static let readerCount = 2

    public init(path: String, synchronous: Synchronous = .normal) throws {
        self.path = path
        let inMemory = path.isEmpty || path == ":memory:"
        let connection = try SQLiteConnection(
            path: path, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX)
        do {
            try connection.exec("PRAGMA journal_mode=WAL")
            try connection.exec("PRAGMA synchronous=\(synchronous.rawValue)")
            try connection.exec("PRAGMA foreign_keys=OFF")
            // 64 MiB of page cache for the writer: bulk writes touch many index pages.
            try connection.exec("PRAGMA cache_size=-65536")
            // Savepoint journals in memory: each plan of a group commit runs in a savepoint whose
            // journal holds the original of every page the plan changes (~80 KB for an order),
            // past SQLite's 64 KiB spill size; on a temporary file that was half the writer's
            // write calls under load.
            try connection.exec("PRAGMA temp_store=MEMORY")
        } catch {
            connection.close()
            throw error
        }
        var readers: SQLiteReaderPool?
        if !inMemory {
            var opened: [SQLiteConnection] = []
            do {
                for _ in 0..<Self.readerCount {
                    opened.append(try SQLiteConnection.readOnly(path))
                }
            } catch {
                opened.forEach { $0.close() }
                connection.close()
                throw error
            }
            readers = SQLiteReaderPool(opened)
        }
        self.readers = readers
        var checkpointer: SQLiteCheckpointer?
        if !inMemory {
            do {
                checkpointer = try SQLiteCheckpointer(path: path, synchronous: synchronous)
            } catch {
                readers?.close()
                connection.close()
                throw error
            }
        }
        self.writer = SQLiteWriter(connection: connection, checkpointer: checkpointer, name: "patron-sqlite-writer")
    }

    deinit {
        // Safety net for a database that was not closed: the writer thread finishes the queued
        // jobs, then closes its connection; the readers close now (no read can be running, as a
        // read holds a reference to self).
        writer.stop(waiter: nil)
        readers?.close()
    }

    public func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        if let readers {
            return try readers.withConnection { try $0.query(sql, binds) }
        }
        return try await withCheckedThrowingContinuation { c in writer.enqueue(.read(sql, binds, c)) }
    }

    /// On a thread and a connection of its own: a scan of seconds then holds neither the writer,
    /// nor a concurrency pool thread (two on this machine's two cores), nor one of the readers
    /// that requests use. At most `asideReads` run at once; more wait their turn on their thread.
    public func queryAside(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        guard readers != nil else { return try await query(sql, binds) }
        let path = self.path, slots = asideSlots
        return try await onOwnThread("patron-sqlite-long-read") {
            slots.wait()
            defer { slots.signal() }
            let connection = try SQLiteConnection.readOnly(path)
            defer { connection.close() }
            return try connection.query(sql, binds)
        }
    }
    /// Long reads at once (`queryAside`).
    static let asideReads = 2
    private let asideSlots = DispatchSemaphore(value: SQLiteDatabase.asideReads)

    public func write(_ plan: WritePlan) async throws {
        if plan.isEmpty { return }
        try await withCheckedThrowingContinuation { c in writer.enqueue(.write(plan, c)) }
    }

    public func writeBatch(_ plans: [WritePlan]) async throws -> [GuardFailure?] {
        if plans.isEmpty { return [] }
        return try await withCheckedThrowingContinuation { c in writer.enqueue(.batch(plans, c)) }
    }

    public func executeScript(_ statements: [String]) async throws {
        try await withCheckedThrowingContinuation { c in writer.enqueue(.script(statements, c)) }
    }

    /// Runs the queued jobs, stops the writer thread, finalizes statements and closes every
    /// connection. Calling it again does nothing.
    public func close() async throws {
        await withCheckedContinuation { c in writer.stop(waiter: c) }
        readers?.close()
    }

    /// Transactions committed by the writer and plans they carried (for tests and metrics).
    var writerStats: (transactions: Int, plans: Int) { writer.stats }

    /// Calls `observer` on the writer thread right after each COMMIT with the plans it committed,
    /// in commit order: what it keeps is exactly as of the last commit (`exclusive` runs between
    /// commits).
    func observeCommits(_ observer: @escaping @Sendable ([WritePlan]) -> Void) { writer.observeCommits(observer) }

    /// A new read-only connection holding a read transaction on the database as of now, for a
    /// long read that must not hold up writes (nil for an in-memory database, which no other
    /// connection sees). Called from `exclusive`, the snapshot is exactly the last commit's.
    func snapshot() throws -> SQLiteSnapshot? {
        guard readers != nil else { return nil }
        let connection = try SQLiteConnection.readOnly(path)
        do {
            try connection.exec("BEGIN")
            // A WAL read transaction takes its snapshot at its first read.
            try connection.exec("SELECT 1 FROM sqlite_schema LIMIT 1")
        } catch {
            connection.close()
            throw error
        }
        return SQLiteSnapshot(connection)
    }

    /// Runs `body` on the writer's connection between transactions: no commit happens while it
    /// runs, so what it reads and what commit observers see afterwards line up exactly.
    func exclusive<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            writer.enqueue(.exclusive({ connection in c.resume(with: Result { try body(connection) }) }, { c.resume(throwing: $0) }))
        }
    }
}

/// A read transaction on a connection of its own (`SQLiteDatabase.snapshot()`), used by one
/// thread at a time, then closed.
final class SQLiteSnapshot: @unchecked Sendable {
    let connection: SQLiteConnection
    init(_ connection: SQLiteConnection) { self.connection = connection }

    /// Runs `body` on a thread of its own (not one of the concurrency pool's few threads), then
    /// ends the read transaction and closes the connection.
    func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await onOwnThread("patron-sqlite-snapshot") { [self] in
            defer {
                try? connection.exec("COMMIT")
                connection.close()
            }
            return try body(connection)
        }
    }
}

/// Runs `body` on a new thread, not on one of the concurrency pool's few threads, which a
/// blocking read of seconds would take from serving requests.
func onOwnThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        let thread = Thread { c.resume(with: Result { try body() }) }
        thread.name = name
        thread.start()
    }
}

// MARK: - Connection

/// One SQLite connection with its prepared statement cache. Not thread-safe: its owner
/// serializes access (the writer thread, or the reader pool's lock).
final class SQLiteConnection {
    private var db: OpaquePointer?
    private var cache: [String: OpaquePointer] = [:]
    private static let cacheLimit = 256

    /// A read-only connection (a reader, a snapshot, a long read).
    static func readOnly(_ path: String) throws -> SQLiteConnection {
        try SQLiteConnection(path: path, flags: SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX)
    }

    init(path: String, flags: Int32) throws {
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let handle { sqlite3_close_v2(handle) }
            throw DatabaseError.connection("cannot open SQLite database at '\(path)': \(message)")
        }
        db = handle
        sqlite3_extended_result_codes(handle, 1)
        sqlite3_busy_timeout(handle, 5000)
    }

    deinit { close() }

    /// Runs SQL text that may hold several statements, without binds or results.
    func exec(_ sql: String) throws {
        guard let db else { throw DatabaseError.connection("the SQLite connection is closed") }
        var errmsg: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &errmsg)
        if rc != SQLITE_OK {
            let message = errmsg.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(errmsg)
            throw SQLiteError(code: rc, message: message, sql: sql)
        }
    }

    var inTransaction: Bool { db.map { sqlite3_get_autocommit($0) == 0 } ?? false }

    /// Copies what it can of the WAL into the database file without waiting for anyone
    /// (`SQLITE_CHECKPOINT_PASSIVE`): frames in the WAL, and how many of them are now in the
    /// database file; nil when another connection is checkpointing (`SQLITE_BUSY`).
    func checkpointPassive() throws -> (walFrames: Int, copied: Int)? {
        guard let db else { throw DatabaseError.connection("the SQLite connection is closed") }
        var log: Int32 = 0, done: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &done)
        if rc == SQLITE_BUSY { return nil }
        guard rc == SQLITE_OK else { throw error(rc, "checkpoint") }
        return (Int(log), Int(done))
    }

    /// Flushes the database file (not the WAL) to the disk, through this connection's file handle.
    func syncDatabaseFile() throws {
        guard let db else { throw DatabaseError.connection("the SQLite connection is closed") }
        var file: UnsafeMutablePointer<sqlite3_file>?
        let rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file)
        guard rc == SQLITE_OK, let file, let sync = file.pointee.pMethods?.pointee.xSync else { throw error(rc, "sync database file") }
        let synced = sync(file, SQLITE_SYNC_NORMAL)
        guard synced == SQLITE_OK else { throw SQLiteError(code: synced, message: "cannot sync the database file", sql: "sync") }
    }

    /// Calls `hook` after each commit with the number of frames in the WAL. It replaces SQLite's
    /// automatic checkpoint, which is a WAL hook too.
    func onWALCommit(_ box: WALFrames) {
        guard let db else { return }
        sqlite3_wal_hook(db, { context, _, _, frames in
            Unmanaged<WALFrames>.fromOpaque(context!).takeUnretainedValue().frames = Int(frames)
            return SQLITE_OK
        }, Unmanaged.passUnretained(box).toOpaque())
    }

    /// `PRAGMA data_version`: changes when another connection (another process) has committed
    /// since this connection last asked.
    func dataVersion() throws -> Int64 { try run("PRAGMA data_version", collect: true).rows.first?.int("data_version") ?? 0 }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let stmt = cache[sql] { return stmt }
        guard let db else { throw DatabaseError.connection("the SQLite connection is closed") }
        if cache.count >= Self.cacheLimit { finalizeAll() }
        var stmt: OpaquePointer?
        var tail: UnsafePointer<CChar>?
        let rc = sql.withCString { cSQL in
            let rc = sqlite3_prepare_v3(db, cSQL, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, &tail)
            // Anything after the first statement must be blank (whitespace or semicolons).
            if rc == SQLITE_OK, var p = tail {
                while p.pointee != 0, p.pointee == 0x3B || isspace(Int32(p.pointee)) != 0 { p += 1 }
                tail = p.pointee == 0 ? nil : p
            }
            return rc
        }
        guard rc == SQLITE_OK else {
            throw SQLiteError(code: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)), sql: sql)
        }
        guard let stmt else {
            throw DatabaseError.statement(sql: sql, message: "empty SQL statement")
        }
        if tail != nil {
            sqlite3_finalize(stmt)
            throw DatabaseError.statement(sql: sql, message: "one SQL string may hold only one statement here")
        }
        cache[sql] = stmt
        return stmt
    }

    /// Runs one statement. Returns its rows (when `collect`), and the number of rows it changed
    /// (`sqlite3_changes`) or, for a read-only statement, the number of rows it returned.
    /// Reads the rows of a query one at a time, without keeping them: `row` gets the column
    /// readers (integer, text) of the current row.
    func forEachRow(_ sql: String, _ binds: [SQLValue], _ row: (_ int: (Int32) -> Int64, _ text: (Int32) -> String) throws -> Void) throws {
        let stmt = try prepared(sql)
        defer {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
        }
        try bind(stmt, binds, sql)
        let int = { (c: Int32) in sqlite3_column_int64(stmt, c) }
        let text = { (c: Int32) -> String in
            guard let t = sqlite3_column_text(stmt, c) else { return "" }
            return String(decoding: UnsafeBufferPointer(start: t, count: Int(sqlite3_column_bytes(stmt, c))), as: UTF8.self)
        }
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error(rc, sql) }
            try row(int, text)
        }
    }

    private func bind(_ stmt: OpaquePointer, _ binds: [SQLValue], _ sql: String) throws {
        let expected = Int(sqlite3_bind_parameter_count(stmt))
        guard expected == binds.count else {
            throw DatabaseError.statement(sql: sql, message: "the statement has \(expected) placeholders but \(binds.count) values were bound")
        }
        for (i, value) in binds.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(stmt, index)
            case .int(let v): rc = sqlite3_bind_int64(stmt, index, v)
            case .text(let s): rc = sqlite3_bind_text(stmt, index, s, Int32(s.utf8.count), SQLITE_TRANSIENT)
            }
            if rc != SQLITE_OK { throw error(rc, sql) }
        }
    }

    @discardableResult
    func run(_ sql: String, _ binds: [SQLValue] = [], collect: Bool = false) throws -> (rows: [SQLRow], count: Int) {
        let stmt = try prepared(sql)
        defer {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
        }
        try bind(stmt, binds, sql)
        var rows: [SQLRow] = []
        var names: [String]?
        var returned = 0
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error(rc, sql) }
            returned += 1
            guard collect else { continue }
            let n = sqlite3_column_count(stmt)
            if names == nil {
                names = (0..<n).map { sqlite3_column_name(stmt, $0).map { String(cString: $0) } ?? "" }
            }
            var values: [SQLValue] = []
            values.reserveCapacity(Int(n))
            for c in 0..<n {
                switch sqlite3_column_type(stmt, c) {
                case SQLITE_INTEGER: values.append(.int(sqlite3_column_int64(stmt, c)))
                case SQLITE_FLOAT: values.append(.int(Int64(exactly: sqlite3_column_double(stmt, c).rounded(.towardZero)) ?? 0))
                case SQLITE_NULL: values.append(.null)
                case SQLITE_BLOB:
                    let bytes = sqlite3_column_blob(stmt, c)
                    let count = Int(sqlite3_column_bytes(stmt, c))
                    values.append(.text(bytes.map {
                        String(decoding: UnsafeRawBufferPointer(start: $0, count: count), as: UTF8.self)
                    } ?? ""))
                default: // SQLITE_TEXT
                    let text = sqlite3_column_text(stmt, c)
                    let count = Int(sqlite3_column_bytes(stmt, c))
                    values.append(.text(text.map {
                        String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
                    } ?? ""))
                }
            }
            rows.append(SQLRow(columns: names!, values: values))
        }
        let count = sqlite3_stmt_readonly(stmt) != 0 ? returned : Int(sqlite3_changes(db))
        return (rows, count)
    }

    func query(_ sql: String, _ binds: [SQLValue]) throws -> [SQLRow] {
        do {
            return try run(sql, binds, collect: true).rows
        } catch let e as SQLiteError {
            throw e.databaseError
        }
    }

    private func error(_ rc: Int32, _ sql: String) -> SQLiteError {
        guard let db else { return SQLiteError(code: rc, message: "connection closed", sql: sql) }
        return SQLiteError(code: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)), sql: sql)
    }

    private func finalizeAll() {
        for stmt in cache.values { sqlite3_finalize(stmt) }
        cache.removeAll()
    }

    /// Finalizes the cached statements and closes the connection.
    func close() {
        guard let handle = db else { return }
        finalizeAll()
        if sqlite3_close(handle) != SQLITE_OK {
            // Statements not from the cache are still open (a bug); let SQLite close when they go.
            sqlite3_close_v2(handle)
        }
        db = nil
    }
}

/// A failed SQLite call, with its extended result code.
struct SQLiteError: Error {
    var code: Int32
    var message: String
    var sql: String

    var isUniqueViolation: Bool {
        code == SQLITE_CONSTRAINT_UNIQUE_CODE || code == SQLITE_CONSTRAINT_PRIMARYKEY_CODE
    }
    var databaseError: DatabaseError {
        .statement(sql: sql, message: isUniqueViolation ? "unique violation: \(message)" : message)
    }
}

// MARK: - Readers

/// Read-only connections, each used by one caller at a time.
final class SQLiteReaderPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var idle: [SQLiteConnection]
    private let all: [SQLiteConnection]
    private var closed = false

    init(_ connections: [SQLiteConnection]) {
        idle = connections
        all = connections
    }

    func withConnection<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        condition.lock()
        while idle.isEmpty && !closed { condition.wait() }
        if closed {
            condition.unlock()
            throw DatabaseError.connection("the SQLite database is closed")
        }
        let connection = idle.removeLast()
        condition.unlock()
        defer {
            condition.lock()
            idle.append(connection)
            condition.broadcast()
            condition.unlock()
        }
        return try body(connection)
    }

    /// Waits for running reads, then closes every connection.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        while idle.count < all.count { condition.wait() }
        condition.unlock()
        all.forEach { $0.close() }
    }
}

// MARK: - Writer

/// The writer connection and the thread that owns it.
final class SQLiteWriter: @unchecked Sendable {
    enum Job {
        case write(WritePlan, CheckedContinuation<Void, any Error>)
        case batch([WritePlan], CheckedContinuation<[GuardFailure?], any Error>)
        case script([String], CheckedContinuation<Void, any Error>)
        case read(String, [SQLValue], CheckedContinuation<[SQLRow], any Error>)
        /// Work on the writer's connection between transactions (it resumes its own caller).
        case exclusive(@Sendable (SQLiteConnection) -> Void, @Sendable (any Error) -> Void)

        func fail(_ error: any Error) {
            switch self {
            case .write(_, let c): c.resume(throwing: error)
            case .batch(_, let c): c.resume(throwing: error)
            case .script(_, let c): c.resume(throwing: error)
            case .read(_, _, let c): c.resume(throwing: error)
            case .exclusive(_, let fail): fail(error)
            }
        }
    }

    static let maxGroup = 512
    /// Plans per transaction of a bulk write. Each commit rewrites every index page its rows
    /// touched, and the import's keys (order ids, codes, days, expiries) are spread over whole
    /// indexes: 4,000 members per commit imported ~20% faster than 1,000 (measured on the
    /// bench's 1M orders; 10,000 gained nothing more).
    static let maxBatchChunk = 4000

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var queue: [Job] = []
    private var stopping = false
    private var finished = false
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []
    private var transactions = 0
    private var plansCommitted = 0
    /// Told, on the writer thread right after each COMMIT, the plans it committed.
    private var commitObservers: [@Sendable ([WritePlan]) -> Void] = []

    func observeCommits(_ observer: @escaping @Sendable ([WritePlan]) -> Void) {
        condition.lock(); commitObservers.append(observer); condition.unlock()
    }

    /// Used only by the writer thread.
    private let connection: SQLiteConnection
    /// Copies the WAL into the database file beside the writer (file databases only).
    private let checkpointer: SQLiteCheckpointer?
    /// Frames in the WAL after the last commit (set by the WAL hook, on the writer thread).
    private let walFrames = WALFrames()
    /// WAL frames at which the writer copies what the checkpointer has not yet (its own
    /// checkpoint), so that its next transaction can start the WAL over: ~16 MB of 4 KB pages.
    static let restartFrames = 4096
    /// The most frames the writer copies itself. More are left to the checkpointer: after a long
    /// read held checkpoints back, the writer copying the whole backlog (tens of thousands of
    /// random pages) stalled every write for that long.
    static let writerCopyFrames = 1024
    /// WAL frames (~134 MB) at which the writer copies whatever is left anyway.
    static let ceilingFrames = 8 * restartFrames

    init(connection: SQLiteConnection, checkpointer: SQLiteCheckpointer?, name: String) {
        self.connection = connection
        self.checkpointer = checkpointer
        if checkpointer != nil { connection.onWALCommit(walFrames) }
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        thread.start()
    }

    var stats: (transactions: Int, plans: Int) {
        condition.lock(); defer { condition.unlock() }
        return (transactions, plansCommitted)
    }

    func enqueue(_ job: Job) {
        condition.lock()
        if stopping {
            condition.unlock()
            job.fail(DatabaseError.connection("the SQLite database is closed"))
            return
        }
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Asks the thread to finish the queued jobs and close the connection; `waiter` resumes then.
    func stop(waiter: CheckedContinuation<Void, Never>?) {
        condition.lock()
        stopping = true
        if finished {
            condition.unlock()
            waiter?.resume()
            return
        }
        if let waiter { stopWaiters.append(waiter) }
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                break
            }
            let jobs = queue
            queue.removeAll(keepingCapacity: true)
            condition.unlock()
            process(jobs)
        }
        checkpointer?.stop()
        connection.close()
        condition.lock()
        finished = true
        let waiters = stopWaiters
        stopWaiters.removeAll()
        condition.unlock()
        waiters.forEach { $0.resume() }
    }

    private func process(_ jobs: [Job]) {
        var i = 0
        while i < jobs.count {
            switch jobs[i] {
            case .write:
                var plans: [WritePlan] = []
                var continuations: [CheckedContinuation<Void, any Error>] = []
                while i < jobs.count, plans.count < Self.maxGroup, case .write(let plan, let c) = jobs[i] {
                    plans.append(plan)
                    continuations.append(c)
                    i += 1
                }
                let results = runGroup(plans)
                for (c, result) in zip(continuations, results) { c.resume(with: result) }
                maintainWAL()
                continue
            case .batch(let plans, let c):
                c.resume(with: Result { try runBatch(plans) })
            case .script(let statements, let c):
                c.resume(with: Result { try runScript(statements) })
                maintainWAL(bulk: true)
            case .read(let sql, let binds, let c):
                c.resume(with: Result { try connection.query(sql, binds) })
            case .exclusive(let body, _):
                body(connection)
            }
            i += 1
        }
    }

    // MARK: Transactions

    /// Runs one plan's statements, checking guards. Throws `GuardFailure` or `SQLiteError`.
    private func runPlan(_ plan: WritePlan) throws {
        for statement in plan.statements {
            let count: Int
            do {
                count = try connection.run(statement.sql, statement.binds).count
            } catch let e as SQLiteError where e.isUniqueViolation && statement.expectRows != nil {
                throw statement.failure ?? .taken("unique violation: \(e.message)")
            }
            if let expected = statement.expectRows, count != expected {
                throw statement.failure
                    ?? .conflict("expected \(expected) changed rows, got \(count): \(statement.sql.prefix(120))")
            }
        }
    }

    /// After a commit: tells the checkpointer how far the WAL has grown, and once it holds
    /// `restartFrames`, copies the frames the checkpointer has not copied yet. When that reaches
    /// the WAL's end, SQLite syncs the WAL and the database file and the next transaction writes
    /// the WAL from its start again; when it cannot (the checkpointer is mid-pass, or a reader
    /// still reads an older snapshot) it is tried again after the next commit. When more than
    /// `writerCopyFrames` are left (a backlog), it waits for the checkpointer to work it down,
    /// unless the WAL has reached `ceilingFrames`, or `bulk` (after a bulk chunk or a script,
    /// which each write more than `writerCopyFrames` and wait on no request).
    private func maintainWAL(bulk: Bool = false) {
        guard let checkpointer else { return }
        let frames = walFrames.frames
        let uncopied = checkpointer.walGrew(to: frames)
        if frames >= Self.restartFrames && (bulk || uncopied <= Self.writerCopyFrames || frames >= Self.ceilingFrames) {
            do { _ = try connection.checkpointPassive() } catch { /* tried again after the next commit */ }
        }
    }

    private func execControl(_ sql: String) throws {
        try connection.run(sql)
    }

    /// Rolls the open transaction back, if any, ignoring errors (used on the failure paths).
    private func rollbackQuietly() {
        if connection.inTransaction { try? execControl("ROLLBACK") }
    }

    /// Runs plans in one transaction, each in a savepoint. With `abortOnError`, the first error
    /// that is not a `GuardFailure` rolls the whole transaction back and is thrown; otherwise it
    /// fails only its own plan. Returns per-plan results, committed.
    private func runTransaction(_ plans: [WritePlan], abortOnError: Bool) throws -> [Result<Void, any Error>] {
        var results = [Result<Void, any Error>](repeating: .success(()), count: plans.count)
        try execControl("BEGIN IMMEDIATE")
        var started = 0 // the first plan of the current transaction
        var index = 0
        while index < plans.count {
            do {
                try execControl("SAVEPOINT p")
                do {
                    try runPlan(plans[index])
                    try execControl("RELEASE p")
                } catch {
                    if connection.inTransaction {
                        try execControl("ROLLBACK TO p")
                        try execControl("RELEASE p")
                    }
                    throw error
                }
            } catch let failure as GuardFailure {
                results[index] = .failure(failure)
            } catch {
                let mapped = (error as? SQLiteError)?.databaseError ?? error
                if abortOnError {
                    rollbackQuietly()
                    throw DatabaseError.statement(
                        sql: (error as? SQLiteError)?.sql ?? "",
                        message: "plan \(index) failed, its chunk of plans was rolled back: \(String(describing: mapped))")
                }
                results[index] = .failure(mapped)
                if !connection.inTransaction {
                    // SQLite rolled the whole transaction back (disk full, I/O error...): the
                    // plans before this one in the group are lost too. Go on in a new one.
                    let lost = DatabaseError.statement(sql: "COMMIT", message: "transaction rolled back by SQLite: \(mapped)")
                    for j in started..<index where (try? results[j].get()) != nil { results[j] = .failure(lost) }
                    started = index + 1
                    if index + 1 < plans.count { try execControl("BEGIN IMMEDIATE") }
                }
            }
            index += 1
        }
        if connection.inTransaction {
            do {
                try execControl("COMMIT")
            } catch {
                rollbackQuietly()
                throw (error as? SQLiteError)?.databaseError ?? error
            }
        }
        condition.lock(); let observers = commitObservers; condition.unlock()
        if !observers.isEmpty {
            let committed = zip(plans, results).compactMap { plan, result in (try? result.get()) != nil ? plan : nil }
            if !committed.isEmpty { for observe in observers { observe(committed) } }
        }
        return results
    }

    /// Group commit: one transaction for concurrent writes; a failing plan fails alone.
    private func runGroup(_ plans: [WritePlan]) -> [Result<Void, any Error>] {
        do {
            let results = try runTransaction(plans, abortOnError: false)
            record(plans: results.count(where: { (try? $0.get()) != nil }))
            return results
        } catch {
            rollbackQuietly()
            let mapped = (error as? SQLiteError)?.databaseError ?? error
            return plans.map { _ in .failure(mapped) }
        }
    }

    private func runBatch(_ plans: [WritePlan]) throws -> [GuardFailure?] {
        var out: [GuardFailure?] = []
        out.reserveCapacity(plans.count)
        var start = 0
        while start < plans.count {
            let end = min(start + Self.maxBatchChunk, plans.count)
            let results: [Result<Void, any Error>]
            do {
                results = try runTransaction(Array(plans[start..<end]), abortOnError: true)
            } catch {
                rollbackQuietly()
                if case DatabaseError.statement(let sql, let message) = error {
                    throw DatabaseError.statement(sql: sql, message: "batch: \(message) (plans before \(start) are committed)")
                }
                throw (error as? SQLiteError)?.databaseError ?? error
            }
            for result in results {
                switch result {
                case .success: out.append(nil)
                case .failure(let e as GuardFailure): out.append(e)
                case .failure(let e): throw e
                }
            }
            record(plans: results.count(where: { (try? $0.get()) != nil }))
            maintainWAL(bulk: true)
            start = end
        }
        return out
    }

    private func runScript(_ statements: [String]) throws {
        do {
            try execControl("BEGIN IMMEDIATE")
            for sql in statements { try connection.exec(sql) }
            try execControl("COMMIT")
            record(plans: 0)
        } catch {
            rollbackQuietly()
            throw (error as? SQLiteError)?.databaseError ?? error
        }
    }

    private func record(plans: Int) {
        condition.lock()
        transactions += 1
        plansCommitted += plans
        condition.unlock()
    }
}

// MARK: - Checkpointer

/// Frames in the WAL after the writer's last commit, written by the WAL hook.
final class WALFrames: @unchecked Sendable {
    var frames = 0
}

/// Copies committed WAL frames into the database file on a connection and thread of its own,
/// and flushes the database file after each pass, so that the writer neither copies pages nor
/// waits for the disk's random writes in the middle of its commits (what SQLite's automatic
/// checkpoint, run by the committing connection, does). The writer still starts the WAL over: at
/// `SQLiteWriter.restartFrames` it copies the few frames left (see `maintainWAL`).
///
/// Safe as SQLite's own checkpoints are: a checkpoint syncs the WAL before copying, and a WAL is
/// only written over after a checkpoint that reached its end has synced the database file.
final class SQLiteCheckpointer: @unchecked Sendable {
    /// New frames that start a pass: fewer, larger passes write each page once for more commits.
    static let passFrames = 512
    /// A pass also runs when frames wait this long without reaching `passFrames`.
    static let idleWait: TimeInterval = 0.1

    private let condition = NSCondition()
    // Guarded by `condition`:
    /// Frames in the WAL after the writer's last commit, and how many of them a pass has copied.
    private var latest = 0, copied = 0
    private var stopping = false
    private var finished = false
    /// Used only by the checkpointer thread.
    private let connection: SQLiteConnection

    init(path: String, synchronous: SQLiteDatabase.Synchronous) throws {
        connection = try SQLiteConnection(path: path, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX)
        do {
            // A checkpoint syncs as its connection's `synchronous` says.
            try connection.exec("PRAGMA synchronous=\(synchronous.rawValue)")
        } catch {
            connection.close()
            throw error
        }
        let thread = Thread { [self] in self.loop() }
        thread.name = "patron-sqlite-checkpointer"
        thread.start()
    }

    /// The writer committed: the WAL now holds `frames` frames (fewer than before when it started
    /// over). Returns how many of them no pass has copied yet.
    @discardableResult
    func walGrew(to frames: Int) -> Int {
        condition.lock(); defer { condition.unlock() }
        if frames < copied { copied = 0 } // the WAL started over
        latest = frames
        if latest - copied >= Self.passFrames { condition.signal() }
        return latest - copied
    }

    /// Ends the thread and closes its connection (called by the writer thread, before it closes its own).
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        condition.lock()
        while !stopping {
            let waiting = latest - copied
            if waiting <= 0 { condition.wait(); continue }
            // Fewer frames than a pass: wait for more, or run the pass when none come for a while.
            if waiting < Self.passFrames, condition.wait(until: Date(timeIntervalSinceNow: Self.idleWait)) { continue }
            let before = copied
            condition.unlock()
            let result = try? connection.checkpointPassive()
            let progressed = result.map { $0.copied != before } ?? false
            // A pass that stopped short of the WAL's end leaves its pages unflushed (SQLite syncs
            // the file only when it reaches the end): flush them, so that the writer's own
            // checkpoint has little left to wait for.
            if progressed { try? connection.syncDatabaseFile() }
            condition.lock()
            if let result { copied = result.copied }
            if !progressed {
                // Busy, or readers hold the frames back: try again a little later.
                _ = condition.wait(until: Date(timeIntervalSinceNow: 0.005))
            }
        }
        finished = true
        condition.broadcast()
        condition.unlock()
        connection.close()
    }
}
