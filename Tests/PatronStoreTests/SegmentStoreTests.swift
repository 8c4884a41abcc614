import Foundation
import PatronCore
@testable import PatronStore
import Testing

func segmentDraft(_ json: String, requireId: Bool = true) throws -> SegmentDraft {
    try SegmentParser.parse(try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)), requireId: requireId).get()
}

@Suite struct SegmentStoreTests {
    /// Previews count what the members' histories say, follow writes made after the facts were
    /// built, and saved segments list, export and delete.
    @Test(arguments: Backend.allCases)
    func previewsFollowWritesAndSavedSegmentsExport(_ backend: Backend) async throws {
        try await withStore(backend) { store, first in
            var ids: [MemberID] = [first]
            let cities = ["Shanghai", "Beijing", "Shanghai", "Chengdu"]
            for i in 0..<4 {
                let m = try await store.registerMember(program: "shop", RegisterMember(
                    identities: [Identity(kind: .card, value: "C\(i)")],
                    profile: MemberProfile(gender: i % 2 == 0 ? .female : .male, city: cities[i], registeredChannel: "app"), registeredAt: t0),
                    idempotencyKey: nil, requestHash: "r\(i)", now: t0)
                ids.append(m.record.id)
            }
            // Members 1 and 2 buy shoes (12,000 and 3,000 yuan); member 3 buys a bag.
            let buys: [(Int, String, String, Int64)] = [(1, "s1", "shoes", 1_200_000), (2, "s2", "shoes", 300_000), (3, "b1", "bags", 50_000)]
            for (i, oid, cat, amount) in buys {
                let at = t0.adding(days: 5)
                _ = try await store.record(program: "shop", member: ids[i], occurredAt: at,
                                           body: .orderPaid(OrderPaid(orderId: oid, lines: [OrderLine(sku: "k", category: cat, amountMinor: amount)], channel: "app")),
                                           idempotencyKey: oid, requestHash: "h", now: at)
            }
            let now = t0.adding(days: 6)
            let shoes = try segmentDraft(#"{"condition": "orders.within('90d').any(o, o.category == 'shoes')"}"#, requireId: false)
            var p = try await store.previewSegment(program: "shop", shoes, now: now)
            #expect(p.composition.members == 2 && p.composition.ofMembers == 5)
            #expect(p.composition.sample.sorted { $0.rawValue < $1.rawValue } == [ids[1], ids[2]])
            // 12,000 yuan of growth reach gold (5,000), 3,000 silver (1,000).
            #expect(p.composition.tiers.map(\.members) == [0, 1, 1], "\(p.composition.tiers)")
            #expect(p.composition.cities.first { $0.key == "Beijing" }?.members == 1 && p.composition.gender.first { $0.key == "male" }?.members == 1)
            #expect(p.facts.members == 5 && p.facts.buildSeconds != nil && p.scan.members == 5)

            // A write after the facts were built shows in the next preview.
            let later = t0.adding(days: 6)
            _ = try await store.record(program: "shop", member: ids[3], occurredAt: later,
                                       body: .orderPaid(OrderPaid(orderId: "s3", lines: [OrderLine(sku: "k", category: "shoes", amountMinor: 1_000)])),
                                       idempotencyKey: "s3", requestHash: "h", now: later)
            p = try await store.previewSegment(program: "shop", shoes, now: now)
            #expect(p.composition.members == 3 && p.facts.refreshed == 1 && p.facts.buildSeconds == nil)

            // Lists: identities resolve to members; unknown ones are reported by a preview and refused by a save.
            let listed = try segmentDraft(#"{"id": "picked", "name": "Picked", "identities": [{"kind": "card", "value": "C0"}, {"kind": "card", "value": "NOPE"}], "members": [999]}"#)
            p = try await store.previewSegment(program: "shop", listed, now: now)
            #expect(p.composition.members == 1 && p.unknownIdentities == [Identity(kind: .card, value: "NOPE")] && p.unknownMembers == [MemberID(999)])
            await #expect(throws: StoreError.invalid([FieldError(path: "identities[1]", reason: "no member has card 'NOPE'")])) {
                try await store.saveSegment(program: "shop", listed, now: now)
            }
            #expect(try await store.segments(program: "shop").isEmpty)

            let big = try segmentDraft(#"{"id": "big_shoes", "name": {"zh-CN": "鞋类大客户", "en": "Big shoe buyers"}, "condition": "orders.any(o, o.category == 'shoes') && member.spentMinor >= 300000"}"#)
            let (saved, created) = try await store.saveSegment(program: "shop", big, now: now)
            #expect(created && saved.definition.id == "big_shoes")
            #expect(try await store.saveSegment(program: "shop", big, now: now.adding(seconds: 5)).created == false)
            #expect(try await store.segments(program: "shop").map(\.definition.id) == ["big_shoes"])
            #expect(try await store.segment(program: "shop", id: "big_shoes").updatedAt == now.adding(seconds: 5))
            let members = try await store.segmentMembers(program: "shop", id: "big_shoes", now: now)
            #expect(members.map(\.row.id) == [ids[1], ids[2]] && members[0].row.spentMinor == 1_200_000 && members[0].row.profile?.city == "Shanghai")
            try await store.deleteSegment(program: "shop", id: "big_shoes")
            await #expect(throws: StoreError.segmentNotFound("big_shoes")) { try await store.segment(program: "shop", id: "big_shoes") }
        }
    }

    /// RFM scores and lifecycle stages reach segment conditions after scoring.
    @Test(arguments: Backend.allCases)
    func scoresReachConditions(_ backend: Backend) async throws {
        try await withStore(backend) { store, first in
            let asOf = t0.adding(days: 30)
            let active = try segmentDraft(#"{"condition": "member.lifecycle == 'active' || member.lifecycle == 'new'"}"#, requireId: false)
            let scored = try segmentDraft(#"{"condition": "has(member.rfm) && member.rfm.score >= 1"}"#, requireId: false)
            _ = try await store.record(program: "shop", member: first, occurredAt: t0.adding(days: 20), body: order("x1", 10_000), idempotencyKey: "x1", requestHash: "h", now: t0.adding(days: 20))
            #expect(try await store.previewSegment(program: "shop", active, now: asOf).composition.members == 0)
            try await store.computeRFM(program: "shop", asOf: asOf)
            #expect(try await store.previewSegment(program: "shop", active, now: asOf).composition.members == 1)
            let p = try await store.previewSegment(program: "shop", scored, now: asOf)
            #expect(p.composition.members == 1 && p.composition.lifecycle.map(\.key) != ["null"])
        }
    }
}

@Suite struct SegmentTrackingTests {
    func members(_ store: Store, _ segment: String) async throws -> [MemberID] {
        try await store.db.query("SELECT member_id FROM segment_members WHERE program_id = 'shop' AND segment_id = ? ORDER BY member_id", [.text(segment)])
            .map { MemberID(try $0.int("member_id")) }
    }

    /// Entries and exits are recorded with their instants and causes: the first evaluation of a
    /// saved definition, a member's write, a time condition at its instant.
    @Test(arguments: Backend.allCases)
    func savedSegmentsRecordEntriesAndExits(_ backend: Backend) async throws {
        try await withStore(backend) { store, m in
            let m2 = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "T2")], registeredAt: t0),
                                                    idempotencyKey: nil, requestHash: "t2", now: t0).record.id
            func buy(_ who: MemberID, _ id: String, at: Timestamp) async throws {
                _ = try await store.record(program: "shop", member: who, occurredAt: at, body: order(id, 10_000), idempotencyKey: id, requestHash: "h", now: at)
            }
            let d1 = t0.adding(days: 1)
            try await buy(m, "a1", at: d1)
            _ = try await store.saveSegment(program: "shop", try segmentDraft(#"{"id": "buyers", "name": "Buyers", "condition": "member.orderCount >= 1"}"#), now: d1)
            _ = try await store.saveSegment(program: "shop", try segmentDraft(#"{"id": "lapsed", "name": "Lapsed", "condition": "member.orderCount > 0 && now - member.lastOrderAt >= duration('2d')"}"#), now: d1)
            var r = try await store.refreshSegments(program: "shop", now: d1)
            #expect(r.fullEvaluations == 2 && r.entered == 1 && r.exited == 0)
            #expect(try await members(store, "buyers") == [m])
            #expect(try await members(store, "lapsed") == [])
            // Nothing changed: nothing is evaluated again.
            r = try await store.refreshSegments(program: "shop", now: d1.adding(seconds: 60))
            #expect(r.fullEvaluations == 0 && r.evaluated == 0)

            // Two days after the order, to the second, the member lapses: the timer, not a sweep.
            r = try await store.refreshSegments(program: "shop", now: t0.adding(days: 3).adding(seconds: 500))
            // Only the member who lapses is looked at (once at the crossing, once just after it).
            #expect(r.entered == 1 && (1...2).contains(r.evaluated), "\(r)")
            let lapsedChanges = try await store.segmentChanges(program: "shop", segment: "lapsed", since: nil, limit: 10)
            #expect(lapsedChanges == [SegmentChange(segment: "lapsed", memberId: m, event: "segment.entered", at: d1.adding(days: 2), cause: .time)])

            let d4 = t0.adding(days: 4)
            try await buy(m2, "b1", at: d4)
            try await buy(m, "a2", at: d4)
            r = try await store.refreshSegments(program: "shop", now: d4)
            #expect(r.entered == 1 && r.exited == 1 && r.evaluated == 4)
            #expect(try await members(store, "buyers") == [m, m2])
            #expect(try await members(store, "lapsed") == [])
            #expect(try await store.segmentChanges(program: "shop", segment: "lapsed", since: d4, limit: 10).map(\.cause) == [.member])
            #expect(try await store.memberSegments(program: "shop", member: m).map(\.segment) == ["buyers"])
            #expect(try await store.portrait(program: "shop", member: m2, now: d4).segments.map(\.segment) == ["buyers"])

            // A new definition is evaluated afresh; the changes name it.
            _ = try await store.saveSegment(program: "shop", try segmentDraft(#"{"id": "buyers", "name": "Buyers", "condition": "member.orderCount >= 2"}"#), now: d4.adding(seconds: 10))
            r = try await store.refreshSegments(program: "shop", now: d4.adding(seconds: 10))
            #expect(r.fullEvaluations == 1 && r.exited == 1)
            #expect(try await store.segmentChanges(program: "shop", segment: "buyers", since: d4.adding(seconds: 1), limit: 10)
                == [SegmentChange(segment: "buyers", memberId: m2, event: "segment.exited", at: d4.adding(seconds: 10), cause: .saved)])

            // Another process (a restart) checks every member once and finds nothing to record.
            let restarted = Store(db: store.db)
            r = try await restarted.refreshSegments(program: "shop", now: d4.adding(seconds: 20))
            #expect(r.fullEvaluations == 2 && r.entered == 0 && r.exited == 0)

            try await store.deleteSegment(program: "shop", id: "lapsed")
            #expect(try await members(store, "lapsed") == [])
            r = try await store.refreshSegments(program: "shop", now: d4.adding(seconds: 30))
            #expect(r.entered == 0 && r.exited == 0)
        }
    }

    /// A member merged into another leaves their segments; the survivor is evaluated with both histories.
    @Test(arguments: Backend.allCases)
    func mergedMembersLeaveTheirSegments(_ backend: Backend) async throws {
        try await withStore(backend) { store, a in
            let b = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "S2")], registeredAt: t0),
                                                   idempotencyKey: nil, requestHash: "s2", now: t0).record.id
            for (m, id) in [(a, "x1"), (b, "x2")] {
                _ = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 1), body: order(id, 10_000), idempotencyKey: id, requestHash: "h", now: t0.adding(days: 1))
            }
            _ = try await store.saveSegment(program: "shop", try segmentDraft(#"{"id": "two", "name": "Two orders", "condition": "member.orderCount >= 2"}"#), now: t0.adding(days: 2))
            _ = try await store.saveSegment(program: "shop", try segmentDraft(#"{"id": "one", "name": "One order", "condition": "member.orderCount == 1"}"#), now: t0.adding(days: 2))
            try await store.refreshSegments(program: "shop", now: t0.adding(days: 2))
            #expect(try await members(store, "one") == [a, b].sorted { $0.rawValue < $1.rawValue })
            _ = try await store.mergeMembers(program: "shop", survivor: a, absorbed: b, by: "ops", reason: nil, now: t0.adding(days: 3))
            let r = try await store.refreshSegments(program: "shop", now: t0.adding(days: 3))
            #expect(r.entered == 1 && r.exited == 2)
            #expect(try await members(store, "one") == [])
            #expect(try await members(store, "two") == [a])
            #expect(try await store.segmentChanges(program: "shop", segment: "one", since: t0.adding(days: 3), limit: 10).map(\.cause) == [.member, .member])
        }
    }

    /// KPIs split by saved segment: each segment's members' orders, the total counting each member once.
    @Test(arguments: Backend.allCases)
    func kpisSplitBySegment(_ backend: Backend) async throws {
        try await withStore(backend) { store, a in
            let b = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "K2")], registeredAt: t0),
                                                   idempotencyKey: nil, requestHash: "k2", now: t0).record.id
            for (m, id, amount) in [(a, "k1", Int64(200_000)), (a, "k2", 10_000), (b, "k3", 5_000)] {
                _ = try await store.record(program: "shop", member: m, occurredAt: t0.adding(days: 2), body: order(id, amount), idempotencyKey: id, requestHash: "h", now: t0.adding(days: 2))
            }
            _ = try await store.saveSegment(program: "shop", try segmentDraft(#"{"id": "buyers", "name": "Buyers", "condition": "member.orderCount >= 1"}"#), now: t0.adding(days: 3))
            _ = try await store.saveSegment(program: "shop", try segmentDraft(#"{"id": "big", "name": "Big", "condition": "member.spentMinor >= 100000"}"#), now: t0.adding(days: 3))
            try await store.refreshSegments(program: "shop", now: t0.adding(days: 3))
            let k = try await store.kpis(program: "shop", from: CivilDate(year: 2026, month: 3, day: 1), until: CivilDate(year: 2026, month: 4, day: 1), split: .segment, now: t0.adding(days: 3))
            #expect(k.groups?.map(\.key) == ["big", "buyers"])
            #expect(k.groups?.map(\.activeMembers) == [1, 2] && k.groups?.map(\.orders) == [2, 3])
            #expect(k.total.activeMembers == 2 && k.total.orders == 3 && k.total.revenueMinor == 215_000)
        }
    }

    /// For generated histories, the membership kept incrementally (writes, timers) equals a full
    /// evaluation of every member at every step.
    @Test(arguments: Backend.allCases)
    func incrementalMembershipAgreesWithFullEvaluation(_ backend: Backend) async throws {
        try await withStore(backend) { store, first in
            var ids = [first]
            for i in 0..<5 {
                ids.append(try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "G\(i)")],
                                                                                          profile: MemberProfile(city: i % 2 == 0 ? "Shanghai" : "Beijing"), registeredAt: t0),
                                                          idempotencyKey: nil, requestHash: "g\(i)", now: t0).record.id)
            }
            let defs = [
                #"{"id": "recent", "name": "Recent", "condition": "orders.within('3d').count() >= 1"}"#,
                #"{"id": "big", "name": "Big", "condition": "orders.within('10d').sum(amount) >= 30000 || member.points.balance >= 500"}"#,
                #"{"id": "quiet_sh", "name": "Quiet Shanghai", "condition": "member.profile.city == 'Shanghai' && (member.orderCount == 0 || now - member.lastOrderAt > duration('2d'))", "members": [\#(ids[1].rawValue), \#(ids[2].rawValue)], "combine": "or"}"#,
            ]
            for d in defs { _ = try await store.saveSegment(program: "shop", try segmentDraft(d), now: t0) }
            var rng = SplitMix(seed: 3)
            var now = t0
            var n = 0
            for step in 0..<30 {
                now = now.adding(seconds: Int64(rng.next() % (86_400 * 2)))
                if rng.next() % 3 != 0 {
                    let who = ids[Int(rng.next() % UInt64(ids.count))]
                    n += 1
                    _ = try await store.record(program: "shop", member: who, occurredAt: now, body: order("g\(n)", Int64(1_000 + rng.next() % 20_000)),
                                               idempotencyKey: "g\(n)", requestHash: "h", now: now)
                }
                try await store.refreshSegments(program: "shop", now: now)
                for id in ["recent", "big", "quiet_sh"] {
                    let kept = try await members(store, id)
                    let full = try await store.segmentMembers(program: "shop", id: id, now: now).map(\.row.id)
                    #expect(kept == full, "step \(step) \(id)")
                }
            }
            let changes = try await store.segmentChanges(program: "shop", segment: "recent", since: nil, limit: 1000)
            #expect(changes.contains { $0.cause == .time } && changes.contains { $0.cause == .member })
        }
    }
}
