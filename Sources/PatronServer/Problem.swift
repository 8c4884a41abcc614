import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PatronCore
import PatronStore

/// An RFC 9457 problem: what went wrong, for a client to show or act on. Logs keep the detail;
/// no SQL, file names or stack traces reach a client.
public struct Problem: Error, HTTPResponseError, Codable, Sendable {
    public struct FieldProblem: Codable, Sendable, Equatable {
        public var field: String
        public var reason: String
    }
    public var type: String
    public var title: String
    public var statusCode: Int
    public var detail: String
    public var errors: [FieldProblem]?
    /// Seconds after which a retry may succeed (503).
    public var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, type: String, title: String, detail: String, errors: [FieldError]? = nil, retryAfter: Int? = nil) {
        self.type = "https://patron.dev/problems/\(type)"
        self.title = title
        self.statusCode = status.code
        self.detail = detail
        self.errors = errors?.map { FieldProblem(field: $0.path, reason: $0.reason) }
        self.retryAfter = retryAfter
    }

    public var status: HTTPResponse.Status { HTTPResponse.Status(code: statusCode) }
    enum CodingKeys: String, CodingKey { case type, title, statusCode = "status", detail, errors, retryAfter }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try e.encode(self))))
    }

    static func invalid(_ errors: [FieldError], detail: String? = nil) -> Problem {
        Problem(.unprocessableContent, type: "validation", title: "The request is not valid",
                detail: detail ?? errors.map(\.description).joined(separator: "; "), errors: errors)
    }
    static func badRequest(_ field: String, _ reason: String) -> Problem {
        Problem(.badRequest, type: "bad-request", title: "The request cannot be read", detail: "\(field): \(reason)", errors: [FieldError(path: field, reason: reason)])
    }

    /// The one place where errors become HTTP statuses.
    static func from(_ error: any Error) -> Problem? {
        switch error {
        case let p as Problem: return p
        case let s as StoreError:
            switch s {
            case .programNotFound: return Problem(.notFound, type: "program-not-found", title: "No such program", detail: s.description)
            case .memberNotFound: return Problem(.notFound, type: "member-not-found", title: "No such member", detail: s.description)
            case .identityNotFound: return Problem(.notFound, type: "identity-not-found", title: "No member has this identity", detail: s.description)
            case .identityTaken(let i):
                return Problem(.conflict, type: "identity-taken", title: "The identity belongs to another member", detail: s.description,
                               errors: [FieldError(path: "identities", reason: "\(i.kind.rawValue) '\(i.value)' is taken")])
            case .orderTaken: return Problem(.conflict, type: "order-taken", title: "The order belongs to another member", detail: s.description,
                                             errors: [FieldError(path: "data.orderId", reason: "already recorded for another member")])
            case .idempotencyMismatch: return Problem(.unprocessableContent, type: "idempotency-key-reused", title: "The Idempotency-Key was used for another request", detail: s.description,
                                                      errors: [FieldError(path: "Idempotency-Key", reason: "was used before with a different request body")])
            case .invalid(let errs): return invalid(errs)
            case .busy: return Problem(.serviceUnavailable, type: "busy", title: "Too many concurrent writes", detail: s.description, retryAfter: 1)
            case .rule(let e): return rule(e)
            case .outOfStock(let item): return Problem(.conflict, type: "out-of-stock", title: "The item is out of stock", detail: s.description,
                                                       errors: [FieldError(path: "item", reason: "'\(item)' has no stock left for this quantity")])
            case .exchangeNotOpen: return Problem(.conflict, type: "exchange-not-open", title: "The exchange cannot move to that status", detail: s.description)
            case .segmentNotFound: return Problem(.notFound, type: "segment-not-found", title: "No such segment", detail: s.description)
            case .memberMerged: return Problem(.conflict, type: "member-merged", title: "The member was merged into another", detail: s.description)
            case .hasMergedMembers: return Problem(.conflict, type: "member-has-merged-members", title: "Other members were merged into this one", detail: s.description)
            case .mergeNotFound: return Problem(.notFound, type: "merge-not-found", title: "No such merge", detail: s.description)
            case .mergeUndone: return Problem(.conflict, type: "merge-undone", title: "The merge was already undone", detail: s.description)
            case .mergeTooOld: return Problem(.conflict, type: "merge-too-old", title: "The merge can no longer be undone", detail: s.description)
            case .codeNotFound: return Problem(.notFound, type: "code-not-found", title: "No benefit has this code", detail: s.description,
                                               errors: [FieldError(path: "code", reason: "is not a code of this program")])
            }
        default: return nil
        }
    }

    static func rule(_ e: EngineError) -> Problem {
        switch e {
        case .insufficientPoints(let available, let requested):
            return Problem(.conflict, type: "insufficient-points", title: "Not enough points",
                           detail: "\(requested) points were asked for; \(available) are available", errors: [FieldError(path: "data.points", reason: "exceeds the available \(available)")])
        case .unknownActivity(let a):
            return invalid([FieldError(path: "data.activity", reason: "'\(a)' is not an activity of this program")])
        case .activityAwardedAutomatically(let a):
            return invalid([FieldError(path: "data.activity", reason: "'\(a)' is awarded automatically with the member's first order; it cannot be sent as an event")])
        case .activityLimitReached(let a, let limit):
            return Problem(.conflict, type: "activity-limit-reached", title: "The activity was already rewarded",
                           detail: "'\(a)' is rewarded \(limit == .once ? "once per member" : "once a day")", errors: [FieldError(path: "data.activity", reason: "limit \(limit.rawValue) reached")])
        case .duplicateOrder(let o):
            return Problem(.conflict, type: "duplicate-order", title: "The order is already recorded", detail: "order '\(o)' was recorded before under another Idempotency-Key",
                           errors: [FieldError(path: "data.orderId", reason: "already recorded")])
        case .refundExceedsOrder(let line, let remaining, let requested):
            return Problem(.conflict, type: "refund-exceeds-order", title: "The refund is larger than what is left of the order",
                           detail: "line \(line): \(requested) units asked, \(remaining) left", errors: [FieldError(path: "data.lines", reason: "line \(line) has \(remaining) units left to refund")])
        case .unknownOrderLine(let line, let lines):
            return invalid([FieldError(path: "data.lines", reason: "line \(line) does not exist; the order has \(lines) lines")])
        case .currencyMismatch(let expected, let got):
            return invalid([FieldError(path: "data.currency", reason: "is \(got); this program counts \(expected)")])
        case .settlementExceedsDebt(let debt, let requested):
            return Problem(.conflict, type: "settlement-exceeds-debt", title: "More than the member owes",
                           detail: "\(requested) points were to be settled; the member owes \(debt)", errors: [FieldError(path: "data.points", reason: "exceeds the recorded debt \(debt)")])
        case .orderFullyRefunded(let o):
            return Problem(.conflict, type: "order-fully-refunded", title: "The order is already fully refunded", detail: "order '\(o)' has nothing left to refund")
        case .benefit(let b): return benefit(b)
        case .mall(let m): return mall(m)
        case .tag(.unknownTag(let t)): return invalid([FieldError(path: "tag", reason: "'\(t)' is not a tag of this program")])
        case .tag(.ruleTag(let t)):
            return Problem(.conflict, type: "rule-tag", title: "The tag follows its rule", detail: "'\(t)' is set by its rule in the program; staff can set manual tags only",
                           errors: [FieldError(path: "tag", reason: "is a rule tag")])
        }
    }

    static func mall(_ r: MallRefusal) -> Problem {
        switch r {
        case .unknownItem(let i): return Problem(.notFound, type: "item-not-found", title: "No such item in the points mall", detail: "'\(i)' is not an item of this program's mall",
                                                 errors: [FieldError(path: "item", reason: "is not an item of the mall")])
        case .notVisible(let i): return Problem(.conflict, type: "item-not-on-sale", title: "The item is not on sale now", detail: "'\(i)' is outside its visible window")
        case .tierNotEligible(let i, let tier, let eligible):
            return Problem(.conflict, type: "tier-not-eligible", title: "The member's tier cannot exchange this item",
                           detail: "'\(i)' is for \(eligible.joined(separator: ", ")); the member is \(tier)")
        case .limitReached(let i, let limit, let per):
            return Problem(.conflict, type: "exchange-limit-reached", title: "The member has exchanged this item as often as allowed",
                           detail: "'\(i)' allows \(limit) per member\(per == .lifetime ? "" : " per \(per.rawValue)")", errors: [FieldError(path: "quantity", reason: "exceeds the limit of \(limit)")])
        case .unknownExchange(let e): return Problem(.notFound, type: "exchange-not-found", title: "No such exchange", detail: "the member has no exchange \(e)")
        case .alreadyCancelled(let e): return Problem(.conflict, type: "exchange-cancelled", title: "The exchange is already cancelled", detail: "exchange \(e) was cancelled before")
        case .notCancellable(let e, let why): return Problem(.conflict, type: "exchange-not-cancellable", title: "The exchange cannot be cancelled", detail: "exchange \(e): \(why)")
        }
    }

    /// Why a benefit cannot be granted, claimed, used or reversed. Each has its own type, so a
    /// checkout can tell the member exactly why.
    static func benefit(_ r: BenefitRefusal) -> Problem {
        func conflict(_ type: String, _ title: String, _ detail: String, _ field: String? = nil) -> Problem {
            Problem(.conflict, type: type, title: title, detail: detail, errors: field.map { [FieldError(path: $0, reason: detail)] })
        }
        switch r {
        case .unknownBenefit(let id):
            return invalid([FieldError(path: "data.benefit", reason: "'\(id)' is not a benefit of this program")])
        case .unknownGrant(let no):
            return Problem(.notFound, type: "grant-not-found", title: "No such benefit in the member's wallet", detail: "the member has no grant \(no)")
        case .notClaimable(let no, let status):
            return conflict("benefit-not-claimable", "The benefit cannot be claimed", "grant \(no) is \(status.rawValue)")
        case .claimWindowClosed(let no, let at):
            return conflict("claim-window-closed", "The time to claim the benefit has passed", "grant \(no) could be claimed until \(at)")
        case .notClaimed(let no):
            return conflict("benefit-not-claimed", "The benefit has not been claimed", "grant \(no) must be claimed before it is used")
        case .alreadyUsed(let no, let at, let order):
            return conflict("benefit-already-used", "The benefit was already used", "grant \(no) was used at \(at) on order '\(order)'", "code")
        case .useWindowClosed(let no, let at):
            return conflict("use-window-closed", "The benefit has expired", "grant \(no) could be used until \(at)", "code")
        case .notUsable(let no, let status):
            return conflict("benefit-not-usable", "The benefit cannot be used", "grant \(no) is \(status.rawValue)", "code")
        case .belowMinimumSpend(let minimum, let amount):
            return conflict("below-minimum-spend", "The order is below the benefit's minimum spend", "the order's amount \(amount) is below the minimum \(minimum)", "amountMinor")
        case .noEligibleLines(let cats):
            return conflict("no-eligible-lines", "No line of the order qualifies", "no line is in the categories \(cats.joined(separator: ", "))", "lines")
        case .channelNotAccepted(let ch, let accepted):
            return conflict("channel-not-accepted", "The benefit is not accepted on this channel",
                            "channel \(ch.map { "'\($0)'" } ?? "(none)") is not one of \(accepted.joined(separator: ", "))", "channel")
        case .storeNotAccepted(let st, let accepted):
            return conflict("store-not-accepted", "The benefit is not accepted in this store",
                            "store \(st.map { "'\($0)'" } ?? "(none)") is not one of \(accepted.joined(separator: ", "))", "store")
        case .notCombinable(let b, let with):
            return conflict("not-combinable", "The benefit cannot be combined with others", "'\(b)' cannot be used together with \(with.joined(separator: ", "))", "combinedWith")
        case .limitReached(let b, let count, let per):
            return conflict("use-limit-reached", "The member has used this benefit as often as allowed", "'\(b)' can be used \(count) times per \(per.rawValue)")
        case .orderAlreadyPaid(let o):
            return conflict("order-already-paid", "A points multiplier is used before the order is paid", "order '\(o)' is already recorded", "orderId")
        case .notUsed(let no):
            return conflict("benefit-not-used", "The benefit has no use to reverse", "grant \(no) is not used")
        }
    }
}

extension HTTPField.Name {
    static let retryAfter = HTTPField.Name("Retry-After")!
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
}

/// Turns every thrown error into a problem response; unknown errors become a 500 whose detail
/// stays in the log.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            if let p = Problem.from(error) { return try p.response(from: request, context: context) }
            if error is NIOTooManyBytesError {
                return try Problem(.contentTooLarge, type: "body-too-large", title: "The request body is too large", detail: "at most \(APIConfig.maxBodyBytes) bytes are accepted")
                    .response(from: request, context: context)
            }
            if let h = error as? HTTPError {
                let p: Problem
                switch h.status {
                case .contentTooLarge: p = Problem(.contentTooLarge, type: "body-too-large", title: "The request body is too large", detail: "at most \(APIConfig.maxBodyBytes) bytes are accepted")
                case .notFound: p = Problem(.notFound, type: "not-found", title: "No such route", detail: "\(request.method) \(request.uri.path) is not a route of this API; see /openapi.json")
                default: p = Problem(h.status, type: "http", title: h.status.reasonPhrase, detail: h.body ?? h.status.reasonPhrase)
                }
                return try p.response(from: request, context: context)
            }
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))", "path": "\(request.uri.path)"])
            return try Problem(.internalServerError, type: "internal", title: "Internal error", detail: "the server could not complete the request; it has been logged")
                .response(from: request, context: context)
        }
    }
}
