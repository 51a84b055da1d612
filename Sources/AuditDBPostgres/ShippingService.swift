public import AuditDB
public import CoreMetrics
import Foundation
public import Logging
import PostgresNIO
import Metrics
public import ServiceLifecycle

/// A ``CentralShipper`` as a long-running `Service`: ships the store's new entries, pauses
/// ``interval``, ships again; keeps the shipping cursor between rounds so that each reads only
/// the rows after the last shipment. A round that fails (PostgreSQL unreachable, the witness
/// refusing) is logged and counted, and the next round resumes after the last committed batch.
///
/// **Stalls.** PostgresNIO 1.33.2 sometimes never returns from a query whose connection was lost
/// (a server restart, a frozen server or network path). A round that makes no progress — no
/// checkpoint planned, no batch committed — for ``stallLimit`` is given up: cancelled and left
/// behind (it holds no thread), logged, and counted in `auditdb_ship_stalls_total`. A service
/// made from connections (``init(store:central:witness:configuration:signer:interval:stallLimit:logger:metricsPrefix:metricsFactory:onRound:)``)
/// then drops its connection pools and opens new ones for the next round; one given a
/// ``CentralShipper`` keeps its pools (which the app runs) and only retries.
///
/// **Held back.** A round against a checkpoint older than an expiry entry stops before the rows
/// it expired (``CentralShipper/Summary/heldBackAt``): logged as a warning, set in
/// `auditdb_ship_held_back_seq`, and not counted as a success; the next round with a newer
/// checkpoint ships them. A round that gives way to an expiry committed meanwhile (`busy`) is
/// logged as a warning and counted in the errors; the next round plans again.
///
/// Metrics (through swift-metrics, with the prefix `auditdb`): `auditdb_ship_entries_total`,
/// `auditdb_ship_batches_total`, `auditdb_ship_errors_total`, `auditdb_ship_stalls_total`
/// (counters), `auditdb_ship_high_water_seq`, `auditdb_ship_held_back_seq` (0 when not held
/// back) and `auditdb_ship_last_success_timestamp_seconds` (gauges).
///
/// ```swift
/// let shipping = ShippingService(store: store, central: try WitnessConnection(url: url), signer: signer,
///                                interval: .seconds(60), logger: logger)
/// let group = ServiceGroup(services: [shipping], logger: logger)
/// ```
public struct ShippingService: Service {
    /// Where rounds get their shipper: one the app runs, or connections the service runs itself.
    enum Source: Sendable {
        case shipper(CentralShipper)
        case connections(central: WitnessConnection, witness: WitnessConnection?, configuration: CentralShipper.Configuration,
                         logger: Logger)
    }

    /// The store shipped.
    public let store: AuditStore
    let source: Source
    /// When given, each round first makes and publishes a checkpoint (everything appended so far
    /// is shipped); without it, rounds ship up to the newest checkpoint published by others
    /// (a `CheckpointService` with a `WitnessAnchor`).
    public let signer: CheckpointSigner?
    /// The pause after one round ends before the next starts.
    public let interval: Duration
    /// How long a round may go without progress (planned, or a batch committed) before it is
    /// given up as stalled. Measured on the continuous clock (real time), whatever ``interval``'s
    /// clock is; it must exceed the time to plan a shipment (every new row is read and verified
    /// first) and to commit one batch.
    public let stallLimit: Duration
    let clock: any Clock<Duration>
    /// The clock ``stallLimit`` is measured on: the continuous clock, or a manual one in tests
    /// (so that a loaded machine cannot make a slow round look stalled).
    var stallClock: any Clock<Duration> = ContinuousClock()
    let metricsPrefix: String
    let metricsFactory: (any MetricsFactory)?
    let onRound: (@Sendable (CentralShipper.Summary) async -> Void)?

    /// A service shipping `store` through `shipper` every `interval` on `clock` (a manual clock in
    /// tests); `onRound` gets each successful round's summary. The app runs the shipper's pools.
    public init<C: Clock>(store: AuditStore, shipper: CentralShipper, signer: CheckpointSigner? = nil, interval: Duration,
                          stallLimit: Duration = .seconds(120), clock: C, metricsPrefix: String = "auditdb",
                          metricsFactory: (any MetricsFactory)? = nil,
                          onRound: (@Sendable (CentralShipper.Summary) async -> Void)? = nil) where C.Duration == Duration
    {
        self.init(store: store, source: .shipper(shipper), signer: signer, interval: interval, stallLimit: stallLimit,
                  clock: clock, metricsPrefix: metricsPrefix, metricsFactory: metricsFactory, onRound: onRound)
    }

    /// A service on the continuous clock.
    public init(store: AuditStore, shipper: CentralShipper, signer: CheckpointSigner? = nil, interval: Duration,
                stallLimit: Duration = .seconds(120), metricsPrefix: String = "auditdb", metricsFactory: (any MetricsFactory)? = nil,
                onRound: (@Sendable (CentralShipper.Summary) async -> Void)? = nil)
    {
        self.init(store: store, shipper: shipper, signer: signer, interval: interval, stallLimit: stallLimit, clock: ContinuousClock(),
                  metricsPrefix: metricsPrefix, metricsFactory: metricsFactory, onRound: onRound)
    }

    /// A service that connects to `central` (and `witness`, if the checkpoints are kept in
    /// another database) itself, runs its own connection pools, and replaces them after a
    /// stalled round. `clock` paces the rounds (a manual clock in tests).
    public init<C: Clock>(store: AuditStore, central: WitnessConnection, witness: WitnessConnection? = nil,
                          configuration: CentralShipper.Configuration = .init(), signer: CheckpointSigner? = nil,
                          interval: Duration, stallLimit: Duration = .seconds(120), clock: C, logger: Logger,
                          metricsPrefix: String = "auditdb", metricsFactory: (any MetricsFactory)? = nil,
                          onRound: (@Sendable (CentralShipper.Summary) async -> Void)? = nil) where C.Duration == Duration
    {
        self.init(store: store, source: .connections(central: central, witness: witness, configuration: configuration, logger: logger),
                  signer: signer, interval: interval, stallLimit: stallLimit, clock: clock, metricsPrefix: metricsPrefix,
                  metricsFactory: metricsFactory, onRound: onRound)
    }

    /// The one place the stored properties are set: the public initialisers differ only in `source`.
    private init(store: AuditStore, source: Source, signer: CheckpointSigner?, interval: Duration, stallLimit: Duration,
                 clock: any Clock<Duration>, metricsPrefix: String, metricsFactory: (any MetricsFactory)?,
                 onRound: (@Sendable (CentralShipper.Summary) async -> Void)?)
    {
        self.store = store
        self.source = source
        self.signer = signer
        self.interval = interval
        self.stallLimit = stallLimit
        self.clock = clock
        self.metricsPrefix = metricsPrefix
        self.metricsFactory = metricsFactory
        self.onRound = onRound
    }

    /// The same on the continuous clock.
    public init(store: AuditStore, central: WitnessConnection, witness: WitnessConnection? = nil,
                configuration: CentralShipper.Configuration = .init(), signer: CheckpointSigner? = nil, interval: Duration,
                stallLimit: Duration = .seconds(120), logger: Logger, metricsPrefix: String = "auditdb",
                metricsFactory: (any MetricsFactory)? = nil, onRound: (@Sendable (CentralShipper.Summary) async -> Void)? = nil)
    {
        self.init(store: store, central: central, witness: witness, configuration: configuration, signer: signer, interval: interval,
                  stallLimit: stallLimit, clock: ContinuousClock(), logger: logger, metricsPrefix: metricsPrefix,
                  metricsFactory: metricsFactory, onRound: onRound)
    }

    /// A shipper and, for a service made from connections, the task running its pools.
    struct Session: Sendable {
        let shipper: CentralShipper
        let pools: Task<Void, Never>?

        init(_ source: Source) {
            switch source {
            case .shipper(let shipper):
                self.shipper = shipper
                pools = nil
            case .connections(let centralConnection, let witnessConnection, let configuration, let logger):
                let central = PostgresWitness(centralConnection, logger: logger)
                let witness = witnessConnection.map { PostgresWitness($0, logger: logger) } ?? central
                shipper = CentralShipper(central: central, witness: witness, configuration: configuration, logger: logger)
                // Not awaited when closed: a pool whose connection hangs may be slow to stop, and
                // the service goes on with new pools meanwhile.
                pools = Task {
                    await withDiscardingTaskGroup { group in
                        group.addTask { await central.client.run() }
                        if witness !== central { group.addTask { await witness.client.run() } }
                    }
                }
            }
        }

        func close() { pools?.cancel() }
    }

    /// Ships now, then after every interval, until cancelled or a graceful shutdown (a batch in
    /// flight is then rolled back and shipped by the next run).
    public func run() async throws {
        let factory = metricsFactory ?? MetricsSystem.factory
        let entries = Counter(label: "\(metricsPrefix)_ship_entries_total", factory: factory)
        let batches = Counter(label: "\(metricsPrefix)_ship_batches_total", factory: factory)
        let errors = Counter(label: "\(metricsPrefix)_ship_errors_total", factory: factory)
        let stalls = Counter(label: "\(metricsPrefix)_ship_stalls_total", factory: factory)
        let high = Gauge(label: "\(metricsPrefix)_ship_high_water_seq", factory: factory)
        let last = Gauge(label: "\(metricsPrefix)_ship_last_success_timestamp_seconds", factory: factory)
        let heldBack = Gauge(label: "\(metricsPrefix)_ship_held_back_seq", factory: factory)
        let (store, signer, stallLimit, stallClock, onRound) = (self.store, self.signer, self.stallLimit, self.stallClock, self.onRound)
        await cancelWhenGracefulShutdown {
            var cursor: ShippingCursor?
            var session: Session?
            defer { session?.close() }
            while !Task.isCancelled {
                let current = session ?? Session(source)
                session = current
                let outcome = await StallGuard.run(limit: stallLimit, clock: stallClock) { [cursor] progress in
                    try await current.shipper.ship(store, signer: signer, cursor: cursor) { _ in progress() }
                }
                switch outcome {
                case .finished(.success(let summary)):
                    cursor = summary.cursor
                    entries.increment(by: Int64(summary.shipped))
                    batches.increment(by: Int64(summary.batches))
                    high.record(summary.shippedAfter)
                    heldBack.record(summary.heldBackAt ?? 0)
                    if let seq = summary.heldBackAt {
                        // Not a success: rows the checkpoint covers wait for a newer checkpoint.
                        current.shipper.logger.warning(
                            "shipping held back at an expired row whose expiry entry is above the newest published checkpoint; a newer checkpoint (the service's signer, or a CheckpointService anchored to the witness) ships it",
                            metadata: ["store": "\(store.storeID)", "heldBackAt": "\(seq)"])
                    } else {
                        last.record(Date().timeIntervalSince1970)
                    }
                    await onRound?(summary)
                case .finished(.failure(let error)):
                    if Task.isCancelled { return }
                    errors.increment()
                    if (error as? AuditError)?.code == .busy {
                        // Rows changed under the round (an expiry meanwhile), or another shipper of
                        // the store shipped them first: the next round plans again.
                        current.shipper.logger.warning("shipping round gave way (the store changed under it, or another shipper shipped the same rows); the next round resumes after the last committed batch",
                                                       metadata: ["store": "\(store.storeID)", "error": "\(error)"])
                    } else {
                        current.shipper.logger.error("shipping round failed; the next round resumes after the last committed batch",
                                                     metadata: ["store": "\(store.storeID)", "error": "\(error)"])
                    }
                case .stalled:
                    stalls.increment()
                    let replaced = current.pools != nil
                    current.close()
                    if replaced { session = nil }
                    current.shipper.logger.error(
                        "shipping round stalled: no progress for \(stallLimit) (PostgreSQL stopped answering); gave it up\(replaced ? " and reconnect for the next round" : ""); committed batches stay",
                        metadata: ["store": "\(store.storeID)"])
                case .cancelled:
                    return
                }
                do {
                    try await clock.sleep(for: interval.sleepable)
                } catch {
                    return  // cancelled
                }
            }
        }
    }
}
