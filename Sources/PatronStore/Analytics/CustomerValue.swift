import Foundation
import PatronCore

extension Store {
    /// A program's orders as a purchase log for the customer-base models: one transaction per
    /// order, on its local date in the program's time zone, for the amount paid (refunds are not
    /// taken off). Members are named by their ids; the orders of members merged into others are
    /// their survivors'.
    public func purchaseLog(program: String) async throws -> [Transaction] {
        let clock = try await self.program(program).latest.clock
        return try await db.queryAside("""
            SELECT COALESCE(m.merged_into, o.member_id) AS member_id, o.paid_at, o.amount_minor FROM orders o
            JOIN members m ON m.program_id = o.program_id AND m.member_id = o.member_id
            WHERE o.program_id = ? ORDER BY 1, 2
            """, [.text(program)]).map { r in
            Transaction(memberId: String(try r.int("member_id")), day: clock.date(Timestamp(seconds: try r.int("paid_at"))), amountMinor: try r.int("amount_minor"))
        }
    }
}

/// One member's figures from the last fit of the customer-base models.
public struct MemberChurn: Codable, Sendable, Equatable {
    public var memberId: MemberID
    /// P(alive) at the calibration end (BG/NBD), in ppm.
    public var pAlivePpm: Int64
    /// Expected purchases over the horizon, in thousandths.
    public var expectedPurchasesMilli: Int64
    /// Expected value of a purchase, and the discounted value of the horizon's purchases, in minor units.
    public var expectedValueMinor: Int64
    public var clvMinor: Int64
    public var atRisk: Bool
    public var fittedAt: Timestamp
}

public struct ChurnReport: Codable, Sendable, Equatable {
    public var program: String
    public var fittedAt: Timestamp?
    public var calibrationEnd: CivilDate?
    /// The fitted parameters and log-likelihoods, as `patron analytics clv` writes them.
    public var models: JSONValue?
    public var members: Int64
    public var atRisk: Int64
    public var atRiskBelowPpm: Int64?
    /// The horizon's discounted value, all members and the members at risk.
    public var clvMinor: Int64
    public var clvAtRiskMinor: Int64
    /// Members at risk with the most value, first.
    public var mostValuableAtRisk: [MemberChurn]
}

extension Store {
    /// Fits the models on the program's orders up to the local day before `asOf` and stores each
    /// member's P(alive), expected purchases, CLV and at-risk flag (the program's `churn` policy;
    /// without one, 0.3 over 52 weeks); members whose figures changed get them in their state
    /// (`member.churn`), and rule tags that read them are evaluated again (`syncScores`). Amounts are in the currency's major units inside the
    /// models and stored back in minor units (×100).
    @discardableResult
    public func computeChurn(program: String, asOf: Timestamp) async throws -> ChurnReport {
        let v = try await self.program(program).at(asOf)
        let policy = v.definition.churn ?? ChurnPolicy(atRiskBelowPermille: 300)
        let end = CivilDate(dayNumber: v.clock.dayNumber(asOf) - 1)
        let summaries = PurchaseSummary.summaries(of: try await purchaseLog(program: program), calibrationEnd: end)
        let report: CustomerBaseReport
        do { report = try CustomerValue.analyze(summaries, horizonWeeks: policy.horizonWeeks, discountRate: Double(policy.discountRatePermille) / 1000) } catch {
            throw StoreError.invalid([FieldError(path: "orders", reason: "the customer-base models cannot be fitted on this program's orders: \(error)")])
        }
        let p = SQLValue.text(program)
        var scores: [Int64: MemberScores] = [:]
        var rows: [[SQLValue]] = []
        for m in report.members {
            guard let id = Int64(m.memberId) else { continue }
            let s = MemberScores(churn: m, atRiskBelowPermille: policy.atRiskBelowPermille)
            scores[id] = s
            // The table keeps P(alive) in parts per million.
            rows.append([p, .int(id), .int(Int64((m.pAlive * 1_000_000).rounded())), SQLValue(s.expectedPurchasesMilli), SQLValue(s.expectedValueMinor),
                         SQLValue(s.clvMinor), .int(s.atRisk == true ? 1 : 0), .int(asOf.seconds)])
        }
        var plan = WritePlan()
        plan.add("DELETE FROM member_churn WHERE program_id = ?", [p])
        RowInsert.memberChurn.add(&plan, rows)
        let (bg, pn, gg) = (report.bgnbd, report.paretoNBD, report.gammaGamma)
        let models: JSONValue = .object([
            "bgnbd": .object(["r": .double(bg.model.r), "alpha": .double(bg.model.alpha), "a": .double(bg.model.a), "b": .double(bg.model.b), "logLikelihood": .double(bg.logLikelihood)]),
            "paretoNbd": .object(["r": .double(pn.model.r), "alpha": .double(pn.model.alpha), "s": .double(pn.model.s), "beta": .double(pn.model.beta), "logLikelihood": .double(pn.logLikelihood)]),
            "gammaGamma": .object(["p": .double(gg.model.p), "q": .double(gg.model.q), "gamma": .double(gg.model.gamma), "logLikelihood": .double(gg.logLikelihood)]),
            "calibrationEnd": .string(end.description), "horizonWeeks": .int(Int64(policy.horizonWeeks)), "atRiskBelowPpm": .int(policy.atRiskBelowPermille * 1000),
        ])
        plan.add("DELETE FROM churn_fits WHERE program_id = ?", [p])
        plan.add("INSERT INTO churn_fits (program_id, fitted_at, models) VALUES (?, ?, ?)", [p, .int(asOf.seconds), .text(Coding.json(models))])
        try await db.write(plan)
        try await syncScores(program: program, asOf: asOf) { id, old in (old ?? MemberScores()).withChurn(of: scores[id.rawValue]) }
        return try await churnReport(program: program)
    }

    public func churnReport(program: String, limit: Int = 50) async throws -> ChurnReport {
        _ = try await self.program(program)
        let p = SQLValue.text(program)
        let fit = try await db.query("SELECT fitted_at, models FROM churn_fits WHERE program_id = ?", [p]).first
        let models = try fit.map { try Coding.decode(JSONValue.self, try $0.string("models")) }
        let sums = try await db.queryAside("""
            SELECT COUNT(*) AS n, SUM(at_risk) AS r, SUM(clv_minor) AS v, SUM(CASE WHEN at_risk = 1 THEN clv_minor ELSE 0 END) AS vr FROM member_churn WHERE program_id = ?
            """, [p]).first
        let top = try await db.query("SELECT * FROM member_churn WHERE program_id = ? AND at_risk = 1 ORDER BY clv_minor DESC, member_id LIMIT ?", [p, .int(Int64(limit))])
            .map(Self.churnRow)
        var end: CivilDate? = nil, below: Int64? = nil
        if case .object(let o)? = models {
            if case .string(let s)? = o["calibrationEnd"] { end = CivilDate(string: s) }
            if case .int(let b)? = o["atRiskBelowPpm"] { below = b }
        }
        return ChurnReport(program: program, fittedAt: try fit.map { Timestamp(seconds: try $0.int("fitted_at")) }, calibrationEnd: end, models: models,
                           members: try sums?.intOrNil("n") ?? 0, atRisk: try sums?.intOrNil("r") ?? 0, atRiskBelowPpm: below,
                           clvMinor: try sums?.intOrNil("v") ?? 0, clvAtRiskMinor: try sums?.intOrNil("vr") ?? 0, mostValuableAtRisk: top)
    }

    public func memberChurn(program: String, member: MemberID) async throws -> MemberChurn? {
        try await db.query("SELECT * FROM member_churn WHERE program_id = ? AND member_id = ?", [.text(program), .int(member.rawValue)]).first.map(Self.churnRow)
    }

    static func churnRow(_ r: SQLRow) throws -> MemberChurn {
        MemberChurn(memberId: MemberID(try r.int("member_id")), pAlivePpm: try r.int("p_alive_ppm"), expectedPurchasesMilli: try r.int("expected_purchases_milli"),
                    expectedValueMinor: try r.int("expected_value_minor"), clvMinor: try r.int("clv_minor"), atRisk: try r.int("at_risk") == 1,
                    fittedAt: Timestamp(seconds: try r.int("fitted_at")))
    }
}

extension RowInsert {
    static let memberChurn = RowInsert("INSERT INTO member_churn (program_id, member_id, p_alive_ppm, expected_purchases_milli, expected_value_minor, clv_minor, at_risk, fitted_at)", columns: 8)
}
