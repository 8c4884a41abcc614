import ArgumentParser
import Foundation
import PatronCore
import PatronServer

/// `patron analytics`: customer-base models on purchase logs: a file, or a program's orders.
struct Analytics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "analytics", abstract: "Customer-base analytics on purchase logs.", subcommands: [CLV.self])

    struct CLV: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "clv",
            abstract: "Fit BG/NBD, Pareto/NBD and Gamma-Gamma to a purchase log; write each member's P(alive), expected purchases and lifetime value as JSON.",
            discussion: """
            --format csv: a header naming member_id, date (YYYY-MM-DD) and amount (major units, at most 2 decimals, e.g. 12.34). \
            --format cdnow: CDNOW_master.txt (header, then customer_id date(YYYYMMDD) number_of_cds dollar_value) or the headerless \
            CDNOW_sample.txt (master_id sample_id date number_of_cds dollar_value). Purchases on one day count as one; the calibration \
            end day is included; members whose first purchase is later are left out. Members are listed in the order of their first \
            appearance in the file. clv = Σ_{week i=1..H} E[M] (E[X(i)] − E[X(i−1)]) / (1+d)^(i/52) with BG/NBD's E[X] and Gamma-Gamma's E[M].
            """)
        @Option(help: "The purchase log (or give --program to read a program's orders from the database).") var transactions: String?
        @Option(help: "Read this program's orders from the database instead of a file (one purchase per order, on its local date).") var program: String?
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The last day of the calibration period, YYYY-MM-DD (included); with --program, default yesterday in the program's time zone.") var calibrationEnd: String?
        @Option(help: "Weeks after the calibration end to predict and value.") var horizonWeeks: Int
        @Option(help: "Annual discount rate for the CLV, e.g. 0.1.") var discountRate: Double = 0
        @Option(help: "The log's layout: csv or cdnow.") var format = "csv"
        @Option(help: "Write the JSON here (default: standard output).") var output: String?

        func validate() throws {
            guard (transactions == nil) != (program == nil) else { throw ValidationError("give either --transactions FILE or --program KEY") }
            if program == nil, calibrationEnd == nil { throw ValidationError("--calibration-end is required with --transactions") }
            if let e = calibrationEnd, CivilDate(string: e) == nil { throw ValidationError("--calibration-end: '\(e)' is not a date YYYY-MM-DD") }
            guard horizonWeeks >= 0 else { throw ValidationError("--horizon-weeks must not be negative") }
            guard discountRate > -1, discountRate.isFinite else { throw ValidationError("--discount-rate must be above -1") }
            guard TransactionText.Format(rawValue: format) != nil else { throw ValidationError("--format: '\(format)' is not one of csv, cdnow") }
            if let output {
                var isFolder: ObjCBool = false
                let folder = URL(fileURLWithPath: output).deletingLastPathComponent().path
                guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else { throw ValidationError("--output: the folder \(folder) does not exist") }
            }
        }

        func run() async throws {
            let started = Date()
            let log: [Transaction]
            let source: String
            var calibration = calibrationEnd.flatMap { CivilDate(string: $0) }
            if let program {
                source = "program \(program)"
                let store = try await db.open()
                do {
                    log = try await store.purchaseLog(program: program)
                    if calibration == nil { calibration = CivilDate(dayNumber: try await store.program(program).latest.clock.dayNumber(now()) - 1) }
                    try await store.close()
                } catch { try? await store.close(); throw fail("\(source): \(error)", code: 2) }
            } else {
                let transactions = transactions!
                source = transactions
                guard let data = FileManager.default.contents(atPath: transactions) else { throw fail("\(transactions): cannot read the file", code: 2) }
                do { log = try TransactionText.parse(String(decoding: data, as: UTF8.self), format: TransactionText.Format(rawValue: format)!) } catch {
                    throw fail("\(transactions): \(error)", code: 2)
                }
            }
            let end = calibration!
            let transactions = source
            let summaries = PurchaseSummary.summaries(of: log, calibrationEnd: end)
            let later = Set(log.map(\.memberId)).count - summaries.count
            let report: CustomerBaseReport
            do { report = try CustomerValue.analyze(summaries, horizonWeeks: horizonWeeks, discountRate: discountRate) } catch {
                throw fail("\(transactions): \(error == .noCustomers ? "no purchases on or before \(end)" : error.description)", code: 1)
            }
            let (bg, pn, gg) = (report.bgnbd, report.paretoNBD, report.gammaGamma)
            let out = Output(calibrationEnd: end.description, horizonWeeks: horizonWeeks, discountRate: discountRate,
                             models: .init(bgnbd: .init(r: bg.model.r, alpha: bg.model.alpha, a: bg.model.a, b: bg.model.b, logLikelihood: bg.logLikelihood),
                                           paretoNbd: .init(r: pn.model.r, alpha: pn.model.alpha, s: pn.model.s, beta: pn.model.beta, logLikelihood: pn.logLikelihood),
                                           gammaGamma: .init(p: gg.model.p, q: gg.model.q, gamma: gg.model.gamma, logLikelihood: gg.logLikelihood)),
                             members: report.members)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            let json = try encoder.encode(out) + Data("\n".utf8)
            if let output {
                do { try json.write(to: URL(fileURLWithPath: output)) } catch { throw fail("\(output): cannot write: \(error.localizedDescription)", code: 1) }
            } else {
                FileHandle.standardOutput.write(json)
            }
            let note = String(format: "%d members (%d repeat buyers)%@; BG/NBD LL %.1f, Pareto/NBD LL %.1f, Gamma-Gamma LL %.1f; %.1f s",
                              summaries.count, summaries.filter { $0.frequency > 0 }.count,
                              later > 0 ? ", \(later) left out (first purchase after \(end))" : "",
                              bg.logLikelihood, pn.logLikelihood, gg.logLikelihood, Date().timeIntervalSince(started))
            FileHandle.standardError.write(Data("analytics clv: \(note)\(output.map { "; wrote \($0)" } ?? "")\n".utf8))
        }

        private func fail(_ message: String, code: Int32) -> ExitCode {
            FileHandle.standardError.write(Data("analytics clv: \(message)\n".utf8))
            return ExitCode(code)
        }
    }

    struct Output: Encodable {
        struct Models: Encodable { var bgnbd: BGNBDParameters, paretoNbd: ParetoNBDParameters, gammaGamma: GammaGammaParameters }
        struct BGNBDParameters: Encodable { var r, alpha, a, b, logLikelihood: Double }
        struct ParetoNBDParameters: Encodable { var r, alpha, s, beta, logLikelihood: Double }
        struct GammaGammaParameters: Encodable { var p, q, gamma, logLikelihood: Double }
        var calibrationEnd: String
        var horizonWeeks: Int
        var discountRate: Double
        var models: Models
        var members: [MemberValue]
    }
}
