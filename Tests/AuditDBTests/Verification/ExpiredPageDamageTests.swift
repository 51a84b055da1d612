import Foundation
import GRDB
import Testing

@testable import AuditDB

/// A damaged page of `audit_expired`, the tombstones of expired rows. Step 4 walks the tombstones
/// as if they were the rows (FORMAT.md 20.4), so damage met there ends the reading of rows with
/// one `corruption` finding from the seq the walk expected next (section 11, step 5), as a page
/// of the log's rows does; step 6, which reads the tombstones again, ends the pass if it meets the
/// page too. Both verifiers agree on each page.
@Suite("Damage to audit_expired's pages", .serialized)
struct ExpiredPageDamageTests {
    let dir: TempDir
    let keys: KeyRing

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
    }

    /// Which page of `audit_expired` is damaged.
    enum Page: String, CaseIterable, CustomTestStringConvertible {
        case root, firstLeaf, secondLeaf, middleLeaf, lastLeaf
        var testDescription: String { rawValue }
    }

    @Test("a page of audit_expired made unreadable (not a b-tree page type): the rows before the damage verify, one corruption finding from the first tombstone the page held (or seq 1 for the root) to the last row, one without a seq when step 6 meets the page again, nothing else; the Python verifier agrees",
          arguments: Page.allCases)
    func damagedPage(_ which: Page) async throws {
        // 6,000 rows whose tenant-1 rows (every third, from seq 1) expire: 2,000 tombstones.
        let db = dir.path("store.db")
        try await makeStore(at: db, keys: keys, count: 6_000)
        let store = try await AuditStore.open(at: db, keys: keys)
        let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 3 * 86_400_000_000)
        let expired = try await store.applyRetention(try RetentionPolicy(parsingDefault: "forever", tenants: ["tenant-1": "1d"]), now: later)
        try await store.close()
        #expect(expired.expired == 2_000)
        let queue = try DatabaseQueue(path: db)
        let (pages, pageSize, last) = try await queue.read { db in
            (try Int.fetchAll(db, sql: "SELECT pageno FROM dbstat WHERE name = 'audit_expired' ORDER BY path"),
             try Int.fetchOne(db, sql: "PRAGMA page_size")!,
             try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries")!)
        }
        try queue.close()
        #expect(pages.count > 8)  // a root and its leaves
        let leaves = Array(pages.dropFirst())
        let page = switch which {
        case .root: pages[0]
        case .firstLeaf: leaves[0]
        case .secondLeaf: leaves[1]
        case .middleLeaf: leaves[leaves.count / 2]
        case .lastLeaf: leaves[leaves.count - 1]
        }
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: db)).subdata(in: (page - 1) * pageSize..<page * pageSize))
        #expect(bytes[0] == (which == .root ? 0x05 : 0x0D))  // an interior or a leaf page of a table
        // The first tombstone on the page: a leaf's first cell is a payload size, then the rowid.
        var first: Int64 = 1
        if which != .root {
            var at = Int(bytes[8]) << 8 | Int(bytes[9])
            while bytes[at] & 0x80 != 0 { at += 1 }
            at += 1
            first = 0
            while true {
                first = first << 7 | Int64(bytes[at] & 0x7F)
                if bytes[at] & 0x80 == 0 { break }
                at += 1
            }
        }
        try patchFile(db, at: (page - 1) * pageSize, with: [0x42])

        let report = try await AuditStore.verify(storeAt: db, keys: keys, configuration: AuditStore.Configuration())
        // Step 6's key-version check reads the first row or tombstone of each version again
        // (seq 1 is a tombstone), through the root to the first leaf.
        let expected = (which == .root || which == .firstLeaf ? ["corruption -"] : []) + ["corruption \(first)...\(last)"]
        #expect(findingNames(report) == expected, "\(report)")
        let ranged = try #require(report.findings.first { $0.seqs != nil })
        #expect(ranged.message.hasPrefix("SQLite cannot read the rows from seq \(first) on: "), "\(ranged.message)")
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        #expect(try pythonFindings(db, keyFile: keyFile) == expected.map { $0.replacingOccurrences(of: " -", with: " -...-") })
    }

    @Test("a leaf of audit_entries whose first and last cell pointers are swapped (SQLite returns rows out of order), in a store with tombstones: each gap step 4 meets is walked through its own tombstones, in both verifiers alike")
    func rowsOutOfOrder() async throws {
        let db = dir.path("store.db")
        try await makeStore(at: db, keys: keys, count: 3_000)
        let store = try await AuditStore.open(at: db, keys: keys)
        let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 3 * 86_400_000_000)
        _ = try await store.applyRetention(try RetentionPolicy(parsingDefault: "forever", tenants: ["tenant-1": "1d"]), now: later)
        try await store.close()
        let queue = try DatabaseQueue(path: db)
        let (page, pageSize) = try await queue.read { db in
            let pages = try Int.fetchAll(db, sql: "SELECT pageno FROM dbstat WHERE name = 'audit_entries' AND pagetype = 'leaf' ORDER BY path")
            return (pages[pages.count / 2], try Int.fetchOne(db, sql: "PRAGMA page_size")!)
        }
        try queue.close()
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: db)).subdata(in: (page - 1) * pageSize..<page * pageSize))
        let cells = Int(bytes[3]) << 8 | Int(bytes[4])
        let last = 8 + 2 * (cells - 1)
        try patchFile(db, at: (page - 1) * pageSize + 8, with: [bytes[last], bytes[last + 1]])
        try patchFile(db, at: (page - 1) * pageSize + last, with: [bytes[8], bytes[9]])

        let report = try await AuditStore.verify(storeAt: db, keys: keys, configuration: AuditStore.Configuration())
        let names = findingNames(report)
        // Rows out of order: chain breaks, and gaps split by the tombstones walked in each.
        #expect(names.contains("corruption -") && names.contains { $0.hasPrefix("chain-break ") }, "\(names)")
        #expect(names.filter { $0.hasPrefix("missing-rows ") }.count > 4, "\(names)")
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        #expect(try pythonFindings(db, keyFile: keyFile) == names.map { $0.replacingOccurrences(of: " -", with: " -...-") })
    }
}
