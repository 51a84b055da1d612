import CAuditCore
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
/// let group = ServiceGroup(services: [scanner], gracefulShutdownSignals: [.sigterm], logger: logger)
/// Task { for await finding in scanner.findings() { page(oncall, finding) } }
/// try await group.run()
/// // health endpoint: scanner.status.isHealthy  (memory only, no database work)
/// ```
///
/// **Modes.** A ``ScanMode/full`` pass checks everything ``AuditStore/verify()`` checks, from
/// seq 1. An ``ScanMode/incremental`` pass checks the schema and the store header, then only the
/// rows after the last verified position, chained from that position's MAC (and the row at the
/// position must still carry that MAC). The position comes from memory (the last intact pass of
/// this scanner) or, after a restart, from the newest intact scan record in the store, whose own
/// MAC is checked first — a forged or edited record is not trusted and is itself reported. An
/// incremental pass proves the new rows and that the verified prefix was not cut or its last
/// row replaced; it does not re-read older rows, so full passes run on a schedule too
/// (``Configuration/fullPassInterval``). See docs/scanning.md.
///
/// **History.** Every pass is appended to the store as a signed log entry (action
/// `auditdb.scan`, view `audit_scan_history`) unless ``Configuration/recordsPasses`` is false.
public final class IntegrityScanner: Service, Sendable {
    /// How the scanner runs.
    public struct Configuration: Sendable {
        /// Time between the end of one pass and the start of the next. Default 5 minutes.
        public var interval: Duration = .seconds(300)
        /// A pass is full when no full pass has completed for this long (and the first pass is
        /// always full). Default 24 hours.
        public var fullPassInterval: Duration = .seconds(86_400)
        /// Whether each pass is recorded in the store as a signed `auditdb.scan` entry. Default true.
        public var recordsPasses = true
        /// Where findings (error level) and passes (info level) are logged. Default: the store's logger.
        public var logger: Logger?
        /// Metric label prefix. Default: the store's (`auditdb`).
        public var metricsPrefix: String?
        /// Where metrics go. Default: the store's factory, else the process-wide one.
        public var metricsFactory: (any MetricsFactory)?

        /// A configuration.
        public init(interval: Duration = .seconds(300), fullPassInterval: Duration = .seconds(86_400),
                    recordsPasses: Bool = true, logger: Logger? = nil)
        {
            self.interval = interval
            self.fullPassInterval = fullPassInterval
            self.recordsPasses = recordsPasses
            self.logger = logger
        }
    }

    struct State: Sendable {
        var status = ScanStatus()
        var lastReport: ScanReport?
        var position: Verifier.Position?
        var lastFullElapsed: Duration?
        var findingSubscribers: [Int: AsyncStream<Finding>.Continuation] = [:]
        var passSubscribers: [Int: AsyncStream<ScanReport>.Continuation] = [:]
        var nextSubscriber = 0
    }

    struct ScanMetrics: Sendable {
        let passes: Counter
        let failedPasses: Counter
        let rowsVerified: Counter
        let findings: Counter
        let duration: Metrics.Timer
        let lastSuccess: Gauge
        let verifiedThrough: Gauge

        init(prefix: String, factory: any MetricsFactory) {
            passes = Counter(label: "\(prefix)_scan_passes_total", factory: factory)
            failedPasses = Counter(label: "\(prefix)_scan_errors_total", factory: factory)
            rowsVerified = Counter(label: "\(prefix)_scan_rows_verified_total", factory: factory)
            findings = Counter(label: "\(prefix)_scan_findings_total", factory: factory)
            duration = Metrics.Timer(label: "\(prefix)_scan_duration", factory: factory)
            lastSuccess = Gauge(label: "\(prefix)_scan_last_success_timestamp_seconds", factory: factory)
            verifiedThrough = Gauge(label: "\(prefix)_scan_verified_through_seq", factory: factory)
        }
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
    }

    let target: Target
    /// The configuration.
    public let configuration: Configuration
    let logger: Logger
    let metrics: ScanMetrics
    let state = Mutex(State())
    /// Serialises passes: one at a time, in the order asked.
    let passLock = PassLock()
    let sleep: @Sendable (Duration) async throws -> Void
    let elapsed: @Sendable () -> Duration

    /// A scanner over `store`, scheduled on `clock` (inject a test clock to drive it).
    public convenience init<C: Clock>(store: AuditStore, configuration: Configuration = Configuration(), clock: C)
    where C.Duration == Duration {
        let target = Target(
            reader: store.pool, keys: store.keys, path: store.path, expectedStoreID: store.configuration.expectedStoreID,
            checkpointKeys: store.configuration.checkpointPublicKeys, storeID: store.storeID, record: { event in try await store.appendEngineEntry(event) })
        self.init(target: target, storeConfiguration: store.configuration, logger: store.logger,
                  configuration: configuration, clock: clock)
    }

    init<C: Clock>(target: Target, storeConfiguration: AuditStore.Configuration, logger: Logger,
                   configuration: Configuration, clock: C) where C.Duration == Duration {
        self.target = target
        self.configuration = configuration
        self.logger = configuration.logger ?? logger
        self.metrics = ScanMetrics(
            prefix: configuration.metricsPrefix ?? storeConfiguration.metricsPrefix,
            factory: configuration.metricsFactory ?? storeConfiguration.metricsFactory ?? MetricsSystem.factory)
        let start = clock.now
        self.sleep = { duration in try await clock.sleep(for: duration) }
        self.elapsed = { start.duration(to: clock.now) }
    }

    /// A scanner over `store` on the continuous clock.
    public convenience init(store: AuditStore, configuration: Configuration = Configuration()) {
        self.init(store: store, configuration: configuration, clock: ContinuousClock())
    }

    /// One pass over the store file at `path`, opened for reading only and not recorded: for
    /// an archived or read-only store, or a look at a copy. An incremental pass starts from the
    /// newest intact scan record in the file (there is no memory between calls).
    ///
    /// - Throws: ``AuditError`` `storeNotFound`, `readOnly` (cannot be read at all), or a
    ///   storage error. Damage is the report's findings.
    public static func scan(storeAt path: String, keys: KeyRing, mode: ScanMode = .incremental,
                            configuration: AuditStore.Configuration = AuditStore.Configuration()) async throws -> ScanReport
    {
        guard FileManager.default.fileExists(atPath: path) else {
            throw AuditError(.storeNotFound, "no store at \(path)")
        }
        let reader = try AuditStore.openForReading(path, configuration)
        let scanner = IntegrityScanner(
            target: Target(reader: reader, keys: keys, path: path, expectedStoreID: configuration.expectedStoreID,
                           checkpointKeys: configuration.checkpointPublicKeys, storeID: nil, record: nil),
            storeConfiguration: configuration,
            logger: configuration.logger ?? Logger(label: "auditdb", factory: { _ in SwiftLogNoOpLogHandler() }),
            configuration: Configuration(recordsPasses: false), clock: ContinuousClock())
        let report: ScanReport
        do {
            report = try await scanner.scan(mode)
        } catch {
            try? reader.close()  // cleanup; the pass's error is the one to report
            throw error
        }
        do {
            try reader.close()
        } catch {
            throw AuditError.from(error, while: "close \(path)")
        }
        return report
    }

    // MARK: Status and alerts

    /// The latest result, from memory: no database work, safe to call from a health probe at
    /// any rate.
    public var status: ScanStatus {
        state.withLock { $0.status }
    }

    /// The report of the last completed pass (with its findings), from memory; nil before the
    /// first. Set also when the pass could not be recorded (``scan(_:)`` then throws).
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
                    try await self.sleep(self.configuration.interval)
                } catch {
                    return  // cancelled: graceful shutdown
                }
            }
        }
    }

    /// The mode the schedule picks next: full if no full pass completed within
    /// ``Configuration/fullPassInterval``, else incremental.
    func nextMode() -> ScanMode {
        let now = elapsed()
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
    public func scan(_ mode: ScanMode = .incremental) async throws -> ScanReport {
        try await passLock.run {
            try await self.pass(mode)
        }
    }

    private func pass(_ requested: ScanMode) async throws -> ScanReport {
        state.withLock { $0.status.isScanning = true }
        defer { state.withLock { $0.status.isScanning = false } }
        let startedElapsed = elapsed()
        let integrity: IntegrityReport
        var mode = requested
        var startPosition: Verifier.Position?
        do {
            if requested == .incremental {
                if let known = state.withLock({ $0.position }) {
                    startPosition = known
                } else {
                    startPosition = try await recordedPosition()
                }
                if startPosition == nil { mode = .full }
            }
            integrity = try await Verifier(
                pool: target.reader, keys: target.keys, expectedStoreID: target.expectedStoreID,
                checkpointKeys: target.checkpointKeys
            ).run(from: startPosition)
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
        metrics.duration.recordNanoseconds(Int64(integrity.duration.components.seconds) * 1_000_000_000
                                           + integrity.duration.components.attoseconds / 1_000_000_000)
        if integrity.isIntact {
            metrics.lastSuccess.record(Double(AuditTimestamp.now().microsecondsSinceEpoch) / 1_000_000)
            if let head = integrity.verifiedHead { metrics.verifiedThrough.record(Double(head.seq)) }
        } else {
            metrics.findings.increment(by: integrity.totalFindings)
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
            }
            if report.mode == .full {
                state.lastFullElapsed = startedElapsed
                status.lastFullPassAt = integrity.startedAt
                status.lastFullPassResult = status.lastResult
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

    // MARK: The scan record

    static let scanAction = "auditdb.scan"

    private func record(_ report: ScanReport, with recorder: @Sendable (AuditEvent) async throws -> Int64) async throws -> Int64 {
        let integrity = report.integrity
        var details: [String: JSONValue] = [
            "mode": .string(report.mode.rawValue),
            "fromSeq": .int(integrity.firstCheckedSeq),
            "throughSeq": .int(integrity.lastSeq),
            "rowsChecked": .int(Int64(integrity.rowsChecked)),
            "durationMicros": .int(integrity.duration.microseconds),
            "result": .string(integrity.isIntact ? "intact" : "findings"),
            "findings": .int(Int64(integrity.totalFindings)),
            "firstFinding": integrity.firstFinding.map { .string(String(describing: $0).prefix(500).description) } ?? .null,
        ]
        if integrity.isIntact, let head = integrity.verifiedHead {
            details["throughSeq"] = .int(head.seq)
            details["headMac"] = .string(Hex.encode(head.mac))
        }
        let event = AuditEvent(
            actor: "auditdb", action: Self.scanAction, resourceType: "store", resourceId: report.integrity.storeID?.hex,
            outcome: integrity.isIntact ? .success : .failure, severity: integrity.isIntact ? .info : .critical,
            source: "auditdb.scanner", details: AuditDetails(details))
        return try await recorder(event)
    }

    /// The position proven by the newest intact scan record whose own MAC verifies; nil if
    /// there is none (then a full pass runs). Reads records newest first and stops at the first
    /// good one; a record that fails verification is skipped (the pass that follows reports it).
    func recordedPosition() async throws -> Verifier.Position? {
        let keys = target.keys
        let knownID = target.storeID
        return try await target.reader.read { db in
            // Without a readable header there is no trusted position; the full pass that
            // follows reports the header.
            guard let storeID = try knownID ?? Self.headerID(db) else { return nil }
            var found: Verifier.Position?
            try RecordedScan.newestFirst(db, storeID: storeID, keys: keys, mode: .mark) { entry in
                found = RecordedScan(entry)?.position
                return found != nil
            }
            return found
        }
    }

    static func headerID(_ db: Database) throws -> StoreID? {
        switch try Verifier.readHeader(db) {
        case .success(let header): header.storeID
        case .failure: nil
        }
    }
}

/// Which rows a pass checks.
public enum ScanMode: String, Sendable, Hashable, CaseIterable {
    /// Every row from seq 1, plus schema and header.
    case full
    /// Schema and header, the row at the last verified position, and the rows after it.
    case incremental
}

/// One pass of the scanner.
public struct ScanReport: Sendable {
    /// The mode that ran (an incremental request without a verified position runs full).
    public let mode: ScanMode
    /// What was found.
    public let integrity: IntegrityReport
    /// The seq of the `auditdb.scan` entry that records this pass, if it was recorded.
    public internal(set) var recordSeq: Int64?

    /// True when nothing is wrong.
    public var isIntact: Bool { integrity.isIntact }
    /// The seqs whose rows were read and checked (empty when there were no new rows).
    public var checkedSeqs: ClosedRange<Int64>? {
        integrity.firstCheckedSeq <= integrity.lastSeq ? integrity.firstCheckedSeq...integrity.lastSeq : nil
    }
}

/// The scanner's latest result, kept in memory.
public struct ScanStatus: Sendable, Hashable {
    /// How a pass ended.
    public enum Result: Sendable, Hashable {
        /// No pass has completed yet.
        case never
        /// Nothing wrong.
        case intact
        /// Damage was found (see the findings stream, the log, or the scan record).
        case findings
        /// The pass could not be completed or recorded (the message says why).
        case failed(String)
    }

    /// Passes completed since the scanner was made.
    public var passes = 0
    /// Whether a pass is running now.
    public var isScanning = false
    /// When the last pass ended.
    public var lastPassAt: AuditTimestamp?
    /// Its mode.
    public var lastMode: ScanMode?
    /// Rows it checked.
    public var lastRowsVerified = 0
    /// How it ended.
    public var lastResult: Result = .never
    /// How many findings it had.
    public var lastFindingsCount = 0
    /// How long it took.
    public var lastPassDuration: Duration?
    /// When the last full pass started, and how it ended.
    public var lastFullPassAt: AuditTimestamp?
    public var lastFullPassResult: Result = .never
    /// Rows 1 through this seq were proven (by a full pass, extended by incremental ones).
    public var verifiedThroughSeq: Int64 = 0

    /// True when the last pass completed and found nothing wrong.
    public var isHealthy: Bool { lastResult == .intact }

    /// Time since the last full pass started, measured against `now`; nil if there was none.
    public func timeSinceLastFullPass(now: AuditTimestamp = .now()) -> Duration? {
        lastFullPassAt.map { .microseconds(now.microsecondsSinceEpoch - $0.microsecondsSinceEpoch) }
    }
}

/// Runs async closures one at a time, in arrival order.
final class PassLock: Sendable {
    private let state = Mutex<(busy: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if !state.busy { state.busy = true; return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
        defer {
            let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
                if state.waiters.isEmpty { state.busy = false; return nil }
                return state.waiters.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}

extension Duration {
    var microseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }
}
