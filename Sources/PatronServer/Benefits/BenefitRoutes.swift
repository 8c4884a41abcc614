import Foundation
import Hummingbird
import PatronCore
import PatronStore

/// `POST /v1/members/{memberId}/benefits`: staff grant a benefit.
struct GrantRequest: Codable, Sendable {
    var benefit: String
    var count: Int?
    var reason: String
    var staff: String
    var occurredAt: Timestamp?
}

struct ReversalRequest: Codable, Sendable {
    var reason: String
}

extension API {
    func wallet(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.wallet(program: key.program, member: try memberId(ctx), status: try queryEnum(req, "status", GrantStatus.self), now: now()))
    }

    func grantBenefit(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let id = try memberId(ctx)
        let idem = try idempotencyKey(req, required: true)
        let (data, g) = try await jsonBody(req, ctx, as: GrantRequest.self)
        let r = try await store.record(program: key.program, member: id, occurredAt: g.occurredAt ?? now(),
                                       body: .benefitGranted(BenefitGranted(benefit: g.benefit, count: g.count ?? 1, reason: g.reason, staff: g.staff)),
                                       idempotencyKey: idem, requestHash: requestHash(req, data), now: now())
        return rawJSON(r.json, status: .created, replayed: r.replayed)
    }

    func claimBenefit(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let id = try memberId(ctx)
        let no = ctx.parameters.get("grant") ?? ""
        let idem = try idempotencyKey(req, required: false)
        let r = try await store.record(program: key.program, member: id, occurredAt: now(), body: .benefitClaimed(BenefitClaimed(grant: no)),
                                       idempotencyKey: idem, requestHash: requestHash(req, Data()), now: now())
        return json(try await store.grantView(program: key.program, member: id, grant: no, now: now()), status: .created, replayed: r.replayed)
    }

    func redeem(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let idem = try idempotencyKey(req, required: true)
        let (data, r) = try await jsonBody(req, ctx, as: RedemptionRequest.self)
        if r.code.isEmpty || r.code.count > 32 { throw Problem.invalid([FieldError(path: "code", reason: "must be 1 to 32 characters")]) }
        return json(try await store.redeem(program: key.program, r, idempotencyKey: idem, requestHash: requestHash(req, data), now: now()), status: .created)
    }

    func codeStatus(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.codeStatus(program: key.program, code: ctx.parameters.get("code") ?? "", now: now()))
    }

    func reverseRedemption(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let idem = try idempotencyKey(req, required: true)
        let (data, r) = try await jsonBody(req, ctx, as: ReversalRequest.self)
        return json(try await store.reverseRedemption(program: key.program, code: ctx.parameters.get("code") ?? "", reason: r.reason,
                                                      idempotencyKey: idem, requestHash: requestHash(req, data), now: now()))
    }

    func benefitReport(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let asOf = try instant(req, "asOf", now())
        let (from, until) = try period(req, defaultUntil: asOf)
        return json(try await store.benefitReport(program: key.program, from: from, until: until, asOf: asOf))
    }
}

struct ExchangeRequest: Codable, Sendable {
    var item: String
    var quantity: Int?
    var address: String?
}
struct StockRequest: Codable, Sendable { var quantity: Int64 }
struct FulfilmentRequest: Codable, Sendable {
    var status: FulfilmentStatus
    var trackingNo: String?
}

extension API {
    // MARK: points mall

    func mallItems(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(["items": try await store.mallItems(program: key.program, now: now())])
    }

    func restock(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (_, r) = try await jsonBody(req, ctx, as: StockRequest.self)
        guard abs(r.quantity) <= 1_000_000_000, r.quantity != 0 else { throw Problem.invalid([FieldError(path: "quantity", reason: "must be a non-zero whole number within ±1000000000")]) }
        return json(try await store.restock(program: key.program, item: ctx.parameters.get("item") ?? "", quantity: r.quantity, now: now()))
    }

    func exchange(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let id = try memberId(ctx)
        let idem = try idempotencyKey(req, required: true)
        let (data, x) = try await jsonBody(req, ctx, as: ExchangeRequest.self)
        let r = try await store.record(program: key.program, member: id, occurredAt: now(), body: .mallExchanged(MallExchanged(item: x.item, quantity: x.quantity ?? 1, address: x.address)),
                                       idempotencyKey: idem, requestHash: requestHash(req, data), now: now())
        return json(try await store.exchangeView(program: key.program, member: id, exchange: r.event.eventId), status: .created, replayed: r.replayed)
    }

    func exchangeId(_ ctx: PatronContext) throws -> EventID {
        let raw = ctx.parameters.get("exchange") ?? ""
        guard let v = Int64(raw), v > 0 else { throw Problem(.notFound, type: "exchange-not-found", title: "No such exchange", detail: "'\(raw)' is not an exchange id") }
        return EventID(v)
    }

    func listExchanges(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let q = req.uri.queryParameters
        let status = try queryEnum(req, "status", FulfilmentStatus.self)
        var member: MemberID? = nil
        if let m = q.get("member") {
            guard let v = Int64(m) else { throw Problem.invalid([FieldError(path: "member", reason: "must be a member id")]) }
            member = MemberID(v)
        }
        let (_, limit) = try pageArgs(req)
        return json(["items": try await store.exchanges(program: key.program, status: status, member: member, limit: limit)])
    }

    func fulfil(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (_, f) = try await jsonBody(req, ctx, as: FulfilmentRequest.self)
        return json(try await store.fulfil(program: key.program, member: try memberId(ctx), exchange: try exchangeId(ctx), to: f.status, trackingNo: f.trackingNo, now: now()))
    }

    func cancelExchange(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let idem = try idempotencyKey(req, required: true)
        let (data, r) = try await jsonBody(req, ctx, as: ReversalRequest.self)
        return json(try await store.cancelExchange(program: key.program, member: try memberId(ctx), exchange: try exchangeId(ctx), reason: r.reason,
                                                   idempotencyKey: idem, requestHash: requestHash(req, data), now: now()))
    }

    func mallReport(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (from, until) = try period(req, defaultUntil: now())
        return json(try await store.mallReport(program: key.program, from: from, until: until, now: now()))
    }

    /// `from` and `until` query parameters (ISO 8601), by default the 30 days before `defaultUntil`.
    func period(_ req: Request, defaultUntil: Timestamp) throws -> (Timestamp, Timestamp) {
        let until = try instant(req, "until", defaultUntil)
        let from = try instant(req, "from", until.adding(days: -30))
        guard from < until else { throw Problem.invalid([FieldError(path: "from", reason: "must be before until")]) }
        return (from, until)
    }

    // MARK: reminders

    func reminderArgs(_ req: Request) throws -> (ReminderKind, Int) {
        let q = req.uri.queryParameters
        guard let kind = try queryEnum(req, "kind", ReminderKind.self) else {
            throw Problem.invalid([FieldError(path: "kind", reason: "is required: one of \(ReminderKind.allCases.map(\.rawValue).joined(separator: ", "))")])
        }
        var days = 7
        if let d = q.get("days") {
            guard let v = Int(d), v >= 0, v <= 366 else { throw Problem.invalid([FieldError(path: "days", reason: "must be a whole number from 0 to 366, got '\(d)'")]) }
            days = v
        }
        return (kind, days)
    }

    func memberReminders(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (kind, days) = try reminderArgs(req)
        let (cursor, limit) = try pageArgs(req)
        return json(try await store.reminders(program: key.program, kind: kind, member: try memberId(ctx), days: days, cursor: cursor, limit: limit, now: now()))
    }

    func reminders(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (kind, days) = try reminderArgs(req)
        let (cursor, limit) = try pageArgs(req)
        return json(try await store.reminders(program: key.program, kind: kind, member: nil, days: days, cursor: cursor, limit: limit, now: now()))
    }
}
