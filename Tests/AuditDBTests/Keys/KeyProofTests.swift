import Foundation
import Testing

@testable import AuditDB

/// A wrong key (right version, wrong bytes) is refused before anything is written, and is
/// reported as a wrong key, not as tampering.
@Suite("Wrong keys are refused")
struct KeyProofTests {
    let dir: TempDir
    let db: String

    init() throws {
        dir = try TempDir()
        db = dir.path("store.db")
    }

    static func hex(_ key: AuditKey) -> String {
        key.withSecretBytes { $0.map { String(format: "%02x", $0) }.joined() }
    }

    func rowCount() throws -> String {
        try sqlite3Shell(db, "SELECT count(*) FROM audit_entries;").stdout
    }

    @Test("open with a wrong key of the store's version: wrong-key, nothing written, the store still verifies")
    func openRefusesWrongKey() async throws {
        let right = try AuditKey.generate(version: 1)
        try await makeStore(at: db, keys: try KeyRing([right]), count: 5)
        do {
            let store = try await AuditStore.open(at: db, keys: try testKeyRing())
            try await store.append(sampleEvent(6))
            try await store.close()
            Issue.record("a wrong key opened the store and appended")
        } catch let error as AuditError {
            #expect(error.code == .wrongKey)
            #expect(error.message.hasPrefix("wrong key for version 1: the key supplied for version 1 verifies none of what that version signed in \(db) (the store header, row 1, row 2 and 3 more row(s) it signed). Nothing was written."))
        }
        #expect(try rowCount() == "5\n")
        let report = try await AuditStore.verify(storeAt: db, keys: try KeyRing([right]))
        #expect(report.isIntact)
    }

    @Test("verify with a wrong key says wrong key, not tampered")
    func verifyRefusesWrongKey() async throws {
        try await makeStore(at: db, keys: try testKeyRing(), count: 3)
        await #expect(throws: AuditError.self) {
            _ = try await AuditStore.verify(storeAt: db, keys: try testKeyRing())
        }
        do {
            _ = try await AuditStore.verify(storeAt: db, keys: try testKeyRing())
        } catch let error as AuditError {
            #expect(error.code == .wrongKey)
            #expect(error.message.hasPrefix("wrong key for version 1:"))
        }
    }

    @Test("a wrong key for a rotated version is named; a version that has signed nothing yet is accepted")
    func rotatedVersion() async throws {
        let v1 = try AuditKey.generate(version: 1)
        let v2 = try AuditKey.generate(version: 2)
        try await makeStore(at: db, keys: try KeyRing([v1]), count: 3)
        // v2 has signed nothing: any bytes are accepted, and the first append makes them the key
        // (its rotation entry, row 4, then the event, row 5: FORMAT.md 10.1).
        let store = try await AuditStore.open(at: db, keys: try KeyRing([v1, v2]))
        #expect(try await store.append(sampleEvent(4)) == 5)
        try await store.close()
        do {
            _ = try await AuditStore.open(at: db, keys: try KeyRing([v1, try AuditKey.generate(version: 2)]))
            Issue.record("a wrong key for version 2 was accepted")
        } catch let error as AuditError {
            #expect(error.code == .wrongKey)
            #expect(error.message.hasPrefix("wrong key for version 2: the key supplied for version 2 verifies none of what that version signed in \(db) (row 4, row 5)."))
        }
        // The header is signed by version 1, so a wrong version 1 is refused even though version 2 signs.
        do {
            _ = try await AuditStore.open(at: db, keys: try KeyRing([try AuditKey.generate(version: 1), v2]))
            Issue.record("a wrong key for version 1 was accepted")
        } catch let error as AuditError {
            #expect(error.code == .wrongKey)
            #expect(error.message.hasPrefix("wrong key for version 1:"))
        }
        #expect(try rowCount() == "5\n")
    }

    @Test("the right key is still proven when the header and the newest row were tampered with")
    func rightKeyDespiteTampering() async throws {
        let keys = try testKeyRing()
        try await makeStore(at: db, keys: keys, count: 10)
        try sqlite3Must(db, """
            DROP TRIGGER audit_store_no_update; UPDATE audit_store SET created_at = created_at + 1;
            DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET action = 'forged' WHERE seq = 10;
            """)
        let store = try await AuditStore.open(at: db, keys: keys)
        let report = try await store.verify()
        try await store.close()
        #expect(report.findings(.headerTampered).map(\.message) == [
            "the store header fails its MAC (store id, creation time or format changed)",
        ])
        #expect(report.findings(.macMismatch).map(\.firstSeq) == [10])
    }

    @Test("rows with bad MACs appended under version 2 and the key-version cache pointed at them: open refuses as a wrong key, but verify finds the rows that verify and reports the forged ones")
    func forgedTailDoesNotBlockVerify() async throws {
        let v1 = try AuditKey.generate(version: 1), v2 = try AuditKey.generate(version: 2)
        let keys = try KeyRing([v1, v2])
        try await makeStore(at: db, keys: try KeyRing([v1]), count: 3)
        let store = try await AuditStore.open(at: db, keys: keys)
        try await store.append(contentsOf: (4...8).map { sampleEvent($0) })  // row 4: the rotation entry; 5...9: events
        try await store.close()
        let columns = try sqlite3Shell(db, "SELECT group_concat(name, ', ') FROM pragma_table_info('audit_entries') WHERE name NOT IN ('seq', 'mac');").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try sqlite3Must(db, """
            DROP TRIGGER audit_entries_next_seq_only; DROP TRIGGER audit_key_versions_no_update;
            WITH RECURSIVE n(i) AS (SELECT 10 UNION ALL SELECT i + 1 FROM n WHERE i < 73)
            INSERT INTO audit_entries (seq, mac, \(columns)) SELECT n.i, randomblob(32), \(columns) FROM n, audit_entries e WHERE e.seq = 9;
            UPDATE audit_key_versions SET first_seq = 10 WHERE key_version = 2;
            """)
        await #expect(throws: AuditError.self) { _ = try await AuditStore.open(at: db, keys: keys) }
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings(.macMismatch).first?.firstSeq == 10, "\(report.findings)")
        #expect(report.findings(.foreignRow).count == 1, "\(report.findings)")
        // The Python verifier looks at every row of the version too (FORMAT.md 11, step 0).
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        let python = try run("/usr/bin/env", ["python3", repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify.py").path,
                                              "--store", db, "--key-file", keyFile])
        #expect(python.status == 1, "\(python.stdout)\(python.stderr)")
        #expect(python.stdout.contains("mac-mismatch at seq 10"), "\(python.stdout)")
        // A really wrong key for version 2 is still refused as one by verify.
        do {
            _ = try await AuditStore.verify(storeAt: db, keys: try KeyRing([v1, try AuditKey.generate(version: 2)]))
            Issue.record("verify took a wrong key for version 2")
        } catch let error as AuditError {
            #expect(error.code == .wrongKey)
        }
    }

    @Test("the CLI refuses a mistyped AUDITDB_KEYS with exit 2 and appends nothing")
    func cliWrongKey() async throws {
        let right = try AuditKey.generate(version: 1)
        try await makeStore(at: db, keys: try KeyRing([right]), count: 2)
        let wrong = try AuditKey.generate(version: 1)
        var environment = inheritedEnvironment
        for name in ["AUDITDB_STORE", "AUDITDB_KEY_FILE", "AUDITDB_STORE_ID"] { environment.removeValue(forKey: name) }
        environment["AUDITDB_KEYS"] = "1:" + Self.hex(wrong)
        let append = try run(try cliPath(), ["append", "--store", db, "--actor", "alice", "--action", "login"],
                             environment: environment)
        #expect(append.status == 2)
        #expect(append.stdout == "")
        #expect(append.stderr.hasPrefix("auditdb: error: wrong key for version 1: the key supplied for version 1 verifies none of what that version signed"))
        let verify = try run(try cliPath(), ["verify", "--store", db], environment: environment)
        #expect(verify.status == 2)
        #expect(verify.stderr.hasPrefix("auditdb: error: wrong key for version 1:"))
        #expect(!verify.stdout.contains("tampered"))
        #expect(try rowCount() == "2\n")
        environment["AUDITDB_KEYS"] = "1:" + Self.hex(right)
        let good = try run(try cliPath(), ["verify", "--store", db], environment: environment)
        #expect(good.status == 0)
        #expect(good.stdout.hasPrefix("intact: 2 rows verified (last seq 2)"))
    }
}
