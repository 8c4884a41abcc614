import Foundation
import Hummingbird
import PatronCore
import PatronStore

/// `POST /v1/members/{memberId}/tags`: staff add or remove a manual tag.
struct TagRequest: Codable, Sendable {
    enum Action: String, Codable, Sendable { case add, remove }
    var tag: String
    var action: Action
    var by: String
    var reason: String?
}

extension API {
    func memberTags(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(["items": try await store.memberTags(program: key.program, member: try memberId(ctx), now: now())])
    }

    func setTag(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let id = try memberId(ctx)
        let idem = try idempotencyKey(req, required: true)
        let data = try await body(req, ctx)
        try requireJSON(data)
        let t = try decode(TagRequest.self, from: data)
        _ = try await store.record(program: key.program, member: id, occurredAt: now(), body: .tagSet(TagSet(tag: t.tag, add: t.action == .add, by: t.by, reason: t.reason)),
                                   idempotencyKey: idem, requestHash: requestHash(req, data), now: now())
        return json(["items": try await store.memberTags(program: key.program, member: id, now: now())], status: .created)
    }

    func tagHistory(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (_, limit) = try pageArgs(req)
        return json(["items": try await store.tagHistory(program: key.program, member: try memberId(ctx), limit: limit)])
    }

    func tags(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(["items": try await store.tagSummaries(program: key.program, now: now())])
    }

    func portrait(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.portrait(program: key.program, member: try memberId(ctx), now: now()))
    }

    func rfmReport(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.rfmReport(program: key.program))
    }

    func computeRFM(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        try await store.computeRFM(program: key.program, asOf: now())
        return json(try await store.rfmReport(program: key.program), status: .created)
    }

    func churnReport(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.churnReport(program: key.program))
    }

    func computeChurn(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.computeChurn(program: key.program, asOf: now()), status: .created)
    }

    func membersWithTag(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (cursor, limit) = try pageArgs(req)
        return json(try await store.membersWithTag(program: key.program, tag: ctx.parameters.get("tag") ?? "", cursor: cursor, limit: limit, now: now()))
    }
}
