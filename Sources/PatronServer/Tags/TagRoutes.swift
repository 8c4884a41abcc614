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
        let (data, t) = try await jsonBody(req, ctx, as: TagRequest.self)
        _ = try await store.record(program: key.program, member: id, occurredAt: now(), body: .tagSet(TagSet(tag: t.tag, add: t.action == .add, by: t.by, reason: t.reason)),
                                   idempotencyKey: idem, requestHash: requestHash(req, data), now: now())
        return json(["items": try await store.memberTags(program: key.program, member: id, now: now())], status: .created)
    }

    /// `POST /v1/segments/{segment}/tags`: the same for every member of a saved segment.
    func tagSegment(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        // Required: the call throws without one.
        let idem = try idempotencyKey(req, required: true)!
        let (_, t) = try await jsonBody(req, ctx, as: TagRequest.self)
        let (_, text, replayed) = try await store.tagSegment(program: key.program, segment: ctx.parameters.get("segment") ?? "",
                                                             TagSet(tag: t.tag, add: t.action == .add, by: t.by, reason: t.reason), idempotencyKey: idem, now: now())
        return rawJSON(text, status: .created, replayed: replayed)
    }

    func tagHistory(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (_, limit) = try pageArgs(req)
        return json(["items": try await store.tagHistory(program: key.program, member: try memberId(ctx), limit: limit)])
    }

    func tags(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(["items": try await store.tagSummaries(program: key.program, now: now())])
    }

    func membersWithTag(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let (cursor, limit) = try pageArgs(req)
        return json(try await store.membersWithTag(program: key.program, tag: ctx.parameters.get("tag") ?? "", cursor: cursor, limit: limit, now: now()))
    }
}
