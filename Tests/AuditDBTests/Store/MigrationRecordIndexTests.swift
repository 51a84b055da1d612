import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// The migration record's index (`sqlite_autoindex_grdb_migrations_1`) changed alone: GRDB's
/// migrator reads the record through it, AuditDB reads the table. An identifier planted in the
/// index only made `migrate` skip a migration the table lacks and then fail for ever ("another
/// process applied migration …"), while both verifiers said intact or only `schema-outdated`.
/// Verification now compares the two (FORMAT.md section 11, step 1).
@Suite("The migration record's index")
struct MigrationRecordIndexTests {
    /// A 3-row store whose record index (not its table) also lists `identifier`: the index's page
    /// copied from a copy of the store that recorded it.
    func storeWithPlantedIndexEntry(_ identifier: String) async throws -> (dir: TemporaryDirectory, db: String, keys: KeyRing, keyPath: String) {
        let dir = try TemporaryDirectory()
        let keyPath = dir.path("k.keys")
        let keys = try KeyFile.generate(at: keyPath)
        let db = dir.path("store.db"), copy = dir.path("copy.db")
        try await makeStore(at: db, keys: keys, count: 3)
        try FileManager.default.copyItem(atPath: db, toPath: copy)
        try sqlite3Must(copy, "INSERT INTO grdb_migrations(identifier) VALUES ('\(identifier)');")
        let root = try #require(Int(try sqlite3Shell(db, "SELECT rootpage FROM sqlite_schema WHERE name = '\(StoreSchema.migrationRecordIndex)';")
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let pageSize = try #require(Int(try sqlite3Shell(db, "PRAGMA page_size;").stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let page = try Data(contentsOf: URL(fileURLWithPath: copy)).subdata(in: (root - 1) * pageSize..<root * pageSize)
        try patchFile(db, at: (root - 1) * pageSize, with: Array(page))
        // The table is untouched, and SQLite sees nothing wrong with the file.
        #expect(try sqlite3Shell(db, "SELECT count(*) FROM grdb_migrations NOT INDEXED;").stdout == "\(StoreSchema.knownMigrations.count)\n")
        #expect(try sqlite3Shell(db, "PRAGMA quick_check;").stdout == "ok\n")
        return (dir, db, keys, keyPath)
    }

    @Test("a future identifier in the index only: schema-tampered naming it in both verifiers; migrate refuses; REINDEX puts it right")
    func plantedFutureIdentifier() async throws {
        let (dir, db, keys, keyPath) = try await storeWithPlantedIndexEntry("0099-future")
        defer { withExtendedLifetime(dir) {} }  // the directory is removed when released
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.schemaTampered], "\(report.findings)")
        #expect(report.findings.first?.message.hasPrefix(
            "the index of the migration record (sqlite_autoindex_grdb_migrations_1) does not list what grdb_migrations holds (in the index only: '0099-future'): another client changed the index")
            == true, "\(report.findings)")
        #expect(try pythonFindings(db, keyFile: keyPath) == ["schema-tampered -...-"])
        let migrate = try run(try cliPath(), ["migrate", "--store", db, "--key-file", keyPath], environment: environmentWithoutAuditDBOptions())
        #expect(migrate.status != 0)
        #expect(migrate.stderr.contains("does not verify intact before migrating"), "\(migrate.stderr)")
        try sqlite3Must(db, "REINDEX grdb_migrations;")
        #expect(try await AuditStore.verify(storeAt: db, keys: keys).isIntact)
        #expect(try pythonFindings(db, keyFile: keyPath) == [])
    }
}
