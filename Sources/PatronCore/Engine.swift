import Foundation

/// The versions of one program, each in force from its instant on.
public struct ProgramVersions: Sendable {
    public struct Version: Sendable {
        public var version: Int
        public var effectiveFrom: Timestamp
        public var definition: ProgramDefinition
        public var clock: ProgramClock
        /// The rule tags, compiled once per version.
        public var tagRules: [TagRule]
        public init(version: Int, effectiveFrom: Timestamp, definition: ProgramDefinition) {
            self.version = version; self.effectiveFrom = effectiveFrom; self.definition = definition; self.clock = definition.clock
            tagRules = definition.tags.compactMap { t in t.rule.flatMap { try? Condition.compile($0, schema: .member).get() }.map { TagRule(tag: t, rule: $0) } }
        }
    }
    public private(set) var versions: [Version]
    public init(_ versions: [Version]) {
        precondition(!versions.isEmpty, "a program has at least one version")
        self.versions = versions.sorted { ($0.effectiveFrom, $0.version) < ($1.effectiveFrom, $1.version) }
    }
    public init(single def: ProgramDefinition) { self.init([Version(version: 1, effectiveFrom: Timestamp(seconds: .min / 2), definition: def)]) }
    /// The version in force at `t`; the first one for instants before it.
    public func at(_ t: Timestamp) -> Version {
        if versions.count == 1 { return versions[0] }
        var lo = 0, hi = versions.count - 1
        while lo < hi { let mid = (lo + hi + 1) / 2; if versions[mid].effectiveFrom <= t { lo = mid } else { hi = mid - 1 } }
        return versions[lo]
    }
    public var latest: Version { versions[versions.count - 1] }
}

/// Why the engine refuses an event. The store writes nothing for a refused event.
public enum EngineError: Error, Sendable, Equatable {
    case insufficientPoints(available: Int64, requested: Int64)
    case unknownActivity(String)
    /// A `firstOrder` activity is awarded by the first order, not sent as an event.
    case activityAwardedAutomatically(String)
    case activityLimitReached(activity: String, limit: ActivityLimit)
    case duplicateOrder(String)
    case refundExceedsOrder(line: Int, remaining: Int64, requested: Int64)
    case unknownOrderLine(line: Int, lines: Int)
    case currencyMismatch(expected: String, got: String)
    case orderFullyRefunded(String)
    /// A settlement larger than the recorded debt.
    case settlementExceedsDebt(debt: Int64, requested: Int64)
    case benefit(BenefitRefusal)
    case mall(MallRefusal)
    case tag(TagRefusal)
}

/// What the ledger, growth and tier history gained from one step.
public struct Effects: Sendable, Equatable {
    public var entries: [LedgerEntry] = []
    public var growth: [GrowthEntry] = []
    public var tierChanges: [TierChange] = []
    /// Final values of the lots the step touched, by lot number.
    public var lots: [Int: Lot] = [:]
    /// Order records created or changed by the step (written to the orders table).
    public var orders: [String: OrderRecord] = [:]
    /// Points that lapsed from orders' lots whose records were not loaded, by order id.
    public var orderLapses: [String: Int64] = [:]
    /// Final values of the benefit grants the step created or changed, by grant number.
    public var grants: [String: BenefitGrant] = [:]
    /// Mall exchanges made or cancelled by the step.
    public var exchanges: [MallExchange] = []
    /// Tags added and removed by the step, in order.
    public var tagChanges: [TagChange] = []
    public init() {}
    public var isEmpty: Bool { entries.isEmpty && growth.isEmpty && tierChanges.isEmpty && lots.isEmpty && grants.isEmpty && tagChanges.isEmpty }
}

public enum OutcomeStatus: String, Codable, Sendable { case applied, deferred }

/// The answer to one event.
public struct EventOutcome: Codable, Sendable, Equatable {
    public var status: OutcomeStatus
    public var pointsEarned: Int64 = 0
    public var growthEarned: Int64 = 0
    public var pointsSpent: Int64 = 0
    public var pointsClawedBack: Int64 = 0
    public var growthClawedBack: Int64 = 0
    public var tierBefore: String
    public var tierAfter: String
    public var note: String?
    /// Benefit grants the event created or changed, by number.
    public var grants: [String]?
    /// The discount a benefit gives the order it is used on, in minor units.
    public var discountMinor: Int64?
    /// Money the event gave back, in minor units: a refund's refunded lines (their paid amounts),
    /// or, for an order, the refunds that were waiting for it.
    public var refundedMinor: Int64?
}

/// The pure engine: (state, event, program, now) -> new state and effects.
public struct Engine: Sendable {
    public enum Mode: Sendable { case validate, replay }
    public let program: ProgramVersions
    /// Makes the write-off codes of claimed benefits.
    public let codes: CodeMaker
    public init(program: ProgramVersions, codes: CodeMaker = .unkeyed) { self.program = program; self.codes = codes }

    // MARK: the clock

    /// Brings the state to `t`: lots lapse, tiers are assessed, in time order. Idempotent.
    public func advance(_ s: inout MemberState, to t: Timestamp, effects fx: inout Effects) {
        // What the clock does, in this order when several fall on one instant.
        enum Due { case lapse(Int), assessment, allowance, birthday, tagTimer }
        while true {
            var next: (at: Timestamp, what: Due)? = nil
            func consider(_ at: Timestamp?, _ what: Due) {
                if let at, at <= t, next.map({ at < $0.at }) ?? true { next = (at, what) }
            }
            for (i, l) in s.lots.enumerated() where l.remaining > 0 { consider(l.expiresAt, .lapse(i)) }
            consider(s.tier.assessAt, .assessment)
            consider(s.wallet.nextAllowanceAt, .allowance)
            consider(s.wallet.nextBirthdayAt, .birthday)
            consider(s.tagsDueAt, .tagTimer)
            guard let (at, what) = next else { break }
            // Rule tags see the member as it is now: after a lapse or an assessment those that read
            // points, growth or the tier; at their timer those due (allowances and birthday gifts
            // change nothing rules read).
            switch what {
            case .lapse(let i):
                expire(&s, lotIndex: i, at: at, fx: &fx)
                evaluateTags(&s, at: at, event: nil, only: .readingState, fx: &fx)
            case .assessment:
                assess(&s, at: at, fx: &fx)
                evaluateTags(&s, at: at, event: nil, only: .readingState, fx: &fx)
            case .allowance: refreshAllowances(&s, v: program.at(at), at: at, fx: &fx)
            case .birthday: birthdayGift(&s, at: at, fx: &fx)
            case .tagTimer:
                evaluateTags(&s, at: at, event: nil, only: .due(at), fx: &fx)
            }
        }
        s.lots.removeAll { $0.remaining == 0 }
        if t > s.asOf { s.asOf = t }
    }

    /// Gives the member new scores (RFM, lifecycle, churn) at `t` (or the state's instant, if
    /// later): the state is brought there first, then the rule tags that read the scores are
    /// evaluated again (tag changes carry no event; their cause is the rule). When the program's
    /// rules changed since the member's were last all evaluated (a new version), every rule is
    /// evaluated, so a scoring run also brings members without events up to new rules. Returns
    /// whether anything was done (`needsRescore`).
    @discardableResult
    public func rescore(_ s: inout MemberState, _ scores: MemberScores?, at t: Timestamp, effects fx: inout Effects) -> Bool {
        let at = max(t, s.asOf), stale = rulesStale(s, at: at)
        guard s.scores != scores || stale else { return false }
        advance(&s, to: at, effects: &fx)
        s.scores = scores
        evaluateTags(&s, at: at, event: nil, only: stale ? .all : .scores, fx: &fx)
        if stale { s.tagsEvaluatedVersion = program.versions[program.index(at: at)].version }
        return true
    }

    /// Whether `rescore` with these scores at `t` would change the member: the scores differ, or
    /// the rule tags in force were not all evaluated for the member yet.
    public func needsRescore(_ s: MemberState, _ scores: MemberScores?, at t: Timestamp) -> Bool {
        s.scores != scores || rulesStale(s, at: max(t, s.asOf))
    }

    func rulesStale(_ s: MemberState, at t: Timestamp) -> Bool {
        let v = program.versions[program.index(at: t)]
        return !v.tagRules.isEmpty && s.tagsEvaluatedVersion != v.version
    }

    func expire(_ s: inout MemberState, lotIndex i: Int, at: Timestamp, fx: inout Effects) {
        let l = s.lots[i]
        entry(&s, fx: &fx, event: nil, at: at, points: -l.remaining, reason: .expiry, lot: l.no, order: l.orderId)
        if let o = l.orderId {
            if s.orders[o] != nil {
                s.orders[o]!.expiredPoints += l.remaining
                fx.orders[o] = s.orders[o]
            } else {
                fx.orderLapses[o, default: 0] += l.remaining
            }
        }
        s.lots[i].remaining = 0
        fx.lots[l.no] = s.lots[i]
    }

    // MARK: events

    /// Applies one event at its time. In `.validate` mode a rule violation throws and the caller
    /// must discard `s`; in `.replay` mode (events accepted earlier) nothing throws.
    @discardableResult
    public func apply(_ s: inout MemberState, _ e: MemberEvent, mode: Mode = .validate, effects fx: inout Effects) throws -> EventOutcome {
        let t = e.occurredAt
        advance(&s, to: t, effects: &fx)
        let v = program.at(t)
        let p = v.definition
        reconcileTier(&s, p, at: t, fx: &fx)
        var out = EventOutcome(status: .applied, tierBefore: s.tier.tierId, tierAfter: s.tier.tierId)
        switch e.body {
        case .orderPaid(let o):
            if let c = o.currency, c != p.currency {
                if mode == .validate { throw EngineError.currencyMismatch(expected: p.currency, got: c) }
                out.note = "currency \(c) differs from the program's \(p.currency): nothing earned"; break
            }
            if s.orders[o.orderId] != nil {
                if mode == .validate { throw EngineError.duplicateOrder(o.orderId) }
                out.note = "order already recorded"; break
            }
            earnOrder(&s, o, event: e, v: v, out: &out, fx: &fx)
        case .orderRefunded(let r):
            try refund(&s, r, event: e, v: v, mode: mode, out: &out, fx: &fx)
        case .pointsAdjusted(let a):
            if a.points > 0 {
                addLot(&s, v: v, event: e.id, at: t, source: .adjustment, order: nil, points: a.points, pending: false, reason: .adjustment, note: a.reason, fx: &fx)
                out.pointsEarned = a.points
            } else {
                try spend(&s, -a.points, event: e.id, at: t, reason: .adjustment, note: a.reason, mode: mode, fx: &fx)
                out.pointsSpent = -a.points
            }
        case .activity(let a):
            guard let rule = p.activity(a.activity), rule.trigger == .event else {
                if mode == .validate {
                    if p.activity(a.activity) != nil { throw EngineError.activityAwardedAutomatically(a.activity) }
                    throw EngineError.unknownActivity(a.activity)
                }
                out.note = "activity not in the program at this time: nothing awarded"; break
            }
            if !award(&s, rule, event: e.id, at: t, v: v, out: &out, fx: &fx) {
                if mode == .validate { throw EngineError.activityLimitReached(activity: rule.id, limit: rule.limit) }
                out.note = "activity limit reached: nothing awarded"
            }
        case .pointsRedeemed(let r):
            try spend(&s, r.points, event: e.id, at: t, reason: .redemption, note: r.purpose, mode: mode, fx: &fx)
            out.pointsSpent = r.points
        case .debtSettled(let d):
            var amount = d.points
            if amount > s.recordedDebt {
                if mode == .validate { throw EngineError.settlementExceedsDebt(debt: s.recordedDebt, requested: d.points) }
                amount = s.recordedDebt
            }
            guard amount > 0 else { out.note = "no recorded debt to settle"; break }
            if d.method == .points {
                try spend(&s, amount, event: e.id, at: t, reason: .debtSettlement, note: d.reason, mode: mode, fx: &fx)
                out.pointsSpent = amount
            }
            s.recordedDebt -= amount
            entry(&s, fx: &fx, event: e.id, at: t, account: .debt, points: -amount, reason: .debtSettlement, lot: nil, order: nil, note: "\(d.method.rawValue): \(d.reason)")
        case .benefitGranted(let g):
            do { try staffGrant(&s, g, event: e.id, at: t, v: v, out: &out, fx: &fx) } catch where mode == .replay { out.note = "\(error)" }
        case .benefitClaimed(let c):
            do { try claimGrant(&s, c, at: t, v: v, out: &out, fx: &fx) } catch where mode == .replay { out.note = "\(error)" }
        case .benefitRedeemed(let r):
            do { try redeem(&s, r, event: e.id, at: t, v: v, out: &out, fx: &fx) } catch where mode == .replay { out.note = "\(error)" }
        case .benefitReversed(let r):
            do { try reverse(&s, grant: r.grant, at: t, v: v, out: &out, fx: &fx) } catch where mode == .replay { out.note = "\(error)" }
        case .mallExchanged(let x):
            do { try exchange(&s, x, event: e.id, at: t, v: v, mode: mode, out: &out, fx: &fx) } catch where mode == .replay { out.note = "\(error)" }
        case .profileSet(let ps):
            s.profile = ps.profile
            setBirthday(&s, at: t)
            advance(&s, to: t, effects: &fx)
        case .tagSet(let c):
            try setTag(&s, c, event: e.id, at: t, v: v, out: &out, fx: &fx)
        case .mallCancelled(let c):
            do { try cancelExchange(&s, c, event: e.id, at: t, v: v, out: &out, fx: &fx) } catch where mode == .replay { out.note = "\(error)" }
        }
        if s.lastEventAt.map({ t > $0 }) ?? true { s.lastEventAt = t }
        if t > s.asOf { s.asOf = t }
        let setsProfile = if case .profileSet = e.body { true } else { false }
        evaluateTags(&s, at: t, event: e.id, only: .event(setsProfile: setsProfile), fx: &fx)
        pruneWindow(&s, p)
        pruneWallet(&s)
        pruneExchanges(&s)
        s.lots.removeAll { $0.remaining == 0 }
        out.tierAfter = s.tier.tierId
        return out
    }

    /// Folds a member's whole history from scratch, in event order, then brings it to `until`.
    /// `validating` names the one event (new, not yet accepted) whose rule violations throw.
    /// `scores`: the member's latest scores, which no event carries (`MemberState.scores`).
    public func replay(member: MemberID, registeredAt: Timestamp, events: [MemberEvent], until: Timestamp?,
                       validating: EventID? = nil, scores: MemberScores? = nil) throws -> (state: MemberState, effects: Effects, outcomes: [EventID: EventOutcome]) {
        var fx = Effects()
        var s = start(member: member, registeredAt: registeredAt, effects: &fx)
        var outs: [EventID: EventOutcome] = [:]
        for e in events.sorted(by: MemberEvent.precedes) {
            outs[e.id] = try apply(&s, e, mode: e.id == validating ? .validate : .replay, effects: &fx)
        }
        if let until { advance(&s, to: until, effects: &fx) }
        // The scores came from a scoring run, not from an event: they arrive at the end, as a run
        // gives them (the rules that read them are evaluated then, whether or not events were folded).
        if scores != nil { rescore(&s, scores, at: until ?? s.asOf, effects: &fx) }
        return (s, fx, outs)
    }

    // MARK: earning

    func earnOrder(_ s: inout MemberState, _ o: OrderPaid, event e: MemberEvent, v: ProgramVersions.Version, out: inout EventOutcome, fx: inout Effects) {
        let p = v.definition, t = e.occurredAt
        let paid = Self.allocateOrderDiscount(o)
        var pts = [Int64](), gro = [Int64]()
        // A points-multiplier benefit written off on this order counts as one more multiplier.
        let bonus = benefitFactor(s, order: o.orderId, p).map { Multiplier(id: "benefit", factorPermille: $0, applyTo: .points) }
        for (i, line) in o.lines.enumerated() {
            let matching = p.earning.multipliers.filter { $0.matches(line: line, channel: o.channel, at: t) } + (bonus.map { [$0] } ?? [])
            let pf = Self.factor(matching.filter { $0.applyTo != .growth }, p.earning.stacking)
            let gf = Self.factor(matching.filter { $0.applyTo != .points }, p.earning.stacking)
            pts.append(Self.earn(paid[i], p.earning.points, factorPermille: pf, rounding: p.earning.rounding))
            gro.append(Self.earn(paid[i], p.earning.growth, factorPermille: gf, rounding: p.earning.rounding))
        }
        let day = v.clock.dayNumber(t)
        if day != s.dayNumber { s.dayNumber = day; s.dayPoints = 0; s.dayGrowth = 0 }
        if let cap = p.earning.caps.pointsPerOrder { pts = Self.capped(pts, to: cap) }
        if let cap = p.earning.caps.growthPerOrder { gro = Self.capped(gro, to: cap) }
        if let cap = p.earning.caps.pointsPerDay { pts = Self.capped(pts, to: max(0, cap - s.dayPoints)) }
        if let cap = p.earning.caps.growthPerDay { gro = Self.capped(gro, to: max(0, cap - s.dayGrowth)) }
        let P = pts.reduce(0, +), G = gro.reduce(0, +)
        s.dayPoints += P; s.dayGrowth += G
        let tierBefore = s.tier
        var lotNo: Int? = nil
        if P > 0 {
            lotNo = addLot(&s, v: v, event: e.id, at: t, source: .purchase, order: o.orderId, points: P, pending: true, reason: .purchase, note: nil, fx: &fx)
        }
        let firstOrder = s.orderCount == 0
        s.orderCount += 1
        if s.lastOrderAt.map({ t > $0 }) ?? true { s.lastOrderAt = t }
        recordOrderFact(&s, o, at: t, v: v)
        s.spentMinor += o.paidMinor
        s.orders[o.orderId] = OrderRecord(eventId: e.id, at: t, lines: o.lines.indices.map { LineEarning(quantity: o.lines[$0].quantity, points: pts[$0], growth: gro[$0], paid: paid[$0]) },
                                          lotNo: lotNo, tierBefore: tierBefore, paidMinor: o.paidMinor)
        fx.orders[o.orderId] = s.orders[o.orderId]
        out.pointsEarned += P; out.growthEarned += G
        if G != 0 { addGrowth(&s, G, event: e.id, at: t, countsAt: t, reason: .purchase, order: o.orderId, fx: &fx) }
        if firstOrder {
            for rule in p.activities where rule.trigger == .firstOrder { _ = award(&s, rule, event: e.id, at: t, v: v, out: &out, fx: &fx) }
        }
        checkUpgrade(&s, p, v: v, at: t, event: e.id, fx: &fx)
        // Refunds that arrived before the order apply now, at the order's time.
        if let waiting = s.deferredRefunds.removeValue(forKey: o.orderId) {
            for d in waiting {
                var applied = EventOutcome(status: .applied, tierBefore: s.tier.tierId, tierAfter: s.tier.tierId)
                let refundEvent = MemberEvent(id: d.eventId, occurredAt: t, body: .orderRefunded(OrderRefunded(orderId: o.orderId, lines: d.lines)))
                try? refund(&s, OrderRefunded(orderId: o.orderId, lines: d.lines), event: refundEvent, v: v, mode: .replay, out: &applied, fx: &fx)
                // The money they give back is booked with this order's arrival.
                if let m = applied.refundedMinor { out.refundedMinor = (out.refundedMinor ?? 0) + m }
            }
        }
    }

    /// Shares the order-level discount among lines in proportion to what each line pays, with
    /// the remainder going to the largest shares, so the parts add up exactly.
    public static func allocateOrderDiscount(_ o: OrderPaid) -> [Int64] {
        let net = o.lines.map { max(0, $0.amountMinor - $0.discountMinor) }
        let total = net.reduce(0, +)
        guard o.discountMinor > 0, total > 0 else { return net }
        let shares = proportional(net, total: min(o.discountMinor, total))
        return zip(net, shares).map { $0 - $1 }
    }

    /// Splits `total` among parts in proportion to `weights` (largest remainder; exact sum).
    static func proportional(_ weights: [Int64], total: Int64) -> [Int64] {
        let sum = weights.reduce(Int128(0)) { $0 + Int128($1) }
        guard sum > 0 else { return weights.map { _ in 0 } }
        var shares = weights.map { Int64(Int128($0) * Int128(total) / sum) }
        var rest = total - shares.reduce(0, +)
        let order = weights.indices.sorted { a, b in
            let ra = Int128(weights[a]) * Int128(total) % sum, rb = Int128(weights[b]) * Int128(total) % sum
            return ra != rb ? ra > rb : a < b
        }
        var k = 0
        while rest > 0 && !order.isEmpty { shares[order[k % order.count]] += 1; rest -= 1; k += 1 }
        return shares
    }

    static func capped(_ parts: [Int64], to cap: Int64) -> [Int64] {
        let total = parts.reduce(0, +)
        return total <= cap ? parts : proportional(parts, total: cap)
    }

    static func factor(_ ms: [Multiplier], _ stacking: Stacking) -> Int64 {
        guard !ms.isEmpty else { return 1000 }
        switch stacking {
        case .max: return ms.map(\.factorPermille).max()!
        case .multiply: return ms.reduce(Int64(1000)) { min(100_000_000, $0 * $1.factorPermille / 1000) }
        }
    }

    /// amount × rate × factor, in integers, rounded as the program says.
    public static func earn(_ amountMinor: Int64, _ rate: EarningRate, factorPermille: Int64, rounding: Rounding) -> Int64 {
        guard amountMinor > 0 else { return 0 }
        let num = Int128(amountMinor) * Int128(rate.perUnitPermille) * Int128(factorPermille)
        let den = Int128(rate.unitMinor) * 1_000_000
        let q = num / den, r = num % den
        switch rounding {
        case .floor: return Int64(q)
        case .ceil: return Int64(r > 0 ? q + 1 : q)
        case .round: return Int64(r * 2 >= den ? q + 1 : q)
        }
    }

    @discardableResult
    func addLot(_ s: inout MemberState, v: ProgramVersions.Version, event: EventID, at t: Timestamp, source: LotSource, order: String?,
                points: Int64, pending: Bool, reason: EntryReason, note: String?, fx: inout Effects) -> Int {
        let p = v.definition
        let no = s.nextLotNo; s.nextLotNo += 1
        var lot = Lot(no: no, eventId: event, source: source, orderId: order, earnedAt: t,
                      availableAt: pending ? t.adding(days: p.pendingDays) : t,
                      expiresAt: Self.expiry(of: t, p.expiry, v.clock), original: points, remaining: points)
        entry(&s, fx: &fx, event: event, at: t, points: points, reason: reason, lot: no, order: order, note: note)
        // Earnings repay a negative balance first.
        if s.debt > 0 {
            let r = min(s.debt, points)
            lot.remaining -= r; s.debt -= r
            entry(&s, fx: &fx, event: event, at: t, points: -r, reason: .debtRepayment, lot: no, order: order)
            entry(&s, fx: &fx, event: event, at: t, points: r, reason: .debtRepayment, lot: nil, order: order)
        }
        s.lots.append(lot)
        fx.lots[no] = lot
        return no
    }

    /// When points earned at `t` lapse: the instant after the last day they can be used.
    public static func expiry(of t: Timestamp, _ e: ExpiryPolicy, _ clock: ProgramClock) -> Timestamp? {
        switch e.kind {
        case .none: return nil
        case .afterDays: return clock.startOfDay(CivilDate(dayNumber: clock.dayNumber(t) + Int64(e.days ?? 0) + 1))
        case .endOfPeriod:
            let d = clock.date(t)
            let target = d.firstOfMonth(addingMonths: e.months ?? 0)
            switch e.period ?? .month {
            case .month: return clock.startOfDay(target.firstOfMonth(addingMonths: 1))
            case .year: return clock.startOfDay(CivilDate(year: target.year + 1, month: 1, day: 1))
            }
        }
    }

    func award(_ s: inout MemberState, _ rule: ActivityRule, event: EventID, at t: Timestamp, v: ProgramVersions.Version, out: inout EventOutcome, fx: inout Effects) -> Bool {
        let day = v.clock.dayNumber(t)
        let mark = s.activities[rule.id]
        switch rule.limit {
        case .once: if (mark?.count ?? 0) > 0 { return false }
        case .daily: if mark?.lastDay == day { return false }
        case .unlimited: break
        }
        s.activities[rule.id] = ActivityMark(count: (mark?.count ?? 0) + 1, lastDay: day)
        if rule.points > 0 {
            addLot(&s, v: v, event: event, at: t, source: .activity, order: nil, points: rule.points, pending: false, reason: .activity, note: rule.id, fx: &fx)
            out.pointsEarned += rule.points
        }
        if rule.growth > 0 {
            addGrowth(&s, rule.growth, event: event, at: t, countsAt: t, reason: .activity, order: nil, fx: &fx)
            out.growthEarned += rule.growth
            checkUpgrade(&s, v.definition, v: v, at: t, event: event, fx: &fx)
        }
        return true
    }

    // MARK: spending

    func spend(_ s: inout MemberState, _ amount: Int64, event: EventID, at t: Timestamp, reason: EntryReason, note: String?, mode: Mode, fx: inout Effects) throws {
        let avail = s.available(at: t)
        if amount > avail && mode == .validate { throw EngineError.insufficientPoints(available: avail, requested: amount) }
        var rest = amount
        // An accepted spend replayed after a late earlier refund may find too little: it then
        // takes pending points too, and what is still missing becomes debt.
        for pass in 0..<2 where rest > 0 {
            let order = s.lots.indices.filter { pass == 0 ? s.lots[$0].isAvailable(at: t) : (s.lots[$0].remaining > 0 && !s.lots[$0].isExpired(at: t)) }
                .sorted { Lot.spendOrder(s.lots[$0], s.lots[$1]) }
            rest = drawDown(&s, lots: order, rest, event: event, at: t, reason: reason, order: nil, note: note, fx: &fx)
            if mode == .validate { break }
        }
        if rest > 0 {
            precondition(mode == .replay, "a validated spend never exceeds the available balance")
            s.debt += rest
            entry(&s, fx: &fx, event: event, at: t, points: -rest, reason: reason, lot: nil, order: nil, note: note)
        }
    }

    /// Takes up to `amount` points from the lots at `indices`, in that order, one entry per lot
    /// touched; returns what could not be taken.
    func drawDown(_ s: inout MemberState, lots indices: [Int], _ amount: Int64, event: EventID, at t: Timestamp, reason: EntryReason,
                  order: String?, note: String?, fx: inout Effects) -> Int64 {
        var rest = amount
        for i in indices where rest > 0 {
            let take = min(rest, s.lots[i].remaining)
            s.lots[i].remaining -= take; rest -= take
            entry(&s, fx: &fx, event: event, at: t, points: -take, reason: reason, lot: s.lots[i].no, order: order, note: note)
            fx.lots[s.lots[i].no] = s.lots[i]
        }
        return rest
    }

    // MARK: refunds

    func refund(_ s: inout MemberState, _ r: OrderRefunded, event e: MemberEvent, v: ProgramVersions.Version, mode: Mode, out: inout EventOutcome, fx: inout Effects) throws {
        let p = v.definition, t = e.occurredAt
        guard var rec = s.orders[r.orderId] else {
            s.deferredRefunds[r.orderId, default: []].append(DeferredRefund(eventId: e.id, at: e.occurredAt, lines: r.lines))
            out.status = .deferred
            out.note = "order \(r.orderId) is not recorded yet; the refund applies when it arrives"
            return
        }
        // Which units of which lines.
        var wanted: [(Int, Int64)] = []
        if let lines = r.lines {
            for l in lines {
                guard l.line >= 1 && l.line <= rec.lines.count else {
                    if mode == .validate { throw EngineError.unknownOrderLine(line: l.line, lines: rec.lines.count) }
                    continue
                }
                let le = rec.lines[l.line - 1]
                let left = le.quantity - le.refundedQuantity
                let q = l.quantity ?? left
                if q > left || left == 0 {
                    if mode == .validate { throw EngineError.refundExceedsOrder(line: l.line, remaining: left, requested: q) }
                    wanted.append((l.line - 1, left)); continue
                }
                wanted.append((l.line - 1, q))
            }
        } else {
            wanted = rec.lines.indices.map { ($0, rec.lines[$0].quantity - rec.lines[$0].refundedQuantity) }
            if wanted.allSatisfy({ $0.1 == 0 }) {
                if mode == .validate { throw EngineError.orderFullyRefunded(r.orderId) }
                out.note = "order already fully refunded"; return
            }
        }
        var P: Int64 = 0, G: Int64 = 0, M: Int64 = 0
        for (i, q) in wanted where q > 0 {
            var le = rec.lines[i]
            let last = le.refundedQuantity + q == le.quantity
            let dp = last ? le.points - le.refundedPoints : le.points * q / le.quantity
            let dg = last ? le.growth - le.refundedGrowth : le.growth * q / le.quantity
            let dm = last ? le.paid - le.refundedPaid : le.paid * q / le.quantity
            le.refundedQuantity += q; le.refundedPoints += dp; le.refundedGrowth += dg; le.refundedPaid += dm
            rec.lines[i] = le
            P += dp; G += dg; M += dm
        }
        // The money goes back too: what the member has spent, and the order as conditions see it.
        out.refundedMinor = (out.refundedMinor ?? 0) + M
        s.spentMinor -= M
        if let k = s.orderFacts.firstIndex(where: { $0.orderId == r.orderId }) { s.orderFacts[k].amountMinor -= M }
        // Points that already lapsed from the order's lot are not taken twice.
        let lapsed = min(P, rec.expiredPoints)
        rec.expiredPoints -= lapsed
        var rest = P - lapsed
        // The order's own lot first, then the others in spending order, pending ones included.
        var order = s.lots.indices.filter { s.lots[$0].remaining > 0 && s.lots[$0].no != rec.lotNo }.sorted { Lot.spendOrder(s.lots[$0], s.lots[$1]) }
        if let own = s.lots.firstIndex(where: { $0.no == rec.lotNo && $0.remaining > 0 }) { order.insert(own, at: 0) }
        rest = drawDown(&s, lots: order, rest, event: e.id, at: t, reason: .refund, order: r.orderId, note: nil, fx: &fx)
        if rest > 0 {
            switch p.refund.shortfall {
            case .negativeBalance:
                s.debt += rest
                entry(&s, fx: &fx, event: e.id, at: t, points: -rest, reason: .refund, lot: nil, order: r.orderId, note: "spent points clawed back: negative balance")
            case .recordDebt:
                s.recordedDebt += rest
                entry(&s, fx: &fx, event: e.id, at: t, account: .debt, points: rest, reason: .refund, lot: nil, order: r.orderId, note: "spent points clawed back: recorded as debt")
            }
        }
        s.orders[r.orderId] = rec
        fx.orders[r.orderId] = rec
        if rec.lines.allSatisfy({ $0.refundedQuantity == $0.quantity }) {
            reverseUses(&s, order: r.orderId, at: t, v: v, out: &out, fx: &fx)
            s.orderFacts.removeAll { $0.orderId == r.orderId }
        }
        out.pointsClawedBack = P - lapsed
        out.growthClawedBack = G
        if G != 0 { addGrowth(&s, -G, event: e.id, at: t, countsAt: rec.at, reason: .refund, order: r.orderId, fx: &fx) }
        // A refund that removes the growth an upgrade stood on undoes that upgrade.
        if p.refund.undoUpgrade, G > 0, s.tier.since >= rec.at, let cur = p.tierIndex(s.tier.tierId), let before = p.tierIndex(rec.tierBefore.tierId), cur > before {
            var q = qualifying(s, p, v: v, at: t)
            if p.assessment.kind == .calendar {
                // The period just assessed still counts for the tier it kept.
                let period = p.assessment.period ?? .year
                let current = periodStart(containing: t, period, v.clock)
                q = max(q, sum(s, from: periodStart(containing: current.adding(seconds: -1), period, v.clock), until: current))
            }
            let target = max(Self.supported(q, p), before)
            if target < cur {
                var restored = target == before ? rec.tierBefore : TierState(tierId: p.tiers[target].id, since: t, assessAt: nextAssessment(after: t, tier: target, v: v), graceFrom: nil)
                // An assessment the restored tier missed while it was away happens now, not in the past.
                if let a = restored.assessAt, a < t { restored.assessAt = t }
                changeTier(&s, to: restored, cause: .refund, at: t, event: e.id, q: q, fx: &fx)
                advance(&s, to: t, effects: &fx)
            }
        }
    }

    // MARK: growth and tiers

    func addGrowth(_ s: inout MemberState, _ g: Int64, event: EventID, at t: Timestamp, countsAt: Timestamp, reason: GrowthReason, order: String?, fx: inout Effects) {
        fx.growth.append(GrowthEntry(no: s.nextGrowthNo, eventId: event, at: t, countsAt: countsAt, growth: g, reason: reason, orderId: order))
        s.nextGrowthNo += 1
        s.growthTotal += g
        s.window.append(WindowGrowth(countsAt: countsAt, growth: g))
    }

    /// The growth value that counts toward tiers at `t`, by the program's assessment.
    public func qualifying(_ s: MemberState, _ p: ProgramDefinition, v: ProgramVersions.Version, at t: Timestamp) -> Int64 {
        guard let after = qualifyingAfter(p, v: v, at: t) else { return s.growthTotal }
        return s.window.reduce(0) { $0 + ($1.countsAt > after && $1.countsAt <= t ? $1.growth : 0) }
    }

    /// The growth that counts toward tiers at `t` is what counts from after this instant up to
    /// `t`: the rolling window's start, or the second before the calendar period's; nil for a
    /// lifetime assessment (all of it).
    public func qualifyingAfter(_ p: ProgramDefinition, v: ProgramVersions.Version, at t: Timestamp) -> Timestamp? {
        switch p.assessment.kind {
        case .lifetime: nil
        case .rolling: t.adding(days: -(p.assessment.windowDays ?? 365))
        case .calendar: periodStart(containing: t, p.assessment.period ?? .year, v.clock).adding(seconds: -1)
        }
    }

    func sum(_ s: MemberState, from: Timestamp, until: Timestamp) -> Int64 {
        s.window.reduce(0) { $0 + ($1.countsAt >= from && $1.countsAt < until ? $1.growth : 0) }
    }

    public func periodStart(containing t: Timestamp, _ period: CalendarPeriod, _ clock: ProgramClock) -> Timestamp {
        let d = clock.date(t)
        switch period {
        case .month: return clock.startOfDay(CivilDate(year: d.year, month: d.month, day: 1))
        case .quarter: return clock.startOfDay(CivilDate(year: d.year, month: (d.month - 1) / 3 * 3 + 1, day: 1))
        case .year: return clock.startOfDay(CivilDate(year: d.year, month: 1, day: 1))
        }
    }
    func periodEnd(containing t: Timestamp, _ period: CalendarPeriod, _ clock: ProgramClock) -> Timestamp {
        let d = clock.date(t)
        switch period {
        case .month: return clock.startOfDay(d.firstOfMonth(addingMonths: 1))
        case .quarter: return clock.startOfDay(CivilDate(year: d.year, month: (d.month - 1) / 3 * 3 + 1, day: 1).firstOfMonth(addingMonths: 3))
        case .year: return clock.startOfDay(CivilDate(year: d.year + 1, month: 1, day: 1))
        }
    }

    /// When a tier held from `t` is next assessed; nil for the lowest tier and lifetime programs.
    public func nextAssessment(after t: Timestamp, tier: Int, v: ProgramVersions.Version) -> Timestamp? {
        let a = v.definition.assessment
        guard tier > 0 else { return nil }
        switch a.kind {
        case .lifetime: return nil
        case .rolling: return t.adding(days: a.windowDays ?? 365)
        case .calendar: return periodEnd(containing: t, a.period ?? .year, v.clock)
        }
    }

    static func supported(_ q: Int64, _ p: ProgramDefinition) -> Int {
        p.tiers.lastIndex { $0.threshold <= q } ?? 0
    }

    func checkUpgrade(_ s: inout MemberState, _ p: ProgramDefinition, v: ProgramVersions.Version, at t: Timestamp, event: EventID?, fx: inout Effects) {
        let q = qualifying(s, p, v: v, at: t)
        let cur = p.tierIndex(s.tier.tierId) ?? 0
        let target = Self.supported(q, p)
        if target > cur {
            changeTier(&s, to: TierState(tierId: p.tiers[target].id, since: t, assessAt: nextAssessment(after: t, tier: target, v: v), graceFrom: nil),
                       cause: .upgrade, at: t, event: event, q: q, fx: &fx)
        } else if s.tier.graceFrom != nil, q >= p.tiers[cur].threshold {
            // Earning back the tier during grace keeps it, with a new window.
            s.tier.graceFrom = nil
            s.tier.assessAt = nextAssessment(after: t, tier: cur, v: v)
        }
    }

    func assess(_ s: inout MemberState, at a: Timestamp, fx: inout Effects) {
        let v = program.at(a), p = v.definition
        reconcileTier(&s, p, at: a, fx: &fx)
        guard let cur = p.tierIndex(s.tier.tierId), cur > 0, s.tier.assessAt == a else {
            if s.tier.assessAt == a { s.tier.assessAt = nil }
            return
        }
        let asm = p.assessment
        let q: Int64
        switch asm.kind {
        case .lifetime: s.tier.assessAt = nil; s.tier.graceFrom = nil; return
        case .rolling:
            q = sum(s, from: a.adding(days: -(asm.windowDays ?? 365)).adding(seconds: 1), until: a.adding(seconds: 1))
        case .calendar:
            let period = asm.period ?? .year
            if let g = s.tier.graceFrom {
                // End of grace: the period that failed, or the one running now, whichever is better.
                let ended = sum(s, from: periodStart(containing: g.adding(seconds: -1), period, v.clock), until: g)
                let now = sum(s, from: periodStart(containing: a, period, v.clock), until: a.adding(seconds: 1))
                q = max(ended, now)
            } else {
                q = sum(s, from: periodStart(containing: a.adding(seconds: -1), period, v.clock), until: a)
            }
        }
        if q >= p.tiers[cur].threshold || asm.downgrade == .none {
            s.tier.graceFrom = nil
            s.tier.assessAt = nextAssessment(after: a, tier: cur, v: v)
            return
        }
        if s.tier.graceFrom == nil && asm.graceDays > 0 {
            s.tier.graceFrom = a
            s.tier.assessAt = a.adding(days: asm.graceDays)
            return
        }
        let target = asm.downgrade == .oneTier ? cur - 1 : min(cur - 1, Self.supported(q, p))
        changeTier(&s, to: TierState(tierId: p.tiers[target].id, since: a, assessAt: nextAssessment(after: a, tier: target, v: v), graceFrom: nil),
                   cause: .assessment, at: a, event: nil, q: q, fx: &fx)
    }

    /// A program version that no longer has the member's tier moves the member to the highest
    /// tier whose threshold the old one's growth still meets.
    func reconcileTier(_ s: inout MemberState, _ p: ProgramDefinition, at t: Timestamp, fx: inout Effects) {
        guard p.tierIndex(s.tier.tierId) == nil else { return }
        changeTier(&s, to: TierState(tierId: p.tiers[0].id, since: t, assessAt: nil, graceFrom: nil), cause: .programChange, at: t, event: nil, q: 0, fx: &fx)
        let v = program.at(t)
        checkUpgrade(&s, p, v: v, at: t, event: nil, fx: &fx)
    }

    func changeTier(_ s: inout MemberState, to new: TierState, cause: TierChangeCause, at t: Timestamp, event: EventID?, q: Int64, fx: inout Effects) {
        let old = s.tier.tierId
        fx.tierChanges.append(TierChange(no: s.nextTierChangeNo, at: t, from: old, to: new.tierId, cause: cause, eventId: event, qualifyingGrowth: q))
        s.nextTierChangeNo += 1
        s.tier = new
        tierChanged(&s, from: old, cause: cause, at: t, event: event, fx: &fx)
    }

    func pruneWindow(_ s: inout MemberState, _ p: ProgramDefinition) {
        var keepDays: Int
        switch p.assessment.kind {
        case .lifetime: keepDays = 0
        case .rolling: keepDays = (p.assessment.windowDays ?? 365) + p.assessment.graceDays + 2
        case .calendar: keepDays = 2 * 370 + p.assessment.graceDays
        }
        // The upgrade forecast looks at the last `paceDays`.
        keepDays = max(keepDays, Self.paceDays + 1)
        let horizon = s.asOf.adding(days: -keepDays)
        if let f = s.window.first, f.countsAt < horizon { s.window.removeAll { $0.countsAt < horizon } }
    }

    func entry(_ s: inout MemberState, fx: inout Effects, event: EventID?, at: Timestamp, account: Account = .points, points: Int64,
               reason: EntryReason, lot: Int?, order: String?, note: String? = nil) {
        guard points != 0 else { return }
        fx.entries.append(LedgerEntry(no: s.nextEntryNo, eventId: event, at: at, account: account, points: points, reason: reason, lotNo: lot, orderId: order, note: note))
        s.nextEntryNo += 1
    }
}
