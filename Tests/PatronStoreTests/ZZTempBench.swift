import Foundation
@testable import PatronStore
import PostgresNIO
import Logging
import Testing

@Test func tempProbe() async throws {
    guard let admin = Backend.postgresAdminURL else { return }
    let cfg = try PostgresURL(admin)
    let client = PostgresClient(configuration: cfg.clientConfiguration)
    let t = Task { await client.run() }
    let logger = Logger(label: "x")
    var s = Date()
    for _ in 0..<2000 { _ = try await client.withConnection { c in try await c.query("SELECT 1", logger: logger).get() } }
    print("PROBE withConnection+future: \(Int(2000 / Date().timeIntervalSince(s)))/s")
    s = Date()
    for _ in 0..<2000 { for try await _ in try await client.query("SELECT 1") {} }
    print("PROBE client.query: \(Int(2000 / Date().timeIntervalSince(s)))/s")
    s = Date()
    try await client.withConnection { c in
        for _ in 0..<2000 { _ = try await c.query("SELECT 1", logger: logger).get() }
    }
    print("PROBE one lease, future: \(Int(2000 / Date().timeIntervalSince(s)))/s")
    s = Date()
    try await client.withConnection { c in
        for _ in 0..<2000 { for try await _ in try await c.query("SELECT 1", logger: logger) {} }
    }
    print("PROBE one lease, async: \(Int(2000 / Date().timeIntervalSince(s)))/s")
    t.cancel()
}
