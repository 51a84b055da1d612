public import Logging
public import ServiceLifecycle

/// Makes checkpoints periodically: every ``Configuration/interval`` or every
/// ``Configuration/rows`` new rows, whichever comes first, and (by default) once more on
/// graceful shutdown so the last rows are anchored too.
///
/// Run it in a `ServiceGroup` next to your app:
/// ```swift
/// let checkpoints = CheckpointService(store: store, signer: signer, anchors: [DirectoryAnchor(path: "/mnt/worm/audit")])
/// let group = ServiceGroup(services: [app, checkpoints], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// A failed checkpoint (the store does not verify, an anchor is unreachable) is logged at error
/// level and retried at the next tick; it does not stop the service or the group.
public struct CheckpointService<C: Clock>: Service where C.Duration == Duration {
    /// When to checkpoint.
    public struct Configuration: Sendable {
        /// At most this long between checkpoints while rows are being appended. Default 5 minutes.
        public var interval: Duration = .seconds(300)
        /// A checkpoint as soon as this many rows were appended since the last one. Default 10,000.
        public var rows: Int64 = 10_000
        /// How often to look at the row count. Default 1 second.
        public var pollInterval: Duration = .seconds(1)
        /// Whether to make a last checkpoint when shutting down gracefully. Default true.
        public var checkpointsOnShutdown = true

        /// The defaults.
        public init() {}
    }

    let store: AuditStore
    let signer: CheckpointSigner
    let anchors: [any AnchorSink]
    let configuration: Configuration
    let clock: C
    let logger: Logger
    let onCheckpoint: (@Sendable (Checkpoint) -> Void)?

    /// A service with an injected clock (tests use a manual one).
    ///
    /// - Parameters:
    ///   - onCheckpoint: Called after each checkpoint is made, e.g. to export metrics.
    public init(store: AuditStore, signer: CheckpointSigner, anchors: [any AnchorSink] = [],
                configuration: Configuration = Configuration(), clock: C, logger: Logger? = nil,
                onCheckpoint: (@Sendable (Checkpoint) -> Void)? = nil)
    {
        self.store = store
        self.signer = signer
        self.anchors = anchors
        self.configuration = configuration
        self.clock = clock
        self.logger = logger ?? store.logger
        self.onCheckpoint = onCheckpoint
    }

    /// Runs until the task is cancelled or the service group shuts down gracefully; then
    /// returns normally (after the shutdown checkpoint, if configured).
    public func run() async throws {
        let start = try await store.usableCheckpoint(trusting: signer.publicKeys)?.checkpoint.seq ?? 0
        let startTime = clock.now
        let reached: Int64? = try await cancelWhenGracefulShutdown { [self] in
            var seq = start, time = startTime
            while true {
                do {
                    try await clock.sleep(for: configuration.pollInterval)
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
                let due = appended >= configuration.rows || (appended > 0 && time.duration(to: clock.now) >= configuration.interval)
                guard due else { continue }
                if let made = await attempt() { seq = made }
                time = clock.now
            }
        }
        if configuration.checkpointsOnShutdown, !Task.isCancelled, try await store.lastSeq() > (reached ?? start) {
            _ = await attempt()
        }
    }

    /// One checkpoint; failures are logged, not thrown, so one bad tick does not stop the service.
    private func attempt() async -> Int64? {
        do {
            let checkpoint = try await store.checkpoint(signer: signer, anchors: anchors)
            onCheckpoint?(checkpoint)
            return checkpoint.seq
        } catch {
            // Cancelled by shutdown: the shutdown checkpoint (outside the cancelled scope) follows.
            if Task.isCancelled { return nil }
            logger.error("periodic checkpoint failed; retrying at the next tick",
                         metadata: ["store": "\(store.path)", "error": "\(error)"])
            return nil
        }
    }
}

extension CheckpointService where C == ContinuousClock {
    /// A service on the continuous clock.
    public init(store: AuditStore, signer: CheckpointSigner, anchors: [any AnchorSink] = [],
                configuration: Configuration = Configuration(), logger: Logger? = nil,
                onCheckpoint: (@Sendable (Checkpoint) -> Void)? = nil)
    {
        self.init(store: store, signer: signer, anchors: anchors, configuration: configuration, clock: ContinuousClock(),
                  logger: logger, onCheckpoint: onCheckpoint)
    }
}
