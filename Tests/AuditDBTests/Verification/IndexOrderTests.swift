import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// An index b-tree rebuilt in another order, its CREATE INDEX text put back byte for byte: it holds
/// exactly the right entries, so a multiset comparison passes, but every seek through it can miss
/// rows (queries, legal holds, erasure). Verification reads the index side in key order and reports
/// it (docs/FORMAT.md section 11, step 7), as the Python verifier does.
@Suite("Index order")
struct IndexOrderTests {
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

    /// Each index AuditDB reads through, with one key column made descending.
    static let descending: [(index: String, definition: String)] = [
        ("audit_entries_actor", "CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor DESC, (seq >> 0), outcome, severity, action) WHERE actor IS NOT NULL"),
        ("audit_entries_resource", "CREATE INDEX audit_entries_resource ON audit_entries((seq >> 14), resource_id DESC, (seq >> 0), outcome, severity, action) WHERE resource_id IS NOT NULL"),
        ("audit_entries_tenant_time", "CREATE INDEX audit_entries_tenant_time ON audit_entries(tenant, recorded_at DESC) WHERE tenant IS NOT NULL"),
        ("audit_entries_recorded_at", "CREATE INDEX audit_entries_recorded_at ON audit_entries(recorded_at DESC)"),
        ("audit_entries_engine", "CREATE INDEX audit_entries_engine ON audit_entries(action DESC) WHERE action >= 'auditdb.' AND action < 'auditdb/'"),
        ("audit_entries_tenant_seq", "CREATE INDEX audit_entries_tenant_seq ON audit_entries(tenant DESC, (seq >> 0), outcome, severity, action) WHERE tenant IS NOT NULL"),
    ]

    /// The Python verifier's findings, as "kind message-prefix" lines.
    func python() throws -> [String] {
        let verifier = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify.py").path
        let result = try run("/usr/bin/env", ["python3", verifier, "--store", db, "--key-file", keyPath, "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stderr)")
        let findings = try #require(json["findings"] as? [[String: Any]])
        return findings.map { "\($0["kind"] as? String ?? "?") \($0["message"] as? String ?? "?")" }.sorted()
    }

    @Test("each index rebuilt in descending order, its text put back: index-mismatch naming it and the first entry out of order, as in Python; queries miss rows and the hold reader refuses; repair-indexes restores them")
    func resorted() async throws {
        try await makeStore(at: db, keys: keys, count: 40)
        let store = try await AuditStore.open(at: db, keys: keys)
        _ = try await store.placeHold(.tenant("tenant-1"), reason: "case 1", placedBy: "legal")
        _ = try await store.placeHold(.actor("user-3"), reason: "case 2", placedBy: "legal")
        #expect(try await store.activeHolds().count == 2)
        _ = try await IntegrityScanner(store: store, configuration: .init(interval: .seconds(300))).scan(.full)  // another engine action
        try await store.close()
        for (index, definition) in Self.descending { try rebuildIndex(index, in: db, as: definition) }

        let reopened = try await AuditStore.open(at: db, keys: keys)
        // The damage the check exists for: every row and hold is there, and every seek misses.
        #expect(try await reopened.page(EntryQuery(limit: 100, actor: "user-2")).entries.isEmpty)
        #expect(try await reopened.page(EntryQuery(limit: 100, tenant: "tenant-0")).entries.isEmpty)
        // The hold reader checks the order of the index it seeks in before it reads: it refuses.
        do {
            let holds = try await reopened.activeHolds()
            Issue.record("the holds read through a re-sorted index: \(holds)")
        } catch let error as AuditError {
            #expect(error.code == .integrityViolation)
            #expect(error.message.hasPrefix("the index audit_entries_engine, through which the hold entries are found, is not in key order"), "\(error.message)")
        }
        let report = try await reopened.verify()
        try await reopened.close()

        let names = Set(Self.descending.map(\.index))
        #expect(report.findings.count == names.count)
        for finding in report.findings {
            #expect(finding.kind == .indexMismatch)
            #expect(finding.seqs == nil)
            let name = String(finding.message.dropFirst("index ".count).prefix { $0 != " " })
            #expect(names.contains(name), "\(finding.message)")
            #expect(finding.message.hasPrefix("index \(name) is not in key order (its entry for rowid "), "\(finding.message)")
        }
        let swift = report.findings.map { "\($0.kind.name) \($0.message)" }.sorted()
        #expect(try python() == swift)

        let cli = try run(try cliPath(), ["repair-indexes", "--store", db], environment: ["AUDITDB_KEY_FILE": keyPath])
        #expect(cli.status == 0, "\(cli.stderr)")
        let repaired = try await AuditStore.open(at: db, keys: keys)
        #expect(try await repaired.verify().isIntact)
        #expect(try await repaired.page(EntryQuery(limit: 100, actor: "user-2")).entries.count == 6)
        #expect(try await repaired.activeHolds().count == 2)
        try await repaired.close()
        #expect(try python().isEmpty)
    }

    @Test("the actor index re-sorted after a verified head: the incremental pass over the new rows reports it")
    func incremental() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        let store = try await AuditStore.open(at: db, keys: keys)
        let head = try #require(try await store.verify().verifiedHead)
        try await store.append(contentsOf: (11...20).map { sampleEvent($0) })
        try await store.close()
        try rebuildIndex(Self.descending[0].index, in: db, as: Self.descending[0].definition)
        let reopened = try await AuditStore.open(at: db, keys: keys)
        let report = try await Verifier(pool: reopened.pool, keys: keys, expectedStoreID: nil).run(from: head)
        try await reopened.close()
        #expect(report.rowsChecked == 10)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_actor is not in key order") == true)
    }

    @Test("a store whose file was rebuilt as UTF-16: schema-tampered naming the encoding, as in Python")
    func utf16() async throws {
        try await makeStore(at: db, keys: keys, count: 5)
        let dump = try sqlite3Shell(db, ".dump")
        #expect(dump.status == 0)
        let utf16 = dir.path("utf16.db")
        try sqlite3Must(utf16, "PRAGMA encoding = 'UTF-16le';\n" + dump.stdout)
        let report = try await AuditStore.verify(storeAt: utf16, keys: keys)
        #expect(report.findings.map(\.kind) == [.schemaTampered])
        #expect(report.findings.first?.message.hasPrefix("the database's text encoding is UTF-16le; AuditDB stores are UTF-8") == true)
        let result = try run("/usr/bin/env", ["python3", repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify.py").path,
                                               "--store", utf16, "--key-file", keyPath])
        #expect(result.status == 1)
        #expect(result.stdout.contains("schema-tampered: the database's text encoding is UTF-16le"))
    }
}
