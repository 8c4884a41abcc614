import Foundation
import HTTPTypes
import Hummingbird
import Logging
import PatronCore
import PatronStore
import Yams

public enum APIConfig {
    public static let maxBodyBytes = 256 * 1024
    public static let maxPageSize = 200
    public static let defaultPageSize = 50
}

public struct PatronContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public init(source: Source) { coreContext = .init(source: source) }
    public var maxUploadSize: Int { APIConfig.maxBodyBytes }
}

/// A route of the API: registered on the router and listed in the OpenAPI document from the same
/// table, so the two cannot drift apart.
public struct RouteSpec: Sendable {
    public var method: HTTPRequest.Method
    public var path: String
    public var scope: Scope?
}

/// The HTTP API: decode, authorize, call the store, encode. No business rules here.
public struct API: Sendable {
    public let store: Store
    public let now: @Sendable () -> Timestamp

    public init(store: Store, now: @escaping @Sendable () -> Timestamp) {
        self.store = store
        self.now = now
    }

    public static let routes: [RouteSpec] = [
        .init(method: .get, path: "/healthz", scope: nil),
        .init(method: .get, path: "/openapi.json", scope: nil),
        .init(method: .get, path: "/metrics", scope: nil),
        .init(method: .get, path: "/v1/program", scope: .read),
        .init(method: .put, path: "/v1/program", scope: .admin),
        .init(method: .post, path: "/v1/program/validate", scope: .read),
        .init(method: .post, path: "/v1/members", scope: .write),
        .init(method: .get, path: "/v1/members", scope: .read),
        .init(method: .get, path: "/v1/members/lookup", scope: .read),
        .init(method: .get, path: "/v1/members/{memberId}", scope: .read),
        .init(method: .patch, path: "/v1/members/{memberId}", scope: .write),
        .init(method: .post, path: "/v1/members/{memberId}/events", scope: .write),
        .init(method: .get, path: "/v1/members/{memberId}/events", scope: .read),
        .init(method: .get, path: "/v1/members/{memberId}/ledger", scope: .read),
        .init(method: .get, path: "/v1/members/{memberId}/expiries", scope: .read),
        .init(method: .get, path: "/v1/members/{memberId}/growth", scope: .read),
        .init(method: .get, path: "/v1/members/{memberId}/tier-history", scope: .read),
        .init(method: .get, path: "/v1/members/{memberId}/benefits", scope: .read),
        .init(method: .post, path: "/v1/members/{memberId}/benefits", scope: .write),
        .init(method: .post, path: "/v1/members/{memberId}/benefits/{grant}/claim", scope: .write),
        .init(method: .post, path: "/v1/redemptions", scope: .write),
        .init(method: .get, path: "/v1/redemptions/{code}", scope: .read),
        .init(method: .post, path: "/v1/redemptions/{code}/reversal", scope: .write),
        .init(method: .get, path: "/v1/reports/points-liability", scope: .read),
        .init(method: .get, path: "/v1/reports/benefits", scope: .read),
        .init(method: .get, path: "/v1/mall", scope: .read),
        .init(method: .post, path: "/v1/mall/items/{item}/stock", scope: .admin),
        .init(method: .post, path: "/v1/members/{memberId}/mall/exchanges", scope: .write),
        .init(method: .get, path: "/v1/mall/exchanges", scope: .read),
        .init(method: .post, path: "/v1/members/{memberId}/mall/exchanges/{exchange}/fulfilment", scope: .write),
        .init(method: .post, path: "/v1/members/{memberId}/mall/exchanges/{exchange}/cancellation", scope: .write),
        .init(method: .get, path: "/v1/reports/mall", scope: .read),
        .init(method: .get, path: "/v1/members/{memberId}/reminders", scope: .read),
        .init(method: .get, path: "/v1/reminders", scope: .read),
        .init(method: .get, path: "/v1/members/{memberId}/tags", scope: .read),
        .init(method: .post, path: "/v1/members/{memberId}/tags", scope: .write),
        .init(method: .get, path: "/v1/members/{memberId}/tag-history", scope: .read),
        .init(method: .get, path: "/v1/tags", scope: .read),
        .init(method: .get, path: "/v1/tags/{tag}/members", scope: .read),
        .init(method: .get, path: "/v1/members/{memberId}/portrait", scope: .read),
        .init(method: .get, path: "/v1/reports/churn", scope: .read),
        .init(method: .post, path: "/v1/reports/churn", scope: .admin),
        .init(method: .get, path: "/v1/reports/rfm", scope: .read),
        .init(method: .post, path: "/v1/reports/rfm", scope: .admin),
        .init(method: .get, path: "/v1/reports/kpis", scope: .read),
        .init(method: .get, path: "/v1/reports/cohorts", scope: .read),
        .init(method: .post, path: "/v1/segments/preview", scope: .read),
        .init(method: .get, path: "/v1/segments", scope: .read),
        .init(method: .post, path: "/v1/segments", scope: .write),
        .init(method: .get, path: "/v1/segments/{segment}", scope: .read),
        .init(method: .put, path: "/v1/segments/{segment}", scope: .write),
        .init(method: .delete, path: "/v1/segments/{segment}", scope: .write),
        .init(method: .get, path: "/v1/segments/{segment}/composition", scope: .read),
        .init(method: .get, path: "/v1/segments/{segment}/members", scope: .read),
        .init(method: .get, path: "/v1/segments/{segment}/changes", scope: .read),
        .init(method: .post, path: "/v1/segments/{segment}/tags", scope: .write),
        .init(method: .get, path: "/v1/members/{memberId}/segments", scope: .read),
        .init(method: .post, path: "/v1/members/{memberId}/merges", scope: .write),
        .init(method: .get, path: "/v1/members/{memberId}/merges", scope: .read),
        .init(method: .post, path: "/v1/merges/{merge}/undo", scope: .write),
    ]

    public func router() -> Router<PatronContext> {
        let router = Router(context: PatronContext.self)
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: ProblemMiddleware())
        for r in Self.routes {
            let hbPath = RouterPath(r.path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: ""))
            let handler = self.handler(r)
            router.on(hbPath, method: r.method) { req, ctx in try await handler(req, ctx) }
        }
        return router
    }

    typealias Handler = @Sendable (Request, PatronContext) async throws -> Response

    func handler(_ r: RouteSpec) -> Handler {
        switch (r.method, r.path) {
        case (.get, "/healthz"): return { _, _ in json(["status": "ok"]) }
        case (.get, "/metrics"): return { _, _ in
            var h = HTTPFields(); h[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: PatronMetrics.text())))
        }
        case (.get, "/openapi.json"): return { _, _ in
            var h = HTTPFields(); h[.contentType] = "application/json"
            return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: OpenAPI.document)))
        }
        default: break
        }
        let scope = r.scope!
        let route: @Sendable (Request, PatronContext, APIKey) async throws -> Response
        switch (r.method, r.path) {
        case (.get, "/v1/program"): route = getProgram
        case (.put, "/v1/program"): route = putProgram
        case (.post, "/v1/program/validate"): route = validateProgram
        case (.post, "/v1/members"): route = registerMember
        case (.get, "/v1/members"): route = listMembers
        case (.get, "/v1/members/lookup"): route = lookupMember
        case (.get, "/v1/members/{memberId}"): route = getMember
        case (.patch, "/v1/members/{memberId}"): route = updateMember
        case (.post, "/v1/members/{memberId}/events"): route = postEvent
        case (.get, "/v1/members/{memberId}/events"): route = listEvents
        case (.get, "/v1/members/{memberId}/ledger"): route = ledger
        case (.get, "/v1/members/{memberId}/expiries"): route = expiries
        case (.get, "/v1/members/{memberId}/growth"): route = growth
        case (.get, "/v1/members/{memberId}/tier-history"): route = tierHistory
        case (.get, "/v1/reports/points-liability"): route = pointsLiability
        case (.get, "/v1/members/{memberId}/benefits"): route = wallet
        case (.post, "/v1/members/{memberId}/benefits"): route = grantBenefit
        case (.post, "/v1/members/{memberId}/benefits/{grant}/claim"): route = claimBenefit
        case (.post, "/v1/redemptions"): route = redeem
        case (.get, "/v1/redemptions/{code}"): route = codeStatus
        case (.post, "/v1/redemptions/{code}/reversal"): route = reverseRedemption
        case (.get, "/v1/reports/benefits"): route = benefitReport
        case (.get, "/v1/mall"): route = mallItems
        case (.post, "/v1/mall/items/{item}/stock"): route = restock
        case (.post, "/v1/members/{memberId}/mall/exchanges"): route = exchange
        case (.get, "/v1/mall/exchanges"): route = listExchanges
        case (.post, "/v1/members/{memberId}/mall/exchanges/{exchange}/fulfilment"): route = fulfil
        case (.post, "/v1/members/{memberId}/mall/exchanges/{exchange}/cancellation"): route = cancelExchange
        case (.get, "/v1/reports/mall"): route = mallReport
        case (.get, "/v1/members/{memberId}/reminders"): route = memberReminders
        case (.get, "/v1/reminders"): route = reminders
        case (.get, "/v1/members/{memberId}/tags"): route = memberTags
        case (.post, "/v1/members/{memberId}/tags"): route = setTag
        case (.get, "/v1/members/{memberId}/tag-history"): route = tagHistory
        case (.get, "/v1/tags"): route = tags
        case (.get, "/v1/tags/{tag}/members"): route = membersWithTag
        case (.get, "/v1/members/{memberId}/portrait"): route = portrait
        case (.get, "/v1/reports/churn"): route = churnReport
        case (.post, "/v1/reports/churn"): route = computeChurn
        case (.get, "/v1/reports/rfm"): route = rfmReport
        case (.post, "/v1/reports/rfm"): route = computeRFM
        case (.get, "/v1/reports/kpis"): route = kpis
        case (.get, "/v1/reports/cohorts"): route = cohorts
        case (.post, "/v1/segments/preview"): route = previewSegment
        case (.get, "/v1/segments"): route = listSegments
        case (.post, "/v1/segments"), (.put, "/v1/segments/{segment}"): route = saveSegment
        case (.get, "/v1/segments/{segment}"): route = getSegment
        case (.delete, "/v1/segments/{segment}"): route = deleteSegment
        case (.get, "/v1/segments/{segment}/composition"): route = segmentComposition
        case (.get, "/v1/segments/{segment}/members"): route = segmentMembers
        case (.get, "/v1/segments/{segment}/changes"): route = segmentChanges
        case (.post, "/v1/segments/{segment}/tags"): route = tagSegment
        case (.get, "/v1/members/{memberId}/segments"): route = memberSegments
        case (.post, "/v1/members/{memberId}/merges"): route = mergeMembers
        case (.get, "/v1/members/{memberId}/merges"): route = memberMerges
        case (.post, "/v1/merges/{merge}/undo"): route = undoMerge
        default: preconditionFailure("route \(r.method) \(r.path) has no handler")
        }
        return { req, ctx in
            let key = try await authorize(req, scope: scope)
            return try await route(req, ctx, key)
        }
    }

    // MARK: auth

    func authorize(_ req: Request, scope: Scope) async throws -> APIKey {
        guard let auth = req.headers[.authorization], auth.hasPrefix("Bearer ") else {
            throw Problem(.unauthorized, type: "unauthenticated", title: "An API key is required", detail: "send 'Authorization: Bearer <key>'; create keys with 'patron keys create'")
        }
        guard let key = try await store.authenticate(token: String(auth.dropFirst(7)).trimmingCharacters(in: .whitespaces)) else {
            throw Problem(.unauthorized, type: "unauthenticated", title: "The API key is not valid", detail: "the key is unknown or revoked")
        }
        guard key.scopes.contains(scope) || key.scopes.contains(.admin) else {
            throw Problem(.forbidden, type: "forbidden", title: "The API key lacks a scope", detail: "this route needs the '\(scope.rawValue)' scope; the key has \(key.scopes.map(\.rawValue).sorted())")
        }
        return key
    }

    // MARK: helpers

    func body(_ req: Request, _ ctx: PatronContext) async throws -> Data {
        var req = req
        let buf = try await req.collectBody(upTo: APIConfig.maxBodyBytes)
        return Data(buffer: buf)
    }

    /// The body as a JSON value; YAML is accepted where `yaml` is set and the content type says so.
    func document(_ req: Request, _ data: Data, yaml: Bool = false) throws -> JSONValue {
        let type = req.headers[.contentType] ?? ""
        if yaml, type.contains("yaml") {
            do { return try YAMLDocument.parse(String(decoding: data, as: UTF8.self)) } catch let e as ValidationFailure { throw Problem.invalid(e.errors) }
        }
        if data.isEmpty { throw Problem.badRequest("body", "is empty; send a JSON object") }
        do { return try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            throw Problem.badRequest("body", "is not valid JSON: \(Self.describe(error))")
        }
    }

    /// Decodes `T` from JSON, turning decoding failures into field errors under `prefix`.
    func decode<T: Decodable>(_ t: T.Type, from data: Data, prefix: String = "") throws -> T {
        do { return try JSONDecoder().decode(t, from: data) } catch let e as DecodingError {
            let (path, reason) = Self.fieldError(e)
            let full = [prefix, path].filter { !$0.isEmpty }.joined(separator: ".")
            if case .dataCorrupted(let c) = e, c.codingPath.isEmpty { throw Problem.badRequest("body", "is not valid JSON: \(reason)") }
            throw Problem.invalid([FieldError(path: full.isEmpty ? "body" : full, reason: reason)])
        }
    }

    static func fieldError(_ e: DecodingError) -> (String, String) {
        func path(_ p: [any CodingKey]) -> String {
            p.reduce("") { acc, k in
                if let i = k.intValue { return acc + "[\(i)]" }
                return acc.isEmpty ? k.stringValue : acc + "." + k.stringValue
            }
        }
        switch e {
        case .keyNotFound(let k, let c): return (path(c.codingPath + [k]), "is required")
        case .typeMismatch(let t, let c): return (path(c.codingPath), "must be \(typeName(t))")
        case .valueNotFound(let t, let c): return (path(c.codingPath), "must be \(typeName(t)), not null")
        case .dataCorrupted(let c): return (path(c.codingPath), c.debugDescription.contains("enum") || c.debugDescription.contains("Cannot initialize")
                                            ? "has a value that is not allowed: \(c.debugDescription)" : c.debugDescription)
        @unknown default: return ("", "\(e)")
        }
    }
    static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is Int64.Type, is Int.Type: return "a whole number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Double.Type: return "a number"
        default:
            let n = "\(t)"
            if n.hasPrefix("Array") { return "an array" }
            if n.hasPrefix("Dictionary") { return "an object" }
            return "a \(n)"
        }
    }
    static func describe(_ e: any Error) -> String {
        if let d = e as? DecodingError { return fieldError(d).1 }
        return "\(e)"
    }

    func memberId(_ ctx: PatronContext) throws -> MemberID {
        let raw = ctx.parameters.get("memberId") ?? ""
        guard let v = Int64(raw), v > 0 else { throw Problem(.notFound, type: "member-not-found", title: "No such member", detail: "'\(raw)' is not a member id") }
        return MemberID(v)
    }

    func pageArgs(_ req: Request) throws -> (cursor: String?, limit: Int) {
        let q = req.uri.queryParameters
        var limit = APIConfig.defaultPageSize
        if let l = q.get("limit") {
            guard let v = Int(l), v >= 1, v <= APIConfig.maxPageSize else {
                throw Problem.invalid([FieldError(path: "limit", reason: "must be a whole number from 1 to \(APIConfig.maxPageSize), got '\(l)'")])
            }
            limit = v
        }
        return (q.get("cursor"), limit)
    }

    func idempotencyKey(_ req: Request, required: Bool) throws -> String? {
        guard let k = req.headers[.idempotencyKey] else {
            if required { throw Problem.badRequest("Idempotency-Key", "header is required on this write: send a unique key per intended change, and the same key when retrying") }
            return nil
        }
        guard !k.isEmpty, k.count <= 200 else { throw Problem.badRequest("Idempotency-Key", "must be 1 to 200 characters") }
        return k
    }

    /// A hash of the request: route and body bytes. A retry sends the same bytes; a different body
    /// under the same Idempotency-Key is refused.
    func requestHash(_ req: Request, _ body: Data) -> String {
        Store.hash(req.method.rawValue, req.uri.path, String(decoding: body, as: UTF8.self))
    }

    /// The request body (for the request hash) and `T` decoded from it: a 400 for broken JSON,
    /// a 422 naming the field for content that does not fit `T`.
    func jsonBody<T: Decodable>(_ req: Request, _ ctx: PatronContext, as t: T.Type) async throws -> (data: Data, value: T) {
        let data = try await body(req, ctx)
        try requireJSON(data)
        return (data, try decode(t, from: data))
    }

    /// A query parameter that must be one of an enumeration's values; nil when absent.
    /// An integer query parameter within `range`, or `d` when absent.
    func queryInt(_ req: Request, _ name: String, default d: Int, range: ClosedRange<Int>) throws -> Int {
        guard let s = req.uri.queryParameters.get(name) else { return d }
        guard let v = Int(s), range.contains(v) else {
            throw Problem.invalid([FieldError(path: name, reason: "must be an integer from \(range.lowerBound) to \(range.upperBound)")])
        }
        return v
    }

    func queryEnum<E: RawRepresentable & CaseIterable>(_ req: Request, _ name: String, _ type: E.Type) throws -> E? where E.RawValue == String {
        guard let s = req.uri.queryParameters.get(name) else { return nil }
        guard let v = E(rawValue: s) else {
            throw Problem.invalid([FieldError(path: name, reason: "must be one of: \(E.allCases.map(\.rawValue).joined(separator: ", "))")])
        }
        return v
    }

    /// Checks the body is a JSON object before typed decoding, for a 400 with a clear reason.
    func requireJSON(_ data: Data) throws {
        if data.isEmpty { throw Problem.badRequest("body", "is empty; send a JSON object") }
        do { _ = try JSONSerialization.jsonObject(with: data) } catch {
            throw Problem.badRequest("body", "is not valid JSON")
        }
    }
}

/// A body already encoded (the stored answer of an idempotent write).
func rawJSON(_ text: String, status: HTTPResponse.Status, replayed: Bool) -> Response {
    var h = HTTPFields(); h[.contentType] = "application/json"
    if replayed { h[.idempotentReplayed] = "true" }
    return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: text)))
}

func json<T: Encodable>(_ v: T, status: HTTPResponse.Status = .ok, replayed: Bool = false) -> Response {
    let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var h = HTTPFields(); h[.contentType] = "application/json"
    if replayed { h[.idempotentReplayed] = "true" }
    return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: (try? e.encode(v)) ?? Data("{}".utf8))))
}

/// YAML program documents, read into the same `JSONValue` the validator reads.
public enum YAMLDocument {
    public static func parse(_ text: String) throws -> JSONValue {
        let node: Yams.Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ValidationFailure([FieldError(path: "", reason: "is not valid YAML: \(error)")])
        }
        guard let node else { throw ValidationFailure([FieldError(path: "", reason: "is empty")]) }
        return convert(node)
    }
    static func convert(_ n: Yams.Node) -> JSONValue {
        switch n {
        case .mapping(let m):
            var o: [String: JSONValue] = [:]
            for (k, v) in m { o[k.string ?? "\(k)"] = convert(v) }
            return .object(o)
        case .sequence(let s): return .array(s.map(convert))
        case .scalar(let s):
            if s.style == .plain {
                if s.string == "null" || s.string == "~" || s.string.isEmpty { return .null }
                if s.string == "true" { return .bool(true) }
                if s.string == "false" { return .bool(false) }
                if let i = Int64(s.string) { return .int(i) }
                if let d = Double(s.string), s.string.contains(".") { return .double(d) }
            }
            return .string(s.string)
        case .alias: return .null
        }
    }
}
