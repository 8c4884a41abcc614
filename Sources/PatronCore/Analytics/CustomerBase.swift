import Foundation

// Customer-base models for non-contractual purchasing, fitted by maximum likelihood to purchase
// summaries (x, tₓ, T) with time in weeks: BG/NBD and Pareto/NBD for how many purchases a member will
// make, Gamma-Gamma for what they will be worth. Log-likelihoods are plain sums over members.
//
// On the CDNOW sample (2,357 customers, calibration ending 1997-09-30) the fits reproduce the published
// figures — BG/NBD r 0.243, α 4.414, a 0.793, b 2.426, LL −9582.4; Pareto/NBD r 0.553, α 10.578,
// s 0.606, β 11.669, LL −9595.0 (Fader, Hardie & Lee 2005); Gamma-Gamma p 6.25, q 3.74, γ 15.44,
// LL −4055.9 (Fader & Hardie 2013) — from summaries built from the raw transactions, with exact tₓ, T
// and z̄. The published summary file rounds those to 2 decimals: with it the log-likelihoods at the
// published parameters and of the fits, and the BG/NBD parameters, still round to the published
// figures, but the fitted Pareto/NBD β comes out 11.668 and the Gamma-Gamma γ 15.45 (as in the
// `lifetimes` package): the published fits used exact values.

/// What went wrong fitting or applying a customer-base model.
public enum CustomerBaseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No member summaries to fit.
    case noCustomers
    /// The model needs members with repeat purchases (for Gamma-Gamma: with a positive mean spend).
    case noRepeatBuyers(model: String)
    case invalidSummary(memberId: String, reason: String)
    /// The optimiser found no maximum of the likelihood: it did not settle, or a parameter ran off towards
    /// 0 or infinity (beyond e^±50), as it does when the data carry no sign of what the parameter describes.
    case didNotConverge(model: String, evaluations: Int)
    /// A quantity is undefined or not finite for the fitted parameters.
    case undefined(String)

    public var description: String {
        switch self {
        case .noCustomers: return "no member summaries to fit"
        case .noRepeatBuyers(let m): return "\(m): no member has repeat purchases\(m == "Gamma-Gamma" ? " with a positive mean spend" : "")"
        case .invalidSummary(let id, let reason): return "member \(id): \(reason)"
        case .didNotConverge(let m, let n): return "\(m): no maximum of the likelihood at finite parameters (\(n) evaluations)"
        case .undefined(let what): return what
        }
    }
}

/// A fitted model with its log-likelihood at the fitted parameters.
public struct ModelFit<Model: Sendable>: Sendable {
    public var model: Model
    public var logLikelihood: Double
    /// Likelihood evaluations the optimiser spent.
    public var evaluations: Int
}

/// The summaries grouped by history (x, tₓ, T) and ordered by x: a likelihood is evaluated once per
/// distinct history, and its x-dependent gamma-function terms by recurrence, without allocating.
struct Histories {
    var x: [Int] = [], tx: [Double] = [], T: [Double] = [], count: [Double] = []

    init(_ summaries: [PurchaseSummary]) throws(CustomerBaseError) {
        guard !summaries.isEmpty else { throw .noCustomers }
        struct Key: Hashable { var x: Int, tx: Double, T: Double }
        var counts: [Key: Int] = [:]
        for s in summaries {
            guard s.frequency >= 0 else { throw .invalidSummary(memberId: s.memberId, reason: "frequency \(s.frequency) is negative") }
            guard s.T.isFinite, s.recency >= 0, s.recency <= s.T else {
                throw .invalidSummary(memberId: s.memberId, reason: "recency \(s.recency) and T \(s.T) do not satisfy 0 ≤ recency ≤ T")
            }
            counts[Key(x: s.frequency, tx: s.recency, T: s.T), default: 0] += 1
        }
        for (k, n) in counts.sorted(by: { ($0.key.x, $0.key.tx, $0.key.T) < ($1.key.x, $1.key.tx, $1.key.T) }) {
            x.append(k.x); tx.append(k.tx); T.append(k.T); count.append(Double(n))
        }
    }
    var hasRepeatBuyers: Bool { (x.last ?? 0) > 0 }
}

/// Maximises a log-likelihood over positive parameters by Nelder–Mead on their logarithms, from 1.
func fitPositive(model: String, parameters: Int, _ logLikelihood: ([Double]) -> Double) throws(CustomerBaseError) -> (parameters: [Double], logLikelihood: Double, evaluations: Int) {
    let r = NelderMead.minimize({ -logLikelihood($0.map(exp)) }, start: Array(repeating: 0, count: parameters))
    guard r.converged, r.x.allSatisfy({ abs($0) < 50 }) else { throw .didNotConverge(model: model, evaluations: r.evaluations) }
    return (r.x.map(exp), -r.value, r.evaluations)
}

/// Maximises a log-likelihood over positive parameters from its value and gradient: BFGS on the
/// parameters' logarithms, from 1; Nelder–Mead (`fitPositive` above) when BFGS does not settle.
func fitPositive(model: String, parameters: Int, gradient: ([Double]) -> (logLikelihood: Double, gradient: [Double]),
                 _ logLikelihood: ([Double]) -> Double) throws(CustomerBaseError) -> (parameters: [Double], logLikelihood: Double, evaluations: Int) {
    // In u = log θ: f(u) = −LL(e^u), ∂f/∂u = −θ ∂LL/∂θ.
    let r = BFGS.minimize({ u in
        let theta = u.map(exp)
        let (ll, g) = gradient(theta)
        return (-ll, zip(theta, g).map { -$0 * $1 })
    }, start: Array(repeating: 0, count: parameters))
    guard r.converged, r.x.allSatisfy({ abs($0) < 50 }) else {
        let nm = try fitPositive(model: model, parameters: parameters, logLikelihood)
        return (nm.parameters, nm.logLikelihood, nm.evaluations + r.evaluations)
    }
    return (r.x.map(exp), -r.value, r.evaluations)
}

/// The BG/NBD model (Fader, Hardie & Lee 2005): while alive a member buys at a Poisson rate λ ~ Gamma(r, α);
/// after each purchase they drop out with probability p ~ Beta(a, b).
public struct BGNBD: Sendable, Equatable {
    public var r: Double, alpha: Double, a: Double, b: Double
    public init(r: Double, alpha: Double, a: Double, b: Double) { self.r = r; self.alpha = alpha; self.a = a; self.b = b }

    public static func fit(_ summaries: [PurchaseSummary]) throws(CustomerBaseError) -> ModelFit<BGNBD> {
        let h = try Histories(summaries)
        guard h.hasRepeatBuyers else { throw .noRepeatBuyers(model: "BG/NBD") }
        let f = try fitPositive(model: "BG/NBD", parameters: 4, gradient: { p in BGNBD(r: p[0], alpha: p[1], a: p[2], b: p[3]).logLikelihoodAndGradient(h) }) { p in
            BGNBD(r: p[0], alpha: p[1], a: p[2], b: p[3]).logLikelihood(h)
        }
        return ModelFit(model: BGNBD(r: f.parameters[0], alpha: f.parameters[1], a: f.parameters[2], b: f.parameters[3]),
                        logLikelihood: f.logLikelihood, evaluations: f.evaluations)
    }

    public func logLikelihood(_ summaries: [PurchaseSummary]) throws(CustomerBaseError) -> Double { logLikelihood(try Histories(summaries)) }

    /// L = B(a, b+x)/B(a, b) · Γ(r+x)αʳ/(Γ(r)(α+T)^(r+x)) + [x > 0] B(a+1, b+x−1)/B(a, b) · Γ(r+x)αʳ/(Γ(r)(α+tₓ)^(r+x)).
    func logLikelihood(_ h: Histories) -> Double {
        let logAlpha = log(alpha), logA = log(a)
        // lnΓ(r+x) − lnΓ(r), lnΓ(b+x) − lnΓ(b), lnΓ(a+b+x) − lnΓ(a+b) for the current x.
        var x = 0, gR = 0.0, gB = 0.0, gAB = 0.0, ll = 0.0
        for i in h.x.indices {
            while x < h.x[i] { let k = Double(x); gR += log(r + k); gB += log(b + k); gAB += log(a + b + k); x += 1 }
            let rx = r + Double(x)
            let stays = gB - gAB - rx * log(alpha + h.T[i])
            let leaves = x == 0 ? -Double.infinity : logA + gB - log(b + Double(x) - 1) - gAB - rx * log(alpha + h.tx[i])
            ll += h.count[i] * (gR + r * logAlpha + SpecialFunctions.logAddExp(stays, leaves))
        }
        return ll
    }

    /// The log-likelihood and its gradient in (r, α, a, b): each member's term is
    /// lnΓ(r+x)−lnΓ(r) + r ln α + ln(e^S + e^L), S and L the two terms above, so the gradient is the
    /// digamma differences (kept as running sums of 1/(r+k), 1/(b+k), 1/(a+b+k)) and the weights
    /// e^S/(e^S+e^L), e^L/(e^S+e^L) of the two terms' own derivatives.
    func logLikelihoodAndGradient(_ h: Histories) -> (Double, [Double]) {
        let logAlpha = log(alpha), logA = log(a)
        var x = 0, gR = 0.0, gB = 0.0, gAB = 0.0, dR = 0.0, dB = 0.0, dAB = 0.0
        var ll = 0.0, gr = 0.0, galpha = 0.0, ga = 0.0, gb = 0.0
        for i in h.x.indices {
            while x < h.x[i] {
                let k = Double(x)
                gR += log(r + k); gB += log(b + k); gAB += log(a + b + k)
                dR += 1 / (r + k); dB += 1 / (b + k); dAB += 1 / (a + b + k)
                x += 1
            }
            let c = h.count[i], rx = r + Double(x)
            let logT = log(alpha + h.T[i])
            let stays = gB - gAB - rx * logT
            var m = stays, wL = 0.0, logTx = 0.0
            if x > 0 {
                logTx = log(alpha + h.tx[i])
                let leaves = logA + gB - log(b + Double(x) - 1) - gAB - rx * logTx
                m = SpecialFunctions.logAddExp(stays, leaves)
                wL = exp(leaves - m)
            }
            let wS = 1 - wL
            ll += c * (gR + r * logAlpha + m)
            gr += c * (dR + logAlpha - wS * logT - wL * logTx)
            galpha += c * (r / alpha - wS * rx / (alpha + h.T[i]) - (x > 0 ? wL * rx / (alpha + h.tx[i]) : 0))
            ga += c * (-dAB + (x > 0 ? wL / a : 0))
            gb += c * (dB - dAB - (x > 0 ? wL / (b + Double(x) - 1) : 0))
        }
        return (ll, [gr, galpha, ga, gb])
    }

    /// P(alive at T | x, tₓ, T) = 1 / (1 + [x > 0] a/(b+x−1) · ((α+T)/(α+tₓ))^(r+x)); 1 without repeat purchases.
    public func probabilityAlive(frequency x: Int, recency tx: Double, T: Double) -> Double {
        x == 0 ? 1 : 1 / (1 + a / (b + Double(x) - 1) * exp((r + Double(x)) * log((alpha + T) / (alpha + tx))))
    }

    /// The expected number of purchases in the `weeks` after T (FHL 2005, eq. 10):
    /// (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))] / (1 + [x > 0] a/(b+x−1) ((α+T)/(α+tₓ))^(r+x)).
    /// Where the ₂F₁ overflows (many purchases, long horizons), the term is taken in its Euler form
    /// (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z), z = t/(α+T+t).
    public func expectedPurchases(weeks t: Double, frequency x: Int, recency tx: Double, T: Double) -> Double {
        guard t > 0 else { return 0 }
        let xd = Double(x), z = t / (alpha + T + t)
        var f = exp((r + xd) * log1p(-z)) * SpecialFunctions.hyp2F1(r + xd, b + xd, a + b + xd - 1, z)
        if !f.isFinite { f = exp((a - 1) * log1p(-z)) * SpecialFunctions.hyp2F1(a + b - 1 - r, a - 1, a + b + xd - 1, z) }
        let alive = x == 0 ? 1 : 1 + a / (b + xd - 1) * exp((r + xd) * log((alpha + T) / (alpha + tx)))
        return (a + b + xd - 1) / (a - 1) * (1 - f) / alive
    }
}

/// The Pareto/NBD model (Schmittlein, Morrison & Colombo 1987): while alive a member buys at a Poisson rate
/// λ ~ Gamma(r, α); lifetimes are exponential with rate μ ~ Gamma(s, β). The likelihood follows Fader &
/// Hardie's note "Deriving the Pareto/NBD likelihood" in the form of the `lifetimes` package.
public struct ParetoNBD: Sendable, Equatable {
    public var r: Double, alpha: Double, s: Double, beta: Double
    public init(r: Double, alpha: Double, s: Double, beta: Double) { self.r = r; self.alpha = alpha; self.s = s; self.beta = beta }

    public static func fit(_ summaries: [PurchaseSummary]) throws(CustomerBaseError) -> ModelFit<ParetoNBD> {
        let h = try Histories(summaries)
        guard h.hasRepeatBuyers else { throw .noRepeatBuyers(model: "Pareto/NBD") }
        let f = try fitPositive(model: "Pareto/NBD", parameters: 4) { p in ParetoNBD(r: p[0], alpha: p[1], s: p[2], beta: p[3]).logLikelihood(h) }
        return ModelFit(model: ParetoNBD(r: f.parameters[0], alpha: f.parameters[1], s: f.parameters[2], beta: f.parameters[3]),
                        logLikelihood: f.logLikelihood, evaluations: f.evaluations)
    }

    public func logLikelihood(_ summaries: [PurchaseSummary]) throws(CustomerBaseError) -> Double { logLikelihood(try Histories(summaries)) }

    /// L = Γ(r+x)αʳβˢ/Γ(r) · [(α+T)^−(r+x) (β+T)^−s + s/(r+s+x) · A₀].
    func logLikelihood(_ h: Histories) -> Double {
        let base = r * log(alpha) + s * log(beta), logS = log(s)
        var x = 0, gR = 0.0, ll = 0.0  // gR = lnΓ(r+x) − lnΓ(r)
        for i in h.x.indices {
            while x < h.x[i] { gR += log(r + Double(x)); x += 1 }
            let xd = Double(x)
            let alive = -(r + xd) * log(alpha + h.T[i]) - s * log(beta + h.T[i])
            let died = logS - log(r + s + xd) + logA0(x: xd, tx: h.tx[i], T: h.T[i])
            guard !died.isNaN else { return .nan }  // ₂F₁ out of reach: the optimiser treats this as infeasible
            ll += h.count[i] * (gR + base + SpecialFunctions.logAddExp(alive, died))
        }
        return ll
    }

    /// log A₀ with A₀ = F(tₓ) − F(T), F(t) = ₂F₁(r+s+x, s+1; r+s+x+1; (α−β)/(α+t)) / (α+t)^(r+s+x) when α ≥ β,
    /// ₂F₁(r+s+x, r+x; r+s+x+1; (β−α)/(β+t)) / (β+t)^(r+s+x) when α < β, so that the argument lies in [0, 1).
    func logA0(x: Double, tx: Double, T: Double) -> Double {
        let (top, b) = alpha >= beta ? (alpha, s + 1) : (beta, r + x)
        let d = abs(alpha - beta), rsx = r + s + x
        let atTx = log(SpecialFunctions.hyp2F1(rsx, b, rsx + 1, d / (top + tx))) - rsx * log(top + tx)
        let atT = log(SpecialFunctions.hyp2F1(rsx, b, rsx + 1, d / (top + T))) - rsx * log(top + T)
        guard atTx > atT else { return atTx.isNaN || atT.isNaN ? .nan : -.infinity }
        return SpecialFunctions.logSubExp(atTx, atT)
    }

    /// P(alive at T | x, tₓ, T) = 1 / (1 + s/(r+s+x) · (α+T)^(r+x) (β+T)^s · A₀).
    public func probabilityAlive(frequency x: Int, recency tx: Double, T: Double) -> Double {
        let xd = Double(x)
        return 1 / (1 + exp(log(s) - log(r + s + xd) + (r + xd) * log(alpha + T) + s * log(beta + T) + logA0(x: xd, tx: tx, T: T)))
    }

    /// The expected number of purchases in the `weeks` after T:
    /// P(alive) · (r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+t))^(s−1)], the bracket over (s−1) tending to ln((β+T+t)/(β+T)) at s = 1.
    public func expectedPurchases(weeks t: Double, frequency x: Int, recency tx: Double, T: Double) -> Double {
        guard t > 0 else { return 0 }
        let l = log((beta + T) / (beta + T + t))
        let horizon = abs(s - 1) < 1e-12 ? -l : -expm1((s - 1) * l) / (s - 1)
        return probabilityAlive(frequency: x, recency: tx, T: T) * (r + Double(x)) * (beta + T) / (alpha + T) * horizon
    }
}

/// The Gamma-Gamma model of spend (Fader & Hardie 2013, after Colombo & Jiang 1999): a member's purchase
/// amounts are Gamma(p, ν) with ν ~ Gamma(q, γ), independent of how often they buy. Fitted on the members
/// with repeat purchases and a positive mean spend z̄.
public struct GammaGamma: Sendable, Equatable {
    public var p: Double, q: Double, gamma: Double
    public init(p: Double, q: Double, gamma: Double) { self.p = p; self.q = q; self.gamma = gamma }

    /// The members the model is fitted on: (x, z̄) of those with x > 0 and z̄ > 0, ordered by x.
    struct Spends {
        var x: [Double] = [], logX: [Double] = [], z: [Double] = [], logZ: [Double] = []
        init(_ summaries: [PurchaseSummary]) throws(CustomerBaseError) {
            guard !summaries.isEmpty else { throw .noCustomers }
            for s in summaries.filter({ $0.frequency > 0 && $0.monetaryValue > 0 }).sorted(by: { $0.frequency < $1.frequency }) {
                guard s.monetaryValue.isFinite else { throw .invalidSummary(memberId: s.memberId, reason: "monetary value \(s.monetaryValue) is not finite") }
                x.append(Double(s.frequency)); logX.append(log(Double(s.frequency))); z.append(s.monetaryValue); logZ.append(log(s.monetaryValue))
            }
            guard !x.isEmpty else { throw .noRepeatBuyers(model: "Gamma-Gamma") }
        }
    }

    public static func fit(_ summaries: [PurchaseSummary]) throws(CustomerBaseError) -> ModelFit<GammaGamma> {
        let spends = try Spends(summaries)
        let f = try fitPositive(model: "Gamma-Gamma", parameters: 3, gradient: { p in GammaGamma(p: p[0], q: p[1], gamma: p[2]).logLikelihoodAndGradient(spends) }) { p in
            GammaGamma(p: p[0], q: p[1], gamma: p[2]).logLikelihood(spends)
        }
        return ModelFit(model: GammaGamma(p: f.parameters[0], q: f.parameters[1], gamma: f.parameters[2]),
                        logLikelihood: f.logLikelihood, evaluations: f.evaluations)
    }

    /// The log-likelihood of the mean spends of the members with x > 0 and z̄ > 0.
    public func logLikelihood(_ summaries: [PurchaseSummary]) throws(CustomerBaseError) -> Double { logLikelihood(try Spends(summaries)) }

    /// f(z̄ | x) = Γ(px+q)/(Γ(px)Γ(q)) · γ^q x^(px) z̄^(px−1) / (γ + x z̄)^(px+q).
    func logLikelihood(_ s: Spends) -> Double {
        let c = q * log(gamma) - lgamma(q)
        var lastX = -1.0, g = 0.0, ll = 0.0
        for i in s.x.indices {
            let x = s.x[i], px = p * x
            if x != lastX { g = lgamma(px + q) - lgamma(px); lastX = x }
            ll += g + c + (px - 1) * s.logZ[i] + px * s.logX[i] - (px + q) * log(x * s.z[i] + gamma)
        }
        return ll
    }

    /// The log-likelihood and its gradient in (p, q, γ): ∂/∂p = x(ψ(px+q) − ψ(px) + ln z̄ + ln x − ln(x z̄+γ)),
    /// ∂/∂q = ψ(px+q) − ψ(q) + ln γ − ln(x z̄+γ), ∂/∂γ = q/γ − (px+q)/(x z̄+γ).
    func logLikelihoodAndGradient(_ s: Spends) -> (Double, [Double]) {
        let logGamma = log(gamma), c = q * logGamma - lgamma(q), psiQ = SpecialFunctions.digamma(q)
        var lastX = -1.0, g = 0.0, psiPQ = 0.0, psiP = 0.0
        var ll = 0.0, gp = 0.0, gq = 0.0, gg = 0.0
        for i in s.x.indices {
            let x = s.x[i], px = p * x
            if x != lastX {
                g = lgamma(px + q) - lgamma(px)
                psiPQ = SpecialFunctions.digamma(px + q); psiP = SpecialFunctions.digamma(px)
                lastX = x
            }
            let logD = log(x * s.z[i] + gamma)
            ll += g + c + (px - 1) * s.logZ[i] + px * s.logX[i] - (px + q) * logD
            gp += x * (psiPQ - psiP + s.logZ[i] + s.logX[i] - logD)
            gq += psiPQ - psiQ + logGamma - logD
            gg += q / gamma - (px + q) / (x * s.z[i] + gamma)
        }
        return (ll, [gp, gq, gg])
    }

    /// E[M | x, z̄] = (q−1)/(px+q−1) · pγ/(q−1) + px/(px+q−1) · z̄ = p(γ + x z̄)/(px+q−1): the population mean
    /// pγ/(q−1) for x = 0, moving to the member's own mean as x grows. NaN when px + q ≤ 1, where the mean is infinite.
    public func expectedAverageValue(frequency x: Int, monetaryValue z: Double) -> Double {
        let px = p * Double(x)
        return px + q > 1 ? p * (gamma + Double(x) * z) / (px + q - 1) : .nan
    }
}
