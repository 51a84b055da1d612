public import AuditDB
public import CoreMetrics
import Foundation
import Logging
import Metrics
public import ServiceLifecycle

/// A ``CentralShipper`` as a long-running `Service`: ships the store's new entries, pauses
/// ``interval``, ships again; keeps the shipping cursor between rounds so that each reads only
/// the rows after the last shipment. A round that fails (PostgreSQL unreachable, the witness
/// refusing) is logged and counted, and the next round resumes after the last committed batch.
///
/// Metrics (through swift-metrics, with the prefix `auditdb`): `auditdb_ship_entries_total`,
/// `auditdb_ship_batches_total`, `auditdb_ship_errors_total` (counters),
/// `auditdb_ship_high_water_seq` and `auditdb_ship_last_success_timestamp_seconds` (gauges).
///
/// ```swift
/// let shipping = ShippingService(store: store, shipper: shipper, signer: signer, interval: .seconds(60))
/// let group = ServiceGroup(services: [witness, shipping], logger: logger)
/// ```
public struct ShippingService: Service {
    /// The store shipped.
    public let store: AuditStore
    /// The shipper.
    public let shipper: CentralShipper
    /// When given, each round first makes and publishes a checkpoint (everything appended so far
    /// is shipped); without it, rounds ship up to the newest checkpoint published by others
    /// (a `CheckpointService` with a `WitnessAnchor`).
    public let signer: CheckpointSigner?
    /// The pause after one round ends before the next starts.
    public let interval: Duration
    let clock: any Clock<Duration>
    let metricsPrefix: String
    let metricsFactory: (any MetricsFactory)?
    let onRound: (@Sendable (CentralShipper.Summary) async -> Void)?

    /// A service shipping `store` every `interval` on `clock` (a manual clock in tests);
    /// `onRound` gets each successful round's summary.
    public init<C: Clock>(store: AuditStore, shipper: CentralShipper, signer: CheckpointSigner? = nil, interval: Duration,
                          clock: C, metricsPrefix: String = "auditdb", metricsFactory: (any MetricsFactory)? = nil,
                          onRound: (@Sendable (CentralShipper.Summary) async -> Void)? = nil) where C.Duration == Duration
    {
        self.store = store
        self.shipper = shipper
        self.signer = signer
        self.interval = interval
        self.clock = clock
        self.metricsPrefix = metricsPrefix
        self.metricsFactory = metricsFactory
        self.onRound = onRound
    }

    /// A service on the continuous clock.
    public init(store: AuditStore, shipper: CentralShipper, signer: CheckpointSigner? = nil, interval: Duration,
                metricsPrefix: String = "auditdb", metricsFactory: (any MetricsFactory)? = nil,
                onRound: (@Sendable (CentralShipper.Summary) async -> Void)? = nil)
    {
        self.init(store: store, shipper: shipper, signer: signer, interval: interval, clock: ContinuousClock(),
                  metricsPrefix: metricsPrefix, metricsFactory: metricsFactory, onRound: onRound)
    }

    /// Ships now, then after every interval, until cancelled or a graceful shutdown (a batch in
    /// flight is then rolled back and shipped by the next run).
    public func run() async throws {
        let factory = metricsFactory ?? MetricsSystem.factory
        let entries = Counter(label: "\(metricsPrefix)_ship_entries_total", factory: factory)
        let batches = Counter(label: "\(metricsPrefix)_ship_batches_total", factory: factory)
        let errors = Counter(label: "\(metricsPrefix)_ship_errors_total", factory: factory)
        let high = Gauge(label: "\(metricsPrefix)_ship_high_water_seq", factory: factory)
        let last = Gauge(label: "\(metricsPrefix)_ship_last_success_timestamp_seconds", factory: factory)
        await cancelWhenGracefulShutdown {
            var cursor: ShippingCursor?
            while !Task.isCancelled {
                do {
                    let summary = try await shipper.ship(store, signer: signer, cursor: cursor)
                    cursor = summary.cursor
                    entries.increment(by: Int64(summary.shipped))
                    batches.increment(by: Int64(summary.batches))
                    high.record(summary.shippedAfter)
                    last.record(Date().timeIntervalSince1970)
                    await onRound?(summary)
                } catch {
                    if Task.isCancelled { return }
                    errors.increment()
                    shipper.logger.error("shipping round failed; the next round resumes after the last committed batch",
                                         metadata: ["store": "\(store.storeID)", "error": "\(error)"])
                }
                do {
                    try await clock.sleep(for: interval)
                } catch {
                    return  // cancelled
                }
            }
        }
    }
}
