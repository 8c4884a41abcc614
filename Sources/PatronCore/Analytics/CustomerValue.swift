import Foundation

/// One member's outlook from the fitted models.
public struct MemberValue: Sendable, Equatable, Codable {
    public var memberId: String
    public var frequency: Int
    public var recency: Double
    public var T: Double
    /// BG/NBD probability that the member is still active at the end of the calibration period.
    public var pAlive: Double
    /// BG/NBD expected number of purchases over the horizon.
    public var expectedPurchases: Double
    /// Gamma-Gamma expected value of a future purchase, in major units.
    public var expectedAverageValue: Double
    /// The discounted value of the expected purchases over the horizon (see `CustomerValue.lifetimeValue`).
    public var clv: Double
}

extension MemberScores {
    /// The churn part of a member's scores from their fit: P(alive) in per mille, at risk when
    /// P(alive) is below `atRiskBelowPermille`, expected purchases in thousandths, and amounts
    /// (major units in the models) in minor units.
    public init(churn m: MemberValue, atRiskBelowPermille: Int64) {
        self.init(pAlivePermille: Int((m.pAlive * 1000).rounded()), atRisk: m.pAlive < Double(atRiskBelowPermille) / 1000,
                  expectedPurchasesMilli: Int64((m.expectedPurchases * 1000).rounded()),
                  expectedValueMinor: Int64((m.expectedAverageValue * 100).rounded()), clvMinor: Int64((m.clv * 100).rounded()))
    }
}

/// The three fitted models and every member's outlook.
/// The program's churn warning: the customer-base models are fitted on its orders (daily by the
/// job runner, and on demand), and members whose P(alive) is below `atRiskBelow` (a share, e.g.
/// 0.3) are flagged at risk; CLV is valued over `horizonWeeks` at the annual `discountRate`.
public struct ChurnPolicy: Codable, Sendable, Equatable {
    public var atRiskBelowPermille: Int64
    public var horizonWeeks: Int
    public var discountRatePermille: Int64
    public init(atRiskBelowPermille: Int64, horizonWeeks: Int = 52, discountRatePermille: Int64 = 0) {
        self.atRiskBelowPermille = atRiskBelowPermille; self.horizonWeeks = horizonWeeks; self.discountRatePermille = discountRatePermille
    }
}

public struct CustomerBaseReport: Sendable {
    public var bgnbd: ModelFit<BGNBD>
    public var paretoNBD: ModelFit<ParetoNBD>
    public var gammaGamma: ModelFit<GammaGamma>
    public var members: [MemberValue]
}

public enum CustomerValue {
    /// Customer lifetime value over `horizonWeeks` weeks after the calibration end:
    ///
    ///     clv = Σ_{i=1…H} E[M | x, z̄] · (E[X(i)] − E[X(i−1)]) / (1 + d)^(i/52)
    ///
    /// with E[X(i)] the BG/NBD conditional expected number of purchases in the i weeks after T (E[X(0)] = 0),
    /// E[M | x, z̄] the Gamma-Gamma conditional expected average value, and d the annual discount rate
    /// (weekly purchases discounted at (1 + d)^(1/52) a week). 0 for a horizon of 0 weeks.
    public static func lifetimeValue(_ s: PurchaseSummary, bgnbd: BGNBD, gammaGamma: GammaGamma, horizonWeeks: Int, discountRate: Double = 0) -> Double {
        gammaGamma.expectedAverageValue(frequency: s.frequency, monetaryValue: s.monetaryValue)
            * discountedPurchases(bgnbd, frequency: s.frequency, recency: s.recency, T: s.T, horizonWeeks: horizonWeeks, discountRate: discountRate).discounted
    }

    /// Σ_{i=1…H} (E[X(i)] − E[X(i−1)]) / (1 + d)^(i/52), and E[X(H)].
    static func discountedPurchases(_ m: BGNBD, frequency x: Int, recency tx: Double, T: Double, horizonWeeks: Int, discountRate d: Double) -> (discounted: Double, total: Double) {
        var previous = 0.0, sum = 0.0
        let weekly = log1p(d) / 52
        for i in stride(from: 1, through: horizonWeeks, by: 1) {
            let e = m.expectedPurchases(weeks: Double(i), frequency: x, recency: tx, T: T)
            sum += (e - previous) * exp(-weekly * Double(i))
            previous = e
        }
        return (sum, previous)
    }

    /// Fits BG/NBD, Pareto/NBD and Gamma-Gamma to `summaries` and computes each member's outlook over
    /// `horizonWeeks` weeks, in the order of `summaries`: P(alive) and expected purchases from BG/NBD,
    /// expected average value from Gamma-Gamma, and the CLV of `lifetimeValue`.
    public static func analyze(_ summaries: [PurchaseSummary], horizonWeeks: Int, discountRate: Double = 0) throws(CustomerBaseError) -> CustomerBaseReport {
        guard horizonWeeks >= 0 else { throw .undefined("the horizon of \(horizonWeeks) weeks is negative") }
        guard discountRate > -1, discountRate.isFinite else { throw .undefined("the discount rate \(discountRate) is not above −1") }
        let bg = try BGNBD.fit(summaries), pareto = try ParetoNBD.fit(summaries), gg = try GammaGamma.fit(summaries)
        struct History: Hashable { var x: Int, tx: Double, T: Double }
        var purchases: [History: (discounted: Double, total: Double)] = [:]
        var members: [MemberValue] = []
        members.reserveCapacity(summaries.count)
        for s in summaries {
            let key = History(x: s.frequency, tx: s.recency, T: s.T)
            let p = purchases[key] ?? discountedPurchases(bg.model, frequency: s.frequency, recency: s.recency, T: s.T, horizonWeeks: horizonWeeks, discountRate: discountRate)
            if purchases[key] == nil { purchases[key] = p }
            let value = gg.model.expectedAverageValue(frequency: s.frequency, monetaryValue: s.monetaryValue)
            let m = MemberValue(memberId: s.memberId, frequency: s.frequency, recency: s.recency, T: s.T,
                                pAlive: bg.model.probabilityAlive(frequency: s.frequency, recency: s.recency, T: s.T),
                                expectedPurchases: p.total, expectedAverageValue: value, clv: value * p.discounted)
            guard value.isFinite else {
                throw .undefined("member \(s.memberId): Gamma-Gamma's expected average value is undefined: p·x + q = \(gg.model.p * Double(s.frequency) + gg.model.q) ≤ 1 (the spends are too heavy-tailed)")
            }
            guard m.pAlive.isFinite, m.expectedPurchases.isFinite, m.clv.isFinite else {
                throw .undefined("member \(s.memberId): BG/NBD's expected purchases are not finite for the fitted parameters \(bg.model)")
            }
            members.append(m)
        }
        return CustomerBaseReport(bgnbd: bg, paretoNBD: pareto, gammaGamma: gg, members: members)
    }
}
