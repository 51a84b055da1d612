import Foundation
import GRDB
import Testing

@testable import AuditDB

/// An index entry edited in the file (raw bytes), the row untouched: SQLite reads the columns an
/// index holds from the index, so the query's values fail the MAC. The query must blame the
/// index, not the row, and show the stored row.
@Suite("Queries: an edited index entry is not a changed row")
struct IndexEntryTamperTests {
    let dir: TempDir
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        db = dir.path("store.db")
    }

    /// 30 rows (tenants tenant-0, -1, -2 in turn); the last tenant-1 entry of the tenant index
    /// rewritten as tenant-2 (the key order still holds: it sorts just before the first tenant-2
    /// entry). Returns its seq.
    func editLastTenantOneEntry() async throws -> Int64 {
        try await makeStore(at: db, keys: keys, count: 30)
        let queue = try DatabaseQueue(path: db)
        let (page, pageSize, seq) = try await queue.read { db in
            (try Int.fetchOne(db, sql: "SELECT rootpage FROM sqlite_schema WHERE name = 'audit_entries_tenant_seq'")!,
             try Int.fetchOne(db, sql: "PRAGMA page_size")!,
             try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries WHERE tenant = 'tenant-1'")!)
        }
        try queue.close()
        // The index fits one leaf page (type 10): its cell pointers, in key order, from byte 8.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: db)))
        let start = (page - 1) * pageSize
        #expect(bytes[start] == 10)
        let cells = Int(bytes[start + 3]) << 8 | Int(bytes[start + 4])
        let marker = Array("tenant-1".utf8)
        var last: Int?
        for i in 0..<cells {
            let cell = start + (Int(bytes[start + 8 + 2 * i]) << 8 | Int(bytes[start + 9 + 2 * i]))
            if let at = (cell..<(cell + 32)).first(where: { Array(bytes[$0..<($0 + marker.count)]) == marker }) { last = at }
        }
        let at = try #require(last)
        try patchFile(db, at: at + marker.count - 1, with: Array("2".utf8))
        return seq
    }

    @Test("through the query API: the entry is flagged index-mismatch (not mac-mismatch) and shows the stored row; by default the query refuses, naming the index")
    func flaggedAsIndex() async throws {
        let seq = try await editLastTenantOneEntry()
        let store = try await AuditStore.open(at: db, keys: keys)
        let marked = try await store.page(EntryQuery(tenant: "tenant-2", unverifiedRows: .mark)).entries
        let flagged = try #require(marked.first { !$0.isVerified })
        #expect(flagged.seq == seq)
        #expect(flagged.tenant == "tenant-1")  // the stored value, not the index's
        #expect(flagged.finding?.kind == .indexMismatch)
        #expect(flagged.finding?.message == "an index entry this query read for seq \(seq) disagrees with the stored row, whose MAC verifies (the index was edited, or points at the wrong row). Queries may miss rows or return others until `auditdb repair-indexes` rebuilds the indexes; `auditdb verify` names the index")
        #expect(marked.filter { !$0.isVerified }.count == 1)
        do {
            let page = try await store.page(EntryQuery(tenant: "tenant-2"))
            Issue.record("the query returned \(page.entries.count) entries")
        } catch let error as AuditError {
            #expect(error.code == .integrityViolation)
            #expect(error.message.hasPrefix("entry \(seq) was read through an index that disagrees with the stored row (index-mismatch at seq \(seq): "), "\(error.message)")
        }
        try await store.close()
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.indexMismatch], "\(report.findings)")
    }
}
