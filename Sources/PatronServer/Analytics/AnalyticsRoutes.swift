import Foundation
import Hummingbird
import PatronCore
import PatronStore

/// Reports that measure the loop (issue #5) and the member portrait (#4).
extension API {
    func portrait(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.portrait(program: key.program, member: try memberId(ctx), now: now()))
    }

    func rfmReport(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.rfmReport(program: key.program))
    }

    func computeRFM(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        try await store.computeRFM(program: key.program, asOf: now())
        return json(try await store.rfmReport(program: key.program), status: .created)
    }

    func churnReport(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.churnReport(program: key.program))
    }

    func computeChurn(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        json(try await store.computeChurn(program: key.program, asOf: now()), status: .created)
    }
}

extension API {
    // MARK: KPIs and cohorts

    func day(_ req: Request, _ name: String, _ fallback: CivilDate) throws -> CivilDate {
        guard let s = req.uri.queryParameters.get(name) else { return fallback }
        guard let d = CivilDate(string: s) else { throw Problem.invalid([FieldError(path: name, reason: "must be a date YYYY-MM-DD, got '\(s)'")]) }
        return d
    }

    func kpis(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let clock = try await store.program(key.program).at(now()).clock
        let today = clock.date(now())
        let until = try day(req, "until", CivilDate(dayNumber: today.dayNumber + 1))
        let from = try day(req, "from", CivilDate(dayNumber: until.dayNumber - 30))
        guard from < until else { throw Problem.invalid([FieldError(path: "from", reason: "must be before until")]) }
        return json(try await store.kpis(program: key.program, from: from, until: until, split: try queryEnum(req, "split", KPISplit.self), now: now()))
    }

    func cohorts(_ req: Request, _ ctx: PatronContext, _ key: APIKey) async throws -> Response {
        let today = try await store.program(key.program).at(now()).clock.date(now())
        let until = try day(req, "until", today.firstOfMonth(addingMonths: 1))
        let from = try day(req, "from", until.firstOfMonth(addingMonths: -12))
        var months = 12
        if let m = req.uri.queryParameters.get("months") {
            guard let v = Int(m), v >= 0, v <= 60 else { throw Problem.invalid([FieldError(path: "months", reason: "must be a whole number from 0 to 60, got '\(m)'")]) }
            months = v
        }
        guard from < until else { throw Problem.invalid([FieldError(path: "from", reason: "must be before until")]) }
        return json(try await store.cohorts(program: key.program, from: from, until: until, months: months))
    }
}
