import AuditDBTestSupport
import Foundation
import GRDB
import Testing

@testable import AuditDB

/// The filter columns in the bucketed actor and resource id indexes (migration 0011, issue 19):
/// the index proof over the wider entries (tampered with by hand: a filter value flipped, a seq
/// key moved, full and incremental passes, exact findings), `repair-indexes`, and the migration
/// of a store at 0010. The pages against an oracle are in QueryTests (`filtersMatchOracle`).
@Suite("Actor and resource id indexes with filters")
struct KeyFilterIndexTests {
    let dir: TemporaryDirectory
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
        db = dir.path("store.db")
    }

    func definition(_ index: String, in path: String) throws -> String {
        try sqlite3Shell(path, "SELECT sql FROM sqlite_schema WHERE name = '\(index)';").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("one action flipped in audit_entries_actor (write -> wrote): index-mismatch naming it, the actor's filtered page misses the row; repair-indexes fixes it")
    func actionFlippedInActorIndex() async throws {
        // One actor for every row, so that every "write" in the actor index's page is that actor's.
        try await makeStore(at: db, keys: keys, count: 20, actor: { _ in "alice" })
        let page = try indexRootPage("audit_entries_actor", in: db)
        let hits = try offsets(of: "write", in: db).filter { page.contains($0) }
        #expect(hits.count == 5)  // sampleEvent's action is "write" for i % 4 == 2, i in 1...20
        try patchFile(db, at: hits[0] + 2, with: Array("o".utf8))  // in the index only
        let writes = (1...20).filter { $0 % 4 == 2 }.map(Int64.init)
        let store = try await AuditStore.open(at: db, keys: keys)
        let damaged = try await store.entries(EntryQuery(actor: "alice", action: "write")).map(\.seq)
        #expect(damaged != writes)  // the damage the proof exists for
        try await store.close()
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_actor does not hold exactly the entries of the log's rows (20 entries, as many as the rows imply, but some are altered)") == true, "\(report)")
        let reopened = try await AuditStore.open(at: db, keys: keys)
        #expect(try await reopened.repairIndexes().isIntact)
        #expect(try await reopened.entries(EntryQuery(actor: "alice", action: "write")).map(\.seq) == writes)
        #expect(try await reopened.entries(EntryQuery(descending: true, actor: "alice", action: "write")).map(\.seq) == writes.reversed())
        try await reopened.close()
    }

    @Test("one outcome changed in audit_entries_resource (the index rebuilt with it, the CREATE INDEX text put back): the filtered page refuses the row SQLite reads with the index's value; index-mismatch naming it")
    func outcomeChangedInResourceIndex() async throws {
        try await makeStore(at: db, keys: keys, count: 20)
        // Row 7 (outcome success) indexed as denied: a page for denied rows of doc-7 finds it.
        try rebuildIndex("audit_entries_resource", in: db, as: """
            CREATE INDEX audit_entries_resource ON audit_entries((seq >> 14), resource_id, (seq >> 0), \
            CASE WHEN seq = 7 THEN \(AuditOutcome.denied.code) ELSE outcome END, severity, action) WHERE resource_id IS NOT NULL
            """)
        let store = try await AuditStore.open(at: db, keys: keys)
        // SQLite takes the row's outcome from the index entry (a column the index holds), so the
        // row comes back with the forged value and fails its MAC; the stored row verifies, so the
        // index is named: never returned as verified.
        let error = await #expect(throws: AuditError.self) {
            try await store.entries(EntryQuery(resourceId: "doc-7", outcome: .denied))
        }
        #expect(error?.code == .integrityViolation)
        #expect(error?.message.hasPrefix("entry 7 was read through an index that disagrees with the stored row (index-mismatch at seq 7: ") == true, "\(String(describing: error))")
        try await store.close()
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_resource does not hold exactly the entries of the log's rows (20 entries, as many as the rows imply, but some are altered)") == true, "\(report)")
    }

    @Test("the stored seq key of one actor entry moved (seq 7 keyed as 8, the CREATE INDEX text put back): full and incremental passes name the index; an old entry moved into the new rows' keys is extra")
    func seqKeyMoved() async throws {
        let moved = "CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor, ((seq >> 0) + (seq = 7)), outcome, severity, action) WHERE actor IS NOT NULL"
        try await makeStore(at: db, keys: keys, count: 20, actor: { _ in "alice" })
        try rebuildIndex("audit_entries_actor", in: db, as: moved)
        let store = try await AuditStore.open(at: db, keys: keys)
        let page = try await store.entries(EntryQuery(actor: "alice", seqs: 1...7)).map(\.seq)
        #expect(page == [1, 2, 3, 4, 5, 6])  // the damage: seq 7 is in range but its key (8) is not
        try await store.close()
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_actor does not hold exactly the entries of the log's rows (20 entries, as many as the rows imply, but some are altered)") == true, "\(report)")

        // Incremental, rows 6...10: the moved key belongs to a new row (7, keyed 8).
        let incremental = try await incrementalPass("inc-key.db", rows: 5, added: 5, rebuiltAs: moved)
        #expect(incremental.rowsChecked == 5)
        #expect(incremental.findings.map(\.kind) == [.indexMismatch], "\(incremental)")
        #expect(incremental.findings.first?.message.hasPrefix("index audit_entries_actor does not hold exactly the entries of the log's rows (5 entries, as many as the rows imply, but some are altered)") == true, "\(incremental)")
        // Row 2's entry keyed 8, beside row 8's: counted by its key, so extra, whatever row it points at.
        let intoRange = "CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor, ((seq >> 0) + 6 * (seq = 2)), outcome, severity, action) WHERE actor IS NOT NULL"
        let into = try await incrementalPass("inc-into.db", rows: 5, added: 5, rebuiltAs: intoRange)
        #expect(into.rowsChecked == 5)
        #expect(into.findings.map(\.kind) == [.indexMismatch], "\(into)")
        #expect(into.findings.first?.message.hasPrefix("index audit_entries_actor does not hold exactly the entries of the log's rows (6 entries where the rows imply 5)") == true, "\(into)")
    }

    /// The incremental pass over `added` rows of one actor after `rows`, the actor index rebuilt as `definition`.
    func incrementalPass(_ file: String, rows: Int, added: Int, rebuiltAs definition: String) async throws -> IntegrityReport {
        try await incrementalPassAfterRebuild(at: dir.path(file), keys: keys, rows: rows, added: added, actor: "alice",
                                              index: "audit_entries_actor", as: definition)
    }

    @Test("a store at 0010 takes migration 0011 with `migrate`: both bucketed indexes gain the filter columns, are proved, and filtered pages equal the rows filtered by hand")
    func migrationAddsFilterColumns() async throws {
        let store = try await AuditStore.create(at: db, keys: keys, configuration: .init(), schemaUpTo: "0010-tenant-filter-index")
        try await store.append(contentsOf: (1...40).map { sampleEvent($0) })
        try await store.close()
        #expect(try definition("audit_entries_actor", in: db).contains("((seq >> 14), actor) WHERE"))
        #expect(try await AuditStore.migrationPlan(at: db).pending == ["0011-key-filter-indexes"])
        let report = try await AuditStore.migrate(at: db, keys: keys, backup: .none)
        #expect(report.applied == ["0011-key-filter-indexes"])
        #expect(report.verification.isIntact && report.verification.rowsChecked == 40)
        #expect(try definition("audit_entries_actor", in: db).contains("((seq >> 14), actor, (seq >> 0), outcome, severity, action)"))
        #expect(try definition("audit_entries_resource", in: db).contains("((seq >> 14), resource_id, (seq >> 0), outcome, severity, action)"))
        let migrated = try await AuditStore.open(at: db, keys: keys)
        // user-3: i % 7 == 3; denied: i % 5 == 0.
        let denied = (1...40).filter { $0 % 7 == 3 && $0 % 5 == 0 }.map(Int64.init)
        #expect(!denied.isEmpty)
        #expect(try await migrated.entries(EntryQuery(descending: true, actor: "user-3", outcome: .denied)).map(\.seq) == denied.reversed())
        #expect(try await migrated.entries(EntryQuery(action: "delete", resourceId: "doc-11")).map(\.seq) == [11])
        try await migrated.close()
    }
}
