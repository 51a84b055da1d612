import CAuditCore
import Foundation
import GRDB
import GRDBSQLite
import Synchronization

/// What to adopt: a legacy, unsigned audit table and how its columns map onto AuditDB's fields.
///
/// ```swift
/// var adoption = LegacyAdoption(sourcePath: "app.db", table: "audit_events",
///                               mapping: [.actor: "user_id", .action: "action", .occurredAt: "timestamp"])
/// adoption.dropUnmapped = true
/// let report = try await store.adopt(adoption)
/// ```
public struct LegacyAdoption: Sendable, Hashable {
    /// The AuditDB fields a column can map onto.
    public enum Field: String, Sendable, Hashable, CaseIterable {
        case actor, action, tenant, resourceType, resourceId, outcome, severity, correlationId, source, occurredAt, details
    }

    /// How the column mapped to `occurredAt` holds time.
    public enum TimestampFormat: String, Sendable, Hashable, CaseIterable {
        /// TEXT as RFC 3339 / ISO 8601 (also SQLite's `YYYY-MM-DD HH:MM:SS[.fff]`, as UTC);
        /// integer columns must name their unit.
        case auto
        case iso8601
        case unixSeconds = "unix-seconds"
        case unixMilliseconds = "unix-milliseconds"
        case unixMicroseconds = "unix-microseconds"
    }

    /// What happens to the legacy table after a complete, verified import.
    public enum Afterwards: String, Sendable, Hashable, CaseIterable {
        /// Leave it as it was (the default; nothing is destroyed).
        case leave
        /// Add triggers that refuse UPDATE and DELETE on it, named `<table>_adopted_no_update` and
        /// `<table>_adopted_no_delete`. If a trigger of that name exists and is not AuditDB's, the
        /// run throws `invalidInput` after the import; running it again once that trigger is
        /// renamed or dropped only adds the triggers.
        case protect
        /// Drop it, only after the store verified intact and the imported count matched.
        case drop
    }

    /// The SQLite file holding the legacy table (may be the store's own file).
    public var sourcePath: String
    /// The legacy table.
    public var table: String
    /// Field → source column. `actor` and `action` are required.
    public var mapping: [Field: String]
    /// The integer column that orders the rows and identifies them in reports (default: rowid).
    public var idColumn: String?
    /// How `occurredAt`'s column holds time.
    public var timestampFormat: TimestampFormat = .auto
    /// Import the valid rows and list the invalid ones, instead of refusing the whole run.
    public var skipInvalid = false
    /// Leave out source columns that are not mapped (their names are recorded in the run entry),
    /// instead of refusing the run.
    public var dropUnmapped = false
    /// What to do with the legacy table afterwards.
    public var afterwards: Afterwards = .leave
    /// How the imported rows are committed.
    public enum Commits: String, Sendable, Hashable, CaseIterable {
        /// One transaction when the store holds no more rows than the source and the source at
        /// most ``LegacyAdoption/oneTransactionLimit`` rows; batches otherwise.
        case automatic
        /// ``LegacyAdoption/batchSize`` rows per transaction, with the store's indexes kept up to
        /// date row by row: killed and run again, the run continues after its last committed batch,
        /// and other writers get the store between batches.
        case batches
        /// The run entry and every row in one transaction, the query indexes built once at its
        /// end (about 2x the rate of batches into an empty store): killed, nothing of the run stays
        /// and running it again starts over; other writers wait for the whole import. When nothing
        /// else has the store open it goes through SQLite's rollback journal (meanwhile other
        /// processes cannot open the store and this process's reads wait), otherwise through the
        /// WAL (readers see the store as before until the commit);
        /// `docs/migrations.md`, "Commits".
        case oneTransaction = "one-transaction"
    }

    /// The most source rows ``Commits/automatic`` imports in one transaction (the write-ahead log
    /// grows by about the size of the imported rows until it commits).
    public static let oneTransactionLimit = 5_000_000

    /// Rows per transaction (with ``Commits/batches``).
    public var batchSize = 10_000
    /// How the rows are committed: ``Commits/automatic`` by default.
    public var commits = Commits.automatic
    /// Source rows read and validated at a time (internal: tests make it small).
    var windowSize = 20_000

    /// An adoption of `table` in `sourcePath` with `mapping`.
    public init(sourcePath: String, table: String, mapping: [Field: String]) {
        self.sourcePath = sourcePath
        self.table = table
        self.mapping = mapping
    }
}

extension LegacyAdoption.Field {
    /// A dense index for per-row storage.
    var slot: Int {
        switch self {
        case .actor: 0
        case .action: 1
        case .tenant: 2
        case .resourceType: 3
        case .resourceId: 4
        case .outcome: 5
        case .severity: 6
        case .correlationId: 7
        case .source: 8
        case .occurredAt: 9
        case .details: 10
        }
    }
}

/// One invalid source row.
public struct AdoptionProblem: Error, Sendable, Hashable, CustomStringConvertible {
    /// The row's id (the id column, or its rowid).
    public let rowID: Int64
    /// The field (or `id`) at fault.
    public let field: String
    /// What is wrong.
    public let message: String

    public var description: String { "row \(rowID): \(field): \(message)" }
}

/// How far an adoption is.
public struct AdoptionProgress: Sendable, Hashable {
    /// Rows imported so far (including those of an earlier, interrupted attempt).
    public let imported: Int
    /// Rows to import in all.
    public let total: Int
    /// Time since this attempt started.
    public let elapsed: Duration
}

/// What ``AuditStore/adopt(_:progress:)`` did.
public struct AdoptionReport: Sendable, Hashable {
    /// The seq of the run's entry; every adopted row's `origin` is `.backSigned(run:)` with it.
    public let runSeq: Int64
    /// Rows imported by this attempt.
    public let imported: Int
    /// Rows an earlier, interrupted attempt had imported already.
    public let resumedFrom: Int
    /// Valid rows in the source (imported in all, once the run is complete).
    public let total: Int
    /// How many rows were skipped as invalid (with `skipInvalid`).
    public let skippedCount: Int
    /// The ids of the first 1,000 of them (all of them when there are no more).
    public let skipped: [Int64]
    /// Source columns left out (with `dropUnmapped`).
    public let droppedColumns: [String]
    /// SHA-256 of the source rows, hex.
    public let sourceDigest: String
    /// What was done with the legacy table.
    public let afterwards: LegacyAdoption.Afterwards
}

extension AuditStore {
    /// Brings a legacy audit table under signature: validates every source row before anything
    /// is committed (inside one read transaction of the source), records the run as an entry, then
    /// appends the rows in the source's order as back-signed rows that name that run.
    ///
    /// With ``LegacyAdoption/Commits/batches`` the rows are committed in batches; killed at any
    /// point and run again with the same source, the run resumes where it stopped: no row twice,
    /// none skipped. With ``LegacyAdoption/Commits/oneTransaction`` (what ``LegacyAdoption/Commits/automatic``
    /// chooses for an empty or small store) the run entry and all rows commit at once, with the
    /// query indexes built once after the rows are in; killed, nothing of it stays, and running it
    /// again starts over.
    ///
    /// - Throws: ``AuditError`` `invalidInput` listing invalid rows by id (nothing is imported
    ///   unless `skipInvalid`), unmapped columns (unless `dropUnmapped`), or a source that changed
    ///   since an earlier attempt; `integrityViolation` if `drop` was asked and the store does not
    ///   verify; storage errors.
    public func adopt(_ adoption: LegacyAdoption, progress: (@Sendable (AdoptionProgress) -> Void)? = nil) async throws
        -> AdoptionReport
    {
        let started = ContinuousClock.now
        guard adoption.mapping[.actor] != nil, adoption.mapping[.action] != nil else {
            throw AuditError(.invalidInput, "map at least actor and action (e.g. --map actor=user_id --map action=event_type)",
                             field: "mapping")
        }
        guard (1...100_000).contains(adoption.batchSize) else {
            throw AuditError(.invalidInput, "the batch size must be between 1 and 100000", field: "batchSize")
        }
        let wait = configuration.lockWait.components
        let waitMilliseconds = wait.seconds * 1_000 + wait.attoseconds / 1_000_000_000_000_000
        let lock = try await takeAdoptionLock()
        defer { Platform.close(lock) }
        let source = try LegacySource.opening(adoption, busyTimeoutMilliseconds: Int32(clamping: waitMilliseconds))
        defer { source.close() }
        if adoption.afterwards == .drop, !source.droppedColumns.isEmpty {
            throw AuditError(
                .invalidInput,
                "--then drop would destroy the columns \(source.droppedColumns.joined(separator: ", ")) of \(adoption.table), which are not imported "
                    + "(--drop-unmapped); map them, or use --then protect and drop the table yourself once they are no longer needed",
                field: "afterwards")
        }
        let oneTransaction = adoption.commits.isOneTransaction(sourceRows: source.rowCount, storeRows: try await lastSeq())
        // Pass 1: digest the source (and validate every row, unless the rows go in one transaction
        // that an invalid row rolls back whole), changing nothing.
        var pass = try await Self.firstPass(source, validating: !oneTransaction || adoption.skipInvalid)
        let sourceName = Self.sourceName(adoption.sourcePath)
        let earlierRuns = try await runs(table: adoption.table, source: sourceName)
        for run in earlierRuns { try run.check(adoption, droppedColumns: source.droppedColumns) }
        if let other = earlierRuns.first(where: { !$0.matches(pass) }) {
            throw AuditError(
                .invalidInput,
                "\(adoption.table) in \(sourceName) was adopted before (run \(other.seq)) and has changed since (its rows' digest "
                    + "differs); adopting it again would import its rows twice. If that run was interrupted, restore the table to what "
                    + "it was (from a backup) and run again to resume it; if it finished, adopt only the new rows from a copy of the "
                    + "table, or investigate why the legacy table changed.",
                field: "source")
        }
        // The same rows from another file or table (a copy, a hard link, a moved or renamed file,
        // a renamed table): the digest covers every id and mapped value, not where they came from.
        // (An empty table has nothing to import twice, and every empty table has one digest.)
        if earlierRuns.isEmpty, pass.valid + pass.problemCount > 0,
           let twin = try await runs(table: nil, source: nil).first(where: { $0.matches(pass) })
        {
            throw AuditError(
                .invalidInput,
                "the rows of \(adoption.table) in \(sourceName) were adopted before, as \(twin.table) in \(twin.source) (run \(twin.seq)): "
                    + "the same ids and values, so this is the same table again (a copy, a link, a moved file or a renamed table), "
                    + "and adopting it would import every row twice. Nothing was written. To resume an interrupted run, adopt from "
                    + "the file and table that run names.",
                field: "source")
        }
        if earlierRuns.isEmpty, oneTransaction {
            try await refuseRebuildingOverDamage()
            return try await adoptInOneTransaction(adoption, source: source, pass: pass, sourceName: sourceName, started: started,
                                                   progress: progress)
        }
        // An earlier run of this source continues in batches (a one-transaction run leaves no run
        // entry unless it finished): its rows are validated and counted first, as always.
        if !pass.validated { pass = try await Self.firstPass(source, validating: true) }
        if pass.problemCount > 0 && !adoption.skipInvalid { throw pass.invalidRowsError }

        // The run: an earlier attempt on the same source (same digest), or a new run entry.
        let runSeq: Int64
        var already = 0
        if let earlier = earlierRuns.first?.seq {
            runSeq = earlier
            already = try await importedCount(run: earlier)
            // The count is of the run's rows still in the log: rows of it that expired since (a
            // tombstone keeps no origin) would be imported again. Never guess.
            if already < pass.valid, try await expiredSince(earlier) {
                let what = "\(adoption.table) in \(sourceName) was adopted before (run \(earlier)), and retention has expired rows since "
                    + "that run began: \(already) of its \(pass.valid) rows are still in the log"
                let why = ", and which of the rest it imported before they expired cannot be told, so resuming could import rows twice. "
                    + "Nothing was written."
                let next = " If that run finished (its rows were all imported), there is nothing to do; if it was interrupted, adopt "
                    + "the rows it had not reached from a copy of the table."
                throw AuditError(.invalidInput, what + why + next, field: "source")
            }
        } else {
            runSeq = try await appendEngineEntry(runEntry(adoption, source: source, sourceName: sourceName, pass: pass))
        }
        guard already <= pass.valid else {
            throw AuditError(.storage, "run \(runSeq) already holds \(already) rows but the source has only \(pass.valid) valid rows")
        }
        let imported = try await appendInBatches(adoption, source: source, runSeq: runSeq, already: already, valid: pass.valid,
                                                 started: started, progress: progress)
        try await finish(adoption, source: source, runSeq: runSeq, pass: pass)
        return AdoptionReport(
            runSeq: runSeq, imported: imported, resumedFrom: already, total: pass.valid, skippedCount: pass.problemCount,
            skipped: pass.skipped, droppedColumns: source.droppedColumns, sourceDigest: pass.digest, afterwards: adoption.afterwards)
    }

    /// Pass 1: every source row read inside the source's read transaction and digested; with
    /// `validating`, also converted and checked (the counts and the first 1,000 problems).
    static func firstPass(_ source: LegacySource, validating: Bool) async throws -> SourcePass {
        var pass = SourcePass(validated: validating)
        guard let digest = adb_digest_start() else { throw AuditError(.storage, "out of memory for the source digest") }
        var digestOpen = true
        defer { if digestOpen { adb_digest_finish(digest, nil) } }
        guard let legacy = adb_digest_start() else { throw AuditError(.storage, "out of memory for the source digest") }
        var legacyOpen = true
        defer { if legacyOpen { adb_digest_finish(legacy, nil) } }
        let rows = try await source.forEachWindow(hashingInto: digest, legacyDigest: legacy, converting: validating) { window in
            for result in window { pass.count(result) }
        }
        if !validating { pass.valid = rows }
        var digestBytes = [UInt8](repeating: 0, count: 32)
        adb_digest_finish(digest, &digestBytes)
        digestOpen = false
        pass.digest = Hex.encode(digestBytes)
        adb_digest_finish(legacy, &digestBytes)
        legacyOpen = false
        pass.legacyDigest = Hex.encode(digestBytes)
        return pass
    }

    /// The run entry (action `auditdb.migration.adopt`): the source, the mapping, the counts, the digest.
    func runEntry(_ adoption: LegacyAdoption, source: LegacySource, sourceName: String, pass: SourcePass) -> AuditEvent {
        let details: [String: JSONValue] = [
            "source": .string(sourceName), "table": .string(adoption.table),
            "idColumn": .string(adoption.idColumn ?? "rowid"), "rows": .int(Int64(pass.valid + pass.problemCount)),
            "valid": .int(Int64(pass.valid)), "skipped": .array(pass.skipped.prefix(1_000).map { .int($0) }),
            "skippedCount": .int(Int64(pass.problemCount)),
            "droppedColumns": .array(source.droppedColumns.map { .string($0) }),
            "mapping": .object(Dictionary(uniqueKeysWithValues: adoption.mapping.map { ($0.key.rawValue, .string($0.value)) })),
            "sourceDigest": .string(pass.digest), "digestVersion": .int(2), "keyVersion": .int(Int64(keys.signingKey.version)),
            "timestampFormat": .string(adoption.timestampFormat.rawValue), "skipInvalid": .bool(adoption.skipInvalid),
        ]
        return AuditEvent(actor: "auditdb", action: Self.adoptionAction, resourceType: "legacy-table",
                          resourceId: adoption.table, severity: .notice, details: AuditDetails(details))
    }

    /// Pass 2 in batches: appends the valid rows after the `already` imported ones, in order,
    /// `batchSize` per transaction; returns how many it appended.
    ///
    /// The source is read in windows; while one window's batches are being written (a child
    /// task), the next window is read and validated, so at most two windows are in memory. One
    /// window is written at a time and in order, so whatever is committed is always a prefix of
    /// the source: resuming stays exact. The task group is the only writer: if reading fails or
    /// `adopt` is cancelled, the group cancels the writer, which stops between batches (a batch
    /// is one transaction), and waits for it before `adopt` returns or throws.
    private func appendInBatches(_ adoption: LegacyAdoption, source: LegacySource, runSeq: Int64, already: Int, valid: Int,
                                 started: ContinuousClock.Instant, progress: (@Sendable (AdoptionProgress) -> Void)?) async throws
        -> Int
    {
        var position = 0
        let imported = ImportCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            var writing = false
            try await source.forEachWindow { window in
                var events: [EncodedEvent] = []
                events.reserveCapacity(window.count)
                for result in window {
                    guard case .success(var event) = result else { continue }
                    position += 1
                    guard position > already else { continue }
                    event.origin = 1
                    event.originRef = runSeq
                    events.append(event)
                }
                let batches = stride(from: 0, to: events.count, by: adoption.batchSize).map {
                    Array(events[$0..<min(events.count, $0 + adoption.batchSize)])
                }
                if writing { try await group.next() }  // the previous window is written before this one starts
                group.addTask {
                    for batch in batches {
                        try Task.checkCancellation()
                        _ = try await self.appender.submit(batch)
                        let done = imported.add(batch.count)
                        progress?(AdoptionProgress(imported: already + done, total: valid, elapsed: ContinuousClock.now - started))
                    }
                }
                writing = true
            }
            try await group.waitForAll()
        }
        return imported.value
    }

    static let adoptionAction = "auditdb.migration.adopt"

    /// The source file as run entries name it: an absolute path with symbolic links resolved, so
    /// that `app.db`, `./app.db` and `/srv/app.db` are one source.
    static func sourceName(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// Applies `afterwards` once every valid row is in the store.
    func finish(_ adoption: LegacyAdoption, source: LegacySource, runSeq: Int64, pass: SourcePass) async throws {
        let expected = pass.valid
        let count = try await importedCount(run: runSeq)
        guard count == expected else {
            throw AuditError(.storage, "run \(runSeq) holds \(count) rows, expected \(expected); run the adoption again to resume")
        }
        if adoption.afterwards == .drop, pass.problemCount > 0 {
            throw AuditError(
                .invalidInput,
                "run \(runSeq) imported \(expected) rows, but \(adoption.table) was not dropped: its \(pass.problemCount) row(s) skipped as invalid "
                    + "are only there. Fix or keep them, then drop the table yourself.",
                field: "afterwards")
        }
        switch adoption.afterwards {
        case .leave:
            return
        case .protect:
            try LegacySource.reportingSource(adoption.sourcePath) { try source.protect() }
        case .drop:
            let report = try await verify()
            guard report.isLogIntact else {
                throw AuditError(.integrityViolation, "the store does not verify (\(report)); the legacy table was not dropped")
            }
            try await LegacySource.reportingSourceAsync(adoption.sourcePath) { try await source.drop(digest: pass.digest) }
        }
    }
}

/// An earlier run entry of the same table and source file.
struct EarlierRun {
    let seq: Int64
    let digest: String
    /// The run entry's details.
    let details: JSONObject
    /// The source file and table the run entry names.
    let source: String
    let table: String

    /// Whether the source read in `pass` has this run's digest: digest 2 for entries that say
    /// `"digestVersion":2`, else digest 1 (entries written before it, a REAL to 15 digits).
    func matches(_ pass: SourcePass) -> Bool {
        digest == (details["digestVersion"]?.integer == 2 ? pass.digest : pass.legacyDigest)
    }

    /// Refuses to continue it with other options: the rest of its rows would be read differently
    /// (another column as a field, another timestamp unit, other rows skipped).
    func check(_ adoption: LegacyAdoption, droppedColumns: [String]) throws {
        var differences: [String] = []
        let recordedMapping = details["mapping"]?.object.map { object in
            Dictionary(object.storage.map { ($0.key.string, $0.value.text) }, uniquingKeysWith: { first, _ in first })
        }
        let mapping = Dictionary(uniqueKeysWithValues: adoption.mapping.map { ($0.key.rawValue, Optional($0.value)) })
        if recordedMapping != mapping { differences.append("the mapping") }
        if details["idColumn"]?.text != adoption.idColumn ?? "rowid" { differences.append("the id column") }
        if details["droppedColumns"]?.elements?.map(\.text) != droppedColumns.map(Optional.init) { differences.append("the columns left out") }
        // Recorded since 2026-12-04; older run entries do not say.
        if let format = details["timestampFormat"], format.text != adoption.timestampFormat.rawValue { differences.append("--timestamp-format") }
        if let skip = details["skipInvalid"], skip.isTrue != adoption.skipInvalid { differences.append("--skip-invalid") }
        guard differences.isEmpty else {
            throw AuditError(
                .invalidInput,
                "run \(seq) adopted this table with other options (\(differences.joined(separator: ", ")) differ); continuing it would read "
                    + "the rest of its rows differently. Run it again with the options its run entry records "
                    + "(auditdb query --action \(AuditStore.adoptionAction)).",
                field: "source")
        }
    }
}

/// Rows imported so far, counted by the writing task and read by the caller.
final class ImportCounter: Sendable {
    private let count = Mutex(0)
    func add(_ n: Int) -> Int { count.withLock { $0 += n; return $0 } }
    var value: Int { count.withLock { $0 } }
}
