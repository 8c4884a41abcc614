import Foundation
import Hummingbird
import PatronCore
import PatronStore

/// `POST /v1/members/{memberId}/merges`: merge another member (by id or by an identity) into this one.
struct MergeRequest: Codable, Sendable {
    var absorb: String?
    var absorbIdentity: Identity?
    var by: String
    var reason: String?
}

struct UndoMergeRequest: Codable, Sendable {
    var by: String
}

extension API {
    func mergeMembers(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let survivor = try memberId(ctx)
        let (_, m) = try await jsonBody(req, ctx, as: MergeRequest.self)
        var errors: [FieldError] = []
        if m.by.isEmpty || m.by.count > 100 { errors.append(FieldError(path: "by", reason: "must name who merges (1 to 100 characters)")) }
        if (m.absorb == nil) == (m.absorbIdentity == nil) { errors.append(FieldError(path: "absorb", reason: "give exactly one of absorb (a member id) or absorbIdentity")) }
        if let r = m.reason, r.count > 500 { errors.append(FieldError(path: "reason", reason: "is longer than 500 characters")) }
        var absorbed: MemberID? = nil
        if let raw = m.absorb {
            if let v = Int64(raw), v > 0 { absorbed = MemberID(v) } else { errors.append(FieldError(path: "absorb", reason: "'\(raw)' is not a member id")) }
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        if let identity = m.absorbIdentity { absorbed = try await store.memberId(program: key.program, identity: identity.normalized) }
        let record = try await store.mergeMembers(program: key.program, survivor: survivor, absorbed: absorbed!, by: m.by, reason: m.reason, now: now())
        struct Answer: Encodable { var merge: MemberMergeRecord; var member: MemberRecord }
        return json(Answer(merge: record, member: try await store.member(program: key.program, id: survivor, now: now())), status: .created)
    }

    func memberMerges(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(["items": try await store.merges(program: key.program, member: try memberId(ctx))])
    }

    func undoMerge(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let raw = ctx.parameters.get("merge") ?? ""
        guard let id = Int64(raw) else { throw Problem(.notFound, type: "merge-not-found", title: "No such merge", detail: "'\(raw)' is not a merge id") }
        let (_, u) = try await jsonBody(req, ctx, as: UndoMergeRequest.self)
        guard !u.by.isEmpty, u.by.count <= 100 else { throw Problem.invalid([FieldError(path: "by", reason: "must name who undoes the merge (1 to 100 characters)")]) }
        let record = try await store.unmergeMembers(program: key.program, mergeId: id, by: u.by, now: now())
        struct Answer: Encodable { var merge: MemberMergeRecord; var survivor: MemberRecord; var absorbed: MemberRecord }
        return json(Answer(merge: record, survivor: try await store.member(program: key.program, id: record.survivor, now: now()),
                           absorbed: try await store.member(program: key.program, id: record.absorbed, now: now())))
    }
}
