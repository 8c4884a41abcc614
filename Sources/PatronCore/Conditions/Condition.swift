import Foundation

/// A compiled condition (条件): the one expression language of tag rules, segments, earning-rule
/// conditions and campaign eligibility. Compile it once when it is saved (syntax, names and
/// types are checked against a schema, limits enforced), then evaluate it for any number of
/// members. Evaluation is deterministic given its inputs, `now` and the program's clock.
///
/// ```swift
/// let c = try Condition.compile("now - member.lastOrderAt > duration('48h')", schema: .member).get()
/// c.holds(["member": member], now: now, clock: clock)   // .success(true)
/// ```
/// The language is described in docs/conditions.md.
public struct Condition: Sendable, CustomStringConvertible {
    /// Longest source, in Unicode scalars.
    public static let maxSourceLength = CondParser.maxSourceLength
    /// Deepest nesting of parentheses, lists, calls, unary operators and `?:`. A chain of one
    /// operator (`a || b || c`) is one level.
    public static let maxDepth = CondParser.maxDepth
    /// Most literals, names, operators and calls in one expression.
    public static let maxNodes = CondParser.maxNodes
    /// Evaluation steps allowed by default: one per node evaluated and per element an aggregate
    /// visits (and per 64 bytes a string method reads).
    public static let defaultBudget = 100_000

    /// What compiling gives, shared by copies (a condition is copied with the rules that hold it).
    final class Compiled: Sendable {
        let source: String
        let type: CondType
        let expecting: CondType
        let layout: CondLayout
        let root: CondNode
        let plan: CondPlan
        let timeIsLinear: Bool
        /// `root.usesTime` and `root.pos`, read at every evaluation.
        let usesTime: Bool
        let position: CondPos
        init(source: String, type: CondType, expecting: CondType, root: CondNode, layout: CondLayout) {
            self.source = source; self.type = type; self.expecting = expecting; self.root = root; self.layout = layout
            plan = CondPlan(root, layout: layout)
            timeIsLinear = root.timeIsLinear()
            usesTime = root.usesTime; position = root.pos
        }
    }
    let compiled: Compiled

    /// The normal form of the source: what `parse` gives back unchanged.
    public var source: String { compiled.source }
    /// The type of the value (for a condition, `bool` or `bool?`).
    public var type: CondType { compiled.type }
    /// The numbered slots and lists of the schema the condition was compiled against: a
    /// `CondSource` given to it answers by these numbers.
    public var layout: CondLayout { compiled.layout }
    var expecting: CondType { compiled.expecting }
    /// The checked tree, read by the reference evaluator (`CondEvaluator`).
    var root: CondNode { compiled.root }
    /// `root` with its names resolved against `layout` and flattened: what evaluation runs.
    var plan: CondPlan { compiled.plan }
    /// `root.timeIsLinear()`, worked out once.
    var timeIsLinear: Bool { compiled.timeIsLinear }
    init(source: String, type: CondType, expecting: CondType, root: CondNode, layout: CondLayout) {
        compiled = Compiled(source: source, type: type, expecting: expecting, root: root, layout: layout)
    }

    public var description: String { source }

    /// Parses and type-checks `source` against `schema`. The value must have the type
    /// `expecting` (or be its optional: a null result is then possible; for `bool`, null
    /// counts as false).
    public static func compile(_ source: String, schema: CondSchema, expecting: CondType = .bool) -> Result<Condition, CondError> {
        do throws(CondError) {
            let expr = try CondParser.parse(source)
            var checker = CondChecker(schema: schema)
            let (root, type) = try checker.check(expr)
            let want = expecting.base
            guard type == .null || type.base == want || checker.unify(want, type.base) == want else {
                throw CondError(.type, expr.start, "the expression must give \(want.prose), found \(type.prose)")
            }
            let layout = schema == .member ? CondLayout.member : CondLayout(schema: schema)
            return .success(Condition(source: CondPrinter.print(expr), type: type, expecting: want, root: root, layout: layout))
        } catch {
            return .failure(error)
        }
    }

    // MARK: evaluation over a source

    /// The value for the inputs `source` gives, by the numbers of `layout` (the member's state,
    /// a column of members, or values in a `CondValueSource`). `now` is the evaluation instant;
    /// parts of timestamps (`.month`, `.day`, …) are taken in `clock`'s time zone. A condition
    /// (expecting `bool`) gives `.bool`, with null as false.
    public func evaluate(_ source: some CondSource, now: Timestamp, clock: ProgramClock,
                         budget: Int = Condition.defaultBudget) -> Result<CondValue, CondError> {
        var runner = CondRunner(source: source, plan: plan, clock: clock, now: now.seconds, budget: budget)
        do throws(CondError) {
            let v = try runner.value(plan.root)
            return .success(expecting == .bool ? .bool(try CondEvaluator.truth(v, compiled.position)) : v)
        } catch {
            return .failure(error)
        }
    }

    /// Whether the condition holds (null is false).
    public func holds(_ source: some CondSource, now: Timestamp, clock: ProgramClock,
                      budget: Int = Condition.defaultBudget) -> Result<Bool, CondError> {
        evaluate(source, now: now, clock: clock, budget: budget).map { $0 == .bool(true) }
    }

    /// Whether the value may change with time alone (it uses `now` or `within`).
    public var dependsOnTime: Bool { compiled.usesTime }

    /// The earliest instant after `now` at which the value could change with the same inputs,
    /// or nil when it cannot change with time alone; a scheduler re-evaluates then (and asks
    /// again). Never later than the real change: crossings (`now - member.lastOrderAt >
    /// duration('48h')` changes at lastOrderAt + 48h + 1s), windows (an order enters
    /// `within(d)` at its time and leaves d later), parts of `now` (the next local day, month,
    /// year or hour, and time-zone transitions). When `now` is used in other ways (inside a
    /// list, `has`, an aggregate's expression, or as the result), the answer is `now` + 1s.
    /// Costs about twice an evaluation.
    public func nextChange(_ source: some CondSource, now: Timestamp, clock: ProgramClock,
                           budget: Int = Condition.defaultBudget) -> Result<Timestamp?, CondError> {
        guard compiled.usesTime else { return .success(nil) }
        guard timeIsLinear else { return .success(now.seconds < Int64.max ? Timestamp(seconds: now.seconds + 1) : nil) }
        var runner = CondRunner(source: source, plan: plan, clock: clock, now: now.seconds, budget: budget, tracing: true)
        do throws(CondError) {
            _ = try runner.eval(plan.root)
            return .success(runner.soonest.map { Timestamp(seconds: $0) })
        } catch {
            return .failure(error)
        }
    }

    /// `holds` and `nextChange` in one evaluation (for conditions whose time use can be
    /// followed; others are evaluated twice, as those two functions do).
    public func holdsAndNextChange(_ source: some CondSource, now: Timestamp, clock: ProgramClock,
                                   budget: Int = Condition.defaultBudget) -> Result<(holds: Bool, next: Timestamp?), CondError> {
        guard compiled.usesTime, timeIsLinear else {
            return holds(source, now: now, clock: clock, budget: budget).flatMap { h in nextChange(source, now: now, clock: clock, budget: budget).map { (h, $0) } }
        }
        var runner = CondRunner(source: source, plan: plan, clock: clock, now: now.seconds, budget: budget, tracing: true)
        do throws(CondError) {
            let v = try runner.value(plan.root)
            return .success((try CondEvaluator.truth(v, compiled.position), runner.soonest.map { Timestamp(seconds: $0) }))
        } catch {
            return .failure(error)
        }
    }

    // MARK: evaluation over values

    /// `evaluate` for the variables in `env` (named as in the schema; a missing variable or
    /// record field is null).
    public func evaluate(_ env: [String: CondValue], now: Timestamp, clock: ProgramClock,
                         budget: Int = Condition.defaultBudget) -> Result<CondValue, CondError> {
        evaluate(CondValueSource(env, layout: layout), now: now, clock: clock, budget: budget)
    }

    /// `holds` for the variables in `env`.
    public func holds(_ env: [String: CondValue], now: Timestamp, clock: ProgramClock,
                      budget: Int = Condition.defaultBudget) -> Result<Bool, CondError> {
        holds(CondValueSource(env, layout: layout), now: now, clock: clock, budget: budget)
    }

    /// `nextChange` for the variables in `env`.
    public func nextChange(_ env: [String: CondValue], now: Timestamp, clock: ProgramClock,
                           budget: Int = Condition.defaultBudget) -> Result<Timestamp?, CondError> {
        nextChange(CondValueSource(env, layout: layout), now: now, clock: clock, budget: budget)
    }

    /// `holdsAndNextChange` for the variables in `env`.
    public func holdsAndNextChange(_ env: [String: CondValue], now: Timestamp, clock: ProgramClock,
                                   budget: Int = Condition.defaultBudget) -> Result<(holds: Bool, next: Timestamp?), CondError> {
        holdsAndNextChange(CondValueSource(env, layout: layout), now: now, clock: clock, budget: budget)
    }

    // MARK: the reference

    /// `evaluate` by the reference evaluator, which walks the checked tree over dictionaries
    /// (for tests: evaluation must give the same).
    func referenceEvaluate(_ env: [String: CondValue], now: Timestamp, clock: ProgramClock,
                           budget: Int = Condition.defaultBudget) -> Result<CondValue, CondError> {
        var evaluator = CondEvaluator(env: env, clock: clock, now: now.seconds, budget: budget)
        do throws(CondError) {
            let v = try evaluator.eval(root)
            return .success(expecting == .bool ? .bool(try CondEvaluator.truth(v, root.pos)) : v)
        } catch {
            return .failure(error)
        }
    }

    /// `nextChange` by the reference evaluator.
    func referenceNextChange(_ env: [String: CondValue], now: Timestamp, clock: ProgramClock,
                             budget: Int = Condition.defaultBudget) -> Result<Timestamp?, CondError> {
        guard root.usesTime else { return .success(nil) }
        guard timeIsLinear else { return .success(now.seconds < Int64.max ? Timestamp(seconds: now.seconds + 1) : nil) }
        var evaluator = CondEvaluator(env: env, clock: clock, now: now.seconds, budget: budget, tracing: true)
        do throws(CondError) {
            _ = try evaluator.eval(root)
            return .success(evaluator.soonest.map { Timestamp(seconds: $0) })
        } catch {
            return .failure(error)
        }
    }

    /// `holdsAndNextChange` by the reference evaluator.
    func referenceHoldsAndNextChange(_ env: [String: CondValue], now: Timestamp, clock: ProgramClock,
                                     budget: Int = Condition.defaultBudget) -> Result<(holds: Bool, next: Timestamp?), CondError> {
        guard root.usesTime, timeIsLinear else {
            return referenceEvaluate(env, now: now, clock: clock, budget: budget).map { $0 == .bool(true) }.flatMap { h in
                referenceNextChange(env, now: now, clock: clock, budget: budget).map { (h, $0) }
            }
        }
        var evaluator = CondEvaluator(env: env, clock: clock, now: now.seconds, budget: budget, tracing: true)
        do throws(CondError) {
            let v = try evaluator.eval(root)
            return .success((try CondEvaluator.truth(v, root.pos), evaluator.soonest.map { Timestamp(seconds: $0) }))
        } catch {
            return .failure(error)
        }
    }

    /// Whether the condition reads the variable `name` (a cheap over-approximation: any mention).
    public func mentions(_ name: String) -> Bool { source.contains(name) }
}
