import Foundation
import PatronCore
import PatronStore

/// Reads orders from CSV: a header row naming the columns, then one row per order line.
/// Columns: order_id, member, occurred_at, sku, category, quantity, amount_minor, discount_minor,
/// channel, store. `member` is `kind:value` (phone:13800000000, card:C001, …), several of them
/// separated by `|` (the program's `identityPriority` picks the one that finds the member), or
/// `id:<member id>`.
/// Rows with the same order_id are the lines of one order.
public enum OrderCSV {
    public static let required = ["order_id", "member", "occurred_at", "sku", "amount_minor"]

    public struct Parsed: Sendable {
        public var orders: [ImportOrder]
        public var rejected: [ImportReport.Rejected]
    }

    public static func parse(_ text: String, currency: String? = nil) -> Parsed {
        var orders: [ImportOrder] = []
        var index: [String: Int] = [:]
        var rejected: [ImportReport.Rejected] = []
        var header: [String: Int] = [:]
        var lineNo = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNo += 1
            let line = String(raw)
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let fields = split(line)
            if header.isEmpty {
                for (i, f) in fields.enumerated() { header[f.trimmingCharacters(in: .whitespaces).lowercased()] = i }
                let missing = required.filter { header[$0] == nil }
                if !missing.isEmpty {
                    return Parsed(orders: [], rejected: [.init(line: lineNo, reason: "the header lacks column(s) \(missing.joined(separator: ", ")); expected \(required.joined(separator: ","))[,category,quantity,discount_minor,channel,store]")])
                }
                continue
            }
            func col(_ n: String) -> String? {
                guard let i = header[n], i < fields.count else { return nil }
                let v = fields[i].trimmingCharacters(in: .whitespaces)
                return v.isEmpty ? nil : v
            }
            var problems: [String] = []
            let orderId = col("order_id") ?? { problems.append("order_id is empty"); return "" }()
            let who: ImportOrder.Who? = {
                guard let m = col("member") else { problems.append("member is empty"); return nil }
                // One identity, or several separated by '|' (phone:138…|card:C001): the program's
                // identityPriority decides which finds the member.
                var found: [Identity] = []
                for one in m.split(separator: "|").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                    let parts = one.split(separator: ":", maxSplits: 1).map(String.init)
                    guard parts.count == 2 else { problems.append("member '\(one)' must be kind:value, e.g. phone:13800000000 or id:123"); return nil }
                    if parts[0] == "id" {
                        guard m.split(separator: "|").count == 1 else { problems.append("member: id:<member id> cannot be combined with identities"); return nil }
                        guard let v = Int64(parts[1]) else { problems.append("member id '\(parts[1])' is not a number"); return nil }
                        return .member(MemberID(v))
                    }
                    guard let kind = IdentityKind(rawValue: parts[0]) else { problems.append("member kind '\(parts[0])' is not one of id, \(IdentityKind.allCases.map(\.rawValue).joined(separator: ", "))"); return nil }
                    found.append(Identity(kind: kind, value: parts[1]).normalized)
                }
                return found.count == 1 ? .identity(found[0]) : .identities(found)
            }()
            let at: Timestamp? = {
                guard let s = col("occurred_at") else { problems.append("occurred_at is empty"); return nil }
                guard let t = Timestamp(iso8601: s) else { problems.append("occurred_at '\(s)' is not an ISO 8601 date-time"); return nil }
                return t
            }()
            func int(_ n: String, default d: Int64?) -> Int64? {
                guard let s = col(n) else { if d == nil { problems.append("\(n) is empty") }; return d }
                guard let v = Int64(s) else { problems.append("\(n) '\(s)' is not a whole number"); return nil }
                return v
            }
            let sku = col("sku") ?? { problems.append("sku is empty"); return "" }()
            let qty = int("quantity", default: 1), amount = int("amount_minor", default: nil), discount = int("discount_minor", default: 0)
            guard problems.isEmpty, let who, let at, let qty, let amount, let discount else {
                rejected.append(.init(line: lineNo, reason: problems.joined(separator: "; ")))
                continue
            }
            let orderLine = OrderLine(sku: sku, category: col("category"), quantity: qty, amountMinor: amount, discountMinor: discount)
            if let i = index[orderId] {
                guard orders[i].who == who, orders[i].occurredAt == at else {
                    rejected.append(.init(line: lineNo, reason: "order \(orderId) continues with another member or time than its line \(orders[i].line)"))
                    continue
                }
                orders[i].order.lines.append(orderLine)
            } else {
                index[orderId] = orders.count
                orders.append(ImportOrder(line: lineNo, who: who, occurredAt: at,
                                          order: OrderPaid(orderId: orderId, currency: currency, lines: [orderLine], channel: col("channel"), store: col("store"))))
            }
        }
        return Parsed(orders: orders, rejected: rejected)
    }

    /// Splits one CSV line, honouring double quotes.
    static func split(_ line: String) -> [String] {
        var out: [String] = [], cur = "", quoted = false
        var it = line.makeIterator()
        while let c = it.next() {
            if quoted {
                if c == "\"" {
                    if let n = it.next() { if n == "\"" { cur.append("\"") } else { quoted = false; if n == "," { out.append(cur); cur = "" } else { cur.append(n) } } }
                    else { quoted = false }
                } else { cur.append(c) }
            } else if c == "\"" { quoted = true }
            else if c == "," { out.append(cur); cur = "" }
            else { cur.append(c) }
        }
        out.append(cur)
        return out
    }
}
