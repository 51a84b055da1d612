// Just over 400 lines: the scanner's configuration, its two entry points (a service, and one pass
// over a file) and the pass with its recording share their state; the record format is in
// IntegrityScanner+Record.swift, the history in ScanHistory.swift, the metrics and the lost-rows
// finding in IntegrityScanner+Metrics.swift and IntegrityScanner+LostRows.swift.
import Foundation
import GRDB
public import Logging
public import ServiceLifecycle
import Metrics
public import CoreMetrics
import Synchronization

/// Proves a store intact on a schedule, inside the app's process (as a swift-service-lifecycle
/// `Service`) or one pass at a time, and keeps its latest result in memory for health checks.
///
/// ```swift
/// let scanner = IntegrityScanner(store: store, configuration: .init(interval: .seconds(300)))
/// let group = ServiceGroup(services: [store, scanner], gracefulShutdownSignals: [.sigterm], logger: logger)
/// Task { for await finding in scanner.findings() { page(oncall, finding) } }
/// try await group.run()
/// // health endpoint: scanner.status.isHealthy  (memory only, no database work)
/// ```
///
/// **Modes.** A ``ScanMode/full`` pass checks everything ``AuditStore/verify(progress:)`` checks, from
/// seq 1. An ``ScanMode/incremental`` pass checks the schema and the store header, then only the
/// rows after the last verified position, chained from that position's MAC (and the row at the
/// position must still carry that MAC). The position comes from memory (the last intact pass of
/// this scanner) or, after a restart, from the newest intact scan record in the store, whose own
/// MAC is checked first — a forged or edited record is not trusted and is itself reported. An
/// incremental pass proves the new rows and that the verified prefix was not cut or its last
/// row replaced; it does not re-read older rows, so full passes run on a schedule too
/// (``Configuration/fullPassInterval``). After a pass that found damage (in memory, or the newest
/// scan record in the store), an incremental pass runs as a full one until a full pass is
/// intact: no pass reports intact over damage already found. See docs/scanning.md.
///
/// **Lost rows stay reported.** When the rows an earlier pass of this scanner verified are gone
/// or changed at its position (a tail cut and appended to again, or an older copy of the file put
/// in place), no later pass can see that from the file alone: the log may be consistent again.
/// That finding is kept for the scanner's lifetime, and every later pass reports (and records)
/// it again, so health checks and the recorded history stay failed until an operator has dealt
/// with it (compared with anchored checkpoints, restored what can be restored) and restarts the
/// scanner. ``lostRowsFinding`` is it.
///
/// **History.** Every pass is appended to the store as a signed log entry (action
/// `auditdb.scan`, view `audit_scan_history`) unless ``Configuration/recordsPasses`` is false.
///
/// **Observability.** Shaped like ``CheckpointService``: the ``Configuration`` may carry a
/// `Logger` and a metrics factory; without them the scanner uses the store's, then the creating
/// task's `Logger.current` and `MetricsSystem.factory`. Metrics (prefix `auditdb` by default):
/// `auditdb_scan_passes_total`, `auditdb_scan_errors_total` (passes that could not complete or be
/// recorded), `auditdb_scan_rows_verified_total`, `auditdb_scan_findings_total`,
/// `auditdb_scan_findings_by_kind_total` (dimension `kind`, e.g. `mac-mismatch`),
/// `auditdb_scan_duration`, `auditdb_scan_last_success_timestamp_seconds`,
/// `auditdb_scan_last_intact_full_pass_timestamp_seconds`, `auditdb_scan_verified_through_seq`.
/// docs/operations.md lists them with alert rules.
public final class IntegrityScanner: Service, Sendable {
    /// How the scanner runs, and where it logs and counts.
    public struct Configuration: Sendable {
        /// Time between the end of one pass and the start of the next. Default 5 minutes.
        public var interval: Duration = .seconds(300)
        /// A pass is full when no full pass has completed for this long (and the first pass is
        /// always full). Default 24 hours.
        public var fullPassInterval: Duration = .seconds(86_400)
        /// Whether each pass is recorded in the store as a signed `auditdb.scan` entry. Default true.
        public var recordsPasses = true
        /// Where findings (error level) and passes (info level) are logged. Default: the store's
        /// configured logger, else `Logger.current` of the task that creates the scanner.
        public var logger: Logger?
        /// Metric label prefix. Default: the store's (`auditdb`).
        public var metricsPrefix: String?
        /// Where metrics go. Default: the store's factory, else `MetricsSystem.factory`.
        public var metricsFactory: (any MetricsFactory)?

        /// A configuration; every argument has the default documented on its property.
        public init(interval: Duration = .seconds(300), fullPassInterval: Duration = .seconds(86_400),
                    recordsPasses: Bool = true, logger: Logger? = nil, metricsPrefix: String? = nil,
                    metricsFactory: (any MetricsFactory)? = nil)
        {
            self.interval = interval
            self.fullPassInterval = fullPassInterval
            self.recordsPasses = recordsPasses
            self.logger = logger
            self.metricsPrefix = metricsPrefix
            self.metricsFactory = metricsFactory
        }
    }

    struct State: Sendable {
        var status = ScanStatus()
        var lastReport: ScanReport?
        var position: Verifier.Position?
        /// A pass found damage, and no full pass has been intact since: incremental passes run
        /// full, so that none reports intact over damage below its start.
        var damageFound = false
        /// The row at a verified position was gone or changed: reported by every later pass.
        var lostRows: Finding?
        var lastFullElapsed: Duration?
        var findingSubscribers: [Int: AsyncStream<Finding>.Continuation] = [:]
        var passSubscribers: [Int: AsyncStream<ScanReport>.Continuation] = [:]
        var nextSubscriber = 0
    }

    /// What a scanner reads, and how it records a pass.
    struct Target: Sendable {
        let reader: any DatabaseReader
        let keys: KeyRing
        let path: String
        let expectedStoreID: StoreID?
        let checkpointKeys: CheckpointPublicKeys?
        /// The store id when the store was opened (and its header checked); else read per pass.
        let storeID: StoreID?
        let record: (@Sendable (AuditEvent) async throws -> Int64)?
        /// Throws when the file at `path` is no longer the one `reader` reads.
        var stillAtPath: (@Sendable () throws -> Void)?
    }

    let target: Target
    /// The configuration.
    public let configuration: Configuration
    let logger: Logger
    let metrics: ScanMetrics
    let state = Mutex(State())
    /// Serialises passes: one at a time, in the order asked.
    let passLock = PassLock()
    let clock: ServiceClock

    /// A scanner over `store`, scheduled on `clock` (inject a manual clock to drive it in tests).
    ///
    /// - Parameters:
    ///   - store: The store to scan; passes are recorded in it (``Configuration/recordsPasses``).
    ///   - configuration: The schedule, and where to log and count.
    ///   - clock: The clock ``run()`` waits on between passes.
    public convenience init<C: Clock>(store: AuditStore, configuration: Configuration = Configuration(), clock: C)
    where C.Duration == Duration {
        let target = Target(
            reader: store.pool, keys: store.keys, path: store.path, expectedStoreID: store.configuration.expectedStoreID,
            checkpointKeys: store.configuration.checkpointPublicKeys, storeID: store.storeID,
            record: { event in try await store.appendEngineEntry(event) }, stillAtPath: { try store.checkStillAtPath() })
        self.init(target: target, storeConfiguration: store.configuration, configuration: configuration, clock: clock)
    }

    init<C: Clock>(target: Target, storeConfiguration: AuditStore.Configuration, configuration: Configuration, clock: C)
    where C.Duration == Duration {
        self.target = target
        self.configuration = configuration
        let observability = ServiceObservability(
            component: "scan", logger: configuration.logger, metricsPrefix: configuration.metricsPrefix,
            metricsFactory: configuration.metricsFactory, store: storeConfiguration)
        self.logger = observability.logger
        self.metrics = ScanMetrics(observability)
        self.clock = ServiceClock(clock)
    }

    /// A scanner over `store` on the continuous clock.
    public convenience init(store: AuditStore, configuration: Configuration = Configuration()) {
        self.init(store: store, configuration: configuration, clock: ContinuousClock())
    }

    /// One pass over the store file at `path`, opened for reading only and not recorded: for
    /// an archived or read-only store, or a look at a copy. An incremental pass starts from the
    /// newest intact scan record in the file (there is no memory between calls). Logs and
    /// metrics go where `configuration` says, else to `Logger.current` and `MetricsSystem.factory`.
    ///
    /// - Throws: ``AuditError`` `storeNotFound`, `readOnly` (cannot be read at all), or a
    ///   storage error. Damage is the report's findings.
    public static func scan(storeAt path: String, keys: KeyRing, mode: ScanMode = .incremental,
                            configuration: AuditStore.Configuration = AuditStore.Configuration(),
                            progress: (@Sendable (VerificationProgress) -> Void)? = nil) async throws -> ScanReport
    {
        guard FileManager.default.fileExists(atPath: path) else {
            throw AuditError(.storeNotFound, "no store at \(path)")
        }
        let started = ContinuousClock.now
        let opened = Result { () throws(AuditError) -> any DatabaseReader in try AuditStore.openForReading(path, configuration) }
        if case .failure(let error) = opened, error.code == .corrupt {
            // As verification reports it: a finding, not a failure to run.
            return ScanReport(mode: mode, integrity: AuditStore.unreadableReport(error, started: started), recordSeq: nil)
        }
        let reader = try opened.get()
        let scanner = IntegrityScanner(
            target: Target(reader: reader, keys: keys, path: path, expectedStoreID: configuration.expectedStoreID,
                           checkpointKeys: configuration.checkpointPublicKeys, storeID: nil, record: nil),
            storeConfiguration: configuration, configuration: Configuration(recordsPasses: false), clock: ContinuousClock())
        let report: Result<ScanReport, any Error>
        do {
            report = .success(try await scanner.scan(mode, progress: progress))
        } catch let error as AuditError where error.code == .corrupt {
            report = .success(ScanReport(mode: mode, integrity: AuditStore.unreadableReport(error, started: started), recordSeq: nil))
        } catch {
            report = .failure(error)
        }
        do {
            try reader.close()
        } catch {
            let closeError = AuditError.from(error, while: "close \(path)")
            // The pass's own error, if it failed, is the one to report; the close failure is logged.
            guard case .failure = report else { throw closeError }
            scanner.logger.warning("could not close the store after a failed scan pass",
                                   metadata: ["store": "\(path)", "error": "\(closeError)"])
        }
        return try report.get()
    }

    // MARK: Status and alerts

    /// The latest result, from memory: no database work, safe to call from a health probe at
    /// any rate.
    public var status: ScanStatus {
        state.withLock { $0.status }
    }

    /// The report of the last completed pass (with its findings), from memory; nil before the
    /// first. Set also when the pass could not be recorded (``scan(_:progress:)`` then throws).
    public var lastReport: ScanReport? {
        state.withLock { $0.lastReport }
    }

    /// Every finding of every pass from now on, as it is found. Each call makes a new
    /// subscription; it ends when the caller stops iterating or the scanner is released.
    public func findings() -> AsyncStream<Finding> {
        let (stream, continuation) = AsyncStream<Finding>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        let id = state.withLock { state in
            state.nextSubscriber += 1
            state.findingSubscribers[state.nextSubscriber] = continuation
            return state.nextSubscriber
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.findingSubscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// The report of every pass from now on.
    public func passes() -> AsyncStream<ScanReport> {
        let (stream, continuation) = AsyncStream<ScanReport>.makeStream(bufferingPolicy: .bufferingNewest(100))
        let id = state.withLock { state in
            state.nextSubscriber += 1
            state.passSubscribers[state.nextSubscriber] = continuation
            return state.nextSubscriber
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.passSubscribers.removeValue(forKey: id) }
        }
        return stream
    }

    deinit {
        state.withLock { state in
            for continuation in state.findingSubscribers.values { continuation.finish() }
            for continuation in state.passSubscribers.values { continuation.finish() }
        }
    }

    // MARK: Running

    /// Runs passes every ``Configuration/interval`` until graceful shutdown or cancellation. A
    /// pass in progress at shutdown is abandoned: reads are interrupted and its record is not
    /// written (a record is one atomic append, never half-written). A pass that fails (I/O
    /// error) is logged, counted and reflected in ``status``; the schedule continues.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let mode = self.nextMode()
                do {
                    _ = try await self.scan(mode)
                } catch {
                    if Task.isCancelled { return }
                    // Already logged, counted and put into status by scan(_:).
                }
                do {
                    try await self.clock.sleep(self.configuration.interval)
                } catch {
                    return  // cancelled: graceful shutdown
                }
            }
        }
    }

    /// The mode the schedule picks next: full if no full pass completed within
    /// ``Configuration/fullPassInterval``, else incremental.
    func nextMode() -> ScanMode {
        let now = clock.elapsed()
        return state.withLock { state in
            guard let last = state.lastFullElapsed else { return .full }
            return now - last >= configuration.fullPassInterval ? .full : .incremental
        }
    }

    /// Runs one pass now and returns its report (after recording it, if configured).
    ///
    /// An incremental pass without a verified position (nothing in memory, no intact scan
    /// record in the store) runs as a full pass; the report says which mode ran.
    ///
    /// - Throws: ``AuditError`` if the pass could not be completed (I/O error, store closed) or,
    ///   when passes are recorded, if the record could not be appended (the report is then in
    ///   ``status`` and the passes stream, but not in the store). Damage is never thrown: it is
    ///   the report's findings.
    /// - Parameter progress: Told how many rows the pass has checked (``VerificationProgress``).
    public func scan(_ mode: ScanMode = .incremental, progress: (@Sendable (VerificationProgress) -> Void)? = nil)
        async throws -> ScanReport
    {
        try await passLock.run {
            try await self.pass(mode, progress: progress)
        }
    }

    private func pass(_ requested: ScanMode, progress: (@Sendable (VerificationProgress) -> Void)? = nil) async throws -> ScanReport {
        state.withLock { $0.status.isScanning = true }
        defer { state.withLock { $0.status.isScanning = false } }
        let startedElapsed = clock.elapsed()
        let integrity: IntegrityReport
        var mode = requested
        var startPosition: Verifier.Position?
        do {
            // A scanner that outlives a file moved over its store's path would report on a file
            // nobody sees any more: such a pass fails.
            try target.stillAtPath?()
            if requested == .incremental {
                let (known, damageFound) = state.withLock { ($0.position, $0.damageFound) }
                if damageFound {
                    startPosition = nil
                } else if let known, try await !newestRecordFoundDamage() {
                    startPosition = known
                } else {
                    startPosition = try await recordedPosition()
                }
                if startPosition == nil { mode = .full }
            }
            integrity = carryingLostRows(try await Verifier(
                pool: target.reader, keys: target.keys, expectedStoreID: target.expectedStoreID,
                checkpointKeys: target.checkpointKeys, progress: progress
            ).run(from: startPosition), from: startPosition)
            if !integrity.isIntact { try await refuseIfStaleRing(integrity) }
        } catch {
            if Task.isCancelled { throw CancellationError() }  // abandoned at shutdown: nothing recorded
            let failure = AuditError.from(error, while: "scan \(target.path)")
            metrics.failedPasses.increment()
            state.withLock { state in
                state.status.lastResult = .failed(failure.message)
                state.status.lastPassAt = AuditTimestamp.now()
                state.status.lastMode = mode
            }
            if !Task.isCancelled {
                logger.error("audit store scan could not complete", metadata: ["store": "\(target.path)", "error": "\(failure)"])
            }
            throw failure
        }
        // Shut down between the pass and its record: abandoned like a pass interrupted mid-read,
        // neither recorded nor counted (status.passes always equals the records it made).
        if Task.isCancelled { throw CancellationError() }
        var report = ScanReport(mode: mode, integrity: integrity, recordSeq: nil)
        // Record the pass (one atomic append), then publish it.
        var recordError: AuditError?
        if configuration.recordsPasses, let recorder = target.record {
            do {
                report.recordSeq = try await record(report, with: recorder)
            } catch {
                recordError = AuditError.from(error, while: "record the scan pass in \(target.path)")
            }
        }
        publish(report, startedElapsed: startedElapsed)
        if let recordError {
            // The store could not take the record (disk full, read-only...): not healthy.
            state.withLock { $0.status.lastResult = .failed("the pass could not be recorded: \(recordError.message)") }
            logger.error("audit store scan pass could not be recorded", metadata: ["store": "\(target.path)", "error": "\(recordError)"])
            metrics.failedPasses.increment()
            throw recordError
        }
        return report
    }

    private func publish(_ report: ScanReport, startedElapsed: Duration) {
        let integrity = report.integrity
        metrics.passes.increment()
        metrics.rowsVerified.increment(by: integrity.rowsChecked)
        metrics.duration.recordNanoseconds(integrity.duration.wholeNanoseconds)
        if integrity.isIntact {
            metrics.lastSuccess.record(Double(AuditTimestamp.now().microsecondsSinceEpoch) / 1_000_000)
            if report.mode == .full {
                metrics.lastIntactFullPass.record(Double(integrity.startedAt.microsecondsSinceEpoch) / 1_000_000)
            }
            if let head = integrity.verifiedHead { metrics.verifiedThrough.record(Double(head.seq)) }
        } else {
            metrics.findings.increment(by: integrity.totalFindings)
            // By kind, over the findings the report lists (it keeps the first ones when a pass
            // finds very many; the total above counts them all).
            metrics.count(integrity.findings)
            for finding in integrity.findings.prefix(100) {
                logger.error(
                    "audit store integrity finding",
                    metadata: ["store": "\(target.path)", "kind": "\(finding.kind)",
                               "seq": "\(finding.firstSeq.map(String.init) ?? "-")", "finding": "\(finding)",
                               "mode": "\(report.mode)"])
            }
        }
        logger.info("audit store scan pass", metadata: [
            "store": "\(target.path)", "mode": "\(report.mode)", "rows": "\(integrity.rowsChecked)",
            "findings": "\(integrity.totalFindings)", "record": "\(report.recordSeq.map(String.init) ?? "-")",
        ])
        let (findingSubscribers, passSubscribers) = state.withLock { state in
            var status = state.status
            status.passes += 1
            status.lastPassAt = AuditTimestamp.now()
            status.lastMode = report.mode
            status.lastRowsVerified = integrity.rowsChecked
            status.lastFindingsCount = integrity.totalFindings
            status.lastResult = integrity.isIntact ? .intact : .findings
            status.lastPassDuration = integrity.duration
            if integrity.isIntact, let head = integrity.verifiedHead {
                state.position = head
                status.verifiedThroughSeq = head.seq
            } else if integrity.isIntact {
                status.verifiedThroughSeq = state.position?.seq ?? 0
            } else {
                // Damage: no position below it is proven any more, until a full pass is intact.
                state.damageFound = true
                state.position = nil
                status.verifiedThroughSeq = 0
            }
            if report.mode == .full, integrity.isIntact { state.damageFound = false }
            if report.mode == .full {
                state.lastFullElapsed = startedElapsed
                status.lastFullPassAt = integrity.startedAt
                status.lastFullPassResult = status.lastResult
                if integrity.isIntact { status.lastIntactFullPassAt = integrity.startedAt }
            }
            state.status = status
            state.lastReport = report
            return (Array(state.findingSubscribers.values), Array(state.passSubscribers.values))
        }
        for continuation in findingSubscribers {
            for finding in integrity.findings { continuation.yield(finding) }
        }
        for continuation in passSubscribers { continuation.yield(report) }
    }
}
