import Foundation
import HTTPTypes
import Hummingbird
import PatronCore
import PatronStore

struct ProgramView: Codable, Sendable {
    var program: String
    var current: ProgramVersionInfo
    var versions: [VersionSummary]
    struct VersionSummary: Codable, Sendable { var version: Int; var effectiveFrom: Timestamp; var createdAt: Timestamp }
}

struct ValidationReport: Codable, Sendable {
    var valid: Bool
    var errors: [Problem.FieldProblem]
    var program: ProgramDefinition?
}

/// `POST /v1/members/{id}/events`: `{"type": "order.paid", "occurredAt": "…", "data": {…}}`,
/// decoded in one pass: `data` by the type it names, so errors carry paths like `data.lines[0].sku`.
struct EventRequest: Decodable {
    var occurredAt: Timestamp
    var body: EventBody
    enum CodingKeys: String, CodingKey { case type, occurredAt, data }
    struct UnknownType: Error { var type: String }
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        guard let kind = EventKind(rawValue: type) else { throw UnknownType(type: type) }
        occurredAt = try c.decode(Timestamp.self, forKey: .occurredAt)
        switch kind {
        case .orderPaid: body = .orderPaid(try c.decode(OrderPaid.self, forKey: .data))
        case .orderRefunded: body = .orderRefunded(try c.decode(OrderRefunded.self, forKey: .data))
        case .pointsAdjusted: body = .pointsAdjusted(try c.decode(PointsAdjusted.self, forKey: .data))
        case .activity: body = .activity(try c.decode(ActivityDone.self, forKey: .data))
        case .pointsRedeemed: body = .pointsRedeemed(try c.decode(PointsRedeemed.self, forKey: .data))
        case .debtSettled: body = .debtSettled(try c.decode(DebtSettled.self, forKey: .data))
        case .benefitGranted: body = .benefitGranted(try c.decode(BenefitGranted.self, forKey: .data))
        case .benefitClaimed: body = .benefitClaimed(try c.decode(BenefitClaimed.self, forKey: .data))
        case .benefitRedeemed: body = .benefitRedeemed(try c.decode(BenefitRedeemed.self, forKey: .data))
        case .benefitReversed: body = .benefitReversed(try c.decode(BenefitReversed.self, forKey: .data))
        case .mallExchanged: body = .mallExchanged(try c.decode(MallExchanged.self, forKey: .data))
        case .mallCancelled: body = .mallCancelled(try c.decode(MallCancelled.self, forKey: .data))
        case .profileSet: throw UnknownType(type: type) // recorded by POST and PATCH /v1/members with the profile
        case .tagSet: body = .tagSet(try c.decode(TagSet.self, forKey: .data))
        }
    }
}

extension API {
    // MARK: program

    func getProgram(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let versions = try await store.programVersions(key.program)
        guard !versions.isEmpty else { throw StoreError.programNotFound(key.program) }
        // The version in force now, chosen as the engine chooses it.
        let inForce = ProgramVersions(versions.map { .init(version: $0.version, effectiveFrom: $0.effectiveFrom, definition: $0.definition) }).at(now()).version
        let current = versions.first { $0.version == inForce }!
        return json(ProgramView(program: key.program, current: current, versions: versions.map { .init(version: $0.version, effectiveFrom: $0.effectiveFrom, createdAt: $0.createdAt) }))
    }

    func parseProgramBody(_ req: Request, _ ctx: PatronContext) async throws -> (Result<ProgramDefinition, ValidationFailure>, JSONValue) {
        let doc = try document(req, try await body(req, ctx), yaml: true)
        return (ProgramParser.parse(doc), doc)
    }

    func putProgram(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        var from: Timestamp? = nil
        if let f = req.uri.queryParameters.get("effectiveFrom") {
            guard let t = Timestamp(iso8601: f) else { throw Problem.invalid([FieldError(path: "effectiveFrom", reason: "must be an ISO 8601 date-time")]) }
            from = t
        }
        let (parsed, doc) = try await parseProgramBody(req, ctx)
        switch parsed {
        case .failure(let f): throw Problem.invalid(f.errors, detail: "the program is not valid; nothing was changed")
        case .success(let def):
            guard def.key == key.program else {
                throw Problem.invalid([FieldError(path: "key", reason: "is '\(def.key)', but this API key belongs to program '\(key.program)'")])
            }
            let r = try await store.applyProgram(def, document: doc, effectiveFrom: from, now: now())
            return json(r.info, status: r.changed ? .created : .ok)
        }
    }

    func validateProgram(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        switch try await parseProgramBody(req, ctx).0 {
        case .failure(let f): return json(ValidationReport(valid: false, errors: f.errors.map { .init(field: $0.path, reason: $0.reason) }, program: nil))
        case .success(let def): return json(ValidationReport(valid: true, errors: [], program: def))
        }
    }

    // MARK: members

    func registerMember(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (data, r) = try await jsonBody(req, ctx, as: RegisterMember.self)
        let res = try await store.registerMember(program: key.program, r, idempotencyKey: try idempotencyKey(req, required: false), requestHash: requestHash(req, data), now: now())
        return json(res.record, status: .created, replayed: res.replayed)
    }

    func listMembers(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (cursor, limit) = try pageArgs(req)
        let q = req.uri.queryParameters
        return json(try await store.listMembers(program: key.program, cursor: cursor, limit: limit, tier: q.get("tier"), namePrefix: q.get("name")))
    }

    func lookupMember(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let q = req.uri.queryParameters
        guard let k = q.get("kind"), let kind = IdentityKind(rawValue: k) else {
            throw Problem.invalid([FieldError(path: "kind", reason: "must be one of: \(IdentityKind.allCases.map(\.rawValue).joined(separator: ", "))")])
        }
        guard let value = q.get("value"), !value.isEmpty else { throw Problem.invalid([FieldError(path: "value", reason: "is required")]) }
        let id = try await store.memberId(program: key.program, identity: Identity(kind: kind, value: value))
        return json(try await store.member(program: key.program, id: id, now: now()))
    }

    func getMember(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.member(program: key.program, id: try memberId(ctx), now: now()))
    }

    func updateMember(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let id = try memberId(ctx)
        let (data, u) = try await jsonBody(req, ctx, as: UpdateMember.self)
        let r = try await store.updateMember(program: key.program, id: id, u, idempotencyKey: try idempotencyKey(req, required: false), requestHash: requestHash(req, data), now: now())
        return json(r.record, replayed: r.replayed)
    }

    // MARK: events

    func postEvent(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let id = try memberId(ctx)
        let idem = try idempotencyKey(req, required: true)
        let data = try await body(req, ctx)
        let env = try decodeEvent(data)
        do {
            let r = try await store.record(program: key.program, member: id, occurredAt: env.occurredAt, body: env.body, idempotencyKey: idem,
                                           requestHash: requestHash(req, data), now: now())
            PatronMetrics.recorded(program: key.program, kind: env.body.kind, outcome: r.event.outcome, replayed: r.replayed)
            return rawJSON(r.json, status: .created, replayed: r.replayed)
        } catch StoreError.rule(let e) {
            let p = Problem.rule(e)
            PatronMetrics.refused(program: key.program, type: p.type.split(separator: "/").last.map(String.init) ?? "rule")
            throw p
        } catch StoreError.invalid(let errs) {
            // Field paths of the event body live under "data".
            throw Problem.invalid(errs.map { $0.path == "occurredAt" ? $0 : FieldError(path: "data.\($0.path)", reason: $0.reason) })
        }
    }

    func decodeEvent(_ data: Data) throws -> EventRequest {
        do { return try decode(EventRequest.self, from: data) } catch let u as EventRequest.UnknownType {
            throw Problem.invalid([FieldError(path: "type", reason: "'\(u.type)' is not one of: \(EventKind.allCases.map(\.rawValue).joined(separator: ", "))")])
        } catch let p as Problem where p.statusCode == 400 {
            try requireJSON(data) // a clear 400 for broken JSON
            throw p
        }
    }

    func listEvents(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (cursor, limit) = try pageArgs(req)
        return json(try await store.eventLog(program: key.program, member: try memberId(ctx), cursor: cursor, limit: limit))
    }

    // MARK: ledger, growth, tiers

    func ledger(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (cursor, limit) = try pageArgs(req)
        return json(try await store.ledger(program: key.program, member: try memberId(ctx), cursor: cursor, limit: limit))
    }

    func expiries(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let m = try await store.member(program: key.program, id: try memberId(ctx), now: now())
        return json(["asOf": .string(m.standing.asOf.iso8601), "expiries": JSONValue.array(m.standing.upcomingExpiries.map {
            .object(["at": .string($0.at.iso8601), "lastDay": .string($0.lastDay.description), "points": .int($0.points)])
        })] as [String: JSONValue])
    }

    func growth(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (cursor, limit) = try pageArgs(req)
        return json(try await store.growthEntries(program: key.program, member: try memberId(ctx), cursor: cursor, limit: limit))
    }

    /// An ISO 8601 instant from the query, or `fallback` when absent.
    func instant(_ req: Request, _ name: String, _ fallback: Timestamp) throws -> Timestamp {
        guard let s = req.uri.queryParameters.get(name) else { return fallback }
        guard let t = Timestamp(iso8601: s) else { throw Problem.invalid([FieldError(path: name, reason: "must be an ISO 8601 date or date-time, got '\(s)'")]) }
        return t
    }

    func pointsLiability(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let asOf = try instant(req, "asOf", now())
        let until = try instant(req, "breakageUntil", asOf)
        let from = try instant(req, "breakageFrom", until.adding(days: -365))
        guard from < until else { throw Problem.invalid([FieldError(path: "breakageFrom", reason: "must be before breakageUntil")]) }
        return json(try await store.pointsLiability(program: key.program, asOf: asOf, breakageFrom: from, breakageUntil: until))
    }

    func tierHistory(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(["items": try await store.tierHistory(program: key.program, member: try memberId(ctx))])
    }
}

extension API {
    /// `POST /bench/bare`: reads and decodes an event exactly as the events route does, then
    /// answers without touching the database. The benchmark's ceiling for the HTTP layer; only
    /// registered by `patron serve --bench-routes`.
    public func addBareRoute(_ router: Router<PatronContext>) {
        router.post("/bench/bare") { req, ctx -> Response in
            let data = try await body(req, ctx)
            let env = try decodeEvent(data)
            _ = requestHash(req, data)
            guard case .orderPaid(let order) = env.body else { throw Problem.invalid([FieldError(path: "type", reason: "must be order.paid")]) }
            return json(["orderId": order.orderId, "status": "decoded"], status: .created)
        }
    }
}
