import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// NUL bytes written into `sqlite_schema` and `grdb_migrations` (writable_schema): SQLite reads
/// names as C strings, up to the NUL; verification compares every stored byte, and decides which
/// objects are AuditDB's by the names SQLite reads (FORMAT.md section 11, step 1). The Swift
/// verifier read text up to the NUL and missed what followed; the Python one compared every byte
/// but missed an index whose `tbl_name` was `audit_entries` and a NUL.
@Suite("NUL bytes in the schema")
struct SchemaNULTests {
    let dir: TemporaryDirectory
    let db: String
    let keys: KeyRing
    let keyPath: String

    init() async throws {
        dir = try TemporaryDirectory()
        keyPath = dir.path("k.keys")
        keys = try KeyFile.generate(at: keyPath)
        db = dir.path("store.db")
        try await makeStore(at: db, keys: keys, count: 3)
    }

    func rewriteSchema(_ sql: String) throws {
        try sqlite3Must(db, "PRAGMA writable_schema = ON; \(sql) PRAGMA writable_schema = OFF;")
    }

    /// Swift's findings as "kind message" and Python's as kind and range.
    func findings() async throws -> (swift: [String], python: [String]) {
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        return (report.findings.map { "\($0.kind.name) \($0.message)" }, try pythonFindings(db, keyFile: keyPath))
    }

    @Test("a trigger's sql with a NUL and more text appended: differs from its definition, in both verifiers")
    func sqlAfterNUL() async throws {
        try rewriteSchema("UPDATE sqlite_schema SET sql = sql || char(0) || '--junk' WHERE name = 'audit_entries_no_update';")
        let (swift, python) = try await findings()
        #expect(swift == ["schema-tampered trigger audit_entries_no_update differs from its definition (edited?)"], "\(swift)")
        #expect(python == ["schema-tampered -...-"])
    }

    @Test("a trigger's name with a NUL appended: missing, and the stored one unexpected, in both verifiers")
    func nameWithNUL() async throws {
        try rewriteSchema("UPDATE sqlite_schema SET name = name || char(0) WHERE name = 'audit_entries_no_update';")
        let (swift, python) = try await findings()
        #expect(swift == ["schema-tampered trigger audit_entries_no_update is missing (dropped?)",
                          "schema-tampered unexpected trigger audit_entries_no_update\u{0} on audit_entries"], "\(swift)")
        #expect(python == ["schema-tampered -...-", "schema-tampered -...-"])
    }

    @Test("an index on audit_entries whose tbl_name is audit_entries and a NUL (SQLite loads and uses it): unexpected, in both verifiers")
    func tableNameWithNUL() async throws {
        try sqlite3Must(db, "CREATE INDEX app_idx ON audit_entries(actor, action);")
        try rewriteSchema("UPDATE sqlite_schema SET tbl_name = CAST(x'61756469745f656e747269657300' AS TEXT) WHERE name = 'app_idx';")
        // SQLite takes it for an index on audit_entries.
        #expect(try sqlite3Shell(db, "EXPLAIN QUERY PLAN SELECT count(*) FROM audit_entries WHERE actor = 'a' AND action = 'b';")
            .stdout.contains("app_idx"))
        let (swift, python) = try await findings()
        #expect(swift == ["schema-tampered unexpected index app_idx on audit_entries\u{0}"], "\(swift)")
        #expect(python == ["schema-tampered -...-"])
    }

    @Test("a migration identifier 0001-initial and a NUL: an unknown migration, the record skipping 0001, in both verifiers")
    func identifierWithNUL() async throws {
        try sqlite3Must(db, "UPDATE grdb_migrations SET identifier = identifier || char(0) WHERE identifier = '0001-initial';")
        let (swift, python) = try await findings()
        #expect(swift.count == 2 && swift.first == "schema-tampered unknown migrations recorded: 0001-initial\u{0} (newer AuditDB, or tampering)", "\(swift)")
        #expect(swift.last?.hasPrefix("schema-tampered the recorded migrations (0002-origin-ref-index, ") == true, "\(swift)")
        #expect(python == ["schema-tampered -...-", "schema-tampered -...-"])
    }

    @Test("a view's sql that is not UTF-8 (a raw byte edit of the schema text): corruption in both verifiers; the Python one once crashed deciding whether the file is a store")
    func schemaTextNotUTF8() async throws {
        // "CREATE VIEW audit_log AS SE" and the byte 0xFA: SQLite's error quotes it.
        try rewriteSchema("UPDATE sqlite_schema SET sql = CAST(X'43524541544520564945572061756469745F6C6F67204153205345FA' AS TEXT) WHERE name = 'audit_log';")
        let (swift, python) = try await findings()
        #expect(swift.count == 1 && swift.first?.hasPrefix("corruption ") == true && swift.first?.contains("malformed database schema (audit_log)") == true, "\(swift)")
        #expect(python == ["corruption -...-"])
    }
}
