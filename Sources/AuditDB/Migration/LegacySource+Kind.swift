import Foundation

/// Which tables `migrate adopt` takes as a source (docs/migrations.md, "Limitation").
extension LegacySource {
    /// An ordinary table of the source, and none of AuditDB's own: a view has no rowid (and
    /// cannot be protected or dropped as a table), a virtual table's rowid need not be stable,
    /// and adopting AuditDB's tables, then protecting or dropping them, would damage a store.
    /// - Throws: ``AuditError`` `invalidInput` naming the table.
    static func checkKind(of adoption: LegacyAdoption, in handle: OpaquePointer) throws {
        // SQLite's own tables (sqlite_schema, sqlite_sequence, sqlite_stat1 …) hold the file's
        // metadata, not an app's audit events, and cannot be protected or dropped.
        if adoption.table.lowercased().hasPrefix("sqlite_") {
            throw AuditError(.invalidInput, "\(adoption.table) in \(adoption.sourcePath) is one of SQLite's own tables (sqlite_…), "
                             + "not an ordinary table of the app; adopt the app's audit table", field: "table")
        }
        let kind = try SQLite.prepare(handle, "SELECT type, sql FROM sqlite_schema WHERE name = ? COLLATE NOCASE",
                                      while: "read the schema of \(adoption.sourcePath)")
        defer { SQLite.finalize(kind) }
        try SQLite.bind(kind, 1, text: adoption.table)
        if try SQLite.step(kind, while: "read the schema of \(adoption.sourcePath)") {
            let type = SQLite.text(kind, 0).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let sql = SQLite.text(kind, 1).map { String(decoding: $0, as: UTF8.self) } ?? ""
            guard type == "table", !sql.uppercased().hasPrefix("CREATE VIRTUAL") else {
                throw AuditError(.invalidInput, "\(adoption.table) in \(adoption.sourcePath) is a \(type == "table" ? "virtual table" : type), "
                                 + "not an ordinary table; copy its rows into one (CREATE TABLE … AS SELECT) and adopt that", field: "table")
            }
        }
        // A legacy table may live in the store's own file, but AuditDB's tables are never a source
        // (adopting them, then protecting or dropping them, would damage the store).
        let ownTables = Set(try StoreSchema.allKnownObjects.filter { $0.type == "table" }.map { $0.name.lowercased() } + ["grdb_migrations"])
        if ownTables.contains(adoption.table.lowercased()), try Self.isAuditDBStore(handle) {
            throw AuditError(.invalidInput, "\(adoption.table) is one of AuditDB's own tables; adopt a legacy table of the app", field: "table")
        }
    }

    /// Whether the database holds AuditDB's store header table (another store's file as source).
    static func isAuditDBStore(_ handle: OpaquePointer) throws -> Bool {
        let statement = try SQLite.prepare(handle, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'audit_store'",
                                           while: "read the schema of the source")
        defer { SQLite.finalize(statement) }
        return try SQLite.step(statement, while: "read the schema of the source")
    }
}
