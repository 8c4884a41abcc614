import Foundation
import Hummingbird
import Logging
import PatronCore
import PatronStore
import ServiceLifecycle

/// Runs the scheduled work (expiry, pending points, tier assessment, allowances, birthday gifts,
/// tag timers) every `interval` while the server runs; stops with the server.
public struct JobService: Service {
    let store: Store
    let now: @Sendable () -> Timestamp
    let interval: Duration
    let logger: Logger

    public init(store: Store, now: @escaping @Sendable () -> Timestamp, interval: Duration = .seconds(30), logger: Logger) {
        self.store = store; self.now = now; self.interval = interval; self.logger = logger
    }

    public func run() async throws {
        await repeatEvery(interval, logger: logger, failure: "jobs failed") {
            let t = now()
            let r = try await store.runJobs(asOf: t, now: t)
            if r.members > 0 { logger.info("jobs ran", metadata: ["members": "\(r.members)", "expiredPoints": "\(r.expiredPoints)", "tierChanges": "\(r.tierChanges)"]) }
        }
    }
}

/// Runs `work` every `interval` until graceful shutdown; a failure is logged and the loop goes on.
func repeatEvery(_ interval: Duration, logger: Logger, failure: String, _ work: () async throws -> Void) async {
    while !Task.isCancelled && !Task.isShuttingDownGracefully {
        do { try await work() } catch { logger.error("\(failure)", metadata: ["error": "\(error)"]) }
        // Only the wait is cut short by a shutdown; work under way finishes.
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
    }
}

/// Scores members once a local day per program: RFM and lifecycle, then the churn warning (the
/// customer-base models fitted on the program's orders). Its own service, so a long fit does
/// not hold up expiry and assessments.
public struct ScoringService: Service {
    let store: Store
    let now: @Sendable () -> Timestamp
    let interval: Duration
    let logger: Logger

    public init(store: Store, now: @escaping @Sendable () -> Timestamp, interval: Duration = .seconds(300), logger: Logger) {
        self.store = store; self.now = now; self.interval = interval; self.logger = logger
    }

    public func run() async throws {
        // The local day each program was last scored.
        var scored: [String: Int64] = [:]
        await repeatEvery(interval, logger: logger, failure: "scoring failed") {
            let t = now()
            for program in try await store.programKeys() {
                let day = try await store.program(program).at(t).clock.dayNumber(t)
                guard scored[program] != day else { continue }
                let n = try await store.computeRFM(program: program, asOf: t)
                scored[program] = day
                logger.info("members scored", metadata: ["program": "\(program)", "members": "\(n)"])
                // Too little history to fit is logged, not fatal; the previous fit stays.
                do {
                    let c = try await store.computeChurn(program: program, asOf: t)
                    logger.info("churn fitted", metadata: ["program": "\(program)", "members": "\(c.members)", "atRisk": "\(c.atRisk)"])
                } catch { logger.warning("churn not fitted", metadata: ["program": "\(program)", "error": "\(error)"]) }
            }
        }
    }
}

/// Keeps saved segments current: every `interval`, each program's members written since (and
/// those whose time conditions fall due) are evaluated again and their entries and exits
/// recorded. Run it on one instance.
public struct SegmentService: Service {
    let store: Store
    let now: @Sendable () -> Timestamp
    let interval: Duration
    let logger: Logger

    public init(store: Store, now: @escaping @Sendable () -> Timestamp, interval: Duration = .seconds(2), logger: Logger) {
        self.store = store; self.now = now; self.interval = interval; self.logger = logger
    }

    public func run() async throws {
        await repeatEvery(interval, logger: logger, failure: "segment refresh failed") {
            for program in try await store.programKeys() {
                let r = try await store.refreshSegments(program: program, now: now())
                if r.entered + r.exited > 0 {
                    logger.info("segments refreshed", metadata: ["program": "\(program)", "evaluated": "\(r.evaluated)", "entered": "\(r.entered)", "exited": "\(r.exited)"])
                }
            }
        }
    }
}

public enum PatronApp {
    /// The one wiring point: the API on a store, with the job runner beside it.
    public static func build(store: Store, host: String, port: Int, now: @escaping @Sendable () -> Timestamp = PatronApp.systemNow,
                             jobsInterval: Duration? = .seconds(30), benchRoutes: Bool = false, logger: Logger) -> some ApplicationProtocol {
        let api = API(store: store, now: now)
        let router = api.router()
        if benchRoutes { api.addBareRoute(router) }
        var services: [any Service] = []
        if let jobsInterval {
            services.append(JobService(store: store, now: now, interval: jobsInterval, logger: logger))
            services.append(ScoringService(store: store, now: now, logger: logger))
            services.append(SegmentService(store: store, now: now, logger: logger))
        }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "patron"),
                           services: services, logger: logger)
    }

    @Sendable public static func systemNow() -> Timestamp { Timestamp(seconds: Int64(Date().timeIntervalSince1970)) }
}
