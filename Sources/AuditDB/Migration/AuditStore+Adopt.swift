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
        /// Add triggers that refuse UPDATE and DELETE on it.
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
    /// Rows per transaction.
    public var batchSize = 10_000
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
    /// Brings a legacy audit table under signature: validates every source row first (inside one
    /// read transaction of the source), records the run as an entry, then appends the rows in the
    /// source's order, in batches, as back-signed rows that name that run. Killed at any point and
    /// run again with the same source, it resumes where it stopped: no row twice, none skipped.
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
        let source = try LegacySource(adoption)
        defer { source.close() }
        // Pass 1: validate everything and digest the source, changing nothing.
        var problems: [AdoptionProblem] = []
        var problemCount = 0
        var valid = 0
        guard let digest = adb_digest_start() else { throw AuditError(.storage, "out of memory for the source digest") }
        var digestOpen = true
        defer { if digestOpen { adb_digest_finish(digest, nil) } }
        try await source.forEachWindow(hashingInto: digest) { window in
            for result in window {
                switch result {
                case .success: valid += 1
                case .failure(let problem):
                    problemCount += 1
                    if problems.count < 1_000 { problems.append(problem) }
                }
            }
        }
        var digestBytes = [UInt8](repeating: 0, count: 32)
        adb_digest_finish(digest, &digestBytes)
        digestOpen = false
        let digestHex = Hex.encode(digestBytes)
        if problemCount > 0 && !adoption.skipInvalid {
            let listed = problems.prefix(20).map(\.description).joined(separator: "; ")
            throw AuditError(
                .invalidInput,
                "\(problemCount) source row(s) are invalid; nothing was imported. \(listed)\(problemCount > 20 ? "; ..." : ""). "
                    + "Fix them in the source, or pass --skip-invalid to import the valid rows and list the others.",
                field: "source")
        }
        let skipped = problems.map(\.rowID)

        // The run: an earlier attempt on the same source (same digest), or a new run entry.
        let runSeq: Int64
        var already = 0
        let sourceName = (adoption.sourcePath as NSString).standardizingPath
        let earlierRuns = try await runs(table: adoption.table, source: sourceName)
        if let other = earlierRuns.first(where: { $0.digest != digestHex }) {
            throw AuditError(
                .invalidInput,
                "\(adoption.table) in \(sourceName) was adopted before (run \(other.seq)) and has changed since (its rows' digest "
                    + "differs); adopting it again would import its rows twice. Adopt only the new rows from a copy of the table, "
                    + "or investigate why the legacy table changed.",
                field: "source")
        }
        if let earlier = earlierRuns.first?.seq {
            runSeq = earlier
            already = try await pool.read { db in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_entries WHERE origin_ref = ? AND origin = 1",
                                 arguments: [earlier]) ?? 0
            }
        } else {
            let details: [String: JSONValue] = [
                "source": .string(sourceName), "table": .string(adoption.table),
                "idColumn": .string(adoption.idColumn ?? "rowid"), "rows": .int(Int64(valid + problemCount)),
                "valid": .int(Int64(valid)), "skipped": .array(skipped.prefix(1_000).map { .int($0) }),
                "skippedCount": .int(Int64(problemCount)),
                "droppedColumns": .array(source.droppedColumns.map { .string($0) }),
                "mapping": .object(Dictionary(uniqueKeysWithValues: adoption.mapping.map { ($0.key.rawValue, .string($0.value)) })),
                "sourceDigest": .string(digestHex), "keyVersion": .int(Int64(keys.signingKey.version)),
            ]
            runSeq = try await appendEngineEntry(AuditEvent(
                actor: "auditdb", action: Self.adoptionAction, resourceType: "legacy-table",
                resourceId: adoption.table, severity: .notice, details: AuditDetails(details)))
        }
        guard already <= valid else {
            throw AuditError(.storage, "run \(runSeq) already holds \(already) rows but the source has only \(valid) valid rows")
        }

        // Pass 2: append the valid rows after those already imported, in order, in batches. The
        // source is read in windows; while one window's batches are being written (a child task),
        // the next window is read and validated, so at most two windows are in memory. One window
        // is written at a time and in order, so whatever is committed is always a prefix of the
        // source: resuming stays exact. The task group is the only writer: if reading fails or
        // `adopt` is cancelled, the group cancels the writer, which stops between batches (a batch
        // is one transaction), and waits for it before `adopt` returns or throws.
        var position = 0
        let imported = ImportCounter()
        let (resumeAt, validRows) = (already, valid)
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
                        progress?(AdoptionProgress(imported: resumeAt + done, total: validRows, elapsed: ContinuousClock.now - started))
                    }
                }
                writing = true
            }
            try await group.waitForAll()
        }

        try await finish(adoption, source: source, runSeq: runSeq, expected: valid)
        return AdoptionReport(
            runSeq: runSeq, imported: imported.value, resumedFrom: already, total: valid, skippedCount: problemCount, skipped: skipped,
            droppedColumns: source.droppedColumns, sourceDigest: digestHex, afterwards: adoption.afterwards)
    }

    static let adoptionAction = "auditdb.migration.adopt"

    /// Earlier run entries for this table and source file, with the digests they recorded.
    private func runs(table: String, source: String) async throws -> [(seq: Int64, digest: String)] {
        try await entriesWithAction(Self.adoptionAction).compactMap { entry in
            guard entry.actor == "auditdb", entry.resourceId == table, let details = entry.detailsJSON,
                  let object = JSONText.members(details),  // details AuditDB itself wrote
                  case .string(let recordedSource)? = object["source"], recordedSource == source,
                  case .string(let digest)? = object["sourceDigest"]
            else { return nil }
            return (entry.seq, digest)
        }
    }

    /// Entries with `action`, verified as read (a full scan: adoption is rare).
    private func entriesWithAction(_ action: String) async throws -> [AuditEntry] {
        var found: [AuditEntry] = []
        var cursor: Int64?
        while true {
            let page = try await entries(EntryQuery(afterSeq: cursor, limit: 10_000, action: action))
            found += page
            guard page.count == 10_000, let last = page.last else { return found }
            cursor = last.seq
        }
    }

    /// Applies `afterwards` once every valid row is in the store.
    private func finish(_ adoption: LegacyAdoption, source: LegacySource, runSeq: Int64, expected: Int) async throws {
        let count = try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_entries WHERE origin_ref = ? AND origin = 1", arguments: [runSeq]) ?? 0
        }
        guard count == expected else {
            throw AuditError(.storage, "run \(runSeq) holds \(count) rows, expected \(expected); run the adoption again to resume")
        }
        switch adoption.afterwards {
        case .leave:
            return
        case .protect:
            try source.protect()
        case .drop:
            let report = try await verify()
            guard report.isLogIntact else {
                throw AuditError(.integrityViolation, "the store does not verify (\(report)); the legacy table was not dropped")
            }
            try source.drop()
        }
    }
}

/// Rows imported so far, counted by the writing task and read by the caller.
final class ImportCounter: Sendable {
    private let count = Mutex(0)
    func add(_ n: Int) -> Int { count.withLock { $0 += n; return $0 } }
    var value: Int { count.withLock { $0 } }
}
