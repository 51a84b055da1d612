import Foundation
import GRDB

/// The store's schema: migrations from `Migrations/`, the canonical text from `schema/`
/// (both embedded at build time), and the expected `sqlite_schema` the scanner compares with.
enum StoreSchema {
    /// Objects that belong to AuditDB: tables, triggers, indexes and views named `audit_*`,
    /// and anything attached to an `audit_*` table.
    /// AuditDB's objects in a database: every object that any known migration creates (by name),
    /// and anything attached to one of AuditDB's tables or views (an extra trigger or index).
    /// Other objects — an app's own tables, even one named `audit_events` — are not AuditDB's.
    static func objects(in db: Database) throws -> [Object] {
        let known = try allKnownObjects
        let names = Set(known.map { asciiLowercased($0.name) })
        let tables = Set(known.filter { $0.type == "table" || $0.type == "view" }.map { asciiLowercased($0.name) })
        // SQLite's names ignore ASCII case, and end at a NUL (it reads them as C strings): an
        // index whose tbl_name is AUDIT_ENTRIES, or audit_entries and a NUL, is on audit_entries
        // (SQLite loads it so), and must not escape the comparison. The comparison itself is of
        // every stored byte (FORMAT.md section 11, step 1).
        return try rawObjects(in: db).filter {
            names.contains(asciiLowercased(asSQLiteReads($0.name))) || tables.contains(asciiLowercased(asSQLiteReads($0.table)))
        }
    }

    /// `name` up to its first NUL: the name SQLite reads from a stored one.
    static func asSQLiteReads(_ name: String) -> String {
        name.firstIndex(of: "\u{0}").map { String(name[..<$0]) } ?? name
    }

    /// Text as stored, every character (a NUL and what follows it included; bytes that are not
    /// valid in the encoding replaced): `CAST(x AS BLOB)` — the text in the database's encoding,
    /// since SQLite's text interface ends at a NUL — decoded in `encoding` (`PRAGMA encoding`).
    static func storedText(_ row: Row, _ column: String, encoding: String) -> String? {
        row.stored(column, as: Data.self).map { decoded($0, encoding: encoding) }
    }

    /// `bytes` of text in the database's `encoding` (`UTF-8`, `UTF-16le` or `UTF-16be`).
    static func decoded(_ bytes: Data, encoding: String) -> String {
        guard encoding.hasPrefix("UTF-16") else { return String(decoding: bytes, as: UTF8.self) }
        let big = encoding == "UTF-16be"
        let units = stride(from: 0, to: bytes.count - 1, by: 2).map { i -> UInt16 in
            let (a, b) = (UInt16(bytes[bytes.startIndex + i]), UInt16(bytes[bytes.startIndex + i + 1]))
            return big ? a << 8 | b : b << 8 | a
        }
        return String(decoding: units, as: UTF16.self)
    }

    /// `name` with ASCII A-Z lowered, as SQLite compares names (other characters as they are).
    static func asciiLowercased(_ name: String) -> String {
        String(decoding: name.utf8.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self)
    }

    /// The objects of all known migrations (computed once).
    static var allKnownObjects: [Object] {
        get throws { try allKnown.get() }
    }
    private static let allKnown: Result<[Object], any Error> = Result {
        let queue = try DatabaseQueue()
        try queue.write { db in for migration in EmbeddedSQL.migrations { try db.execute(sql: migration.sql) } }
        return try queue.read { try rawObjects(in: $0) }
    }

    /// Every object of `sqlite_schema`, SQLite's own included: a name beginning with `sqlite_` is
    /// reserved, but `PRAGMA writable_schema` gives one to any index or trigger, and SQLite then
    /// loads and uses it like any other (an index left out of the comparison could hide rows from
    /// every reader that lets the planner choose). SQLite's own objects on AuditDB's tables (an
    /// autoindex of a UNIQUE constraint) are made by the migrations in the expected database too.
    private static func rawObjects(in db: Database) throws -> [Object] {
        let encoding = try String.fetchOne(db, sql: "PRAGMA encoding") ?? "UTF-8"
        return try Row.fetchAll(db, sql: """
            SELECT CAST(type AS BLOB) AS type, CAST(name AS BLOB) AS name, CAST(tbl_name AS BLOB) AS tbl_name, \
            CAST(sql AS BLOB) AS sql, typeof(type) = 'text' AS t1, typeof(name) = 'text' AS t2, typeof(tbl_name) = 'text' AS t3, \
            typeof(sql) AS t4 FROM sqlite_schema ORDER BY type, name
            """)
            // The schema table can be rewritten too (writable_schema): a NULL or non-text value
            // makes an object that matches no expected one, never a decoding trap.
            .map { row in
                func text(_ column: String, _ isText: String) -> String? {
                    row.stored(isText, as: Int64.self) == 1 ? storedText(row, column, encoding: encoding) : nil
                }
                return Object(type: text("type", "t1") ?? "", name: text("name", "t2") ?? "", table: text("tbl_name", "t3") ?? "",
                              sql: row.stored("t4", as: String.self) == "text" ? storedText(row, "sql", encoding: encoding) : nil)
            }
    }

    struct Object: Hashable, Sendable {
        var type: String
        var name: String
        var table: String
        var sql: String?
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in EmbeddedSQL.migrations {
            let sql = migration.sql
            migrator.registerMigration(migration.name) { db in try db.execute(sql: sql) }
        }
        return migrator
    }

    static var knownMigrations: [String] { EmbeddedSQL.migrations.map(\.name) }

    /// The refusal of a store whose migration record names migrations this AuditDB does not
    /// know: a newer AuditDB wrote it, or someone edited `grdb_migrations` (verify tells which
    /// migrations are missing or unknown).
    static func tooNew(_ path: String, unknown: [String]) -> AuditError {
        AuditError(
            .schemaTooNew,
            "\(path) was written by a newer AuditDB (unknown migrations: \(unknown.sorted().joined(separator: ", "))); "
                + "upgrade this binary. Stores are never downgraded. If no newer AuditDB has opened this file, its "
                + "migration record was changed by another SQLite client: run `auditdb verify`, then see "
                + "docs/migrations.md (\"The migration record changed by another client\").")
    }


    /// The objects a store at `appliedMigrations` must have: made by running the embedded
    /// migrations on an empty in-memory database, so the text matches byte for byte. Migrations
    /// apply in order, so a store that records a migration has every one before it: they run up to
    /// the last one recorded, including any whose record is missing (removed or edited: a record
    /// taken out must not lower what is expected, nor leave a later migration without the tables
    /// it alters). A list that names no known migration expects them all.
    static func expectedObjects(appliedMigrations: [String]) throws -> [Object] {
        let queue = try DatabaseQueue()
        let through = EmbeddedSQL.migrations.lastIndex { appliedMigrations.contains($0.name) } ?? EmbeddedSQL.migrations.count - 1
        try queue.write { db in
            for migration in EmbeddedSQL.migrations.prefix(through + 1) {
                try db.execute(sql: migration.sql)
            }
        }
        return try queue.read { try objects(in: $0) }
    }

    /// The objects `schema/*.sql` defines (for the test that Migrations/ and schema/ agree).
    static func canonicalObjects() throws -> [Object] {
        let queue = try DatabaseQueue()
        try queue.write { db in
            for file in EmbeddedSQL.schema { try db.execute(sql: file.sql) }
        }
        return try queue.read { try objects(in: $0) }
    }

    /// The identifiers `grdb_migrations` records (FORMAT.md section 11, step 1), read from the
    /// table itself: any value is an identifier (NULL reads as `NULL`, a number as its text), so a
    /// record rewritten by another client is an unknown migration, never a decoding failure. A
    /// table without an `identifier` column records nothing (``migrationRecordState(_:)``).
    static func appliedMigrations(_ db: Database) throws -> [String] {
        guard try migrationRecordState(db) == nil else { return [] }
        let encoding = try String.fetchOne(db, sql: "PRAGMA encoding") ?? "UTF-8"
        return try Data.fetchAll(db, sql: Self.appliedMigrationsSQL).map { decoded($0, encoding: encoding) }
    }

    /// Every character of each identifier (``storedText(_:_:encoding:)``): `0001-initial` and a NUL is not `0001-initial`.
    static let appliedMigrationsSQL = "SELECT CAST(coalesce(CAST(identifier AS TEXT), 'NULL') AS BLOB) FROM grdb_migrations NOT INDEXED ORDER BY 1"

    /// The migration record's own index (its PRIMARY KEY), through which GRDB's migrator reads it.
    static let migrationRecordIndex = "sqlite_autoindex_grdb_migrations_1"

    /// Whether the migration record's index lists other identifiers than its table holds (FORMAT.md
    /// section 11, step 1): the finding's text, or nil when they agree (or there is no such index,
    /// which the schema comparison reports). The table is what AuditDB reads; GRDB's migrator reads
    /// the index, so an identifier planted in the index alone makes `migrate` skip (or refuse) a
    /// migration the table says is missing.
    static func migrationRecordIndexDisagreement(_ db: Database) throws -> String? {
        guard try migrationRecordState(db) == nil,
              try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ? AND tbl_name = 'grdb_migrations')",
                                arguments: [migrationRecordIndex]) == true
        else { return nil }
        let table = try String.fetchAll(db, sql: "SELECT quote(identifier) FROM grdb_migrations NOT INDEXED ORDER BY identifier")
        let index = try String.fetchAll(db, sql: "SELECT quote(identifier) FROM grdb_migrations INDEXED BY \(migrationRecordIndex) ORDER BY identifier")
        guard table != index else { return nil }
        let onlyIndex = index.filter { !table.contains($0) }, onlyTable = table.filter { !index.contains($0) }
        var differences: [String] = []
        if !onlyIndex.isEmpty { differences.append("in the index only: " + onlyIndex.joined(separator: ", ")) }
        if !onlyTable.isEmpty { differences.append("in the table only: " + onlyTable.joined(separator: ", ")) }
        return "the index of the migration record (\(migrationRecordIndex)) does not list what grdb_migrations holds ("
            + (differences.isEmpty ? "the same identifiers, in another order or number" : differences.joined(separator: "; "))
            + "): another client changed the index, and GRDB's migrator, which reads the record through it, would believe it. "
            + "Keep a copy of the file as evidence, then rebuild the index: sqlite3 STORE 'REINDEX grdb_migrations' (docs/migrations.md)"
    }

    /// Why `grdb_migrations` records nothing — `missing` (no such table), `without its
    /// identifier column` — or nil if it can be read (it may still be empty).
    static func migrationRecordState(_ db: Database) throws -> String? {
        guard try db.tableExists("grdb_migrations") else { return "missing" }
        guard try db.columns(in: "grdb_migrations").contains(where: { $0.name == "identifier" }) else {
            return "without its identifier column"
        }
        return nil
    }
}
