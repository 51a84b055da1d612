import CAuditCore
import GRDB
import GRDBSQLite

// The appender's SQL: the insert statement and its binder, the head read, the transaction
// wrapper. Every row AuditDB writes to audit_entries goes through `insert`.
extension Appender {
    static let insertSQL = """
        INSERT INTO audit_entries(seq, recorded_at, occurred_at, tenant, actor, action, resource_type, resource_id,
            outcome, severity, correlation_id, source, details, origin, origin_ref, format_version, key_version, mac)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
        """

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction and commits it, or rolls back and rethrows.
    /// Uses cached statements: GRDB's `inTransaction` prepares BEGIN and COMMIT anew each time,
    /// which cost ~18 µs per durable append (benchmarks/results/history.md, "2. Durable single append").
    static func immediateTransaction(_ db: Database, _ body: () throws -> Void) throws {
        try db.cachedStatement(sql: "BEGIN IMMEDIATE TRANSACTION").execute()
        do {
            try body()
            try db.cachedStatement(sql: "COMMIT TRANSACTION").execute()
        } catch {
            if sqlite3_get_autocommit(db.sqliteConnection) == 0 {
                do {
                    try db.execute(sql: "ROLLBACK TRANSACTION")
                } catch {
                    // The original error is the one to report; SQLite has already rolled back
                    // when ROLLBACK itself fails with "no transaction is active".
                }
            }
            throw error
        }
    }

    /// The last row's seq and MAC (0 and 32 zero bytes for an empty store). A cached statement
    /// stepped directly: preparing it through GRDB each time cost ~38 µs per transaction.
    static func readHead(_ db: Database) throws -> (Int64, [UInt8]) {
        let stmt = try db.cachedStatement(sql: "SELECT seq, mac FROM audit_entries ORDER BY seq DESC LIMIT 1")
            .sqliteStatement
        defer { sqlite3_reset(stmt) }
        var mac = [UInt8](repeating: 0, count: 32)
        switch sqlite3_step(stmt) {
        case SQLITE_DONE:
            return (0, mac)
        case SQLITE_ROW:
            let length = Int(sqlite3_column_bytes(stmt, 1))
            if let blob = sqlite3_column_blob(stmt, 1) {
                mac.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: blob, count: min(32, length))) }
            }
            return (sqlite3_column_int64(stmt, 0), mac)
        case let rc:
            throw DatabaseError(
                resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(db.sqliteConnection)),
                sql: "SELECT seq, mac FROM audit_entries ORDER BY seq DESC LIMIT 1")
        }
    }

    static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    /// Binds and steps one row. Text pointers point into the event's arena, valid for the
    /// duration of this call, so they are bound without a copy (SQLITE_STATIC).
    static func insert(_ stmt: OpaquePointer, _ row: adb_row, mac: UnsafeBufferPointer<UInt8>, db: Database) throws {
        func text(_ index: Int32, _ b: adb_bytes) -> Int32 {
            guard b.len >= 0 else { return sqlite3_bind_null(stmt, index) }
            guard b.len > 0, let pointer = b.ptr else { return sqlite3_bind_text(stmt, index, "", 0, nil) }
            return sqlite3_bind_text(
                stmt, index, UnsafeRawPointer(pointer).assumingMemoryBound(to: CChar.self), Int32(b.len), nil)
        }
        var rc = sqlite3_bind_int64(stmt, 1, row.seq)
        rc |= sqlite3_bind_int64(stmt, 2, row.recorded_at)
        rc |= row.has_occurred_at != 0 ? sqlite3_bind_int64(stmt, 3, row.occurred_at) : sqlite3_bind_null(stmt, 3)
        rc |= text(4, row.tenant)
        rc |= text(5, row.actor)
        rc |= text(6, row.action)
        rc |= text(7, row.resource_type)
        rc |= text(8, row.resource_id)
        rc |= sqlite3_bind_int64(stmt, 9, Int64(row.outcome))
        rc |= sqlite3_bind_int64(stmt, 10, Int64(row.severity))
        rc |= text(11, row.correlation_id)
        rc |= text(12, row.source)
        rc |= text(13, row.details)
        rc |= sqlite3_bind_int64(stmt, 14, Int64(row.origin))
        rc |= row.has_origin_ref != 0 ? sqlite3_bind_int64(stmt, 15, row.origin_ref) : sqlite3_bind_null(stmt, 15)
        rc |= sqlite3_bind_int64(stmt, 16, Int64(row.format_version))
        rc |= sqlite3_bind_int64(stmt, 17, Int64(row.key_version))
        rc |= sqlite3_bind_blob(stmt, 18, mac.baseAddress, 32, transient)
        let step = rc == SQLITE_OK ? sqlite3_step(stmt) : rc
        sqlite3_reset(stmt)
        guard step == SQLITE_DONE else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: step),
                message: String(cString: sqlite3_errmsg(db.sqliteConnection)),
                sql: "INSERT INTO audit_entries ...")
        }
    }
}
