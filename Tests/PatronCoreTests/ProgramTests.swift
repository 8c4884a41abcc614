import Foundation
import Testing
@testable import PatronCore

@Suite struct ProgramParsingTests {
    @Test func parsesAValidProgram() throws {
        let p = try parseProgram(programJSON(assessment: #"{"kind": "rolling", "windowDays": 365, "downgrade": "oneTier", "graceDays": 30}"#,
                                             expiry: #"{"kind": "endOfPeriod", "period": "year", "months": 12}"#, pendingDays: 7,
                                             extraEarning: #", "multipliers": [{"id": "double11", "factor": 2, "from": "2026-11-01T00:00:00+08:00", "until": "2026-11-12T00:00:00+08:00"}], "caps": {"pointsPerOrder": 5000}"#))
        #expect(p.tiers.map(\.id) == ["basic", "silver", "gold", "diamond"])
        #expect(p.assessment == Assessment(kind: .rolling, windowDays: 365, period: nil, downgrade: .oneTier, graceDays: 30))
        #expect(p.earning.multipliers[0].factorPermille == 2000)
        #expect(p.earning.caps.pointsPerOrder == 5000)
        #expect(p.pendingDays == 7)
        #expect(p.tiers[1].name.zh == "白银")
    }

    struct BadCase: Sendable, CustomStringConvertible {
        var mutate: @Sendable (String) -> String
        var path: String
        var reasonContains: String
        var description: String { path }
    }

    static let badCases: [BadCase] = [
        .init(mutate: { $0.replacingOccurrences(of: #""threshold": 1000"#, with: #""threshold": -5"#) }, path: "tiers[1].threshold", reasonContains: "at least 0"),
        .init(mutate: { $0.replacingOccurrences(of: #""threshold": 5000"#, with: #""threshold": 900"#) }, path: "tiers[2].threshold", reasonContains: "greater than the previous"),
        .init(mutate: { $0.replacingOccurrences(of: #""threshold": 0}"#, with: #""threshold": 10}"#) }, path: "tiers[0].threshold", reasonContains: "must be 0"),
        .init(mutate: { $0.replacingOccurrences(of: #""id": "gold""#, with: #""id": "silver""#) }, path: "tiers[2].id", reasonContains: "used by an earlier tier"),
        .init(mutate: { $0.replacingOccurrences(of: "Asia/Shanghai", with: "Mars/Olympus") }, path: "timeZone", reasonContains: "not an IANA"),
        .init(mutate: { $0.replacingOccurrences(of: "Asia/Shanghai", with: "CST") }, path: "timeZone", reasonContains: "ambiguous"),
        .init(mutate: { $0.replacingOccurrences(of: #""activities": []"#, with: #""activities": [{"id": "noop", "limit": "once"}]"#) }, path: "activities[0]", reasonContains: "awards nothing"),
        .init(mutate: { $0.replacingOccurrences(of: #""expiry": {"kind": "none"}"#, with: #""expiry": {"kind": "endOfPeriod", "period": "month", "days": 30}"#) }, path: "expiry.days", reasonContains: "only applies"),
        .init(mutate: { $0.replacingOccurrences(of: #""currency": "CNY""#, with: #""currency": "yuan""#) }, path: "currency", reasonContains: "ISO 4217"),
        .init(mutate: { $0.replacingOccurrences(of: #"{"kind": "lifetime"}"#, with: #"{"kind": "rolling"}"#) }, path: "assessment.windowDays", reasonContains: "required"),
        .init(mutate: { $0.replacingOccurrences(of: #"{"kind": "lifetime"}"#, with: #"{"kind": "weekly"}"#) }, path: "assessment.kind", reasonContains: "one of"),
        .init(mutate: { $0.replacingOccurrences(of: #""perUnit": 1}, "growth""#, with: #""perUnit": "lots"}, "growth""#) }, path: "earning.points.perUnit", reasonContains: "number"),
        .init(mutate: { $0.replacingOccurrences(of: #""pendingDays": 0"#, with: #""pendingDays": 1.5"#) }, path: "pendingDays", reasonContains: "whole number"),
        .init(mutate: { $0.replacingOccurrences(of: #""refund""#, with: #""refnud""#) }, path: "refnud", reasonContains: "not a known field"),
        .init(mutate: { $0.replacingOccurrences(of: #""activities": []"#, with: #""activities": [{"id": "Check In", "points": 5}]"#) }, path: "activities[0].id", reasonContains: "lower-case"),
        .init(mutate: { $0.replacingOccurrences(of: #""activities": []"#, with: #""activities": [], "identityPriority": ["card", "fax"]"#) }, path: "identityPriority[1]", reasonContains: "one of"),
        .init(mutate: { $0.replacingOccurrences(of: #""activities": []"#, with: #""activities": [], "identityPriority": ["card", "card"]"#) }, path: "identityPriority[1]", reasonContains: "named twice"),
        .init(mutate: { $0.replacingOccurrences(of: #""activities": []"#, with: #""activities": [], "mergeUndoDays": -1"#) }, path: "mergeUndoDays", reasonContains: "at least 0"),
        .init(mutate: { $0.replacingOccurrences(of: #""activities": []"#, with: #""activities": [], "mergeOn": ["phone", "phone"]"#) }, path: "mergeOn[1]", reasonContains: "named twice"),
        .init(mutate: { $0.replacingOccurrences(of: #""activities": []"#, with: #""activities": [], "mergeOn": ["sms"]"#) }, path: "mergeOn[0]", reasonContains: "one of"),
        .init(mutate: { $0.replacingOccurrences(of: #""activities": []"#, with: #""activities": [], "lifecycle": {"silentDays": 200, "lostDays": 200}"#) }, path: "lifecycle.lostDays", reasonContains: "more than silentDays (200)"),
        .init(mutate: { $0.replacingOccurrences(of: #""activities": []"#, with: #""activities": [], "lifecycle": {"atRiskDays": 0}"#) }, path: "lifecycle.atRiskDays", reasonContains: "at least 1"),
        .init(mutate: { $0.replacingOccurrences(of: #""activities": []"#, with: #""activities": [], "lifecycle": {"dormantDays": 9}"#) }, path: "lifecycle.dormantDays", reasonContains: "not a known field"),
    ]

    @Test func identityPriorityPutsTheNamedKindsFirst() throws {
        #expect(try parseProgram(programJSON()).identityPriority == [.phone, .card, .app, .wechat, .email, .storeCustomer])
        let p = try parseProgram(programJSON().replacingOccurrences(of: #""activities": []"#, with: #""activities": [], "identityPriority": ["card", "email"]"#))
        #expect(p.identityPriority == [.card, .email, .phone, .app, .wechat, .storeCustomer])
        // Stored programs from before the field read with the default.
        let stored = try JSONEncoder().encode(p)
        var object = try JSONSerialization.jsonObject(with: stored) as! [String: Any]
        object["identityPriority"] = nil
        let old = try JSONDecoder().decode(ProgramDefinition.self, from: try JSONSerialization.data(withJSONObject: object))
        #expect(old.identityPriority == ProgramDefinition.defaultIdentityPriority)
        #expect(old.mergeOn.isEmpty && p.mergeOn.isEmpty)
        #expect(old.lifecycle == LifecycleThresholds() && p.lifecycle == LifecycleThresholds())
        let quick = try parseProgram(programJSON().replacingOccurrences(of: #""activities": []"#, with: #""activities": [], "lifecycle": {"atRiskDays": 30, "silentDays": 90}"#))
        #expect(quick.lifecycle == LifecycleThresholds(newDays: 30, atRiskDays: 30, silentDays: 90, lostDays: 365))
        let rule = try parseProgram(programJSON().replacingOccurrences(of: #""activities": []"#, with: #""activities": [], "mergeOn": ["phone", "wechat"]"#))
        #expect(rule.mergeOn == [.phone, .wechat])
        #expect(try JSONDecoder().decode(ProgramDefinition.self, from: try JSONEncoder().encode(rule)).mergeOn == [.phone, .wechat])
    }

    @Test(arguments: badCases)
    func rejectsWithPathAndReason(_ c: BadCase) throws {
        let json = c.mutate(programJSON())
        #expect(json != programJSON(), "the mutation must change the document")
        let doc = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        guard case .failure(let f) = ProgramParser.parse(doc) else { Issue.record("accepted an invalid program"); return }
        #expect(f.errors.contains { $0.path == c.path && $0.reason.contains(c.reasonContains) }, "\(f.errors)")
    }

    @Test func reportsEveryErrorAtOnce() throws {
        let doc = try JSONDecoder().decode(JSONValue.self, from: Data(#"{"key": "X", "tiers": [], "currency": 5}"#.utf8))
        guard case .failure(let f) = ProgramParser.parse(doc) else { Issue.record("accepted"); return }
        let paths = Set(f.errors.map(\.path))
        #expect(paths.isSuperset(of: ["key", "tiers", "currency", "name", "timeZone", "assessment", "earning"]))
    }
}

@Suite struct TimeTests {
    @Test(arguments: [
        ("2026-01-01T00:00:00+08:00", Int64(1_767_196_800)),
        ("2025-12-31T16:00:00Z", Int64(1_767_196_800)),
        ("2024-02-29T12:30:15.250-05:00", Int64(1_709_227_815)),
        ("1970-01-01", Int64(0)),
    ])
    func parsesISO8601(_ s: String, _ secs: Int64) { #expect(Timestamp(iso8601: s)?.seconds == secs) }

    @Test(arguments: ["2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01 00:00", "yesterday", "2026-01-01T00:00:00"])
    func rejectsBadDates(_ s: String) { #expect(Timestamp(iso8601: s) == nil) }

    @Test func civilDatesRoundTrip() {
        var rng = SeededRandom(seed: 7)
        for _ in 0..<2000 {
            let n = Int64.random(in: -100_000...100_000, using: &rng)
            #expect(CivilDate(dayNumber: n).dayNumber == n)
        }
        #expect(CivilDate(year: 2024, month: 2, day: 29).firstOfMonth(addingMonths: 12) == CivilDate(year: 2025, month: 2, day: 1))
        #expect(CivilDate(year: 2026, month: 1, day: 31).firstOfMonth(addingMonths: -1) == CivilDate(year: 2025, month: 12, day: 1))
    }

    @Test func localDaysFollowTheProgramZone() {
        let sh = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
        // 23:59:59 local on 12-31 is still 2025; one second later is 2026.
        #expect(sh.date(at("2025-12-31T23:59:59+08:00")) == CivilDate(year: 2025, month: 12, day: 31))
        #expect(sh.date(at("2026-01-01T00:00:00+08:00")) == CivilDate(year: 2026, month: 1, day: 1))
        #expect(sh.startOfDay(CivilDate(year: 2026, month: 1, day: 1)) == at("2026-01-01T00:00:00+08:00"))
        let ny = ProgramClock(timeZone: TimeZone(identifier: "America/New_York")!)
        // Daylight saving starts 2026-03-08 in New York: midnight is at -05:00 that day, -04:00 the next.
        #expect(ny.startOfDay(CivilDate(year: 2026, month: 3, day: 8)) == at("2026-03-08T00:00:00-05:00"))
        #expect(ny.startOfDay(CivilDate(year: 2026, month: 3, day: 9)) == at("2026-03-09T00:00:00-04:00"))
    }
}

@Suite struct FormattingTests {
    @Test func timestampsAndDatesFormatAndParseBack() {
        var rng = SeededRandom(seed: 3)
        for _ in 0..<2000 {
            let t = Timestamp(seconds: Int64.random(in: -2_000_000_000...4_000_000_000, using: &rng))
            #expect(Timestamp(iso8601: t.iso8601) == t, "\(t.iso8601)")
            let d = CivilDate(dayNumber: Int64.random(in: -200_000...200_000, using: &rng))
            if d.year >= 1000 && d.year <= 9999 { #expect(CivilDate(string: d.description) == d) }
        }
        #expect(Timestamp(iso8601: "2026-11-11T00:00:00+08:00")!.iso8601 == "2026-11-10T16:00:00Z")
        #expect(CivilDate(year: 987, month: 3, day: 9).description == "0987-03-09")
    }
}
