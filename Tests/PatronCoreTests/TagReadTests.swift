import Foundation
import Testing
@testable import PatronCore

/// What a rule reads, from its compiled plan, and the rules events leave alone because of it.
@Suite struct TagReadTests {
    /// The paths a condition reads (slots by their path, lists by name), and whether a tag rule
    /// with it reads only the profile.
    @Test(arguments: [
        ("member.profile.birthday.month == now.month", ["member.profile.birthday"], true),
        ("member.orderCount == 1 && now - member.lastOrderAt >= duration('48h')", ["member.lastOrderAt", "member.orderCount"], false),
        ("orders.count() >= 3 && orders.filter(o, o.usedCoupon).count() * 2 > orders.count()", ["orders"], false),
        ("orders.within('30d').sum(amount) >= 100000", ["orders"], false),
        ("has(member.profile) && member.profile.city == 'Shanghai'", ["member.profile", "member.profile.city"], true),
        ("member.rfm == null && member.profile.gender == 'female'", ["member.profile.gender", "member.rfm"], true),
        ("(now - member.registeredAt).days >= 365 && member.registeredAt.month == now.month", ["member.registeredAt"], true),
        ("now.dayOfWeek >= 6", [], true),
        // The whole member: anything.
        ("has(member)", ["member"], false),
        ("'vip_care' in member.tags", ["member.tags"], false),
        ("member.tier in ['gold', 'diamond']", ["member.tier"], false),
        ("member.points.available >= 1000 || member.profile.city == 'Shanghai'", ["member.points.available", "member.profile.city"], false),
        // Lists and strings have no bound on their steps: not left alone.
        ("member.profile.city in ['Shanghai', 'Beijing']", ["member.profile.city"], false),
        ("member.profile.name.startsWith('王')", ["member.profile.name"], false),
    ])
    func readsOfRules(_ source: String, _ paths: [String], _ onlyProfile: Bool) throws {
        let c = try Condition.compile(source, schema: .member).get()
        let reads = c.plan.reads
        let layout = CondLayout.member
        var read = reads.slots.map { slot in layout.slots.first { $0.value == slot }!.key }
        read += reads.lists.map { list in layout.lists.first { $0.value == list }!.key }
        #expect(read.sorted() == paths.sorted(), "\(source)")
        #expect(!reads.unnumbered)
        #expect(TagRule.onlyProfile(c) == onlyProfile, "\(source)")
    }

    /// Bounds on steps hold: the steps a bounded condition is charged never exceed its bound
    /// (a budget of exactly the bound never runs out), over generated expressions and members.
    @Test(arguments: 0..<4)
    func stepBoundsHold(_ seed: Int) throws {
        var generator = ConditionTests.Generator(rng: SplitMix(seed: UInt64(seed) &+ 91))
        var rng = SeededRandom(seed: UInt64(seed) &+ 17)
        var bounded = 0
        for _ in 0..<400 {
            guard case .success(let c) = Condition.compile(generator.expr("bool", 4, []), schema: .member), let bound = c.plan.reads.maxSteps else { continue }
            bounded += 1
            let t = t0.adding(seconds: Int64.random(in: 0...(400 * 86_400), using: &rng))
            let env: [String: CondValue] = [
                "member": ["orderCount": .int(Int64.random(in: 0...3, using: &rng)), "registeredAt": .timestamp(t0),
                           "lastOrderAt": Bool.random(using: &rng) ? .timestamp(t.adding(days: -Int.random(in: 0...100, using: &rng))) : .null,
                           "profile": ["birthday": .date(CivilDate(year: 1990, month: Int.random(in: 1...12, using: &rng), day: 3)), "marketingConsent": .bool(Bool.random(using: &rng))]],
            ]
            let clock = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
            if case .failure(let e) = c.holdsAndNextChange(env, now: t, clock: clock, budget: bound) {
                #expect(e.kind != .budget, "\(c) bound \(bound)")
            }
        }
        #expect(bounded > 20)
    }

    /// The program of `TagTests` with rules on the profile and generated rules.
    static func program(seed: Int) throws -> ProgramDefinition {
        var p = try tagProgram()
        let profileRules = [
            "member.profile.birthday.month == now.month",
            "has(member.profile.city) && member.profile.marketingConsent == true",
            "member.profile.birthday.day == now.day || now.dayOfWeek == 7",
            "member.rfm == null && (now - member.registeredAt).days >= 20 && member.profile.city == 'Shanghai'",
            "member.profile.birthday.month == now.month ? member.registeredAt < now - duration('30d') : false",
        ]
        var generator = ConditionTests.Generator(rng: SplitMix(seed: UInt64(seed) &+ 3))
        var generated: [String] = []
        while generated.count < 4 {
            if case .success(let c) = Condition.compile(generator.expr("bool", 3, []), schema: .member), !c.source.contains("member.identities") { generated.append(c.source) }
        }
        for (i, rule) in (profileRules + generated).enumerated() {
            p.tags.append(TagDefinition(id: "r\(i)", name: LocalizedText(zh: "r\(i)", en: "r\(i)"), category: .behaviour, rule: rule, description: nil))
        }
        return p
    }

    /// The same versions with no rule left alone: every rule evaluated after every event.
    static func evaluatingAll(_ versions: [ProgramVersions.Version]) -> ProgramVersions {
        ProgramVersions(versions.map { v in
            var v = v
            v.tagRules = v.tagRules.map { var r = $0; r.readsOnlyProfile = false; return r }
            return v
        })
    }

    /// Leaving the rules that read only the profile alone at events that do not set it gives
    /// exactly what evaluating every rule after every event gives: the same state (tags, timers),
    /// tag changes with their instants and causes, and everything else, over generated
    /// histories with profile changes, manual tags, refunds, stored and reloaded states, a new
    /// program version, and one made to count from before the member's last event.
    @Test(arguments: 0..<8)
    func leavingRulesAloneChangesNothing(_ seed: Int) throws {
        var rng = SeededRandom(seed: UInt64(seed) &+ 555)
        let p1 = try Self.program(seed: seed)
        var p2 = p1
        p2.tags.append(TagDefinition(id: "late", name: LocalizedText(zh: "late", en: "late"), category: .lifecycle,
                                     rule: "has(member.profile.birthday) && member.profile.birthday.month != now.month", description: nil))
        let change = t0.adding(days: 200)
        let v1 = ProgramVersions.Version(version: 1, effectiveFrom: t0.adding(days: -10), definition: p1)
        let v2 = ProgramVersions.Version(version: 2, effectiveFrom: change, definition: p2)
        var h = Harness(versions: ProgramVersions([v1, v2]))
        var r = Harness(versions: Self.evaluatingAll([v1, v2]))
        #expect(h.engine.program.versions[0].tagRules.contains { $0.readsOnlyProfile })
        #expect(!r.engine.program.versions[0].tagRules.contains { $0.readsOnlyProfile })
        var t = t0, n = 0
        for step in 0..<300 {
            t = t.adding(seconds: Int64.random(in: 1...(3 * 86_400), using: &rng))
            let body: EventBody?
            switch Int.random(in: 0..<12, using: &rng) {
            case 0..<5:
                n += 1
                let amount = Int64.random(in: 500...80_000, using: &rng)
                body = .orderPaid(OrderPaid(orderId: "o\(n)", lines: [OrderLine(sku: "s", category: ["shoes", "bags"].randomElement(using: &rng)!, amountMinor: amount,
                                                                                 discountMinor: Bool.random(using: &rng) ? amount / 10 : 0)]))
            case 5:
                body = n > 0 ? .orderRefunded(OrderRefunded(orderId: "o\(Int.random(in: 1...n, using: &rng))")) : nil
            case 6:
                let profile = MemberProfile(name: "王", gender: Bool.random(using: &rng) ? .female : nil,
                                            birthday: Bool.random(using: &rng) ? CivilDate(year: 1990, month: Int.random(in: 1...12, using: &rng), day: Int.random(in: 1...28, using: &rng)) : nil,
                                            city: Bool.random(using: &rng) ? "Shanghai" : nil, marketingConsent: Bool.random(using: &rng))
                body = .profileSet(ProfileSet(profile: profile))
            case 7:
                body = .tagSet(TagSet(tag: "vip_care", add: Bool.random(using: &rng), by: "ops"))
            case 8:
                body = .pointsAdjusted(PointsAdjusted(points: Int64.random(in: 1...500, using: &rng), reason: "goodwill", staff: "ops"))
            case 9:
                // Stored and read back, as the store does between events.
                h.state = try StateCodec.decode(StateCodec.encode(h.state))
                r.state = try StateCodec.decode(StateCodec.encode(r.state))
                body = nil
            default:
                body = nil
            }
            if let body {
                let a = try? h.send(body, at: t), b = try? r.send(body, at: t)
                #expect(a == b, "seed \(seed) step \(step)")
            } else {
                h.advance(to: t)
                r.advance(to: t)
            }
            #expect(h.state == r.state, "seed \(seed) step \(step)")
            #expect(h.tagChangesAll == r.tagChangesAll, "seed \(seed) step \(step)")
            #expect(h.entries == r.entries)
            if h.state != r.state || h.tagChangesAll != r.tagChangesAll { return }
        }
        #expect(h.state.tagsEvaluatedVersion == 2)
        // A version made to count from before the last event (the state was kept under version
        // 2): the next event evaluates every rule of the new one.
        var p3 = p2
        p3.tags.append(TagDefinition(id: "retro", name: LocalizedText(zh: "retro", en: "retro"), category: .lifecycle,
                                     rule: "member.profile.city == 'Shanghai' || member.profile.city == null", description: nil))
        let v3 = ProgramVersions.Version(version: 3, effectiveFrom: h.state.lastEventAt!.adding(days: -1), definition: p3)
        h.engine = Engine(program: ProgramVersions([v1, v2, v3]))
        r.engine = Engine(program: Self.evaluatingAll([v1, v2, v3]))
        t = t.adding(days: 1)
        n += 1
        try h.order("o\(n)", 1000, at: t)
        try r.order("o\(n)", 1000, at: t)
        #expect(h.state.tags["retro"] != nil)
        #expect(h.state == r.state)
        #expect(h.tagChangesAll == r.tagChangesAll)
    }
}
