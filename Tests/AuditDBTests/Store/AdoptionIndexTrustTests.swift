import Foundation
import Testing

@testable import AuditDB

/// What an adoption must not take on trust: the origin_ref index when it counts a run's rows
/// (a resumed run would skip a legacy row or sign one twice), a store whose indexes do not
/// verify when one transaction rebuilds them (the evidence would vanish), and outcome or
/// severity codes that are not exactly an INTEGER's decimal text.
@Suite("Adopting: nothing taken on trust")
struct AdoptionIndexTrustTests {
    let dir: TempDir
    let keys: KeyRing

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
    }

    /// Rebuilds `index` of the store at `path` with `condition` added to its WHERE clause, then
    /// puts its CREATE INDEX text back byte for byte (the b-tree keeps what the condition let in).
    func rebuild(_ path: String, index: String, adding condition: String) throws {
        let original = try sqlite3Shell(path, "SELECT sql FROM sqlite_schema WHERE name = '\(index)'").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(original.hasPrefix("CREATE INDEX \(index) "))
        let quoted = { (sql: String) in sql.replacingOccurrences(of: "'", with: "''") }
        try sqlite3Must(path, "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = '\(quoted(original + " AND " + condition))' WHERE name = '\(index)';")
        try sqlite3Must(path, "REINDEX \(index);")
        try sqlite3Must(path, "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = '\(quoted(original))' WHERE name = '\(index)';")
    }

    @Test("a run's rows are counted from the rows: an origin_ref index missing one of them does not make a finished run import a row again")
    func resumeCountsRows() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE t(id INTEGER PRIMARY KEY, actor TEXT, action TEXT);
            WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 10) INSERT INTO t SELECT i, 'u' || i, 'read' FROM c;
            """)
        let path = dir.path("s.db")
        var adoption = LegacyAdoption(sourcePath: legacy, table: "t", mapping: [.actor: "actor", .action: "action"])
        adoption.idColumn = "id"
        adoption.commits = .batches
        let store = try await AuditStore.create(at: path, keys: keys)
        let first = try await store.adopt(adoption)
        #expect(first.imported == 10 && first.runSeq == 1)
        try await store.close()
        try rebuild(path, index: "audit_entries_origin_ref", adding: "seq <> 11")  // the last legacy row
        #expect(try sqlite3Shell(path, "SELECT count(*) FROM audit_entries WHERE origin_ref = 1").stdout == "9\n")

        let reopened = try await AuditStore.open(at: path, keys: keys)
        let again = try await reopened.adopt(adoption)
        #expect((again.imported, again.resumedFrom) == (0, 10))
        #expect(try await reopened.lastSeq() == 11)
        try await reopened.close()
    }

    @Test("one transaction into a store that does not verify is refused, nothing written: rebuilding its indexes would erase the evidence")
    func oneTransactionVerifiesFirst() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, "CREATE TABLE t(id INTEGER PRIMARY KEY, actor TEXT, action TEXT); INSERT INTO t VALUES (1, 'a', 'read'), (2, 'b', 'read');")
        let path = dir.path("s.db")
        try await makeStore(at: path, keys: keys, count: 3)
        try rebuild(path, index: "audit_entries_actor", adding: "seq <> 2")
        let store = try await AuditStore.open(at: path, keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "t", mapping: [.actor: "actor", .action: "action"])
        adoption.idColumn = "id"
        adoption.commits = .oneTransaction
        await #expect { _ = try await store.adopt(adoption) } throws: { error in
            guard let error = error as? AuditError else { return false }
            return error.code == .integrityViolation
                && error.message.hasPrefix("the store does not verify (1 finding(s), the first: index-mismatch")
                && error.message.contains("Nothing was written.")
        }
        #expect(try await store.lastSeq() == 3)
        let report = try await store.verify()
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        try await store.close()
    }

    @Test("outcome and severity codes are exactly one digit 0-3: +1, 01, -0 and 0002 are refused like any other text")
    func strictCodes() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE t(id INTEGER PRIMARY KEY, actor TEXT, action TEXT, outcome, severity);
            INSERT INTO t VALUES (1, 'a', 'read', 1, 3), (2, 'b', 'read', '+1', 0), (3, 'c', 'read', '01', 0),
                                 (4, 'd', 'read', 0, '-0'), (5, 'e', 'read', 0, '0002'), (6, 'f', 'read', 'denied', 'warning');
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "t",
                                      mapping: [.actor: "actor", .action: "action", .outcome: "outcome", .severity: "severity"])
        adoption.idColumn = "id"
        adoption.skipInvalid = true
        let report = try await store.adopt(adoption)
        #expect(report.imported == 2 && report.skipped == [2, 3, 4, 5])
        let rows = try await store.entries(EntryQuery(seqs: 2...3))
        #expect(rows.map(\.outcome) == [.failure, .denied] && rows.map(\.severity) == [.critical, .warning])
        try await store.close()
        let strict = try await AuditStore.create(at: dir.path("t.db"), keys: keys)
        adoption.skipInvalid = false
        await #expect { _ = try await strict.adopt(adoption) }
            throws: { ($0 as? AuditError)?.message.contains(#"outcome: "+1" is not success, failure, denied or error (or 0-3)"#) == true }
        try await strict.close()
    }

    @Test("a damaged source is named as the source, not the store")
    func damagedSourceNamed() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE t(id INTEGER PRIMARY KEY, actor TEXT, action TEXT);
            WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000) INSERT INTO t SELECT i, 'user-' || i, 'read' FROM c;
            """)
        let handle = try #require(FileHandle(forUpdatingAtPath: legacy))
        try handle.seek(toOffset: 4 * 4096)  // a leaf page of t
        try handle.write(contentsOf: Data(repeating: 0xFF, count: 4096))
        try handle.close()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "t", mapping: [.actor: "actor", .action: "action"])
        adoption.idColumn = "id"
        await #expect { _ = try await store.adopt(adoption) } throws: { error in
            guard let error = error as? AuditError else { return false }
            return error.field == "source" && error.message.contains("the source \(legacy) is not an SQLite database, or its pages are damaged")
                && error.message.contains("It is the source that is damaged, not the store") && !error.message.contains("auditdb verify")
        }
        #expect(try await store.lastSeq() == 0)
        try await store.close()
    }
}
