public import CoreMetrics
public import Logging
import Metrics
public import ServiceLifecycle

/// Applies a retention policy on a schedule: every ``Configuration/interval`` (default daily),
/// first after one interval, with ``AuditStore/applyRetention(_:now:dryRun:batchSize:archive:progress:)``.
///
/// ```swift
/// let policy = try RetentionPolicy(parsingDefault: "90d", tenants: ["bank": "400d"])
/// let retention = RetentionService(store: store, policy: policy)
/// let group = ServiceGroup(services: [store, retention, app], gracefulShutdownSignals: [.sigterm], logger: logger)
/// ```
///
/// A failed run (a row or hold entry that does not verify, a full disk) is logged at error level,
/// counted, and retried at the next tick; it does not stop the service. Graceful shutdown ends the
/// wait; a run in progress finishes its current batch (each batch is one transaction).
///
/// **Observability.** Shaped like ``CheckpointService``. Metrics (prefix `auditdb` by default):
/// `auditdb_retention_runs_total`, `auditdb_retention_errors_total`,
/// `auditdb_retention_expired_total` (rows), `auditdb_retention_held_total` (rows a hold kept, per
/// run), `auditdb_retention_duration` and `auditdb_retention_last_success_timestamp_seconds`.
public struct RetentionService: Service {
    /// When to apply the policy, and where to log and count.
    public struct Configuration: Sendable {
        /// Time between runs. Default 24 hours.
        public var interval: Duration = .seconds(86_400)
        /// Rows per transaction (appends wait at most one batch). Default 10,000.
        public var batchSize: Int = 10_000
        /// Where failed runs are logged. Default: the store's logger, else `Logger.current`.
        public var logger: Logger?
        /// Metric label prefix. Default: the store's (`auditdb`).
        public var metricsPrefix: String?
        /// Where metrics go. Default: the store's factory, else `MetricsSystem.factory`.
        public var metricsFactory: (any MetricsFactory)?

        /// A configuration; every argument has the default documented on its property.
        public init(interval: Duration = .seconds(86_400), batchSize: Int = 10_000, logger: Logger? = nil,
                    metricsPrefix: String? = nil, metricsFactory: (any MetricsFactory)? = nil)
        {
            self.interval = interval
            self.batchSize = batchSize
            self.logger = logger
            self.metricsPrefix = metricsPrefix
            self.metricsFactory = metricsFactory
        }
    }

    struct RetentionMetrics: Sendable {
        let runs: Counter
        let failed: Counter
        let expired: Counter
        let held: Gauge
        let duration: Metrics.Timer
        let lastSuccess: Gauge

        init(_ observability: ServiceObservability) {
            runs = observability.counter("runs_total")
            failed = observability.counter("errors_total")
            expired = observability.counter("expired_total")
            held = observability.gauge("held_total")
            duration = observability.timer("duration")
            lastSuccess = observability.gauge("last_success_timestamp_seconds")
        }
    }

    let store: AuditStore
    /// The policy applied.
    public let policy: RetentionPolicy
    /// The configuration.
    public let configuration: Configuration
    let clock: ServiceClock
    let logger: Logger
    let metrics: RetentionMetrics
    let onRun: (@Sendable (RetentionReport) -> Void)?
    /// The time each run applies the policy at (tests move it forward; rows cannot be made old).
    var now: @Sendable () -> AuditTimestamp = { AuditTimestamp.now() }

    /// A service over `store`, scheduled on `clock` (inject a manual clock to drive it in tests).
    /// `onRun` is called after each successful run.
    public init<C: Clock>(store: AuditStore, policy: RetentionPolicy, configuration: Configuration = Configuration(), clock: C,
                          onRun: (@Sendable (RetentionReport) -> Void)? = nil) where C.Duration == Duration
    {
        self.store = store
        self.policy = policy
        self.configuration = configuration
        self.clock = ServiceClock(clock)
        let observability = ServiceObservability(
            component: "retention", logger: configuration.logger, metricsPrefix: configuration.metricsPrefix,
            metricsFactory: configuration.metricsFactory, store: store.configuration)
        logger = observability.logger
        metrics = RetentionMetrics(observability)
        self.onRun = onRun
    }

    /// A service over `store` on the continuous clock.
    public init(store: AuditStore, policy: RetentionPolicy, configuration: Configuration = Configuration(),
                onRun: (@Sendable (RetentionReport) -> Void)? = nil)
    {
        self.init(store: store, policy: policy, configuration: configuration, clock: ContinuousClock(), onRun: onRun)
    }

    /// Runs until the task is cancelled or the service group shuts down gracefully; then returns.
    public func run() async throws {
        _ = await cancelWhenGracefulShutdown { [self] in
            while true {
                do {
                    try await clock.sleep(configuration.interval)
                } catch {
                    return  // cancelled: graceful shutdown or the task ended
                }
                await attempt()
            }
        }
    }

    /// One run; failures are logged and counted, not thrown.
    private func attempt() async {
        let started = ContinuousClock.now
        metrics.runs.increment()
        do {
            let report = try await store.applyRetention(policy, now: now(), batchSize: configuration.batchSize)
            metrics.expired.increment(by: Int64(report.expired))
            metrics.held.record(Double(report.held))
            metrics.duration.record(duration: ContinuousClock.now - started)
            metrics.lastSuccess.record(Double(AuditTimestamp.now().microsecondsSinceEpoch) / 1_000_000)
            onRun?(report)
        } catch {
            if Task.isCancelled { return }
            metrics.failed.increment()
            logger.error("retention run failed; retrying at the next tick", metadata: ["store": "\(store.path)", "error": "\(error)"])
        }
    }
}
