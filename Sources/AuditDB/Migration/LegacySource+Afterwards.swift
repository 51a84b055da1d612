import CAuditCore
import Foundation
import GRDBSQLite

/// What `--then` does to the legacy table once every valid row is in the store: protect it
/// (triggers that refuse UPDATE and DELETE) or drop it (after checking that it did not change).
extension LegacySource {
    /// Adds triggers that refuse UPDATE and DELETE on the legacy table, named after it with its
    /// quotes kept (doubled), so that two tables never share a name (`x"y` and `xy` once did, and the
    /// second stayed writable). A trigger of that name that is not exactly this one (another table's,
    /// or the application's own) is refused with what to do, never taken for protection.
    func protect() throws {
        let connection = try open()
        try endReadTransaction(connection)
        let quote = Self.quote
        let message = "this legacy audit table was adopted into AuditDB; it is read-only"
        // As sqlite_schema stores it (what an earlier AuditDB's `IF NOT EXISTS` form stored too).
        let triggers = ["update", "delete"].map { event in
            (name: "\(adoption.table)_adopted_no_\(event)",
             sql: "CREATE TRIGGER \(quote("\(adoption.table)_adopted_no_\(event)")) BEFORE \(event.uppercased()) ON \(quote(adoption.table))\n"
                + "BEGIN SELECT RAISE(ABORT, '\(message)'); END")
        }
        try SQLite.exec(connection, "BEGIN IMMEDIATE", while: "protect \(adoption.table)")
        do {
            for trigger in triggers {
                // SQLite's names are ASCII case-insensitive: `Events` and `events` are one table, one trigger.
                let existing = try SQLite.prepare(connection,
                                                  "SELECT tbl_name, sql FROM sqlite_schema WHERE type = 'trigger' AND name = ? COLLATE NOCASE",
                                                  while: "protect \(adoption.table)")
                defer { SQLite.finalize(existing) }
                try SQLite.bind(existing, 1, text: trigger.name)
                if try SQLite.step(existing, while: "protect \(adoption.table)") {
                    let table = SQLite.text(existing, 0).map { String(decoding: $0, as: UTF8.self) } ?? ""
                    let sql = SQLite.text(existing, 1).map { String(decoding: $0, as: UTF8.self) } ?? ""
                    let sameTable = Self.sameIgnoringASCIICase(table, adoption.table)
                    guard sameTable, Self.sameIgnoringASCIICase(sql, trigger.sql) else {
                        throw AuditError(.invalidInput, "the rows were imported, but \(adoption.table) was not protected: a trigger named "
                                         + "\(trigger.name.debugDescription) already exists\(sameTable ? "" : " on \(table.debugDescription)") "
                                         + "and is not AuditDB's. Rename or drop that trigger, then run the same adoption again "
                                         + "(--then protect, or afterwards = .protect): it finds the run complete and only adds the triggers.",
                                         field: "afterwards")
                    }
                } else {
                    try SQLite.exec(connection, trigger.sql, while: "protect \(adoption.table)")
                }
            }
            try SQLite.exec(connection, "COMMIT", while: "protect \(adoption.table)")
        } catch {
            try endReadTransaction(connection)
            throw error
        }
    }

    /// Whether `a` and `b` are the same bytes but for ASCII case (how SQLite compares names).
    fileprivate static func sameIgnoringASCIICase(_ a: String, _ b: String) -> Bool {
        func folded(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }
        return a.utf8.count == b.utf8.count && zip(a.utf8, b.utf8).allSatisfy { folded($0) == folded($1) }
    }

    /// Drops the legacy table, inside a write transaction that first reads it again: it must still
    /// hold the rows whose digest is `digest` (what was imported), or nothing is dropped.
    func drop(digest expected: String) async throws {
        let connection = try open()
        try endReadTransaction(connection)
        let table = Self.quote(adoption.table)
        try SQLite.exec(connection, "BEGIN IMMEDIATE", while: "drop \(adoption.table)")
        do {
            let rows = try Self.count(connection, table: table, name: adoption.table)
            guard rows == rowCount, try await AuditStore.firstPass(self, validating: false).digest == expected else {
                throw AuditError(.invalidInput, "\(adoption.table) changed after it was read for the import (its rows' digest differs), so it was not dropped: "
                                 + "rows written to it since are not in the store. Adopt them, then drop the table yourself.", field: "source")
            }
            try SQLite.exec(connection, "DROP TABLE \(table)", while: "drop \(adoption.table)")
            try SQLite.exec(connection, "COMMIT", while: "drop \(adoption.table)")
        } catch {
            try endReadTransaction(connection)
            throw error
        }
    }

    /// The rows of `table` (quoted; `name` for messages), the statement finalized before it returns.
    static func count(_ connection: OpaquePointer, table: String, name: String) throws(AuditError) -> Int {
        let count = try SQLite.prepare(connection, "SELECT count(*) FROM \(table)", while: "count the rows of \(name)")
        defer { SQLite.finalize(count) }
        _ = try SQLite.step(count, while: "count the rows of \(name)")
        return Int(SQLite.int64(count, 0))
    }

    /// Ends the read transaction (or a failed write one) so the connection may write.
    fileprivate func endReadTransaction(_ connection: OpaquePointer) throws(AuditError) {
        if SQLite.inTransaction(connection) { try SQLite.exec(connection, "ROLLBACK", while: "end the read of \(adoption.table)") }
    }
}
