import Foundation
import PatronCore
@testable import PatronStore
import Testing

let t0 = Timestamp(iso8601: "2026-03-01T10:00:00+08:00")!

func testProgram(key: String = "shop", expiryDays: Int = 30, pendingDays: Int = 0) -> ProgramDefinition {
    let json = """
    {"key": "\(key)", "name": {"zh-CN": "商店", "en": "Shop"}, "currency": "CNY", "timeZone": "Asia/Shanghai",
     "tiers": [{"id": "basic", "name": "Basic", "threshold": 0}, {"id": "silver", "name": "Silver", "threshold": 1000}, {"id": "gold", "name": "Gold", "threshold": 5000}],
     "assessment": {"kind": "rolling", "windowDays": 90, "downgrade": "oneTier", "graceDays": 10},
     "earning": {"points": {"unitMinor": 100, "perUnit": 1}, "growth": {"unitMinor": 100, "perUnit": 1}},
     "activities": [{"id": "check_in", "points": 5, "growth": 1, "limit": "daily"}],
     "expiry": {"kind": "afterDays", "days": \(expiryDays)}, "pendingDays": \(pendingDays)}
    """
    let doc = try! JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
    guard case .success(let p) = ProgramParser.parse(doc) else { fatalError("test program invalid") }
    return p
}

func order(_ id: String, _ amountMinor: Int64) -> EventBody {
    .orderPaid(OrderPaid(orderId: id, lines: [OrderLine(sku: "sku", category: "c", amountMinor: amountMinor)]))
}

/// A store on a fresh database with the test program and one member.
func withStore(_ backend: Backend, program: ProgramDefinition = testProgram(), _ body: (Store, MemberID) async throws -> Void) async throws {
    try await backend.withDatabase { db in
        let store = Store(db: db)
        try await store.migrate()
        _ = try await store.applyProgram(program, effectiveFrom: t0.adding(days: -365), now: t0)
        let m = try await store.registerMember(program: program.key, RegisterMember(identities: [Identity(kind: .phone, value: "+86 138-0000-0001")],
                                                                                    profile: MemberProfile(name: "Li Lei"), registeredAt: t0), idempotencyKey: nil, requestHash: "h", now: t0)
        try await body(store, m.record.id)
    }
}

@Suite struct StoreContractTests {
    @Test(arguments: Backend.allCases)
    func migrationsAreIdempotent(_ backend: Backend) async throws {
        try await backend.withDatabase { (db: any Database) async throws in
            let store = Store(db: db)
            #expect(try await store.migrate() == Schema.migrations.map(\.version))
            #expect(try await store.migrate() == [])
            #expect(try await store.schemaVersion() == Schema.latestVersion)
        }
    }

    /// Migration 8 moves the ledger entries, lots and growth entries of version 7's three tables
    /// into `member_ledger`; every column reads back the same through the views.
    @Test(arguments: Backend.allCases)
    func memberLedgerMigrationCarriesTheRowsOver(_ backend: Backend) async throws {
        try await backend.withDatabase { (db: any Database) async throws in
            let store = Store(db: db)
            #expect(try await store.migrate(upTo: 7) == Array(1...7))
            try await db.executeScript([
                "INSERT INTO ledger_entries VALUES ('shop', 7, 1, 1, 100, 'points', 50, 'purchase', 1, 'o-1', NULL)",
                "INSERT INTO ledger_entries VALUES ('shop', 7, 2, NULL, 200, 'points', -20, 'adjustment', NULL, NULL, 'goodwill')",
                "INSERT INTO ledger_entries VALUES ('shop', 8, 1, 1, 300, 'debt', 9, 'refund', NULL, 'o-2', NULL)",
                "INSERT INTO lots VALUES ('shop', 7, 1, 1, 'purchase', 'o-1', 100, 160, 900, 50, 30)",
                "INSERT INTO lots VALUES ('shop', 7, 2, 3, 'activity', NULL, 400, 400, NULL, 5, 0)",
                "INSERT INTO growth_entries VALUES ('shop', 7, 1, 1, 100, 100, 50, 'purchase', 'o-1')",
                "INSERT INTO growth_entries VALUES ('shop', 7, 2, 4, 500, 560, -10, 'refund', 'o-1')",
            ])
            #expect(try await store.migrate() == [8])
            func rows(_ sql: String) async throws -> [[SQLValue]] { try await db.query(sql, []).map(\.values) }
            #expect(try await rows("SELECT member_id, entry_no, event_no, at, account, points, reason, lot_no, order_id, note FROM ledger_entries WHERE program_id = 'shop' ORDER BY member_id, entry_no") == [
                [7, 1, 1, 100, "points", 50, "purchase", 1, "o-1", nil],
                [7, 2, nil, 200, "points", -20, "adjustment", nil, nil, "goodwill"],
                [8, 1, 1, 300, "debt", 9, "refund", nil, "o-2", nil],
            ])
            #expect(try await rows("SELECT member_id, lot_no, event_no, source, order_id, earned_at, available_at, expires_at, original, remaining FROM lots WHERE program_id = 'shop' ORDER BY lot_no") == [
                [7, 1, 1, "purchase", "o-1", 100, 160, 900, 50, 30],
                [7, 2, 3, "activity", nil, 400, 400, nil, 5, 0],
            ])
            #expect(try await rows("SELECT member_id, growth_no, event_no, at, counts_at, growth, reason, order_id FROM growth_entries WHERE program_id = 'shop' ORDER BY growth_no") == [
                [7, 1, 1, 100, 100, 50, "purchase", "o-1"],
                [7, 2, 4, 500, 560, -10, "refund", "o-1"],
            ])
            // Only open lots are in the expiry index's rows, and a query through the view finds them.
            #expect(try await rows("SELECT lot_no FROM lots WHERE program_id = 'shop' AND remaining > 0 AND expires_at <= 900") == [[1]])
        }
    }

    @Test(arguments: Backend.allCases)
    func programVersionsMoveForwardOnly(_ backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            var p2 = testProgram()
            p2.pendingDays = 3
            let v2 = try await store.applyProgram(p2, effectiveFrom: t0.adding(days: 10), now: t0)
            #expect(v2.changed && v2.info.version == 2)
            var p3 = p2
            p3.pendingDays = 5
            await #expect(throws: StoreError.self) { _ = try await store.applyProgram(p3, effectiveFrom: t0.adding(days: 5), now: t0) }
            #expect(try await store.programVersions("shop").count == 2)
            // The same definition again stores nothing.
            #expect(try await store.applyProgram(p2, now: t0.adding(days: 11)).changed == false)
            // Events are decided under the version in force at their time.
            let versions = try await store.program("shop")
            #expect(versions.at(t0.adding(days: 9)).definition.pendingDays == 0)
            #expect(versions.at(t0.adding(days: 10)).definition.pendingDays == 3)
        }
    }

    @Test(arguments: Backend.allCases)
    func membersIdentitiesAndPages(_ backend: Backend) async throws {
        try await withStore(backend) { store, first in
            #expect(try await store.memberId(program: "shop", identity: Identity(kind: .phone, value: "+8613800000001")) == first)
            await #expect(throws: StoreError.identityTaken(Identity(kind: .phone, value: "+8613800000001"))) {
                _ = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .phone, value: "+86 13800000001")]), idempotencyKey: nil, requestHash: "x", now: t0)
            }
            await #expect(throws: StoreError.self) {
                _ = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .email, value: "not-an-email")]), idempotencyKey: nil, requestHash: "x", now: t0)
            }
            var ids = [first]
            for i in 2...7 {
                ids.append(try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "C\(i)")], profile: MemberProfile(name: "Han \(i)")),
                                                          idempotencyKey: "reg-\(i)", requestHash: "r\(i)", now: t0).record.id)
            }
            // The same key and body gives the first answer.
            let again = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "C2")]), idempotencyKey: "reg-2", requestHash: "r2", now: t0)
            #expect(again.replayed && again.record.id == ids[1])
            await #expect(throws: StoreError.idempotencyMismatch("reg-2")) {
                _ = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "C99")]), idempotencyKey: "reg-2", requestHash: "other", now: t0)
            }
            var seen: [MemberID] = []
            var cursor: String? = nil
            repeat {
                let page = try await store.listMembers(program: "shop", cursor: cursor, limit: 3)
                seen += page.items.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil
            #expect(seen == ids.sorted())
            #expect(try await store.listMembers(program: "shop", cursor: nil, limit: 10, namePrefix: "Han").items.count == 6)
            let updated = try await store.updateMember(program: "shop", id: first, UpdateMember(profile: MemberProfile(city: "Hangzhou"), addIdentities: [Identity(kind: .wechat, value: "o-abc")]),
                                                       idempotencyKey: nil, requestHash: "u", now: t0).record
            #expect(updated.profile.name == "Li Lei" && updated.profile.city == "Hangzhou")
            #expect(try await store.memberId(program: "shop", identity: Identity(kind: .wechat, value: "o-abc")) == first)
            // Another program never sees this one's members.
            _ = try await store.applyProgram(testProgram(key: "other"), now: t0)
            await #expect(throws: StoreError.memberNotFound(first)) { _ = try await store.member(program: "other", id: first, now: t0) }
            await #expect(throws: StoreError.self) { _ = try await store.memberId(program: "other", identity: Identity(kind: .wechat, value: "o-abc")) }
        }
    }

    @Test(arguments: Backend.allCases)
    func eventsAreIdempotentAndRefusalsWriteNothing(_ backend: Backend) async throws {
        try await withStore(backend) { store, m in
            let a = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 1), body: order("o1", 120_000), idempotencyKey: "k1", requestHash: "h1", now: t0.adding(days: 1))
            #expect(a.event.outcome.pointsEarned == 1200 && a.event.standing.tier.id == "silver" && !a.replayed)
            let again = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 1), body: order("o1", 120_000), idempotencyKey: "k1", requestHash: "h1", now: t0.adding(days: 2))
            #expect(again.replayed && again.event == a.event)
            await #expect(throws: StoreError.idempotencyMismatch("k1")) {
                _ = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 1), body: order("o1", 5), idempotencyKey: "k1", requestHash: "h2", now: t0.adding(days: 2))
            }
            await #expect(throws: StoreError.rule(.duplicateOrder("o1"))) {
                _ = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 1), body: order("o1", 120_000), idempotencyKey: "k-other", requestHash: "h3", now: t0.adding(days: 2))
            }
            let before = try await store.allEntries(program: "shop", member: m)
            await #expect(throws: StoreError.rule(.insufficientPoints(available: 1200, requested: 5000))) {
                _ = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 2), body: .pointsRedeemed(PointsRedeemed(points: 5000, purpose: "mall")),
                                           idempotencyKey: "k2", requestHash: "h", now: t0.adding(days: 2))
            }
            await #expect(throws: StoreError.self) {
                _ = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 2), body: order("bad", -5), idempotencyKey: "k3", requestHash: "h", now: t0.adding(days: 2))
            }
            await #expect(throws: StoreError.memberNotFound(MemberID(42))) {
                _ = try await store.record(program: "shop", member: MemberID(42), occurredAt: t0, body: order("x", 5), idempotencyKey: "k4", requestHash: "h", now: t0)
            }
            #expect(try await store.allEntries(program: "shop", member: m) == before)
            // A refused key can be used again once the request is fixed.
            let ok = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 2), body: .pointsRedeemed(PointsRedeemed(points: 200, purpose: "mall")),
                                            idempotencyKey: "k2", requestHash: "h-fixed", now: t0.adding(days: 2))
            #expect(ok.event.standing.balance == 1000)
            // The order id belongs to this member: another member cannot record it.
            let other = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "C-2")]), idempotencyKey: nil, requestHash: "", now: t0).record.id
            await #expect(throws: StoreError.orderTaken("o1")) {
                _ = try await store.record(program: "shop", member: other, occurredAt: t0.adding(days: 3), body: order("o1", 100), idempotencyKey: "k5", requestHash: "h", now: t0.adding(days: 3))
            }
            #expect(try await store.audit(program: "shop", member: m).isEmpty)
            #expect(try await store.tierHistory(program: "shop", member: m).map(\.to) == ["silver"])
        }
    }

    @Test(arguments: Backend.allCases)
    func lateEventsReplayToTheSameResult(_ backend: Backend) async throws {
        try await withStore(backend) { store, m in
            let times = [5, 1, 9, 3, 7].map { t0.adding(days: $0) }
            for (i, t) in times.enumerated() {
                _ = try await store.record(program: "shop", member: m, occurredAt: t, body: order("o\(i)", 30_000), idempotencyKey: "k\(i)", requestHash: "h\(i)", now: t0.adding(days: 10))
            }
            let late = try await store.member(program: "shop", id: m, now: t0.adding(days: 10))
            // The same orders in time order, on a second member.
            let m2 = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "B")], registeredAt: t0), idempotencyKey: nil, requestHash: "", now: t0).record.id
            for (i, t) in times.enumerated().sorted(by: { $0.element < $1.element }) {
                _ = try await store.record(program: "shop", member: m2, occurredAt: t, body: order("p\(i)", 30_000), idempotencyKey: "q\(i)", requestHash: "h\(i)", now: t0.adding(days: 10))
            }
            let inOrder = try await store.member(program: "shop", id: m2, now: t0.adding(days: 10))
            #expect(late.standing == inOrder.standing)
            #expect(try await store.audit(program: "shop", member: m).isEmpty)
            #expect(try await store.lots(program: "shop", member: m).map(\.remaining) == [300, 300, 300, 300, 300])
            #expect(try await store.allEntries(program: "shop", member: m).count == 5)
        }
    }

    @Test(arguments: Backend.allCases)
    func jobsExpireAndAssessOnceOnly(_ backend: Backend) async throws {
        try await withStore(backend) { store, m in
            _ = try await store.record(program: "shop", member: m, occurredAt: t0, body: order("o1", 600_000), idempotencyKey: "k1", requestHash: "h", now: t0)
            let first = try await store.runJobs(asOf: t0.adding(days: 40), now: t0.adding(days: 40))
            #expect(first.expiredPoints == 6000)
            let second = try await store.runJobs(asOf: t0.adding(days: 40), now: t0.adding(days: 40))
            #expect(second == JobReport())
            let assessed = try await store.runJobs(asOf: t0.adding(days: 101), now: t0.adding(days: 101))
            #expect(assessed.tierChanges == 1)
            let member = try await store.member(program: "shop", id: m, now: t0.adding(days: 101))
            #expect(member.standing.tier.id == "silver")
            #expect(member.standing.balance == 0)
            #expect(try await store.allEntries(program: "shop", member: m).last?.reason == .expiry)
            #expect(try await store.tierHistory(program: "shop", member: m).map(\.cause) == [.upgrade, .assessment])
            #expect(try await store.audit(program: "shop", member: m).isEmpty)
        }
    }

    /// Order records live in the orders table: partial refunds across requests, and points that
    /// lapsed by a job are not clawed back by a later refund.
    @Test(arguments: Backend.allCases)
    func orderRecordsSurviveBetweenRequests(_ backend: Backend) async throws {
        try await withStore(backend) { store, m in
            let two = EventBody.orderPaid(OrderPaid(orderId: "o1", lines: [OrderLine(sku: "a", quantity: 3, amountMinor: 30_000), OrderLine(sku: "b", amountMinor: 10_000)]))
            _ = try await store.record(program: "shop", member: m, occurredAt: t0, body: two, idempotencyKey: "k1", requestHash: "h", now: t0)
            let r1 = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 1), body: .orderRefunded(OrderRefunded(orderId: "o1", lines: [RefundLine(line: 1, quantity: 1)])),
                                            idempotencyKey: "k2", requestHash: "h", now: t0.adding(days: 1))
            #expect(r1.event.outcome.pointsClawedBack == 100)
            await #expect(throws: StoreError.rule(.refundExceedsOrder(line: 1, remaining: 2, requested: 3))) {
                _ = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 1), body: .orderRefunded(OrderRefunded(orderId: "o1", lines: [RefundLine(line: 1, quantity: 3)])),
                                           idempotencyKey: "k3", requestHash: "h", now: t0.adding(days: 1))
            }
            // The job lapses the rest of the lot (30 days); the refund after it takes back no points, only growth.
            _ = try await store.runJobs(asOf: t0.adding(days: 40), now: t0.adding(days: 40))
            let r2 = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 41), body: .orderRefunded(OrderRefunded(orderId: "o1")),
                                            idempotencyKey: "k4", requestHash: "h", now: t0.adding(days: 41))
            #expect(r2.event.outcome.pointsClawedBack == 0)
            #expect(r2.event.outcome.growthClawedBack == 300)
            #expect(r2.event.standing.balance == 0)
            await #expect(throws: StoreError.rule(.duplicateOrder("o1"))) {
                _ = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 41), body: two, idempotencyKey: "k5", requestHash: "h", now: t0.adding(days: 41))
            }
            #expect(try await store.audit(program: "shop", member: m).isEmpty)
        }
    }

    /// The points liability reconciles with the ledger to the point.
    @Test(arguments: Backend.allCases)
    func pointsLiabilityReconcilesWithTheLedger(_ backend: Backend) async throws {
        var program = testProgram(expiryDays: 30, pendingDays: 7)
        program.pointValueMinorPermille = 1000 // one fen a point
        try await withStore(backend, program: program) { store, m in
            var members = [m]
            for i in 0..<4 {
                members.append(try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "L\(i)")], registeredAt: t0),
                                                              idempotencyKey: nil, requestHash: "", now: t0).record.id)
            }
            var n = 0
            func buy(_ id: MemberID, _ d: Int, _ amount: Int64) async throws {
                n += 1
                _ = try await store.record(program: "shop", member: id, occurredAt: t0.adding(days: d), body: order("L\(n)", amount),
                                           idempotencyKey: "l\(n)", requestHash: "h", now: t0.adding(days: d))
            }
            for (i, id) in members.enumerated() {
                let first = n + 1
                for d in stride(from: 0, to: 50, by: 6 + i) { try await buy(id, d, Int64(10_000 + 1_000 * i)) }
                // A spend, and a refund of the first order after its points were spent or lapsed.
                _ = try? await store.record(program: "shop", member: id, occurredAt: t0.adding(days: 50), body: .pointsRedeemed(PointsRedeemed(points: 150, purpose: "mall")),
                                            idempotencyKey: "s\(i)", requestHash: "h", now: t0.adding(days: 50))
                _ = try await store.record(program: "shop", member: id, occurredAt: t0.adding(days: 50), body: .orderRefunded(OrderRefunded(orderId: "L\(first)")),
                                           idempotencyKey: "r\(i)", requestHash: "h", now: t0.adding(days: 50))
                try await buy(id, 57, 20_000) // still pending at day 60
            }
            // Jobs ran to day 45 only: later lapses wait for the next run.
            _ = try await store.runJobs(asOf: t0.adding(days: 45), now: t0.adding(days: 45))
            let asOf = t0.adding(days: 60)
            let r = try await store.pointsLiability(program: "shop", asOf: asOf, breakageFrom: t0, breakageUntil: t0.adding(days: 30))
            #expect(r.ledgerBalance == r.outstanding + r.lapsedAwaitingJobs - r.debt)
            var balances: Int64 = 0
            for id in members { balances += try await store.allEntries(program: "shop", member: id).filter { $0.account == .points }.reduce(0) { $0 + $1.points } }
            #expect(r.ledgerBalance == balances)
            #expect(r.outstanding == r.expirySchedule.reduce(0) { $0 + $1.points } + r.lapsingLater + r.neverLapsing)
            #expect(r.lapsedAwaitingJobs > 0 && r.pending > 0 && r.spendable > 0)
            #expect(r.valueMinor == r.outstanding - r.debt) // one fen a point
            #expect(r.issuedInPeriod > 0 && r.lapsedOfIssued > 0 && r.lapsedOfIssued <= r.issuedInPeriod)
            // After the jobs catch up nothing waits, and the outstanding points are unchanged.
            _ = try await store.runJobs(asOf: asOf, now: asOf)
            let after = try await store.pointsLiability(program: "shop", asOf: asOf, breakageFrom: t0, breakageUntil: t0.adding(days: 30))
            #expect(after.lapsedAwaitingJobs == 0)
            #expect(after.outstanding == r.outstanding)
            #expect(after.ledgerBalance == after.outstanding - after.debt)
            #expect(after.lapsedOfIssued >= r.lapsedOfIssued)
        }
    }

    /// Random events sent to the store, each one twice; the ledger is audited as it goes.
    @Test(arguments: Backend.allCases)
    func generatedEventsKeepTheLedgerTrue(_ backend: Backend) async throws {
        try await withStore(backend, program: testProgram(expiryDays: 20, pendingDays: 2)) { store, m in
            var rng = SeededRandom(seed: 99)
            var t = t0
            var orders: [String] = []
            for i in 0..<120 {
                let late = Int.random(in: 0..<5, using: &rng) == 0
                let when = late ? t.adding(seconds: -Int64.random(in: 0...(86_400 * 10), using: &rng)) : t.adding(seconds: Int64.random(in: 0...(86_400 * 2), using: &rng))
                if !late { t = when }
                let body: EventBody
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<4: orders.append("o\(i)"); body = order("o\(i)", Int64.random(in: 0...80_000, using: &rng))
                case 4..<6 where !orders.isEmpty: body = .orderRefunded(OrderRefunded(orderId: orders.randomElement(using: &rng)!))
                case 6: body = .activity(ActivityDone(activity: "check_in"))
                default: body = .pointsRedeemed(PointsRedeemed(points: Int64.random(in: 1...600, using: &rng), purpose: "gen"))
                }
                let now = max(t, when)
                var first: RecordedEvent? = nil
                do { first = try await store.record(program: "shop", member: m, occurredAt: max(when, t0), body: body, idempotencyKey: "g\(i)", requestHash: "h\(i)", now: now).event } catch is StoreError {}
                let entriesAfterFirst = try await store.allEntries(program: "shop", member: m)
                if let first {
                    let second = try await store.record(program: "shop", member: m, occurredAt: max(when, t0), body: body, idempotencyKey: "g\(i)", requestHash: "h\(i)", now: now)
                    #expect(second.replayed && second.event == first)
                }
                #expect(try await store.allEntries(program: "shop", member: m) == entriesAfterFirst, "a duplicate changed the ledger")
                let problems = try await store.audit(program: "shop", member: m)
                #expect(problems.isEmpty, "\(problems)")
                if !problems.isEmpty { return }
            }
            _ = try await store.runJobs(asOf: t.adding(days: 200), now: t.adding(days: 200))
            #expect(try await store.audit(program: "shop", member: m).isEmpty)
        }
    }

    /// 16 clients spend from one member at once: never more than the balance, every request answered.
    @Test(arguments: Backend.allCases)
    func concurrentSpendsNeverOverspend(_ backend: Backend) async throws {
        try await withStore(backend) { store, m in
            _ = try await store.record(program: "shop", member: m, occurredAt: t0, body: order("o1", 100_000), idempotencyKey: "k0", requestHash: "h", now: t0)
            let results = await withTaskGroup(of: Result<Int64, any Error>.self) { group in
                for i in 0..<16 {
                    group.addTask {
                        do {
                            let r = try await store.record(program: "shop", member: m, occurredAt: t0.adding(seconds: 60), body: .pointsRedeemed(PointsRedeemed(points: 150, purpose: "race")),
                                                           idempotencyKey: "spend-\(i)", requestHash: "h", now: t0.adding(seconds: 60))
                            return .success(r.event.outcome.pointsSpent)
                        } catch { return .failure(error) }
                    }
                }
                var all: [Result<Int64, any Error>] = []
                for await r in group { all.append(r) }
                return all
            }
            #expect(results.count == 16)
            let spent = results.compactMap { try? $0.get() }.reduce(0, +)
            #expect(spent == 900) // 6 × 150 fit in 1000
            for case .failure(let e) in results { #expect(e as? StoreError == .rule(.insufficientPoints(available: 100, requested: 150)), "\(e)") }
            #expect(try await store.member(program: "shop", id: m, now: t0.adding(seconds: 60)).standing.balance == 100)
            #expect(try await store.audit(program: "shop", member: m).isEmpty)
        }
    }

    @Test(arguments: Backend.allCases)
    func bulkImportIsIdempotentPerOrder(_ backend: Backend) async throws {
        try await withStore(backend) { store, m in
            let orders = (0..<300).map { i in
                ImportOrder(line: i + 2, who: i % 3 == 0 ? .member(m) : .identity(Identity(kind: .card, value: "IMP-\(i % 40)")), occurredAt: t0.adding(seconds: Int64(i) * 3600),
                            order: OrderPaid(orderId: "imp-\(i)", lines: [OrderLine(sku: "s", amountMinor: Int64(1000 + i))]))
            } + [ImportOrder(line: 999, who: .identity(Identity(kind: .card, value: "BAD")), occurredAt: t0, order: OrderPaid(orderId: "bad", lines: []))]
            let r = try await store.importOrders(program: "shop", orders, registerMissing: true, now: t0.adding(days: 20), membersPerBatch: 7)
            #expect(r.ordersImported == 300)
            #expect(r.membersCreated == 40) // cards IMP-0…IMP-39 all occur among the i % 3 != 0 rows
            #expect(r.rejected.map(\.line) == [999])
            let again = try await store.importOrders(program: "shop", orders, registerMissing: true, now: t0.adding(days: 20))
            #expect(again.ordersImported == 0 && again.ordersAlreadyThere == 300)
            let member = try await store.member(program: "shop", id: m, now: t0.adding(days: 20))
            #expect(member.standing.orderCount == 100)
            #expect(try await store.audit(program: "shop", member: m).isEmpty)
            let other = try await store.memberId(program: "shop", identity: Identity(kind: .card, value: "IMP-1"))
            #expect(try await store.audit(program: "shop", member: other).isEmpty)
        }
    }
}

typealias SeededRandom = SplitMix
