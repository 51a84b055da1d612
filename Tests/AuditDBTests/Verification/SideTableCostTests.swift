import Foundation
import GRDB
import Testing

@testable import AuditDB

/// The checks of the store's own checkpoints run on every pass, incremental ones included, so
/// they must cost lookups per checkpoint row, never a read of the whole log: a join with the union
/// of `audit_entries` and `audit_expired` once made SQLite materialise every row's MAC (an
/// incremental pass of 2 rows took 1.2 s on a 1M-row store with one checkpoint).
@Suite("Side-table checks cost lookups, not scans")
struct SideTableCostTests {
    @Test("the stored-checkpoint check searches both tables by rowid and scans neither")
    func checkpointCheckPlan() async throws {
        let dir = try TempDir()
        let keys = try testKeyRing()
        let store = try await AuditStore.create(at: dir.path("store.db"), keys: keys)
        try await store.append(contentsOf: (1...50).map { sampleEvent($0) })
        _ = try await store.checkpoint(signer: try testSigner())
        let plan = try await store.pool.read { db -> [String] in
            #expect(try db.tableExists("audit_expired"))
            return try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + StoredCheckpointCheck.disagreeingSQL(expiredTable: true),
                                    arguments: [50]).map { $0["detail"] as String }
        }
        #expect(!plan.isEmpty)
        #expect(plan.filter { $0.contains("SCAN audit_entries") || $0.contains("SCAN audit_expired") || $0.contains("MATERIALIZE")
            || $0.contains("AUTOMATIC") }.isEmpty, "\(plan)")
        #expect(plan.contains { $0.contains("SEARCH audit_entries USING INTEGER PRIMARY KEY") }, "\(plan)")
        #expect(plan.contains { $0.contains("SEARCH audit_expired USING INTEGER PRIMARY KEY") }, "\(plan)")
        // And it still finds what it must: the tail cut below the checkpoint.
        try await store.close()
        try cutTail(dir.path("store.db"), above: 40)
        let report = try await AuditStore.verify(storeAt: dir.path("store.db"), keys: keys)
        #expect(report.findings.map(\.kind) == [.truncated] && report.findings.contains { $0.kind == .truncated && $0.seqs == 41...50 }, "\(report)")
    }
}
