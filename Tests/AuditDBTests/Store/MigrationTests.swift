import Foundation
import GRDB
import Synchronization
import Testing

@testable import AuditDB

@Suite("Schema migrations")
struct MigrationTests {
    let dir: TempDir
    let keys: KeyRing
    /// The migrations after the first, which a store made at the first schema lacks.
    let later = Array(StoreSchema.knownMigrations.dropFirst())

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
    }

    /// A store as the first release wrote it: only migration 0001, with rows.
    func olderStore(_ name: String = "old.db") async throws -> String {
        let path = dir.path(name)
        try await Self.olderStore(at: path, keys: keys)
        return path
    }

    /// A store at `path` as the first release wrote it: only migration 0001, with `count` sample
    /// events. Returns its id.
    @discardableResult
    static func olderStore(at path: String, keys: KeyRing, count: Int = 50) async throws -> StoreID {
        let store = try await AuditStore.create(at: path, keys: keys, configuration: .init(), schemaUpTo: "0001-initial")
        try await store.append(contentsOf: (1...count).map { sampleEvent($0) })
        let id = store.storeID
        try await store.close()
        return id
    }

    @Test("a fresh store is current; migrating it is a no-op that writes no backup")
    func freshStoreIsCurrent() async throws {
        let path = dir.path("new.db")
        try await makeStore(at: path, keys: keys, count: 3)
        let plan = try await AuditStore.migrationPlan(at: path)
        #expect(plan.isUpToDate)
        #expect(plan.applied == StoreSchema.knownMigrations)
        let report = try await AuditStore.migrate(at: path, keys: keys)
        #expect(report.applied.isEmpty)
        #expect(report.backupPath == nil)
        #expect(report.verification.isIntact)
    }

    @Test("a migration record deleted with the migration's objects: never intact (schema-outdated); a skipped record: schema-tampered")
    func migrationRecordTampered() async throws {
        let path = dir.path("s.db")
        // A store at 0005 (format-1 rows; dropping 0006's column would make format-2 rows malformed).
        let store = try await AuditStore.create(at: path, keys: keys, configuration: .init(), schemaUpTo: "0005-retention")
        try await store.append(contentsOf: (1...5).map { sampleEvent($0) })
        try await store.close()
        let last = StoreSchema.knownMigrations[4]
        #expect(last == "0005-retention" && StoreSchema.knownMigrations.last == "0011-key-filter-indexes")
        try sqlite3Must(path, "DELETE FROM grdb_migrations WHERE identifier = '\(last)'; DROP TABLE audit_expired;")
        let report = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(report.findings.map(\.kind) == [.schemaOutdated])
        #expect(report.findings.first?.message.contains("If this store was migrated before, its migration record and the objects of the later migrations were removed (tampering)") == true)
        let other = dir.path("t.db")
        try await makeStore(at: other, keys: keys, count: 5)
        try sqlite3Must(other, "DELETE FROM grdb_migrations WHERE identifier = '\(StoreSchema.knownMigrations[1])';")
        let skipped = try await AuditStore.verify(storeAt: other, keys: keys)
        #expect(skipped.findings.map(\.message).contains { $0.hasPrefix("the recorded migrations (") && $0.hasSuffix("a migration record was removed or edited") })
    }

    @Test("the migration record emptied, or dropped: verify (and the Python verifier) report schema-tampered, and open says what happened instead of 'not a store'")
    func migrationRecordEmptied() async throws {
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        let renamed = "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = 'CREATE TABLE grdb_migrations (name TEXT NOT NULL PRIMARY KEY)' WHERE name = 'grdb_migrations';"
        for (sql, state) in [("DELETE FROM grdb_migrations;", "empty"), ("DROP TABLE grdb_migrations;", "missing"),
                             (renamed, "without its identifier column")] {
            let path = dir.path("\(state).db")
            try await makeStore(at: path, keys: keys, count: 3)
            try sqlite3Must(path, sql)
            let message = "the migration record (grdb_migrations) is \(state): every AuditDB store records the migrations it took, so it was removed by another SQLite client. Until it is restored (from a backup), other commands refuse the store"
            let report = try await AuditStore.verify(storeAt: path, keys: keys)
            #expect(report.findings.map(\.kind) == [.schemaTampered])
            #expect(report.findings.first?.message == message)
            let python = try run("/usr/bin/env", ["python3", repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify.py").path,
                                                  "--store", path, "--key-file", keyFile])
            #expect(python.status == 1 && python.stdout.contains("schema-tampered: \(message)"), "\(python.stdout)")
            do {
                _ = try await AuditStore.open(at: path, keys: keys)
                Issue.record("a store without its migration record opened")
            } catch let error as AuditError {
                #expect(error.code == .corrupt)
                #expect(error.message.contains("has AuditDB's tables but no record of its schema migrations"), "\(error.message)")
            }
        }
    }

    @Test("the migration record holds a NULL, or its table's page is damaged: findings in both verifiers, never a decoding failure")
    func migrationRecordRewritten() async throws {
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        let path = dir.path("null.db")
        try await makeStore(at: path, keys: keys, count: 3)
        try sqlite3Must(path, """
            PRAGMA writable_schema = ON;
            UPDATE sqlite_schema SET sql = 'CREATE TABLE grdb_migrations (identifier TEXT PRIMARY KEY)' WHERE name = 'grdb_migrations';
            """)
        try sqlite3Must(path, "INSERT INTO grdb_migrations VALUES (NULL)")
        let report = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(report.findings.map(\.kind) == [.schemaTampered])
        #expect(report.findings.map(\.message) == ["unknown migrations recorded: NULL (newer AuditDB, or tampering)"])
        #expect(try pythonFindings(path, keyFile: keyFile) == ["schema-tampered -...-"])
        await #expect { _ = try await AuditStore.open(at: path, keys: keys) } throws: { ($0 as? AuditError)?.code == .schemaTooNew }

        // The record is read from the table's own b-tree (not its index): damage there is corruption.
        let damaged = dir.path("damaged.db")
        try await makeStore(at: damaged, keys: keys, count: 3)
        let root = try #require(Int(try sqlite3Shell(damaged, "SELECT rootpage FROM sqlite_schema WHERE name = 'grdb_migrations'")
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let handle = try #require(FileHandle(forUpdatingAtPath: damaged))
        try handle.seek(toOffset: UInt64((root - 1) * 4096))
        try handle.write(contentsOf: Data(repeating: 0xFF, count: 100))
        try handle.close()
        let corrupt = try await AuditStore.verify(storeAt: damaged, keys: keys)
        #expect(corrupt.findings.map(\.kind) == [.corruption], "\(corrupt.findings)")
        #expect(try pythonFindings(damaged, keyFile: keyFile).map { $0.hasPrefix("corruption") } == [true])
    }

    @Test("a store at the first schema: open asks for migration; migrate backs up, upgrades and verifies")
    func upgradeFromFirstSchema() async throws {
        let path = try await olderStore()
        do {
            _ = try await AuditStore.open(at: path, keys: keys)
            Issue.record("an outdated store opened without migration")
        } catch let error as AuditError {
            #expect(error.code == .migrationRequired)
            #expect(error.message.contains(later[0]))
        }
        let steps = Mutex<[AuditStore.MigrationProgress]>([])
        let backup = dir.path("before-upgrade.db")
        let report = try await AuditStore.migrate(at: path, keys: keys, backup: .at(backup)) { step in
            steps.withLock { $0.append(step) }
        }
        #expect(report.applied == later)
        #expect(report.verification.isIntact && report.verification.rowsChecked == 50)
        #expect(steps.withLock { $0 } == [.verifying, .backingUp(path: backup)] + later.enumerated().flatMap { index, name in
            [AuditStore.MigrationProgress.applying(name: name, index: index + 1, count: later.count), .verifyingAfter(name: name)]
        })
        // The schema is now exactly the current one, and the store works.
        let store = try await AuditStore.open(at: path, keys: keys)
        #expect(try await store.append(sampleEvent(51)) == 51)
        #expect(try await store.verify().isIntact)
        try await store.close()
        // The backup is the store as it was: at the first schema, intact.
        #expect(try await AuditStore.migrationPlan(at: backup).pending == later)
        #expect(try await AuditStore.verify(storeAt: backup, keys: keys).rowsChecked == 50)
        // Written under a partial name, synced, then linked: nothing partial is left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path("")).filter { $0.contains(".partial-") }.isEmpty)
        #expect(try FileManager.default.attributesOfItem(atPath: backup)[.posixPermissions] as? Int == 0o600)
        // Running it again is a no-op.
        #expect(try await AuditStore.migrate(at: path, keys: keys).applied.isEmpty)
    }

    @Test("the dry run changes nothing: same bytes on disk")
    func dryRunChangesNothing() async throws {
        let path = try await olderStore()
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let cli = try cliPath()
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        let result = try run(cli, ["migrate", "--dry-run", "--store", path, "--key-file", keyFile])
        #expect(result.status == 0)
        #expect(result.stdout.contains("pending: " + later.joined(separator: ", ")))
        #expect(result.stdout.contains("dry run: nothing was changed"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try await AuditStore.migrationPlan(at: path).pending == later)
        let migrated = try run(cli, ["migrate", "--store", path, "--key-file", keyFile, "--no-backup"])
        #expect(migrated.status == 0, "\(migrated.stderr)")
        #expect(migrated.stdout.contains("migrated: \(later.joined(separator: ", ")); intact: 50 rows verified"))
    }

    @Test("a store written by a newer AuditDB is refused by migrate too")
    func newerRefused() async throws {
        let path = dir.path("s.db")
        try await makeStore(at: path, keys: keys, count: 1)
        try sqlite3Must(path, "INSERT INTO grdb_migrations(identifier) VALUES ('9999-future');")
        await #expect { _ = try await AuditStore.migrate(at: path, keys: keys) } throws: {
            ($0 as? AuditError)?.code == .schemaTooNew
        }
    }

    @Test("a tampered store is not migrated: nothing changes")
    func tamperedNotMigrated() async throws {
        let path = try await olderStore()
        try sqlite3Must(path, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET actor = 'x' WHERE seq = 9;")
        await #expect { _ = try await AuditStore.migrate(at: path, keys: keys) } throws: {
            ($0 as? AuditError)?.code == .integrityViolation
        }
        #expect(try await AuditStore.migrationPlan(at: path).pending == later)
    }

    @Test("migratesOnOpen applies pending migrations at open")
    func migrateOnOpen() async throws {
        let path = try await olderStore()
        var config = AuditStore.Configuration()
        config.migratesOnOpen = true
        let store = try await AuditStore.open(at: path, keys: keys, configuration: config)
        #expect(try await store.append(sampleEvent(51)) == 51)
        try await store.close()
        #expect(try await AuditStore.migrationPlan(at: path).isUpToDate)
    }
}
