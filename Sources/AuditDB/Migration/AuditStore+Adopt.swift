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
        // source is read in windows; while one window's batches are being written, the next window
        // is read and validated (at most two windows in memory). Batches reach the appender in
        // order, so whatever is committed is always a prefix of the source: resuming stays exact.
        var position = 0
        let imported = ImportCounter()
        let (resumeAt, validRows) = (already, valid)
        var writing: Task<Void, any Error>?
        var writingBefore: Task<Void, any Error>?
        try await source.forEachWindow { window in
            try await writingBefore?.value  // bound memory: the window before last must be written
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
            let previous = writing
            writingBefore = writing
            writing = Task {
                try await previous?.value
                for batch in batches {
                    _ = try await self.appender.submit(batch)
                    let done = imported.add(batch.count)
                    progress?(AdoptionProgress(imported: resumeAt + done, total: validRows, elapsed: ContinuousClock.now - started))
                }
            }
        }
        try await writing?.value

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

/// The legacy table, read through its own connection inside one read transaction, so that both
/// passes see the same rows. Not Sendable: used by one task only.
final class LegacySource {
    let adoption: LegacyAdoption
    private var connection: OpaquePointer?
    let droppedColumns: [String]
    private let columns: [(LegacyAdoption.Field, String)]
    private let selectSQL: String
    private let idExpression: String

    init(_ adoption: LegacyAdoption) throws {
        self.adoption = adoption
        guard FileManager.default.fileExists(atPath: adoption.sourcePath) else {
            throw AuditError(.invalidInput, "no source database at \(adoption.sourcePath)", field: "source")
        }
        var handle: OpaquePointer?
        // NOMUTEX: one task uses this connection at a time, so SQLite's per-call mutex is pure cost.
        guard sqlite3_open_v2(adoption.sourcePath, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            throw AuditError(.storage, "cannot open the source \(adoption.sourcePath): \(message)")
        }
        sqlite3_busy_timeout(handle, 5_000)
        connection = handle
        func quote(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        // The table's columns.
        var tableColumns: [String] = []
        var stmt: OpaquePointer?
        sqlite3_prepare_v2(handle, "SELECT name FROM pragma_table_info(?)", -1, &stmt, nil)
        sqlite3_bind_text(stmt, 1, adoption.table, -1, unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self))
        while sqlite3_step(stmt) == SQLITE_ROW { tableColumns.append(String(cString: sqlite3_column_text(stmt, 0))) }
        sqlite3_finalize(stmt)
        guard !tableColumns.isEmpty else {
            throw AuditError(.invalidInput, "\(adoption.sourcePath) has no table \(adoption.table)", field: "table")
        }
        let mapped = Set(adoption.mapping.values)
        for (field, column) in adoption.mapping where !tableColumns.contains(column) {
            throw AuditError(.invalidInput, "\(field.rawValue) maps to \(column), which \(adoption.table) lacks (it has \(tableColumns.joined(separator: ", ")))",
                             field: field.rawValue)
        }
        if let id = adoption.idColumn, !tableColumns.contains(id) {
            throw AuditError(.invalidInput, "the id column \(id) is not in \(adoption.table)", field: "idColumn")
        }
        let unmapped = tableColumns.filter { !mapped.contains($0) && $0 != adoption.idColumn }
        guard unmapped.isEmpty || adoption.dropUnmapped else {
            throw AuditError(
                .invalidInput,
                "columns \(unmapped.joined(separator: ", ")) of \(adoption.table) are not mapped; map them, or pass --drop-unmapped to leave them out (their names are recorded in the run entry)",
                field: "mapping")
        }
        droppedColumns = unmapped
        columns = LegacyAdoption.Field.allCases.compactMap { field in adoption.mapping[field].map { (field, $0) } }
        let id = adoption.idColumn.map(quote) ?? "rowid"
        // The trailing rowid makes the order total (ids may repeat: reported, not lost) and is not hashed.
        idExpression = id
        selectSQL = "SELECT \(id), \(columns.map { quote($0.1) }.joined(separator: ", ")), rowid FROM \(quote(adoption.table))"
        guard sqlite3_exec(handle, "BEGIN", nil, nil, nil) == SQLITE_OK,
              sqlite3_exec(handle, "SELECT count(*) FROM \(quote(adoption.table))", nil, nil, nil) == SQLITE_OK
        else {
            throw AuditError(.storage, "cannot read \(adoption.table): \(String(cString: sqlite3_errmsg(handle)))")
        }
    }

    func close() {
        if let connection {
            sqlite3_exec(connection, "ROLLBACK", nil, nil, nil)
            sqlite3_close(connection)
        }
        connection = nil
    }

    deinit { close() }

    /// Every row in order (by id, then rowid), read in windows of `adoption.windowSize` rows so a
    /// large table is never in memory at once; each window goes to `body` before the next is read.
    /// Both passes of an adoption use this one reader, so they count rows identically — which is
    /// what makes resuming exact. With `digest`, each row's id and mapped columns are hashed into it.
    func forEachWindow(hashingInto digest: OpaquePointer? = nil,
                       _ body: ([Result<EncodedEvent, AdoptionProblem>]) async throws -> Void) async throws
    {
        let windowSize = adoption.windowSize
        let idColumnIndex = Int32(0), rowidIndex = Int32(columns.count + 1)
        var after: (id: OpaquePointer, rowid: Int64)?  // the last row read (a copied sqlite3_value)
        defer { if let after { sqlite3_value_free(after.id) } }
        var previousID: Int64?
        while true {
            let condition = after == nil ? "" : " WHERE (\(idExpression), rowid) > (?, ?)"
            let sql = selectSQL + condition + " ORDER BY \(idExpression), rowid LIMIT \(windowSize)"
            var stmt: OpaquePointer?
            guard sqlite3_prepare_v2(connection, sql, -1, &stmt, nil) == SQLITE_OK else {
                throw AuditError(.storage, "cannot read \(adoption.table): \(String(cString: sqlite3_errmsg(connection)))")
            }
            if let after {
                sqlite3_bind_value(stmt, 1, after.id)
                sqlite3_bind_int64(stmt, 2, after.rowid)
            }
            var window: [Result<EncodedEvent, AdoptionProblem>] = []
            window.reserveCapacity(windowSize)
            var rc = sqlite3_step(stmt)
            while rc == SQLITE_ROW {
                let id = sqlite3_column_int64(stmt, idColumnIndex)
                // Each column as u8 type || u32 length || bytes (the trailing rowid is not hashed).
                if let digest { adb_digest_columns(digest, UnsafeMutableRawPointer(stmt), Int32(columns.count + 1)) }
                if sqlite3_column_type(stmt, idColumnIndex) != SQLITE_INTEGER {
                    window.append(.failure(AdoptionProblem(rowID: id, field: "id", message: "the id is not an integer")))
                } else if previousID == id {
                    window.append(.failure(AdoptionProblem(rowID: id, field: "id", message: "duplicate id")))
                } else {
                    previousID = id
                    window.append(row(stmt!, id: id))
                }
                if let old = after { sqlite3_value_free(old.id) }
                after = (sqlite3_value_dup(sqlite3_column_value(stmt, idColumnIndex))!, sqlite3_column_int64(stmt, rowidIndex))
                rc = sqlite3_step(stmt)
            }
            sqlite3_finalize(stmt)
            guard rc == SQLITE_DONE else {
                throw AuditError(.storage, "reading \(adoption.table) failed: \(String(cString: sqlite3_errmsg(connection)))")
            }
            try await body(window)
            guard window.count == windowSize else { return }
        }
    }

    /// Turns one source row into a validated event, or says what is wrong with it.
    private func row(_ stmt: OpaquePointer, id: Int64) -> Result<EncodedEvent, AdoptionProblem> {
        func problem(_ field: LegacyAdoption.Field, _ message: String) -> Result<EncodedEvent, AdoptionProblem> {
            .failure(AdoptionProblem(rowID: id, field: field.rawValue, message: message))
        }
        // One slot per field (a dictionary keyed by the String-backed enum hashed the raw value on
        // every access: ~4% of an adoption's time).
        var texts = [String?](repeating: nil, count: LegacyAdoption.Field.allCases.count)
        var occurred: AuditTimestamp?
        for (offset, (field, _)) in columns.enumerated() {
            let i = Int32(offset + 1)
            let type = sqlite3_column_type(stmt, i)
            if field == .occurredAt {
                switch Self.timestamp(stmt, i, type: type, format: adoption.timestampFormat) {
                case .success(let t): occurred = t
                case .failure(let failure): return problem(field, failure.message)
                }
                continue
            }
            switch type {
            case SQLITE_NULL:
                continue
            case SQLITE_INTEGER:
                texts[field.slot] = String(sqlite3_column_int64(stmt, i))
            case SQLITE_TEXT:
                let bytes = UnsafeBufferPointer(start: sqlite3_column_text(stmt, i), count: Int(sqlite3_column_bytes(stmt, i)))
                // ASCII is valid UTF-8: skip the full validation for the common case.
                if bytes.allSatisfy({ $0 < 0x80 }) {
                    texts[field.slot] = String(decoding: bytes, as: UTF8.self)
                } else {
                    guard let text = String(validating: bytes, as: UTF8.self) else { return problem(field, "is not valid UTF-8") }
                    texts[field.slot] = text
                }
            default:
                return problem(field, "holds a \(type == SQLITE_BLOB ? "BLOB" : "REAL"); text was expected")
            }
        }
        guard let actor = texts[LegacyAdoption.Field.actor.slot] else { return problem(.actor, "is NULL") }
        guard let action = texts[LegacyAdoption.Field.action.slot] else { return problem(.action, "is NULL") }
        var event = AuditEvent(actor: actor, action: action)
        event.tenant = texts[LegacyAdoption.Field.tenant.slot]
        event.resourceType = texts[LegacyAdoption.Field.resourceType.slot]
        event.resourceId = texts[LegacyAdoption.Field.resourceId.slot]
        event.correlationId = texts[LegacyAdoption.Field.correlationId.slot]
        event.source = texts[LegacyAdoption.Field.source.slot]
        event.occurredAt = occurred
        // Names, or AuditDB's own integer codes (rows of an AuditDB-shaped table that were never signed).
        if let outcome = texts[LegacyAdoption.Field.outcome.slot] {
            guard let value = AuditOutcome(rawValue: outcome) ?? Int64(outcome).flatMap(AuditOutcome.init(code:)) else {
                return problem(.outcome, "\(outcome.debugDescription) is not success, failure, denied or error (or 0-3)")
            }
            event.outcome = value
        }
        if let severity = texts[LegacyAdoption.Field.severity.slot] {
            guard let value = AuditSeverity(rawValue: severity) ?? Int64(severity).flatMap(AuditSeverity.init(code:)) else {
                return problem(.severity, "\(severity.debugDescription) is not info, notice, warning or critical (or 0-3)")
            }
            event.severity = value
        }
        if let details = texts[LegacyAdoption.Field.details.slot] { event.details = AuditDetails(json: details) }
        do {
            return .success(try EncodedEvent(validating: event))
        } catch {
            let field = error.field ?? "row"
            let message = error.message.hasPrefix("\(field): ") ? String(error.message.dropFirst(field.count + 2)) : error.message
            return .failure(AdoptionProblem(rowID: id, field: field, message: message))
        }
    }

    private static func timestamp(_ stmt: OpaquePointer, _ i: Int32, type: Int32, format: LegacyAdoption.TimestampFormat)
        -> Result<AuditTimestamp?, TimestampProblem>
    {
        if type == SQLITE_NULL { return .success(nil) }
        switch format {
        case .auto, .iso8601:
            guard type == SQLITE_TEXT else {
                return .failure(TimestampProblem(message: "is a number; give its unit with --timestamp-format unix-seconds|unix-milliseconds|unix-microseconds"))
            }
            let text = String(cString: sqlite3_column_text(stmt, i))
            var parsed = AuditTimestamp.parse(text)
            // SQLite's own datetime() format, taken as UTC.
            var sqliteForm = text
            if case .failure(let why) = parsed, why.isSyntax, sqliteForm.count >= 19,
               sqliteForm[sqliteForm.index(sqliteForm.startIndex, offsetBy: 10)] == " "
            {
                sqliteForm.replaceSubrange(sqliteForm.index(sqliteForm.startIndex, offsetBy: 10)...sqliteForm.index(sqliteForm.startIndex, offsetBy: 10), with: "T")
                parsed = AuditTimestamp.parse(sqliteForm + "Z")
            }
            switch parsed {
            case .success(let t): return .success(t)
            case .failure(let why) where !why.isSyntax:
                // More than microsecond precision, or out of range: refused, never truncated.
                return .failure(TimestampProblem(message: "\(text.debugDescription) \(why)"))
            case .failure:
                return .failure(TimestampProblem(message: "\(text.debugDescription) is not an RFC 3339 / ISO 8601 time"))
            }
        case .unixSeconds, .unixMilliseconds, .unixMicroseconds:
            guard type == SQLITE_INTEGER || type == SQLITE_FLOAT else { return .failure(TimestampProblem(message: "is not a number of \(format.rawValue)")) }
            let scale: Double = format == .unixSeconds ? 1_000_000 : format == .unixMilliseconds ? 1_000 : 1
            let micros = sqlite3_column_double(stmt, i) * scale
            guard micros.isFinite, micros >= Double(AuditTimestamp.minimum.microsecondsSinceEpoch),
                  micros <= Double(AuditTimestamp.maximum.microsecondsSinceEpoch)
            else { return .failure(TimestampProblem(message: "is out of the years 0001–9999 as \(format.rawValue)")) }
            if type == SQLITE_INTEGER, format == .unixMicroseconds {
                return .success(AuditTimestamp(microsecondsSinceEpoch: sqlite3_column_int64(stmt, i)))
            }
            if type == SQLITE_INTEGER {
                let n = sqlite3_column_int64(stmt, i)
                return .success(AuditTimestamp(microsecondsSinceEpoch: n * (format == .unixSeconds ? 1_000_000 : 1_000)))
            }
            return .success(AuditTimestamp(microsecondsSinceEpoch: Int64(micros.rounded(.down))))
        }
    }

    struct TimestampProblem: Error {
        let message: String
    }

    /// Adds triggers that refuse UPDATE and DELETE on the legacy table.
    func protect() throws {
        sqlite3_exec(connection, "ROLLBACK", nil, nil, nil)
        let table = "\"" + adoption.table.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        let base = adoption.table.replacingOccurrences(of: "\"", with: "")
        let sql = """
            BEGIN IMMEDIATE;
            CREATE TRIGGER IF NOT EXISTS "\(base)_adopted_no_update" BEFORE UPDATE ON \(table)
            BEGIN SELECT RAISE(ABORT, 'this legacy audit table was adopted into AuditDB; it is read-only'); END;
            CREATE TRIGGER IF NOT EXISTS "\(base)_adopted_no_delete" BEFORE DELETE ON \(table)
            BEGIN SELECT RAISE(ABORT, 'this legacy audit table was adopted into AuditDB; it is read-only'); END;
            COMMIT;
            """
        guard sqlite3_exec(connection, sql, nil, nil, nil) == SQLITE_OK else {
            let message = String(cString: sqlite3_errmsg(connection))
            sqlite3_exec(connection, "ROLLBACK", nil, nil, nil)
            throw AuditError(.storage, "could not protect \(adoption.table): \(message)")
        }
    }

    /// Drops the legacy table.
    func drop() throws {
        sqlite3_exec(connection, "ROLLBACK", nil, nil, nil)
        let table = "\"" + adoption.table.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        guard sqlite3_exec(connection, "DROP TABLE \(table)", nil, nil, nil) == SQLITE_OK else {
            throw AuditError(.storage, "could not drop \(adoption.table): \(String(cString: sqlite3_errmsg(connection)))")
        }
    }
}
