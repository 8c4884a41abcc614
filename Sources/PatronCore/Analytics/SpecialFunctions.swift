import Foundation

/// The special functions the customer-base models need, for real arguments in double precision.
enum SpecialFunctions {
    /// log|Γ(x)| and the sign of Γ(x); the sign is 0 at the poles x = 0, −1, −2, …, where 1/Γ(x) = 0.
    static func logGamma(_ x: Double) -> (log: Double, sign: Double) {
        if x > 0 { return (lgamma(x), 1) }
        let f = x.rounded(.down)
        if f == x { return (.infinity, 0) }
        return (lgamma(x), f.truncatingRemainder(dividingBy: 2) == 0 ? 1 : -1)
    }

    /// The digamma function ψ(x) = Γ′(x)/Γ(x): reflection below 0, recurrence up to 10, then the
    /// asymptotic series (error below 1e-13).
    static func digamma(_ x: Double) -> Double {
        var x = x, acc = 0.0
        if x <= 0 {
            if x.rounded(.down) == x { return .nan }
            acc = -Double.pi / tan(Double.pi * x)
            x = 1 - x
        }
        while x < 10 { acc -= 1 / x; x += 1 }
        let i2 = 1 / (x * x)
        return acc + log(x) - 0.5 / x - i2 * (1.0 / 12 - i2 * (1.0 / 120 - i2 * (1.0 / 252 - i2 * (1.0 / 240 - i2 / 132))))
    }

    /// log(eˣ + eʸ) without overflow.
    static func logAddExp(_ x: Double, _ y: Double) -> Double {
        let m = max(x, y)
        return m == -.infinity ? m : m + log1p(exp(-abs(x - y)))
    }

    /// log(eˣ − eʸ) for x ≥ y, without overflow; −∞ when x = y.
    static func logSubExp(_ x: Double, _ y: Double) -> Double {
        x == y ? -.infinity : x + log(-expm1(y - x))
    }

    /// The Gauss hypergeometric function ₂F₁(a, b; c; z) for real a, b, c and z < 1.
    ///
    /// z ≤ ½: the power series. ½ < z < 1: the connection formulas in 1 − z (DLMF 15.8.4; A&S 15.3.10–11
    /// when c − a − b is an integer), whose series run with an argument below ½. When their terms cancel by
    /// more than three digits (large parameters): for c = a + 1, Gauss–Laguerre quadrature of Euler's
    /// integral; otherwise the power series of F or of its Euler transform, if its terms are all positive.
    /// z < 0: Pfaff's transformation to z/(z − 1) ∈ (0, 1). Gamma-function factors are combined in log
    /// space. Checked against mpmath: to 1e-9 relative for 0 ≤ z < 1, |a|, |b| ≤ 60, c ≤ 70; for c = a + 1
    /// and z near 1, to 3e-9 up to a = 10³, 1e-7 up to 10⁵, 5e-7 up to 10⁷ (the Γ arguments round). NaN where
    /// the function is undefined (c = 0, −1, … without a terminating numerator) or a series does not settle.
    static func hyp2F1(_ a: Double, _ b: Double, _ c: Double, _ z: Double) -> Double {
        guard a.isFinite, b.isFinite, c.isFinite, z < 1 else { return .nan }
        if isNonPositiveInteger(a) || isNonPositiveInteger(b) { return series(a, b, c, z).sum }  // a polynomial
        if isNonPositiveInteger(c) { return .nan }
        if z < 0 { return pow(1 - z, -a) * hyp2F1(a, c - b, c, z / (z - 1)) }
        if z <= 0.5 { return series(a, b, c, z).sum }
        let (value, scale) = nearOne(a, b, c, z)
        if scale <= 1e3 * abs(value) { return value }
        // The connection formula cancels (large parameters). For c = a + 1 (Pareto/NBD) integrate;
        // otherwise sum the power series itself, or its Euler transform w^(c−a−b) F(c−a, c−b; c; z),
        // when its terms are all positive.
        if c == a + 1, a > 0, -a * log(z) >= 1 { return laguerre(a, b, z) }
        if c - a > 0, c - b > 0, c - a - b < 0 || a <= 0 || b <= 0 {
            return pow(1 - z, c - a - b) * series(c - a, c - b, c, z).sum
        }
        return a > 0 && b > 0 && c > 0 ? series(a, b, c, z).sum : value
    }

    /// ₂F₁ for ½ < z < 1 by the connection formulas in w = 1 − z, with the sum of the magnitudes of the
    /// terms combined, to judge the cancellation: DLMF 15.8.4, F = Γ(c)Γ(m)/(Γ(c−a)Γ(c−b)) F(a, b; 1−m; w)
    /// + w^m Γ(c)Γ(−m)/(Γ(a)Γ(b)) F(c−a, c−b; 1+m; w) with m = c − a − b, or A&S 15.3.10–11 when m is
    /// an integer (after Euler's transformation if m < 0).
    private static func nearOne(_ a: Double, _ b: Double, _ c: Double, _ z: Double) -> (value: Double, scale: Double) {
        let w = 1 - z, m = c - a - b, mi = m.rounded()
        if abs(m - mi) > 1e-8 || abs(mi) > 1000 {
            let s1 = series(a, b, 1 - m, w), s2 = series(c - a, c - b, 1 + m, w)
            let first = product(c, m, over: c - a, c - b, times: s1.sum)
            let second = product(c, -m, over: a, b, times: s2.sum, logFactor: m * log(w))
            let scale = abs(first) * s1.magnitude / abs(s1.sum) + abs(second) * s2.magnitude / abs(s2.sum)
            return (first + second, scale)
        }
        if mi >= 0 { return integerCase(a, b, Int(mi), w) }
        if isNonPositiveInteger(c - a) || isNonPositiveInteger(c - b) {
            let v = pow(w, m) * series(c - a, c - b, c, z).sum
            return (v, abs(v))
        }
        let (v, scale) = integerCase(c - a, c - b, -Int(mi), w)
        let f = pow(w, m)
        return (f * v, f * scale)
    }

    /// ₂F₁(a, b; a+1; z) = ∫₀^∞ e^(−u) (1 − z e^(−u/a))^(−b) du (from Euler's integral with t = e^(−u/a)) by
    /// 64-point Gauss–Laguerre quadrature. The integrand's nearest singularity is at u = a ln z; with
    /// a ln z ≤ −1 the error is below 1e-9 (1e-11 from a ln z ≤ −10).
    private static func laguerre(_ a: Double, _ b: Double, _ z: Double) -> Double {
        let y = -log(z)
        var sum = 0.0
        for i in gaussLaguerre.x.indices {
            sum += gaussLaguerre.w[i] * exp(-b * log(-expm1(-(y + gaussLaguerre.x[i] / a))))
        }
        return sum
    }

    /// The nodes and weights of 64-point Gauss–Laguerre quadrature, by Newton's method on the Laguerre
    /// polynomial L₆₄ from asymptotic first guesses (as in Numerical Recipes' gaulag).
    private static let gaussLaguerre: (x: [Double], w: [Double]) = {
        let n = 64
        var x = [Double](repeating: 0, count: n), w = x, z = 0.0
        for i in 0..<n {
            if i == 0 { z = 3 / (1 + 2.4 * Double(n)) } else if i == 1 { z += 15 / (1 + 2.5 * Double(n)) } else {
                let k = Double(i - 1)
                z += (1 + 2.55 * k) / (1.9 * k) * (z - x[i - 2])
            }
            var p1 = 0.0, p2 = 0.0, derivative = 0.0
            for _ in 0..<100 {
                p1 = 1; p2 = 0
                for j in 1...n { let p3 = p2; p2 = p1; p1 = ((2 * Double(j) - 1 - z) * p2 - (Double(j) - 1) * p3) / Double(j) }
                derivative = Double(n) * (p1 - p2) / z
                let previous = z
                z -= p1 / derivative
                if abs(z - previous) <= 1e-15 * z { break }
            }
            x[i] = z
            w[i] = -1 / (derivative * Double(n) * p2)
        }
        return (x, w)
    }()

    private static func isNonPositiveInteger(_ x: Double) -> Bool { x <= 0 && x.rounded() == x }

    /// s · Γ(n1)Γ(n2)/(Γ(d1)Γ(d2)Γ(d3)) · e^logFactor, formed in log space; 0 when a denominator Γ has a pole.
    private static func product(_ n1: Double, _ n2: Double, over d1: Double, _ d2: Double, _ d3: Double = 1,
                                times s: Double, logFactor: Double = 0) -> Double {
        let g = (logGamma(n1), logGamma(n2), logGamma(d1), logGamma(d2), logGamma(d3))
        guard s != 0, g.2.sign != 0, g.3.sign != 0, g.4.sign != 0 else { return 0 }
        let sign = (s < 0 ? -1 : 1) * g.0.sign * g.1.sign * g.2.sign * g.3.sign * g.4.sign
        return sign * exp(logFactor + log(abs(s)) + g.0.log + g.1.log - g.2.log - g.3.log - g.4.log)
    }

    /// Σ (a)ₙ(b)ₙ/((c)ₙ n!) zⁿ, until a bound on the tail is below double precision (NaN if that does not
    /// happen), with the sum of the terms' magnitudes.
    private static func series(_ a: Double, _ b: Double, _ c: Double, _ z: Double) -> (sum: Double, magnitude: Double) {
        let start = max(0, -a, -b, -c)  // from here on every factor of the term ratio is positive
        guard start < 1e6 else { return (.nan, .nan) }
        var term = 1.0, sum = 1.0, magnitude = 1.0, k = 0.0
        while k < start + 100_000 {
            term *= (a + k) * (b + k) / ((c + k) * (k + 1)) * z
            sum += term
            magnitude += abs(term)
            k += 1
            if term == 0 { return (sum, magnitude) }
            guard sum.isFinite else { return (.nan, .nan) }
            if k > start {
                let rho = ratioBound(a, b, c, k, z)
                if rho < 1, abs(term) * rho <= 1e-17 * (1 - rho) * abs(sum) { return (sum, magnitude) }
            }
        }
        return (.nan, .nan)
    }

    /// A bound on |(a+j)(b+j)z/((c+j)(j+1))| for all j ≥ k, where a+k, b+k, c+k > 0: paired as (a+j)/(c+j) and
    /// (b+j)/(j+1), or (a+j)/(j+1) and (b+j)/(c+j), each factor moves monotonically towards 1.
    private static func ratioBound(_ a: Double, _ b: Double, _ c: Double, _ k: Double, _ z: Double) -> Double {
        abs(z) * min(max(1, (a + k) / (c + k)) * max(1, (b + k) / (k + 1)), max(1, (a + k) / (k + 1)) * max(1, (b + k) / (c + k)))
    }

    /// ₂F₁(a, b; a + b + m; 1 − w) for an integer m ≥ 0 and 0 < w < ½ (A&S 15.3.10–11):
    /// Γ(m)Γ(c)/(Γ(a+m)Γ(b+m)) Σₖ₌₀^(m−1) (a)ₖ(b)ₖ/(k!(1−m)ₖ) wᵏ
    /// − (−w)^m Γ(c)/(Γ(a)Γ(b)) Σₙ (a+m)ₙ(b+m)ₙ/(n!(n+m)!) wⁿ [ln w − ψ(n+1) − ψ(n+m+1) + ψ(a+m+n) + ψ(b+m+n)].
    private static func integerCase(_ a: Double, _ b: Double, _ m: Int, _ w: Double) -> (value: Double, scale: Double) {
        let c = a + b + Double(m)
        var finite = 0.0
        if m > 0 {
            var t = 1.0
            for k in 0..<m {
                finite += t
                let kk = Double(k)
                t *= (a + kk) * (b + kk) / ((kk + 1) * (kk + 1 - Double(m))) * w
            }
            finite = product(Double(m), c, over: a + Double(m), b + Double(m), times: finite)
        }
        let md = Double(m), lw = log(w), start = max(0, -a - md, -b - md)
        guard start < 1e6 else { return (.nan, .nan) }
        var psi1 = digamma(1), psiM = digamma(md + 1), psiA = digamma(a + md), psiB = digamma(b + md)
        var term = 1.0, sum = 0.0, magnitude = 0.0, k = 0.0
        while true {
            let bracket = lw - psi1 - psiM + psiA + psiB
            sum += term * bracket
            magnitude += abs(term * bracket)
            let ratio = (a + md + k) * (b + md + k) / ((k + 1) * (k + md + 1)) * w
            if k >= start {
                let rho = ratioBound(a + md, b + md, md + 1, k, w)
                if rho < 1, abs(term) * (1 + abs(bracket)) * rho <= 1e-17 * (1 - rho) * abs(sum) { break }
            }
            guard sum.isFinite, k < start + 100_000 else { return (.nan, .nan) }
            term *= ratio
            psi1 += 1 / (k + 1); psiM += 1 / (k + md + 1); psiA += 1 / (a + md + k); psiB += 1 / (b + md + k)
            k += 1
        }
        let logSeries = product(c, 1, over: a, b, md + 1, times: sum, logFactor: md * lw)
        return (finite - (m % 2 == 0 ? 1 : -1) * logSeries, abs(finite) + abs(logSeries) * magnitude / abs(sum))
    }
}
