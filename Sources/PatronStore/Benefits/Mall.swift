import Foundation
import PatronCore

/// Where a mall exchange is in its fulfilment.
public enum FulfilmentStatus: String, Codable, Sendable, CaseIterable {
    /// Goods waiting to be shipped.
    case toShip = "to_ship"
    case shipped
    case delivered
    /// An experience waiting for staff.
    case toFulfil = "to_fulfil"
    /// Done: benefits and donations at once, experiences when staff say so.
    case fulfilled
    /// Cancelled with the points returned.
    case cancelled

    static func initial(_ kind: MallItemKind) -> FulfilmentStatus {
        switch kind { case .goods: .toShip; case .experience: .toFulfil; case .benefit, .donation: .fulfilled }
    }
    /// The statuses a fulfilment step may move to from here (cancellation is its own event).
    var next: Set<FulfilmentStatus> {
        switch self {
        case .toShip: [.shipped]
        case .shipped: [.delivered]
        case .toFulfil: [.fulfilled]
        case .delivered, .fulfilled, .cancelled: []
        }
    }
}

public struct MallItemView: Codable, Sendable, Equatable {
    public var item: MallItem
    /// Stock left; nil for items without a stock limit.
    public var available: Int64?
    public var exchanged: Int64?
    public var visible: Bool
}

public struct ExchangeView: Codable, Sendable, Equatable {
    public var memberId: MemberID
    public var exchange: EventID
    public var item: String
    public var kind: MallItemKind
    public var quantity: Int64
    public var points: Int64
    public var moneyMinor: Int64
    public var grants: [String]
    public var address: String?
    public var status: FulfilmentStatus
    public var trackingNo: String?
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
}

public struct MallReport: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        public var item: String
        public var exchanges: Int64
        public var quantity: Int64
        public var points: Int64
        public var moneyMinor: Int64
        public var cancelled: Int64
        public var available: Int64?
    }
    public var program: String
    public var from: Timestamp
    public var until: Timestamp
    public var exchanges: Int64
    public var pointsSpent: Int64
    public var moneyMinor: Int64
    public var cancelled: Int64
    /// Every item of the program's mall now, most exchanged first.
    public var items: [Item]
}

extension Store {
    /// Stock rows for the stocked items of a program version that do not have one yet.
    func seedStock(_ plan: inout WritePlan, _ def: ProgramDefinition) {
        for item in def.mall {
            guard let stock = item.initialStock else { continue }
            plan.add("INSERT INTO mall_stock (program_id, item_id, available, exchanged) VALUES (?, ?, ?, 0) ON CONFLICT DO NOTHING",
                     [.text(def.key), .text(item.id), .int(stock)])
        }
    }

    /// The rows an exchange or a cancellation writes beside the member's: the stock, under a
    /// guard (no stock below zero; a failed guard rolls the whole event back, points included),
    /// and the exchange's fulfilment row.
    /// `member` and `event` as stored (the addressed member's numbering); `slot` is where the
    /// engine saw them when that member was merged into another.
    func writeMall(_ plan: inout WritePlan, program: String, member: MemberID, event: MemberEvent, slot: Int64 = 0, versions: ProgramVersions, fx: Effects, now: Timestamp) {
        let p = SQLValue.text(program), m = SQLValue.int(member.rawValue)
        switch event.body {
        case .mallExchanged:
            guard let x = fx.exchanges.first(where: { $0.eventId == MemberMerge.virtualID(slot: slot, event.id) && $0.cancelledAt == nil }) else { return }
            if versions.at(x.at).definition.mallItem(x.item)?.initialStock != nil {
                plan.add("UPDATE mall_stock SET available = available - ?, exchanged = exchanged + ? WHERE program_id = ? AND item_id = ? AND available >= ?",
                         [.int(Int64(x.quantity)), .int(Int64(x.quantity)), p, .text(x.item), .int(Int64(x.quantity))], expectRows: 1, else: .taken("stock:\(x.item)"))
            }
            plan.add("""
                INSERT INTO mall_exchanges (program_id, member_id, event_no, item_id, kind, quantity, points, money_minor, grants, address, status, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                """, [p, m, .int(event.id.rawValue), .text(x.item), .text(x.kind.rawValue), .int(Int64(x.quantity)), .int(x.points), .int(x.moneyMinor),
                      .text(x.grants.joined(separator: ",")), SQLValue(x.address), .text(FulfilmentStatus.initial(x.kind).rawValue), .int(x.at.seconds), .int(now.seconds)])
        case .mallCancelled(let c):
            guard let x = fx.exchanges.first(where: { $0.eventId == MemberMerge.virtualID(slot: slot, c.exchange) && $0.cancelledAt != nil }) else { return }
            plan.add("UPDATE mall_stock SET available = available + ?, exchanged = exchanged - ? WHERE program_id = ? AND item_id = ?",
                     [.int(Int64(x.quantity)), .int(Int64(x.quantity)), p, .text(x.item)])
            plan.add("UPDATE mall_exchanges SET status = 'cancelled', updated_at = ? WHERE program_id = ? AND member_id = ? AND event_no = ?",
                     [.int(now.seconds), p, m, .int(c.exchange.rawValue)])
        default: return
        }
    }

    public func mallItems(program: String, now: Timestamp) async throws -> [MallItemView] {
        let def = try await self.program(program).at(now).definition
        var stock: [String: (Int64, Int64)] = [:]
        for r in try await db.query("SELECT item_id, available, exchanged FROM mall_stock WHERE program_id = ?", [.text(program)]) {
            stock[try r.string("item_id")] = (try r.int("available"), try r.int("exchanged"))
        }
        return def.mall.map { i in
            let s = i.initialStock == nil ? nil : stock[i.id]
            return MallItemView(item: i, available: s?.0, exchanged: s?.1, visible: i.isVisible(at: now))
        }
    }

    /// Adds stock to an item (a negative quantity takes away, never below zero).
    public func restock(program: String, item: String, quantity: Int64, now: Timestamp) async throws -> MallItemView {
        let def = try await self.program(program).at(now).definition
        guard let i = def.mallItem(item) else { throw StoreError.rule(.mall(.unknownItem(item))) }
        guard i.initialStock != nil else { throw StoreError.invalid([FieldError(path: "item", reason: "'\(item)' has no stock limit in the program (give it a stock)")]) }
        var plan = WritePlan()
        seedStock(&plan, def)
        plan.add("UPDATE mall_stock SET available = available + ? WHERE program_id = ? AND item_id = ? AND available + ? >= 0",
                 [.int(quantity), .text(program), .text(item), .int(quantity)], expectRows: 1, else: .taken("stock:\(item)"))
        do { try await db.write(plan) } catch GuardFailure.taken { throw StoreError.outOfStock(item) }
        return try await mallItems(program: program, now: now).first { $0.item.id == item }!
    }

    public func exchangeView(program: String, member: MemberID, exchange: EventID) async throws -> ExchangeView {
        let rows = try await db.query("SELECT * FROM mall_exchanges WHERE program_id = ? AND member_id = ? AND event_no = ?",
                                      [.text(program), .int(member.rawValue), .int(exchange.rawValue)])
        guard let r = rows.first else { throw StoreError.rule(.mall(.unknownExchange(exchange))) }
        return try Self.exchangeView(r)
    }

    public func exchanges(program: String, status: FulfilmentStatus?, member: MemberID?, limit: Int) async throws -> [ExchangeView] {
        var sql = "SELECT * FROM mall_exchanges WHERE program_id = ?"
        var binds: [SQLValue] = [.text(program)]
        if let status { sql += " AND status = ?"; binds.append(.text(status.rawValue)) }
        if let member { sql += " AND member_id = ?"; binds.append(.int(member.rawValue)) }
        sql += " ORDER BY created_at DESC, member_id, event_no LIMIT ?"
        binds.append(.int(Int64(limit)))
        return try await db.query(sql, binds).map(Self.exchangeView)
    }

    /// Moves an exchange along its fulfilment: shipped (with a tracking number), delivered, fulfilled.
    public func fulfil(program: String, member: MemberID, exchange: EventID, to status: FulfilmentStatus, trackingNo: String?, now: Timestamp) async throws -> ExchangeView {
        let cur = try await exchangeView(program: program, member: member, exchange: exchange)
        if cur.status == status { return cur }
        guard cur.status.next.contains(status) else {
            throw StoreError.exchangeNotOpen("exchange \(exchange) is \(cur.status.rawValue); it cannot become \(status.rawValue)")
        }
        if status == .shipped, (trackingNo ?? "").isEmpty { throw StoreError.invalid([FieldError(path: "trackingNo", reason: "is required when goods are shipped")]) }
        var plan = WritePlan()
        plan.add("UPDATE mall_exchanges SET status = ?, tracking_no = COALESCE(?, tracking_no), updated_at = ? WHERE program_id = ? AND member_id = ? AND event_no = ? AND status = ?",
                 [.text(status.rawValue), SQLValue(trackingNo), .int(now.seconds), .text(program), .int(member.rawValue), .int(exchange.rawValue), .text(cur.status.rawValue)],
                 expectRows: 1, else: .conflict("exchange"))
        do { try await db.write(plan) } catch GuardFailure.conflict { throw StoreError.exchangeNotOpen("exchange \(exchange) changed meanwhile; read it again") }
        return try await exchangeView(program: program, member: member, exchange: exchange)
    }

    /// Cancels an exchange not yet delivered: points back, stock back, its unused benefits taken back.
    public func cancelExchange(program: String, member: MemberID, exchange: EventID, reason: String, idempotencyKey: String?, requestHash: String,
                               now: Timestamp) async throws -> ExchangeView {
        let cur = try await exchangeView(program: program, member: member, exchange: exchange)
        if cur.status == .delivered || (cur.status == .fulfilled && cur.kind != .benefit) {
            throw StoreError.exchangeNotOpen("exchange \(exchange) is \(cur.status.rawValue); it can no longer be cancelled")
        }
        _ = try await record(program: program, member: member, occurredAt: now, body: .mallCancelled(MallCancelled(exchange: exchange, reason: reason)),
                             idempotencyKey: idempotencyKey, requestHash: requestHash, now: now)
        return try await exchangeView(program: program, member: member, exchange: exchange)
    }

    public func mallReport(program: String, from: Timestamp, until: Timestamp, now: Timestamp) async throws -> MallReport {
        let rows = try await db.query("""
            SELECT item_id, COUNT(*) AS n, SUM(quantity) AS q,
              SUM(CASE WHEN status <> 'cancelled' THEN points ELSE 0 END) AS points,
              SUM(CASE WHEN status <> 'cancelled' THEN money_minor ELSE 0 END) AS money,
              SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled
            FROM mall_exchanges WHERE program_id = ? AND created_at >= ? AND created_at < ? GROUP BY item_id
            """, [.text(program), .int(from.seconds), .int(until.seconds)])
        var byItem: [String: MallReport.Item] = [:]
        for r in rows {
            let id = try r.string("item_id")
            byItem[id] = MallReport.Item(item: id, exchanges: try r.int("n"), quantity: try r.int("q"), points: try r.intOrNil("points") ?? 0,
                                         moneyMinor: try r.intOrNil("money") ?? 0, cancelled: try r.intOrNil("cancelled") ?? 0, available: nil)
        }
        for v in try await mallItems(program: program, now: now) {
            var i = byItem[v.item.id] ?? MallReport.Item(item: v.item.id, exchanges: 0, quantity: 0, points: 0, moneyMinor: 0, cancelled: 0, available: nil)
            i.available = v.available
            byItem[v.item.id] = i
        }
        let items = byItem.values.sorted { ($0.exchanges - $0.cancelled, $1.item) > ($1.exchanges - $1.cancelled, $0.item) }
        return MallReport(program: program, from: from, until: until, exchanges: items.reduce(0) { $0 + $1.exchanges - $1.cancelled },
                          pointsSpent: items.reduce(0) { $0 + $1.points }, moneyMinor: items.reduce(0) { $0 + $1.moneyMinor },
                          cancelled: items.reduce(0) { $0 + $1.cancelled }, items: items)
    }

    static func exchangeView(_ r: SQLRow) throws -> ExchangeView {
        let grants = try r.stringOrNil("grants") ?? ""
        return ExchangeView(memberId: MemberID(try r.int("member_id")), exchange: EventID(try r.int("event_no")), item: try r.string("item_id"),
                            kind: MallItemKind(rawValue: try r.string("kind")) ?? .goods, quantity: try r.int("quantity"), points: try r.int("points"),
                            moneyMinor: try r.int("money_minor"), grants: grants.isEmpty ? [] : grants.split(separator: ",").map(String.init),
                            address: try r.stringOrNil("address"), status: FulfilmentStatus(rawValue: try r.string("status")) ?? .toShip,
                            trackingNo: try r.stringOrNil("tracking_no"), createdAt: Timestamp(seconds: try r.int("created_at")),
                            updatedAt: Timestamp(seconds: try r.int("updated_at")))
    }
}
