import ArgumentParser
import AsyncHTTPClient
import CSQLite
import Foundation
import Logging
import NIOCore
import PatronCore
import PatronServer
import PatronStore

/// `patron bench`: the spine's figures, each beside the raw limit it is judged against, in one run.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure bulk import and online writes against raw SQLite and bare-HTTP limits (use a release build).")
    @Option(help: "Orders to import.") var orders = 1_000_000
    @Option(help: "Members the orders belong to.") var members = 100_000
    @Option(help: "HTTP requests per load run.") var requests = 20_000
    @Option(help: "Concurrent HTTP connections.") var connections = 32
    @Option(help: "Working folder (emptied).") var dir = "/tmp/patron-bench"
    @Option(help: "Write the figures as JSON here too.") var output: String?
    @Flag(help: "Skip the HTTP part.") var skipHttp = false
    @Option(help: "Members for the segment preview (0 skips it).") var segmentMembers = 1_000_000
    @Option(help: "Orders of those members.") var segmentOrders = 10_000_000
    @Flag(help: "Run only the segment part.") var onlySegments = false
    @Option(help: "The CDNOW master file for the customer-base models (default: ../shared/datasets/cdnow/CDNOW_master.txt).") var cdnow: String?
    @Option(help: "The Python with `lifetimes` 0.11.3 to fit beside (pip install lifetimes==0.11.3).") var python = "python3"
    @Flag(help: "Skip the customer-base models part.") var skipClv = false
    @Flag(help: "Run only the customer-base models part.") var onlyClv = false

    func run() async throws {
        #if DEBUG
        print("warning: this is a debug build; figures are only meaningful with `swift build -c release` (.build/release/patron bench)")
        #endif
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var results: [String: Double] = [:]
        print("patron bench: \(orders) orders for \(members) members; \(requests) HTTP requests over \(connections) connections; \(ProcessInfo.processInfo.activeProcessorCount) cores; folder \(dir)\n")
        if onlySegments {
            try await segments(members: segmentMembers, orders: segmentOrders, now: PatronApp.systemNow(), results: &results)
            try write(results)
            return
        }
        if onlyClv {
            try customerValue(cdnow: cdnow, python: python, results: &results)
            try write(results)
            return
        }

        // 1. Raw bulk limit.
        let raw = try RawSQLite.insertLoop(path: "\(dir)/raw.db", rows: orders, perTransaction: 1000, synchronous: "NORMAL")
        results["raw_insert_rows_per_s"] = raw
        print(String(format: "raw SQLite C API insert loop (prepared, 1,000 rows/txn, WAL NORMAL): %10.0f rows/s", raw))

        // 2. Bulk import through the engine.
        let now = PatronApp.systemNow()
        let clock = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
        let generated = Self.generate(orders: orders, members: members, now: now, clock: clock)
        var logger = Logger(label: "bench"); logger.logLevel = .warning
        let store = try await Store.open("\(dir)/bench.db", logger: logger)
        try await store.migrate()
        guard case .success(let def) = ProgramParser.parse(try YAMLDocument.parse(Demo.programYAML(year: clock.date(now).year))) else { fatalError("demo program invalid") }
        _ = try await store.applyProgram(def, effectiveFrom: now.adding(days: -800), now: now)
        // The engine alone, without storage: how much of the import is deciding, how much writing;
        // and the same without the program's tag rules, for what keeping tags true costs.
        let byMember = Dictionary(grouping: generated, by: \.who).map { $0.value.sorted { $0.occurredAt < $1.occurredAt } }
        func fold(_ definition: ProgramDefinition) -> Double {
            let engine = Engine(program: ProgramVersions([.init(version: 1, effectiveFrom: now.adding(days: -800), definition: definition)]))
            let started = ContinuousClock.now
            var folded = 0
            for (n, mine) in byMember.enumerated() {
                var fx = Effects()
                var state = engine.start(member: MemberID(Int64(n + 1)), registeredAt: mine[0].occurredAt, effects: &fx)
                for (i, o) in mine.enumerated() {
                    _ = try? engine.apply(&state, MemberEvent(id: EventID(Int64(i + 1)), occurredAt: o.occurredAt, body: .orderPaid(o.order)), effects: &fx)
                    folded += 1
                }
                engine.advance(&state, to: now, effects: &fx)
            }
            return Double(folded) / (ContinuousClock.now - started).seconds
        }
        let foldRate = fold(def)
        var untagged = def
        untagged.tags = []
        let untaggedRate = fold(untagged)
        results["engine_only_orders_per_s"] = foldRate
        results["engine_only_untagged_orders_per_s"] = untaggedRate
        print(String(format: "engine alone, in memory (the same orders, no storage):               %10.0f orders/s", foldRate))
        print(String(format: "  the same without the program's %d tag rules:                        %10.0f orders/s: tags add %.0f%% to an order's engine time (goal ≤ 20%%)",
                     def.tags.filter { $0.rule != nil }.count, untaggedRate, 100 * (untaggedRate / foldRate - 1)))
        let started = ContinuousClock.now
        let report = try await store.importOrders(program: "demo", generated, registerMissing: true, now: now)
        let importSeconds = (ContinuousClock.now - started).seconds
        let importRate = Double(report.ordersImported) / importSeconds
        results["import_orders_per_s"] = importRate
        results["import_vs_raw"] = importRate / raw
        print(String(format: "engine bulk import (%d orders, %d members created, %d rejected):   %10.0f orders/s in %.1f s = %.1f%% of raw (goal ≥ 25%%)",
                     report.ordersImported, report.membersCreated, report.rejected.count, importRate, importSeconds, 100 * importRate / raw))
        // Spot-check the ledgers just written.
        let sample = try await store.listMembers(program: "demo", cursor: nil, limit: 50).items
        var problems = 0
        for m in sample { problems += try await store.audit(program: "demo", member: m.id).count }
        print("  audit of \(sample.count) imported members: \(problems == 0 ? "balanced" : "\(problems) PROBLEMS")")
        let jobsStart = ContinuousClock.now
        let jobs = try await store.runJobs(asOf: now, now: now)
        print(String(format: "  jobs to now: %d members, %d points lapsed, %d tier changes in %.1f s", jobs.members, jobs.expiredPoints, jobs.tierChanges, (ContinuousClock.now - jobsStart).seconds))

        try await Self.eventOverhead(dir: dir, definition: def, now: now, results: &results)

        guard !skipHttp else {
            try await store.close()
            if segmentMembers > 0 { try await segments(members: segmentMembers, orders: segmentOrders, now: now, results: &results) }
            if !skipClv { try customerValue(cdnow: cdnow, python: python, results: &results) }
            try write(results)
            return
        }
        // 3. Raw durable commit limit.
        let fullCommits = try RawSQLite.commitLoop(path: "\(dir)/raw-full.db", seconds: 3)
        results["raw_full_commits_per_s"] = fullCommits
        print(String(format: "\nraw SQLite single-row commits, WAL synchronous=FULL:                %10.0f commits/s", fullCommits))
        let pageFlushes = try RawSQLite.randomPageFlushes(path: "\(dir)/raw-pages.bin", seconds: 3)
        results["disk_random_pages_per_s"] = pageFlushes
        print(String(format: "disk: random 4 KB page writes flushed (1,000 per fdatasync):         %10.0f pages/s", pageFlushes))

        // 4. HTTP against `patron serve --durable` in its own process.
        let key = try await store.createKey(program: "demo", name: "bench", scopes: [.read, .write], now: now).token
        // Requests go to many members, as a store's traffic does (a few hot members would measure
        // the cost of their ever larger state instead).
        let ids = try await store.db.query("SELECT member_id FROM members WHERE program_id = ? ORDER BY member_id LIMIT 20000", [.text("demo")]).map { MemberID(try $0.int("member_id")) }.shuffled()
        // Write-off codes: free-shipping coupons (auto-claimed) for 1,000 members, 20 each.
        let codesStart = ContinuousClock.now
        let perMember = 20, codeMembers = max(1, min(ids.count, (requests + perMember - 1) / perMember))
        for (n, m) in ids.prefix(codeMembers).enumerated() {
            _ = try await store.record(program: "demo", member: m, occurredAt: now, body: .benefitGranted(BenefitGranted(benefit: "free_shipping", count: perMember, reason: "bench", staff: "bench")),
                                       idempotencyKey: "bench-grant-\(n)", requestHash: "bench", now: now)
        }
        let codes = try await store.openGrants(program: "demo", claimed: true, now: now, limit: requests * 2).filter { $0.benefit == "free_shipping" }.compactMap(\.code).shuffled()
        print(String(format: "  %d write-off codes for %d members prepared in %.1f s", codes.count, codeMembers, (ContinuousClock.now - codesStart).seconds))
        try await store.close()
        let port = 18_000 + Int.random(in: 0..<2000)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        server.arguments = ["serve", "--database", "\(dir)/bench.db", "--durable", "--port", String(port), "--jobs-interval", "0", "--bench-routes"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)))
        let base = "http://127.0.0.1:\(port)"
        try await Self.waitHealthy(client, base)

        let bodyFor: @Sendable (Int) -> String = { i in
            #"{"type":"order.paid","occurredAt":"\#(now.iso8601)","data":{"orderId":"http-\#(i)","lines":[{"sku":"A\#(i % 97)","category":"apparel","quantity":1,"amountMinor":\#(1000 + i % 50000),"discountMinor":0}],"discountMinor":0,"channel":"app"}}"#
        }
        let bare = try await Self.load(client, requests: requests, connections: connections) { i in
            (url: "\(base)/bench/bare", key: nil, idem: nil, body: bodyFor(i))
        }
        results["bare_rps"] = bare.rps
        print(String(format: "bare route (decode the same JSON, no database):                       %10.0f req/s, p50 %.2f ms, p99 %.2f ms", bare.rps, bare.p50, bare.p99))
        let written = Self.bytesWritten(pid: server.processIdentifier)
        let online = try await Self.load(client, requests: requests, connections: connections) { i in
            (url: "\(base)/v1/members/\(ids[i % ids.count])/events", key: key, idem: "bench-\(i)", body: bodyFor(i))
        }
        let perRequest = Double(Self.bytesWritten(pid: server.processIdentifier) - written) / Double(max(1, requests))
        results["online_rps"] = online.rps; results["online_p50_ms"] = online.p50; results["online_p99_ms"] = online.p99
        results["online_kb_written_per_request"] = perRequest / 1024
        results["online_vs_full_commits"] = online.rps / fullCommits; results["online_vs_bare"] = online.rps / bare.rps
        print(String(format: "order.paid over HTTP, durable (fsync'd), %d connections:              %10.0f req/s, p50 %.2f ms, p99 %.2f ms (%d errors)",
                     connections, online.rps, online.p50, online.p99, online.errors))
        print(String(format: "  = %.1fx the raw durable commit rate (goal ≥ 3x), %.0f%% of the bare route (goal ≥ 40%%), p99 %@ 20 ms",
                     online.rps / fullCommits, 100 * online.rps / bare.rps, online.p99 < 20 ? "under" : "OVER"))
        // About half of what the server writes is the WAL (sequential), half the checkpoints'
        // copies into the database file, at random places: the disk's random page rate bounds it.
        print(String(format: "  the server wrote %.0f KB per request; at the disk's random page rate, their database-file half alone takes ~1/%.0f s",
                     perRequest / 1024, pageFlushes / max(1, perRequest / 2 / 4096)))
        if !codes.isEmpty {
            let redeem = try await Self.load(client, requests: min(requests, codes.count), connections: connections) { i in
                (url: "\(base)/v1/redemptions", key: key, idem: "bench-redeem-\(i)",
                 body: #"{"code":"\#(codes[i])","orderId":"bench-r-\#(i)","amountMinor":20000,"shippingMinor":800,"channel":"app"}"#)
            }
            results["redeem_rps"] = redeem.rps; results["redeem_p50_ms"] = redeem.p50; results["redeem_p99_ms"] = redeem.p99
            print(String(format: "write-off of a code over HTTP (POST /v1/redemptions), durable, %d connections: %6.0f req/s, p50 %.2f ms, p99 %.2f ms (%d errors)",
                         connections, redeem.rps, redeem.p50, redeem.p99, redeem.errors))
            print(String(format: "  = %.1fx the raw durable commit rate, %.0f%% of the bare route, %.0f%% of order.paid's rate (goal ≥ 100%%), p99 %@ 20 ms",
                         redeem.rps / fullCommits, 100 * redeem.rps / bare.rps, 100 * redeem.rps / online.rps, redeem.p99 < 20 ? "under" : "OVER"))
        }
        let mem = Self.peakMemoryKiB(pid: server.processIdentifier)
        results["server_peak_rss_mib"] = Double(mem.peak) / 1024
        print(String(format: "server peak memory (VmHWM) holding the %d-member database under load: %.0f MiB (now %.0f MiB)", members, Double(mem.peak) / 1024, Double(mem.now) / 1024))
        try await client.shutdown()
        server.terminate()
        server.waitUntilExit()
        if segmentMembers > 0 { try await segments(members: segmentMembers, orders: segmentOrders, now: now, results: &results) }
        if !skipClv { try customerValue(cdnow: cdnow, python: python, results: &results) }
        try write(results)
    }

    func write(_ results: [String: Double]) throws {
        guard let output else { return }
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .prettyPrinted]
        try e.encode(results).write(to: URL(fileURLWithPath: output))
    }

    /// A store's year of orders: `members` members, each with a pace of their own.
    static func generate(orders: Int, members: Int, now: Timestamp, clock: ProgramClock) -> [ImportOrder] {
        var rng = SplitMix(seed: 7)
        let span: Int64 = 540 * 86_400
        var out: [ImportOrder] = []
        out.reserveCapacity(orders)
        for i in 0..<orders {
            let m = i < members ? i : Int(rng.next() % UInt64(members))
            let at = now.adding(seconds: -86_400 - Int64(rng.next() % UInt64(span)))
            let lines = rng.next() % 4 == 0
                ? [OrderLine(sku: "S\(rng.next() % 500)", category: "apparel", amountMinor: Int64(500 + rng.next() % 40_000)),
                   OrderLine(sku: "S\(rng.next() % 500)", category: "shoes", quantity: 2, amountMinor: Int64(500 + rng.next() % 40_000))]
                : [OrderLine(sku: "S\(rng.next() % 500)", category: "beauty", amountMinor: Int64(500 + rng.next() % 40_000))]
            out.append(ImportOrder(line: i + 1, who: .identity(Identity(kind: .card, value: "B\(m)")), occurredAt: at,
                                   order: OrderPaid(orderId: "b\(i)", lines: lines, channel: i % 3 == 0 ? "app" : "store", store: "s\(m % 20)")))
        }
        return out
    }

    static func waitHealthy(_ client: HTTPClient, _ base: String) async throws {
        for _ in 0..<200 {
            if let r = try? await client.execute(HTTPClientRequest(url: "\(base)/healthz"), timeout: .seconds(1)), r.status == .ok { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ValidationError("the server did not come up")
    }

    struct LoadResult { var rps: Double; var p50: Double; var p99: Double; var errors: Int }

    /// `connections` workers send `requests` requests in all, one at a time each.
    static func load(_ client: HTTPClient, requests: Int, connections: Int,
                     _ make: @escaping @Sendable (Int) -> (url: String, key: String?, idem: String?, body: String)) async throws -> LoadResult {
        let counter = Counter()
        let started = ContinuousClock.now
        let perWorker = await withTaskGroup(of: ([Double], Int).self) { group in
            for _ in 0..<connections {
                group.addTask {
                    var lat: [Double] = [], errors = 0
                    while let i = counter.next(limit: requests) {
                        let spec = make(i)
                        var req = HTTPClientRequest(url: spec.url)
                        req.method = .POST
                        req.headers.add(name: "Content-Type", value: "application/json")
                        if let k = spec.key { req.headers.add(name: "Authorization", value: "Bearer \(k)") }
                        if let k = spec.idem { req.headers.add(name: "Idempotency-Key", value: k) }
                        req.body = .bytes(ByteBuffer(string: spec.body))
                        let t = ContinuousClock.now
                        do {
                            let r = try await client.execute(req, timeout: .seconds(30))
                            _ = try await r.body.collect(upTo: 1 << 20)
                            if r.status.code != 201 { errors += 1 }
                        } catch { errors += 1 }
                        lat.append((ContinuousClock.now - t).seconds * 1000)
                    }
                    return (lat, errors)
                }
            }
            var all: [([Double], Int)] = []
            for await r in group { all.append(r) }
            return all
        }
        let seconds = (ContinuousClock.now - started).seconds
        let lat = perWorker.flatMap(\.0).sorted()
        func pct(_ p: Double) -> Double { lat.isEmpty ? 0 : lat[min(lat.count - 1, Int(Double(lat.count) * p))] }
        return LoadResult(rps: Double(lat.count) / seconds, p50: pct(0.5), p99: pct(0.99), errors: perWorker.reduce(0) { $0 + $1.1 })
    }

    /// The number after `name` on its line of /proc/PID/`file` (0 when missing).
    static func procField(pid: Int32, _ file: String, _ name: String) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/\(file)", encoding: .utf8) else { return 0 }
        return s.split(separator: "\n").first { $0.hasPrefix(name) }.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
    }

    /// Bytes the process has written through system calls.
    static func bytesWritten(pid: Int32) -> Int { procField(pid: pid, "io", "wchar:") }

    static func peakMemoryKiB(pid: Int32) -> (peak: Int, now: Int) {
        (procField(pid: pid, "status", "VmHWM:"), procField(pid: pid, "status", "VmRSS:"))
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next(limit: Int) -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}


/// The raw limits: SQLite's C API with one prepared statement, nothing else.
enum RawSQLite {
    static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// Opens `path` in WAL mode; `create` adds the `raw` table of the insert loops.
    static func open(_ path: String, synchronous: String, create: Bool = true) throws -> OpaquePointer {
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK, let db else { throw ValidationError("cannot open \(path)") }
        let table = "CREATE TABLE raw (id INTEGER NOT NULL, member_id INTEGER NOT NULL, at INTEGER NOT NULL, amount INTEGER NOT NULL, sku TEXT NOT NULL)"
        for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=\(synchronous)"] + (create ? [table] : []) {
            guard sqlite3_exec(db, pragma, nil, nil, nil) == SQLITE_OK else { throw ValidationError("\(pragma): \(String(cString: sqlite3_errmsg(db)))") }
        }
        return db
    }

    /// Rows per second inserting `rows` plain rows with one prepared statement, `perTransaction` a commit.
    static func insertLoop(path: String, rows: Int, perTransaction: Int, synchronous: String) throws -> Double {
        let db = try open(path, synchronous: synchronous)
        defer { sqlite3_close(db) }
        var stmt: OpaquePointer?
        sqlite3_prepare_v2(db, "INSERT INTO raw (id, member_id, at, amount, sku) VALUES (?, ?, ?, ?, ?)", -1, &stmt, nil)
        defer { sqlite3_finalize(stmt) }
        let started = ContinuousClock.now
        var i = 0
        while i < rows {
            sqlite3_exec(db, "BEGIN", nil, nil, nil)
            for _ in 0..<min(perTransaction, rows - i) {
                sqlite3_bind_int64(stmt, 1, Int64(i)); sqlite3_bind_int64(stmt, 2, Int64(i % 100_000))
                sqlite3_bind_int64(stmt, 3, 1_700_000_000 + Int64(i)); sqlite3_bind_int64(stmt, 4, Int64(1000 + i % 5000))
                sqlite3_bind_text(stmt, 5, "S\(i % 500)", -1, transient)
                guard sqlite3_step(stmt) == SQLITE_DONE else { throw ValidationError("insert: \(String(cString: sqlite3_errmsg(db)))") }
                sqlite3_reset(stmt)
                i += 1
            }
            sqlite3_exec(db, "COMMIT", nil, nil, nil)
        }
        return Double(rows) / (ContinuousClock.now - started).seconds
    }

    /// Commits per second of one-row transactions for `seconds` seconds.
    static func commitLoop(path: String, seconds: Double) throws -> Double {
        let db = try open(path, synchronous: "FULL")
        defer { sqlite3_close(db) }
        var stmt: OpaquePointer?
        sqlite3_prepare_v2(db, "INSERT INTO raw (id, member_id, at, amount, sku) VALUES (?, ?, ?, ?, ?)", -1, &stmt, nil)
        defer { sqlite3_finalize(stmt) }
        let started = ContinuousClock.now
        var n = 0
        while (ContinuousClock.now - started).seconds < seconds {
            sqlite3_exec(db, "BEGIN", nil, nil, nil)
            sqlite3_bind_int64(stmt, 1, Int64(n)); sqlite3_bind_int64(stmt, 2, 1); sqlite3_bind_int64(stmt, 3, 1); sqlite3_bind_int64(stmt, 4, 1)
            sqlite3_bind_text(stmt, 5, "S", -1, transient)
            sqlite3_step(stmt); sqlite3_reset(stmt)
            sqlite3_exec(db, "COMMIT", nil, nil, nil)
            n += 1
        }
        return Double(n) / (ContinuousClock.now - started).seconds
    }

    /// The disk's own limit for the database file's checkpoints: 4 KB pages written at random
    /// places of a 512 MiB file (already written once) and flushed, 1,000 per `fdatasync`, for
    /// `seconds` seconds. Pages per second.
    static func randomPageFlushes(path: String, seconds: Double) throws -> Double {
        let fd = Foundation.open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw ValidationError("cannot open \(path)") }
        defer { close(fd); unlink(path) }
        let pages = 131_072 // 512 MiB
        var block = [UInt8](repeating: 7, count: 1 << 20)
        for i in 0..<(pages / 256) {
            guard pwrite(fd, &block, block.count, off_t(i) << 20) == block.count else { throw ValidationError("cannot write \(path)") }
        }
        fdatasync(fd)
        var page = [UInt8](repeating: 9, count: 4096)
        var rng = SplitMix(seed: 42)
        let started = ContinuousClock.now
        var n = 0
        while (ContinuousClock.now - started).seconds < seconds {
            for _ in 0..<1_000 {
                page[0] &+= 1
                guard pwrite(fd, &page, 4096, off_t(rng.next() % UInt64(pages)) * 4096) == 4096 else { throw ValidationError("cannot write \(path)") }
            }
            fdatasync(fd)
            n += 1_000
        }
        return Double(n) / (ContinuousClock.now - started).seconds
    }
}

extension Bench {
    /// The issue's "applying one order event, with its tag and segment updates" through the store:
    /// each event decided, written and committed on its own (as one API request), for members
    /// with a history; once under the demo program with its rule tags and three saved segments
    /// kept current, once under the same program without them. The two run in alternating rounds
    /// in one database, so drift in the machine's speed falls on both.
    static func eventOverhead(dir: String, definition def: ProgramDefinition, now: Timestamp, results: inout [String: Double]) async throws {
        var logger = Logger(label: "bench"); logger.logLevel = .warning
        let store = try await Store.open("\(dir)/events.db", logger: logger)
        try await store.migrate()
        var tagged = def, plain = def
        tagged.key = "tagged"; plain.key = "plain"; plain.tags = []
        let members = 2_000, rounds = 4, perRound = 1_000
        let clock = ProgramClock(timeZone: TimeZone(identifier: def.timeZone)!)
        let history = generate(orders: members * 8, members: members, now: now, clock: clock)
        for p in [tagged, plain] {
            _ = try await store.applyProgram(p, effectiveFrom: now.adding(days: -800), now: now)
            _ = try await store.importOrders(program: p.key, history, registerMissing: true, now: now)
        }
        try await saveSegments(store, program: tagged.key, now: now)
        _ = try await store.refreshSegments(program: tagged.key, now: now)
        // Each program has its own members (the same card numbers): the k-th event goes to the
        // same card's member in both.
        var ids: [String: [MemberID]] = [:]
        for p in [tagged.key, plain.key] {
            ids[p] = try await store.db.query("SELECT member_id FROM identities WHERE program_id = ? AND kind = 'card' ORDER BY value", [.text(p)]).map { MemberID(try $0.int("member_id")) }
        }
        var seconds = (tagged: 0.0, plain: 0.0)
        var n = 0
        for round in 0..<rounds {
            for p in [tagged.key, plain.key] {
                let started = ContinuousClock.now
                for i in 0..<perRound {
                    let k = round * perRound + i
                    let m = ids[p]![(k * 7919) % ids[p]!.count]
                    let lines = k % 4 == 0 ? [OrderLine(sku: "S\(k % 500)", category: "shoes", amountMinor: Int64(500 + (k * 37) % 60_000), discountMinor: 100)]
                                           : [OrderLine(sku: "S\(k % 500)", category: "beauty", amountMinor: Int64(500 + (k * 37) % 40_000))]
                    _ = try await store.record(program: p, member: m, occurredAt: now, body: .orderPaid(OrderPaid(orderId: "ev-\(k)", lines: lines, channel: "app")),
                                               idempotencyKey: "ev-\(k)", requestHash: "ev-\(k)", now: now)
                }
                // Segments kept current: the tracker's pass over the members just written.
                if p == tagged.key { _ = try await store.refreshSegments(program: p, now: now) }
                let s = (ContinuousClock.now - started).seconds
                if p == tagged.key { seconds.tagged += s } else { seconds.plain += s }
            }
            n += perRound
        }
        try await store.close()
        let (withUs, withoutUs) = (seconds.tagged * 1e6 / Double(n), seconds.plain * 1e6 / Double(n))
        results["event_with_tags_segments_us"] = withUs
        results["event_without_us"] = withoutUs
        print(String(format: "order.paid through the store, one commit each (%d events per program, %d members with ~8 orders):", n, members))
        print(String(format: "  with the demo's %d rule tags and %d saved segments kept current: %.0f µs per event; without them: %.0f µs: tags and segments add %.0f%% (goal ≤ 20%%)",
                     def.tags.filter { $0.rule != nil }.count, savedSegments.count, withUs, withoutUs, 100 * (withUs / withoutUs - 1)))
    }
}
