import CoreMetrics
import Logging
import Metrics

/// Where one of AuditDB's services logs and what it counts, resolved once when the service is
/// made, in the same order for every service: the service's own configuration, then the store's
/// configuration, then the creating task's `Logger.current` (swift-log's task-local logger) and
/// the process-wide `MetricsSystem.factory`.
///
/// Metric names follow one scheme, `<prefix>_<component>_<measure>`: counters end in `_total`,
/// timers are `_duration`, gauges name their unit (`_timestamp_seconds`, `_seq`). The prefix is
/// the store's ``AuditStore/Configuration/metricsPrefix`` (`auditdb`) unless the service sets
/// its own; the component is `scan` for ``IntegrityScanner`` and `checkpoint` for
/// ``CheckpointService``.
struct ServiceObservability: Sendable {
    let logger: Logger
    private let prefix: String
    private let component: String
    private let factory: any MetricsFactory

    init(component: String, logger: Logger?, metricsPrefix: String?, metricsFactory: (any MetricsFactory)?,
         store: AuditStore.Configuration)
    {
        self.component = component
        self.logger = logger ?? store.logger ?? Logger.current
        self.prefix = metricsPrefix ?? store.metricsPrefix
        self.factory = metricsFactory ?? store.metricsFactory ?? MetricsSystem.factory
    }

    /// The full name of `measure`: `<prefix>_<component>_<measure>`.
    func label(_ measure: String) -> String { "\(prefix)_\(component)_\(measure)" }

    func counter(_ measure: String, dimensions: [(String, String)] = []) -> Counter {
        Counter(label: label(measure), dimensions: dimensions, factory: factory)
    }
    func timer(_ measure: String) -> Metrics.Timer { Metrics.Timer(label: label(measure), factory: factory) }
    func gauge(_ measure: String) -> Gauge { Gauge(label: label(measure), factory: factory) }
}
