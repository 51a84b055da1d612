import CAuditCore
import GRDB
import GRDBSQLite

// The appender's SQL: the insert statement and its binder, the head read, the transaction
// wrapper. Every row AuditDB writes to audit_entries goes through `insert`.
extension Appender {
    /// The insert of the rows this appender writes (format 2, or format 1 without migration 0006).
    var insertSQL: String { rowFormat == UInt8(ADB_FORMAT_SEALED) ? RowLayout.insert : RowLayout.insertLegacy }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction and commits it, or rolls back and rethrows.
    /// Uses cached statements: GRDB's `inTransaction` prepares BEGIN and COMMIT anew each time,
    /// which cost ~18 µs per durable append (benchmarks/results/history.md, "2. Durable single append").
    static func immediateTransaction(_ db: Database, _ body: () throws -> Void) throws {
        try db.cachedStatement(sql: "BEGIN IMMEDIATE TRANSACTION").execute()
        do {
            try body()
            try db.cachedStatement(sql: "COMMIT TRANSACTION").execute()
        } catch {
            if let connection = db.sqliteConnection, SQLite.inTransaction(connection) {
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

    /// The highest head seq an append starts from: 2^62, far beyond any store (at a million rows
    /// a second, 146,000 years), and far enough below 2^63 − 1 that no batch overflows a seq.
    static let maximumHeadSeq: Int64 = 1 << 62

    /// The last row's seq, MAC and recorded time (0, 32 zero bytes and nil for an empty store);
    /// the time is the predecessor of the first new row for its time break (Appender+TimeBreaks.swift).
    /// A cached statement stepped directly: preparing it through GRDB each time cost ~38 µs per transaction.
    static func readHead(_ db: Database) throws -> (seq: Int64, mac: [UInt8], recordedAt: Int64?) {
        let stmt = try db.cachedStatement(sql: "SELECT seq, mac, recorded_at FROM audit_entries NOT INDEXED ORDER BY seq DESC LIMIT 1")
            .sqliteStatement
        defer { SQLite.reset(stmt) }
        guard try SQLite.step(stmt, while: "read the last row") else { return (0, [UInt8](repeating: 0, count: 32), nil) }
        let seq = SQLite.int64(stmt, 0)
        // The CHECK on mac keeps any other length out; a row that has one was written with the
        // schema edited, and a row chained onto a padded value would never verify.
        guard let mac = SQLite.blob(stmt, 1), mac.count == 32 else {
            throw AuditError(.integrityViolation,
                             "the last row of the log (seq \(seq)) has no 32-byte MAC: the file was edited outside AuditDB, and nothing can be chained onto that row. Run `auditdb verify`, and restore the store from a backup")
        }
        // No store reaches this by appending (2^62 rows); a row put there by someone with the file
        // leaves no seq for the rows after it.
        guard seq < maximumHeadSeq else {
            throw AuditError(.integrityViolation,
                             "the last row of the log has seq \(seq), which leaves no seq to append at: it was put there by someone with the file, not by AuditDB. Run `auditdb verify`, and restore the store from a backup")
        }
        return (seq, mac, SQLite.int64(stmt, 2))
    }

    /// Binds and steps one row. Text pointers point into the event's arena, valid for the
    /// duration of this call, so they are bound without a copy (SQLITE_STATIC), as is the MAC.
    static func insert(_ stmt: OpaquePointer, _ row: adb_row, mac: UnsafeBufferPointer<UInt8>, db: Database) throws {
        var row = row
        defer { SQLite.reset(stmt) }
        guard let pointer = mac.baseAddress, mac.count == 32 else {
            throw AuditError(.storage, "internal error: a row MAC is not 32 bytes")
        }
        try SQLite.bind(stmt, row: &row, mac: pointer)
        guard try !SQLite.step(stmt, while: "append") else {
            throw AuditError(.storage, "internal error: the insert of row \(row.seq) returned a row")
        }
    }
}
