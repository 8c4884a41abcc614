import Foundation

/// A small JSON writer for the few documents written on every event (the stored event payload
/// and outcome), where Foundation's encoder was a large share of the cost. Output is ordinary
/// JSON that `JSONDecoder` reads back into the same types (tested).
public struct JSONText {
    public private(set) var text = ""
    private var needsComma: [Bool] = []
    public init() { text.reserveCapacity(256) }

    private var valueFollows = false
    private mutating func separate() {
        if valueFollows { valueFollows = false; return }
        if let last = needsComma.last { if last { text += "," } else { needsComma[needsComma.count - 1] = true } }
    }
    public mutating func open() { separate(); text += "{"; needsComma.append(false) }
    public mutating func close() { text += "}"; needsComma.removeLast() }
    public mutating func openArray(_ key: String) { keyOnly(key); text += "["; needsComma.append(false) }
    public mutating func closeArray() { text += "]"; needsComma.removeLast() }
    mutating func keyOnly(_ k: String) { separate(); Self.quote(k, into: &text); text += ":"; }
    /// A key whose value the caller writes next with `open()` (an object written by its own
    /// `write(into:)`).
    public mutating func keyOnlyPublic(_ k: String) { keyOnly(k); valueFollows = true }
    public mutating func key(_ k: String, _ v: String?) { guard let v else { return }; keyOnly(k); Self.quote(v, into: &text) }
    public mutating func key(_ k: String, _ v: Int64?) { guard let v else { return }; keyOnly(k); text += String(v) }
    public mutating func key(_ k: String, _ v: Bool) { keyOnly(k); text += v ? "true" : "false" }
    public mutating func value(_ v: String) { separate(); Self.quote(v, into: &text) }
    public mutating func objectKey(_ k: String) { keyOnly(k); text += "{"; needsComma.append(false) }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        var plain = true
        for b in s.utf8 where b < 0x20 || b == 0x22 || b == 0x5C { plain = false; break }
        if plain { out += s } else {
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default:
                    if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
                }
            }
        }
        out += "\""
    }
}

extension OrderPaid {
    /// The stored form of the order (see `JSONText`).
    public var jsonText: String {
        var w = JSONText()
        w.open()
        w.key("channel", channel); w.key("currency", currency); w.key("discountMinor", discountMinor)
        w.openArray("lines")
        for l in lines {
            w.open()
            w.key("amountMinor", l.amountMinor); w.key("category", l.category); w.key("discountMinor", l.discountMinor)
            w.key("quantity", l.quantity); w.key("sku", l.sku)
            w.close()
        }
        w.closeArray()
        w.key("orderId", orderId); w.key("store", store)
        w.close()
        return w.text
    }
}

extension EventOutcome {
    public var jsonText: String {
        var w = JSONText()
        write(into: &w)
        return w.text
    }
    public func write(into w: inout JSONText) {
        w.open()
        w.key("discountMinor", discountMinor)
        if let grants { w.openArray("grants"); for g in grants { w.value(g) }; w.closeArray() }
        w.key("growthClawedBack", growthClawedBack); w.key("growthEarned", growthEarned); w.key("note", note)
        w.key("pointsClawedBack", pointsClawedBack); w.key("pointsEarned", pointsEarned); w.key("pointsSpent", pointsSpent)
        w.key("refundedMinor", refundedMinor)
        w.key("status", status.rawValue); w.key("tierAfter", tierAfter); w.key("tierBefore", tierBefore)
        w.close()
    }
}

extension MemberStanding {
    /// The standing as JSON, as `JSONEncoder` with sorted keys writes it (it is in every event's
    /// answer; the encoder was a tenth of a request's CPU).
    public func write(into w: inout JSONText) {
        func tier(_ k: String, _ t: TierInfo) {
            w.objectKey(k)
            w.key("id", t.id)
            w.objectKey("name"); w.key("en", t.name.en); w.key("zh-CN", t.name.zh); w.close()
            w.key("threshold", t.threshold)
            w.close()
        }
        w.open()
        w.key("asOf", asOf.iso8601); w.key("available", available); w.key("balance", balance); w.key("debt", debt)
        w.key("inGrace", inGrace); w.key("keepingGrowth", keepingGrowth); w.key("lifetimeGrowth", lifetimeGrowth)
        w.key("missingToKeep", missingToKeep); w.key("missingToNext", missingToNext); w.key("nextAssessmentAt", nextAssessmentAt?.iso8601)
        if let nextTier { tier("nextTier", nextTier) }
        w.key("orderCount", Int64(orderCount)); w.key("pending", pending); w.key("qualifyingGrowth", qualifyingGrowth); w.key("recordedDebt", recordedDebt)
        w.key("spentMinor", spentMinor)
        tier("tier", self.tier)
        w.key("tierSince", tierSince.iso8601)
        w.openArray("upcomingExpiries")
        for e in upcomingExpiries { w.open(); w.key("at", e.at.iso8601); w.key("lastDay", e.lastDay.description); w.key("points", e.points); w.close() }
        w.closeArray()
        if let f = upgradeForecast {
            w.objectKey("upgradeForecast")
            w.key("basis", f.basis); w.key("date", f.date?.description); w.key("missing", f.missing); w.key("nextTier", f.nextTier)
            w.key("outcome", f.outcome.rawValue); w.key("pacePerDayMilli", f.pacePerDayMilli)
            w.close()
        }
        w.close()
    }
}

extension EventBody {
    /// The stored payload as text: hand-written for orders (the bulk of events), Foundation's
    /// encoder for the rest.
    public var payloadText: String {
        if case .orderPaid(let o) = self { return o.jsonText }
        return String(decoding: payloadJSON(), as: UTF8.self)
    }
}
