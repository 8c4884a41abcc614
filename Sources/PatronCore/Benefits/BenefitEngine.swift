import Foundation

extension Engine {
    /// A new member's state at registration: in the first tier, with that tier's allowances for
    /// the current period.
    public func start(member: MemberID, registeredAt t: Timestamp, effects fx: inout Effects) -> MemberState {
        let v = program.at(t)
        var s = MemberState(memberId: member, registeredAt: t, baseTier: v.definition.tiers[0].id)
        refreshAllowances(&s, v: v, at: t, fx: &fx)
        return s
    }

    // MARK: birthdays

    /// Records the member's birthday and when the next birthday gift is due: now, when `t` is in
    /// the birthday month (or on the day) and this year's was not given, else the next one.
    func setBirthday(_ s: inout MemberState, at t: Timestamp) {
        scheduleBirthday(&s, after: t, includingNow: true)
    }

    func scheduleBirthday(_ s: inout MemberState, after t: Timestamp, includingNow: Bool) {
        let v = program.at(t)
        guard let b = s.birthday, let rule = v.definition.birthday else { s.wallet.nextBirthdayAt = nil; return }
        let today = v.clock.date(t)
        for year in [today.year, today.year + 1, today.year + 2] where year > s.wallet.birthdayYear {
            let (start, end) = birthdayPeriod(b, year: year, rule.when, v.clock)
            if includingNow ? t < end : t < start {
                s.wallet.nextBirthdayAt = max(start, t)
                return
            }
        }
        s.wallet.nextBirthdayAt = nil
    }

    /// The birthday month or day in `year`, as [start, end).
    func birthdayPeriod(_ b: CivilDate, year: Int, _ when: BirthdayRule.When, _ clock: ProgramClock) -> (Timestamp, Timestamp) {
        switch when {
        case .month:
            let first = CivilDate(year: year, month: b.month, day: 1)
            return (clock.startOfDay(first), clock.startOfDay(first.firstOfMonth(addingMonths: 1)))
        case .day:
            let day = b.month == 2 && b.day == 29 && !CivilDate.isLeap(year) ? 28 : b.day
            let d = CivilDate(year: year, month: b.month, day: day)
            return (clock.startOfDay(d), clock.startOfDay(CivilDate(dayNumber: d.dayNumber + 1)))
        }
    }

    func birthdayGift(_ s: inout MemberState, at t: Timestamp, fx: inout Effects) {
        let v = program.at(t), p = v.definition
        let year = v.clock.date(t).year
        if let rule = p.birthday, let b = p.benefit(rule.benefit), year > s.wallet.birthdayYear, rule.tiers.map({ $0.contains(s.tier.tierId) }) ?? true {
            s.wallet.birthdayYear = year
            for k in 1...rule.count { grant(&s, b, id: "bd.\(year).\(k)", cause: .birthday, tier: nil, event: nil, at: t, v: v, fx: &fx) }
        }
        // This year's is given (or not due to this tier): the next is next year's.
        s.wallet.birthdayYear = max(s.wallet.birthdayYear, year)
        scheduleBirthday(&s, after: t, includingNow: false)
    }

    // MARK: granting

    @discardableResult
    func grant(_ s: inout MemberState, _ b: BenefitDefinition, id: String, cause: GrantCause, tier: String?, event: EventID?, at t: Timestamp,
               v: ProgramVersions.Version, note: String? = nil, fx: inout Effects) -> String {
        var g = BenefitGrant(id: id, benefitId: b.id, cause: cause, tierId: tier, eventId: event, grantedAt: t, note: note)
        if b.autoClaim {
            claim(&g, b, member: s.memberId, at: t, v: v)
        } else if let w = b.claimWindow {
            g.claimBy = w.end(start: t, grantedAt: t, clock: v.clock)
        } else if let w = b.useWindow {
            // Without a claim window, a fixed use deadline is also the claim deadline.
            switch w { case .days: break; case .until, .endOfPeriod: g.claimBy = w.end(start: t, grantedAt: t, clock: v.clock) }
        }
        s.wallet.grants.append(g)
        fx.grants[id] = g
        return id
    }

    func claim(_ g: inout BenefitGrant, _ b: BenefitDefinition, member: MemberID, at t: Timestamp, v: ProgramVersions.Version) {
        g.claimedAt = t
        g.useBy = b.useWindow?.end(start: t, grantedAt: g.grantedAt, clock: v.clock)
        g.code = codes.code(member: member, grant: g.id)
    }

    /// What a tier change does to benefits: reaching a tier grants its upgrade gifts once; a fall
    /// may take back what the lost tiers gave; the new tier's allowances start.
    func tierChanged(_ s: inout MemberState, from old: String, cause: TierChangeCause, at t: Timestamp, event: EventID?, fx: inout Effects) {
        let v = program.at(t), p = v.definition
        guard let to = p.tierIndex(s.tier.tierId) else { return }
        let from = p.tierIndex(old) ?? 0
        if to > from {
            let tier = p.tiers[to]
            // Once per tier, or once per tier and local year.
            let mark = p.benefitPolicy.upgradeGiftsOncePer == .year ? "\(tier.id)@\(v.clock.date(t).year)" : tier.id
            if !s.wallet.upgradeGifted.contains(mark) {
                s.wallet.upgradeGifted.insert(mark)
                let round = (s.wallet.upgradeRounds[tier.id] ?? 0) + 1
                s.wallet.upgradeRounds[tier.id] = round
                for (k, id) in tier.benefits.enumerated() {
                    if let b = p.benefit(id) { grant(&s, b, id: "up.\(tier.id).\(round).\(k + 1)", cause: .upgrade, tier: tier.id, event: event, at: t, v: v, fx: &fx) }
                }
            }
        } else if to < from {
            let lost = Set(p.tiers[(to + 1)...].map(\.id))
            // A refund that undoes an upgrade undoes its gifts; an assessment takes back only
            // when the program says so.
            let undo = cause == .refund
            if undo || p.benefitPolicy.revokeOnDowngrade {
                for i in s.wallet.grants.indices {
                    let g = s.wallet.grants[i]
                    guard let tid = g.tierId, lost.contains(tid), g.use == nil, g.revokedAt == nil, g.isOpen(at: t) else { continue }
                    guard undo ? g.cause == .upgrade : true else { continue }
                    s.wallet.grants[i].revokedAt = t
                    fx.grants[g.id] = s.wallet.grants[i]
                }
            }
            if undo { s.wallet.upgradeGifted = s.wallet.upgradeGifted.filter { !lost.contains(String($0.split(separator: "@")[0])) } }
        }
        refreshAllowances(&s, v: v, at: t, fx: &fx)
    }

    /// Grants the held tier's allowances for the period containing `t` when not yet granted, and
    /// sets when the next ones are due.
    func refreshAllowances(_ s: inout MemberState, v: ProgramVersions.Version, at t: Timestamp, fx: inout Effects) {
        let p = v.definition
        guard let idx = p.tierIndex(s.tier.tierId) else { s.wallet.nextAllowanceAt = nil; return }
        let tier = p.tiers[idx]
        var next: Timestamp? = nil
        for a in tier.allowances {
            let period: CalendarPeriod = a.every == .month ? .month : .year
            let start = periodStart(containing: t, period, v.clock)
            let key = "\(tier.id)/\(a.benefit)/\(a.every.rawValue)"
            if s.wallet.allowanceMarks[key] != start, let b = p.benefit(a.benefit) {
                s.wallet.allowanceMarks[key] = start
                let d = v.clock.date(start)
                let stamp = d.year * 10000 + d.month * 100 + d.day
                for k in 1...a.count { grant(&s, b, id: "al.\(tier.id).\(b.id).\(stamp).\(k)", cause: .allowance, tier: tier.id, event: nil, at: t, v: v, fx: &fx) }
            }
            let end = periodEnd(containing: t, period, v.clock)
            next = min(next ?? end, end)
        }
        s.wallet.nextAllowanceAt = next
    }

    // MARK: member actions

    func staffGrant(_ s: inout MemberState, _ g: BenefitGranted, event: EventID, at t: Timestamp, v: ProgramVersions.Version, out: inout EventOutcome, fx: inout Effects) throws {
        guard let b = v.definition.benefit(g.benefit) else { throw EngineError.benefit(.unknownBenefit(g.benefit)) }
        for k in 1...max(1, g.count) {
            let id = grant(&s, b, id: "st.\(event).\(k)", cause: .staff, tier: nil, event: event, at: t, v: v, note: "\(g.staff): \(g.reason)", fx: &fx)
            out.grants = (out.grants ?? []) + [id]
        }
    }

    func claimGrant(_ s: inout MemberState, _ c: BenefitClaimed, at t: Timestamp, v: ProgramVersions.Version, out: inout EventOutcome, fx: inout Effects) throws {
        guard let i = s.wallet.grants.firstIndex(where: { $0.id == c.grant }) else { throw EngineError.benefit(.unknownGrant(c.grant)) }
        let g = s.wallet.grants[i]
        let status = g.status(at: t)
        guard status == .claimable else {
            if status == .expired, g.claimedAt == nil, let by = g.claimBy { throw EngineError.benefit(.claimWindowClosed(grant: g.id, closedAt: by)) }
            throw EngineError.benefit(.notClaimable(grant: g.id, status: status))
        }
        // A grant outlives program versions: the definition in force now decides the use window.
        guard let b = v.definition.benefit(g.benefitId) else { throw EngineError.benefit(.unknownBenefit(g.benefitId)) }
        claim(&s.wallet.grants[i], b, member: s.memberId, at: t, v: v)
        fx.grants[g.id] = s.wallet.grants[i]
        out.grants = [g.id]
    }

    func redeem(_ s: inout MemberState, _ r: BenefitRedeemed, event: EventID, at t: Timestamp, v: ProgramVersions.Version, out: inout EventOutcome, fx: inout Effects) throws {
        guard let i = s.wallet.grants.firstIndex(where: { $0.id == r.grant }) else { throw EngineError.benefit(.unknownGrant(r.grant)) }
        let g = s.wallet.grants[i]
        switch g.status(at: t) {
        case .claimed: break
        case .claimable: throw EngineError.benefit(.notClaimed(grant: g.id))
        case .used: throw EngineError.benefit(.alreadyUsed(grant: g.id, at: g.use!.at, orderId: g.use!.orderId))
        case .expired:
            if let by = g.useBy, g.claimedAt != nil { throw EngineError.benefit(.useWindowClosed(grant: g.id, closedAt: by)) }
            throw EngineError.benefit(.notClaimed(grant: g.id))
        case let other: throw EngineError.benefit(.notUsable(grant: g.id, status: other))
        }
        guard let b = v.definition.benefit(g.benefitId) else { throw EngineError.benefit(.unknownBenefit(g.benefitId)) }
        if let ch = b.channels, !ch.contains(r.channel ?? "") { throw EngineError.benefit(.channelNotAccepted(channel: r.channel, accepted: ch)) }
        if let st = b.stores, !st.contains(r.store ?? "") { throw EngineError.benefit(.storeNotAccepted(store: r.store, accepted: st)) }
        // Combining: this benefit with the others named, and with what was already used on the order.
        let onOrder = s.wallet.grants.filter { $0.use?.orderId == r.orderId && $0.refundedAt == nil }.map(\.benefitId)
        let others = onOrder + (r.combinedWith ?? []).map { "code \($0)" }
        if !others.isEmpty {
            if !b.combinable { throw EngineError.benefit(.notCombinable(benefit: b.id, with: others)) }
            for id in onOrder { if let ob = v.definition.benefit(id), !ob.combinable { throw EngineError.benefit(.notCombinable(benefit: id, with: [b.id])) } }
        }
        if let limit = b.limit {
            let from = periodStart(containing: t, limit.per, v.clock), until = periodEnd(containing: t, limit.per, v.clock)
            let used = s.wallet.grants.filter { $0.benefitId == b.id && $0.refundedAt == nil && $0.use.map { $0.at >= from && $0.at < until } ?? false }.count
            if used >= limit.count { throw EngineError.benefit(.limitReached(benefit: b.id, count: limit.count, per: limit.per)) }
        }
        if b.kind == .pointsMultiplier, s.orders[r.orderId] != nil { throw EngineError.benefit(.orderAlreadyPaid(orderId: r.orderId)) }
        let discount: Int64
        switch b.discount(for: r) {
        case .success(let d): discount = d
        case .failure(let refusal): throw EngineError.benefit(refusal)
        }
        s.wallet.grants[i].use = BenefitUse(eventId: event, at: t, orderId: r.orderId, discountMinor: discount, channel: r.channel, store: r.store)
        fx.grants[g.id] = s.wallet.grants[i]
        out.grants = [g.id]
        out.discountMinor = discount
    }

    func reverse(_ s: inout MemberState, grant id: String, at t: Timestamp, v: ProgramVersions.Version, out: inout EventOutcome, fx: inout Effects) throws {
        guard let i = s.wallet.grants.firstIndex(where: { $0.id == id }) else { throw EngineError.benefit(.unknownGrant(id)) }
        let g = s.wallet.grants[i]
        guard g.use != nil, g.refundedAt == nil else { throw EngineError.benefit(.notUsed(grant: id)) }
        let back = v.definition.benefit(g.benefitId)?.returnOnReversal ?? false
        if back, g.useBy.map({ t < $0 }) ?? true {
            s.wallet.grants[i].use = nil
        } else {
            s.wallet.grants[i].refundedAt = t
        }
        fx.grants[id] = s.wallet.grants[i]
        out.grants = [id]
    }

    /// The points factor of multiplier benefits written off on the order, in thousandths.
    func benefitFactor(_ s: MemberState, order: String, _ p: ProgramDefinition) -> Int64? {
        let fs = s.wallet.grants.compactMap { g -> Int64? in
            guard g.use?.orderId == order, g.refundedAt == nil, let b = p.benefit(g.benefitId), b.kind == .pointsMultiplier else { return nil }
            return b.factorPermille
        }
        return fs.max()
    }

    /// A whole order refunded takes back the benefits used on it.
    func reverseUses(_ s: inout MemberState, order: String, at t: Timestamp, v: ProgramVersions.Version, out: inout EventOutcome, fx: inout Effects) {
        for g in s.wallet.grants where g.use?.orderId == order && g.refundedAt == nil {
            try? reverse(&s, grant: g.id, at: t, v: v, out: &out, fx: &fx)
        }
    }

    /// Drops settled grants older than a year and a month from the state (they stay in the
    /// store's table); per-period limits and reversals look back no further.
    func pruneWallet(_ s: inout MemberState) {
        let horizon = s.asOf.adding(days: -400)
        if s.wallet.grants.contains(where: { g in g.settledAt.map { $0 < horizon } ?? false }) {
            s.wallet.grants.removeAll { g in g.settledAt.map { $0 < horizon } ?? false }
        }
    }
}
