import Foundation
import Hummingbird
import Metrics
import PatronCore
import Prometheus

/// Prometheus metrics: Hummingbird's request metrics (count, duration, errors by route) and
/// Patron's own (events by kind and outcome, points earned and spent, idempotent replays), read
/// at `GET /metrics`. `bootstrap()` points swift-metrics at the registry once per process;
/// without it the counters cost nothing and `/metrics` is empty.
public enum PatronMetrics {
    public static let registry = PrometheusCollectorRegistry()
    nonisolated(unsafe) private static var bootstrapped = false
    private static let lock = NSLock()

    public static func bootstrap() {
        lock.lock(); defer { lock.unlock() }
        guard !bootstrapped else { return }
        bootstrapped = true
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    static func recorded(program: String, kind: EventKind, outcome: EventOutcome, replayed: Bool) {
        if replayed {
            Counter(label: "patron_idempotent_replays_total", dimensions: [("program", program)]).increment()
            return
        }
        Counter(label: "patron_events_total", dimensions: [("program", program), ("kind", kind.rawValue), ("status", outcome.status.rawValue)]).increment()
        if outcome.pointsEarned > 0 { Counter(label: "patron_points_earned_total", dimensions: [("program", program)]).increment(by: Int(outcome.pointsEarned)) }
        if outcome.pointsSpent > 0 { Counter(label: "patron_points_spent_total", dimensions: [("program", program)]).increment(by: Int(outcome.pointsSpent)) }
        if outcome.tierAfter != outcome.tierBefore {
            Counter(label: "patron_tier_changes_total", dimensions: [("program", program), ("to", outcome.tierAfter)]).increment()
        }
    }

    static func refused(program: String, type: String) {
        Counter(label: "patron_events_refused_total", dimensions: [("program", program), ("reason", type)]).increment()
    }

    static func text() -> String { registry.emitToString() }
}
