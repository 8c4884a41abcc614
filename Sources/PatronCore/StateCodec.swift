import Foundation

/// A compact binary form of `MemberState` for storage: the snapshot is read and written on every
/// event, and JSON coding of it was most of the cost of a write. Varints, length-prefixed
/// strings, a leading format byte. `decode(encode(s)) == s` (tested on generated states).
public enum StateCodec {
    /// 2 adds the benefit wallet; states in format 1 read as having an empty wallet. 3 adds
    /// `tagsEvaluatedVersion` (nil in older states). 4 adds the scores (nil in older states).
    /// 5 adds what each order line paid and what of it was refunded (estimated for older
    /// records: `OrderRecord.estimateLinePaid`).
    static let format: UInt8 = 5

    public enum Failure: Error, Equatable { case truncated, badFormat(UInt8), badValue(String) }

    /// One order's record, for the orders table.
    public static func encode(order o: OrderRecord) -> [UInt8] {
        var w = ByteWriter()
        w.u8(format)
        w.order(o)
        return w.bytes
    }
    public static func decodeOrder(_ bytes: [UInt8]) throws -> OrderRecord {
        var r = ByteReader(bytes: bytes)
        let f = try r.u8()
        guard (1...format).contains(f) else { throw Failure.badFormat(f) }
        r.format = f
        let o = try r.order()
        guard r.atEnd else { throw Failure.badValue("trailing bytes") }
        return o
    }

    public static func encode(_ s: MemberState) -> [UInt8] {
        var w = ByteWriter()
        w.bytes.reserveCapacity(64 + s.lots.count * 24 + s.orders.count * 48 + s.window.count * 8)
        w.u8(format)
        w.int(s.memberId.rawValue); w.time(s.registeredAt)
        w.int(Int64(s.lots.count))
        for l in s.lots {
            w.int(Int64(l.no)); w.int(l.eventId.rawValue); w.u8(l.source == .purchase ? 0 : l.source == .activity ? 1 : 2); w.optString(l.orderId)
            w.time(l.earnedAt); w.time(l.availableAt); w.optTime(l.expiresAt); w.int(l.original); w.int(l.remaining)
        }
        w.int(s.debt); w.int(s.recordedDebt)
        w.tier(s.tier)
        w.int(s.growthTotal)
        w.int(Int64(s.window.count))
        for g in s.window { w.time(g.countsAt); w.int(g.growth) }
        // Order records live in the orders table (see `encode(order:)`), not in the snapshot.
        w.int(0)
        w.int(Int64(s.deferredRefunds.count))
        for (id, list) in s.deferredRefunds.sorted(by: { $0.key < $1.key }) {
            w.string(id); w.int(Int64(list.count))
            for d in list {
                w.int(d.eventId.rawValue); w.time(d.at)
                if let lines = d.lines { w.u8(1); w.int(Int64(lines.count)); for l in lines { w.int(Int64(l.line)); w.optInt(l.quantity) } } else { w.u8(0) }
            }
        }
        w.int(Int64(s.activities.count))
        for (id, a) in s.activities.sorted(by: { $0.key < $1.key }) { w.string(id); w.int(Int64(a.count)); w.int(a.lastDay) }
        w.int(s.dayNumber); w.int(s.dayPoints); w.int(s.dayGrowth)
        w.int(Int64(s.orderCount)); w.int(s.spentMinor); w.time(s.asOf); w.optTime(s.lastEventAt)
        w.int(Int64(s.nextEntryNo)); w.int(Int64(s.nextLotNo)); w.int(Int64(s.nextGrowthNo)); w.int(Int64(s.nextTierChangeNo))
        w.wallet(s.wallet)
        if let p = s.profile {
            w.u8(1)
            w.optString(p.name); w.optString(p.gender?.rawValue); w.optInt(p.birthday?.dayNumber); w.optString(p.city)
            w.optString(p.registeredChannel); w.optString(p.registeredStore); w.optInt(p.marketingConsent.map { $0 ? 1 : 0 })
        } else { w.u8(0) }
        w.int(Int64(s.tags.count))
        for (id, m) in s.tags.sorted(by: { $0.key < $1.key }) { w.string(id); w.time(m.since); w.u8(m.manual ? 1 : 0); w.optString(m.by) }
        w.int(Int64(s.orderFacts.count))
        for o in s.orderFacts {
            w.string(o.orderId); w.time(o.at); w.int(o.amountMinor)
            w.int(Int64(o.categories.count)); for c in o.categories { w.string(c) }
            w.int(Int64(o.skus.count)); for k in o.skus { w.string(k) }
            w.optString(o.channel); w.optString(o.store); w.u8(o.usedCoupon ? 1 : 0)
        }
        w.int(Int64(s.tagDue.count))
        for (id, t) in s.tagDue.sorted(by: { $0.key < $1.key }) { w.string(id); w.time(t) }
        w.optTime(s.tagsDueAt); w.int(Int64(s.nextTagChangeNo)); w.optTime(s.lastOrderAt)
        w.int(Int64(s.exchanges.count))
        for x in s.exchanges {
            w.int(x.eventId.rawValue); w.time(x.at); w.string(x.item); w.string(x.kind.rawValue); w.int(Int64(x.quantity)); w.int(x.points); w.int(x.moneyMinor)
            w.int(Int64(x.grants.count)); for g in x.grants { w.string(g) }
            w.optString(x.address); w.optTime(x.cancelledAt)
        }
        w.optInt(s.tagsEvaluatedVersion.map { Int64($0) })
        if let sc = s.scores {
            w.u8(1)
            for v in [sc.r, sc.f, sc.m, sc.topPercent, sc.pAlivePermille] { w.optInt(v.map { Int64($0) }) }
            w.optString(sc.lifecycle?.rawValue)
            w.u8(sc.atRisk.map { $0 ? 2 : 1 } ?? 0)
            w.optInt(sc.expectedPurchasesMilli); w.optInt(sc.expectedValueMinor); w.optInt(sc.clvMinor)
        } else {
            w.u8(0)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws -> MemberState {
        var r = ByteReader(bytes: bytes)
        let f = try r.u8()
        guard (1...format).contains(f) else { throw Failure.badFormat(f) }
        r.format = f
        let member = MemberID(try r.int()), registered = try r.time()
        var s = MemberState(memberId: member, registeredAt: registered, baseTier: "")
        let lots = try r.count()
        s.lots.reserveCapacity(lots)
        for _ in 0..<lots {
            let no = Int(try r.int()), ev = EventID(try r.int())
            let src: LotSource = switch try r.u8() { case 0: .purchase; case 1: .activity; default: .adjustment }
            s.lots.append(Lot(no: no, eventId: ev, source: src, orderId: try r.optString(), earnedAt: try r.time(), availableAt: try r.time(),
                              expiresAt: try r.optTime(), original: try r.int(), remaining: try r.int()))
        }
        s.debt = try r.int(); s.recordedDebt = try r.int()
        s.tier = try r.tier()
        s.growthTotal = try r.int()
        let window = try r.count()
        s.window.reserveCapacity(window)
        for _ in 0..<window { s.window.append(WindowGrowth(countsAt: try r.time(), growth: try r.int())) }
        for _ in 0..<(try r.count()) {
            let id = try r.string()
            s.orders[id] = try r.order()
        }
        for _ in 0..<(try r.count()) {
            let id = try r.string()
            var list: [DeferredRefund] = []
            for _ in 0..<(try r.count()) {
                let ev = EventID(try r.int()), at = try r.time()
                var lines: [RefundLine]? = nil
                if try r.u8() == 1 { lines = []; for _ in 0..<(try r.count()) { lines!.append(RefundLine(line: Int(try r.int()), quantity: try r.optInt())) } }
                list.append(DeferredRefund(eventId: ev, at: at, lines: lines))
            }
            s.deferredRefunds[id] = list
        }
        for _ in 0..<(try r.count()) { s.activities[try r.string()] = ActivityMark(count: Int(try r.int()), lastDay: try r.int()) }
        s.dayNumber = try r.int(); s.dayPoints = try r.int(); s.dayGrowth = try r.int()
        s.orderCount = Int(try r.int()); s.spentMinor = try r.int(); s.asOf = try r.time(); s.lastEventAt = try r.optTime()
        s.nextEntryNo = Int(try r.int()); s.nextLotNo = Int(try r.int()); s.nextGrowthNo = Int(try r.int()); s.nextTierChangeNo = Int(try r.int())
        if f >= 2 {
            s.wallet = try r.wallet()
            if try r.u8() == 1 {
                let name = try r.optString(), gender = try r.optString()
                s.profile = MemberProfile(name: name, gender: try gender.map { g in guard let v = Gender(rawValue: g) else { throw Failure.badValue("gender") }; return v },
                                          birthday: try r.optInt().map { CivilDate(dayNumber: $0) }, city: try r.optString(),
                                          registeredChannel: try r.optString(), registeredStore: try r.optString(), marketingConsent: try r.optInt().map { $0 == 1 })
            }
            for _ in 0..<(try r.count()) {
                let id = try r.string()
                s.tags[id] = TagMark(since: try r.time(), manual: try r.u8() == 1, by: try r.optString())
            }
            for _ in 0..<(try r.count()) {
                let id = try r.string(), at = try r.time(), amount = try r.int()
                var cats: [String] = [], skus: [String] = []
                for _ in 0..<(try r.count()) { cats.append(try r.string()) }
                for _ in 0..<(try r.count()) { skus.append(try r.string()) }
                s.orderFacts.append(OrderFact(orderId: id, at: at, amountMinor: amount, categories: cats, skus: skus, channel: try r.optString(),
                                              store: try r.optString(), usedCoupon: try r.u8() == 1))
            }
            for _ in 0..<(try r.count()) { let id = try r.string(); s.tagDue[id] = try r.time() }
            s.tagsDueAt = try r.optTime(); s.nextTagChangeNo = Int(try r.int()); s.lastOrderAt = try r.optTime()
            for _ in 0..<(try r.count()) {
                let ev = EventID(try r.int()), at = try r.time(), item = try r.string()
                guard let kind = MallItemKind(rawValue: try r.string()) else { throw Failure.badValue("mall item kind") }
                let q = Int(try r.int()), pts = try r.int(), money = try r.int()
                var grants: [String] = []
                for _ in 0..<(try r.count()) { grants.append(try r.string()) }
                s.exchanges.append(MallExchange(eventId: ev, at: at, item: item, kind: kind, quantity: q, points: pts, moneyMinor: money, grants: grants,
                                                address: try r.optString(), cancelledAt: try r.optTime()))
            }
        }
        if f >= 3 { s.tagsEvaluatedVersion = try r.optInt().map { Int($0) } }
        if f >= 4, try r.u8() == 1 {
            var sc = MemberScores()
            sc.r = try r.optInt().map { Int($0) }; sc.f = try r.optInt().map { Int($0) }; sc.m = try r.optInt().map { Int($0) }
            sc.topPercent = try r.optInt().map { Int($0) }; sc.pAlivePermille = try r.optInt().map { Int($0) }
            if let l = try r.optString() {
                guard let stage = LifecycleStage(rawValue: l) else { throw Failure.badValue("lifecycle stage") }
                sc.lifecycle = stage
            }
            switch try r.u8() {
            case 0: sc.atRisk = nil
            case 1: sc.atRisk = false
            case 2: sc.atRisk = true
            default: throw Failure.badValue("at-risk flag")
            }
            sc.expectedPurchasesMilli = try r.optInt(); sc.expectedValueMinor = try r.optInt(); sc.clvMinor = try r.optInt()
            s.scores = sc
        }
        guard r.atEnd else { throw Failure.badValue("trailing bytes") }
        return s
    }
}

struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    /// Zig-zag varint: small magnitudes, positive or negative, take few bytes.
    mutating func int(_ v: Int64) {
        var z = UInt64(bitPattern: (v << 1) ^ (v >> 63))
        while z >= 0x80 { bytes.append(UInt8(z & 0x7F) | 0x80); z >>= 7 }
        bytes.append(UInt8(z))
    }
    mutating func time(_ t: Timestamp) { int(t.seconds) }
    mutating func optInt(_ v: Int64?) { if let v { u8(1); int(v) } else { u8(0) } }
    mutating func optTime(_ t: Timestamp?) { optInt(t?.seconds) }
    mutating func string(_ s: String) { let u = Array(s.utf8); int(Int64(u.count)); bytes.append(contentsOf: u) }
    mutating func optString(_ s: String?) { if let s { u8(1); string(s) } else { u8(0) } }
    mutating func tier(_ t: TierState) { string(t.tierId); time(t.since); optTime(t.assessAt); optTime(t.graceFrom) }
    mutating func wallet(_ w: Wallet) {
        int(Int64(w.grants.count))
        for g in w.grants {
            string(g.id); string(g.benefitId); string(g.cause.rawValue); optString(g.tierId); optInt(g.eventId?.rawValue); time(g.grantedAt)
            optTime(g.claimBy); optTime(g.claimedAt); optTime(g.useBy); optString(g.code)
            if let u = g.use {
                u8(1); int(u.eventId.rawValue); time(u.at); string(u.orderId); int(u.discountMinor); optString(u.channel); optString(u.store)
            } else { u8(0) }
            optTime(g.refundedAt); optTime(g.revokedAt); optString(g.note)
        }
        int(Int64(w.upgradeGifted.count))
        for t in w.upgradeGifted.sorted() { string(t) }
        int(Int64(w.upgradeRounds.count))
        for (t, n) in w.upgradeRounds.sorted(by: { $0.key < $1.key }) { string(t); int(Int64(n)) }
        int(Int64(w.allowanceMarks.count))
        for (k, t) in w.allowanceMarks.sorted(by: { $0.key < $1.key }) { string(k); time(t) }
        optTime(w.nextAllowanceAt); optTime(w.nextBirthdayAt); int(Int64(w.birthdayYear))
    }
    mutating func order(_ o: OrderRecord) {
        int(o.eventId.rawValue); time(o.at)
        int(Int64(o.lines.count))
        for l in o.lines {
            int(l.quantity); int(l.points); int(l.growth); int(l.refundedQuantity); int(l.refundedPoints); int(l.refundedGrowth)
            int(l.paid); int(l.refundedPaid)
        }
        optInt(o.lotNo.map(Int64.init)); tier(o.tierBefore); int(o.expiredPoints); int(o.paidMinor)
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var i = 0
    /// The format the bytes were written in (their first byte, once read).
    var format = StateCodec.format
    var atEnd: Bool { i == bytes.count }
    mutating func u8() throws -> UInt8 {
        guard i < bytes.count else { throw StateCodec.Failure.truncated }
        defer { i += 1 }
        return bytes[i]
    }
    mutating func int() throws -> Int64 {
        var z: UInt64 = 0, shift: UInt64 = 0
        while true {
            let b = try u8()
            guard shift < 64 else { throw StateCodec.Failure.badValue("varint too long") }
            z |= UInt64(b & 0x7F) << shift
            if b < 0x80 { break }
            shift += 7
        }
        return Int64(bitPattern: z >> 1) ^ -Int64(bitPattern: z & 1)
    }
    mutating func count() throws -> Int {
        let n = try int()
        guard n >= 0, n <= bytes.count - i + 1 else { throw StateCodec.Failure.badValue("count \(n)") }
        return Int(n)
    }
    mutating func time() throws -> Timestamp { Timestamp(seconds: try int()) }
    mutating func optInt() throws -> Int64? { try u8() == 1 ? try int() : nil }
    mutating func optTime() throws -> Timestamp? { try optInt().map(Timestamp.init) }
    mutating func string() throws -> String {
        let n = try count()
        guard i + n <= bytes.count else { throw StateCodec.Failure.truncated }
        defer { i += n }
        return String(decoding: bytes[i..<(i + n)], as: UTF8.self)
    }
    mutating func optString() throws -> String? { try u8() == 1 ? try string() : nil }
    mutating func tier() throws -> TierState { TierState(tierId: try string(), since: try time(), assessAt: try optTime(), graceFrom: try optTime()) }
    mutating func wallet() throws -> Wallet {
        var w = Wallet()
        let n = try count()
        w.grants.reserveCapacity(n)
        for _ in 0..<n {
            let id = try string(), benefit = try string()
            guard let cause = GrantCause(rawValue: try string()) else { throw StateCodec.Failure.badValue("grant cause") }
            var g = BenefitGrant(id: id, benefitId: benefit, cause: cause, tierId: try optString(), eventId: try optInt().map(EventID.init), grantedAt: try time())
            g.claimBy = try optTime(); g.claimedAt = try optTime(); g.useBy = try optTime(); g.code = try optString()
            if try u8() == 1 {
                g.use = BenefitUse(eventId: EventID(try int()), at: try time(), orderId: try string(), discountMinor: try int(), channel: try optString(), store: try optString())
            }
            g.refundedAt = try optTime(); g.revokedAt = try optTime(); g.note = try optString()
            w.grants.append(g)
        }
        for _ in 0..<(try count()) { w.upgradeGifted.insert(try string()) }
        for _ in 0..<(try count()) { let t = try string(); w.upgradeRounds[t] = Int(try int()) }
        for _ in 0..<(try count()) { let k = try string(); w.allowanceMarks[k] = try time() }
        w.nextAllowanceAt = try optTime(); w.nextBirthdayAt = try optTime(); w.birthdayYear = Int(try int())
        return w
    }
    mutating func order() throws -> OrderRecord {
        let ev = EventID(try int()), at = try time()
        let n = try count()
        var lines: [LineEarning] = []
        lines.reserveCapacity(n)
        for _ in 0..<n {
            let q = try int(), p = try int(), g = try int(), rq = try int(), rp = try int(), rg = try int()
            let paid = format >= 5 ? try int() : 0, refundedPaid = format >= 5 ? try int() : 0
            lines.append(LineEarning(quantity: q, points: p, growth: g, paid: paid, refundedQuantity: rq, refundedPoints: rp, refundedGrowth: rg, refundedPaid: refundedPaid))
        }
        var o = OrderRecord(eventId: ev, at: at, lines: lines, lotNo: try optInt().map { Int($0) }, tierBefore: try tier(), expiredPoints: try int(), paidMinor: try int())
        if format < 5 { o.estimateLinePaid() }
        return o
    }
}
