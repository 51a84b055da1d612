import Foundation
import Testing

@testable import AuditDB

/// The whole output of `migrate` (`migrate schema`, its default) and `migrate adopt`, compared
/// with golden files (GoldenFile.swift).
@Suite("Golden output: migrate, migrate adopt")
struct GoldenOutputMigrateTests {
    let cli: GoldenCLI

    init() throws { cli = try GoldenCLI() }

    /// A store at the first schema (MigrationTests.olderStore) at `name`, its id registered.
    func olderStore(_ name: String, placeholder: String) async throws -> String {
        let path = cli.path(name)
        cli.register(try await MigrationTests.olderStore(at: path, keys: try cli.keyRing(), count: 4).hex, as: placeholder)
        return path
    }

    @Test("migrate: a current store, a store at the first schema (dry run, default backup, --backup, --no-backup)")
    func migrate() async throws {
        try await cli.createStore(count: 2)
        try cli.golden("migrate-current-dry-run", ["migrate", "--dry-run"] + cli.options)
        try cli.golden("migrate-current", ["migrate"] + cli.options)
        let old = try await olderStore("old.db", placeholder: "<OLD-STORE-ID>")
        try cli.golden("migrate-older-dry-run", ["migrate", "schema", "--dry-run", "--store", old, "--key-file", cli.keyFile])
        try cli.golden("migrate-older", ["migrate", "--store", old, "--key-file", cli.keyFile])
        try cli.golden("migrate-older-again", ["migrate", "--store", old, "--key-file", cli.keyFile])
        let second = try await olderStore("second.db", placeholder: "<SECOND-STORE-ID>")
        try cli.golden("migrate-older-backup-path", ["migrate", "--backup", cli.path("second-backup.db"), "--store", second,
                                                     "--key-file", cli.keyFile])
        let third = try await olderStore("third.db", placeholder: "<THIRD-STORE-ID>")
        try cli.golden("migrate-older-no-backup", ["migrate", "--no-backup", "--store", third, "--key-file", cli.keyFile])
    }

    @Test("migrate refuses: contradicting flags, an existing backup, a tampered or newer store, no store, no key")
    func migrateRefusals() async throws {
        try await cli.createStore(count: 1)
        let old = try await olderStore("old.db", placeholder: "<OLD-STORE-ID>")
        try cli.golden("migrate-no-backup-and-backup", ["migrate", "--no-backup", "--backup", cli.path("b.db")] + cli.options)
        try cli.golden("migrate-backup-exists", ["migrate", "--backup", cli.store, "--store", old, "--key-file", cli.keyFile])
        try cli.golden("migrate-no-key", ["migrate", "--store", old])
        try cli.golden("migrate-missing-store", ["migrate", "--store", cli.path("missing.db"), "--key-file", cli.keyFile])
        try cli.golden("migrate-unknown-subcommand-option", ["migrate", "--frobnicate"] + cli.options)
        try cli.tamperRow(seq: 2, in: old)
        try cli.golden("migrate-tampered", ["migrate", "--no-backup", "--store", old, "--key-file", cli.keyFile])
        try sqlite3Must(cli.store, "INSERT INTO grdb_migrations(identifier) VALUES ('9999-future');")
        try cli.golden("migrate-newer-store", ["migrate"] + cli.options)
        try cli.golden("migrate-newer-store-dry-run", ["migrate", "--dry-run"] + cli.options)
    }

    @Test("migrate adopt: a JSON summary, nothing left to do, a progress bar, invalid rows listed or skipped")
    func adopt() async throws {
        let legacy = cli.path("legacy.db")
        try AdoptionTests.workflowTable(in: legacy, count: 12)
        try await cli.createStore(count: 0)
        let arguments = AdoptionTests.adoptArguments(store: cli.store, keyFile: cli.keyFile, legacy: legacy)
        try cli.golden("adopt", arguments + ["--progress", "none"])
        try cli.golden("adopt-nothing-left", arguments + ["--progress", "none"])
        try cli.golden("adopt-query", ["query", "--limit", "3"] + cli.options)
        let bar = cli.path("bar.db")
        try await cli.createStore(at: bar, count: 0, placeholder: "<BAR-STORE-ID>")
        try cli.golden("adopt-progress-bar", AdoptionTests.adoptArguments(store: bar, keyFile: cli.keyFile, legacy: legacy)
                       + ["--progress", "bar"])
        let invalid = cli.path("invalid.db"), skipping = cli.path("skipping.db")
        try AdoptionTests.workflowTable(in: invalid, count: 6)
        try sqlite3Must(invalid, "UPDATE audit_events SET user_id = NULL WHERE id IN (2, 5); UPDATE audit_events SET outcome = 'maybe' WHERE id = 3;")
        try await cli.createStore(at: skipping, count: 0, placeholder: "<SKIPPING-STORE-ID>")
        try cli.golden("adopt-invalid-rows", AdoptionTests.adoptArguments(store: skipping, keyFile: cli.keyFile, legacy: invalid)
                       + ["--progress", "none"])
        try cli.golden("adopt-skip-invalid", AdoptionTests.adoptArguments(store: skipping, keyFile: cli.keyFile, legacy: invalid)
                       + ["--progress", "none", "--skip-invalid"])
    }

    @Test("migrate adopt refuses: unmapped columns, bad --map, --then, --timestamp-format, a missing table or source")
    func adoptRefusals() async throws {
        let legacy = cli.path("legacy.db")
        try AdoptionTests.workflowTable(in: legacy, count: 3)
        try await cli.createStore(count: 0)
        let base = ["migrate", "adopt"] + cli.options + ["--source", legacy, "--table", "audit_events"]
        let minimal = ["--map", "actor=user_id", "--map", "action=action"]
        try cli.golden("adopt-unmapped-columns", base + minimal)
        try cli.golden("adopt-only-actor", base + ["--map", "actor=user_id", "--drop-unmapped"])
        try cli.golden("adopt-bad-map", base + ["--map", "actor", "--drop-unmapped"])
        try cli.golden("adopt-unknown-field", base + ["--map", "who=user_id", "--drop-unmapped"])
        try cli.golden("adopt-map-twice", base + minimal + ["--map", "actor=tenant_id", "--drop-unmapped"])
        try cli.golden("adopt-missing-column", base + ["--map", "actor=who", "--map", "action=action", "--drop-unmapped"])
        try cli.golden("adopt-bad-then", base + minimal + ["--drop-unmapped", "--then", "burn"])
        try cli.golden("adopt-bad-timestamp-format", base + minimal + ["--drop-unmapped", "--timestamp-format", "julian"])
        try cli.golden("adopt-bad-progress", base + minimal + ["--drop-unmapped", "--progress", "dots"])
        try cli.golden("adopt-bad-commits", base + minimal + ["--drop-unmapped", "--commits", "all"])
        try cli.golden("adopt-missing-table", ["migrate", "adopt"] + cli.options + ["--source", legacy, "--table", "nope"]
                       + minimal + ["--drop-unmapped"])
        try cli.golden("adopt-missing-source", ["migrate", "adopt"] + cli.options
                       + ["--source", cli.path("missing.db"), "--table", "audit_events"] + minimal + ["--drop-unmapped"])
        try cli.golden("adopt-source-directory", ["migrate", "adopt"] + cli.options
                       + ["--source", cli.path(""), "--table", "audit_events"] + minimal + ["--drop-unmapped"])
        try cli.golden("adopt-no-table-option", ["migrate", "adopt"] + cli.options + ["--source", legacy] + minimal)
        try Data("not a database\n".utf8).write(to: URL(fileURLWithPath: cli.path("notes.txt")))
        try cli.golden("adopt-source-not-sqlite", ["migrate", "adopt"] + cli.options
                       + ["--source", cli.path("notes.txt"), "--table", "audit_events"] + minimal + ["--drop-unmapped"])
    }
}
