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
