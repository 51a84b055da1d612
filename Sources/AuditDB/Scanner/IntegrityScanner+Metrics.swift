import Metrics

extension IntegrityScanner {
    /// The scanner's metrics (prefix `auditdb_scan_` by default; the list is in the type's
    /// documentation).
    struct ScanMetrics: Sendable {
        let passes: Counter
        let failedPasses: Counter
        let rowsVerified: Counter
        let findings: Counter
        let duration: Metrics.Timer
        let lastSuccess: Gauge
        let lastIntactFullPass: Gauge
        let verifiedThrough: Gauge
        let observability: ServiceObservability

        init(_ observability: ServiceObservability) {
            self.observability = observability
            passes = observability.counter("passes_total")
            failedPasses = observability.counter("errors_total")
            rowsVerified = observability.counter("rows_verified_total")
            findings = observability.counter("findings_total")
            duration = observability.timer("duration")
            lastSuccess = observability.gauge("last_success_timestamp_seconds")
            lastIntactFullPass = observability.gauge("last_intact_full_pass_timestamp_seconds")
            verifiedThrough = observability.gauge("verified_through_seq")
        }

        /// Counts `findings` by kind (a metrics factory hands out the same counter per label and
        /// dimensions, so making one per pass is cheap).
        func count(_ findings: [Finding]) {
            var byKind: [String: Int] = [:]
            for finding in findings { byKind[finding.kind.name, default: 0] += 1 }
            for (kind, count) in byKind {
                observability.counter("findings_by_kind_total", dimensions: [("kind", kind)]).increment(by: count)
            }
        }
    }
}
