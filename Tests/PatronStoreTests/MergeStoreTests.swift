import Foundation
import PatronCore
@testable import PatronStore
import Testing

@Suite struct MergeStoreTests {
    /// What a member is, as the store shows it: standing, ledger, lots, tiers, benefits, tags.
    struct Snapshot: Equatable, CustomStringConvertible {
        var standing: String, entries: [String], lots: [String], tiers: [String], tags: [String]
        var description: String { "\(standing)\n\(entries.joined(separator: "\n"))\n\(lots)\n\(tiers)\n\(tags)" }
    }
    func snapshot(_ store: Store, _ program: String, _ m: MemberID, now: Timestamp) async throws -> Snapshot {
        let r = try await store.member(program: program, id: m, now: now)
        let s = r.standing
        return Snapshot(
            standing: "\(s.balance) \(s.available) \(s.tier.id) \(s.lifetimeGrowth) \(s.qualifyingGrowth)",
            entries: try await store.allEntries(program: program, member: m).map { "\($0.no) \($0.eventId.map { String($0.rawValue) } ?? "-") \($0.at.seconds) \($0.account) \($0.points) \($0.reason)" },
            lots: try await store.lots(program: program, member: m).map { "\($0.no) \($0.original) \($0.remaining) \($0.expiresAt?.seconds ?? 0)" },
            tiers: try await store.tierHistory(program: program, member: m).map { "\($0.at.seconds) \($0.from)→\($0.to) \($0.cause)" },
            tags: try await store.memberTags(program: program, member: m, now: now).map(\.tag))
    }

    /// Merging two members and undoing it gives back both exactly as their own events make them
    /// (a second program gets the same events without the merge), for generated histories with
    /// late events, refunds, adjustments and spends, before, during and after the merge.
    @Test(arguments: Backend.allCases)
    func mergeThenUnmergeRestoresBothMembers(_ backend: Backend) async throws {
        try await backend.withDatabase { db in
            let store = Store(db: db)
            try await store.migrate()
            for key in ["shop", "ctl"] { _ = try await store.applyProgram(testProgram(key: key, expiryDays: 20), effectiveFrom: t0.adding(days: -365), now: t0) }
            func register(_ program: String, _ card: String) async throws -> MemberID {
                try await store.registerMember(program: program, RegisterMember(identities: [Identity(kind: .card, value: card)], registeredAt: t0),
                                               idempotencyKey: nil, requestHash: card, now: t0).record.id
            }
            let a = try await register("shop", "A"), b = try await register("shop", "B")
            let ca = try await register("ctl", "A"), cb = try await register("ctl", "B")
            var rng = SplitMix(seed: 17)
            var now = t0, n = 0
            var orders: [Int: [String]] = [0: [], 1: []]
            /// One random event for member 0 (a) or 1 (b), in both programs.
            func step() async throws {
                now = now.adding(seconds: Int64(rng.next() % 86_400))
                let who = Int(rng.next() % 2)
                n += 1
                // Now and then an event from the past (an offline store uploading late).
                let at = rng.next() % 5 == 0 ? now.adding(seconds: -Int64(rng.next() % (86_400 * 3))) : now
                let body: EventBody
                switch rng.next() % 6 {
                case 0 where !orders[who]!.isEmpty:
                    body = .orderRefunded(OrderRefunded(orderId: orders[who]!.randomElement(using: &rng)!))
                case 1:
                    body = .pointsAdjusted(PointsAdjusted(points: Int64(rng.next() % 200) - 50, reason: "care", staff: "ops"))
                case 2:
                    body = .pointsRedeemed(PointsRedeemed(points: Int64(1 + rng.next() % 80), purpose: "gift"))
                default:
                    let id = "o\(n)"
                    orders[who]!.append(id)
                    body = .orderPaid(OrderPaid(orderId: id, lines: [OrderLine(sku: "k", category: "c", amountMinor: Int64(1_000 + rng.next() % 90_000))]))
                }
                for (program, m) in [("shop", who == 0 ? a : b), ("ctl", who == 0 ? ca : cb)] {
                    // Refused spends and refunds are refused in both programs alike.
                    _ = try? await store.record(program: program, member: m, occurredAt: min(at, now), body: body, idempotencyKey: "e\(n)", requestHash: "h\(n)", now: now)
                }
            }
            for _ in 0..<25 { try await step() }

            let merge = try await store.mergeMembers(program: "shop", survivor: a, absorbed: b, by: "ops-1", reason: "same phone", now: now)
            #expect(try await store.audit(program: "shop", member: a).isEmpty)
            let merged = try await store.member(program: "shop", id: b, now: now)
            #expect(merged.mergedInto == a)
            #expect(try await store.member(program: "shop", id: a, now: now).standing.lifetimeGrowth
                    == store.member(program: "ctl", id: ca, now: now).standing.lifetimeGrowth + store.member(program: "ctl", id: cb, now: now).standing.lifetimeGrowth)
            #expect(try await store.allEntries(program: "shop", member: b).isEmpty)
            await #expect(throws: StoreError.memberMerged(b, into: a)) {
                try await store.updateMember(program: "shop", id: b, UpdateMember(profile: MemberProfile(city: "Xi'an")), idempotencyKey: nil, requestHash: "u", now: now)
            }

            // Events keep arriving for both, the absorbed member's through their own id.
            for _ in 0..<25 { try await step() }
            #expect(try await store.audit(program: "shop", member: a).isEmpty)

            let undone = try await store.unmergeMembers(program: "shop", mergeId: merge.mergeId, by: "ops-2", now: now)
            #expect(undone.undoneAt == now && undone.undoneBy == "ops-2")
            for (m, c) in [(a, ca), (b, cb)] {
                let got = try await snapshot(store, "shop", m, now: now), want = try await snapshot(store, "ctl", c, now: now)
                #expect(got == want, "member \(m) after unmerge:\n\(got)\n--- without the merge:\n\(want)")
                // The histories are rich enough to mean something: earnings, spends, refunds, lapses.
                #expect(want.entries.count >= 15 && Set(want.entries.map { $0.split(separator: " ")[5] }).count >= 4, "\(want)")
                #expect(try await store.audit(program: "shop", member: m).isEmpty)
            }
            #expect(try await store.member(program: "shop", id: b, now: now).mergedInto == nil)
            await #expect(throws: StoreError.mergeUndone(merge.mergeId)) { try await store.unmergeMembers(program: "shop", mergeId: merge.mergeId, by: "x", now: now) }
            #expect(try await store.merges(program: "shop", member: b).map(\.mergeId) == [merge.mergeId])
        }
    }

    @Test(arguments: Backend.allCases)
    func mergesRefuseWhatCannotBe(_ backend: Backend) async throws {
        try await withStore(backend) { store, a in
            let b = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "MB")], registeredAt: t0),
                                                   idempotencyKey: nil, requestHash: "mb", now: t0).record.id
            let c = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "MC")], registeredAt: t0),
                                                   idempotencyKey: nil, requestHash: "mc", now: t0).record.id
            await #expect(throws: StoreError.invalid([FieldError(path: "absorb", reason: "names the member itself; a member cannot be merged into themselves")])) {
                try await store.mergeMembers(program: "shop", survivor: a, absorbed: a, by: "x", reason: nil, now: t0)
            }
            await #expect(throws: StoreError.memberNotFound(MemberID(42))) { try await store.mergeMembers(program: "shop", survivor: a, absorbed: MemberID(42), by: "x", reason: nil, now: t0) }
            _ = try await store.mergeMembers(program: "shop", survivor: a, absorbed: b, by: "x", reason: nil, now: t0)
            // The list shows the survivor for both.
            #expect(try await store.listMembers(program: "shop", cursor: nil, limit: 50).items.map(\.id) == [a, c].sorted { $0.rawValue < $1.rawValue })
            await #expect(throws: StoreError.memberMerged(b, into: a)) { try await store.mergeMembers(program: "shop", survivor: c, absorbed: b, by: "x", reason: nil, now: t0) }
            await #expect(throws: StoreError.hasMergedMembers(a)) { try await store.mergeMembers(program: "shop", survivor: c, absorbed: a, by: "x", reason: nil, now: t0) }
            await #expect(throws: StoreError.mergeNotFound(7)) { try await store.unmergeMembers(program: "shop", mergeId: 7, by: "x", now: t0) }
            // Past the program's retention (mergeUndoDays, 365 by default) a merge stays.
            let old = try await store.merges(program: "shop", member: b)[0].mergeId
            await #expect(throws: StoreError.mergeTooOld(old, days: 365)) { try await store.unmergeMembers(program: "shop", mergeId: old, by: "x", now: t0.adding(days: 366)) }
            // An order of the absorbed member refunded through the survivor's id: the order is theirs now.
            _ = try await store.record(program: "shop", member: b, occurredAt: t0.adding(days: 1), body: order("mb-1", 50_000), idempotencyKey: "mb-1", requestHash: "h", now: t0.adding(days: 1))
            let r = try await store.record(program: "shop", member: a, occurredAt: t0.adding(days: 2), body: .orderRefunded(OrderRefunded(orderId: "mb-1")),
                                           idempotencyKey: "mb-r", requestHash: "h", now: t0.adding(days: 2))
            #expect(r.event.outcome.pointsClawedBack == 500, "\(r.event.outcome)")
            // The absorbed member's orders, imported by their identity, count for the survivor.
            let imported = try await store.importOrders(program: "shop", [ImportOrder(line: 1, who: .identity(Identity(kind: .card, value: "MB")), occurredAt: t0.adding(days: 3),
                                                                                       order: OrderPaid(orderId: "mb-2", lines: [OrderLine(sku: "k", amountMinor: 10_000)]))],
                                                        registerMissing: false, now: t0.adding(days: 3))
            #expect(imported.ordersImported == 1 && imported.rejected.isEmpty)
            #expect(try await store.member(program: "shop", id: a, now: t0.adding(days: 3)).standing.balance == 100)
        }
    }
}

@Suite struct IdentityImportTests {
    /// Rows naming several identities go to the member the program's identity priority finds
    /// first; rows whose identities belong to different members are reported as merge
    /// candidates; a row nobody knows registers one member with all its identities.
    @Test(arguments: Backend.allCases)
    func importsMatchByTheProgramsIdentityPriority(_ backend: Backend) async throws {
        var cardFirst = testProgram(key: "cards")
        cardFirst.identityPriority = [.card, .phone, .app, .wechat, .email, .storeCustomer]
        try await withStore(backend) { store, phoneOwner in   // the harness member has phone +86 138-0000-0001
            _ = try await store.applyProgram(cardFirst, effectiveFrom: t0.adding(days: -365), now: t0)
            let cardOwner = try await store.registerMember(program: "shop", RegisterMember(identities: [Identity(kind: .card, value: "C-7")], registeredAt: t0),
                                                           idempotencyKey: nil, requestHash: "c7", now: t0).record.id
            let both = [Identity(kind: .card, value: "C-7"), Identity(kind: .phone, value: "+86 138-0000-0001")]
            func row(_ line: Int, _ ids: [Identity], _ order: String) -> ImportOrder {
                ImportOrder(line: line, who: .identities(ids), occurredAt: t0.adding(days: 1), order: OrderPaid(orderId: order, lines: [OrderLine(sku: "k", amountMinor: 10_000)]))
            }
            var r = try await store.importOrders(program: "shop", [row(1, both, "i1")], registerMissing: false, now: t0.adding(days: 1))
            #expect(r.ordersImported == 1 && r.mergeCandidates.count == 1)
            #expect(r.mergeCandidates.first?.members == [phoneOwner, cardOwner])
            #expect(try await store.member(program: "shop", id: phoneOwner, now: t0.adding(days: 1)).standing.balance == 100)

            // Nobody has either: one new member with both identities.
            let fresh = [Identity(kind: .email, value: "new@example.com"), Identity(kind: .app, value: "app-9")]
            r = try await store.importOrders(program: "shop", [row(2, fresh, "i2")], registerMissing: true, now: t0.adding(days: 1))
            #expect(r.membersCreated == 1 && r.mergeCandidates.isEmpty)
            let byMail = try await store.memberId(program: "shop", identity: fresh[0]), byApp = try await store.memberId(program: "shop", identity: fresh[1])
            #expect(byMail == byApp)

            // A program that puts cards first sends the same row to the card's member.
            let p2 = try await store.registerMember(program: "cards", RegisterMember(identities: [both[1]], registeredAt: t0), idempotencyKey: nil, requestHash: "p2", now: t0).record.id
            let c2 = try await store.registerMember(program: "cards", RegisterMember(identities: [both[0]], registeredAt: t0), idempotencyKey: nil, requestHash: "c2", now: t0).record.id
            r = try await store.importOrders(program: "cards", [row(1, both, "j1")], registerMissing: false, now: t0.adding(days: 1))
            #expect(r.mergeCandidates.first?.members == [c2, p2])
            #expect(try await store.member(program: "cards", id: c2, now: t0.adding(days: 1)).standing.balance == 100)
        }
    }

    /// With `mergeOn: [phone]`, a phone number seen on two members merges them without an
    /// operator: when a member is given a phone another member holds, and when an import row finds
    /// one member by phone and another by card. Cards alone still only make candidates, a rule
    /// merge can be undone like any other, and a program without the rule keeps the 409.
    @Test(arguments: Backend.allCases)
    func aVerifiedPhoneMergesByRule(_ backend: Backend) async throws {
        var p = testProgram()
        p.mergeOn = [.phone]
        try await withStore(backend, program: p) { store, phoneOwner in   // the harness member has phone +86 138-0000-0001
            let t1 = t0.adding(days: 1)
            func register(_ ids: [Identity]) async throws -> MemberID {
                try await store.registerMember(program: "shop", RegisterMember(identities: ids, registeredAt: t0), idempotencyKey: nil,
                                               requestHash: ids.map(\.value).joined(), now: t0).record.id
            }
            func buy(_ m: MemberID, _ id: String, _ amount: Int64) async throws {
                _ = try await store.record(program: "shop", member: m, occurredAt: t1, body: .orderPaid(OrderPaid(orderId: id, lines: [OrderLine(sku: "k", amountMinor: amount)])),
                                           idempotencyKey: id, requestHash: id, now: t1)
            }
            let card = try await register([Identity(kind: .card, value: "C-1")])
            try await buy(phoneOwner, "p1", 10_000)
            try await buy(card, "c1", 20_000)
            let phone = Identity(kind: .phone, value: "+86 138-0000-0001").normalized   // as stored: +8613800000001

            // The card member is given the phone: the phone's member is merged into them.
            let (record, _) = try await store.updateMember(program: "shop", id: card, UpdateMember(profile: MemberProfile(city: "上海"), addIdentities: [phone]),
                                                          idempotencyKey: "u1", requestHash: "u1", now: t1)
            #expect(record.standing.balance == 300 && record.profile.city == "上海")
            #expect(try await store.memberId(program: "shop", identity: phone) == phoneOwner)   // the absorbed member's own identity …
            #expect(try await store.member(program: "shop", id: phoneOwner, now: t1).mergedInto == card)   // … finds them, merged into the card member
            let merges = try await store.merges(program: "shop", member: card)
            #expect(merges.count == 1 && merges[0].survivor == card && merges[0].absorbed == phoneOwner && merges[0].mergedBy == Store.ruleMergeBy)
            #expect(merges[0].reason?.contains("+8613800000001") == true)
            // The same request again answers as before and merges nothing more.
            let (again, replayed) = try await store.updateMember(program: "shop", id: card, UpdateMember(profile: MemberProfile(city: "上海"), addIdentities: [phone]),
                                                                 idempotencyKey: "u1", requestHash: "u1", now: t1)
            #expect(replayed && again == record)
            // Undo gives both back.
            _ = try await store.unmergeMembers(program: "shop", mergeId: merges[0].mergeId, by: "ops", now: t1)
            #expect(try await store.member(program: "shop", id: card, now: t1).standing.balance == 200)
            #expect(try await store.member(program: "shop", id: phoneOwner, now: t1).standing.balance == 100)

            // A card another member holds is not a proof: still a 409, and nothing changes.
            let other = try await register([Identity(kind: .card, value: "C-2")])
            await #expect(throws: StoreError.identityTaken(Identity(kind: .card, value: "C-2"))) {
                _ = try await store.updateMember(program: "shop", id: card, UpdateMember(addIdentities: [Identity(kind: .card, value: "C-2")]), idempotencyKey: nil, requestHash: "u2", now: t1)
            }
            #expect(try await store.merges(program: "shop", member: card).filter { $0.undoneAt == nil }.isEmpty)

            // An import row finding the phone's member and another member by card: merged by rule
            // once the orders are in; a row tying two members by cards alone stays a candidate.
            func row(_ line: Int, _ ids: [Identity], _ order: String) -> ImportOrder {
                ImportOrder(line: line, who: .identities(ids), occurredAt: t1, order: OrderPaid(orderId: order, lines: [OrderLine(sku: "k", amountMinor: 5_000)]))
            }
            let third = try await register([Identity(kind: .card, value: "C-3"), Identity(kind: .email, value: "c3@example.com")])
            let r = try await store.importOrders(program: "shop", [
                row(1, [Identity(kind: .card, value: "C-2"), phone], "i1"),
                row(2, [Identity(kind: .card, value: "C-3"), Identity(kind: .card, value: "C-1")], "i2"),
            ], registerMissing: false, now: t1)
            #expect(r.ordersImported == 2 && r.rejected.isEmpty)
            #expect(r.merged.map(\.survivor) == [phoneOwner] && r.merged.map(\.absorbed) == [other] && r.merged.first?.identity == phone)
            #expect(r.mergeCandidates.map(\.line) == [2] && r.mergeCandidates.first?.members == [third, card])
            #expect(try await store.member(program: "shop", id: phoneOwner, now: t1).standing.balance == 150)
            #expect(try await store.member(program: "shop", id: other, now: t1).mergedInto == phoneOwner)

            // Without the rule, the phone is a 409 as before.
            _ = try await store.applyProgram(testProgram(), effectiveFrom: t1, now: t1)
            let fourth = try await register([Identity(kind: .card, value: "C-4")])
            await #expect(throws: StoreError.identityTaken(phone)) {
                _ = try await store.updateMember(program: "shop", id: fourth, UpdateMember(addIdentities: [phone]), idempotencyKey: nil, requestHash: "u4", now: t1.adding(seconds: 1))
            }
        }
    }
}
