import ArgumentParser
import CSQLite
import Foundation
import Logging
import PatronCore
import PatronServer
import PatronStore

/// The segment part of `patron bench`: a million members with ten million orders, their
/// states folded by the engine and written to SQLite, the member facts built from them, and
/// the segment previewed, beside a plain scan of the orders table in SQLite.
extension Bench {
    /// The segments the bench keeps current: the goal's, and two with time conditions.
    static let savedSegments = [goalSegment, "member.orderCount >= 3 && now - member.lastOrderAt > duration('60d')", "orders.within('30d').count() >= 2"]

    static func saveSegments(_ store: Store, program: String, now: Timestamp) async throws {
        for (i, text) in savedSegments.enumerated() {
            let doc = JSONValue.object(["id": .string("bench_\(i)"), "name": .string("bench \(i)"), "condition": .string(text)])
            _ = try await store.saveSegment(program: program, try SegmentParser.parse(doc).get(), now: now)
        }
    }

    static let goalSegment = "member.tier in ['gold', 'diamond'] && orders.within('90d').any(o, o.category == 'shoes') && orders.within('30d').sum(amount) >= 50000 && !('price_sensitive' in member.tags)"

    func segments(members: Int, orders: Int, now: Timestamp, results: inout [String: Double]) async throws {
        let path = "\(dir)/segments.db"
        var logger = Logger(label: "bench"); logger.logLevel = .warning
        var store = try await Store.open(path, logger: logger)
        try await store.migrate()
        let clock = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
        guard case .success(let def) = ProgramParser.parse(try YAMLDocument.parse(Demo.programYAML(year: clock.date(now).year))) else { fatalError("demo program invalid") }
        _ = try await store.applyProgram(def, effectiveFrom: now.adding(days: -800), now: now)
        let engine = Engine(program: ProgramVersions([.init(version: 1, effectiveFrom: now.adding(days: -800), definition: def)]))
        print("\nsegments: \(members) members, \(orders) orders over the last 365 days, in \(path)")

        // 1. Histories folded by the engine, states written in batches.
        let foldStart = ContinuousClock.now
        var batch: [MemberState] = []
        var folded = 0
        // What the KPIs read besides the states: each order's tier held (in the orders' order), and the tier history.
        let tierIds = def.tiers.map(\.id)
        var orderTiers: [UInt8] = []
        orderTiers.reserveCapacity(orders + orders / 10)
        var tierChanges: [(member: Int64, change: TierChange)] = []
        var writeSeconds = 0.0
        for m in 0..<members {
            let mine = Self.segmentOrders(member: m, members: members, orders: orders, now: now)
            var fx = Effects()
            var s = engine.start(member: MemberID(Int64(m + 1)), registeredAt: now.adding(days: -400), effects: &fx)
            for (i, o) in mine.enumerated() {
                _ = try? engine.apply(&s, MemberEvent(id: EventID(Int64(i + 1)), occurredAt: o.at, body: .orderPaid(o.order)), effects: &fx)
            }
            engine.advance(&s, to: now, effects: &fx)
            for (_, o) in mine { orderTiers.append(UInt8(fx.orders[o.orderId].flatMap { tierIds.firstIndex(of: $0.tierAtOrder) } ?? 0)) }
            for c in fx.tierChanges { tierChanges.append((Int64(m + 1), c)) }
            folded += mine.count
            batch.append(s.snapshot)
            if batch.count == 20_000 || m == members - 1 {
                let w = ContinuousClock.now
                try await store.loadMemberStates(program: "demo", batch, now: now)
                writeSeconds += (ContinuousClock.now - w).seconds
                batch.removeAll(keepingCapacity: true)
            }
        }
        let foldSeconds = (ContinuousClock.now - foldStart).seconds
        print(String(format: "  histories folded by the engine and states written: %d orders in %.0f s (%.0f orders/s; writing the states %.0f s)",
                     folded, foldSeconds, Double(folded) / foldSeconds, writeSeconds))
        try await store.close()

        // 2. The orders table, the KPI aggregate and the tier history, written with the raw C API
        //    (the store's own import would take the engine's time again): the plain SQL scan below reads it.
        let ordersStart = ContinuousClock.now
        try Self.rawOrders(path: path, members: members, orders: orders, now: now, clock: clock, tiers: tierIds, orderTiers: orderTiers, tierChanges: tierChanges)
        orderTiers = []; tierChanges = []
        print(String(format: "  orders table, KPI aggregate (member_days) and tier history written with the raw C API: %.0f s", (ContinuousClock.now - ordersStart).seconds))
        let scan = try Self.rawScan(path: path)
        results["segment_sql_scan_rows_per_s"] = scan.rate
        print(String(format: "plain SQL scan of the orders table (member_id, paid_at, amount_minor; C API): %d rows in %.2f s = %10.0f rows/s",
                     scan.rows, scan.seconds, scan.rate))

        // 3. Facts built from the stored states, then the segment previewed.
        store = try await Store.open(path, logger: logger)
        let (_, built) = try await store.memberFacts(program: "demo", now: now)
        results["segment_facts_build_s"] = built.buildSeconds ?? 0
        print(String(format: "member facts built from the stored states: %d members, %d orders held, %.1f s (%.0f members/s), ~%.0f MiB",
                     built.members, built.orders, built.buildSeconds ?? 0, Double(built.members) / (built.buildSeconds ?? 1), Double(built.bytes) / 1_048_576))
        let draft = try SegmentParser.parse(.object(["condition": .string(Self.goalSegment)]), requireId: false).get()
        var times: [Double] = []
        var preview: SegmentPreview? = nil
        for _ in 0..<5 {
            let t = ContinuousClock.now
            preview = try await store.previewSegment(program: "demo", draft, now: now)
            times.append((ContinuousClock.now - t).seconds)
        }
        times.sort()
        let p = preview!
        let median = times[2]
        let rowsPerSecond = Double(p.scan.members + p.scan.orders) / p.scan.seconds
        results["segment_preview_s"] = median
        results["segment_preview_rows_per_s"] = rowsPerSecond
        print("segment: \(Self.goalSegment)")
        print(String(format: "  preview (size, sample, make-up): %d of %d members; median of 5: %.3f s (goal < 1 s); scan %.3f s = %.0f rows/s (members + their orders) = %.1fx the plain SQL scan",
                     p.composition.members, p.composition.ofMembers, median, p.scan.seconds, rowsPerSecond, rowsPerSecond / scan.rate))

        // 4. Every program KPI for the last full month (the first call builds nothing more: the
        //    funnel's facts are the ones just built).
        let today = clock.date(now)
        let monthStart = today.firstOfMonth(addingMonths: -1), monthEnd = today.firstOfMonth(addingMonths: 0)
        var kpiTimes: [Double] = []
        var kpis: ProgramKPIs? = nil
        // The first request reads the KPI days into memory (and counts the past period's members
        // near the next tier from the history); the others read what is kept.
        let firstStart = ContinuousClock.now
        _ = try await store.kpis(program: "demo", from: monthStart, until: monthEnd, split: nil, now: now)
        let firstSeconds = (ContinuousClock.now - firstStart).seconds
        results["kpis_first_request_s"] = firstSeconds
        for split in [nil, KPISplit.tier, nil, KPISplit.channel, nil] {
            let t = ContinuousClock.now
            let k = try await store.kpis(program: "demo", from: monthStart, until: monthEnd, split: split, now: now)
            kpiTimes.append((ContinuousClock.now - t).seconds)
            if split == nil { kpis = k }
        }
        let kpiMedian = kpiTimes.sorted()[2]
        results["kpis_month_s"] = kpiMedian
        if let k = kpis {
            print(String(format: "KPIs for %@ (all figures, funnel included; splits by tier and channel among the runs): median of 5: %.3f s, slowest %.3f s (goal < 0.5 s); %lld active members, %lld orders, revenue %lld, %lld upgraded",
                         monthStart.description, kpiMedian, kpiTimes.max() ?? 0, k.total.activeMembers, k.total.orders, k.total.revenueMinor, k.upgradedMembers))
            print(String(format: "  the first request, which reads the KPI days into memory (writes wait meanwhile) and counts the month's near-next-tier members from the history: %.1f s", firstSeconds))
        }

        // 5. Saved segments kept current: the first full evaluation, then the cost per written member.
        let saved = Self.savedSegments
        try await Self.saveSegments(store, program: "demo", now: now)
        var t = ContinuousClock.now
        let full = try await store.refreshSegments(program: "demo", now: now)
        let fullSeconds = (ContinuousClock.now - t).seconds
        print(String(format: "saved segments: %d, first evaluation over every member %.1f s (%d entered)", saved.count, fullSeconds, full.entered))
        let writes = min(members, 5_000)
        t = ContinuousClock.now
        for i in 0..<writes {
            let m = MemberID(Int64(1 + (i * 7919) % members))
            _ = try await store.record(program: "demo", member: m, occurredAt: now, body: .orderPaid(OrderPaid(orderId: "seg-\(i)", lines: [OrderLine(sku: "S1", category: "shoes", amountMinor: 60_000)])),
                                       idempotencyKey: "seg-\(i)", requestHash: "seg-\(i)", now: now)
        }
        let recordSeconds = (ContinuousClock.now - t).seconds
        t = ContinuousClock.now
        let inc = try await store.refreshSegments(program: "demo", now: now)
        let incSeconds = (ContinuousClock.now - t).seconds
        results["segment_tracker_us_per_member"] = incSeconds * 1e6 / Double(writes)
        print(String(format: "  after %d order.paid writes (%.0f µs each through the store): the tracker re-read and re-evaluated them over %d segments in %.3f s = %.0f µs per written member = %.0f%% of the write (%d entered, %d exited)",
                     writes, recordSeconds * 1e6 / Double(writes), saved.count, incSeconds, incSeconds * 1e6 / Double(writes), 100 * incSeconds / recordSeconds, inc.entered, inc.exited))
        try await store.close()
    }

    /// Member `m`'s orders (sorted by time): `orders / members` on average, each member with a
    /// pace of their own; a quarter of the orders hold shoes.
    static func segmentOrders(member m: Int, members: Int, orders: Int, now: Timestamp) -> [(at: Timestamp, order: OrderPaid)] {
        var rng = SplitMix(seed: UInt64(m) &* 0x9E37_79B9 &+ 17)
        let mean = Double(orders) / Double(members)
        let count = max(1, Int(Double(rng.next() % 2_000) / 1_000 * mean + 0.5))
        var out: [(Timestamp, OrderPaid)] = []
        for i in 0..<count {
            let at = now.adding(seconds: -60 - Int64(rng.next() % (365 * 86_400)))
            let shoes = rng.next() % 4 == 0
            let lines = shoes
                ? [OrderLine(sku: "S\(rng.next() % 500)", category: "shoes", amountMinor: Int64(2_000 + rng.next() % 60_000))]
                : [OrderLine(sku: "S\(rng.next() % 500)", category: ["beauty", "apparel", "bags"][Int(rng.next() % 3)], amountMinor: Int64(500 + rng.next() % 30_000))]
            out.append((at, OrderPaid(orderId: "g\(m)-\(i)", lines: lines, discountMinor: rng.next() % 3 == 0 ? 500 : 0,
                                      channel: i % 3 == 0 ? "app" : "store", store: "s\(m % 20)")))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    static func rawOrders(path: String, members: Int, orders: Int, now: Timestamp, clock: ProgramClock, tiers: [String], orderTiers: [UInt8],
                          tierChanges: [(member: Int64, change: TierChange)]) throws {
        let db = try RawSQLite.open(path, synchronous: "NORMAL", create: false)
        defer { sqlite3_close(db) }
        func prepare(_ sql: String) throws -> OpaquePointer {
            var stmt: OpaquePointer?
            guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else { throw ValidationError(String(cString: sqlite3_errmsg(db))) }
            return stmt
        }
        let stmt = try prepare("INSERT INTO orders (program_id, order_id, member_id, event_no, paid_at, amount_minor, channel, store, record) VALUES ('demo', ?, ?, ?, ?, ?, ?, ?, '')")
        let day = try prepare("INSERT INTO member_days (program_id, member_id, day, month, tier_id, channel, store, orders, revenue_minor) VALUES ('demo', ?, ?, ?, ?, ?, ?, ?, ?)")
        let change = try prepare("INSERT INTO tier_changes (program_id, member_id, change_no, at, from_tier, to_tier, cause, event_no, qualifying_growth) VALUES ('demo', ?, ?, ?, ?, ?, ?, ?, ?)")
        defer { sqlite3_finalize(stmt); sqlite3_finalize(day); sqlite3_finalize(change) }
        func step(_ s: OpaquePointer) throws {
            guard sqlite3_step(s) == SQLITE_DONE else { throw ValidationError(String(cString: sqlite3_errmsg(db))) }
            sqlite3_reset(s)
        }
        sqlite3_exec(db, "BEGIN", nil, nil, nil)
        var n = 0, k = 0
        struct DayKey: Hashable { var day: Int64, tier: UInt8, channel: String, store: String }
        for m in 0..<members {
            var days: [DayKey: (month: Int64, orders: Int64, revenue: Int64)] = [:]
            for (i, o) in segmentOrders(member: m, members: members, orders: orders, now: now).enumerated() {
                let key = DayKey(day: clock.dayNumber(o.at), tier: k < orderTiers.count ? orderTiers[k] : 0, channel: o.order.channel ?? "", store: o.order.store ?? "")
                days[key, default: (clock.date(o.at).monthNumber, 0, 0)].orders += 1
                days[key]!.revenue += o.order.paidMinor
                k += 1
                sqlite3_bind_text(stmt, 1, o.order.orderId, -1, RawSQLite.transient)
                sqlite3_bind_int64(stmt, 2, Int64(m + 1))
                sqlite3_bind_int64(stmt, 3, Int64(i + 1))
                sqlite3_bind_int64(stmt, 4, o.at.seconds)
                sqlite3_bind_int64(stmt, 5, o.order.paidMinor)
                sqlite3_bind_text(stmt, 6, o.order.channel ?? "", -1, RawSQLite.transient)
                sqlite3_bind_text(stmt, 7, o.order.store ?? "", -1, RawSQLite.transient)
                try step(stmt)
                n += 1
                if n % 10_000 == 0 { sqlite3_exec(db, "COMMIT; BEGIN", nil, nil, nil) }
            }
            for (key, v) in days {
                sqlite3_bind_int64(day, 1, Int64(m + 1)); sqlite3_bind_int64(day, 2, key.day); sqlite3_bind_int64(day, 3, v.month)
                sqlite3_bind_text(day, 4, tiers[Int(key.tier)], -1, RawSQLite.transient)
                sqlite3_bind_text(day, 5, key.channel, -1, RawSQLite.transient); sqlite3_bind_text(day, 6, key.store, -1, RawSQLite.transient)
                sqlite3_bind_int64(day, 7, v.orders); sqlite3_bind_int64(day, 8, v.revenue)
                try step(day)
            }
        }
        for (member, c) in tierChanges {
            sqlite3_bind_int64(change, 1, member); sqlite3_bind_int64(change, 2, Int64(c.no)); sqlite3_bind_int64(change, 3, c.at.seconds)
            sqlite3_bind_text(change, 4, c.from, -1, RawSQLite.transient); sqlite3_bind_text(change, 5, c.to, -1, RawSQLite.transient)
            sqlite3_bind_text(change, 6, c.cause.rawValue, -1, RawSQLite.transient)
            if let e = c.eventId { sqlite3_bind_int64(change, 7, e.rawValue) } else { sqlite3_bind_null(change, 7) }
            sqlite3_bind_int64(change, 8, c.qualifyingGrowth)
            try step(change)
        }
        sqlite3_exec(db, "COMMIT", nil, nil, nil)
    }

    /// Reads every order row's member, time and amount with the C API, summing them so the
    /// reads cannot be skipped.
    static func rawScan(path: String) throws -> (rows: Int, seconds: Double, rate: Double) {
        let db = try RawSQLite.open(path, synchronous: "NORMAL", create: false)
        defer { sqlite3_close(db) }
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, "SELECT member_id, paid_at, amount_minor FROM orders WHERE program_id = 'demo'", -1, &stmt, nil) == SQLITE_OK else {
            throw ValidationError(String(cString: sqlite3_errmsg(db)))
        }
        defer { sqlite3_finalize(stmt) }
        let start = ContinuousClock.now
        var rows = 0, sum: Int64 = 0
        while sqlite3_step(stmt) == SQLITE_ROW {
            sum &+= sqlite3_column_int64(stmt, 0) &+ sqlite3_column_int64(stmt, 1) &+ sqlite3_column_int64(stmt, 2)
            rows += 1
        }
        let seconds = (ContinuousClock.now - start).seconds
        if sum == 42 { print("") }
        return (rows, seconds, Double(rows) / seconds)
    }
}
