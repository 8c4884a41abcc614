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
