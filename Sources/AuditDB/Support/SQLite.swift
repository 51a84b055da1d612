import CAuditCore
import GRDB
import GRDBSQLite

// The one place AuditDB calls SQLite's C API outside GRDB (in the spirit of swift-nio's syscall
// wrapper): every call whose result code means something is checked here, and every failure
// becomes a typed AuditError through one mapping (`AuditError.from`). Column reads, which return
// no code, are here too, so that `sqlite3_` appears in no other Swift file. The signed row's
// columns are read and bound in C (audit_row.h) through `Row/`.

/// SQLite's C API, checked. `stmt` is a `sqlite3_stmt *`, `connection` a `sqlite3 *`.
enum SQLite {
    /// What an error for a damaged file advises (verification's own report says it otherwise:
    /// ``adviceInVerification(_:)``).
    static let corruptionAdvice = " Run `auditdb verify`; restore from a backup."

    /// `message` of a damaged-file error as verification reports it: telling the reader of a
    /// verification to run a verification would send them in a circle.
    static func adviceInVerification(_ message: String) -> String {
        message.replacing(corruptionAdvice, with: " Restore the store from a backup; keep this copy as evidence.")
    }

    /// The typed error for SQLite's result `rc`, with the connection's message.
    static func error(_ rc: Int32, connection: OpaquePointer?, while action: String) -> AuditError {
        let message = connection.map { String(cString: sqlite3_errmsg($0)) }
        return AuditError.from(DatabaseError(resultCode: ResultCode(rawValue: rc), message: message), while: action)
    }

    /// Throws unless `rc` is SQLITE_OK.
    static func check(_ rc: Int32, _ connection: OpaquePointer?, while action: @autoclosure () -> String) throws(AuditError) {
        guard rc == SQLITE_OK else { throw error(rc, connection: connection, while: action()) }
    }

    /// Steps `stmt`: true at a row, false at the end.
    static func step(_ stmt: OpaquePointer, while action: @autoclosure () -> String) throws(AuditError) -> Bool {
        try stepped(sqlite3_step(stmt), stmt, while: action())
    }

    /// Steps `stmt` and returns SQLite's code, for a loop that steps in C too; pass the code
    /// to ``stepped(_:_:while:)``.
    static func rawStep(_ stmt: OpaquePointer) -> Int32 { sqlite3_step(stmt) }

    /// The message of the last error on `stmt`'s connection.
    static func message(_ stmt: OpaquePointer) -> String {
        sqlite3_db_handle(stmt).map { String(cString: sqlite3_errmsg($0)) } ?? "no connection"
    }

    /// ``stepped(_:_:while:)`` as a value, for a caller that handles some errors itself.
    static func stepResult(_ rc: Int32, _ stmt: OpaquePointer, while action: @autoclosure () -> String) -> Result<Bool, AuditError> {
        switch rc {
        case SQLITE_ROW: .success(true)
        case SQLITE_DONE: .success(false)
        default: .failure(error(rc, connection: sqlite3_db_handle(stmt), while: action()))
        }
    }

    /// The meaning of `rc`, the result of stepping `stmt` in C: true at a row, false at the end.
    static func stepped(_ rc: Int32, _ stmt: OpaquePointer, while action: @autoclosure () -> String) throws(AuditError) -> Bool {
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw error(rc, connection: sqlite3_db_handle(stmt), while: action())
        }
    }

    /// Resets `stmt` for its next use. Its result repeats the last step's error, which that step
    /// already reported, so it is not checked.
    static func reset(_ stmt: OpaquePointer) { sqlite3_reset(stmt) }

    // MARK: Binding

    /// SQLITE_TRANSIENT: SQLite copies the bytes.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    static func bind(_ stmt: OpaquePointer, _ index: Int32, _ value: Int64) throws(AuditError) {
        try check(sqlite3_bind_int64(stmt, index, value), sqlite3_db_handle(stmt), while: "bind parameter \(index)")
    }

    static func bind(_ stmt: OpaquePointer, _ index: Int32, text: String) throws(AuditError) {
        try bind(stmt, index, textBytes: Array(text.utf8))
    }

    /// Binds UTF-8 `bytes` as TEXT with their length: a NUL inside them is a byte like any other
    /// (a length of -1 would cut the text at the first one).
    static func bind(_ stmt: OpaquePointer, _ index: Int32, textBytes bytes: [UInt8]) throws(AuditError) {
        let rc = bytes.withUnsafeBytes { buffer -> Int32 in
            let empty: StaticString = ""
            let start = buffer.baseAddress?.assumingMemoryBound(to: CChar.self)
                ?? UnsafeRawPointer(empty.utf8Start).assumingMemoryBound(to: CChar.self)
            return sqlite3_bind_text(stmt, index, start, Int32(clamping: buffer.count), transient)
        }
        try check(rc, sqlite3_db_handle(stmt), while: "bind parameter \(index)")
    }

    static func bind(_ stmt: OpaquePointer, _ index: Int32, blob: [UInt8]) throws(AuditError) {
        try check(sqlite3_bind_blob(stmt, index, blob, Int32(blob.count), transient), sqlite3_db_handle(stmt),
                  while: "bind parameter \(index)")
    }

    /// Binds a copy of `value` (an `sqlite3_value *` from ``duplicate(_:_:)``).
    static func bind(_ stmt: OpaquePointer, _ index: Int32, value: OpaquePointer) throws(AuditError) {
        try check(sqlite3_bind_value(stmt, index, value), sqlite3_db_handle(stmt), while: "bind parameter \(index)")
    }

    /// Binds a signed row and its MAC to an insert of ``RowLayout/columns`` (audit_row.h); the
    /// pointers must stay valid until the statement is stepped.
    static func bind(_ stmt: OpaquePointer, row: inout adb_row, mac: UnsafePointer<UInt8>) throws(AuditError) {
        try check(adb_stmt_bind_row(stmt, &row, mac), sqlite3_db_handle(stmt), while: "bind the row")
    }

    // MARK: Columns of the current row

    static func type(_ stmt: OpaquePointer, _ column: Int32) -> Int32 { sqlite3_column_type(stmt, column) }
    static func isNull(_ stmt: OpaquePointer, _ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }
    static func int64(_ stmt: OpaquePointer, _ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }
    static func double(_ stmt: OpaquePointer, _ column: Int32) -> Double { sqlite3_column_double(stmt, column) }
    static func name(_ stmt: OpaquePointer, _ column: Int32) -> String {
        sqlite3_column_name(stmt, column).map { String(cString: $0) } ?? ""
    }

    /// The column's bytes as text (NULL gives nil); valid until the statement moves.
    static func text(_ stmt: OpaquePointer, _ column: Int32) -> UnsafeBufferPointer<UInt8>? {
        guard sqlite3_column_type(stmt, column) != SQLITE_NULL, let p = sqlite3_column_text(stmt, column) else { return nil }
        return UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(stmt, column)))
    }

    /// The column's bytes as a blob (NULL gives nil, an empty blob an empty array).
    static func blob(_ stmt: OpaquePointer, _ column: Int32) -> [UInt8]? {
        guard sqlite3_column_type(stmt, column) != SQLITE_NULL else { return nil }
        let p = sqlite3_column_blob(stmt, column)  // before _bytes, as SQLite requires
        let count = Int(sqlite3_column_bytes(stmt, column))
        guard let p, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: count))
    }

    /// A copy of the column's value (an `sqlite3_value *`) that outlives the row; free it with
    /// ``free(_:)``.
    static func duplicate(_ stmt: OpaquePointer, _ column: Int32) throws(AuditError) -> OpaquePointer {
        guard let value = sqlite3_value_dup(sqlite3_column_value(stmt, column)) else {
            throw AuditError(.storage, "out of memory copying a value of column \(column)")
        }
        return value
    }

    static func free(_ value: OpaquePointer) { sqlite3_value_free(value) }
    static func valueType(_ value: OpaquePointer) -> Int32 { sqlite3_value_type(value) }

    // MARK: Connections AuditDB opens itself (the legacy source of an adoption)

    /// Opens `path` read-write without a mutex, with a busy timeout.
    static func open(_ path: String, busyTimeoutMilliseconds: Int32) throws(AuditError) -> OpaquePointer {
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let failure = error(rc == SQLITE_OK ? SQLITE_CANTOPEN : rc, connection: handle, while: "open \(path)")
            sqlite3_close(handle)
            throw failure
        }
        let timeout = sqlite3_busy_timeout(handle, busyTimeoutMilliseconds)
        guard timeout == SQLITE_OK else {
            let failure = error(timeout, connection: handle, while: "set the busy timeout of \(path)")
            sqlite3_close(handle)
            throw failure
        }
        return handle
    }

    /// Closes a connection opened by ``open(_:busyTimeoutMilliseconds:)`` (its statements are finalized).
    static func close(_ connection: OpaquePointer) { sqlite3_close_v2(connection) }

    static func exec(_ connection: OpaquePointer, _ sql: String, while action: @autoclosure () -> String) throws(AuditError) {
        try check(sqlite3_exec(connection, sql, nil, nil, nil), connection, while: action())
    }

    static func prepare(_ connection: OpaquePointer, _ sql: String, while action: @autoclosure () -> String)
        throws(AuditError) -> OpaquePointer
    {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(connection, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw error(rc == SQLITE_OK ? SQLITE_MISUSE : rc, connection: connection, while: action())
        }
        return stmt
    }

    /// Frees a statement from ``prepare(_:_:while:)``; its result repeats the last step's error.
    static func finalize(_ stmt: OpaquePointer) { sqlite3_finalize(stmt) }

    /// Whether `connection` is inside a transaction.
    static func inTransaction(_ connection: OpaquePointer) -> Bool { sqlite3_get_autocommit(connection) == 0 }

    /// Sets how many helper threads the connection's sorter may use (`PRAGMA threads`; capped by
    /// SQLite's compile-time maximum); returns the previous value (0 for no connection).
    static func setWorkerThreads(_ connection: OpaquePointer?, _ count: Int32) -> Int32 {
        guard let connection else { return 0 }
        return sqlite3_limit(connection, SQLITE_LIMIT_WORKER_THREADS, count)
    }

    /// Sets how long the connection's busy handler waits for a lock, in milliseconds (0: not at all).
    static func setBusyTimeout(_ connection: OpaquePointer, milliseconds: Int32) {
        sqlite3_busy_timeout(connection, milliseconds)
    }

    /// One `PRAGMA wal_checkpoint(TRUNCATE)` that waits at most `wait` for readers of older
    /// snapshots (the busy timeout then set back to `restore`): a pending TRUNCATE checkpoint
    /// holds off every writer, in every process, while it waits. True when the WAL was emptied.
    static func truncateWriteAheadLog(_ db: Database, waitingAtMost wait: Duration, restore: Duration) throws -> Bool {
        guard let connection = db.sqliteConnection else { throw AuditError(.closed, "the store is closed") }
        setBusyTimeout(connection, milliseconds: Int32(clamping: wait.wholeNanoseconds / 1_000_000))
        defer { setBusyTimeout(connection, milliseconds: Int32(clamping: restore.wholeNanoseconds / 1_000_000)) }
        let row = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        return (row?.stored(0, as: Int64.self) ?? 1) == 0
    }

    // MARK: Connection set-up in C (audit_sqlite.h)

    static func setDefensive(_ connection: OpaquePointer) throws(AuditError) {
        guard adb_sqlite_set_defensive(connection, 1) == 1 else {
            throw AuditError(.storage, "could not enable SQLITE_DBCONFIG_DEFENSIVE on the connection")
        }
    }

    static func disableTriggers(_ connection: OpaquePointer) throws(AuditError) {
        guard adb_sqlite_enable_triggers(connection, 0) == 0 else {
            throw AuditError(.storage, "could not configure triggers on the connection")
        }
    }

    static func registerIndexDigest(_ connection: OpaquePointer) throws(AuditError) {
        try check(adb_register_index_digest(connection), connection, while: "register auditdb_index_digest")
    }

    /// SQLite's message when the header's schema format number (bytes 44–47) is above 4, the
    /// highest it reads: it then refuses to read the schema, so the file reads as no database.
    static let unsupportedFormatMessage = "unsupported file format"

    /// Whether `error` is SQLite refusing a damaged file: a damaged page (`SQLITE_CORRUPT`), a
    /// file that is not a database (`SQLITE_NOTADB`), or a header whose schema format SQLite
    /// cannot read (`SQLITE_ERROR` "unsupported file format"; docs/FORMAT.md section 11, step 5).
    static func isDamage(_ error: DatabaseError) -> Bool {
        switch error.resultCode {
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: true
        case .SQLITE_ERROR: error.message == unsupportedFormatMessage
        default: false
        }
    }
}

extension AuditError {
    /// Whether `error` is a task's cancellation: a `CancellationError`, or SQLite's interrupt of
    /// a statement that was running when the task was cancelled (GRDB interrupts it), bare or
    /// wrapped. Any other error, an integrity violation above all, is not one.
    public static func isCancellation(_ error: any Error) -> Bool {
        func direct(_ error: (any Error)?) -> Bool {
            error is CancellationError || (error as? DatabaseError)?.resultCode == .SQLITE_INTERRUPT
        }
        return direct(error) || direct((error as? AuditError)?.underlying)
    }

    /// Turns any error from GRDB/SQLite into a typed ``AuditError`` that says what to do.
    /// `action` names what was being done ("append", "open /path/store.db", ...).
    static func from(_ error: any Error, while action: String) -> AuditError {
        if let error = error as? AuditError { return error }
        if error is CancellationError {
            // Not a storage fault to retry: the caller's task was cancelled. A read stops where
            // it was; a write that was cancelled committed nothing (one transaction).
            return AuditError(.cancelled, "\(action) was cancelled (the task running it was cancelled); a write that was cancelled committed nothing",
                              underlying: error as (any Error & Sendable))
        }
        guard let db = error as? DatabaseError else {
            return AuditError(.storage, "\(action) failed: \(error)", underlying: error as (any Error & Sendable))
        }
        let detail = db.message ?? "SQLite error \(db.extendedResultCode.rawValue)"
        // GRDB's answer for a pool that is closed ("Connection is closed"), and SQLite's for a
        // statement on a connection closed under it (SQLITE_MISUSE, whose message for a closed
        // handle is "out of memory"): the store was closed, not a fault of the disk or memory.
        if db.resultCode == .SQLITE_MISUSE, detail == "Connection is closed" || detail == "out of memory" {
            return AuditError(.closed, "\(action) failed: the store is closed (or was closed while this ran); open it again", underlying: db)
        }
        switch db.resultCode {
        case .SQLITE_FULL:
            return AuditError(
                .diskFull,
                "\(action) failed: the disk (or the database's page limit) is full. Nothing was written by that step (its transaction was rolled back; what earlier steps committed stays); free space and retry.",
                underlying: db)
        case .SQLITE_READONLY:
            return AuditError(
                .readOnly,
                "\(action) failed: the store is read-only (\(detail)). Check write permission on the file, its directory and its -wal/-shm files; if they are writable, run `auditdb verify` (another client may have changed the file's SQLite header).",
                underlying: db)
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return AuditError(
                .busy,
                "\(action) failed: the database stayed locked by another connection past the busy timeout. Nothing was written by that step (what earlier steps committed stays); retry, or find the process holding the lock.",
                underlying: db)
        case .SQLITE_PROTOCOL:
            // SQLite retried for seconds and gave up: a lock on the store's -shm file was held in
            // a way its wal-index protocol cannot get past (another process holding a read-mark
            // or recovery lock, not an ordinary writer).
            return AuditError(
                .busy,
                "\(action) failed: another process holds a lock on the store's -shm file that SQLite's locking protocol could not get past (\(detail)). Nothing was written by that step; find the process that has the store's -shm file open (for example with `fuser`), stop it, and retry.",
                underlying: db)
        case _ where SQLite.isDamage(db):
            return AuditError(
                .corrupt,
                "\(action) failed: the file is not a valid database or its pages are damaged (\(detail == SQLite.unsupportedFormatMessage ? "\(detail): the schema format number in its SQLite header, bytes 44–47, is above 4, which SQLite cannot read" : detail))." + SQLite.corruptionAdvice,
                underlying: db)
        case .SQLITE_CANTOPEN:
            return AuditError(
                .storage,
                "\(action) failed: the file cannot be opened (\(detail)). Check that the path and its directory exist and are accessible; "
                    + "SQLite also keeps the store's -wal and -shm files beside it, so the directory must be writable (for a store on a read-only file system, copy it to a writable place first).",
                underlying: db)
        case .SQLITE_CONSTRAINT where detail.contains("append-only"):
            return AuditError(.storage, "\(action) was refused by the store: \(detail)", underlying: db)
        default:
            return AuditError(.storage, "\(action) failed: \(detail)", underlying: db)
        }
    }
}
