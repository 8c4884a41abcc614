import Foundation

/// Reads purchase logs for the customer-base models. Amounts are parsed as decimals straight into minor
/// units (2 decimals), never through floating point.
public enum TransactionText {
    public enum Format: String, Sendable, CaseIterable {
        /// A header row naming `member_id`, `date` (YYYY-MM-DD) and `amount` (major units, e.g. 12.34),
        /// in any order among other columns; fields may be double-quoted.
        case csv
        /// CDNOW's whitespace-separated layout: `customer_id date(YYYYMMDD) number_of_cds dollar_value`
        /// (CDNOW_master.txt, after a header row), or `master_id sample_id date number_of_cds dollar_value`
        /// (CDNOW_sample.txt, whose second column is the member id).
        case cdnow
    }

    /// A line that could not be read: its number (from 1), the field and what is wrong.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var line: Int, field: String, reason: String
        public var description: String { "line \(line): \(field): \(reason)" }
    }

    public static func parse(_ text: String, format: Format) throws(ParseError) -> [Transaction] {
        var out: [Transaction] = []
        var columns: (id: Int, date: Int, amount: Int)? = nil  // of the CSV header
        var firstRow = true
        let text = text.hasPrefix("\u{FEFF}") ? text.dropFirst() : Substring(text)  // a byte-order mark
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = i + 1
            if raw.allSatisfy(\.isWhitespace) { continue }
            defer { firstRow = false }
            switch format {
            case .csv:
                let fields = csvFields(raw).map { $0.trimmingCharacters(in: .whitespaces) }
                guard let c = columns else {
                    let names = fields.map { $0.lowercased() }
                    let missing = ["member_id", "date", "amount"].filter { !names.contains($0) }
                    guard missing.isEmpty else { throw ParseError(line: line, field: "header", reason: "lacks column(s) \(missing.joined(separator: ", ")); expected member_id,date,amount") }
                    columns = (names.firstIndex(of: "member_id")!, names.firstIndex(of: "date")!, names.firstIndex(of: "amount")!)
                    continue
                }
                let needed = max(c.id, c.date, c.amount) + 1
                guard fields.count >= needed else { throw ParseError(line: line, field: "row", reason: "has \(fields.count) fields; the header needs \(needed)") }
                guard !fields[c.id].isEmpty else { throw ParseError(line: line, field: "member_id", reason: "is empty") }
                guard let day = CivilDate(string: fields[c.date]) else { throw ParseError(line: line, field: "date", reason: "'\(fields[c.date])' is not a date YYYY-MM-DD") }
                out.append(Transaction(memberId: fields[c.id], day: day, amountMinor: try amount(fields[c.amount], line: line, field: "amount")))
            case .cdnow:
                let fields = raw.split(whereSeparator: \.isWhitespace)
                if firstRow, !fields[0].allSatisfy({ $0.isASCII && $0.isNumber }) { continue }  // the header row
                guard fields.count == 4 || fields.count == 5 else {
                    throw ParseError(line: line, field: "row", reason: "has \(fields.count) columns; expected customer_id date number_of_cds dollar_value, or master_id sample_id date number_of_cds dollar_value")
                }
                let k = fields.count - 4
                let d = fields[k + 1]
                guard d.count == 8, d.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(d),
                      (1...12).contains(v / 100 % 100), (1...CivilDate.daysIn(year: v / 10000, month: v / 100 % 100)).contains(v % 100) else {
                    throw ParseError(line: line, field: "date", reason: "'\(d)' is not a date YYYYMMDD")
                }
                out.append(Transaction(memberId: String(fields[k]), day: CivilDate(year: v / 10000, month: v / 100 % 100, day: v % 100),
                                       amountMinor: try amount(String(fields[k + 3]), line: line, field: "dollar_value")))
            }
        }
        return out
    }

    /// `12.34` → 1234: an optional minus sign, digits, and at most two decimals.
    public static func minorUnits(_ s: String) -> Int64? {
        var digits = Substring(s)
        let negative = digits.first == "-"
        if negative { digits = digits.dropFirst() }
        let parts = digits.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0], fraction = parts.count > 1 ? parts[1] : ""
        guard whole.count + fraction.count > 0, fraction.count <= 2, parts.count == 1 || !fraction.isEmpty,
              (whole + fraction).allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        var v: Int64 = 0
        for c in whole + fraction + String(repeating: "0", count: 2 - fraction.count) {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(c.wholeNumberValue!))
            guard !o1, !o2 else { return nil }
            v = a
        }
        return negative ? -v : v
    }

    private static func amount(_ s: String, line: Int, field: String) throws(ParseError) -> Int64 {
        guard let v = minorUnits(s) else { throw ParseError(line: line, field: field, reason: "'\(s)' is not an amount with at most 2 decimals, like 12.34") }
        return v
    }

    /// The fields of a CSV line; a field in double quotes may hold commas and "" for a quote.
    private static func csvFields(_ line: Substring) -> [String] {
        var fields: [String] = [], field = "", quoted = false, previous: Character? = nil
        for c in line {
            if c == "\"" {
                if !quoted, previous == "\"" { field.append(c) }  // "" inside quotes: the quote just closed was an escape
                quoted.toggle()
            } else if c == ",", !quoted {
                fields.append(field); field = ""
            } else {
                field.append(c)
            }
            previous = c
        }
        fields.append(field)
        return fields
    }
}
