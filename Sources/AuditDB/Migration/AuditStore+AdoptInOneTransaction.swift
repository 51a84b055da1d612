import Dispatch
import Foundation
import GRDB
import Synchronization

// Back-signing into an empty or small store in one transaction (LegacyAdoption.Commits.oneTransaction):
// the run entry, every row, and the query indexes built once at the end, all committed at once.
//
// Why one transaction: the store's random-key indexes cost more to keep up to date row by row
// than to build once from the finished table (docs/performance.md, "Back-signing"). Dropping them
// only inside the transaction that re-creates them means no committed state ever lacks them:
// - no reader sees part of the run: until it commits, readers see the store as it was before it
//   (through the WAL, when another connection has the store open) or wait (through the rollback
//   journal, BulkLoadJournal, when nothing else has it open), then all of it;
// - other writers wait for the whole import (in this process they queue behind it; other
//   processes wait up to their busy timeout);
// - a crash or kill leaves nothing of the run (no run entry, no row, the indexes as they were),
//   so running it again starts over instead of resuming.
// And since nothing is committed before the end, pass 1 only digests and counts the source: an
// invalid row found while writing rolls the whole transaction back, so "nothing is imported
// unless every row is valid" holds without validating every row twice.

extension LegacyAdoption.Commits {
    /// Whether this run goes in one transaction, for a source of `sourceRows` rows into a store
    /// whose newest seq is `storeRows`.
    func isOneTransaction(sourceRows: Int, storeRows: Int64) -> Bool {
        switch self {
        case .batches: false
        case .oneTransaction: true
        case .automatic: storeRows <= Int64(sourceRows) && sourceRows <= LegacyAdoption.oneTransactionLimit
        }
    }
}

/// What a pass over the source found: its digest and, when it validated the rows, the counts.
struct SourcePass: Sendable {
    /// Whether the rows were validated (otherwise `valid` counts every row read).
    var validated: Bool
    /// The source digest (digest 2: a REAL as its exact bits), what new run entries record.
    var digest = ""
    /// Digest 1 (a REAL as 15 significant digits), to recognise run entries written before digest 2.
    var legacyDigest = ""
    var valid = 0
    var problemCount = 0
    /// The first 1,000 invalid rows.
    var problems: [AdoptionProblem] = []

    var skipped: [Int64] { problems.map(\.rowID) }

    mutating func count(_ result: Result<EncodedEvent, AdoptionProblem>) {
        switch result {
        case .success:
            valid += 1
        case .failure(let problem):
            problemCount += 1
            if problems.count < 1_000 { problems.append(problem) }
        }
    }

    /// The refusal of a run whose source holds invalid rows (without `skipInvalid`).
    var invalidRowsError: AuditError {
        let listed = problems.prefix(20).map(\.description).joined(separator: "; ")
        return AuditError(
            .invalidInput,
            "\(problemCount) source row(s) are invalid; nothing was imported. \(listed)\(problemCount > 20 ? "; ..." : ""). "
                + "Fix them in the source, or pass --skip-invalid to import the valid rows and list the others.",
            field: "source")
    }
}

extension AuditStore {
    /// Pass 2 of a new run in one transaction (see the top of this file). The task reading the
    /// source validates each window and hands it to the writer, which holds the transaction on
    /// GRDB's writer queue; the writer is a child task, awaited before this returns or throws.
    /// One transaction drops the query indexes and builds them again from the rows: in a store
    /// that already has rows, damage to an index (evidence `verify` reports as index-mismatch)
    /// would vanish without a word. So such a store must verify first.
    func refuseRebuildingOverDamage() async throws {
        guard try await lastSeq() > 0 else { return }
        let report = try await verify()
        guard !report.isIntact else { return }
        throw AuditError(
            .integrityViolation,
            "the store does not verify (\(report.totalFindings) finding(s), the first: \(report.findings.first.map { "\($0)" } ?? "?")); "
                + "an adoption in one transaction rebuilds its query indexes, which would erase evidence of this damage. Nothing was "
                + "written. Run `auditdb verify`, keep a copy of the file, deal with the findings (`auditdb repair-indexes` for "
                + "index-mismatch), then adopt again.")
    }

    func adoptInOneTransaction(_ adoption: LegacyAdoption, source: LegacySource, pass: SourcePass, sourceName: String,
                               started: ContinuousClock.Instant, progress: (@Sendable (AdoptionProgress) -> Void)?) async throws
        -> AdoptionReport
    {
        let runEvent = try EncodedEvent(validating: runEntry(adoption, source: source, sourceName: sourceName, pass: pass))
        let total = pass.valid
        let channel = WindowChannel()
        var found = SourcePass(validated: true)
        // The import goes through the rollback journal when nothing else has the store open
        // (BulkLoadJournal): this process's idle reader connections count, so they are closed first.
        await closeIdleReaders()
        let walPath = path + "-wal"
        let runSeq = try await withThrowingTaskGroup(of: Int64.self, returning: Int64.self) { group in
            group.addTask {
                defer { channel.writerStopped() }
                return try await self.appender.exclusiveTransaction(bulkLoad: BulkLoadJournal(busyTimeout: self.configuration.lockWait)) {
                    db, append in
                    // Through the WAL, the commit must fsync the whole import and then checkpoint
                    // it into the database file: start the WAL's write-back as it grows.
                    let writeBehind = try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal" ? WriteBehind(path: walPath) : nil
                    defer { writeBehind?.stop() }
                    return try Self.writeOneTransaction(db, append: append, runEvent: runEvent, channel: channel)
                }
            }
            do {
                try await source.forEachWindow { window in
                    try Task.checkCancellation()
                    var events: [EncodedEvent] = []
                    events.reserveCapacity(window.count)
                    for result in window {
                        found.count(result)
                        if case .success(let event) = result { events.append(event) }
                    }
                    // After an invalid row, read on only to list the others; the writer rolls back.
                    guard found.problemCount == 0 || adoption.skipInvalid else { return }
                    guard await channel.send(events) else { throw WriterStopped() }
                    progress?(AdoptionProgress(imported: channel.written, total: total, elapsed: ContinuousClock.now - started))
                }
                if found.problemCount > 0 && !adoption.skipInvalid { throw found.invalidRowsError }
                guard found.valid == total else {
                    throw AuditError(.storage, "the source yielded \(found.valid) valid rows on its second read, \(total) on its first; nothing was imported")
                }
                channel.finish()
            } catch {
                channel.fail(error)
                var writerError: (any Error)?
                do { _ = try await group.next() } catch { writerError = error }
                if error is WriterStopped {
                    if Task.isCancelled { throw CancellationError() }  // the writer saw the cancellation first
                    if let writerError { throw writerError }
                }
                throw error
            }
            guard let runSeq = try await group.next() else { throw AuditError(.storage, "internal error: the writer returned nothing") }
            return runSeq
        }
        progress?(AdoptionProgress(imported: total, total: total, elapsed: ContinuousClock.now - started))
        try await finish(adoption, source: source, runSeq: runSeq, pass: pass)
        return AdoptionReport(
            runSeq: runSeq, imported: total, resumedFrom: 0, total: total, skippedCount: pass.problemCount, skipped: pass.skipped,
            droppedColumns: source.droppedColumns, sourceDigest: pass.digest, afterwards: adoption.afterwards)
    }

    /// The writer's side, inside the transaction: the run entry, the query indexes dropped, each
    /// window appended as back-signed rows of the run, the indexes re-created; returns the run's seq.
    private static func writeOneTransaction(_ db: Database, append: ([EncodedEvent]) throws -> ClosedRange<Int64>,
                                            runEvent: EncodedEvent, channel: WindowChannel) throws -> Int64
    {
        let runSeq = try append([runEvent]).lowerBound
        let dropped = try BulkLoadIndexes.drop(db)
        while var window = try channel.next() {
            for index in window.indices {
                window[index].origin = 1
                window[index].originRef = runSeq
            }
            if !window.isEmpty { _ = try append(window) }
            channel.wrote(window.count)
        }
        try BulkLoadIndexes.create(dropped, db)
        return runSeq
    }

    /// Closes the pool's reader connections that are not in use (GRDB's `releaseMemory`, which
    /// blocks until they are: run on a dispatch thread, not a cooperative one). Readers open again
    /// when next needed.
    private func closeIdleReaders() async {
        let pool = self.pool
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                pool.releaseMemory()
                continuation.resume()
            }
        }
    }

    /// The reader learnt that the writer had stopped (its error is the one to report).
    private struct WriterStopped: Error {}
}

/// AuditDB's query indexes on `audit_entries`, dropped for a bulk load and re-created with the
/// very text the migrations give them (the schema check and ``IndexProof`` compare that text),
/// both inside the one transaction of the load. Only indexes whose definition in the file is
/// exactly AuditDB's are dropped, and not the three each row only appends to (``appendOrdered``);
/// any other stays and is maintained row by row.
enum BulkLoadIndexes {
    /// Kept and maintained row by row: each back-signed row adds its entry at the end of these
    /// (the run's seq, the signing time, and no entry at all in the engine's index, whose actions
    /// an adoption refuses), which costs less than a pass over the finished table to build them:
    /// 1M rows imported at 152k rows/s median against 148k with all seven built at the end
    /// (4 alternated pairs, docs/performance.md, "Back-signing through the rollback journal").
    static let appendOrdered: Set<String> = ["audit_entries_origin_ref", "audit_entries_recorded_at", "audit_entries_engine"]

    /// Drops them; returns the statements that re-create them.
    static func drop(_ db: Database) throws -> [String] {
        let known = Dictionary(try StoreSchema.allKnownObjects.filter { $0.type == "index" }.map { ($0.name, $0.sql) },
                               uniquingKeysWith: { first, _ in first })
        var statements: [String] = []
        for index in try IndexProof.provable(db) where !appendOrdered.contains(index.name) {
            guard let sql = known[index.name] ?? nil else { continue }
            try db.execute(sql: "DROP INDEX \(index.name)")
            statements.append(sql)
        }
        return statements
    }

    /// Re-creates them. SQLite may sort each index's keys with helper threads (`PRAGMA threads`,
    /// up to 4, one per core) while this builds it: 2.3-3.0 s instead of 3.3-3.6 s for 1M rows on
    /// 2 cores (docs/performance.md, "Back-signing"). The writer connection gets its previous
    /// setting back afterwards.
    static func create(_ statements: [String], _ db: Database) throws {
        let helpers = Int32(min(4, ProcessInfo.processInfo.activeProcessorCount))
        let previous = SQLite.setWorkerThreads(db.sqliteConnection, helpers)
        defer { _ = SQLite.setWorkerThreads(db.sqliteConnection, previous) }
        for sql in statements { try db.execute(sql: sql) }
    }
}

/// Windows of validated rows handed from the task reading the source to the writer, which waits
/// for them on GRDB's writer queue (a dispatch queue, not a cooperative thread, so it may block
/// here). At most one window waits in the channel; the reader awaits (without blocking) while it
/// is full.
final class WindowChannel: Sendable {
    private struct State {
        var waiting: [EncodedEvent]?
        var end: Result<Void, any Error>?
        var writerStopped = false
        var spaceWaiter: CheckedContinuation<Bool, Never>?
        var written = 0
    }

    private let state = Mutex(State())
    /// Signalled once per window put in and once at the end.
    private let ready = DispatchSemaphore(value: 0)

    /// Hands `window` to the writer once the previous one was taken; false if the writer stopped.
    func send(_ window: [EncodedEvent]) async -> Bool {
        while true {
            let put = state.withLock { state -> Bool? in
                if state.writerStopped { return false }
                guard state.waiting == nil else { return nil }
                state.waiting = window
                return true
            }
            if let put {
                if put { ready.signal() }
                return put
            }
            let free = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now = state.withLock { state -> Bool? in
                    if state.writerStopped { return false }
                    if state.waiting == nil { return true }
                    state.spaceWaiter = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
            guard free else { return false }
        }
    }

    /// No more windows: the writer finishes the transaction.
    func finish() { end(.success(())) }

    /// The reader failed: the writer throws `error`, rolling the transaction back.
    func fail(_ error: any Error) { end(.failure(error)) }

    private func end(_ result: Result<Void, any Error>) {
        let first = state.withLock { state -> Bool in
            guard state.end == nil else { return false }
            state.end = result
            return true
        }
        if first { ready.signal() }
    }

    /// The next window (waiting for it), nil at the end; throws what the reader failed with.
    func next() throws -> [EncodedEvent]? {
        ready.wait()
        let (window, waiter, end) = state.withLock { state in
            if let window = state.waiting {
                state.waiting = nil
                defer { state.spaceWaiter = nil }
                return (Optional(window), state.spaceWaiter, Result<Void, any Error>?.none)
            }
            return (nil, nil, state.end)
        }
        waiter?.resume(returning: true)
        if let window { return window }
        if case .failure(let error)? = end { throw error }
        return nil
    }

    /// Rows the writer has appended so far (uncommitted until the end).
    func wrote(_ count: Int) { state.withLock { $0.written += count } }

    var written: Int { state.withLock { $0.written } }

    /// The writer ended (committed or failed): a waiting or later `send` returns false.
    func writerStopped() {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            state.writerStopped = true
            defer { state.spaceWaiter = nil }
            return state.spaceWaiter
        }
        waiter?.resume(returning: false)
    }
}

/// Starts the kernel writing a growing file (the store's WAL during a one-transaction import) to
/// disk every 100 ms on a thread of its own, until stopped, so that the commit's fsync and
/// checkpoint find most of it already written instead of the whole import at once. It opens the
/// existing file read-only (never creating it) and never reads or writes its bytes.
/// Not for the database file itself: closing a second descriptor of a file releases every POSIX
/// lock the process holds on it, and SQLite locks the database file (it does not lock the WAL).
final class WriteBehind: Sendable {
    private let running = Atomic<Bool>(true)

    init(path: String) {
        let fd = Platform.openForReading(path)
        guard fd >= 0 else { return }  // no WAL yet: nothing to hurry (the import still commits)
        let thread = Thread { [self] in
            while running.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: 0.1)
                Platform.startWriteback(fd)
            }
            Platform.close(fd)
        }
        thread.start()
    }

    /// Ends the thread within 100 ms (it closes its descriptor).
    func stop() { running.store(false, ordering: .relaxed) }
}
