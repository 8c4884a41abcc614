import Foundation
import PatronCore

public struct RecordedEvent: Codable, Sendable, Equatable {
    public var memberId: MemberID
    public var eventId: EventID
    public var kind: EventKind
    public var occurredAt: Timestamp
    public var outcome: EventOutcome
    public var standing: MemberStanding

    /// The answer's JSON, written by hand (`JSONDecoder` reads it back to the same value; tested).
    public var jsonText: String {
        var w = JSONText()
        w.open()
        w.key("eventId", eventId.description); w.key("kind", kind.rawValue); w.key("memberId", memberId.description); w.key("occurredAt", occurredAt.iso8601)
        w.keyOnlyPublic("outcome"); outcome.write(into: &w)
        w.keyOnlyPublic("standing"); standing.write(into: &w)
        w.close()
        return w.text
    }
}

extension Store {
    /// Accepts one event for one member: decides it with the engine under the program version in
    /// force at its time, and writes the event, its effects and the new state in one transaction.
    /// An event older than what the member's state has seen replays the member's history with it.
    public func record(program: String, member: MemberID, occurredAt: Timestamp, body: EventBody, idempotencyKey: String?,
                       requestHash: String, now: Timestamp) async throws -> (event: RecordedEvent, json: String, replayed: Bool) {
        var errors = EventValidator.validate(body)
        if occurredAt > now.adding(seconds: 300) { errors.append(FieldError(path: "occurredAt", reason: "is in the future (\(occurredAt), now \(now))")) }
        if occurredAt.seconds < 0 { errors.append(FieldError(path: "occurredAt", reason: "is before 1970")) }
        guard errors.isEmpty else { throw StoreError.invalid(errors) }
        let engine = try await self.engine(program)

        for _ in 0..<Self.maxAttempts {
            if let r = try await idempotent(program, idempotencyKey, hash: requestHash) {
                return (try Coding.decode(RecordedEvent.self, r.body), r.body, true)
            }
            let addressed = try await loadMember(program: program, id: member)
            // The member whose state the event changes: the survivor, when the addressed member was
            // merged into another. The event stays the addressed member's (their numbering), so an
            // unmerge gives it back to them; the engine sees it in the member's slot.
            var m = addressed, slot: Int64 = 0
            if let survivor = addressed.mergedInto {
                m = try await loadMember(program: program, id: survivor)
                slot = try await mergeSlot(program: program, survivor: survivor, absorbed: member)
            }
            let eventNo = addressed.lastEventNo + 1
            let stored = MemberEvent(id: EventID(eventNo), occurredAt: occurredAt, body: body)
            let event = slot == 0 ? stored : MemberEvent(id: MemberMerge.virtualID(slot: slot, stored.id), occurredAt: occurredAt, body: body.renumbered(slot: slot))
            var state = m.state
            // The stored record of the order the event names (where a refund's money is booked).
            var known: [String: StoredOrder] = [:]
            // The engine needs the record of the order the event names, if it is recorded.
            var orderId: String? = nil
            if case .orderPaid(let o) = body { orderId = o.orderId }
            if case .orderRefunded(let r) = body { orderId = r.orderId }
            if case .benefitRedeemed(let r) = body { orderId = r.orderId }
            if let orderId, let (record, stored) = try await orderRecord(program: program, orderId: orderId) {
                // The order is the member's, or a member's merged into them (asked only then).
                let owner = stored.owner
                if owner != m.id && owner != member, try await survivor(program: program, of: owner) != m.id { throw StoreError.orderTaken(orderId) }
                state.load(order: orderId, record)
                known[orderId] = stored
            }
            var fx = Effects()
            let outcome: EventOutcome
            let isReplay = occurredAt < m.state.asOf
            do {
                if isReplay {
                    // The member's history, with the members merged into them.
                    let parts = try await historyParts(program: program, member: m.id, registeredAt: m.registeredAt)
                    let r = try engine.replay(member: m.id, registeredAt: MemberMerge.registeredAt(parts), events: MemberMerge.history(parts) + [event],
                                              until: m.state.asOf, validating: event.id, scores: m.state.scores)
                    state = r.state; fx = r.effects; outcome = r.outcomes[event.id]!
                } else {
                    outcome = try engine.apply(&state, event, effects: &fx)
                }
            } catch let e as EngineError {
                throw StoreError.rule(e)
            }
            let result = RecordedEvent(memberId: member, eventId: stored.id, kind: body.kind, occurredAt: occurredAt, outcome: outcome,
                                       standing: engine.standing(state, now: now, programPaceMilli: programPace(program, now: now)))
            var plan = WritePlan()
            updateMemberState(&plan, program: program, m: m, state: state, lastEventNo: slot == 0 ? eventNo : m.lastEventNo, now: now)
            if slot != 0 {
                plan.add("UPDATE members SET last_event_no = ?, state_version = state_version + 1 WHERE program_id = ? AND member_id = ? AND state_version = ?",
                         [.int(eventNo), .text(program), .int(member.rawValue), .int(addressed.stateVersion)], expectRows: 1, else: .conflict("member"))
            }
            plan.add("INSERT INTO events (program_id, member_id, event_no, kind, occurred_at, recorded_at, idempotency_key, payload, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [.text(program), .int(member.rawValue), .int(eventNo), .text(body.kind.rawValue), .int(occurredAt.seconds), .int(now.seconds),
                      SQLValue(idempotencyKey), .text(body.payloadText), .text(outcome.jsonText)])
            var newOrders: [(OrderPaid, EventID, Timestamp)] = []
            if case .orderPaid(let o) = body, outcome.note == nil { newOrders.append((o, stored.id, occurredAt)) }
            if isReplay { deleteDerived(&plan, program: program, member: m.id) }
            let clock = engine.program.at(occurredAt).clock
            writeEffects(&plan, program: program, member: m.id, fx, newOrders: newOrders, ordersOwner: member, clock: clock)
            try await bookRefunds(&plan, program: program, fx, known: known, newOrders: newOrders, owner: member, at: occurredAt, clock: clock)
            writeTags(&plan, program: program, member: m.id, state: state, fx, replay: isReplay)
            writeMall(&plan, program: program, member: member, event: stored, slot: slot, versions: engine.program, fx: fx, now: now)
            let answer = result.jsonText
            rememberAnswer(&plan, program: program, key: idempotencyKey, hash: requestHash, status: 201, response: answer, now: now)
            do {
                try await db.write(plan)
                return (result, answer, false)
            } catch GuardFailure.taken("order") {
                if case .orderPaid(let o) = body { throw StoreError.orderTaken(o.orderId) }
                continue
            } catch GuardFailure.taken(let what) where what.hasPrefix("stock:") {
                throw StoreError.outOfStock(String(what.dropFirst(6)))
            } catch GuardFailure.taken, GuardFailure.conflict { continue }
        }
        throw StoreError.busy("member \(member) is receiving too many concurrent writes; try again")
    }

    /// Applies an event the store itself makes (not sent by a client) to a loaded member, adding
    /// the event row and the new state to `plan`; the caller writes the effects.
    func appendEvent(_ plan: inout WritePlan, program: String, m: LoadedMember, engine: Engine, body: EventBody, now: Timestamp, fx: inout Effects) throws -> MemberState {
        var s = m.state
        let e = MemberEvent(id: EventID(m.lastEventNo + 1), occurredAt: now, body: body)
        let out: EventOutcome
        do { out = try engine.apply(&s, e, effects: &fx) } catch let err as EngineError { throw StoreError.rule(err) }
        updateMemberState(&plan, program: program, m: m, state: s, lastEventNo: e.id.rawValue, now: now)
        plan.add("INSERT INTO events (program_id, member_id, event_no, kind, occurred_at, recorded_at, idempotency_key, payload, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [.text(program), .int(m.id.rawValue), .int(e.id.rawValue), .text(body.kind.rawValue), .int(now.seconds), .int(now.seconds), .null,
                  .text(body.payloadText), .text(out.jsonText)])
        return s
    }

    /// The member's accepted events, in arrival order.
    func events(program: String, member: MemberID) async throws -> [MemberEvent] {
        try await db.query("SELECT event_no, kind, occurred_at, payload FROM events WHERE program_id = ? AND member_id = ? ORDER BY event_no",
                           [.text(program), .int(member.rawValue)]).map { r in
            guard let kind = EventKind(rawValue: try r.string("kind")) else { throw DatabaseError.decoding("unknown event kind") }
            return MemberEvent(id: EventID(try r.int("event_no")), occurredAt: Timestamp(seconds: try r.int("occurred_at")),
                               body: try EventBody.decode(kind: kind, payload: Data(try r.string("payload").utf8)))
        }
    }

    /// The member's current tags, rewritten from the state when the step changed any.
    func writeTags(_ plan: inout WritePlan, program: String, member: MemberID, state: MemberState, _ fx: Effects, replay: Bool) {
        guard replay || !fx.tagChanges.isEmpty else { return }
        let p = SQLValue.text(program), m = SQLValue.int(member.rawValue)
        if !replay { plan.add("DELETE FROM member_tags WHERE program_id = ? AND member_id = ?", [p, m]) }
        RowInsert.memberTags.add(&plan, state.tags.sorted { $0.key < $1.key }.map { id, mark in
            [p, m, .text(id), .int(mark.since.seconds), .int(mark.manual ? 1 : 0), SQLValue(mark.by)]
        })
    }

    func updateMemberState(_ plan: inout WritePlan, program: String, m: LoadedMember, state: MemberState, lastEventNo: Int64, now: Timestamp) {
        let t = max(now, state.asOf)
        plan.touched.append(MemberKey(program: program, member: m.id.rawValue))
        // The indexed columns only when they change (or are not known): setting one rewrites its
        // index entry, a random b-tree page per event on SQLite, even when the value is the same.
        let indexed = LoadedMember.IndexedColumns(state)
        var sets = "", binds: [SQLValue] = []
        if m.indexed?.tierId != indexed.tierId { sets += "tier_id = ?, "; binds.append(.text(indexed.tierId)) }
        if m.indexed == nil || m.indexed?.nextDueAt != indexed.nextDueAt { sets += "next_due_at = ?, "; binds.append(SQLValue(indexed.nextDueAt)) }
        plan.add("""
            UPDATE members SET \(sets)balance = ?, points_available = ?, points_pending = ?, growth_total = ?, state = ?,
              state_version = state_version + 1, last_event_no = ?, as_of = ?, updated_at = ?
            WHERE program_id = ? AND member_id = ? AND state_version = ?
            """, binds + [.int(state.balance), .int(state.available(at: t)), .int(state.pending(at: t)), .int(state.growthTotal),
                  .text(Coding.state(state)), .int(lastEventNo), .int(state.asOf.seconds), .int(now.seconds),
                  .text(program), .int(m.id.rawValue), .int(m.stateVersion)],
            expectRows: 1, else: .conflict("member"))
    }

    func deleteDerived(_ plan: inout WritePlan, program: String, member: MemberID) {
        plan.historyChanges(program, from: Timestamp(seconds: Int64.min))
        for table in ["member_ledger", "tier_changes", "benefit_grants", "tag_changes", "member_tags"] {
            plan.add("DELETE FROM \(table) WHERE program_id = ? AND member_id = ?", [.text(program), .int(member.rawValue)])
        }
    }

    /// The stored record of an order, with the points lapsed since it was last written.
    func orderRecord(program: String, orderId: String) async throws -> (record: OrderRecord, stored: StoredOrder)? {
        let rows = try await db.query("SELECT member_id, record, lapsed_points, channel, store FROM orders WHERE program_id = ? AND order_id = ?", [.text(program), .text(orderId)])
        guard let r = rows.first else { return nil }
        var record = try Coding.order(try r.string("record"))
        record.addLapsed(try r.int("lapsed_points"))
        return (record, StoredOrder(refundedMinor: record.refundedMinor, owner: MemberID(try r.int("member_id")),
                                    channel: try r.stringOrNil("channel") ?? "", store: try r.stringOrNil("store") ?? ""))
    }

    /// A stored order as the refunds aggregate needs it: what it has given back so far, its owner, channel and store.
    struct StoredOrder { var refundedMinor: Int64; var owner: MemberID; var channel: String; var store: String }

    /// Books in the refunds aggregate `member_refund_days` the money the step's changed order
    /// records give back beyond what their stored records did (a refund; refunds that waited for
    /// their order; a replay that moved them), on the local day of `at`, under each order's owner,
    /// the tier held when it was paid, its channel and store (what `member_days` counts it under).
    /// `known`: stored records already read; `newOrders`: orders first recorded by the step.
    func bookRefunds(_ plan: inout WritePlan, program: String, _ fx: Effects, known: [String: StoredOrder], newOrders: [(OrderPaid, EventID, Timestamp)],
                     owner newOwner: MemberID, at: Timestamp, clock: ProgramClock) async throws {
        let day = clock.dayNumber(at), month = clock.date(at).monthNumber
        var rows: [[SQLValue]] = []
        for (id, rec) in fx.orders.sorted(by: { $0.key < $1.key }) {
            var before: StoredOrder? = known[id]
            if before == nil, let o = newOrders.first(where: { $0.0.orderId == id })?.0 {
                guard rec.refundedMinor != 0 else { continue }
                before = StoredOrder(refundedMinor: 0, owner: newOwner, channel: o.channel ?? "", store: o.store ?? "")
            } else if before == nil {
                guard rec.refundedMinor != 0, let (_, stored) = try await orderRecord(program: program, orderId: id) else { continue }
                before = stored
            }
            guard let b = before else { continue }
            let delta = rec.refundedMinor - b.refundedMinor
            guard delta != 0 else { continue }
            rows.append([.text(program), .int(b.owner.rawValue), .int(day), .int(month),
                         .text(rec.tierAtOrder), .text(b.channel), .text(b.store), .int(1), .int(delta)])
            plan.kpiDays.append(KPIDayDelta(program: program, member: b.owner.rawValue, day: day, tier: rec.tierAtOrder,
                                            channel: b.channel, store: b.store, refundedMinor: delta))
        }
        RowInsert.memberRefundDays.add(&plan, rows)
    }

    /// Writes the step's effects. `newOrders` are the orders first recorded by this step (inserted,
    /// guarded: an order id belongs to one member); other changed order records are updated.
    /// `ordersOwner`: whom new orders are recorded for (the member the event was addressed to,
    /// when that member was merged into `member`).
    func writeEffects(_ plan: inout WritePlan, program: String, member: MemberID, _ fx: Effects, newOrders: [(OrderPaid, EventID, Timestamp)] = [],
                      ordersOwner: MemberID? = nil, clock: ProgramClock? = nil) {
        let p = SQLValue.text(program), m = SQLValue.int(member.rawValue), owner = SQLValue.int((ordersOwner ?? member).rawValue)
        if let clock {
            // The KPI aggregate, for the orders first recorded now (replays do not count them again).
            struct Key: Hashable, Comparable {
                var day: Int64, month: Int64, tier: String, channel: String, store: String
                static func < (a: Key, b: Key) -> Bool { (a.day, a.tier, a.channel, a.store) < (b.day, b.tier, b.channel, b.store) }
            }
            var days: [Key: (orders: Int64, revenue: Int64)] = [:]
            for (o, _, at) in newOrders {
                guard let rec = fx.orders[o.orderId] else { continue }
                let key = Key(day: clock.dayNumber(at), month: clock.date(at).monthNumber, tier: rec.tierAtOrder, channel: o.channel ?? "", store: o.store ?? "")
                days[key, default: (0, 0)].orders += 1
                days[key, default: (0, 0)].revenue += o.paidMinor
            }
            let sortedDays = days.sorted(by: { $0.key < $1.key })
            RowInsert.memberDays.add(&plan, sortedDays.map { k, v in
                [p, owner, .int(k.day), .int(k.month), .text(k.tier), .text(k.channel), .text(k.store), .int(v.orders), .int(v.revenue)]
            })
            plan.kpiDays += sortedDays.map { k, v in
                KPIDayDelta(program: program, member: (ordersOwner ?? member).rawValue, day: k.day, tier: k.tier, channel: k.channel, store: k.store,
                            orders: v.orders, revenueMinor: v.revenue)
            }
        }
        var inserted = Set<String>()
        RowInsert.orders.add(&plan, newOrders.compactMap { o, ev, at in
            guard let rec = fx.orders[o.orderId] else { return nil }
            inserted.insert(o.orderId)
            return [p, .text(o.orderId), owner, .int(ev.rawValue), .int(at.seconds), .int(o.paidMinor), SQLValue(o.channel), SQLValue(o.store), .text(Coding.order(rec))]
        }, else: .taken("order"))
        for (id, rec) in fx.orders.sorted(by: { $0.key < $1.key }) where !inserted.contains(id) {
            // By order id alone: the orders of members merged into this one keep their own owner.
            plan.add("UPDATE orders SET record = ?, lapsed_points = 0 WHERE program_id = ? AND order_id = ?",
                     [.text(Coding.order(rec)), p, .text(id)])
        }
        for (id, n) in fx.orderLapses.sorted(by: { $0.key < $1.key }) where fx.orders[id] == nil {
            plan.add("UPDATE orders SET lapsed_points = lapsed_points + ? WHERE program_id = ? AND order_id = ?", [.int(n), p, .text(id)])
        }
        RowInsert.ledgerEntries.add(&plan, fx.entries.map { e in
            [p, m, .int(0), .int(Int64(e.no)), SQLValue(e.eventId?.rawValue), .int(e.at.seconds), .text(e.account.rawValue), .int(e.points), .text(e.reason.rawValue),
             SQLValue(e.lotNo), SQLValue(e.orderId), SQLValue(e.note)]
        })
        RowInsert.lots.add(&plan, fx.lots.values.sorted(by: { $0.no < $1.no }).map { l in
            [p, m, .int(1), .int(Int64(l.no)), .int(l.eventId.rawValue), .text(l.source.rawValue), SQLValue(l.orderId), .int(l.earnedAt.seconds),
             .int(l.availableAt.seconds), SQLValue(l.expiresAt), .int(l.original), .int(l.remaining)]
        })
        if let first = (fx.growth.flatMap { [$0.at, $0.countsAt] } + fx.tierChanges.map(\.at)).min() { plan.historyChanges(program, from: first) }
        RowInsert.growthEntries.add(&plan, fx.growth.map { g in
            [p, m, .int(2), .int(Int64(g.no)), .int(g.eventId.rawValue), .int(g.at.seconds), .int(g.countsAt.seconds), .int(g.growth), .text(g.reason.rawValue), SQLValue(g.orderId)]
        })
        RowInsert.tierChanges.add(&plan, fx.tierChanges.map { c in
            [p, m, .int(Int64(c.no)), .int(c.at.seconds), .text(c.from), .text(c.to), .text(c.cause.rawValue), SQLValue(c.eventId?.rawValue), .int(c.qualifyingGrowth)]
        })
        RowInsert.benefitGrants.add(&plan, fx.grants.values.sorted { $0.id < $1.id }.map { RowInsert.grantRow(p, m, $0) })
        RowInsert.tagChanges.add(&plan, fx.tagChanges.map { c in
            [p, m, .int(Int64(c.no)), .text(c.tag), .int(c.added ? 1 : 0), .int(c.at.seconds), .text(c.cause.rawValue), SQLValue(c.eventId?.rawValue),
             SQLValue(c.by), SQLValue(c.reason)]
        })
    }
}

/// Multi-row INSERTs: rows go in statements of 32, 8 or 1 rows, so a bulk write runs few
/// statements while the statement cache holds at most three shapes per table.
struct RowInsert: Sendable {
    let shapes: [Int: String]
    let guardRows: Bool
    static let sizes = [32, 8, 1]

    init(_ head: String, columns: Int, tail: String = "", guardRows: Bool = false) {
        let one = "(" + Array(repeating: "?", count: columns).joined(separator: ", ") + ")"
        var shapes: [Int: String] = [:]
        for n in Self.sizes { shapes[n] = head + " VALUES " + Array(repeating: one, count: n).joined(separator: ", ") + tail }
        self.shapes = shapes
        self.guardRows = guardRows
    }

    /// Adds the rows; with `guardRows` each statement must insert all its rows, or the plan fails
    /// with `failure`.
    func add(_ plan: inout WritePlan, _ rows: [[SQLValue]], else failure: GuardFailure? = nil) {
        var i = 0
        while i < rows.count {
            let left = rows.count - i
            let n = Self.sizes.first { $0 <= left }!
            var binds: [SQLValue] = []
            binds.reserveCapacity(n * rows[i].count)
            for r in rows[i..<(i + n)] { binds.append(contentsOf: r) }
            plan.add(shapes[n]!, binds, expectRows: guardRows ? n : nil, else: guardRows ? failure : nil)
            i += n
        }
    }

    // Ledger entries, lots and growth entries are rows of `member_ledger` (kinds 0, 1, 2; read through views).
    static let ledgerEntries = RowInsert("INSERT INTO member_ledger (program_id, member_id, kind, item_no, event_no, at, account, points, reason, lot_no, order_id, note)", columns: 12)
    static let lots = RowInsert("INSERT INTO member_ledger (program_id, member_id, kind, item_no, event_no, source, order_id, at, available_at, expires_at, original, remaining)",
                                columns: 12, tail: " ON CONFLICT (program_id, member_id, kind, item_no) DO UPDATE SET remaining = excluded.remaining")
    static let growthEntries = RowInsert("INSERT INTO member_ledger (program_id, member_id, kind, item_no, event_no, at, counts_at, growth, reason, order_id)", columns: 10)
    static let tierChanges = RowInsert("INSERT INTO tier_changes (program_id, member_id, change_no, at, from_tier, to_tier, cause, event_no, qualifying_growth)", columns: 9)
    static let memberRefundDays = RowInsert("INSERT INTO member_refund_days (program_id, member_id, day, month, tier_id, channel, store, refunds, refunded_minor)", columns: 9, tail: """
         ON CONFLICT (program_id, member_id, day, tier_id, channel, store)
         DO UPDATE SET refunds = member_refund_days.refunds + excluded.refunds, refunded_minor = member_refund_days.refunded_minor + excluded.refunded_minor
        """)
    static let memberDays = RowInsert("INSERT INTO member_days (program_id, member_id, day, month, tier_id, channel, store, orders, revenue_minor)", columns: 9, tail: """
         ON CONFLICT (program_id, member_id, day, tier_id, channel, store)
         DO UPDATE SET orders = member_days.orders + excluded.orders, revenue_minor = member_days.revenue_minor + excluded.revenue_minor
        """)
    static let tagChanges = RowInsert("INSERT INTO tag_changes (program_id, member_id, change_no, tag_id, added, at, cause, event_no, set_by, reason)", columns: 10)
    static let memberTags = RowInsert("INSERT INTO member_tags (program_id, member_id, tag_id, since, manual, set_by)", columns: 6)
    static let events = RowInsert("INSERT INTO events (program_id, member_id, event_no, kind, occurred_at, recorded_at, idempotency_key, payload, outcome)", columns: 9)
    static let orders = RowInsert("INSERT INTO orders (program_id, order_id, member_id, event_no, paid_at, amount_minor, channel, store, record)", columns: 9,
                                  tail: " ON CONFLICT DO NOTHING", guardRows: true)
}
