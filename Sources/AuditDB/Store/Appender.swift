import CAuditCore
import Foundation
import GRDB
import GRDBSQLite
import Logging
import Metrics
import Synchronization

/// Group commit: appends from any number of tasks queue up here; one drain loop on GRDB's
/// writer queue takes everything pending, writes it in one `BEGIN IMMEDIATE` transaction,
/// commits (one fsync), and resumes every waiting caller with its seqs. Only with
/// `Configuration.writesOnCallerThread` (opt-in) is a small append on an idle appender written
/// on the caller's own thread instead (`submit`'s fast path): that thread then waits for the
/// fsync itself, like any synchronous SQLite write would.
final class Appender: Sendable {
    struct Request: Sendable {
        var events: [EncodedEvent]
        var continuation: CheckedContinuation<ClosedRange<Int64>, any Error>
    }

    struct State: ~Copyable {
        var pending: [Request] = []
        var draining = false
        var closed = false
        /// The writer connection's `synchronous` setting as last set by this appender; nil until
        /// the first write, because GRDB's pool sets NORMAL when it enables WAL mode.
        var synchronousFull: Bool?
        var knownKeyVersions: Set<UInt32>
        var drained: [CheckedContinuation<Void, Never>] = []
        /// Whether the store has `audit_time_breaks` (migration 0009): nil until the first break is
        /// recorded. Only a store created at an older schema for tests lacks it (open requires every migration).
        var recordsTimeBreaks: Bool?
        /// Requests queued since the appender was made (the linger counts callers coming back).
        var arrivals = 0
        /// While the drain loop lingers: the `arrivals` value that ends the wait early.
        var lingerUntilArrivals: Int?
    }

    struct StoreMetrics: Sendable {
        let appended: Counter
        let failures: Counter
        let commits: Counter
        let commitDuration: Metrics.Timer

        init(prefix: String, factory: (any MetricsFactory)?) {
            let factory = factory ?? MetricsSystem.factory
            appended = Counter(label: "\(prefix)_appended_entries_total", factory: factory)
            failures = Counter(label: "\(prefix)_append_failures_total", factory: factory)
            commits = Counter(label: "\(prefix)_commits_total", factory: factory)
            commitDuration = Metrics.Timer(label: "\(prefix)_commit_duration", factory: factory)
        }
    }

    let pool: DatabasePool
    let storeID: [UInt8]
    let signer: AuditKey
    let durability: AuditStore.Durability
    let maximumGroupSize: Int
    let writesOnCallerThread: Bool
    let logger: Logger
    let metrics: StoreMetrics
    let state: Mutex<State>
    /// The row format written: 2 (FORMAT.md section 21), or 1 in a store without migration 0006.
    let rowFormat: UInt8
    /// Microseconds added to the clock for `recorded_at`: 0, except in tests that step the clock
    /// back (``AuditStore/setClockOffsetForTesting(_:)``).
    let clockOffset = Atomic<Int64>(0)
    /// Signalled when the callers the drain loop lingers for have queued (``linger(forArrivals:limit:)``).
    let lingerSignal = DispatchSemaphore(value: 0)
    /// Test seam: when ≥ 0, the linger's bound in nanoseconds instead of the computed one.
    let lingerLimitOverride = Atomic<Int64>(-1)

    init(pool: DatabasePool, storeID: StoreID, keys: KeyRing, configuration: AuditStore.Configuration, logger: Logger,
         knownKeyVersions: Set<UInt32>, rowFormat: UInt8)
    {
        self.pool = pool
        self.rowFormat = rowFormat
        self.storeID = storeID.bytes
        self.signer = keys.signingKey
        self.durability = configuration.durability
        self.maximumGroupSize = max(1, configuration.maximumGroupSize)
        self.writesOnCallerThread = configuration.writesOnCallerThread
        self.logger = logger
        self.metrics = StoreMetrics(prefix: configuration.metricsPrefix, factory: configuration.metricsFactory)
        self.state = Mutex(State(synchronousFull: nil, knownKeyVersions: knownKeyVersions))
    }

    func submit(_ events: [EncodedEvent]) async throws -> ClosedRange<Int64> {
        // Fast path (opt-in): when nothing is queued and nobody is writing, a small append is written on
        // the caller's thread (GRDB runs a synchronous write on an idle writer queue in place):
        // no hop to the writer queue and no continuation to resume on another thread, which
        // were ~20% of a durable single append's latency (benchmarks/results/history.md, "2. Durable single append").
        // Appends that arrive meanwhile queue up and are handed to the drain loop afterwards.
        let direct = writesOnCallerThread && events.count < MacPipeline.minimumRows && state.withLock { state -> Bool in
            guard !state.closed, !state.draining, state.pending.isEmpty else { return false }
            state.draining = true
            return true
        }
        if direct { return try writeOnCallerThread(events) }
        return try await withCheckedThrowingContinuation { continuation in
            let (start, wake) = state.withLock { state -> (Bool?, Bool) in
                if state.closed { return (nil, false) }
                state.pending.append(Request(events: events, continuation: continuation))
                state.arrivals += 1
                if state.draining {
                    guard let until = state.lingerUntilArrivals, state.arrivals >= until else { return (false, false) }
                    state.lingerUntilArrivals = nil
                    return (false, true)
                }
                state.draining = true
                return (true, false)
            }
            switch start {
            case nil:
                continuation.resume(throwing: AuditError(.closed, "the store is closed; open it again to append"))
            case true?:
                pool.asyncWriteWithoutTransaction { db in self.drain(db) }
            case false?:
                if wake { lingerSignal.signal() }
            }
        }
    }

    /// A large batch not validated yet, when the appender is idle: written in one transaction
    /// while a second thread validates, encodes and seals it just ahead of the writer (so the
    /// validation overlaps the write instead of preceding it); the first invalid event rolls the
    /// transaction back, so nothing of the batch is written. Returns nil, touching nothing, if
    /// other appends are queued or being written: the caller then validates first and submits.
    func submitUnvalidated(_ events: [AuditEvent]) async throws -> ClosedRange<Int64>? {
        let claimed = state.withLock { state -> Bool in
            guard !state.closed, !state.draining, state.pending.isEmpty else { return false }
            state.draining = true
            return true
        }
        guard claimed else { return nil }
        let result: Result<ClosedRange<Int64>, AuditError>
        do {
            result = .success(try await pool.writeWithoutTransaction { db in
                let started = ContinuousClock.now
                try self.setSynchronous(db, full: self.durability == .synchronous || events.contains { $0.severity == .critical })
                var range: ClosedRange<Int64>?
                try Self.immediateTransaction(db) { range = try self.insertUnvalidated(events, db) }
                self.recordCommit(rows: events.count, lastSeq: range!.upperBound, started: started)
                return range!
            })
        } catch let error as InvalidEvent {
            metrics.failures.increment()  // as for a batch refused before the write: one failed call
            result = .failure(error.error)
        } catch {
            result = .failure(failed(count: events.count, error))
        }
        releaseDrain()
        return try result.get()
    }

    /// A validation error met while writing (unvalidated batches): not a storage failure.
    struct InvalidEvent: Error {
        let error: AuditError
    }

    /// Inserts `events`, validating them on the pipeline's thread, chained to the current head.
    private func insertUnvalidated(_ events: [AuditEvent], _ db: Database) throws -> ClosedRange<Int64> {
        let (seq, prevMac, headTime) = try Self.readHead(db)
        let keyVersion = signer.version
        try recordKeyVersion(firstSeq: seq + 1, db)
        let handle = try db.cachedStatement(sql: insertSQL).sqliteStatement
        let pipeline = MacPipeline(unvalidated: events, firstSeq: seq + 1, prevMac: prevMac, signer: signer, storeID: storeID,
                                   format: rowFormat, clockOffset: clockOffset.load(ordering: .relaxed))
        defer { pipeline.finish() }
        var breaks = TimeBreaks.Writer(previous: headTime)
        for index in events.indices {
            let (event, recordedAt, mac): (UnsafePointer<EncodedEvent>, Int64, UnsafeBufferPointer<UInt8>)
            do {
                (event, recordedAt, mac) = try pipeline.waitForValidated(index)
            } catch {
                throw InvalidEvent(error: error)
            }
            try event.pointee.withRow(seq: seq + 1 + Int64(index), recordedAt: recordedAt, keyVersion: keyVersion, format: rowFormat) { row in
                try Self.insert(handle, row, mac: mac, db: db)
            }
            breaks.note(seq: seq + 1 + Int64(index), recordedAt: recordedAt)
        }
        try insertTimeBreaks(breaks, db)
        return (seq + 1)...(seq + Int64(events.count))
    }

    /// The fast path of `submit`: the caller holds `draining`. Synchronous, so that GRDB's
    /// synchronous write (which runs in place on an idle queue) is the one chosen.
    private func writeOnCallerThread(_ events: [EncodedEvent]) throws -> ClosedRange<Int64> {
        let result: Result<ClosedRange<Int64>, AuditError>
        do {
            result = .success(try pool.writeWithoutTransaction { db in try self.write([events], db)[0] })
        } catch {
            result = .failure(failed(count: events.count, error))
        }
        releaseDrain()
        return try result.get()
    }

    /// Ends a write made outside the drain loop (the caller held `draining`): hands what queued
    /// up meanwhile to the drain loop, or marks the appender idle and wakes `shutDown`.
    private func releaseDrain() {
        let handOver = state.withLock { state -> Bool in
            if !state.pending.isEmpty { return true }  // stays draining: the drain loop takes over
            state.draining = false
            for waiter in state.drained { waiter.resume() }
            state.drained.removeAll()
            return false
        }
        if handOver { pool.asyncWriteWithoutTransaction { db in self.drain(db) } }
    }

    /// Stops accepting appends and waits until everything pending is written.
    func shutDown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (idle, wake) = state.withLock { state -> (Bool, Bool) in
                state.closed = true
                if !state.draining { return (true, false) }
                state.drained.append(continuation)
                // A lingering drain loop waits for appends that can no longer come.
                let lingering = state.lingerUntilArrivals != nil
                state.lingerUntilArrivals = nil
                return (false, lingering)
            }
            if wake { lingerSignal.signal() }
            if idle { continuation.resume() }
        }
    }

    /// Runs on GRDB's writer queue until nothing is pending.
    private func drain(_ db: Database) {
        var lingerFor: (arrivals: Int, limit: Duration)?
        while true {
            if let lingerFor { linger(forArrivals: lingerFor.arrivals, limit: lingerFor.limit) }
            let group = state.withLock { state -> [Request] in
                var taken: [Request] = []
                var count = 0
                while let next = state.pending.first, taken.isEmpty || count + next.events.count <= maximumGroupSize {
                    taken.append(state.pending.removeFirst())
                    count += next.events.count
                }
                if taken.isEmpty {
                    state.draining = false
                    for waiter in state.drained { waiter.resume() }
                    state.drained.removeAll()
                }
                return taken
            }
            if group.isEmpty { return }
            let started = ContinuousClock.now
            let resumedAt = commit(group, db)
            // Group commit's pipeline: the callers just resumed append again within microseconds,
            // but without a wait the next transaction takes only those that queued during this
            // one's fsync, so 64 callers settle into two alternating groups of ~32 (one fsync
            // each). After an fsync'd group of several callers, wait until as many new appends as
            // that group had callers have queued (or a bound: half the commit's time, at most
            // 500 µs), so one fsync carries them all. docs/performance.md, "Group commit: the linger".
            let fsynced = state.withLock { $0.synchronousFull == true }
            if let resumedAt, fsynced, group.count >= 2 {
                lingerFor = (resumedAt + group.count, lingerLimit(commitTook: ContinuousClock.now - started))
            } else {
                lingerFor = nil
            }
        }
    }

    /// Commits the group and resumes its callers. Returns the `arrivals` count just before the
    /// first caller was resumed after a successful commit (nil when the group failed).
    private func commit(_ group: [Request], _ db: Database) -> Int? {
        do {
            let ranges = try write(group.map(\.events), db)
            let resumedAt = state.withLock { $0.arrivals }
            for (request, range) in zip(group, ranges) { request.continuation.resume(returning: range) }
            return resumedAt
        } catch {
            guard group.count > 1 else {
                fail(group[0], error)
                return nil
            }
            // Attribute the failure exactly: retry each request in its own transaction.
            for request in group {
                do {
                    let range = try write([request.events], db)[0]
                    request.continuation.resume(returning: range)
                } catch {
                    fail(request, error)
                }
            }
            return nil
        }
    }

    private func fail(_ request: Request, _ error: any Error) {
        request.continuation.resume(throwing: failed(count: request.events.count, error))
    }

    /// Counts and logs a failed request of `count` events; returns the error to give its caller.
    private func failed(count: Int, _ error: any Error) -> AuditError {
        let auditError = AuditError.from(error, while: "append")
        if auditError.code == .cancelled {
            // The caller's own choice, not a failure of the store: not counted, not an error.
            logger.debug("append cancelled; nothing from this request was written", metadata: ["events": "\(count)"])
            return auditError
        }
        metrics.failures.increment(by: Int64(count))
        logger.error(
            "append failed; nothing from this request was written",
            metadata: ["code": "\(auditError.code)", "events": "\(count)", "error": "\(auditError.message)"])
        return auditError
    }

    /// Writes the requests' events in one transaction and returns each request's seqs.
    private func write(_ group: [[EncodedEvent]], _ db: Database) throws -> [ClosedRange<Int64>] {
        let started = ContinuousClock.now
        try setSynchronous(
            db, full: durability == .synchronous || group.contains { $0.contains(where: \.isCritical) })
        var ranges: [ClosedRange<Int64>] = []
        try Self.immediateTransaction(db) {
            ranges = try insertRows(group, db)
        }
        recordCommit(rows: group.reduce(0) { $0 + $1.count }, lastSeq: ranges.last?.upperBound ?? 0, started: started)
        return ranges
    }

    /// Bookkeeping after a committed append transaction.
    private func recordCommit(rows: Int, lastSeq: Int64, started: ContinuousClock.Instant) {
        state.withLock { _ = $0.knownKeyVersions.insert(signer.version) }
        metrics.commits.increment()
        metrics.appended.increment(by: Int64(rows))
        metrics.commitDuration.recordNanoseconds((ContinuousClock.now - started).wholeNanoseconds)
        logger.trace("appended", metadata: ["events": "\(rows)", "lastSeq": "\(lastSeq)"])
    }

    /// Records the signing key's version as used from `firstSeq` on, the first time it signs;
    /// only where the log confirms it (FORMAT.md section 11, step 6): if another client deleted
    /// this version's cache row, the row before `firstSeq` may carry the same version, and a row
    /// written then would be reported as foreign for ever (`repair-indexes` rebuilds the cache).
    private func recordKeyVersion(firstSeq: Int64, _ db: Database) throws {
        let keyVersion = signer.version
        if !state.withLock({ $0.knownKeyVersions.contains(keyVersion) }) {
            try db.execute(
                sql: """
                    INSERT INTO audit_key_versions(key_version, first_seq)
                    SELECT ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM audit_key_versions WHERE key_version = ?1)
                      AND NOT EXISTS (SELECT 1 FROM audit_entries WHERE seq = ?2 - 1 AND key_version = ?1)
                    \(try db.tableExists("audit_expired") ? "AND NOT EXISTS (SELECT 1 FROM audit_expired x WHERE x.seq = ?2 - 1 AND x.key_version = ?1 AND \(Tombstone.inLog))" : "")
                    """,
                arguments: [Int64(keyVersion), firstSeq])
        }
    }

    func setSynchronous(_ db: Database, full: Bool) throws {
        let switchMode = state.withLock { state -> Bool in
            defer { state.synchronousFull = full }
            return state.synchronousFull != full
        }
        if switchMode {
            try db.execute(sql: full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
        }
    }

    /// Runs `body` in one durable (fsync'd) write transaction on the writer connection, after
    /// every append queued before it. `body` may append rows with the function it is given.
    ///
    /// With `bulkLoad`, the transaction goes through SQLite's rollback journal instead of the WAL
    /// when no other connection has the store open (``BulkLoadJournal``), and is switched back to
    /// WAL mode before this returns or throws (a failure to switch back is thrown after a commit,
    /// logged after a failed load; the next open switches it back either way).
    func exclusiveTransaction<R: Sendable>(
        bulkLoad: BulkLoadJournal? = nil,
        _ body: @escaping @Sendable (Database, _ append: ([EncodedEvent]) throws -> ClosedRange<Int64>) throws -> R
    ) async throws -> R {
        try await pool.writeWithoutTransaction { db in
            try self.setSynchronous(db, full: true)
            let rollbackJournal = try bulkLoad?.enter(db) ?? false
            var result: R?
            do {
                try Self.immediateTransaction(db) {
                    result = try body(db) { events in try self.insertRows([events], db)[0] }
                }
            } catch {
                if rollbackJournal { bulkLoad?.leave(db, after: error, logger: self.logger) }
                throw error
            }
            if rollbackJournal { try bulkLoad?.leave(db) }
            self.state.withLock { _ = $0.knownKeyVersions.insert(self.signer.version) }
            return result!
        }
    }

    /// Inserts the events (inside the caller's transaction), chained to the current head; a
    /// rotation entry first when the signing key has not signed here before (``insertRotationIfNeeded(_:)``).
    func insertRows(_ batches: [[EncodedEvent]], _ db: Database, rotating: Bool = true) throws -> [ClosedRange<Int64>] {
        if rotating { _ = try insertRotationIfNeeded(db) }
        let head = try Self.readHead(db)
        var seq = head.seq, prevMac = head.mac
        var breaks = TimeBreaks.Writer(previous: head.recordedAt)
        let keyVersion = signer.version
        try recordKeyVersion(firstSeq: seq + 1, db)
        let handle = try db.cachedStatement(sql: insertSQL).sqliteStatement
        let total = batches.reduce(0) { $0 + $1.count }
        var ranges: [ClosedRange<Int64>] = []
        ranges.reserveCapacity(batches.count)
        if total >= MacPipeline.minimumRows {
            // Large writes: a second thread computes the chained MACs ahead of this one, which
            // only binds and steps (benchmarks/results/history.md: the MAC was ~30% of the append path).
            let events = batches.flatMap { $0 }
            let pipeline = MacPipeline(
                events: events, firstSeq: seq + 1, prevMac: prevMac, signer: signer, storeID: storeID, format: rowFormat,
                clockOffset: clockOffset.load(ordering: .relaxed))
            defer { pipeline.finish() }
            for (index, event) in events.enumerated() {
                let (recordedAt, mac) = pipeline.waitFor(index)
                try event.withRow(seq: seq + 1 + Int64(index), recordedAt: recordedAt, keyVersion: keyVersion, format: rowFormat) { row in
                    try Self.insert(handle, row, mac: mac, db: db)
                }
                breaks.note(seq: seq + 1 + Int64(index), recordedAt: recordedAt)
            }
        } else {
            var mac = [UInt8](repeating: 0, count: 32)
            var current = seq
            let offset = clockOffset.load(ordering: .relaxed)
            for events in batches {
                for event in events {
                    current += 1
                    let recordedAt = AuditTimestamp.now().microsecondsSinceEpoch + offset
                    try event.withRow(seq: current, recordedAt: recordedAt, keyVersion: keyVersion, format: rowFormat) { row in
                        adb_row_seal(signer.keyset, storeID, &row, prevMac, &mac)
                        try mac.withUnsafeBufferPointer { try Self.insert(handle, row, mac: $0, db: db) }
                    }
                    swap(&prevMac, &mac)
                    breaks.note(seq: current, recordedAt: recordedAt)
                }
            }
        }
        try insertTimeBreaks(breaks, db)
        for events in batches {
            ranges.append((seq + 1)...(seq + Int64(events.count)))
            seq += Int64(events.count)
        }
        return ranges
    }
}
