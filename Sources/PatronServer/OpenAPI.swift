import Foundation
import PatronCore

/// The OpenAPI 3.1 description of the API, built from the same route table the router uses.
public enum OpenAPI {
    struct Operation {
        var summary: String
        var request: String? = nil
        var response: String
        var success: Int = 200
        var errors: [Int]
        var query: [(String, String)] = []
        var idempotency: Bool = false
    }

    static let operations: [String: Operation] = [
        "GET /healthz": Operation(summary: "Liveness", response: "Health", errors: []),
        "GET /openapi.json": Operation(summary: "This document", response: "Object", errors: []),
        "GET /metrics": Operation(summary: "Prometheus metrics (text exposition format)", response: "MetricsText", errors: []),
        "GET /v1/program": Operation(summary: "The program in force now, with its versions", response: "ProgramView", errors: [401, 403, 404]),
        "PUT /v1/program": Operation(summary: "Store a new version of the program (JSON or YAML body); 200 when unchanged",
                                     request: "ProgramDocument", response: "ProgramVersion", success: 201, errors: [400, 401, 403, 413, 422],
                                     query: [("effectiveFrom", "ISO 8601 instant the version takes effect (default: now)")]),
        "POST /v1/program/validate": Operation(summary: "Validate a program document without storing it", request: "ProgramDocument", response: "ValidationReport", errors: [400, 401, 403, 413]),
        "POST /v1/members": Operation(summary: "Register a member", request: "RegisterMember", response: "Member", success: 201, errors: [400, 401, 403, 409, 413, 422], idempotency: true),
        "GET /v1/members": Operation(summary: "List members in id order", response: "MemberPage", errors: [401, 403, 422],
                                     query: [("cursor", "from the previous page's nextCursor"), ("limit", "1 to 200, default 50"), ("tier", "only this tier"), ("name", "names starting with this")]),
        "GET /v1/members/lookup": Operation(summary: "Find a member by an identity", response: "Member", errors: [401, 403, 404, 422],
                                            query: [("kind", "phone, email, card, app, wechat or store_customer"), ("value", "the identity")]),
        "GET /v1/members/{memberId}": Operation(summary: "A member with standing: tier, progress, points, expiries", response: "Member", errors: [401, 403, 404]),
        "PATCH /v1/members/{memberId}": Operation(summary: "Change profile fields or add identities", request: "UpdateMember", response: "Member", errors: [400, 401, 403, 404, 409, 413, 422], idempotency: true),
        "POST /v1/members/{memberId}/events": Operation(summary: "Record an event (order.paid, order.refunded, points.adjusted, activity, points.redeemed, debt.settled)",
                                                        request: "EventRequest", response: "RecordedEvent", success: 201, errors: [400, 401, 403, 404, 409, 413, 422, 503], idempotency: true),
        "GET /v1/members/{memberId}/events": Operation(summary: "The member's events, newest first", response: "EventPage", errors: [401, 403, 404, 422], query: [("cursor", ""), ("limit", "")]),
        "GET /v1/members/{memberId}/ledger": Operation(summary: "Points ledger entries, newest first", response: "LedgerPage", errors: [401, 403, 404, 422], query: [("cursor", ""), ("limit", "")]),
        "GET /v1/members/{memberId}/expiries": Operation(summary: "Points that lapse, by date", response: "Expiries", errors: [401, 403, 404]),
        "GET /v1/members/{memberId}/growth": Operation(summary: "Growth entries, newest first", response: "GrowthPage", errors: [401, 403, 404, 422], query: [("cursor", ""), ("limit", "")]),
        "GET /v1/members/{memberId}/tier-history": Operation(summary: "Every tier change with its cause", response: "TierHistory", errors: [401, 403, 404]),
        "GET /v1/members/{memberId}/benefits": Operation(summary: "The member's benefit wallet: claimable (time left to claim), claimed (time left to use, code), used, expired, revoked",
                                                         response: "Wallet", errors: [401, 403, 404, 422],
                                                         query: [("status", "only claimable, claimed, used, expired, revoked or used_refunded")]),
        "POST /v1/members/{memberId}/benefits": Operation(summary: "Staff grant a benefit of the program (event benefit.granted)", request: "GrantRequest",
                                                          response: "RecordedEvent", success: 201, errors: [400, 401, 403, 404, 413, 422, 503], idempotency: true),
        "POST /v1/members/{memberId}/benefits/{grant}/claim": Operation(summary: "Claim a granted benefit (领取): starts its use window and gives its write-off code",
                                                                        response: "Grant", success: 201, errors: [401, 403, 404, 409, 503], idempotency: true),
        "POST /v1/redemptions": Operation(summary: "Write off a code on an order (核销): checks windows, minimum spend, channel, store, limits and combining, and answers with the discount; a code is used once",
                                          request: "RedemptionRequest", response: "RedemptionResult", success: 201, errors: [400, 401, 403, 404, 409, 413, 422, 503], idempotency: true),
        "GET /v1/redemptions/{code}": Operation(summary: "What a code is and whether it can be used now", response: "Grant", errors: [401, 403, 404]),
        "POST /v1/redemptions/{code}/reversal": Operation(summary: "Reverse the use of a code (order cancelled or refunded): back to the wallet within its window, else used_refunded",
                                                          request: "ReversalRequest", response: "Grant", errors: [400, 401, 403, 404, 409, 413, 422, 503], idempotency: true),
        "GET /v1/reports/benefits": Operation(summary: "Benefits granted in a period, per benefit and granting tier: claimed, used, expired, claim and use rates, discounts, and what their users bought",
                                              response: "BenefitReport", errors: [401, 403, 422],
                                              query: [("from", "start of the period (default 30 days before until)"), ("until", "end, exclusive (default asOf)"), ("asOf", "instant the grants are counted at (default now)")]),
        "GET /v1/mall": Operation(summary: "The points mall (积分商城): every item of the program with its stock left and whether it is on sale now", response: "MallItems", errors: [401, 403]),
        "POST /v1/mall/items/{item}/stock": Operation(summary: "Add stock to an item (negative takes away, never below zero)", request: "StockRequest", response: "MallItem",
                                                      errors: [400, 401, 403, 404, 409, 413, 422]),
        "POST /v1/members/{memberId}/mall/exchanges": Operation(summary: "Exchange points for an item (积分兑换): spends the points and reserves the stock in one transaction; a failed exchange takes nothing",
                                                                request: "ExchangeRequest", response: "Exchange", success: 201, errors: [400, 401, 403, 404, 409, 413, 422, 503], idempotency: true),
        "GET /v1/mall/exchanges": Operation(summary: "Exchanges for fulfilment, newest first", response: "Exchanges", errors: [401, 403, 422],
                                            query: [("status", "to_ship, shipped, delivered, to_fulfil, fulfilled or cancelled"), ("member", "one member's"), ("limit", "1 to 200, default 50")]),
        "POST /v1/members/{memberId}/mall/exchanges/{exchange}/fulfilment": Operation(summary: "Move an exchange along: shipped (with trackingNo), delivered, fulfilled",
                                                                                      request: "FulfilmentRequest", response: "Exchange", errors: [400, 401, 403, 404, 409, 413, 422]),
        "POST /v1/members/{memberId}/mall/exchanges/{exchange}/cancellation": Operation(summary: "Cancel an exchange not yet delivered: points and stock come back, unused benefits it gave are taken back",
                                                                                        request: "ReversalRequest", response: "Exchange", errors: [400, 401, 403, 404, 409, 413, 422, 503], idempotency: true),
        "GET /v1/reports/mall": Operation(summary: "Points mall over a period: exchanges, points and money spent, cancellations, stock left, items by popularity",
                                          response: "MallReport", errors: [401, 403, 422], query: [("from", "default 30 days before until"), ("until", "exclusive, default now")]),
        "GET /v1/members/{memberId}/reminders": Operation(summary: "What of the member's is about to lapse: benefits to claim or use, points to spend", response: "Reminders",
                                                          errors: [401, 403, 404, 422], query: [("kind", "benefit.claim_expiring, benefit.use_expiring or points.expiring"), ("days", "0 to 366, default 7"), ("cursor", ""), ("limit", "")]),
        "GET /v1/reminders": Operation(summary: "The same for all members, in time order, for the messages a later part sends", response: "Reminders",
                                       errors: [401, 403, 422], query: [("kind", "benefit.claim_expiring, benefit.use_expiring or points.expiring"), ("days", "0 to 366, default 7"), ("cursor", ""), ("limit", "")]),
        "GET /v1/members/{memberId}/tags": Operation(summary: "The tags the member has now, with since when and why (rule or staff)", response: "MemberTags", errors: [401, 403, 404]),
        "POST /v1/members/{memberId}/tags": Operation(summary: "Staff add or remove a manual tag (event tag.set; rule tags follow their rules)", request: "TagRequest",
                                                      response: "MemberTags", success: 201, errors: [400, 401, 403, 404, 409, 413, 422, 503], idempotency: true),
        "GET /v1/members/{memberId}/tag-history": Operation(summary: "Every tag.added and tag.removed of the member, newest first, with its cause", response: "TagHistory",
                                                            errors: [401, 403, 404, 422], query: [("limit", "1 to 200, default 50")]),
        "GET /v1/tags": Operation(summary: "The program's tags (rule and manual) with how many members have each now", response: "Tags", errors: [401, 403]),
        "GET /v1/tags/{tag}/members": Operation(summary: "Members who have the tag now, in id order", response: "TaggedMembers", errors: [401, 403, 404, 422],
                                                query: [("cursor", ""), ("limit", "1 to 200, default 50")]),
        "GET /v1/members/{memberId}/portrait": Operation(summary: "Everything known about the member (会员画像): identities, profile, standing, tags, benefits by status, order statistics by month, top categories, channels and stores, and the latest events",
                                                         response: "Portrait", errors: [401, 403, 404]),
        "GET /v1/reports/churn": Operation(summary: "The churn warning from the last fit of BG/NBD, Pareto/NBD and Gamma-Gamma on the program's orders: parameters, members at risk (P(alive) below the program's churn.atRiskBelow), CLV in all and at risk, the most valuable members at risk",
                                           response: "Churn", errors: [401, 403]),
        "POST /v1/reports/churn": Operation(summary: "Fit the models now and score every member", response: "Churn", success: 201, errors: [401, 403, 422]),
        "GET /v1/reports/rfm": Operation(summary: "The RFM grid (members by recency and frequency score, with average spend) and lifecycle stages, as of the last scoring run", response: "RFM", errors: [401, 403]),
        "POST /v1/reports/rfm": Operation(summary: "Score every member now (RFM quintiles over the last 365 days' buyers; lifecycle by recency thresholds) and answer with the report",
                                          response: "RFM", success: 201, errors: [401, 403]),
        "GET /v1/reports/kpis": Operation(summary: "Program KPIs over local days [from, until): members, new, active, repurchase and return rates, upgrade and downgrade rates, AOV, orders per active member, revenue, tier distribution, the funnel; optionally split by tier, channel or store",
                                          response: "KPIs", errors: [401, 403, 422],
                                          query: [("from", "YYYY-MM-DD (default 30 days before until)"), ("until", "YYYY-MM-DD, exclusive (default tomorrow)"), ("split", "tier, channel, store or segment (the saved segments members are in now; a member in two counts in both, once in the total)")]),
        "GET /v1/reports/cohorts": Operation(summary: "Retention and revenue by month of first purchase", response: "Cohorts", errors: [401, 403, 422],
                                             query: [("from", "first day of the first cohort month (default 12 months before until)"), ("until", "exclusive (default next month)"), ("months", "months followed, 0 to 60, default 12")]),
        "GET /v1/reports/points-liability": Operation(summary: "Points liability: outstanding points and their value, expiry schedule by month, breakage; reconciles with the ledger",
                                                      response: "PointsLiability", errors: [401, 403, 422],
                                                      query: [("asOf", "instant of the report (default now)"), ("breakageFrom", "start of the breakage period (default a year before breakageUntil)"),
                                                              ("breakageUntil", "end of the breakage period, exclusive (default asOf)")]),
        "POST /v1/segments/preview": Operation(summary: "Preview a segment as it is written (JSON or YAML): its size, a sample of members and its make-up (tier, lifecycle, RFM grid, gender, city, registered channel, average spend), evaluated over every member now; listed identities and ids no member has are returned apart",
                                               request: "SegmentDocument", response: "SegmentPreview", errors: [400, 401, 403, 413, 422], query: [("sample", "members in the sample, 0 to 200, default 20")]),
        "GET /v1/segments": Operation(summary: "The program's saved segments", response: "Segments", errors: [401, 403]),
        "POST /v1/segments": Operation(summary: "Save a segment (201 new, 200 replaced); listed identities must belong to members", request: "SegmentDocument", response: "Segment", success: 201, errors: [400, 401, 403, 413, 422]),
        "GET /v1/segments/{segment}": Operation(summary: "A saved segment", response: "Segment", errors: [401, 403, 404]),
        "PUT /v1/segments/{segment}": Operation(summary: "Save the segment with this id (the body's id must match)", request: "SegmentDocument", response: "Segment", success: 201, errors: [400, 401, 403, 413, 422]),
        "DELETE /v1/segments/{segment}": Operation(summary: "Delete a saved segment", response: "Empty", success: 204, errors: [401, 403, 404]),
        "GET /v1/segments/{segment}/composition": Operation(summary: "The saved segment's size and make-up now (群体画像)", response: "SegmentPreview", errors: [401, 403, 404, 422],
                                                           query: [("sample", "members in the sample, 0 to 200, default 20")]),
        "GET /v1/segments/{segment}/members": Operation(summary: "The segment's members now, in id order, as JSON or CSV", response: "SegmentMembers", errors: [401, 403, 404, 422],
                                                       query: [("format", "json (default) or csv"), ("fields", "comma-separated: memberId, tier, registeredAt, name, gender, city, registeredChannel, pointsBalance, pointsAvailable, growthLifetime, spentMinor, orderCount, lastOrderAt, tags, rfm, lifecycle")]),
        "GET /v1/segments/{segment}/changes": Operation(summary: "Entries and exits of a saved segment (segment.entered, segment.exited), oldest first, each with its instant and cause: saved (first evaluation of the definition), member (the member changed), time (a time condition flipped), recheck",
                                                       response: "SegmentChanges", errors: [401, 403, 404, 422], query: [("since", "ISO 8601 instant (default: the beginning)"), ("limit", "1 to 1000, default 100")]),
        "POST /v1/segments/{segment}/tags": Operation(summary: "Staff add or remove a manual tag on every member of a saved segment as it is now: one tag.set event per member (who and why in each member's history). The same Idempotency-Key and body answers the first answer again; a request cut short and sent again with the same key goes on where it stopped and changes nobody twice",
                                                     request: "TagRequest", response: "SegmentTagging", success: 201, errors: [400, 401, 403, 404, 409, 413, 422, 503], idempotency: true),
        "GET /v1/members/{memberId}/segments": Operation(summary: "The saved segments the member is in, with since when", response: "MemberSegments", errors: [401, 403, 404]),
        "POST /v1/members/{memberId}/merges": Operation(summary: "Merge another member (absorb: member id, or absorbIdentity) into this one (会员合并): the survivor's points, lots, growth, tier, benefits and tags become what both members' events make together; the absorbed member's identities and later events count for the survivor",
                                                       request: "MergeRequest", response: "MergeResult", success: 201, errors: [400, 401, 403, 404, 409, 413, 422]),
        "GET /v1/members/{memberId}/merges": Operation(summary: "The merges the member took part in, as survivor or absorbed, newest first", response: "Merges", errors: [401, 403, 404]),
        "POST /v1/merges/{merge}/undo": Operation(summary: "Undo a merge: both members become what their own events make them, including events that arrived for either after the merge",
                                                  request: "UndoMergeRequest", response: "UnmergeResult", errors: [400, 401, 403, 404, 409, 413, 422]),
    ]

    static let errorText: [Int: String] = [
        400: "The request cannot be read (malformed JSON, missing header)", 401: "No valid API key", 403: "The key lacks the scope",
        404: "No such member, identity or program", 409: "Conflicts with the current state (taken identity, not enough points, limits)",
        413: "Body larger than 256 KiB", 422: "Valid JSON with invalid content; `errors` names each field", 503: "Too many concurrent writes to one member; retry",
    ]

    public static let document: String = {
        var paths: [String: JSONValue] = [:]
        for r in API.routes {
            let key = "\(r.method.rawValue) \(r.path)"
            guard let op = operations[key] else { preconditionFailure("route \(key) is not documented") }
            var params: [JSONValue] = []
            for name in r.path.split(separator: "/").filter({ $0.hasPrefix("{") }).map({ String($0.dropFirst().dropLast()) }) {
                let pattern = name == "code" ? "^[0-9A-Za-z -]{1,32}$" : name == "grant" ? "^[a-z0-9._-]{1,200}$" : ["item", "tag", "segment"].contains(name) ? "^[a-z][a-z0-9_-]{0,63}$" : "^[0-9]+$"
                params.append(.object(["name": .string(name), "in": "path", "required": .bool(true), "schema": .object(["type": "string", "pattern": .string(pattern)])]))
            }
            for (n, d) in op.query { params.append(.object(["name": .string(n), "in": "query", "required": .bool(false), "description": .string(d), "schema": .object(["type": "string"])])) }
            if op.idempotency {
                params.append(.object(["name": "Idempotency-Key", "in": "header", "required": .bool(key.hasSuffix("/events") || key.hasSuffix("/benefits") || key.contains("/redemptions") || key.hasSuffix("/exchanges") || key.hasSuffix("/cancellation") || key.hasPrefix("POST") && key.hasSuffix("/tags")),
                                       "description": "The same key with the same body returns the first answer; with another body, 422.", "schema": .object(["type": "string", "maxLength": 200])]))
            }
            let mediaType = op.response == "MetricsText" ? "text/plain" : "application/json"
            var responses: [String: JSONValue] = [
                String(op.success): .object(["description": "OK", "content": .object([mediaType: .object(["schema": ref(op.response)])])]),
            ]
            if op.success == 201 && key.hasPrefix("PUT") { responses["200"] = .object(["description": "Unchanged", "content": .object(["application/json": .object(["schema": ref(op.response)])])]) }
            for e in op.errors {
                responses[String(e)] = .object(["description": .string(errorText[e] ?? "Error"), "content": .object(["application/problem+json": .object(["schema": ref("Problem")])])])
            }
            var operation: [String: JSONValue] = ["summary": .string(op.summary), "responses": .object(responses), "operationId": .string(opId(key))]
            if !params.isEmpty { operation["parameters"] = .array(params) }
            if let rq = op.request {
                var content: [String: JSONValue] = ["application/json": .object(["schema": ref(rq)])]
                if rq == "ProgramDocument" || rq == "SegmentDocument" { content["application/yaml"] = .object(["schema": ref(rq)]) }
                operation["requestBody"] = .object(["required": .bool(true), "content": .object(content)])
            }
            if r.scope != nil { operation["security"] = .array([.object(["bearer": .array([.string(r.scope!.rawValue)])])]) }
            var item: [String: JSONValue] = { if case .object(let o)? = paths[r.path] { return o }; return [:] }()
            item[r.method.rawValue.lowercased()] = .object(operation)
            paths[r.path] = .object(item)
        }
        let components = try! JSONDecoder().decode(JSONValue.self, from: Data(schemas.utf8))
        let doc: JSONValue = .object([
            "openapi": "3.1.0",
            "info": .object(["title": "Patron API", "version": "1", "description": "Membership and loyalty operations: programs, members, events, the points ledger, growth and tiers. 会员运营系统 API。"]),
            "paths": .object(paths),
            "components": .object(["schemas": components, "securitySchemes": .object(["bearer": .object(["type": "http", "scheme": "bearer", "description": "ptk_… keys from `patron keys create`"])])]),
        ])
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try! e.encode(doc), as: UTF8.self)
    }()

    static func ref(_ name: String) -> JSONValue { .object(["$ref": .string("#/components/schemas/\(name)")]) }
    static func opId(_ key: String) -> String {
        key.split(whereSeparator: { "/ {}.-".contains($0) }).map { $0.lowercased().capitalized }.joined()
    }

    static let schemas = #"""
    {
      "Object": {"type": "object"},
      "PointsLiability": {"type": "object", "description": "ledgerBalance == outstanding + lapsedAwaitingJobs - debt", "properties": {
        "program": {"type": "string"}, "asOf": {"type": "string"}, "currency": {"type": "string"}, "outstanding": {"type": "integer"}, "spendable": {"type": "integer"},
        "pending": {"type": "integer"}, "debt": {"type": "integer"}, "recordedDebt": {"type": "integer"}, "lapsedAwaitingJobs": {"type": "integer"},
        "ledgerBalance": {"type": "integer"}, "valueMinor": {"type": "integer"},
        "expirySchedule": {"type": "array", "items": {"type": "object", "properties": {"month": {"type": "string"}, "points": {"type": "integer"}, "valueMinor": {"type": "integer"}}}},
        "lapsingLater": {"type": "integer"}, "neverLapsing": {"type": "integer"}, "breakageFrom": {"type": "string"}, "breakageUntil": {"type": "string"},
        "issuedInPeriod": {"type": "integer"}, "lapsedOfIssued": {"type": "integer"}, "breakagePpm": {"type": "integer"}}},
      "MetricsText": {"type": "string", "description": "Prometheus text format: patron_events_total, patron_points_earned_total, hb_requests, hb_request_duration, …"},
      "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
      "Problem": {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
        "retryAfter": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "reason": {"type": "string"}}}}}},
      "LocalizedText": {"type": "object", "properties": {"zh-CN": {"type": "string"}, "en": {"type": "string"}}},
      "ProgramDocument": {"type": "object", "description": "A program: key, name, currency, timeZone, tiers, assessment, earning, activities, expiry, pendingDays, refund. See docs/program.md.",
        "required": ["key", "name", "currency", "timeZone", "tiers", "assessment", "earning"]},
      "ProgramVersion": {"type": "object", "properties": {"program": {"type": "string"}, "version": {"type": "integer"}, "effectiveFrom": {"type": "string", "format": "date-time"},
        "createdAt": {"type": "string", "format": "date-time"}, "definition": {"$ref": "#/components/schemas/ProgramDocument"}}},
      "ProgramView": {"type": "object", "properties": {"program": {"type": "string"}, "current": {"$ref": "#/components/schemas/ProgramVersion"},
        "versions": {"type": "array", "items": {"type": "object"}}}},
      "ValidationReport": {"type": "object", "properties": {"valid": {"type": "boolean"}, "errors": {"type": "array"}, "program": {"type": "object"}}},
      "Identity": {"type": "object", "required": ["kind", "value"], "properties": {
        "kind": {"type": "string", "enum": ["phone", "email", "card", "app", "wechat", "store_customer"]}, "value": {"type": "string", "maxLength": 128}}},
      "Profile": {"type": "object", "properties": {"name": {"type": "string"}, "gender": {"type": "string", "enum": ["female", "male", "other", "unknown"]},
        "birthday": {"type": "string", "format": "date"}, "city": {"type": "string"}, "registeredChannel": {"type": "string"}, "registeredStore": {"type": "string"},
        "marketingConsent": {"type": "boolean"}}},
      "RegisterMember": {"type": "object", "required": ["identities"], "properties": {
        "identities": {"type": "array", "minItems": 1, "maxItems": 20, "items": {"$ref": "#/components/schemas/Identity"}},
        "profile": {"$ref": "#/components/schemas/Profile"}, "registeredAt": {"type": "string", "format": "date-time"}}},
      "UpdateMember": {"type": "object", "properties": {"profile": {"$ref": "#/components/schemas/Profile"},
        "addIdentities": {"type": "array", "items": {"$ref": "#/components/schemas/Identity"}}}},
      "Standing": {"type": "object", "properties": {"asOf": {"type": "string"}, "balance": {"type": "integer"}, "available": {"type": "integer"}, "pending": {"type": "integer"},
        "debt": {"type": "integer"}, "recordedDebt": {"type": "integer"}, "tier": {"type": "object"}, "tierSince": {"type": "string"}, "nextTier": {"type": "object"},
        "qualifyingGrowth": {"type": "integer"}, "lifetimeGrowth": {"type": "integer"}, "keepingGrowth": {"type": "integer"}, "missingToKeep": {"type": "integer"},
        "missingToNext": {"type": "integer"}, "nextAssessmentAt": {"type": "string"}, "inGrace": {"type": "boolean"}, "orderCount": {"type": "integer"},
        "spentMinor": {"type": "integer"}, "upcomingExpiries": {"type": "array"},
        "upgradeForecast": {"type": "object", "description": "when the next tier is reached at the member's pace (last 90 days; the program's average for members with little history)",
          "properties": {"outcome": {"type": "string", "enum": ["reached", "notAtThisPace", "notBeforeReset", "noPace"]}, "nextTier": {"type": "string"},
            "missing": {"type": "integer"}, "date": {"type": "string", "format": "date"}, "pacePerDayMilli": {"type": "integer"}, "basis": {"type": "string", "enum": ["member", "program"]}}}}},
      "Member": {"type": "object", "required": ["id", "program", "identities", "profile", "standing"], "properties": {
        "id": {"type": "string"}, "program": {"type": "string"}, "registeredAt": {"type": "string", "format": "date-time"},
        "identities": {"type": "array", "items": {"$ref": "#/components/schemas/Identity"}}, "profile": {"$ref": "#/components/schemas/Profile"},
        "standing": {"$ref": "#/components/schemas/Standing"},
        "mergedInto": {"type": "string", "description": "set when the member was merged into another: the survivor, whose standing this is"}}},
      "MemberPage": {"type": "object", "properties": {"items": {"type": "array"}, "nextCursor": {"type": "string"}}},
      "OrderLine": {"type": "object", "required": ["sku", "amountMinor"], "properties": {
        "sku": {"type": "string"}, "category": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1, "default": 1},
        "amountMinor": {"type": "integer", "minimum": 0, "description": "line price before discounts, minor units"}, "discountMinor": {"type": "integer", "minimum": 0, "default": 0}}},
      "EventRequest": {"type": "object", "required": ["type", "occurredAt", "data"], "properties": {
        "type": {"type": "string", "enum": ["order.paid", "order.refunded", "points.adjusted", "activity", "points.redeemed", "debt.settled",
          "benefit.granted", "benefit.claimed", "benefit.redeemed", "benefit.reversed", "mall.exchanged", "mall.cancelled", "tag.set"]},
        "occurredAt": {"type": "string", "format": "date-time"},
        "data": {"oneOf": [
          {"title": "order.paid", "type": "object", "required": ["orderId", "lines"], "properties": {"orderId": {"type": "string"}, "currency": {"type": "string"},
            "lines": {"type": "array", "items": {"$ref": "#/components/schemas/OrderLine"}}, "discountMinor": {"type": "integer"}, "channel": {"type": "string"}, "store": {"type": "string"}}},
          {"title": "order.refunded", "type": "object", "required": ["orderId"], "properties": {"orderId": {"type": "string"},
            "lines": {"type": "array", "items": {"type": "object", "properties": {"line": {"type": "integer", "minimum": 1}, "quantity": {"type": "integer"}}}}}},
          {"title": "points.adjusted", "type": "object", "required": ["points", "reason", "staff"], "properties": {"points": {"type": "integer"}, "reason": {"type": "string"}, "staff": {"type": "string"}}},
          {"title": "activity", "type": "object", "required": ["activity"], "properties": {"activity": {"type": "string"}}},
          {"title": "points.redeemed", "type": "object", "required": ["points", "purpose"], "properties": {"points": {"type": "integer", "minimum": 1}, "purpose": {"type": "string"}, "reference": {"type": "string"}}},
          {"title": "debt.settled", "type": "object", "required": ["points", "method", "reason", "staff"], "description": "settles points owed under the recordDebt refund policy",
            "properties": {"points": {"type": "integer", "minimum": 1}, "method": {"type": "string", "enum": ["points", "money", "waived"]}, "reason": {"type": "string"}, "staff": {"type": "string"}}},
          {"title": "benefit.granted", "type": "object", "required": ["benefit", "reason", "staff"], "properties": {"benefit": {"type": "string"}, "count": {"type": "integer", "minimum": 1, "maximum": 100}, "reason": {"type": "string"}, "staff": {"type": "string"}}},
          {"title": "benefit.claimed", "type": "object", "required": ["grant"], "properties": {"grant": {"type": "string"}}},
          {"title": "benefit.redeemed", "type": "object", "required": ["grant", "orderId", "amountMinor"], "description": "POST /v1/redemptions is the usual way: it finds the grant by its code",
            "properties": {"grant": {"type": "string"}, "orderId": {"type": "string"}, "amountMinor": {"type": "integer"}, "shippingMinor": {"type": "integer"},
              "lines": {"type": "array"}, "channel": {"type": "string"}, "store": {"type": "string"}, "combinedWith": {"type": "array", "items": {"type": "string"}}}},
          {"title": "benefit.reversed", "type": "object", "required": ["grant", "reason"], "properties": {"grant": {"type": "string"}, "reason": {"type": "string"}}},
          {"title": "mall.exchanged", "type": "object", "required": ["item"], "properties": {"item": {"type": "string"}, "quantity": {"type": "integer"}, "address": {"type": "string"}}},
          {"title": "mall.cancelled", "type": "object", "required": ["exchange", "reason"], "properties": {"exchange": {"type": "string"}, "reason": {"type": "string"}}},
          {"title": "tag.set", "type": "object", "required": ["tag", "add", "by"], "properties": {"tag": {"type": "string"}, "add": {"type": "boolean"}, "by": {"type": "string"}, "reason": {"type": "string"}}}
        ]}}},
      "GrantRequest": {"type": "object", "required": ["benefit", "reason", "staff"], "properties": {"benefit": {"type": "string"}, "count": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
        "reason": {"type": "string"}, "staff": {"type": "string"}, "occurredAt": {"type": "string", "format": "date-time"}}},
      "Grant": {"type": "object", "properties": {"memberId": {"type": "string"},
        "grant": {"type": "string", "description": "stable id: st.<event>.<k> (staff), up.<tier>.<round>.<k> (upgrade gift), al.<tier>.<benefit>.<yyyymmdd>.<k> (allowance)"}, "benefit": {"type": "string"},
        "kind": {"type": "string", "enum": ["amountOff", "noMinimum", "percentOff", "freeShipping", "gift", "memberPrice", "priorityAccess", "service"]},
        "name": {"$ref": "#/components/schemas/LocalizedText"}, "cause": {"type": "string", "enum": ["upgrade", "allowance", "staff"]}, "tier": {"type": "string"},
        "status": {"type": "string", "enum": ["claimable", "claimed", "used", "expired", "revoked", "used_refunded"]},
        "grantedAt": {"type": "string"}, "claimBy": {"type": "string"}, "claimedAt": {"type": "string"}, "useBy": {"type": "string"},
        "code": {"type": "string", "description": "12 characters of Crockford base32; dashes, spaces and case are ignored when redeeming"},
        "usedAt": {"type": "string"}, "orderId": {"type": "string"}, "discountMinor": {"type": "integer"}, "channel": {"type": "string"}, "store": {"type": "string"},
        "refundedAt": {"type": "string"}, "revokedAt": {"type": "string"}, "note": {"type": "string"},
        "secondsLeft": {"type": "integer", "description": "left to claim (claimable) or to use (claimed)"}}},
      "Wallet": {"type": "object", "properties": {"memberId": {"type": "string"}, "asOf": {"type": "string"}, "counts": {"type": "object"},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Grant"}}}},
      "RedemptionRequest": {"type": "object", "required": ["code", "orderId", "amountMinor"], "properties": {"code": {"type": "string"}, "orderId": {"type": "string"},
        "amountMinor": {"type": "integer", "description": "the order amount the discount is computed on"}, "shippingMinor": {"type": "integer"},
        "lines": {"type": "array", "description": "for member prices by category", "items": {"type": "object", "properties": {"sku": {"type": "string"}, "category": {"type": "string"}, "amountMinor": {"type": "integer"}}}},
        "channel": {"type": "string"}, "store": {"type": "string"}, "combinedWith": {"type": "array", "items": {"type": "string"}, "description": "other codes used on the same order"},
        "occurredAt": {"type": "string", "format": "date-time"}}},
      "RedemptionResult": {"type": "object", "properties": {"code": {"type": "string"}, "memberId": {"type": "string"}, "eventId": {"type": "string"}, "grant": {"type": "string"},
        "benefit": {"type": "string"}, "kind": {"type": "string"}, "name": {"$ref": "#/components/schemas/LocalizedText"}, "orderId": {"type": "string"},
        "discountMinor": {"type": "integer"}, "giftSku": {"type": "string"}, "status": {"type": "string"}}},
      "MallItem": {"type": "object", "properties": {"item": {"type": "object", "description": "id, name, description, kind (goods, benefit, experience, donation), pointsPrice, moneyMinor, benefit, initialStock, limit, limitPer, tiers, visibleFrom, visibleUntil, imageURL"},
        "available": {"type": "integer", "description": "stock left; absent for items without a stock limit"}, "exchanged": {"type": "integer"}, "visible": {"type": "boolean"}}},
      "MallItems": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/MallItem"}}}},
      "StockRequest": {"type": "object", "required": ["quantity"], "properties": {"quantity": {"type": "integer"}}},
      "ExchangeRequest": {"type": "object", "required": ["item"], "properties": {"item": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
        "address": {"type": "string", "maxLength": 500}}},
      "Exchange": {"type": "object", "properties": {"memberId": {"type": "string"}, "exchange": {"type": "string", "description": "the event id of the exchange"}, "item": {"type": "string"},
        "kind": {"type": "string"}, "quantity": {"type": "integer"}, "points": {"type": "integer"}, "moneyMinor": {"type": "integer"}, "grants": {"type": "array", "items": {"type": "string"}},
        "address": {"type": "string"}, "status": {"type": "string", "enum": ["to_ship", "shipped", "delivered", "to_fulfil", "fulfilled", "cancelled"]}, "trackingNo": {"type": "string"},
        "createdAt": {"type": "string"}, "updatedAt": {"type": "string"}}},
      "Exchanges": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Exchange"}}}},
      "FulfilmentRequest": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["shipped", "delivered", "fulfilled"]}, "trackingNo": {"type": "string"}}},
      "MallReport": {"type": "object", "properties": {"program": {"type": "string"}, "from": {"type": "string"}, "until": {"type": "string"}, "exchanges": {"type": "integer"},
        "pointsSpent": {"type": "integer"}, "moneyMinor": {"type": "integer"}, "cancelled": {"type": "integer"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"item": {"type": "string"}, "exchanges": {"type": "integer"}, "quantity": {"type": "integer"},
          "points": {"type": "integer"}, "moneyMinor": {"type": "integer"}, "cancelled": {"type": "integer"}, "available": {"type": "integer"}}}}}},
      "Reminders": {"type": "object", "properties": {"asOf": {"type": "string"}, "days": {"type": "integer"}, "nextCursor": {"type": "string"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"event": {"type": "string", "enum": ["benefit.claim_expiring", "benefit.use_expiring", "points.expiring"]},
          "memberId": {"type": "string"}, "at": {"type": "string", "description": "the instant it lapses"}, "lastDay": {"type": "string", "format": "date"},
          "grant": {"type": "string"}, "benefit": {"type": "string"}, "points": {"type": "integer"}}}}}},
      "TagRequest": {"type": "object", "required": ["tag", "action", "by"], "properties": {"tag": {"type": "string"}, "action": {"type": "string", "enum": ["add", "remove"]},
        "by": {"type": "string", "description": "who (staff id)"}, "reason": {"type": "string"}}},
      "SegmentTagging": {"type": "object", "properties": {"segment": {"type": "string"}, "tag": {"type": "string"}, "action": {"type": "string", "enum": ["add", "remove"]},
        "members": {"type": "integer", "description": "members of the segment when the request was made"}, "changed": {"type": "integer", "description": "members whose tags changed"},
        "unchanged": {"type": "integer", "description": "members who already had (or lacked) the tag"}}},
      "MemberTags": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"tag": {"type": "string"},
        "name": {"$ref": "#/components/schemas/LocalizedText"}, "category": {"type": "string", "enum": ["behaviour", "preference", "lifecycle", "value"]},
        "since": {"type": "string"}, "cause": {"type": "string", "enum": ["rule", "manual"]}, "by": {"type": "string"}}}}}},
      "TagHistory": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"no": {"type": "integer"},
        "event": {"type": "string", "enum": ["tag.added", "tag.removed"]}, "tag": {"type": "string"}, "at": {"type": "string"}, "cause": {"type": "string", "enum": ["rule", "manual"]},
        "eventId": {"type": "string"}, "by": {"type": "string"}, "reason": {"type": "string"}}}}}},
      "Tags": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {
        "tag": {"type": "object", "description": "id, name, category, rule (the condition, normalised), description"}, "members": {"type": "integer"}}}}}},
      "TaggedMembers": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"memberId": {"type": "string"},
        "since": {"type": "string"}, "cause": {"type": "string"}, "by": {"type": "string"}}}}, "nextCursor": {"type": "string"}}},
      "Portrait": {"type": "object", "properties": {"member": {"$ref": "#/components/schemas/Member"}, "tags": {"type": "array"}, "segments": {"type": "array", "description": "saved segments the member is in: {segment, since}"}, "benefits": {"type": "object", "description": "grants by status"},
        "orders": {"type": "object", "properties": {"count": {"type": "integer"}, "totalMinor": {"type": "integer"}, "averageMinor": {"type": "integer"}, "first": {"type": "string"},
          "last": {"type": "string"}, "refunded": {"type": "integer"}, "byMonth": {"type": "array"}}},
        "categoriesBySpend": {"type": "array"}, "categoriesByCount": {"type": "array"}, "channels": {"type": "array"}, "stores": {"type": "array"},
        "preferredChannel": {"type": "string"}, "preferredStore": {"type": "string"}, "timeline": {"type": "array"}}},
      "Churn": {"type": "object", "description": "pAlivePpm: BG/NBD P(alive) at the calibration end (yesterday, local); expectedPurchasesMilli over the horizon; clvMinor = sum over weeks of E[M](E[X(i)]-E[X(i-1)])/(1+d)^(i/52), in minor units.",
        "properties": {"program": {"type": "string"}, "fittedAt": {"type": "string"}, "calibrationEnd": {"type": "string", "format": "date"}, "models": {"type": "object"},
          "members": {"type": "integer"}, "atRisk": {"type": "integer"}, "atRiskBelowPpm": {"type": "integer"}, "clvMinor": {"type": "integer"}, "clvAtRiskMinor": {"type": "integer"},
          "mostValuableAtRisk": {"type": "array", "items": {"type": "object", "properties": {"memberId": {"type": "string"}, "pAlivePpm": {"type": "integer"},
            "expectedPurchasesMilli": {"type": "integer"}, "expectedValueMinor": {"type": "integer"}, "clvMinor": {"type": "integer"}, "atRisk": {"type": "boolean"}, "fittedAt": {"type": "string"}}}}}},
      "SegmentDocument": {"type": "object", "description": "A condition over member and orders (docs/conditions.md), a fixed list (member ids and/or identities), or both with combine. id and name are optional in a preview.",
        "properties": {"id": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$"}, "name": {"$ref": "#/components/schemas/LocalizedText"}, "description": {"$ref": "#/components/schemas/LocalizedText"},
          "condition": {"type": "string"}, "members": {"type": "array", "items": {"type": "integer"}},
          "identities": {"type": "array", "items": {"type": "object", "properties": {"kind": {"type": "string"}, "value": {"type": "string"}}}},
          "combine": {"type": "string", "enum": ["and", "or"], "description": "and (default): listed members for whom the condition holds; or: listed members and those for whom it holds"}}},
      "Segment": {"type": "object", "properties": {"definition": {"$ref": "#/components/schemas/SegmentDocument"}, "createdAt": {"type": "string"}, "updatedAt": {"type": "string"}}},
      "Segments": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Segment"}}}},
      "SegmentPreview": {"type": "object", "description": "Make-up buckets are {key, members}; the key null stands for a missing value. Points, qualifying growth and scores are as of the member's last write and the last scoring run.",
        "properties": {"asOf": {"type": "string"}, "composition": {"type": "object", "properties": {"members": {"type": "integer"}, "ofMembers": {"type": "integer"},
          "tiers": {"type": "array"}, "lifecycle": {"type": "array"}, "rfm": {"type": "array", "description": "{r, f, members} for r, f in 1...5"}, "gender": {"type": "array"},
          "cities": {"type": "array", "description": "the 10 largest, then other"}, "channels": {"type": "array", "description": "registered channel"},
          "averageSpentMinor": {"type": "integer"}, "averageOrders": {"type": "number"}, "averageOrderValueMinor": {"type": "integer"},
          "sample": {"type": "array", "items": {"type": "string"}}, "failed": {"type": "integer", "description": "members whose evaluation went over its budget"}, "firstError": {"type": "string"}}},
          "unknownIdentities": {"type": "array"}, "unknownMembers": {"type": "array"},
          "scan": {"type": "object", "properties": {"members": {"type": "integer"}, "orders": {"type": "integer"}, "seconds": {"type": "number"}, "membersPerSecond": {"type": "number"}}},
          "facts": {"type": "object", "properties": {"members": {"type": "integer"}, "orders": {"type": "integer"}, "builtAt": {"type": "string"}, "buildSeconds": {"type": "number"}, "refreshed": {"type": "integer"}, "bytes": {"type": "integer"}}}}},
      "SegmentMembers": {"type": "object", "description": "format=csv answers text/csv with the same fields as columns", "properties": {"items": {"type": "array", "items": {"type": "object"}}}},
      "Empty": {"type": "object"},
      "MergeRequest": {"type": "object", "required": ["by"], "properties": {"absorb": {"type": "string", "description": "the member id to merge into this one"},
        "absorbIdentity": {"type": "object", "properties": {"kind": {"type": "string"}, "value": {"type": "string"}}}, "by": {"type": "string"}, "reason": {"type": "string"}}},
      "MergeRecord": {"type": "object", "properties": {"mergeId": {"type": "integer"}, "survivor": {"type": "string"}, "absorbed": {"type": "string"}, "mergedAt": {"type": "string"},
        "mergedBy": {"type": "string"}, "reason": {"type": "string"}, "undoneAt": {"type": "string"}, "undoneBy": {"type": "string"}}},
      "MergeResult": {"type": "object", "properties": {"merge": {"$ref": "#/components/schemas/MergeRecord"}, "member": {"$ref": "#/components/schemas/Member"}}},
      "Merges": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/MergeRecord"}}}},
      "UndoMergeRequest": {"type": "object", "required": ["by"], "properties": {"by": {"type": "string"}}},
      "UnmergeResult": {"type": "object", "properties": {"merge": {"$ref": "#/components/schemas/MergeRecord"}, "survivor": {"$ref": "#/components/schemas/Member"}, "absorbed": {"$ref": "#/components/schemas/Member"}}},
      "SegmentChanges": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"segment": {"type": "string"}, "memberId": {"type": "string"},
        "event": {"type": "string", "enum": ["segment.entered", "segment.exited"]}, "at": {"type": "string"}, "cause": {"type": "string", "enum": ["saved", "member", "time", "recheck"]}}}}}},
      "MemberSegments": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"segment": {"type": "string"}, "since": {"type": "string"}}}}}},
      "RFM": {"type": "object", "description": "r, f, m are quintiles 1-5 among members who bought in the last 365 days (5 = most recent, most orders, most spent). Lifecycle: new (registered or first order within 30 days), active, at_risk (no order for 60+ days), silent (120+), lost (365+, or never bought), recalled (bought again after a gap of 120+ days).",
        "properties": {"program": {"type": "string"}, "computedAt": {"type": "string"}, "scored": {"type": "integer"},
          "grid": {"type": "array", "items": {"type": "object", "properties": {"r": {"type": "integer"}, "f": {"type": "integer"}, "members": {"type": "integer"}, "averageMonetaryMinor": {"type": "integer"}}}},
          "lifecycle": {"type": "object"}}},
      "KPIs": {"type": "object", "description": "Definitions: activeMembers = members with an order in the period; repeatBuyers = of those, with at least two; repurchaseRatePpm = repeatBuyers / activeMembers; returnRatePpm = members who bought in the previous period of the same length and again in this one / buyers of the previous period; upgradeRatePpm = members with a tier change upwards in the period / members not in the top tier now; downgradeRatePpm likewise downwards / members not in the bottom tier; averageOrderMinor = revenue / orders; revenue is the paid amount of the period's orders (refunds not taken off); topTierSharePpm = members in the top tier / all members. Rates in parts per million; absent when the denominator is 0.",
        "properties": {"program": {"type": "string"}, "from": {"type": "string", "format": "date"}, "until": {"type": "string", "format": "date"}, "members": {"type": "integer"},
          "newMembers": {"type": "integer"}, "total": {"$ref": "#/components/schemas/KPIGroup"}, "previousBuyers": {"type": "integer"}, "returningBuyers": {"type": "integer"},
          "returnRatePpm": {"type": "integer"}, "upgradedMembers": {"type": "integer"}, "upgradeRatePpm": {"type": "integer"}, "downgradedMembers": {"type": "integer"},
          "downgradeRatePpm": {"type": "integer"}, "tierDistribution": {"type": "object"}, "topTierSharePpm": {"type": "integer"},
          "funnel": {"type": "array", "items": {"type": "object", "properties": {"step": {"type": "string", "enum": ["registered", "active", "nearNextTier", "upgraded", "claimedBenefit", "repurchased"], "description": "nearNextTier: members below the top tier whose qualifying growth at the period's end (now, for a period not over) is within 20% of the next threshold (at least 80% of it); the others count over the period"}, "members": {"type": "integer"}}}},
          "split": {"type": "string"}, "groups": {"type": "array", "items": {"$ref": "#/components/schemas/KPIGroup"}}}},
      "KPIGroup": {"type": "object", "properties": {"key": {"type": "string"}, "activeMembers": {"type": "integer"}, "repeatBuyers": {"type": "integer"}, "repurchaseRatePpm": {"type": "integer"},
        "orders": {"type": "integer"}, "revenueMinor": {"type": "integer", "description": "paid amounts of the period's orders, gross"},
        "refundedMinor": {"type": "integer", "description": "money refunded in the period (by the refund's local day), under the refunded order's tier held, channel and store"},
        "netRevenueMinor": {"type": "integer", "description": "revenueMinor - refundedMinor"},
        "averageOrderMinor": {"type": "integer"}, "ordersPerActiveMilli": {"type": "integer"}}},
      "Cohorts": {"type": "object", "properties": {"program": {"type": "string"}, "cohorts": {"type": "array", "items": {"type": "object", "properties": {
        "month": {"type": "string"}, "members": {"type": "integer"}, "buyers": {"type": "array", "items": {"type": "integer"}},
        "retentionPpm": {"type": "array", "items": {"type": "integer"}}, "revenueMinor": {"type": "array", "items": {"type": "integer"}}}}}}},
      "ReversalRequest": {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}}},
      "BenefitReport": {"type": "object", "description": "Counts over the grants made in [from, until), as they stand at asOf. claimRatePpm = claimed / granted; useRatePpm = used / claimed (parts per million).",
        "properties": {"program": {"type": "string"}, "from": {"type": "string"}, "until": {"type": "string"}, "asOf": {"type": "string"},
          "benefits": {"type": "array", "items": {"$ref": "#/components/schemas/BenefitReportRow"}}, "byTier": {"type": "array", "items": {"$ref": "#/components/schemas/BenefitReportRow"}}}},
      "BenefitReportRow": {"type": "object", "properties": {"benefit": {"type": "string"}, "tier": {"type": "string"}, "granted": {"type": "integer"}, "claimed": {"type": "integer"},
        "used": {"type": "integer"}, "expired": {"type": "integer"}, "revoked": {"type": "integer"}, "claimRatePpm": {"type": "integer"}, "useRatePpm": {"type": "integer"},
        "discountMinor": {"type": "integer"}, "usersOrders": {"type": "integer", "description": "orders paid in the period by members who used the benefit in it"},
        "usersRevenueMinor": {"type": "integer"}}},
      "RecordedEvent": {"type": "object", "properties": {"memberId": {"type": "string"}, "eventId": {"type": "string"}, "kind": {"type": "string"},
        "occurredAt": {"type": "string"}, "outcome": {"type": "object"}, "standing": {"$ref": "#/components/schemas/Standing"}}},
      "EventPage": {"type": "object", "properties": {"items": {"type": "array"}, "nextCursor": {"type": "string"}}},
      "LedgerPage": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {
        "no": {"type": "integer"}, "eventId": {"type": "string"}, "at": {"type": "string"}, "account": {"type": "string", "enum": ["points", "debt"]},
        "points": {"type": "integer"}, "reason": {"type": "string"}, "lotNo": {"type": "integer"}, "orderId": {"type": "string"}, "note": {"type": "string"}}}},
        "nextCursor": {"type": "string"}}},
      "Expiries": {"type": "object", "properties": {"asOf": {"type": "string"}, "expiries": {"type": "array", "items": {"type": "object", "properties": {
        "at": {"type": "string"}, "lastDay": {"type": "string", "format": "date"}, "points": {"type": "integer"}}}}}},
      "GrowthPage": {"type": "object", "properties": {"items": {"type": "array"}, "nextCursor": {"type": "string"}}},
      "TierHistory": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {
        "no": {"type": "integer"}, "at": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"},
        "cause": {"type": "string", "enum": ["upgrade", "assessment", "refund", "programChange"]}, "eventId": {"type": "string"}, "qualifyingGrowth": {"type": "integer"}}}}}}
    }
    """#
}
