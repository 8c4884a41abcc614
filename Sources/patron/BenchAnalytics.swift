import ArgumentParser
import Foundation
import PatronCore
import PatronServer

/// The analytics part of `patron bench` (issue #5): BG/NBD and Gamma-Gamma fitted on the whole
/// CDNOW master file's calibration period, beside the Python `lifetimes` package (0.11.3)
/// fitting the same summaries on the same machine in the same run.
extension Bench {
    /// The calibration period of the CDNOW studies: 1997-01-01 to 1997-09-30 (39 weeks).
    static let cdnowCalibrationEnd = CivilDate(year: 1997, month: 9, day: 30)

    /// What the Python side runs: reads the summaries, fits both models three times each, prints
    /// the estimates and the median fit time as JSON. Import time is not counted.
    static let lifetimesScript = """
        import json, sys, time
        import pandas as pd
        import lifetimes
        from lifetimes import BetaGeoFitter, GammaGammaFitter
        d = pd.read_csv(sys.argv[1])
        def timed(fit):
            times, model = [], None
            for _ in range(3):
                t = time.perf_counter(); model = fit(); times.append(time.perf_counter() - t)
            return model, sorted(times)[1]
        def bg():
            m = BetaGeoFitter(penalizer_coef=0.0); m.fit(d['frequency'], d['recency'], d['T']); return m
        r = d[(d['frequency'] > 0) & (d['monetary_value'] > 0)]
        def gg():
            m = GammaGammaFitter(penalizer_coef=0.0); m.fit(r['frequency'], r['monetary_value']); return m
        b, bs = timed(bg)
        g, gs = timed(gg)
        print(json.dumps({"version": lifetimes.__version__, "bgnbd": {k: float(v) for k, v in b.params_.items()}, "bgnbdSeconds": bs,
                          "gammaGamma": {k: float(v) for k, v in g.params_.items()}, "gammaGammaSeconds": gs}))
        """

    func customerValue(cdnow: String?, python: String, results: inout [String: Double]) throws {
        let path = cdnow ?? Demo.cdnowCandidates(cwd: FileManager.default.currentDirectoryPath).first { FileManager.default.fileExists(atPath: $0) }
        guard let path, let data = FileManager.default.contents(atPath: path) else {
            print("\ncustomer-base models: the CDNOW master file was not found (give --cdnow PATH); skipped")
            return
        }
        let log = try TransactionText.parse(String(decoding: data, as: UTF8.self), format: .cdnow)
        let summaries = PurchaseSummary.summaries(of: log, calibrationEnd: Self.cdnowCalibrationEnd)
        print("\ncustomer-base models on \(path): \(summaries.count) customers, calibration to \(Self.cdnowCalibrationEnd)")
        func median<T>(_ body: () throws -> T) rethrows -> (T, Double) {
            var times: [Double] = [], last: T? = nil
            for _ in 0..<3 {
                let t = ContinuousClock.now
                last = try body()
                times.append((ContinuousClock.now - t).seconds)
            }
            return (last!, times.sorted()[1])
        }
        let (bg, bgSeconds) = try median { try BGNBD.fit(summaries) }
        let (gg, ggSeconds) = try median { try GammaGamma.fit(summaries) }
        results["clv_bgnbd_s"] = bgSeconds
        results["clv_gamma_gamma_s"] = ggSeconds
        print(String(format: "  Patron (Swift): BG/NBD r %.4g alpha %.4g a %.4g b %.4g in %.3f s (%d likelihood evaluations); Gamma-Gamma p %.4g q %.4g gamma %.4g in %.3f s (%d) (median of 3)",
                     bg.model.r, bg.model.alpha, bg.model.a, bg.model.b, bgSeconds, bg.evaluations, gg.model.p, gg.model.q, gg.model.gamma, ggSeconds, gg.evaluations))

        // The same summaries for `lifetimes`.
        let csv = "\(dir)/cdnow_summary.csv", script = "\(dir)/lifetimes_fit.py"
        var text = "frequency,recency,T,monetary_value\n"
        for s in summaries { text += "\(s.frequency),\(s.recency),\(s.T),\(s.monetaryValue)\n" }
        try text.write(toFile: csv, atomically: true, encoding: .utf8)
        try Self.lifetimesScript.write(toFile: script, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script, csv]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out; process.standardError = err
        do { try process.run() } catch {
            print("  lifetimes: cannot run \(python) (\(error)); skipped")
            return
        }
        let output = out.fileHandleForReading.readDataToEndOfFile(), errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, case .object(let o)? = try? JSONDecoder().decode(JSONValue.self, from: output),
              case .object(let pb)? = o["bgnbd"], case .object(let pg)? = o["gammaGamma"],
              case .double(let pbs)? = o["bgnbdSeconds"], case .double(let pgs)? = o["gammaGammaSeconds"] else {
            let why = String(decoding: errors, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "no output"
            print("  lifetimes: not run (\(why)); install it with `pip install lifetimes==0.11.3` and pass --python")
            return
        }
        func number(_ v: JSONValue?) -> Double { if case .double(let d)? = v { d } else if case .int(let i)? = v { Double(i) } else { .nan } }
        let theirs = [number(pb["r"]), number(pb["alpha"]), number(pb["a"]), number(pb["b"]), number(pg["p"]), number(pg["q"]), number(pg["v"])]
        let ours = [bg.model.r, bg.model.alpha, bg.model.a, bg.model.b, gg.model.p, gg.model.q, gg.model.gamma]
        let names = ["r", "alpha", "a", "b", "p", "q", "gamma"]
        let sig3 = { (x: Double) in String(format: "%.3g", x) }
        let differ = zip(names, zip(ours, theirs)).filter { sig3($1.0) != sig3($1.1) }.map { "\($0) \(sig3($1.0)) vs \(sig3($1.1))" }
        let version: String = { if case .string(let s)? = o["version"] { s } else { "?" } }()
        results["clv_lifetimes_bgnbd_s"] = pbs
        results["clv_lifetimes_gamma_gamma_s"] = pgs
        results["clv_speedup"] = (pbs + pgs) / (bgSeconds + ggSeconds)
        print(String(format: "  lifetimes %@ (Python): BG/NBD r %.4g alpha %.4g a %.4g b %.4g in %.3f s; Gamma-Gamma p %.4g q %.4g gamma %.4g in %.3f s (median of 3)",
                     version, theirs[0], theirs[1], theirs[2], theirs[3], pbs, theirs[4], theirs[5], theirs[6], pgs))
        print(String(format: "  Patron fits both %.1fx as fast as lifetimes (goal ≥ 10x); estimates to 3 significant digits: %@",
                     (pbs + pgs) / (bgSeconds + ggSeconds), differ.isEmpty ? "the same" : "DIFFER: " + differ.joined(separator: ", ")))
    }
}
