import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PatronCore
import PatronServer
import PatronStore

@main
struct Patron: AsyncParsableCommand {

    static let configuration = CommandConfiguration(
        commandName: "patron",
        abstract: "Patron: membership and loyalty operations (会员运营系统).",
        subcommands: [Serve.self, Migrate.self, ProgramCommand.self, Keys.self, Jobs.self, Import.self, SegmentsCommand.self, MembersCommand.self, DemoCommand.self, Analytics.self, Bench.self]
    )
}

struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "Database: a SQLite file path or a postgres:// URL (default: $PATRON_DATABASE_URL, else ./patron.db).")
    var database: String?

    var url: String { database ?? ProcessInfo.processInfo.environment["PATRON_DATABASE_URL"] ?? "./patron.db" }

    func open(synchronousFull: Bool = false, migrate: Bool = true) async throws -> Store {
        var logger = Logger(label: "patron")
        logger.logLevel = .warning
        let store = try await Store.open(url, synchronousFull: synchronousFull, logger: logger)
        if migrate { try await store.migrate() }
        return store
    }

    /// Runs `body` with the store open, and closes it afterwards, also when `body` throws.
    func withStore<T>(_ body: (Store) async throws -> T) async throws -> T {
        let store = try await open()
        do {
            let r = try await body(store)
            try await store.close()
            return r
        } catch {
            try? await store.close()
            throw error
        }
    }
}

func now() -> Timestamp { PatronApp.systemNow() }

func readProgram(_ path: String) throws -> Result<ProgramDefinition, ValidationFailure> { try readProgramDocument(path).0 }

func readProgramDocument(_ path: String) throws -> (Result<ProgramDefinition, ValidationFailure>, JSONValue?) {
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
    let text = String(decoding: data, as: UTF8.self)
    let doc: JSONValue
    if path.hasSuffix(".json") {
        do { doc = try JSONDecoder().decode(JSONValue.self, from: data) } catch { return (.failure(ValidationFailure([FieldError(path: "", reason: "is not valid JSON: \(error)")])), nil) }
    } else {
        do { doc = try YAMLDocument.parse(text) } catch let e as ValidationFailure { return (.failure(e), nil) }
    }
    return (ProgramParser.parse(doc), doc)
}

func printJSON<T: Encodable>(_ v: T) {
    let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    print(String(decoding: (try? e.encode(v)) ?? Data(), as: UTF8.self))
}

/// A progress bar on standard error: redrawn in place on a terminal, a line per 10% otherwise.
final class Progress: @unchecked Sendable {
    let total: Int, label: String
    let tty = isatty(2) != 0
    let lock = NSLock()
    var lastDecile = -1
    let started = Date()
    init(total: Int, label: String) { self.total = max(1, total); self.label = label }
    func update(_ done: Int) {
        lock.lock(); defer { lock.unlock() }
        let frac = min(1, Double(done) / Double(total))
        let rate = Double(done) / max(0.001, Date().timeIntervalSince(started))
        if tty {
            let width = 30, filled = Int(frac * Double(width))
            FileHandle.standardError.write(Data("\r[\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] \(Int(frac * 100))% \(done)/\(total) \(label) (\(Int(rate))/s)".utf8))
        } else if Int(frac * 10) > lastDecile {
            lastDecile = Int(frac * 10)
            FileHandle.standardError.write(Data("\(Int(frac * 100))% \(done)/\(total) \(label) (\(Int(rate))/s)\n".utf8))
        }
    }
    func finish() { if tty { FileHandle.standardError.write(Data("\n".utf8)) } }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP API and the job runner.")
    @OptionGroup var db: DatabaseOptions
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8080
    @Flag(help: "Acknowledge writes only once fsync'd (SQLite synchronous=FULL).") var durable = false
    @Option(help: "Seconds between runs of scheduled work (0: off).") var jobsInterval = 30
    @Flag(help: .hidden) var benchRoutes = false

    func run() async throws {
        PatronMetrics.bootstrap()
        let store = try await db.open(synchronousFull: durable)
        var logger = Logger(label: "patron")
        logger.logLevel = .info
        let app = PatronApp.build(store: store, host: host, port: port, jobsInterval: jobsInterval > 0 ? .seconds(jobsInterval) : nil, benchRoutes: benchRoutes, logger: logger)
        try await app.runService()
        try await store.close()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Bring the database to the current schema.")
    @OptionGroup var db: DatabaseOptions
    func run() async throws {
        let store = try await db.open(migrate: false)
        let applied = try await store.migrate()
        print(applied.isEmpty ? "schema is current (version \(try await store.schemaVersion() ?? 0))" : "applied migration(s) \(applied.map(String.init).joined(separator: ", "))")
        try await store.close()
    }
}

struct ProgramCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "program", abstract: "Apply, show or validate program documents (YAML or JSON).",
                                                    subcommands: [Apply.self, Show.self, Validate.self])
    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a program document and store it as the program's next version.")
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The program document (.yaml, .yml or .json).") var file: String
        @Option(help: "When the version takes effect (ISO 8601; default now).") var effectiveFrom: String?
        func run() async throws {
            let (parsed, doc) = try readProgramDocument(file)
            switch parsed {
            case .failure(let f):
                for e in f.errors { FileHandle.standardError.write(Data("\(file): \(e)\n".utf8)) }
                throw ExitCode(2)
            case .success(let def):
                var from: Timestamp? = nil
                if let s = effectiveFrom { guard let t = Timestamp(iso8601: s) else { throw ValidationError("--effective-from: '\(s)' is not ISO 8601") }; from = t }
                let store = try await db.open()
                let r: (info: ProgramVersionInfo, changed: Bool)
                do { r = try await store.applyProgram(def, document: doc, effectiveFrom: from, now: now()) } catch StoreError.invalid(let errs) {
                    for e in errs { FileHandle.standardError.write(Data("\(file): \(e)\n".utf8)) }
                    throw ExitCode(2)
                }
                print(r.changed ? "program \(def.key): stored version \(r.info.version), in force from \(r.info.effectiveFrom)" : "program \(def.key): unchanged (version \(r.info.version))")
                try await store.close()
            }
        }
    }
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a program's versions as JSON.")
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The program key.") var key: String
        func run() async throws {
            let store = try await db.open()
            let v = try await store.programVersions(key)
            if v.isEmpty { FileHandle.standardError.write(Data("program '\(key)' does not exist\n".utf8)); throw ExitCode(1) }
            printJSON(v)
            try await store.close()
        }
    }
    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a program document; print every error with its path.")
        @Argument(help: "The program document.") var file: String
        func run() async throws {
            switch try readProgram(file) {
            case .failure(let f):
                for e in f.errors { print("\(file): \(e)") }
                throw ExitCode(2)
            case .success(let def): print("\(file): valid program '\(def.key)' with \(def.tiers.count) tiers")
            }
        }
    }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage API keys.", subcommands: [Create.self, Revoke.self])
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API key for one program; the token is printed once.")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The program the key belongs to.") var program: String
        @Option(help: "A name to recognise the key by.") var name = "cli"
        @Option(help: "Comma-separated scopes: read, write, admin.") var scopes = "read,write"
        func run() async throws {
            var set = Set<Scope>()
            for s in scopes.split(separator: ",") {
                guard let sc = Scope(rawValue: s.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--scopes: '\(s)' is not one of read, write, admin") }
                set.insert(sc)
            }
            let store = try await db.open()
            do {
                let k = try await store.createKey(program: program, name: name, scopes: set, now: now())
                print(k.token)
            } catch StoreError.programNotFound(let p) {
                FileHandle.standardError.write(Data("program '\(p)' does not exist; apply it first with 'patron program apply'\n".utf8))
                throw ExitCode(1)
            }
            try await store.close()
        }
    }
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an API key by its id (the part after ptk_).")
        @OptionGroup var db: DatabaseOptions
        @Argument var keyId: String
        func run() async throws {
            let store = try await db.open()
            print(try await store.revokeKey(keyId, now: now()) ? "revoked \(keyId)" : "no active key \(keyId)")
            try await store.close()
        }
    }
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Scheduled work.", subcommands: [Run.self, RFM.self])
    struct RFM: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rfm", abstract: "Score every member of a program (RFM quintiles, lifecycle stage) as of a day; meant to run daily.")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The program.") var program: String
        @Option(help: "Score as of this instant (ISO 8601; default now).") var asOf: String?
        func run() async throws {
            var t = now()
            if let s = asOf { guard let v = Timestamp(iso8601: s) else { throw ValidationError("--as-of: '\(s)' is not ISO 8601") }; t = v }
            let store = try await db.open()
            let n = try await store.computeRFM(program: program, asOf: t)
            let r = try await store.rfmReport(program: program)
            print("rfm: \(n) members scored as of \(t); \(r.scored) with RFM scores; lifecycle \(r.lifecycle.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
            try await store.close()
        }
    }
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run all work due up to a date: expiry, pending points, tier assessment. Running it again does nothing more.")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "Run work due up to this instant (ISO 8601 date or date-time; default now).") var asOf: String?
        func run() async throws {
            var t = now()
            if let s = asOf { guard let v = Timestamp(iso8601: s) else { throw ValidationError("--as-of: '\(s)' is not ISO 8601") }; t = v }
            let store = try await db.open()
            let r = try await store.runJobs(asOf: t, now: now())
            print("jobs up to \(t): \(r.members) member(s) brought forward, \(r.expiredPoints) points lapsed, \(r.tierChanges) tier change(s)\(r.conflicts > 0 ? ", \(r.conflicts) skipped (busy)" : "")")
            try await store.close()
        }
    }
}

struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Bulk imports.", subcommands: [Orders.self])
    struct Orders: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Import orders from CSV through the engine (idempotent per order id).",
                                                        discussion: "Header: \(OrderCSV.required.joined(separator: ",")) and optionally category,quantity,discount_minor,channel,store. member is kind:value or id:N.")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The program.") var program: String
        @Flag(help: "Reject orders of unknown identities instead of registering them.") var noRegister = false
        @Argument(help: "The CSV file.") var file: String
        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            let parsed = OrderCSV.parse(String(decoding: data, as: UTF8.self))
            let store = try await db.open()
            let progress = Progress(total: parsed.orders.count, label: "orders")
            var r = try await store.importOrders(program: program, parsed.orders, registerMissing: !noRegister, now: now(), progress: { progress.update($0) })
            progress.finish()
            r.rejected = (r.rejected + parsed.rejected).sorted { $0.line < $1.line }
            print("imported \(r.ordersImported) order(s) for \(r.membersTouched) member(s) (\(r.membersCreated) new); \(r.ordersAlreadyThere) already there; \(r.rejected.count) rejected")
            for x in r.rejected.prefix(200) { print("  line \(x.line): \(x.reason)") }
            if r.rejected.count > 200 { print("  … and \(r.rejected.count - 200) more") }
            if !r.merged.isEmpty {
                print("\(r.merged.count) member(s) merged by the program's mergeOn rule:")
                for m in r.merged.prefix(50) { print("  line \(m.line): member \(m.absorbed) into \(m.survivor) (\(m.identity.kind.rawValue):\(m.identity.value); merge \(m.mergeId))") }
            }
            if !r.mergeCandidates.isEmpty {
                print("\(r.mergeCandidates.count) row(s) name identities of different members (merge them with POST /v1/members/{id}/merges):")
                for c in r.mergeCandidates.prefix(50) {
                    print("  line \(c.line): members \(c.members.map(\.description).joined(separator: ", ")) (\(c.identities.map { "\($0.kind.rawValue):\($0.value)" }.joined(separator: " | ")))\(c.note.map { "; \($0)" } ?? "")")
                }
            }
            try await store.close()
        }
    }
}
