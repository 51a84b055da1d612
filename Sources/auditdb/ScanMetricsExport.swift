import AuditDB
import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// What `auditdb scan --every … --metrics-address` serves: AuditDB's own swift-metrics (the
/// store's appends, the scanner's passes, findings by kind, rows checked, the checkpoint
/// service's results) through swift-prometheus, plus one figure computed at scrape time,
/// `auditdb_scan_seconds_since_last_intact_full_pass`. The metric list and alert rules are in
/// docs/operations.md.
final class ScanMetricsExport: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// Give this to the store's configuration: the scanner and the checkpoint service use the
    /// store's factory.
    let factory: PrometheusMetricsFactory
    /// The last intact full pass recorded in the store before this process started.
    private let recorded = Mutex<AuditTimestamp?>(nil)

    init() {
        factory = PrometheusMetricsFactory(registry: registry)
    }

    /// Seeds the figures from the store's signed scan history (`auditdb status`), so that a
    /// restarted scanner does not report "no intact full pass" until its own first full pass.
    func seed(from status: RecordedScanStatus) {
        guard let full = status.lastFullPass, full.isIntact else { return }
        // The pass's start, as the scanner's own gauge has it: the record is written at its end.
        let micros = full.duration.components.seconds * 1_000_000 + full.duration.components.attoseconds / 1_000_000_000_000
        let started = AuditTimestamp(microsecondsSinceEpoch: full.recordedAt.microsecondsSinceEpoch - max(0, micros))
        recorded.withLock { $0 = started }
        // The scanner's own gauge (same label, so the same series); its passes overwrite it.
        CoreMetrics.Gauge(label: "auditdb_scan_last_intact_full_pass_timestamp_seconds", factory: factory)
            .record(Double(started.microsecondsSinceEpoch) / 1_000_000)
    }

    /// The Prometheus text for one scrape. Runs on the metrics endpoint's thread; reads the
    /// scanner's status from memory only.
    func render(_ scanner: IntegrityScanner) -> [UInt8] {
        let fromScanner = scanner.status.lastIntactFullPassAt
        let fromStore = recorded.withLock { $0 }
        let last = [fromScanner, fromStore].compactMap { $0 }.max()
        if let last {
            // Absent until an intact full pass is known: a zero would read as "just now".
            let seconds = Double(AuditTimestamp.now().microseconds(since: last)) / 1_000_000
            CoreMetrics.Gauge(label: "auditdb_scan_seconds_since_last_intact_full_pass", factory: factory).record(max(0, seconds))
        }
        return registry.emitToBuffer()
    }
}
