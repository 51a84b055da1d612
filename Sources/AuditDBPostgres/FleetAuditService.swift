import AuditDB
import CoreMetrics
import Foundation
import Logging
import Metrics
public import ServiceLifecycle

/// The fleet auditor as a long-running `Service`: sweeps the witness, pauses ``interval``,
/// sweeps again, and exposes what it found as metrics (docs/fleet.md).
///
/// Metrics (through swift-metrics; bootstrap a backend such as swift-prometheus), with the
/// auditor's prefix (`auditdb`):
/// - `auditdb_fleet_findings{kind=…}` (gauge): findings of each kind in the latest sweep;
/// - `auditdb_fleet_findings_total{kind=…}` (counter): findings counted by every sweep;
/// - `auditdb_fleet_stores`, `auditdb_fleet_stores_with_findings` (gauges);
/// - `auditdb_fleet_sweeps_total`, `auditdb_fleet_sweep_errors_total`,
///   `auditdb_fleet_sweep_stalls_total` (counters),
///   `auditdb_fleet_last_sweep_timestamp_seconds` (gauge), `auditdb_fleet_sweep_duration` (timer).
///
/// ```swift
/// let service = FleetAuditService(auditor: auditor, interval: .seconds(30)) { report in
///     if !report.isIntact { alert(report.text) }
/// }
/// let group = ServiceGroup(services: [witness, service], logger: logger)
/// ```
public struct FleetAuditService: Service {
    /// The auditor it runs.
    public let auditor: FleetAuditor
    /// The pause after one sweep ends before the next starts.
    public let interval: Duration
    /// A sweep that makes no progress (reads no publication, judges no store) for this long is
    /// given up: logged and counted as failed (`auditdb_fleet_sweep_errors_total`), and the next
    /// one runs on time. PostgresNIO may never return from a read whose server stopped
    /// answering; without this the service would wait for ever, and not stop on a graceful
    /// shutdown either (that waits at most this long, twice). Default 120 s.
    public var stallLimit: Duration = .seconds(120)
    /// The clock ``stallLimit`` is measured on: the continuous clock, or a manual one in tests.
    var stallClock: any Clock<Duration> = ContinuousClock()
    let clock: any Clock<Duration>
    let onReport: (@Sendable (FleetReport) async -> Void)?

    /// A service sweeping with `auditor` every `interval` on `clock` (a manual clock in tests);
    /// `onReport` gets each sweep's report.
    public init<C: Clock>(auditor: FleetAuditor, interval: Duration, clock: C,
                          onReport: (@Sendable (FleetReport) async -> Void)? = nil) where C.Duration == Duration
    {
        self.auditor = auditor
        self.interval = interval
        self.clock = clock
        self.onReport = onReport
    }

    /// A service on the continuous clock.
    public init(auditor: FleetAuditor, interval: Duration, onReport: (@Sendable (FleetReport) async -> Void)? = nil) {
        self.init(auditor: auditor, interval: interval, clock: ContinuousClock(), onReport: onReport)
    }

    /// Sweeps now, then every interval, until cancelled or a graceful shutdown. A sweep that
    /// fails (the witness unreachable) is logged and counted; the next one runs on time.
    public func run() async throws {
        let factory = auditor.configuration.metricsFactory ?? MetricsSystem.factory
        let prefix = auditor.configuration.metricsPrefix
        let sweeps = Counter(label: "\(prefix)_fleet_sweeps_total", factory: factory)
        let errors = Counter(label: "\(prefix)_fleet_sweep_errors_total", factory: factory)
        let stalls = Counter(label: "\(prefix)_fleet_sweep_stalls_total", factory: factory)
        let last = Gauge(label: "\(prefix)_fleet_last_sweep_timestamp_seconds", factory: factory)
        let duration = Metrics.Timer(label: "\(prefix)_fleet_sweep_duration", factory: factory)
        let current = Dictionary(uniqueKeysWithValues: FleetFinding.Kind.all.map {
            ($0, Gauge(label: "\(prefix)_fleet_findings", dimensions: [("kind", $0.name)], factory: factory))
        })
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let started = ContinuousClock.now
                do {
                    let outcome = await StallGuard.run(limit: stallLimit, clock: stallClock) { [auditor] progress in
                        try await auditor.audit(progress: progress)
                    }
                    let report: FleetReport
                    switch outcome {
                    case .finished(let result): report = try result.get()
                    case .cancelled: return
                    case .stalled:
                        // Its connection stays with the abandoned read (PostgresNIO may never
                        // return it): stalls that repeat use the pool up; restart the service.
                        stalls.increment()
                        throw AuditError(.storage, "the sweep made no progress for \(stallLimit): the witness stopped answering; gave it up (its connection is abandoned with it: if stalls repeat, restart the service)")
                    }
                    sweeps.increment()
                    duration.record(duration: ContinuousClock.now - started)
                    last.record(report.auditedAt.timeIntervalSince1970)
                    for kind in FleetFinding.Kind.all {
                        current[kind]?.record(report.findings.filter { $0.finding.kind == kind }.count)
                    }
                    await onReport?(report)
                } catch {
                    if Task.isCancelled { return }
                    errors.increment()
                    auditor.logger.error("fleet audit sweep failed; retrying at the next one", metadata: ["error": "\(error)"])
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
