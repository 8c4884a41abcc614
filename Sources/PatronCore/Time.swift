import Foundation

/// A point in time: whole seconds since 1970-01-01T00:00:00Z. The core never reads the clock;
/// every `now` arrives as an argument.
public struct Timestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var seconds: Int64
    public init(seconds: Int64) { self.seconds = seconds }
    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.seconds < b.seconds }
    public func adding(seconds s: Int64) -> Timestamp { Timestamp(seconds: seconds + s) }
    public func adding(days: Int) -> Timestamp { Timestamp(seconds: seconds + Int64(days) * 86_400) }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            guard let t = Timestamp(iso8601: s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected an ISO 8601 date-time such as 2026-11-11T10:00:00Z or +08:00, got '\(s)'")
            }
            self = t
        } else {
            self.seconds = try c.decode(Int64.self)
        }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(iso8601)
    }

    /// ISO 8601 in UTC with a `Z`.
    public var iso8601: String {
        let days = Int64(floorDiv(seconds, 86_400))
        let rem = seconds - days * 86_400
        let d = CivilDate(dayNumber: days)
        var b = [UInt8](); b.reserveCapacity(20)
        func two(_ v: Int) { b.append(UInt8(48 + v / 10 % 10)); b.append(UInt8(48 + v % 10)) }
        if d.year >= 0 && d.year <= 9999 { two(d.year / 100); two(d.year % 100) } else { b.append(contentsOf: Array(String(d.year).utf8)) }
        b.append(45); two(d.month); b.append(45); two(d.day); b.append(84)
        two(Int(rem / 3600)); b.append(58); two(Int(rem % 3600 / 60)); b.append(58); two(Int(rem % 60)); b.append(90)
        return String(decoding: b, as: UTF8.self)
    }
    public var description: String { iso8601 }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` and `YYYY-MM-DD` (midnight UTC).
    public init?(iso8601 s: String) {
        let b = Array(s.utf8)
        func num(_ r: Range<Int>) -> Int? {
            guard r.upperBound <= b.count else { return nil }
            var v = 0
            for i in r { let c = b[i]; guard c >= 48 && c <= 57 else { return nil }; v = v * 10 + Int(c - 48) }
            return v
        }
        guard b.count >= 10, b[4] == 45, b[7] == 45,
              let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10),
              (1...12).contains(mo), d >= 1, d <= CivilDate.daysIn(year: y, month: mo) else { return nil }
        var secs = CivilDate(year: y, month: mo, day: d).dayNumber * 86_400
        if b.count == 10 { self.seconds = secs; return }
        guard b.count >= 20, b[10] == 84 || b[10] == 116 || b[10] == 32, b[13] == 58, b[16] == 58,
              let h = num(11..<13), let mi = num(14..<16), let se = num(17..<19), h < 24, mi < 60, se < 61 else { return nil }
        secs += Int64(h * 3600 + mi * 60 + min(se, 59))
        var i = 19
        if i < b.count, b[i] == 46 { i += 1; while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 } }
        guard i < b.count else { return nil }
        if b[i] == 90 || b[i] == 122 {
            guard i + 1 == b.count else { return nil }
        } else if b[i] == 43 || b[i] == 45 {
            guard b.count == i + 6, b[i + 3] == 58, let oh = num(i + 1..<i + 3), let om = num(i + 4..<i + 6), oh < 24, om < 60 else { return nil }
            let off = Int64(oh * 3600 + om * 60)
            secs += b[i] == 43 ? -off : off
        } else { return nil }
        self.seconds = secs
    }
}

@inline(__always) func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q
}

/// A date on the proleptic Gregorian calendar, with conversions to a day number
/// (days since 1970-01-01), after H. Hinnant's `days_from_civil`.
public struct CivilDate: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var year: Int, month: Int, day: Int
    public init(year: Int, month: Int, day: Int) { self.year = year; self.month = month; self.day = day }
    public static func < (a: CivilDate, b: CivilDate) -> Bool { a.dayNumber < b.dayNumber }

    public init(dayNumber z0: Int64) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        self.year = Int(yoe + era * 400 + (m <= 2 ? 1 : 0)); self.month = Int(m); self.day = Int(d)
    }
    public var dayNumber: Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let mp = Int64(month > 2 ? month - 3 : month + 9)
        let doy = (153 * mp + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
    public static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }
    public static func daysIn(year: Int, month: Int) -> Int {
        switch month { case 2: return isLeap(year) ? 29 : 28; case 4, 6, 9, 11: return 30; default: return 31 }
    }
    /// The month as the KPI aggregates key it: yyyymm.
    public var monthNumber: Int64 { Int64(year * 100 + month) }
    /// The first day of the month `months` after this date's month.
    public func firstOfMonth(addingMonths months: Int) -> CivilDate {
        let idx = year * 12 + (month - 1) + months
        return CivilDate(year: Int(floor(Double(idx) / 12)), month: ((idx % 12) + 12) % 12 + 1, day: 1)
    }
    public var description: String {
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : String(v) }
        let y = year >= 0 && year < 10000 ? String(String(year + 10000).dropFirst()) : String(year)
        return "\(y)-\(two(month))-\(two(day))"
    }
    public init?(string: String) {
        guard let t = Timestamp(iso8601: string), string.utf8.count == 10 else { return nil }
        self.init(dayNumber: t.seconds / 86_400)
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let d = CivilDate(string: s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected a date YYYY-MM-DD, got '\(s)'")
        }
        self = d
    }
    public func encode(to encoder: any Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(description) }
}

/// Local-time arithmetic in a program's time zone: day numbers, month and period starts.
/// Offsets come from Foundation's tz database; the arithmetic is integer.
public struct ProgramClock: Sendable {
    public let timeZone: TimeZone
    private let fixedOffset: Int64?
    public init(timeZone: TimeZone) {
        self.timeZone = timeZone
        // Zones without transitions in the last and next decades get a constant offset (fast path).
        let probe = [Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 1_600_000_000),
                     Date(timeIntervalSince1970: 1_790_000_000), Date(timeIntervalSince1970: 1_100_000_000)]
        let offs = Set(probe.map { timeZone.secondsFromGMT(for: $0) })
        let nextTransition = timeZone.nextDaylightSavingTimeTransition(after: Date(timeIntervalSince1970: 946_684_800))
        self.fixedOffset = (offs.count == 1 && nextTransition == nil) ? Int64(offs.first!) : nil
    }
    public func offset(at t: Timestamp) -> Int64 {
        if let f = fixedOffset { return f }
        return Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(t.seconds))))
    }
    /// The local day number (days since 1970-01-01 in this zone) that contains `t`.
    public func dayNumber(_ t: Timestamp) -> Int64 { floorDiv(t.seconds + offset(at: t), 86_400) }
    public func date(_ t: Timestamp) -> CivilDate { CivilDate(dayNumber: dayNumber(t)) }
    /// The instant local midnight starts `date`.
    public func startOfDay(_ date: CivilDate) -> Timestamp {
        let local = date.dayNumber * 86_400
        var guess = local - offset(at: Timestamp(seconds: local))
        guess = local - offset(at: Timestamp(seconds: guess))
        return Timestamp(seconds: guess)
    }
    public func startOfNextDay(_ t: Timestamp) -> Timestamp { startOfDay(CivilDate(dayNumber: dayNumber(t) + 1)) }
}

extension Duration {
    /// The duration in seconds, as a fraction (for measured run times).
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
