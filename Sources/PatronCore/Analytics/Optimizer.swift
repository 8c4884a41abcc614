import Foundation

/// Nelder–Mead minimisation without derivatives, restarted from its best point until a fresh simplex
/// no longer finds anything better: restarts are what make the method reliable on the curved, flat
/// likelihood surfaces of the customer-base models. Non-finite values count as +∞.
enum NelderMead {
    struct Result { var x: [Double]; var value: Double; var evaluations: Int; var converged: Bool }

    /// Minimises `f` from `start`, each restart with a simplex of edge `step` around the best point.
    /// A run ends when the simplex has shrunk below 1e-10 and its values agree to 1e-14 relative (or it
    /// has shrunk below 1e-13); the search ends when a restart improves the value by no more than 1e-12
    /// relative and converges, or fails after `maxEvaluations`.
    static func minimize(_ f: ([Double]) -> Double, start: [Double], step: Double = 0.5, maxEvaluations: Int = 100_000) -> Result {
        var evaluations = 0
        func value(_ x: [Double]) -> Double {
            evaluations += 1
            let v = f(x)
            return v.isFinite ? v : .infinity
        }
        var best = start, bestValue = value(start)
        for _ in 0..<20 {
            let run = simplexRun(value, from: best, step: step, budget: maxEvaluations - evaluations)
            let improvement = bestValue - run.value
            if run.value < bestValue { best = run.x; bestValue = run.value }
            guard run.converged else { break }
            if improvement <= 1e-12 * max(1, abs(bestValue)) {
                return Result(x: best, value: bestValue, evaluations: evaluations, converged: bestValue.isFinite)
            }
        }
        return Result(x: best, value: bestValue, evaluations: evaluations, converged: false)
    }

    private static func simplexRun(_ f: ([Double]) -> Double, from x0: [Double], step: Double, budget: Int) -> (x: [Double], value: Double, converged: Bool) {
        let n = x0.count
        var points = [x0]
        for i in 0..<n { var p = x0; p[i] += step; points.append(p) }
        var values = points.map(f)
        var used = n + 1
        func along(_ centroid: [Double], _ worst: [Double], _ t: Double) -> [Double] {
            (0..<n).map { centroid[$0] + t * (worst[$0] - centroid[$0]) }
        }
        while used < budget {
            let order = values.indices.sorted { values[$0] < values[$1] }
            points = order.map { points[$0] }; values = order.map { values[$0] }
            let size = points.dropFirst().map { p in zip(p, points[0]).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
            let spread = values[n] - values[0]
            if size < 1e-13 || (size < 1e-10 && spread <= 1e-14 * max(1, abs(values[0]))) {
                return (points[0], values[0], values[0].isFinite)
            }
            let centroid = (0..<n).map { i in points[..<n].reduce(0) { $0 + $1[i] } / Double(n) }
            let reflected = along(centroid, points[n], -1), fr = f(reflected); used += 1
            if fr < values[0] {
                let expanded = along(centroid, points[n], -2), fe = f(expanded); used += 1
                (points[n], values[n]) = fe < fr ? (expanded, fe) : (reflected, fr)
            } else if fr < values[n - 1] {
                (points[n], values[n]) = (reflected, fr)
            } else {
                let contracted = along(centroid, points[n], fr < values[n] ? -0.5 : 0.5), fc = f(contracted); used += 1
                if fc < min(fr, values[n]) {
                    (points[n], values[n]) = (contracted, fc)
                } else {
                    for i in 1...n {
                        points[i] = (0..<n).map { points[0][$0] + 0.5 * (points[i][$0] - points[0][$0]) }
                        values[i] = f(points[i]); used += 1
                    }
                }
            }
        }
        return (points[0], values[0], false)
    }
}

/// Quasi-Newton (BFGS) minimisation with the function's own gradient, a backtracking line search
/// (Armijo) and the inverse-Hessian update skipped when the curvature condition fails. For smooth
/// likelihoods with analytic gradients it needs a few dozen evaluations where Nelder–Mead needs
/// hundreds. Converged when the largest gradient component is below `tolerance` × max(1, |f|).
/// Non-finite values count as +∞ (the line search backs off from them).
enum BFGS {
    struct Result { var x: [Double]; var value: Double; var evaluations: Int; var converged: Bool }

    static func minimize(_ fg: ([Double]) -> (value: Double, gradient: [Double]), start: [Double],
                         tolerance: Double = 1e-10, maxIterations: Int = 400) -> Result {
        let n = start.count
        var evaluations = 0
        func eval(_ x: [Double]) -> (Double, [Double]) {
            evaluations += 1
            let (v, g) = fg(x)
            return v.isFinite && g.allSatisfy(\.isFinite) ? (v, g) : (.infinity, g)
        }
        var x = start
        var (f, g) = eval(x)
        guard f.isFinite else { return Result(x: x, value: f, evaluations: evaluations, converged: false) }
        var h = identity(n)
        var scaled = false
        for _ in 0..<maxIterations {
            if (g.map(abs).max() ?? 0) <= tolerance * max(1, abs(f)) { return Result(x: x, value: f, evaluations: evaluations, converged: true) }
            var p = (0..<n).map { i in -(0..<n).reduce(0) { $0 + h[i][$1] * g[$1] } }
            var slope = zip(g, p).reduce(0) { $0 + $1.0 * $1.1 }
            if !(slope < 0) { h = identity(n); p = g.map { -$0 }; slope = -g.reduce(0) { $0 + $1 * $1 } }
            // At most 2 in any log-parameter per step: a factor of e² either way.
            let longest = p.map(abs).max() ?? 0
            var step = longest > 2 ? 2 / longest : 1.0
            var next: (x: [Double], f: Double, g: [Double])? = nil
            for _ in 0..<60 {
                let xt = (0..<n).map { x[$0] + step * p[$0] }
                let (ft, gt) = eval(xt)
                if ft.isFinite && ft <= f + 1e-4 * step * slope { next = (xt, ft, gt); break }
                step *= 0.5
            }
            guard let (xn, fn, gn) = next else { return Result(x: x, value: f, evaluations: evaluations, converged: false) }
            let s = (0..<n).map { xn[$0] - x[$0] }, y = (0..<n).map { gn[$0] - g[$0] }
            let sy = zip(s, y).reduce(0) { $0 + $1.0 * $1.1 }
            if sy > 1e-300 {
                if !scaled {
                    // The first step sets the scale of the inverse Hessian (Nocedal & Wright 6.20).
                    let yy = y.reduce(0) { $0 + $1 * $1 }
                    h = identity(n).map { $0.map { $0 * sy / yy } }
                    scaled = true
                }
                let rho = 1 / sy
                let hy = (0..<n).map { i in (0..<n).reduce(0) { $0 + h[i][$1] * y[$1] } }
                let yhy = zip(y, hy).reduce(0) { $0 + $1.0 * $1.1 }
                for i in 0..<n {
                    for j in 0..<n {
                        h[i][j] += rho * ((1 + rho * yhy) * s[i] * s[j] - hy[i] * s[j] - s[i] * hy[j])
                    }
                }
            }
            let unchanged = abs(f - fn) <= 1e-16 * max(1, abs(f))
            x = xn; f = fn; g = gn
            if unchanged && (g.map(abs).max() ?? 0) <= 1e3 * tolerance * max(1, abs(f)) {
                return Result(x: x, value: f, evaluations: evaluations, converged: true)
            }
        }
        return Result(x: x, value: f, evaluations: evaluations, converged: false)
    }

    private static func identity(_ n: Int) -> [[Double]] { (0..<n).map { i in (0..<n).map { $0 == i ? 1.0 : 0.0 } } }
}
