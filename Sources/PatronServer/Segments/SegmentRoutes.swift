import Foundation
import Hummingbird
import PatronCore
import PatronStore

extension API {
    func segmentDraft(_ req: Request, _ ctx: PatronContext, requireId: Bool) async throws -> SegmentDraft {
        let data = try await body(req, ctx)
        switch SegmentParser.parse(try document(req, data, yaml: true), requireId: requireId) {
        case .success(let d): return d
        case .failure(let f): throw Problem.invalid(f.errors, detail: "the segment is not valid; nothing was changed")
        }
    }

    /// `POST /v1/segments/preview`: size, sample and make-up of a segment being written.
    func previewSegment(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let draft = try await segmentDraft(req, ctx, requireId: false)
        let sample = try queryInt(req, "sample", default: 20, range: 0...200)
        return json(try await store.previewSegment(program: key.program, draft, now: now(), sampleSize: sample))
    }

    func saveSegment(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let draft = try await segmentDraft(req, ctx, requireId: true)
        if let id = ctx.parameters.get("segment"), id != draft.definition.id {
            throw Problem.invalid([FieldError(path: "id", reason: "is '\(draft.definition.id)', but the path names segment '\(id)'")])
        }
        let (saved, created) = try await store.saveSegment(program: key.program, draft, now: now())
        return json(saved, status: created ? .created : .ok)
    }

    func listSegments(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(["items": try await store.segments(program: key.program)])
    }

    func getSegment(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.segment(program: key.program, id: ctx.parameters.get("segment") ?? ""))
    }

    func deleteSegment(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        try await store.deleteSegment(program: key.program, id: ctx.parameters.get("segment") ?? "")
        return Response(status: .noContent)
    }

    /// `GET /v1/segments/{segment}/composition`: the saved segment's size and make-up now (群体画像).
    func segmentComposition(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let saved = try await store.segment(program: key.program, id: ctx.parameters.get("segment") ?? "")
        let sample = try queryInt(req, "sample", default: 20, range: 0...200)
        let draft = SegmentDraft(definition: saved.definition, identities: [])
        return json(try await store.previewSegment(program: key.program, draft, now: now(), sampleSize: sample))
    }

    /// `GET /v1/segments/{segment}/members`: the members now, as JSON or as CSV (`format=csv`)
    /// with the chosen `fields`.
    func segmentMembers(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let id = ctx.parameters.get("segment") ?? ""
        let fields = (req.uri.queryParameters.get("fields") ?? "memberId,tier,pointsBalance,spentMinor,orderCount,lastOrderAt")
            .split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        for (i, f) in fields.enumerated() where SegmentExport.columns[f] == nil {
            throw Problem.invalid([FieldError(path: "fields[\(i)]", reason: "'\(f)' is not an export field; use \(SegmentExport.columns.keys.sorted().joined(separator: ", "))")])
        }
        let format = try queryEnum(req, "format", SegmentExport.Format.self) ?? .json
        let members = try await store.segmentMembers(program: key.program, id: id, now: now())
        switch format {
        case .json:
            return json(["items": members.map { m in Dictionary(uniqueKeysWithValues: fields.map { ($0, SegmentExport.columns[$0]!(m)) }) }])
        case .csv:
            var out = fields.joined(separator: ",") + "\n"
            for m in members { out += fields.map { SegmentExport.csvCell(SegmentExport.columns[$0]!(m)) }.joined(separator: ",") + "\n" }
            var h = HTTPFields()
            h[.contentType] = "text/csv; charset=utf-8"
            h[.contentDisposition] = "attachment; filename=\"segment-\(id).csv\""
            return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: out)))
        }
    }
}

extension API {
    /// `GET /v1/segments/{segment}/changes`: entries and exits (segment.entered, segment.exited), oldest first.
    func segmentChanges(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let since = try instant(req, "since", Timestamp(seconds: Int64.min))
        let limit = try queryInt(req, "limit", default: 100, range: 1...1000)
        return json(["items": try await store.segmentChanges(program: key.program, segment: ctx.parameters.get("segment") ?? "", since: since.seconds == Int64.min ? nil : since, limit: limit)])
    }

    func memberSegments(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let id = try memberId(ctx)
        struct Item: Encodable { var segment: String; var since: Timestamp }
        return json(["items": try await store.memberSegments(program: key.program, member: id).map { Item(segment: $0.segment, since: $0.since) }])
    }
}

enum SegmentExport {
    enum Format: String, CaseIterable { case json, csv }
    /// Export fields: name → value (`JSONValue` so JSON keeps numbers as numbers).
    static let columns: [String: @Sendable (SegmentMember) -> JSONValue] = [
        "memberId": { .string($0.row.id.description) },
        "tier": { .string($0.row.tier) },
        "registeredAt": { .string($0.row.registeredAt.iso8601) },
        "name": { $0.row.profile?.name.map(JSONValue.string) ?? .null },
        "gender": { $0.row.profile?.gender.map { .string($0.rawValue) } ?? .null },
        "city": { $0.row.profile?.city.map(JSONValue.string) ?? .null },
        "registeredChannel": { $0.row.profile?.registeredChannel.map(JSONValue.string) ?? .null },
        "pointsBalance": { .int($0.row.balance) },
        "pointsAvailable": { .int($0.row.available) },
        "growthLifetime": { .int($0.row.growthLifetime) },
        "spentMinor": { .int($0.row.spentMinor) },
        "orderCount": { .int($0.row.orderCount) },
        "lastOrderAt": { $0.row.lastOrderAt.map { .string($0.iso8601) } ?? .null },
        "tags": { .string($0.row.tags.joined(separator: " ")) },
        "rfm": { m in m.scores.r.map { r in .string("\(r)\(m.scores.f ?? 0)\(m.scores.m ?? 0)") } ?? .null },
        "lifecycle": { $0.scores.lifecycle.map { .string($0.rawValue) } ?? .null },
    ]
    /// RFC 4180: quoted when it holds a comma, quote or line break; cells starting with
    /// `=`, `+`, `-` or `@` get a leading `'` so spreadsheets do not run them as formulas.
    static func csvCell(_ v: JSONValue) -> String {
        var s: String
        switch v {
        case .null: return ""
        case .string(let x): s = x
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return b ? "true" : "false"
        default: s = "\(v)"
        }
        if let f = s.first, "=+-@".contains(f) { s = "'" + s }
        if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) { s = "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        return s
    }
}
