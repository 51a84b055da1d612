import Foundation
import Testing

@testable import AuditDB

/// The row codec's contract: every consumer that reads a signed row (full verification, the
/// scanner, the verified query API, checkpointing, export) reaches the same verdict on the same
/// damaged row, because they all read and check it through `Row/` (`RowView.check`). Each case
/// damages row 5 of a 10-row store (or splices a row in) with the `sqlite3` shell and checks the
/// exact finding every consumer reports.
@Suite("Row contract: every consumer agrees on every damaged row")
struct RowContractTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        /// SQL run with the append-only triggers dropped; `{other}` is another store's path,
        /// `{fork}` a diverged copy of this store.
        let sql: String
        let kind: Finding.Kind
        let seq: Int64
        let message: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "a value changed", sql: "UPDATE audit_entries SET tenant = 'other' WHERE seq = 5;",
             kind: .macMismatch, seq: 5,
             message: "the stored values do not match the row's MAC (changed, or copied from another store)"),
        Case(name: "recorded_at as text", sql: "UPDATE audit_entries SET recorded_at = 'soon' WHERE seq = 5;",
             kind: .malformedRow, seq: 5, message: "column recorded_at is not an integer"),
        Case(name: "occurred_at as a real", sql: "UPDATE audit_entries SET occurred_at = 1.5 WHERE seq = 5;",
             kind: .malformedRow, seq: 5, message: "column occurred_at is not an integer or NULL"),
        Case(name: "actor as a blob", sql: "UPDATE audit_entries SET actor = x'00ff' WHERE seq = 5;",
             kind: .malformedRow, seq: 5, message: "column actor is not text or NULL"),
        // Without STRICT the column's TEXT affinity stores the number as the text '42'.
        Case(name: "tenant set to a number", sql: "UPDATE audit_entries SET tenant = 42 WHERE seq = 5;",
             kind: .macMismatch, seq: 5,
             message: "the stored values do not match the row's MAC (changed, or copied from another store)"),
        Case(name: "action NULL", sql: "UPDATE audit_entries SET action = NULL WHERE seq = 5;",
             kind: .malformedRow, seq: 5, message: "action is NULL"),
        Case(name: "MAC cut to 31 bytes", sql: "UPDATE audit_entries SET mac = substr(mac, 1, 31) WHERE seq = 5;",
             kind: .malformedRow, seq: 5, message: "the MAC is missing or not 32 bytes"),
        Case(name: "undefined outcome code", sql: "UPDATE audit_entries SET outcome = 7 WHERE seq = 5;",
             kind: .malformedRow, seq: 5, message: "outcome, severity or origin holds an undefined code"),
        Case(name: "unknown format version", sql: "UPDATE audit_entries SET format_version = 3 WHERE seq = 5;",
             kind: .malformedRow, seq: 5, message: "unknown format version 3"),
        Case(name: "seals dropped from a format-2 row", sql: "UPDATE audit_entries SET seals = NULL WHERE seq = 5;",
             kind: .malformedRow, seq: 5,
             message: "the seals column is not valid seals (33 bytes 00 || seed, or 97 bytes mask || commitments and nonces with every erased field NULL)"),
        Case(name: "key version out of range", sql: "UPDATE audit_entries SET key_version = -1 WHERE seq = 5;",
             kind: .malformedRow, seq: 5, message: "invalid key version -1"),
        Case(name: "key version the ring lacks", sql: "UPDATE audit_entries SET key_version = 9 WHERE seq = 5;",
             kind: .unknownKeyVersion, seq: 5,
             message: "signed with key version 9, which the key ring lacks; load the key file that holds it"),
        Case(name: "another row's MAC", sql: "UPDATE audit_entries SET mac = (SELECT mac FROM audit_entries WHERE seq = 4) WHERE seq = 5;",
             kind: .macMismatch, seq: 5,
             message: "the stored values do not match the row's MAC (changed, or copied from another store)"),
        Case(name: "a row from another store with the same key",
             sql: "ATTACH '{other}' AS other; DELETE FROM audit_entries WHERE seq = 5; INSERT INTO audit_entries SELECT * FROM other.audit_entries WHERE seq = 5;",
             kind: .macMismatch, seq: 5,
             message: "the stored values do not match the row's MAC (changed, or copied from another store)"),
        Case(name: "a row from a diverged copy",
             sql: "ATTACH '{fork}' AS fork; DELETE FROM audit_entries WHERE seq = 5; INSERT INTO audit_entries SELECT * FROM fork.audit_entries WHERE seq = 5;",
             kind: .chainBreak, seq: 5,
             message: "the row is intact but does not follow seq 4 (rows removed, inserted or reordered, or taken from another copy of this store)"),
    ]

    /// A store of 10 rows with a checkpoint at 10 (for export), a twin without one (for
    /// checkpointing), another store with the same key, and a copy that diverged after seq 3.
    struct Fixture {
        let dir: TempDir
        let keys: KeyRing
        let signer: CheckpointSigner

        init() async throws {
            dir = try TempDir()
            keys = try testKeyRing()
            signer = try testSigner()
            let base = dir.path("base.db")
            let store = try await AuditStore.create(at: base, keys: keys)
            try await store.append(contentsOf: (1...3).map { sampleEvent($0) })
            try await store.close()
            try FileManager.default.copyItem(atPath: base, toPath: dir.path("fork.db"))
            for (path, actor) in [(base, nil), (dir.path("fork.db"), "forged")] {
                let store = try await AuditStore.open(at: path, keys: keys)
                try await store.append(contentsOf: (4...10).map { sampleEvent($0, actor: actor) })
                try await store.close()
            }
            try FileManager.default.copyItem(atPath: base, toPath: dir.path("base-uncheckpointed.db"))
            let checkpointed = try await AuditStore.open(at: base, keys: keys)
            _ = try await checkpointed.checkpoint(signer: signer)
            try await checkpointed.close()
            try await makeStore(at: dir.path("other.db"), keys: keys, count: 10)
        }

        /// A damaged copy of `source` (a file name in the fixture directory), damaged as someone
        /// with the file would: the triggers dropped and put back exactly as they were, and, for a
        /// value of the wrong type, the table's STRICT taken off and put back through
        /// writable_schema, so that the schema compares identical and only the row is wrong.
        func damaged(_ c: Case, from source: String, name: String) throws -> String {
            let path = dir.path(name)
            try FileManager.default.copyItem(atPath: dir.path(source), toPath: path)
            let sql = c.sql.replacingOccurrences(of: "{other}", with: dir.path("other.db"))
                .replacingOccurrences(of: "{fork}", with: dir.path("fork.db"))
            let triggers = try sqlite3Shell(
                path, "SELECT sql || ';' FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'audit_entries';").stdout
            func strict(_ from: String, _ to: String) throws {
                try sqlite3Must(path, """
                    PRAGMA writable_schema = ON;
                    UPDATE sqlite_schema SET sql = replace(sql, '\(from)', '\(to)') WHERE name = 'audit_entries';
                    PRAGMA writable_schema = OFF;
                    """)
            }
            let notNull = "action         TEXT    NOT NULL", nullable = "action         TEXT /* was NOT NULL */"
            try strict(") STRICT", ")")
            try strict(notNull, nullable)
            try sqlite3Must(path, """
                DROP TRIGGER audit_entries_no_update; DROP TRIGGER audit_entries_no_delete;
                DROP TRIGGER audit_entries_next_seq_only;
                \(sql)
                """)
            try sqlite3Must(path, triggers)
            try strict(nullable, notNull)
            try strict(", seals BLOB)", ", seals BLOB) STRICT")  // migration 0006 appended the column after the closing line
            let schema = try sqlite3Shell(path, "SELECT sql FROM sqlite_schema WHERE name = 'audit_entries';").stdout
            #expect(schema.contains(") STRICT") && schema.contains(notNull))
            return path
        }
    }

    @Test("verify, scan, query, checkpoint and export report the same finding", arguments: cases)
    func everyConsumerAgrees(_ c: Case) async throws {
        let fixture = try await Fixture()
        let keys = fixture.keys
        let expected = Finding(kind: c.kind, seqs: c.seq...c.seq, message: c.message)
        let path = try fixture.damaged(c, from: "base.db", name: "damaged.db")

        // Full verification: exactly this one row finding.
        let report = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(report.findings.filter { $0.seqs != nil } == [expected])

        // The scanner's full pass.
        let scan = try await IntegrityScanner.scan(storeAt: path, keys: keys, mode: .full)
        #expect(scan.integrity.findings.filter { $0.seqs != nil } == [expected])

        // The verified query API, marking instead of throwing: only this row carries a finding.
        let store = try await AuditStore.open(at: path, keys: keys)
        let entries = try await store.entries(EntryQuery(limit: 100, unverifiedRows: .mark))
        #expect(entries.map(\.seq) == Array(1...10))
        #expect(entries.compactMap(\.finding) == [expected])
        #expect(entries.first { $0.finding != nil }?.seq == c.seq)
        // ... and, throwing, refuses with that finding.
        let refusal = await #expect(throws: AuditError.self) { try await store.entries(EntryQuery(limit: 100)) }
        #expect(refusal?.code == .integrityViolation)
        #expect(refusal?.message.contains("(\(expected))") == true)

        // Export against the checkpoint made before the damage.
        let exportError = await #expect(throws: AuditError.self) {
            try await store.export(to: fixture.dir.path("export"), signer: fixture.signer)
        }
        #expect(exportError?.code == .integrityViolation)
        #expect(exportError?.message.contains("(\(expected))") == true)
        try await store.close()

        // Checkpointing a store damaged before any checkpoint.
        let fresh = try fixture.damaged(c, from: "base-uncheckpointed.db", name: "damaged-fresh.db")
        let unchecked = try await AuditStore.open(at: fresh, keys: keys)
        let checkpointError = await #expect(throws: AuditError.self) { try await unchecked.checkpoint(signer: fixture.signer) }
        #expect(checkpointError?.code == .integrityViolation)
        #expect(checkpointError?.message.contains("(\(expected))") == true)
        try await unchecked.close()
    }
}
