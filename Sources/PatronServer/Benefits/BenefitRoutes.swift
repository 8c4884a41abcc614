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
        var status: GrantStatus? = nil
        if let s = req.uri.queryParameters.get("status") {
            guard let v = GrantStatus(rawValue: s) else {
                throw Problem.invalid([FieldError(path: "status", reason: "must be one of: \(GrantStatus.allCases.map(\.rawValue).joined(separator: ", "))")])
            }
            status = v
        }
        return json(try await store.wallet(program: key.program, member: try memberId(ctx), status: status, now: now()))
    }

    func grantBenefit(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let id = try memberId(ctx)
        let idem = try idempotencyKey(req, required: true)
        let data = try await body(req, ctx)
        try requireJSON(data)
        let g = try decode(GrantRequest.self, from: data)
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
        let data = try await body(req, ctx)
        try requireJSON(data)
        let r = try decode(RedemptionRequest.self, from: data)
        if r.code.isEmpty || r.code.count > 32 { throw Problem.invalid([FieldError(path: "code", reason: "must be 1 to 32 characters")]) }
        return json(try await store.redeem(program: key.program, r, idempotencyKey: idem, requestHash: requestHash(req, data), now: now()), status: .created)
    }

    func codeStatus(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.codeStatus(program: key.program, code: ctx.parameters.get("code") ?? "", now: now()))
    }

    func reverseRedemption(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let idem = try idempotencyKey(req, required: true)
        let data = try await body(req, ctx)
        try requireJSON(data)
        let r = try decode(ReversalRequest.self, from: data)
        return json(try await store.reverseRedemption(program: key.program, code: ctx.parameters.get("code") ?? "", reason: r.reason,
                                                      idempotencyKey: idem, requestHash: requestHash(req, data), now: now()))
    }

    func benefitReport(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let q = req.uri.queryParameters
        func instant(_ name: String, _ fallback: Timestamp) throws -> Timestamp {
            guard let s = q.get(name) else { return fallback }
            guard let t = Timestamp(iso8601: s) else { throw Problem.invalid([FieldError(path: name, reason: "must be an ISO 8601 date or date-time, got '\(s)'")]) }
            return t
        }
        let asOf = try instant("asOf", now())
        let until = try instant("until", asOf)
        let from = try instant("from", until.adding(days: -30))
        guard from < until else { throw Problem.invalid([FieldError(path: "from", reason: "must be before until")]) }
        return json(try await store.benefitReport(program: key.program, from: from, until: until, asOf: asOf))
    }
}
