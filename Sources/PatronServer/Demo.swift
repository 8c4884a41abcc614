import Foundation
import PatronCore
import PatronStore

/// The demo brand: four tiers on a rolling year, double points in the 11.11 week, points that
/// lapse at the end of the year after they are earned, and a 7-day return window.
public enum Demo {
    public static func programYAML(year: Int) -> String {
        """
        key: demo
        name: {zh-CN: 样例会员计划, en: Demo loyalty program}
        currency: CNY
        timeZone: Asia/Shanghai
        pointValue: 1             # minor units (fen) one point is worth: 1 point = 0.01 yuan, for liability reports
        tiers:
          - {id: basic,   name: {zh-CN: 普通会员, en: Basic},   threshold: 0}
          - {id: silver,  name: {zh-CN: 白银会员, en: Silver},  threshold: 500, benefits: [silver_welcome]}
          - id: gold
            name: {zh-CN: 黄金会员, en: Gold}
            threshold: 2000
            benefits: [gold_welcome]
            allowances: [{benefit: free_shipping, count: 2, every: month}]
          - id: diamond
            name: {zh-CN: 钻石会员, en: Diamond}
            threshold: 8000
            benefits: [diamond_gift]
            allowances: [{benefit: free_shipping, count: 4, every: month}, {benefit: free_alteration, count: 1, every: month}, {benefit: presale, every: year}]
        assessment: {kind: rolling, windowDays: 365, downgrade: oneTier, graceDays: 30}
        earning:
          points: {unitMinor: 100, perUnit: 1}     # 1 point per yuan paid
          growth: {unitMinor: 100, perUnit: 1}     # 1 growth per yuan paid
          rounding: floor
          multipliers:
            - {id: double-11, factor: 2, applyTo: points, from: "\(year)-11-05T00:00:00+08:00", until: "\(year)-11-12T00:00:00+08:00"}
            - {id: app-orders, channels: [app], factor: 1.5, applyTo: points}
          caps: {pointsPerOrder: 20000, pointsPerDay: 50000}
        activities:
          - {id: first_purchase, name: {zh-CN: 首单奖励, en: First purchase}, points: 100, growth: 50, trigger: firstOrder}
          - {id: profile_completed, name: {zh-CN: 完善资料, en: Profile completed}, points: 50, growth: 20, limit: once}
          - {id: check_in, name: {zh-CN: 每日签到, en: Daily check-in}, points: 2, growth: 1, limit: daily}
        expiry: {kind: endOfPeriod, period: year, months: 12}
        pendingDays: 7
        refund: {shortfall: negativeBalance, undoUpgrade: true}
        benefits:
          - {id: silver_welcome, name: {zh-CN: 白银升级礼 满200减20, en: Silver welcome - 20 off 200}, kind: amountOff, amountMinor: 2000, minSpendMinor: 20000,
             claim: {days: 30}, use: {days: 30}}
          - {id: gold_welcome, name: {zh-CN: 黄金升级礼 9折券, en: Gold welcome - 10% off}, kind: percentOff, percent: 10, capMinor: 10000,
             claim: {days: 30}, use: {days: 30}}
          - {id: diamond_gift, name: {zh-CN: 钻石专属礼盒, en: Diamond gift box}, kind: gift, giftSku: GIFT-DIAMOND, claim: {days: 60}, use: {days: 90}, stores: [s0, s1, s2]}
          - {id: free_shipping, name: {zh-CN: 包邮券, en: Free shipping}, kind: freeShipping, autoClaim: true, use: {endOf: month},
             channels: [app, web], combinable: true}
          - {id: free_alteration, name: {zh-CN: 免费改衣, en: Free alteration}, kind: service, autoClaim: true, use: {endOf: month}, channels: [store], combinable: true}
          - {id: presale, name: {zh-CN: 新品优先购, en: Early access to new collections}, kind: priorityAccess, autoClaim: true, use: {endOf: year}, combinable: true}
          - {id: birthday_coupon, name: {zh-CN: 生日券 无门槛50元, en: Birthday - 50 off}, kind: noMinimum, amountMinor: 5000, claim: {days: 31}, use: {days: 31}}
          - {id: mall_coupon_20, name: {zh-CN: 20元无门槛券, en: 20 yuan off}, kind: noMinimum, amountMinor: 2000, autoClaim: true, use: {days: 30}, combinable: true}
        birthday: {benefit: birthday_coupon, when: month}
        churn: {atRiskBelow: 0.3, horizonWeeks: 52, discountRate: 0.08}   # fitted daily by the job runner
        tags:
          - {id: no_repurchase_48h, name: {zh-CN: 首单后48小时未复购, en: No second order 48h after the first}, category: behaviour,
             rule: "member.orderCount == 1 && now - member.lastOrderAt >= duration('48h')"}
          - {id: price_sensitive, name: {zh-CN: 价格敏感, en: Price sensitive}, category: preference,
             rule: "orders.count() >= 3 && orders.filter(o, o.usedCoupon).count() * 2 > orders.count()"}
          - {id: big_spender_30d, name: {zh-CN: 近30天高消费, en: Spent 1000+ in 30 days}, category: value, rule: "orders.within('30d').sum(amount) >= 100000"}
          - {id: lapsing, name: {zh-CN: 90天未购, en: No order in 90 days}, category: lifecycle, rule: "member.orderCount > 0 && now - member.lastOrderAt >= duration('90d')"}
          - {id: birthday_this_month, name: {zh-CN: 本月生日, en: Birthday this month}, category: lifecycle, rule: "member.profile.birthday.month == now.month"}
          - {id: high_value, name: {zh-CN: 高价值会员, en: Top 10% by 12-month spend}, category: value, rule: "member.rfm.topPercent <= 10"}
          - {id: churn_risk, name: {zh-CN: 流失预警, en: Churn risk}, category: lifecycle, rule: "member.churn.atRisk"}
          - {id: vip_care, name: {zh-CN: 重点关怀, en: VIP care}, category: lifecycle}
        mall:
          - {id: tote_bag, name: {zh-CN: 帆布袋, en: Canvas tote bag}, kind: goods, pointsPrice: 800, stock: 500, limit: {count: 2, per: year},
             image: "https://static.example.com/demo/tote.png"}
          - {id: coupon_20, name: {zh-CN: 20元无门槛券, en: 20 yuan off coupon}, kind: benefit, benefit: mall_coupon_20, pointsPrice: 1500, limit: {count: 5, per: month}}
          - {id: spa_day, name: {zh-CN: 会员沙龙体验, en: Members' spa afternoon}, kind: experience, pointsPrice: 20000, moneyMinor: 9900, stock: 20, tiers: [gold, diamond]}
          - {id: plant_a_tree, name: {zh-CN: 公益植树, en: Plant a tree}, kind: donation, pointsPrice: 500}
        """
    }

    public struct BenefitActivity: Sendable { public var claims = 0, uses = 0, exchanges = 0, birthdays = 0 }

    /// Members act on their benefits after the history is in: some set their birthday, claim
    /// what they were granted, use some of it at the counter or online, and exchange points in the
    /// mall. From a fixed seed, at most `limit` actions of each kind, so the counts are not empty.
    public static func benefitActivity(store: Store, now t: Timestamp, limit: Int = 2000, seed: UInt64 = 7) async throws -> BenefitActivity {
        var rng = SplitMix(seed: seed)
        var done = BenefitActivity()
        // Birthdays for one member in ten of the first few thousand.
        var cursor: String? = nil
        var firstMembers: [MemberID] = []
        repeat {
            let page = try await store.listMembers(program: "demo", cursor: cursor, limit: 200)
            firstMembers += page.items.map(\.id)
            cursor = page.nextCursor
        } while cursor != nil && firstMembers.count < limit * 5
        for m in firstMembers where rng.next() % 10 == 0 {
            let b = CivilDate(year: 1960 + Int(rng.next() % 45), month: 1 + Int(rng.next() % 12), day: 1 + Int(rng.next() % 28))
            _ = try await store.updateMember(program: "demo", id: m, UpdateMember(profile: MemberProfile(birthday: b)), idempotencyKey: "demo-bd-\(m)", requestHash: "demo", now: t)
            done.birthdays += 1
        }
        // Claims: seven in ten of what can still be claimed.
        for g in try await store.openGrants(program: "demo", claimed: false, now: t, limit: limit) where rng.next() % 10 < 7 {
            let m = g.memberId, g = g.grant
            _ = try await store.record(program: "demo", member: m, occurredAt: t, body: .benefitClaimed(BenefitClaimed(grant: g)), idempotencyKey: "demo-claim-\(m)-\(g)", requestHash: "demo", now: t)
            done.claims += 1
        }
        // Uses: four in ten of what is claimed and usable, on an order big enough for any minimum.
        for g in try await store.openGrants(program: "demo", claimed: true, now: t, limit: limit) where rng.next() % 10 < 4 {
            guard let code = g.code else { continue }
            let benefit = g.benefit
            let channel = benefit == "free_shipping" ? "app" : benefit == "free_alteration" ? "store" : ["app", "store", "web"][Int(rng.next() % 3)]
            let req = RedemptionRequest(code: code, orderId: "demo-use-\(code)", amountMinor: 30_000 + Int64(rng.next() % 50_000), shippingMinor: 1_200, channel: channel,
                                        store: "s\(rng.next() % 3)")
            do {
                _ = try await store.redeem(program: "demo", req, idempotencyKey: "demo-use-\(code)", requestHash: "demo", now: t)
                done.uses += 1
            } catch StoreError.rule { /* a benefit that does not fit this order (limits, combining): skipped, as at a real counter */ }
        }
        // The mall: members with points to spare exchange a coupon, a tote bag or a tree.
        for member in try await store.membersWithPoints(program: "demo", atLeast: 800, limit: limit) where rng.next() % 4 == 0 {
            let m = member.id
            let available = member.pointsAvailable
            let item = available >= 1500 && rng.next() % 2 == 0 ? "coupon_20" : rng.next() % 3 == 0 ? "plant_a_tree" : "tote_bag"
            do {
                _ = try await store.record(program: "demo", member: m, occurredAt: t, body: .mallExchanged(MallExchanged(item: item, address: item == "tote_bag" ? "上海市静安区南京西路 1 号" : nil)),
                                           idempotencyKey: "demo-mall-\(m)", requestHash: "demo", now: t)
                done.exchanges += 1
            } catch StoreError.rule, StoreError.outOfStock { /* limits and stock, as in the real mall */ }
        }
        return done
    }

    /// The demo's saved segments (人群), as operators would write them.
    public static let segmentDocuments = [
        #"{"id": "gold_plus_active", "name": {"zh-CN": "近90天有购的金卡以上会员", "en": "Gold+ who bought in 90 days"}, "condition": "member.tier in ['gold', 'diamond'] && orders.within('90d').count() >= 1"}"#,
        #"{"id": "lapsing_valuable", "name": {"zh-CN": "高价值流失预警", "en": "Valuable and lapsing"}, "condition": "member.spentMinor >= 50000 && now - member.lastOrderAt >= duration('90d')"}"#,
        #"{"id": "one_and_done", "name": {"zh-CN": "只买过一次", "en": "Bought once, 30+ days ago"}, "condition": "member.orderCount == 1 && now - member.lastOrderAt > duration('30d')"}"#,
    ]

    /// Saves the demo's segments and records who is in them; answers their sizes.
    public static func saveSegments(store: Store, now: Timestamp) async throws -> [(String, Int)] {
        for doc in segmentDocuments {
            let draft = try SegmentParser.parse(try JSONDecoder().decode(JSONValue.self, from: Data(doc.utf8))).get()
            _ = try await store.saveSegment(program: "demo", draft, now: now)
        }
        try await store.refreshSegments(program: "demo", now: now)
        let sizes = try await store.segmentSizes(program: "demo")
        return try await store.segments(program: "demo").map { ($0.definition.id, sizes[$0.definition.id] ?? 0) }
    }

    /// Where the CDNOW purchase log is looked for, in order.
    public static func cdnowCandidates(cwd: String) -> [String] {
        var c: [String] = []
        if let d = ProcessInfo.processInfo.environment["PATRON_DATASETS"] { c.append("\(d)/cdnow/CDNOW_master.txt") }
        c += ["\(cwd)/../shared/datasets/cdnow/CDNOW_master.txt", "\(cwd)/shared/datasets/cdnow/CDNOW_master.txt"]
        return c
    }

    /// CDNOW's purchases as a store's orders: customer N becomes card CDNOW-N, amounts in dollars
    /// become yuan, and dates are shifted so the last purchase falls on `today` (local noon).
    public static func cdnowOrders(text: String, today: CivilDate, clock: ProgramClock) -> [ImportOrder] {
        var rows: [(line: Int, customer: String, day: CivilDate, cds: Int64, cents: Int64)] = []
        var lineNo = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNo += 1
            let f = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard f.count >= 4, let ymd = Int(f[1]), let cds = Int64(f[2]), let dollars = Decimal(string: String(f[3])) else { continue }
            let day = CivilDate(year: ymd / 10000, month: ymd / 100 % 100, day: ymd % 100)
            let cents = NSDecimalNumber(decimal: dollars * 100).int64Value
            rows.append((lineNo, String(f[0]), day, max(1, cds), cents))
        }
        guard let last = rows.map(\.day).max() else { return [] }
        let shift = today.dayNumber - last.dayNumber
        return rows.map { r in
            let d = CivilDate(dayNumber: r.day.dayNumber + shift)
            let at = clock.startOfDay(d).adding(seconds: 12 * 3600 + Int64(r.line % 3600))
            return ImportOrder(line: r.line, who: .identity(Identity(kind: .card, value: "CDNOW-\(r.customer)")), occurredAt: at,
                               order: OrderPaid(orderId: "cdnow-\(r.line)", lines: [OrderLine(sku: "cd", category: "music", quantity: r.cds, amountMinor: r.cents)],
                                                channel: "store", store: "cdnow"))
        }
    }

    /// A made-up history for when the dataset is not at hand: `members` members buying at their
    /// own pace over the last 18 months, from a fixed seed.
    public static func generatedOrders(members: Int, today: CivilDate, clock: ProgramClock, seed: UInt64 = 42) -> [ImportOrder] {
        var rng = SplitMix(seed: seed)
        var out: [ImportOrder] = []
        let start = today.dayNumber - 540
        for m in 1...max(1, members) {
            let rate = Double(rng.next() % 1000) / 1000 * 0.05 + 0.002 // purchases a day
            var day = start + Int64(rng.next() % 120)
            while day <= today.dayNumber {
                let at = clock.startOfDay(CivilDate(dayNumber: day)).adding(seconds: 9 * 3600 + Int64(rng.next() % 43_200))
                let amount = Int64(1_000 + rng.next() % 60_000)
                out.append(ImportOrder(line: out.count + 1, who: .identity(Identity(kind: .card, value: "GEN-\(m)")), occurredAt: at,
                                       order: OrderPaid(orderId: "gen-\(m)-\(day)", lines: [OrderLine(sku: "sku-\(rng.next() % 50)", category: ["apparel", "shoes", "beauty"][Int(rng.next() % 3)], amountMinor: amount)],
                                                        channel: rng.next() % 3 == 0 ? "app" : "store", store: "s\(rng.next() % 10)")))
                let gap = -log(max(1e-9, Double(rng.next() % 1_000_000) / 1_000_000)) / rate
                day += Int64(max(1, gap))
            }
        }
        return out
    }
}
