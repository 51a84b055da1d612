import AuditDBTestSupport
import Foundation
import Synchronization
import Testing

@testable import AuditDB

/// The index proof reads the indexes and the rows in different read transactions. An erasure or
/// an expiry committed between the two (an operator's job during a scan) is not damage: the pass
/// is made again; only a mismatch that stays is reported.
@Suite("Index completeness: rewrites during a pass")
struct IndexProofRaceTests {
    let dir: TemporaryDirectory
    let keys: KeyRing

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
    }

    /// A pass whose `rewrite` runs between the index side and the rows, on its first
    /// `times` passes; the report and how many rewrites ran.
    func pass(_ store: AuditStore, times: Int, rewrite: @escaping @Sendable (Int) async throws -> Void) async throws -> (IntegrityReport, Int) {
        let runs = Mutex(0)
        var verifier = Verifier(pool: store.pool, keys: keys, expectedStoreID: nil)
        verifier.afterIndexSide = {
            let n = runs.withLock { n -> Int in n += 1; return n }
            if n <= times { try await rewrite(n) }
        }
        let report = try await verifier.run()
        return (report, min(runs.withLock { $0 }, times))
    }

    @Test("an erasure between the index side and the rows: no finding (the pass is made again)")
    func erasureDuringPass() async throws {
        let store = try await AuditStore.create(at: dir.path("a.db"), keys: keys)
        try await store.append(contentsOf: (1...300).map { sampleEvent($0) })
        let (report, rewrites) = try await pass(store, times: 1) { _ in
            let erased = try await store.erase(.actor("user-3"), fields: [.actor], reason: "ticket-1")
            #expect(!erased.erased.isEmpty)
        }
        #expect(rewrites == 1)
        #expect(report.isIntact, "\(report.findings)")
        #expect(report.rowsChecked == 301)  // the rows and the erasure entry
        try await store.close()
    }

    @Test("an expiry between the index side and the rows: no finding")
    func expiryDuringPass() async throws {
        let store = try await AuditStore.create(at: dir.path("b.db"), keys: keys)
        try await store.append(contentsOf: (1...300).map { sampleEvent($0) })
        let (report, rewrites) = try await pass(store, times: 1) { _ in
            let expired = try await store.applyRetention(
                try RetentionPolicy(parsingDefault: "forever", tenants: ["tenant-1": "1d"]),
                now: AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 86_400_000_000))
            #expect(expired.expired == 100)
        }
        #expect(rewrites == 1)
        #expect(report.isIntact, "\(report.findings)")
        try await store.close()
    }

    @Test("an erasure during every pass: after the last attempt the mismatch is reported, naming the actor index")
    func rewriteDuringEveryPass() async throws {
        let store = try await AuditStore.create(at: dir.path("c.db"), keys: keys)
        try await store.append(contentsOf: (1...300).map { sampleEvent($0) })
        let (report, rewrites) = try await pass(store, times: Verifier.passAttempts) { n in
            _ = try await store.erase(.actor("user-\(n)"), fields: [.actor], reason: "ticket-\(n)")
        }
        #expect(rewrites == Verifier.passAttempts)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.contains("audit_entries_actor") == true, "\(report.findings)")
        // Nothing was wrong: a pass with nothing landing meanwhile finds nothing.
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("an index really damaged, and an erasure during the pass: the damage is still reported after the passes made again")
    func damageWithErasureDuringPass() async throws {
        let path = dir.path("d.db")
        try await makeStore(at: path, keys: keys, count: 300)
        // One entry of the resource index removed (the index rebuilt without row 7's).
        try rebuildIndex("audit_entries_resource", in: path,
                         as: "CREATE INDEX audit_entries_resource ON audit_entries((seq >> 14), resource_id, (seq >> 0), outcome, severity, action) WHERE resource_id IS NOT NULL AND seq <> 7")
        let store = try await AuditStore.open(at: path, keys: keys)
        let (report, rewrites) = try await pass(store, times: 1) { _ in
            _ = try await store.erase(.actor("user-3"), fields: [.actor], reason: "ticket-1")
        }
        #expect(rewrites == 1)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.contains("audit_entries_resource") == true, "\(report.findings)")
        try await store.close()
    }
}
