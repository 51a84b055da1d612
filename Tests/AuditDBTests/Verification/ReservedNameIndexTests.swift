import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// An index given a reserved `sqlite_` name with `PRAGMA writable_schema`, which SQLite loads and
/// uses like any other: a partial index on `audit_entries` that leaves out a hold entry and a
/// masking entry, made the planner's choice by a rigged `sqlite_stat1`. Verification reports it
/// as an unexpected object (FORMAT.md section 11, step 1), and the readers of AuditDB's own
/// entries never let the planner choose it.
@Suite("An index under a reserved name")
struct ReservedNameIndexTests {
    let dir: TemporaryDirectory
    let keyPath: String
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TemporaryDirectory()
        keyPath = dir.path("k.keys")
        keys = try KeyFile.generate(at: keyPath)
        db = dir.path("store.db")
    }

    static let holdsSQL = """
        SELECT seq FROM audit_entries
        WHERE action IN ('auditdb.hold.placed', 'auditdb.hold.released') AND action >= 'auditdb.' AND action < 'auditdb/' AND seq >= 1
        """

    @Test("a hidden sqlite_ index is schema-tampered; holds and masking rules are still read in full")
    func hiddenIndex() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        let store = try await AuditStore.open(at: db, keys: keys)
        let hold = try await store.placeHold(.tenant("tenant-1"), reason: "case 114", placedBy: "legal")
        let masking = try await store.setMasking([try MaskRule(parsing: "actor=partial")], by: "dpo")
        try await store.close()
        #expect((hold.id, masking) == (4, 5))
        try sqlite3Must(db, """
            CREATE INDEX t ON audit_entries(action) WHERE action >= 'auditdb.' AND action < 'auditdb/' AND seq NOT IN (4, 5);
            PRAGMA writable_schema = ON;
            UPDATE sqlite_schema SET name = 'sqlite_h', sql = 'CREATE INDEX sqlite_h ON audit_entries(action) WHERE action >= ''auditdb.'' AND action < ''auditdb/''' WHERE name = 't';
            """)
        try sqlite3Must(db, """
            ANALYZE;
            UPDATE sqlite_stat1 SET stat = '1000000 500000' WHERE idx = 'audit_entries_engine';
            UPDATE sqlite_stat1 SET stat = '1000000 1' WHERE idx = 'sqlite_h';
            """)
        // The attack is real: a client that lets the planner choose sees no hold.
        let planned = try sqlite3Shell(db, Self.holdsSQL)
        #expect(planned.status == 0 && planned.stdout.isEmpty, "\(planned.stdout)\(planned.stderr)")

        let reopened = try await AuditStore.open(at: db, keys: keys)
        #expect(try await reopened.activeHolds().map(\.id) == [4])
        #expect(try await reopened.maskingConfiguration().seq == 5)
        let report = try await reopened.verify()
        #expect(report.findings.map(\.kind) == [.schemaTampered])
        #expect(report.findings.map(\.message) == ["unexpected index sqlite_h on audit_entries"])
        #expect(try pythonFindings(db, keyFile: keyPath) == ["schema-tampered -...-"])

        // Retention keeps the held tenant's row (sampleEvent(i) is in tenant-(i % 3)).
        let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 3_600_000_000)
        let retained = try await reopened.applyRetention(try RetentionPolicy(parsingDefault: "1h"), now: later)
        #expect((retained.expired, retained.held) == (2, 1))
        #expect(try await reopened.entries(EntryQuery(seqs: 1...3)).map(\.seq) == [1])
        try await reopened.close()
    }

    @Test("an index whose tbl_name is AUDIT_ENTRIES is on audit_entries: reported; a seq index built descending never stops appends or ends a pass early")
    func caseVariantTable() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        try sqlite3Must(db, "CREATE INDEX app_last ON audit_entries(seq DESC, mac, recorded_at);")
        try sqlite3Must(db, """
            PRAGMA writable_schema = ON;
            UPDATE sqlite_schema SET tbl_name = 'AUDIT_ENTRIES', sql = 'CREATE INDEX app_last ON audit_entries(seq, mac, recorded_at)' WHERE name = 'app_last';
            """)
        // The attack is real: a client that lets the planner choose takes seq 1 for the last row.
        #expect(try sqlite3Shell(db, "SELECT seq FROM audit_entries ORDER BY seq DESC LIMIT 1").stdout == "1\n")
        let store = try await AuditStore.open(at: db, keys: keys)
        #expect(try await store.lastSeq() == 10)
        #expect(try await store.append(sampleEvent(11)) == 11)
        #expect(try await store.entries().map(\.seq) == Array(1...11))
        let report = try await store.verify()
        #expect(report.findings.map(\.message) == ["unexpected index app_last on AUDIT_ENTRIES"])
        #expect(report.lastSeq == 11)
        try await store.close()
        #expect(try pythonFindings(db, keyFile: keyPath) == ["schema-tampered -...-"])
    }
}
