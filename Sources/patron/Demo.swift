import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PatronCore
import PatronServer
import PatronStore

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: "Create a demo database (CDNOW purchase history), run the jobs, and serve the API.")
    @Option(help: "The demo database: a new SQLite file (replaced) or a postgres:// URL.") var database = "./patron-demo.db"
    @Option(help: "Port to serve on.") var port = 8080
    @Flag(help: "Build the demo and exit without serving.") var noServe = false
    @Option(help: "Members to generate when the CDNOW data set is not found.") var generatedMembers = 3000

    func run() async throws {
        let started = Date()
        if !database.hasPrefix("postgres") {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        }
        var logger = Logger(label: "patron")
        logger.logLevel = .warning
        let store = try await Store.open(database, logger: logger)
        try await store.migrate()
        let t = now()
        let clock = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
        let today = clock.date(t)
        let doc = try YAMLDocument.parse(Demo.programYAML(year: today.year))
        guard case .success(let def) = ProgramParser.parse(doc) else { fatalError("the demo program is invalid") }
        // The program has been in force for two years, so the shifted history falls under it.
        _ = try await store.applyProgram(def, document: doc, effectiveFrom: t.adding(days: -800), now: t)
        print("demo: program 'demo' (4 tiers, rolling 365-day assessment, double points 11.05–11.11, points lapse at the end of the next year, 7-day pending)")

        let cwd = FileManager.default.currentDirectoryPath
        var orders: [ImportOrder]
        if let path = Demo.cdnowCandidates(cwd: cwd).first(where: { FileManager.default.fileExists(atPath: $0) }),
           let data = FileManager.default.contents(atPath: path) {
            // Cut off at "now": the last day's noon may still be ahead.
            orders = Demo.cdnowOrders(text: String(decoding: data, as: UTF8.self), today: clock.date(t.adding(days: -1)), clock: clock)
            print("demo: importing the CDNOW purchase log (\(orders.count) purchases) from \(path), dates shifted to end yesterday")
        } else {
            orders = Demo.generatedOrders(members: generatedMembers, today: clock.date(t.adding(days: -1)), clock: clock)
            print("demo: the CDNOW data set was not found (looked in \(Demo.cdnowCandidates(cwd: cwd).joined(separator: ", "))); using a generated history of \(orders.count) orders for \(generatedMembers) members instead")
        }
        let progress = Progress(total: orders.count, label: "orders")
        let r = try await store.importOrders(program: "demo", orders, registerMissing: true, now: t, progress: { progress.update($0) })
        progress.finish()
        print("demo: imported \(r.ordersImported) orders for \(r.membersCreated) new members; \(r.rejected.count) rejected")
        let jobs = try await store.runJobs(asOf: t, now: t)
        print("demo: jobs brought \(jobs.members) members to now: \(jobs.expiredPoints) points lapsed, \(jobs.tierChanges) tier changes")
        let acts = try await Demo.benefitActivity(store: store, now: t)
        print("demo: members set \(acts.birthdays) birthdays, claimed \(acts.claims) benefits, used \(acts.uses) at checkout, made \(acts.exchanges) points-mall exchanges")
        try await store.computeRFM(program: "demo", asOf: t)
        // The churn fit gives `member.churn` (the demo's churn_risk tag); a history too thin to fit is not fatal.
        do {
            let c = try await store.computeChurn(program: "demo", asOf: t)
            print("demo: churn models fitted on \(c.members) members; \(c.atRisk) at risk")
        } catch { print("demo: churn models not fitted: \(error)") }
        let segments = try await Demo.saveSegments(store: store, now: t)
        print("demo: saved segments " + segments.map { "\($0.0) (\($0.1) members)" }.joined(separator: ", "))
        let key = try await store.createKey(program: "demo", name: "demo", scopes: [.read, .write, .admin], now: t)
        var sample = try await store.listMembers(program: "demo", cursor: nil, limit: 1, tier: "gold").items.first
        if sample == nil { sample = try await store.listMembers(program: "demo", cursor: nil, limit: 1).items.first }
        print("demo: ready in \(String(format: "%.1f", Date().timeIntervalSince(started))) s, database \(database)")
        let base = "http://127.0.0.1:\(port)"
        print("""

        API key (read, write, admin): \(key.token)

        Try:
          export PATRON_KEY=\(key.token)
          curl -s \(base)/v1/program -H "Authorization: Bearer $PATRON_KEY"
          curl -s '\(base)/v1/members?limit=5&tier=gold' -H "Authorization: Bearer $PATRON_KEY"
          curl -s '\(base)/v1/members/lookup?kind=card&value=CDNOW-00002' -H "Authorization: Bearer $PATRON_KEY"
          curl -s \(base)/v1/members/\(sample?.id.description ?? "ID")/ledger -H "Authorization: Bearer $PATRON_KEY"
          curl -s -X POST \(base)/v1/members/\(sample?.id.description ?? "ID")/events -H "Authorization: Bearer $PATRON_KEY" \\
               -H 'Content-Type: application/json' -H "Idempotency-Key: demo-$(date +%s)" \\
               -d '{"type":"order.paid","occurredAt":"\(t.iso8601)","data":{"orderId":"web-'$(date +%s)'","lines":[{"sku":"cd-1","category":"music","quantity":1,"amountMinor":129900,"discountMinor":0}],"discountMinor":0,"channel":"app"}}'
          curl -s \(base)/v1/members/\(sample?.id.description ?? "ID")/benefits -H "Authorization: Bearer $PATRON_KEY"
          curl -s '\(base)/v1/reports/benefits?from=\(t.adding(days: -400).iso8601)' -H "Authorization: Bearer $PATRON_KEY"
          curl -s \(base)/v1/mall -H "Authorization: Bearer $PATRON_KEY"
          curl -s -X POST \(base)/v1/segments/preview -H "Authorization: Bearer $PATRON_KEY" -H 'Content-Type: application/json' \\
               -d '{"condition": "member.tier in [\\"gold\\", \\"diamond\\"] && member.lifecycle == \\"at_risk\\""}'
          curl -s '\(base)/v1/segments/lapsing_valuable/members?format=csv&fields=memberId,tier,spentMinor,lastOrderAt' -H "Authorization: Bearer $PATRON_KEY" | head
          curl -s \(base)/openapi.json | head
        """)
        if noServe { try await store.close(); return }
        print("\nserving on \(base) (Ctrl-C to stop); metrics at \(base)/metrics")
        fflush(nil) // the key and the curl lines must show even when the output is a pipe or a file
        PatronMetrics.bootstrap()
        var slog = Logger(label: "patron")
        slog.logLevel = .info
        let app = PatronApp.build(store: store, host: "127.0.0.1", port: port, logger: slog)
        try await app.runService()
        try await store.close()
    }
}
