import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// The legacy table, read through its own connection inside one read transaction, so that both
/// passes see the same rows. Not Sendable: used by one task only.
final class LegacySource {
    let adoption: LegacyAdoption
    private var connection: OpaquePointer?
    let droppedColumns: [String]
    private let columns: [(LegacyAdoption.Field, String)]
    /// The current row's field bytes by ``LegacyAdoption/Field/slot`` (`row` reuses it for every row).
    private var fieldBytes = [UnsafeBufferPointer<UInt8>?](repeating: nil, count: LegacyAdoption.Field.allCases.count)
    private let selectSQL: String
    private let idExpression: String
    /// How this table's rowid is named: `rowid`, or `_rowid_` / `oid` when a column is named so.
    private let rowidName: String
    /// The table's rows when the read transaction began (what both passes will read).
    let rowCount: Int

    init(_ adoption: LegacyAdoption, busyTimeoutMilliseconds: Int32 = 5_000) throws {
        self.adoption = adoption
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: adoption.sourcePath, isDirectory: &isDirectory) else {
            throw AuditError(.invalidInput, "no source database at \(adoption.sourcePath)", field: "source")
        }
        guard !isDirectory.boolValue else {
            throw AuditError(.invalidInput, "the source \(adoption.sourcePath) is a directory; --source names the legacy SQLite database file", field: "source")
        }
        // NOMUTEX: one task uses this connection at a time, so SQLite's per-call mutex is pure cost.
        let handle = try SQLite.open(adoption.sourcePath, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        connection = handle
        let quote = Self.quote
        // Text is read as UTF-8: SQLite would convert a UTF-16 database's text, mending invalid
        // sequences instead of refusing them.
        // The first read of the source: if it fails as corrupt, the source file is what is wrong.
        let prepared = Result { () throws(AuditError) in try SQLite.prepare(handle, "PRAGMA encoding", while: "read the encoding of \(adoption.sourcePath)") }
        if case .failure(let error) = prepared, error.code == .corrupt {
            throw AuditError(.invalidInput, "the source \(adoption.sourcePath) is not an SQLite database, or its pages are damaged; check --source",
                             field: "source", underlying: error.underlying)
        }
        let encoding = try prepared.get()
        defer { SQLite.finalize(encoding) }
        _ = try SQLite.step(encoding, while: "read the encoding of \(adoption.sourcePath)")
        let encodingName = SQLite.text(encoding, 0).map { String(decoding: $0, as: UTF8.self) } ?? ""
        guard encodingName == "UTF-8" else {
            throw AuditError(.invalidInput, "\(adoption.sourcePath) is a \(encodingName) database; AuditDB adopts UTF-8 databases only "
                             + "(convert it first, e.g. `sqlite3 old.db .dump | sqlite3 new.db`, whose new file is UTF-8)", field: "source")
        }
        try Self.checkKind(of: adoption, in: handle)
        // The table's columns, generated ones included (hidden = 1 marks a virtual table's hidden columns).
        var tableColumns: [String] = []
        let info = try SQLite.prepare(handle, "SELECT name FROM pragma_table_xinfo(?) WHERE hidden <> 1", while: "read the columns of \(adoption.table)")
        defer { SQLite.finalize(info) }
        try SQLite.bind(info, 1, text: adoption.table)
        while try SQLite.step(info, while: "read the columns of \(adoption.table)") {
            let bytes = SQLite.text(info, 0).map(Array.init) ?? []
            // A name that is not UTF-8 could be neither mapped nor recorded as itself (the run
            // entry would name another column, with replacement characters).
            guard let name = String(validating: bytes, as: UTF8.self) else {
                throw AuditError(.invalidInput, "column \(tableColumns.count + 1) of \(adoption.table) has a name that is not valid UTF-8 "
                                 + "(bytes \(Hex.encode(bytes))); rename it first (ALTER TABLE … RENAME COLUMN)", field: "table")
            }
            tableColumns.append(name)
        }
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
        // A column named rowid hides the rowid under that name; SQLite gives it two more names.
        guard let rowidName = ["rowid", "_rowid_", "oid"].first(where: { name in !tableColumns.contains { $0.lowercased() == name } }) else {
            throw AuditError(.invalidInput, "\(adoption.table) has columns named rowid, _rowid_ and oid, which hide its rowid; "
                             + "copy it into a table without them first", field: "table")
        }
        self.rowidName = rowidName
        columns = LegacyAdoption.Field.allCases.compactMap { field in adoption.mapping[field].map { (field, $0) } }
        let id = adoption.idColumn.map(quote) ?? rowidName
        // The trailing rowid makes the order total (ids may repeat: reported, not lost) and is not hashed.
        idExpression = id
        selectSQL = "SELECT \(id), \(columns.map { quote($0.1) }.joined(separator: ", ")), \(rowidName) FROM \(quote(adoption.table))"
        do {
            SQLite.finalize(try SQLite.prepare(handle, "SELECT \(rowidName) FROM \(quote(adoption.table)) LIMIT 0", while: "read \(adoption.table)"))
        } catch {
            throw AuditError(.invalidInput, "\(adoption.table) has no rowid (a WITHOUT ROWID table or a view); copy it into an ordinary table first",
                             field: "table")
        }
        try SQLite.exec(handle, "BEGIN", while: "read \(adoption.table)")
        // The first read starts the read transaction: from here on both passes see these rows.
        rowCount = try Self.count(handle, table: quote(adoption.table), name: adoption.table)
    }

    /// `name` as an SQL identifier: in double quotes, a quote in it doubled.
    static func quote(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    /// Closes the connection; its read transaction ends with it.
    func close() {
        if let connection { SQLite.close(connection) }
        connection = nil
    }

    /// The open connection.
    func open() throws(AuditError) -> OpaquePointer {
        guard let connection else { throw AuditError(.closed, "the source \(adoption.sourcePath) was closed") }
        return connection
    }

    deinit { close() }

    /// Every row in order (by id, then rowid), read in windows of `adoption.windowSize` rows so a
    /// large table is never in memory at once; each window goes to `body` before the next is read.
    /// Both passes of an adoption use this one reader, so they count rows identically — which is
    /// what makes resuming exact. With `digest`, each row's id and mapped columns are hashed into it.
    /// With `converting` false the rows are only read (and hashed), not validated: `body` gets
    /// empty windows. Returns the number of rows read.
    @discardableResult
    func forEachWindow(hashingInto digest: OpaquePointer? = nil, legacyDigest: OpaquePointer? = nil, converting: Bool = true,
                       _ body: ([Result<EncodedEvent, AdoptionProblem>]) async throws -> Void) async throws -> Int
    {
        var total = 0
        let windowSize = adoption.windowSize
        let idColumnIndex = Int32(0), rowidIndex = Int32(columns.count + 1)
        var after: (id: OpaquePointer, rowid: Int64)?  // the last row read (a copied sqlite3_value)
        defer { if let after { SQLite.free(after.id) } }
        let connection = try open()
        var previousID: Int64?
        while true {
            // After a NULL id (NULLs sort first), `(id, rowid) > (NULL, r)` would match no row.
            let condition = switch after.map({ SQLite.valueType($0.id) }) {
            case nil: ""
            case SQLITE_NULL?: " WHERE (\(idExpression) IS NULL AND \(rowidName) > ?2) OR \(idExpression) IS NOT NULL"
            default: " WHERE (\(idExpression), \(rowidName)) > (?1, ?2)"
            }
            let sql = selectSQL + condition + " ORDER BY \(idExpression), \(rowidName) LIMIT \(windowSize)"
            let stmt: OpaquePointer
            do {
                stmt = try SQLite.prepare(connection, sql, while: "read \(adoption.table)")
            } catch {
                throw Self.sourceError(error, path: adoption.sourcePath)
            }
            defer { SQLite.finalize(stmt) }
            if let after {
                if SQLite.valueType(after.id) != SQLITE_NULL { try SQLite.bind(stmt, 1, value: after.id) }
                try SQLite.bind(stmt, 2, after.rowid)
            }
            var window: [Result<EncodedEvent, AdoptionProblem>] = []
            window.reserveCapacity(converting ? windowSize : 0)
            var read = 0
            func step() throws(AuditError) -> Bool {
                do { return try SQLite.step(stmt, while: "read \(adoption.table)") } catch { throw Self.sourceError(error, path: adoption.sourcePath) }
            }
            while try step() {
                read += 1
                let id = SQLite.int64(stmt, idColumnIndex)
                // Each column as u8 type || u32 length || bytes (the trailing rowid is not hashed).
                if let digest { adb_digest_columns(digest, legacyDigest, stmt, Int32(columns.count + 1)) }
                if !converting {
                    // Only the digest and the count: validation is left to the pass that writes.
                } else if SQLite.type(stmt, idColumnIndex) != SQLITE_INTEGER {
                    // Named by its rowid: reading such an id as an integer would name another row.
                    let rowid = SQLite.int64(stmt, rowidIndex)
                    window.append(.failure(AdoptionProblem(rowID: rowid, field: "id",
                                                           message: "the id is \(Self.describe(stmt, idColumnIndex)), not an integer (this row is named by its rowid, \(rowid))")))
                } else if previousID == id {
                    window.append(.failure(AdoptionProblem(rowID: id, field: "id", message: "duplicate id (the repeat has rowid \(SQLite.int64(stmt, rowidIndex)))")))
                } else {
                    previousID = id
                    window.append(row(stmt, id: id))
                }
                if let old = after { SQLite.free(old.id) }
                after = (try SQLite.duplicate(stmt, idColumnIndex), SQLite.int64(stmt, rowidIndex))
            }
            total += read
            try await body(window)
            guard read == windowSize else { break }
        }
        // Both passes read inside one read transaction, so every row counted when it began is read.
        guard total == rowCount else {
            throw AuditError(.storage, "read \(total) rows of \(adoption.table) in id order, but it holds \(rowCount); "
                             + "nothing more is imported. Report this with the table's schema.")
        }
        return total
    }

    /// Opens the source, its failures said of the source (``sourceError(_:path:)``).
    static func opening(_ adoption: LegacyAdoption, busyTimeoutMilliseconds: Int32) throws -> LegacySource {
        try reportingSource(adoption.sourcePath) { try LegacySource(adoption, busyTimeoutMilliseconds: busyTimeoutMilliseconds) }
    }

    /// Runs `body`, an operation on the source only, its failures said of the source.
    static func reportingSourceAsync<T>(_ path: String, _ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as AuditError { throw sourceError(error, path: path) }
    }

    /// Synchronous form of ``reportingSourceAsync(_:_:)``.
    static func reportingSource<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as AuditError { throw sourceError(error, path: path) }
    }

    /// An error of the source's own connection, said of the source: SQLite's errors are worded
    /// for the store (``AuditError/from(_:while:)``), so a read-only or damaged source would send
    /// the operator to the wrong file. Other errors are returned as they are.
    static func sourceError(_ error: AuditError, path: String) -> AuditError {
        guard error.code == .readOnly || error.code == .corrupt, let db = error.underlying as? DatabaseError else { return error }
        let action = error.message.range(of: " failed: ").map { String(error.message[..<$0.lowerBound]) + " failed: " } ?? ""
        let detail = db.message ?? "SQLite error \(db.extendedResultCode.rawValue)"
        if error.code == .readOnly {
            return AuditError(
                .readOnly,
                "\(action)the source \(path) cannot be written here (\(detail)): `--then protect` and `--then drop` write to it, and a "
                    + "source in write-ahead-log mode needs a writable directory even to be read. Check the permissions of the source "
                    + "file and its directory, or adopt from a copy. The store is not the problem.",
                field: "source", underlying: db)
        }
        return AuditError(
            .invalidInput,
            "\(action)the source \(path) is not an SQLite database, or its pages are damaged (\(detail)). It is the source that is "
                + "damaged, not the store: repair it (`sqlite3 SOURCE .recover`) or restore it, then run the adoption again.",
            field: "source", underlying: db)
    }

    /// A short description of a column's value for an error message.
    private static func describe(_ stmt: OpaquePointer, _ i: Int32) -> String {
        switch SQLite.type(stmt, i) {
        case SQLITE_NULL: "NULL"
        case SQLITE_FLOAT: "the REAL \(SQLite.double(stmt, i))"
        case SQLITE_TEXT: "the TEXT \(String(decoding: SQLite.text(stmt, i) ?? UnsafeBufferPointer(start: nil, count: 0), as: UTF8.self).prefix(40).debugDescription)"
        default: "a BLOB"
        }
    }

    /// Turns one source row into a validated event, or says what is wrong with it. The fields are
    /// checked in the column buffers SQLite hands out (``EncodedEvent/init(utf8:)``), without a
    /// String per field: ~6% faster imports (docs/performance.md, "Back-signing, fields checked in
    /// SQLite's buffers").
    private func row(_ stmt: OpaquePointer, id: Int64) -> Result<EncodedEvent, AdoptionProblem> {
        func problem(_ field: LegacyAdoption.Field, _ message: String) -> Result<EncodedEvent, AdoptionProblem> {
            .failure(AdoptionProblem(rowID: id, field: field.rawValue, message: message))
        }
        func text(_ bytes: UnsafeBufferPointer<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }
        // One slot per field, reused row after row; each buffer lives until the statement steps,
        // so the slots are cleared again before this returns.
        for slot in fieldBytes.indices { fieldBytes[slot] = nil }
        defer { for slot in fieldBytes.indices { fieldBytes[slot] = nil } }
        var occurred: AuditTimestamp?
        for (offset, (field, _)) in columns.enumerated() {
            let i = Int32(offset + 1)
            let type = SQLite.type(stmt, i)
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
            case SQLITE_INTEGER, SQLITE_TEXT:
                // An INTEGER reads as SQLite's decimal text of it (what String(Int64) gives).
                let bytes = SQLite.text(stmt, i) ?? UnsafeBufferPointer(start: nil, count: 0)
                // ASCII is valid UTF-8: skip the full validation for the common case.
                guard bytes.allSatisfy({ $0 < 0x80 }) || UTF8Check.firstInvalidByte(bytes) == nil else {
                    return problem(field, "is not valid UTF-8")
                }
                fieldBytes[field.slot] = bytes
            default:
                return problem(field, "holds a \(type == SQLITE_BLOB ? "BLOB" : "REAL"); text was expected")
            }
        }
        guard let actor = fieldBytes[LegacyAdoption.Field.actor.slot] else { return problem(.actor, "is NULL") }
        guard let action = fieldBytes[LegacyAdoption.Field.action.slot] else { return problem(.action, "is NULL") }
        // A legacy row must not become one of AuditDB's own entries (a key declaration, a hold).
        guard !AuditStore.isReserved(utf8: action) else {
            return problem(.action, "\(text(action).debugDescription) is reserved for AuditDB's own entries (actions starting with \"\(AuditStore.reservedActionPrefix)\"); rename it in the source or leave the row out")
        }
        var fields = EncodedEvent.UTF8Fields(actor: actor, action: action)
        fields.tenant = fieldBytes[LegacyAdoption.Field.tenant.slot]
        fields.resourceType = fieldBytes[LegacyAdoption.Field.resourceType.slot]
        fields.resourceId = fieldBytes[LegacyAdoption.Field.resourceId.slot]
        fields.correlationId = fieldBytes[LegacyAdoption.Field.correlationId.slot]
        fields.source = fieldBytes[LegacyAdoption.Field.source.slot]
        fields.details = fieldBytes[LegacyAdoption.Field.details.slot]
        fields.occurredAt = occurred
        // Names, or AuditDB's own integer codes (rows of an AuditDB-shaped table that were never signed).
        if let outcome = fieldBytes[LegacyAdoption.Field.outcome.slot].map(text) {
            guard let value = AuditOutcome(rawValue: outcome) ?? Self.code(outcome).flatMap(AuditOutcome.init(code:)) else {
                return problem(.outcome, "\(outcome.debugDescription) is not success, failure, denied or error (or 0-3)")
            }
            fields.outcome = value
        }
        if let severity = fieldBytes[LegacyAdoption.Field.severity.slot].map(text) {
            guard let value = AuditSeverity(rawValue: severity) ?? Self.code(severity).flatMap(AuditSeverity.init(code:)) else {
                return problem(.severity, "\(severity.debugDescription) is not info, notice, warning or critical (or 0-3)")
            }
            fields.severity = value
        }
        do {
            return .success(try EncodedEvent(utf8: fields))
        } catch {
            let field = error.field ?? "row"
            let message = error.message.hasPrefix("\(field): ") ? String(error.message.dropFirst(field.count + 2)) : error.message
            return .failure(AdoptionProblem(rowID: id, field: field, message: message))
        }
    }

    /// AuditDB's own code as an INTEGER's decimal text: exactly one digit, `0` to `3` — not `+1`,
    /// `01` or `-0`, which `Int64(_:)` would also read.
    static func code(_ text: String) -> Int64? {
        guard text.utf8.count == 1, let digit = text.utf8.first, (UInt8(ascii: "0")...UInt8(ascii: "3")).contains(digit) else { return nil }
        return Int64(digit - UInt8(ascii: "0"))
    }

    private static func timestamp(_ stmt: OpaquePointer, _ i: Int32, type: Int32, format: LegacyAdoption.TimestampFormat)
        -> Result<AuditTimestamp?, TimestampProblem>
    {
        if type == SQLITE_NULL { return .success(nil) }
        switch format {
        case .auto, .iso8601:
            guard type != SQLITE_BLOB else { return .failure(TimestampProblem(message: "holds a BLOB; a time was expected")) }
            guard type == SQLITE_TEXT else {
                return .failure(TimestampProblem(message: "is a number; give its unit with --timestamp-format unix-seconds|unix-milliseconds|unix-microseconds"))
            }
            let bytes = SQLite.text(stmt, i) ?? UnsafeBufferPointer(start: nil, count: 0)
            // The common case, without a String: RFC 3339 text.
            if case .success(let t) = AuditTimestamp.parse(utf8: bytes) { return .success(t) }
            let text = String(decoding: bytes, as: UTF8.self)
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
            let micros = SQLite.double(stmt, i) * scale
            guard micros.isFinite, micros >= Double(AuditTimestamp.minimum.microsecondsSinceEpoch),
                  micros <= Double(AuditTimestamp.maximum.microsecondsSinceEpoch)
            else { return .failure(TimestampProblem(message: "is out of the years 0001–9999 as \(format.rawValue)")) }
            if type == SQLITE_INTEGER, format == .unixMicroseconds {
                return .success(AuditTimestamp(microsecondsSinceEpoch: SQLite.int64(stmt, i)))
            }
            if type == SQLITE_INTEGER {
                let n = SQLite.int64(stmt, i)
                return .success(AuditTimestamp(microsecondsSinceEpoch: n * (format == .unixSeconds ? 1_000_000 : 1_000)))
            }
            let value = SQLite.double(stmt, i)
            guard let exact = exactMicroseconds(value, shift: format == .unixSeconds ? 6 : format == .unixMilliseconds ? 3 : 0) else {
                return .failure(TimestampProblem(message: "\(value) as \(format.rawValue) is finer than a microsecond (AuditDB stores microseconds "
                                                 + "and never rounds a time; round it in a copy first)"))
            }
            guard (AuditTimestamp.minimum.microsecondsSinceEpoch...AuditTimestamp.maximum.microsecondsSinceEpoch).contains(exact) else {
                return .failure(TimestampProblem(message: "is out of the years 0001–9999 as \(format.rawValue)"))
            }
            return .success(AuditTimestamp(microsecondsSinceEpoch: exact))
        }
    }

    /// A REAL read exactly: the shortest decimal that reads back as `value` (what the writer most
    /// likely stored: 1109935586.791, not the double's 1109935586.7909998893...) times 10^`shift`,
    /// as an integer; nil if that decimal is finer than 10^-`shift` or does not fit.
    static func exactMicroseconds(_ value: Double, shift: Int) -> Int64? {
        guard value.isFinite else { return nil }
        var text = Substring(String(describing: value))  // Swift prints the shortest round-trip form: "1.5e-07", "1709284522.25"
        let negative = text.first == "-"
        if negative { text = text.dropFirst() }
        var exponent = shift
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            guard let power = Int(text[text.index(after: e)...]) else { return nil }
            exponent += power
            text = text[..<e]
        }
        var mantissa: Int64 = 0
        var inFraction = false
        for character in text {
            if character == "." { inFraction = true; continue }
            guard let digit = character.wholeNumberValue else { return nil }
            let (times10, overflow) = mantissa.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            mantissa = times10 + Int64(digit)
            if inFraction { exponent -= 1 }
        }
        while exponent < 0, mantissa != 0, mantissa % 10 == 0 {
            mantissa /= 10
            exponent += 1
        }
        guard mantissa != 0 else { return 0 }
        guard exponent >= 0 else { return nil }
        for _ in 0..<exponent {
            let (times10, overflow) = mantissa.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            mantissa = times10
        }
        return negative ? -mantissa : mantissa
    }

    struct TimestampProblem: Error {
        let message: String
    }
}
