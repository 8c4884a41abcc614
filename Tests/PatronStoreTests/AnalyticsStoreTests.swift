import Foundation
import PatronCore
@testable import PatronStore
import Testing

@Suite struct AnalyticsStoreTests {
    /// A program's orders as a purchase log: local dates in the program's time zone, one
    /// transaction per order; two orders on one local day are one purchase day in the summary.
    @Test(arguments: Backend.allCases)
    func purchaseLogFromTheOrders(_ backend: Backend) async throws {
        try await withStore(backend) { store, m in
            // t0 is 2026-03-01 10:00 Shanghai; 23:30 the same local day is 15:30 UTC.
            for (i, (at, amount)) in [(t0, Int64(12_345)), (Timestamp(iso8601: "2026-03-01T23:30:00+08:00")!, 1_000), (t0.adding(days: 7), 5_000)].enumerated() {
                _ = try await store.record(program: "shop", member: m, occurredAt: at, body: order("a\(i)", amount), idempotencyKey: "a\(i)", requestHash: "h", now: at)
            }
            let log = try await store.purchaseLog(program: "shop")
            #expect(log.map(\.day) == [CivilDate(year: 2026, month: 3, day: 1), CivilDate(year: 2026, month: 3, day: 1), CivilDate(year: 2026, month: 3, day: 8)])
            #expect(log.map(\.amountMinor) == [12_345, 1_000, 5_000])
            let s = try #require(PurchaseSummary.summaries(of: log, calibrationEnd: CivilDate(year: 2026, month: 3, day: 15)).first)
            #expect(s.memberId == m.description && s.frequency == 1 && s.recency == 1 && s.T == 2)
        }
    }
}
