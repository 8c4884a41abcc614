import Crypto
import Foundation
import PatronCore

/// A granted benefit as the wallet shows it.
public struct GrantView: Codable, Sendable, Equatable {
    public var memberId: MemberID
    public var grant: String
    public var benefit: String
    public var kind: BenefitKind?
    public var name: LocalizedText?
    public var cause: GrantCause
    public var tier: String?
    public var status: GrantStatus
    public var grantedAt: Timestamp
    public var claimBy: Timestamp?
    public var claimedAt: Timestamp?
    public var useBy: Timestamp?
    /// The write-off code, once claimed.
    public var code: String?
    public var usedAt: Timestamp?
    public var orderId: String?
    public var discountMinor: Int64?
    public var channel: String?
    public var store: String?
    public var refundedAt: Timestamp?
    public var revokedAt: Timestamp?
    public var note: String?
    /// Seconds left to claim (claimable) or to use (claimed); nil when there is no deadline.
    public var secondsLeft: Int64?
}

public struct WalletPage: Codable, Sendable, Equatable {
    public var memberId: MemberID
    public var asOf: Timestamp
    /// Counts by status over the whole wallet.
    public var counts: [String: Int]
    public var items: [GrantView]
}

/// The answer to a write-off: what to take off the order, or (as a problem) why not.
public struct RedemptionResult: Codable, Sendable, Equatable {
    public var code: String
    public var memberId: MemberID
    public var eventId: EventID
    public var grant: String
    public var benefit: String
    public var kind: BenefitKind?
    public var name: LocalizedText?
    public var orderId: String
    public var discountMinor: Int64
    public var giftSku: String?
    public var status: GrantStatus
}

/// The write-off request, as the checkout or the clerk's device sends it.
public struct RedemptionRequest: Codable, Sendable, Equatable {
    public var code: String
    public var orderId: String
    public var amountMinor: Int64
    public var shippingMinor: Int64?
    public var lines: [RedemptionLine]?
    public var channel: String?
    public var store: String?
    public var combinedWith: [String]?
    public var occurredAt: Timestamp?
    public init(code: String, orderId: String, amountMinor: Int64, shippingMinor: Int64? = nil, lines: [RedemptionLine]? = nil, channel: String? = nil,
                store: String? = nil, combinedWith: [String]? = nil, occurredAt: Timestamp? = nil) {
        self.code = code; self.orderId = orderId; self.amountMinor = amountMinor; self.shippingMinor = shippingMinor; self.lines = lines
        self.channel = channel; self.store = store; self.combinedWith = combinedWith; self.occurredAt = occurredAt
    }
}

/// Write-off code makers by program: HMAC-SHA256 under the program's secret.
final class CodeMakers: @unchecked Sendable {
    private let lock = NSLock()
    private var makers: [String: CodeMaker] = [:]
    func get(_ program: String) -> CodeMaker? { lock.withLock { makers[program] } }
    func put(_ program: String, _ m: CodeMaker) { lock.withLock { makers[program] = m } }

    static func maker(secret: String) -> CodeMaker {
        let key = SymmetricKey(data: Data(secret.utf8))
        return CodeMaker { member, grant in
            let mac = HMAC<SHA256>.authenticationCode(for: Data("\(member.rawValue):\(grant)".utf8), using: key)
            return mac.withUnsafeBytes { raw in raw.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        }
    }
}

extension Store {
    /// The engine of a program: its versions and its code maker.
    func engine(_ program: String) async throws -> Engine {
        Engine(program: try await self.program(program), codes: try await codeMaker(program))
    }

    func codeMaker(_ program: String) async throws -> CodeMaker {
        if let m = codeMakers.get(program) { return m }
        for _ in 0..<2 {
            let rows = try await db.query("SELECT code_secret FROM programs WHERE program_id = ?", [.text(program)])
            guard let r = rows.first else { throw StoreError.programNotFound(program) }
            if let secret = try r.stringOrNil("code_secret") {
                let m = CodeMakers.maker(secret: secret)
                codeMakers.put(program, m)
                return m
            }
            // First use: make the secret; a concurrent first use may win, and both read the winner.
            let secret = (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined()
            var plan = WritePlan()
            plan.add("UPDATE programs SET code_secret = ? WHERE program_id = ? AND code_secret IS NULL", [.text(secret), .text(program)])
            try await db.write(plan)
        }
        throw StoreError.busy("could not read the program's code secret; try again")
    }

    /// Where a code belongs: member and grant.
    func grantOwner(program: String, code: String) async throws -> (member: MemberID, grant: String, benefit: String) {
        let normalized = CodeMaker.normalize(code)
        let rows = try await db.query("SELECT member_id, grant_id, benefit_id FROM benefit_grants WHERE program_id = ? AND code = ?", [.text(program), .text(normalized)])
        guard let r = rows.first else { throw StoreError.codeNotFound(code) }
        return (MemberID(try r.int("member_id")), try r.string("grant_id"), try r.string("benefit_id"))
    }

    /// Writes off a code on an order (核销): checks every rule and records the use, or throws
    /// the exact reason. A code is used once: concurrent write-offs of it give one success.
    public func redeem(program: String, _ req: RedemptionRequest, idempotencyKey: String?, requestHash: String, now: Timestamp) async throws -> RedemptionResult {
        let owner = try await grantOwner(program: program, code: req.code)
        let body = EventBody.benefitRedeemed(BenefitRedeemed(grant: owner.grant, orderId: req.orderId, amountMinor: req.amountMinor, shippingMinor: req.shippingMinor,
                                                             lines: req.lines, channel: req.channel, store: req.store, combinedWith: req.combinedWith))
        let r = try await record(program: program, member: owner.member, occurredAt: req.occurredAt ?? now, body: body,
                                 idempotencyKey: idempotencyKey, requestHash: requestHash, now: now)
        let def = try await self.program(program).at(req.occurredAt ?? now).definition.benefit(owner.benefit)
        return RedemptionResult(code: CodeMaker.normalize(req.code), memberId: owner.member, eventId: r.event.eventId, grant: owner.grant, benefit: owner.benefit,
                                kind: def?.kind, name: def?.name, orderId: req.orderId, discountMinor: r.event.outcome.discountMinor ?? 0,
                                giftSku: def?.giftSku, status: .used)
    }

    /// Takes back the use of a code (the order was cancelled or refunded).
    public func reverseRedemption(program: String, code: String, reason: String, idempotencyKey: String?, requestHash: String, now: Timestamp) async throws -> GrantView {
        let owner = try await grantOwner(program: program, code: code)
        _ = try await record(program: program, member: owner.member, occurredAt: now, body: .benefitReversed(BenefitReversed(grant: owner.grant, reason: reason)),
                             idempotencyKey: idempotencyKey, requestHash: requestHash, now: now)
        return try await grantView(program: program, member: owner.member, grant: owner.grant, now: now)
    }

    /// What a code is, for a clerk to look at before writing it off.
    public func codeStatus(program: String, code: String, now: Timestamp) async throws -> GrantView {
        let owner = try await grantOwner(program: program, code: code)
        return try await grantView(program: program, member: owner.member, grant: owner.grant, now: now)
    }

    public func grantView(program: String, member: MemberID, grant: String, now: Timestamp) async throws -> GrantView {
        let rows = try await db.query("SELECT * FROM benefit_grants WHERE program_id = ? AND member_id = ? AND grant_id = ?",
                                      [.text(program), .int(member.rawValue), .text(grant)])
        guard let r = rows.first else { throw StoreError.rule(.benefit(.unknownGrant(grant))) }
        return try Self.grantView(r, program: try await self.program(program).at(now).definition, now: now)
    }

    /// The member's benefits, newest first; `status` keeps only those in that status now.
    public func wallet(program: String, member: MemberID, status: GrantStatus?, now: Timestamp) async throws -> WalletPage {
        try await ensureMember(program, member)
        let def = try await self.program(program).at(now).definition
        let rows = try await db.query("SELECT * FROM benefit_grants WHERE program_id = ? AND member_id = ? ORDER BY granted_at DESC, grant_id DESC LIMIT 1000",
                                      [.text(program), .int(member.rawValue)])
        let all = try rows.map { try Self.grantView($0, program: def, now: now) }
        var counts: [String: Int] = [:]
        for g in all { counts[g.status.rawValue, default: 0] += 1 }
        return WalletPage(memberId: member, asOf: now, counts: counts, items: status.map { s in all.filter { $0.status == s } } ?? all)
    }

    /// Grants of the program still open at `now`: claimable ones, or (`claimed`) claimed and
    /// unused ones, in member order.
    public func openGrants(program: String, claimed: Bool, now: Timestamp, limit: Int) async throws -> [GrantView] {
        let def = try await self.program(program).at(now).definition
        let sql = claimed
            ? "SELECT * FROM benefit_grants WHERE program_id = ? AND claimed_at IS NOT NULL AND used_at IS NULL AND revoked_at IS NULL AND refunded_at IS NULL AND (use_by IS NULL OR use_by > ?) ORDER BY member_id, grant_id LIMIT ?"
            : "SELECT * FROM benefit_grants WHERE program_id = ? AND claimed_at IS NULL AND revoked_at IS NULL AND (claim_by IS NULL OR claim_by > ?) ORDER BY member_id, grant_id LIMIT ?"
        return try await db.query(sql, [.text(program), .int(now.seconds), .int(Int64(limit))]).map { try Self.grantView($0, program: def, now: now) }
    }

    static func grantView(_ r: SQLRow, program p: ProgramDefinition, now: Timestamp) throws -> GrantView {
        func t(_ c: String) throws -> Timestamp? { try r.intOrNil(c).map(Timestamp.init) }
        var g = BenefitGrant(id: try r.string("grant_id"), benefitId: try r.string("benefit_id"),
                             cause: GrantCause(rawValue: try r.string("cause")) ?? .staff, tierId: try r.stringOrNil("tier_id"),
                             eventId: try r.intOrNil("event_no").map(EventID.init), grantedAt: Timestamp(seconds: try r.int("granted_at")))
        g.claimBy = try t("claim_by"); g.claimedAt = try t("claimed_at"); g.useBy = try t("use_by"); g.code = try r.stringOrNil("code")
        if let at = try t("used_at") {
            g.use = BenefitUse(eventId: EventID(try r.intOrNil("use_event_no") ?? 0), at: at, orderId: try r.stringOrNil("order_id") ?? "",
                               discountMinor: try r.intOrNil("discount_minor") ?? 0, channel: try r.stringOrNil("channel"), store: try r.stringOrNil("store"))
        }
        g.refundedAt = try t("refunded_at"); g.revokedAt = try t("revoked_at"); g.note = try r.stringOrNil("note")
        let status = g.status(at: now)
        let b = p.benefit(g.benefitId)
        let deadline = status == .claimable ? g.claimBy : status == .claimed ? g.useBy : nil
        return GrantView(memberId: MemberID(try r.int("member_id")), grant: g.id, benefit: g.benefitId, kind: b?.kind, name: b?.name, cause: g.cause, tier: g.tierId,
                         status: status, grantedAt: g.grantedAt, claimBy: g.claimBy, claimedAt: g.claimedAt, useBy: g.useBy, code: g.code,
                         usedAt: g.use?.at, orderId: g.use?.orderId, discountMinor: g.use?.discountMinor, channel: g.use?.channel, store: g.use?.store,
                         refundedAt: g.refundedAt, revokedAt: g.revokedAt, note: g.note, secondsLeft: deadline.map { $0.seconds - now.seconds })
    }
}

extension RowInsert {
    static let benefitGrants = RowInsert("""
        INSERT INTO benefit_grants (program_id, member_id, grant_id, benefit_id, cause, tier_id, event_no, granted_at, claim_by, claimed_at, use_by, code,
          used_at, use_event_no, order_id, discount_minor, channel, store, refunded_at, revoked_at, note)
        """, columns: 21, tail: """
         ON CONFLICT (program_id, member_id, grant_id) DO UPDATE SET claim_by = excluded.claim_by, claimed_at = excluded.claimed_at, use_by = excluded.use_by,
          code = excluded.code, used_at = excluded.used_at, use_event_no = excluded.use_event_no, order_id = excluded.order_id,
          discount_minor = excluded.discount_minor, channel = excluded.channel, store = excluded.store, refunded_at = excluded.refunded_at,
          revoked_at = excluded.revoked_at
        """)

    static func grantRow(_ p: SQLValue, _ m: SQLValue, _ g: BenefitGrant) -> [SQLValue] {
        [p, m, .text(g.id), .text(g.benefitId), .text(g.cause.rawValue), SQLValue(g.tierId), SQLValue(g.eventId?.rawValue), .int(g.grantedAt.seconds),
         SQLValue(g.claimBy), SQLValue(g.claimedAt), SQLValue(g.useBy), SQLValue(g.code), SQLValue(g.use?.at), SQLValue(g.use?.eventId.rawValue),
         SQLValue(g.use?.orderId), SQLValue(g.use?.discountMinor), SQLValue(g.use?.channel), SQLValue(g.use?.store), SQLValue(g.refundedAt),
         SQLValue(g.revokedAt), SQLValue(g.note)]
    }
}
