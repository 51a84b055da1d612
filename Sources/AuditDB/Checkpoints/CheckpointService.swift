public import CoreMetrics
public import Logging
import Metrics
public import ServiceLifecycle

/// Makes checkpoints periodically: every ``Configuration/interval`` or every
/// ``Configuration/rows`` new rows, whichever comes first, and (by default) once more on
/// graceful shutdown so the last rows are anchored too.
///
/// Run it in a `ServiceGroup` after the store (services shut down in reverse order, so the
/// shutdown checkpoint is made before the store closes):
/// ```swift
/// let checkpoints = CheckpointService(store: store, signer: signer, anchors: [DirectoryAnchor(path: "/mnt/worm/audit")])
/// let group = ServiceGroup(services: [store, checkpoints, app], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// A failed checkpoint (the store does not verify, an anchor is unreachable) is logged at error
/// level, counted, and retried at the next tick; it does not stop the service or the group.
///
/// **Observability.** Shaped like ``IntegrityScanner``: the ``Configuration`` may carry a
/// `Logger` and a metrics factory; without them the service uses the store's, then the creating
/// task's `Logger.current` and `MetricsSystem.factory`. Metrics (prefix `auditdb` by default):
/// `auditdb_checkpoint_made_total`, `auditdb_checkpoint_errors_total` (attempts that failed),
/// `auditdb_checkpoint_duration` (each successful checkpoint, wall-clock),
/// `auditdb_checkpoint_last_success_timestamp_seconds` and `auditdb_checkpoint_through_seq` (the
/// last checkpoint's seq). Checkpoints made directly with ``AuditStore/checkpoint(signer:anchors:progress:)``
/// are not counted.
public struct CheckpointService: Service {
    /// When to checkpoint, and where to log and count.
    public struct Configuration: Sendable {
        /// At most this long between checkpoints while rows are being appended. Default 5 minutes.
        public var interval: Duration = .seconds(300)
        /// A checkpoint as soon as this many rows were appended since the last one. Default 10,000.
        public var rows: Int64 = 10_000
        /// How often to look at the row count. Default 1 second.
        public var pollInterval: Duration = .seconds(1)
        /// Whether to make a last checkpoint when shutting down gracefully. Default true.
        public var checkpointsOnShutdown = true
        /// The store's integrity scanner, if one runs beside this service. While its last pass
        /// found damage, no checkpoint is made (a periodic one is logged and counted as failed,
        /// the shutdown one is thrown): a checkpoint signs the log as it is, and anchors would then
        /// vouch for a tail that was cut and appended to again. Default nil (not consulted).
        public var scanner: IntegrityScanner?
        /// Where failed checkpoints are logged (error level). Default: the store's configured
        /// logger, else `Logger.current` of the task that creates the service.
        public var logger: Logger?
        /// Metric label prefix. Default: the store's (`auditdb`).
        public var metricsPrefix: String?
        /// Where metrics go. Default: the store's factory, else `MetricsSystem.factory`.
        public var metricsFactory: (any MetricsFactory)?

        /// A configuration; every argument has the default documented on its property.
        public init(interval: Duration = .seconds(300), rows: Int64 = 10_000, pollInterval: Duration = .seconds(1),
                    checkpointsOnShutdown: Bool = true, logger: Logger? = nil, metricsPrefix: String? = nil,
                    metricsFactory: (any MetricsFactory)? = nil)
        {
            self.interval = interval
            self.rows = rows
            self.pollInterval = pollInterval
            self.checkpointsOnShutdown = checkpointsOnShutdown
            self.logger = logger
            self.metricsPrefix = metricsPrefix
            self.metricsFactory = metricsFactory
        }
    }

    struct CheckpointMetrics: Sendable {
        let made: Counter
        let failed: Counter
        let duration: Metrics.Timer
        let lastSuccess: Gauge
        let throughSeq: Gauge

        init(_ observability: ServiceObservability) {
            made = observability.counter("made_total")
            failed = observability.counter("errors_total")
            duration = observability.timer("duration")
            lastSuccess = observability.gauge("last_success_timestamp_seconds")
            throughSeq = observability.gauge("through_seq")
        }
    }

    let store: AuditStore
    let signer: CheckpointSigner
    let anchors: [any AnchorSink]
    /// The configuration.
    public let configuration: Configuration
    let clock: ServiceClock
    let logger: Logger
    let metrics: CheckpointMetrics
    let onCheckpoint: (@Sendable (Checkpoint) -> Void)?

    /// A service over `store`, scheduled on `clock` (inject a manual clock to drive it in tests).
    ///
    /// - Parameters:
    ///   - store: The store to checkpoint.
    ///   - signer: The checkpoint signing key.
    ///   - anchors: Where each checkpoint is written besides the store.
    ///   - configuration: The schedule, and where to log and count.
    ///   - clock: The clock the service polls and measures ``Configuration/interval`` on.
    ///   - onCheckpoint: Called after each checkpoint is made.
    public init<C: Clock>(store: AuditStore, signer: CheckpointSigner, anchors: [any AnchorSink] = [],
                          configuration: Configuration = Configuration(), clock: C,
                          onCheckpoint: (@Sendable (Checkpoint) -> Void)? = nil) where C.Duration == Duration
    {
        self.store = store
        self.signer = signer
        self.anchors = anchors
        self.configuration = configuration
        self.clock = ServiceClock(clock)
        let observability = ServiceObservability(
            component: "checkpoint", logger: configuration.logger, metricsPrefix: configuration.metricsPrefix,
            metricsFactory: configuration.metricsFactory, store: store.configuration)
        self.logger = observability.logger
        self.metrics = CheckpointMetrics(observability)
        self.onCheckpoint = onCheckpoint
    }

    /// A service over `store` on the continuous clock.
    public init(store: AuditStore, signer: CheckpointSigner, anchors: [any AnchorSink] = [],
                configuration: Configuration = Configuration(), onCheckpoint: (@Sendable (Checkpoint) -> Void)? = nil)
    {
        self.init(store: store, signer: signer, anchors: anchors, configuration: configuration, clock: ContinuousClock(),
                  onCheckpoint: onCheckpoint)
    }

    /// Runs until the task is cancelled or the service group shuts down gracefully; then
    /// returns normally after the shutdown checkpoint, if configured.
    ///
    /// A failed periodic checkpoint is logged and counted, and the next tick tries again. A
    /// failed shutdown checkpoint has no next tick: `run()` throws it (the last rows are not
    /// anchored), so that a `ServiceGroup` ends with an error rather than report a clean stop.
    public func run() async throws {
        let start: Int64
        do {
            start = try await store.usableCheckpoint(trusting: signer.publicKeys)?.checkpoint.seq ?? 0
        } catch {
            if Task.isCancelled { return }  // stopped before it began: nothing to checkpoint
            throw error
        }
        let startTime = clock.elapsed()
        let reached: Int64? = try await cancelWhenGracefulShutdown { [self] in
            var seq = start, time = startTime, blocked = false
            while true {
                do {
                    try await clock.sleep(configuration.pollInterval)
                } catch {
                    return seq  // cancelled: graceful shutdown or the task ended
                }
                let appended: Int64
                do {
                    appended = try await store.lastSeq() - seq
                } catch {
                    // Shutdown may cancel the read itself; only a failure outside shutdown is one.
                    if Task.isCancelled { return seq }
                    throw error
                }
                let due = appended >= configuration.rows
                    || (appended > 0 && clock.elapsed() - time >= configuration.interval)
                guard due else { continue }
                if let why = blockedReason() {
                    // Logged and counted once per spell, not once a poll: it lasts until the
                    // damage is dealt with (for lost rows, until the scanner is restarted).
                    if !blocked {
                        blocked = true
                        metrics.failed.increment()
                        logger.error("no checkpoint is made while the integrity scanner reports damage",
                                     metadata: ["store": "\(store.path)", "reason": "\(why)"])
                    }
                    continue
                }
                blocked = false
                if let made = await attempt() { seq = made }
                time = clock.elapsed()
            }
        }
        if configuration.checkpointsOnShutdown, !Task.isCancelled, try await store.lastSeq() > (reached ?? start) {
            do {
                _ = try await checkpointOnce()
            } catch {
                metrics.failed.increment()
                logger.error("shutdown checkpoint failed: the rows since the last checkpoint are not anchored",
                             metadata: ["store": "\(store.path)", "error": "\(error)"])
                throw error
            }
        }
    }

    /// Why the scanner given in the configuration forbids a checkpoint now, or nil.
    private func blockedReason() -> String? { configuration.scanner?.damageForCheckpoints }

    /// One checkpoint, counted and reported when made.
    private func checkpointOnce() async throws -> Int64 {
        if let why = blockedReason() {
            throw AuditError(.integrityViolation, "no checkpoint was made: the integrity scanner reports damage: \(why). A checkpoint now would sign the damaged log and its anchors would vouch for it (docs/scanning.md)")
        }
        let started = ContinuousClock.now
        let checkpoint = try await store.checkpoint(signer: signer, anchors: anchors)
        metrics.made.increment()
        metrics.duration.record(duration: ContinuousClock.now - started)
        metrics.lastSuccess.record(Double(AuditTimestamp.now().microsecondsSinceEpoch) / 1_000_000)
        metrics.throughSeq.record(Double(checkpoint.seq))
        onCheckpoint?(checkpoint)
        return checkpoint.seq
    }

    /// One checkpoint; failures are logged and counted, not thrown, so one bad tick does not
    /// stop the service.
    private func attempt() async -> Int64? {
        do {
            return try await checkpointOnce()
        } catch {
            // Cancelled by shutdown: the shutdown checkpoint (outside the cancelled scope) follows.
            if Task.isCancelled { return nil }
            metrics.failed.increment()
            logger.error("periodic checkpoint failed; retrying at the next tick",
                         metadata: ["store": "\(store.path)", "error": "\(error)"])
            return nil
        }
    }
}

extension CheckpointService {
    /// A service with the logger as an argument (now ``Configuration/logger``).
    @available(*, deprecated, message: "set configuration.logger and use init(store:signer:anchors:configuration:clock:onCheckpoint:)")
    public init<C: Clock>(store: AuditStore, signer: CheckpointSigner, anchors: [any AnchorSink] = [],
                          configuration: Configuration = Configuration(), clock: C, logger: Logger?,
                          onCheckpoint: (@Sendable (Checkpoint) -> Void)? = nil) where C.Duration == Duration
    {
        var configuration = configuration
        configuration.logger = configuration.logger ?? logger
        self.init(store: store, signer: signer, anchors: anchors, configuration: configuration, clock: clock,
                  onCheckpoint: onCheckpoint)
    }

    /// A service on the continuous clock with the logger as an argument (now ``Configuration/logger``).
    @available(*, deprecated, message: "set configuration.logger and use init(store:signer:anchors:configuration:onCheckpoint:)")
    public init(store: AuditStore, signer: CheckpointSigner, anchors: [any AnchorSink] = [],
                configuration: Configuration = Configuration(), logger: Logger?,
                onCheckpoint: (@Sendable (Checkpoint) -> Void)? = nil)
    {
        var configuration = configuration
        configuration.logger = configuration.logger ?? logger
        self.init(store: store, signer: signer, anchors: anchors, configuration: configuration, clock: ContinuousClock(),
                  onCheckpoint: onCheckpoint)
    }
}
