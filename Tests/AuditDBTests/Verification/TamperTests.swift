import CAuditCore
import Foundation
import GRDB
import Testing

@testable import AuditDB

/// Every test here really tampers — through the sqlite3 shell, raw byte edits of the file, or
/// rows from another store — and checks the exact finding (kind and seq).
@Suite("Tamper detection")
struct TamperTests {
    let dir: TempDir
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        db = dir.path("store.db")
    }

    /// SQL that inserts a copy of row `seq` under another seq (MAC and all).
    static func copyRow(_ seq: Int64, toSeq target: Int64) -> String {
        "INSERT INTO audit_entries SELECT \(target), \(RowLayout.columns.split(separator: ",").dropFirst().joined(separator: ",")) FROM audit_entries WHERE seq = \(seq);"
    }

    func verify(expecting id: StoreID? = nil, keys: KeyRing? = nil) async throws -> IntegrityReport {
        var config = AuditStore.Configuration()
        config.expectedStoreID = id
        return try await AuditStore.verify(storeAt: db, keys: keys ?? self.keys, configuration: config)
    }

    @Test("an untouched store verifies intact")
    func intact() async throws {
        try await makeStore(at: db, keys: keys, count: 50)
        let report = try await verify()
        #expect(report.isIntact)
        #expect(report.rowsChecked == 50)
        #expect(report.lastSeq == 50)
    }

    @Test("UPDATE, DELETE and INSERT OR REPLACE through the sqlite3 shell are rejected")
    func triggersRejectWrites() async throws {
        try await makeStore(at: db, keys: keys, count: 5)
        let update = try sqlite3Shell(db, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3;")
        #expect(update.status != 0)
        #expect(update.stderr.contains("AuditDB: the audit log is append-only: UPDATE is not allowed"))
        let delete = try sqlite3Shell(db, "DELETE FROM audit_entries WHERE seq = 3;")
        #expect(delete.status != 0)
        #expect(delete.stderr.contains("AuditDB: the audit log is append-only: DELETE is not allowed"))
        let replace = try sqlite3Shell(
            db, "INSERT OR REPLACE INTO audit_entries SELECT * FROM audit_entries WHERE seq = 3;")
        #expect(replace.status != 0)
        #expect(replace.stderr.contains("a new row must take the next seq"))
        let gap = try sqlite3Shell(
            db, Self.copyRow(5, toSeq: 9))
        #expect(gap.status != 0)
        let header = try sqlite3Shell(db, "UPDATE audit_store SET created_at = 0;")
        #expect(header.stderr.contains("audit_store is append-only"))
        // Nothing changed.
        #expect(try await verify().isIntact)
    }

    @Test("the same triggers reject writes from the app's own GRDB connection")
    func triggersRejectGRDBWrites() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        let queue = try DatabaseQueue(path: db)
        #expect {
            try queue.write { try $0.execute(sql: "DELETE FROM audit_entries") }
        } throws: { error in
            (error as? DatabaseError)?.message?.contains("append-only") == true
        }
        try queue.close()
        #expect(try await verify().isIntact)
    }

    @Test("a row changed after dropping the triggers: mac-mismatch at that seq, and the dropped trigger")
    func changedRow() async throws {
        try await makeStore(at: db, keys: keys, count: 20)
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET outcome = 2 WHERE seq = 7;")
        let report = try await verify()
        #expect(!report.isIntact)
        let rows = report.findings.filter { $0.seqs != nil }
        #expect(rows.count == 1)
        #expect(rows.first?.kind == .macMismatch)
        #expect(rows.first?.seqs == 7...7)
        #expect(report.findings(.schemaTampered).map(\.message) == ["trigger audit_entries_no_update is missing (dropped?)"])
    }

    @Test(
        "each stored column of a row is covered by the MAC",
        arguments: [
            "recorded_at = recorded_at + 1", "occurred_at = NULL", "tenant = 'other'", "actor = 'mallory'",
            "action = 'noop'", "resource_type = NULL", "resource_id = 'doc-x'", "outcome = 3", "severity = 3",
            "correlation_id = 'req-x'", "source = '10.9.9.9'", "details = '{\"i\":0}'", "key_version = 1",
        ])
    func everyColumnCovered(assignment: String) async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET \(assignment) WHERE seq = 4;")
        let report = try await verify()
        let rows = report.findings.filter { $0.seqs != nil }
        if assignment == "key_version = 1" {
            #expect(rows.isEmpty)  // unchanged value: a control that the harness itself changes nothing else
        } else {
            #expect(rows.map(\.kind) == [.macMismatch])
            #expect(rows.first?.firstSeq == 4)
        }
    }

    @Test("a middle row deleted: missing-rows at its seq")
    func deletedRow() async throws {
        try await makeStore(at: db, keys: keys, count: 30)
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq = 12;")
        let report = try await verify()
        let rows = report.findings.filter { $0.seqs != nil }
        #expect(rows.count == 1)
        #expect(rows.first?.kind == .missingRows)
        #expect(rows.first?.seqs == 12...12)
    }

    @Test("large stores are scanned in two ranges, with findings identical to one pass in order")
    func findingsAtTheSplitPoint() async throws {
        try await makeStore(at: db, keys: keys, count: 25_000)
        let mid: Int64 = 1 + (25_000 - 1) / 2
        #expect(Verifier.split(1...25_000, rows: 25_000).count == 2 || ProcessInfo.processInfo.activeProcessorCount == 1)
        // A row changed at the end of the first range: one finding, no chain-break after it.
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET mac = randomblob(32) WHERE seq = \(mid);")
        var report = try await verify()
        #expect(report.findings.filter { $0.seqs != nil }.map(\.kind) == [.macMismatch])
        #expect(report.findings.filter { $0.seqs != nil }.map(\.firstSeq) == [mid])
        #expect(report.totalFindings == 2)  // and the dropped trigger
        // And a broken link two rows later: one pass in order reports it at mid + 2 (the row
        // after a bad row gets only its row tag checked), so the parallel pass must too.
        try sqlite3Must(db, "UPDATE audit_entries SET mac = CAST(substr(mac, 1, 16) || randomblob(16) AS BLOB) WHERE seq = \(mid + 2);")
        report = try await verify()
        #expect(report.findings.filter { $0.seqs != nil }.map(\.kind) == [.macMismatch, .chainBreak])
        #expect(report.findings.filter { $0.seqs != nil }.map(\.firstSeq) == [mid, mid + 2])
        // A gap across the split point: one missing-rows finding.
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq BETWEEN \(mid) AND \(mid + 3);")
        report = try await verify()
        let rows = report.findings.filter { $0.seqs != nil }
        #expect(rows.map(\.kind) == [.missingRows])
        #expect(rows.first?.seqs == mid...(mid + 3))
        #expect(rows.first?.message == "4 row(s) missing before seq \(mid + 4) (removed)")
        #expect(report.rowsChecked == 24_996)
    }

    @Test("a middle row deleted and later rows renumbered to close the gap: mac-mismatch from that seq on")
    func deletedAndRenumbered() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        try sqlite3Must(db, """
            DROP TRIGGER audit_entries_no_delete; DROP TRIGGER audit_entries_no_update;
            DELETE FROM audit_entries WHERE seq = 6;
            UPDATE audit_entries SET seq = seq - 1 WHERE seq > 6;
            """)
        let report = try await verify()
        let rows = report.findings.filter { $0.seqs != nil }
        #expect(rows.first?.kind == .macMismatch)
        #expect(rows.first?.firstSeq == 6)
        #expect(rows.map(\.firstSeq) == [6, 7, 8, 9])
    }

    @Test("two rows swapped: mac-mismatch at both seqs")
    func swappedRows() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        try sqlite3Must(db, """
            DROP TRIGGER audit_entries_no_update;
            UPDATE audit_entries SET seq = -1 WHERE seq = 3;
            UPDATE audit_entries SET seq = 3 WHERE seq = 4;
            UPDATE audit_entries SET seq = 4 WHERE seq = -1;
            """)
        let report = try await verify()
        let rows = report.findings.filter { $0.seqs != nil }
        #expect(rows.map(\.kind) == [.macMismatch, .macMismatch])
        #expect(rows.map(\.firstSeq) == [3, 4])
    }

    @Test("a row copied in from another store with the same key: mac-mismatch at that seq")
    func rowFromAnotherStore() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        let other = dir.path("other.db")
        try await makeStore(at: other, keys: keys, count: 10)
        try sqlite3Must(db, """
            DROP TRIGGER audit_entries_no_delete; DROP TRIGGER audit_entries_next_seq_only;
            ATTACH '\(other)' AS other;
            DELETE FROM audit_entries WHERE seq = 5;
            INSERT INTO audit_entries SELECT * FROM other.audit_entries WHERE seq = 5;
            """)
        let report = try await verify()
        let rows = report.findings.filter { $0.seqs != nil }
        #expect(rows.map(\.kind) == [.macMismatch])
        #expect(rows.first?.firstSeq == 5)
    }

    @Test("a row from a diverged copy of the same store: the chain breaks at the next seq")
    func rowFromForkedCopy() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        let fork = dir.path("fork.db")
        try FileManager.default.copyItem(atPath: db, toPath: fork)
        for (path, actor) in [(db, "original"), (fork, "forged")] {
            let store = try await AuditStore.open(at: path, keys: keys)
            try await store.append(contentsOf: (11...13).map { sampleEvent($0, actor: actor) })
            try await store.close()
        }
        // Seq 11 of the fork has a valid MAC for this store id and seq and links to the same
        // seq 10; only seq 12 of the original shows the splice.
        try sqlite3Must(db, """
            DROP TRIGGER audit_entries_no_delete; DROP TRIGGER audit_entries_next_seq_only;
            ATTACH '\(fork)' AS fork;
            DELETE FROM audit_entries WHERE seq = 11;
            INSERT INTO audit_entries SELECT * FROM fork.audit_entries WHERE seq = 11;
            """)
        let report = try await verify()
        let rows = report.findings.filter { $0.seqs != nil }
        #expect(rows.map(\.kind) == [.chainBreak])
        #expect(rows.first?.firstSeq == 12)
    }

    @Test("a whole file from another store with the same key: store-identity-mismatch when the id is pinned")
    func wholeFileFromAnotherStore() async throws {
        let id = try await makeStore(at: db, keys: keys, count: 5)
        let other = dir.path("other.db")
        try await makeStore(at: other, keys: keys, count: 5)
        try FileManager.default.removeItem(atPath: db)
        try FileManager.default.copyItem(atPath: other, toPath: db)
        let report = try await verify(expecting: id)
        #expect(report.findings.map(\.kind) == [.storeIdentityMismatch])
        var config = AuditStore.Configuration()
        config.expectedStoreID = id
        await #expect(throws: AuditError.self) { try await AuditStore.open(at: db, keys: keys, configuration: config) }
    }

    @Test("a byte flipped inside a stored value in the file: mac-mismatch at that seq")
    func byteFlipInValue() async throws {
        try await makeStore(at: db, keys: keys, count: 40) { $0 == 23 ? "needle-actor-23" : "user-\($0 % 7)" }
        // The value is in the table row and in the actor index: edit both, as a careful attacker would.
        let found = try offsets(of: "needle-actor-23", in: db)
        #expect(found.count == 2)
        for offset in found { try patchFile(db, at: offset + 7, with: [UInt8(ascii: "X")]) }  // "needle-Xctor-23"
        let report = try await verify()
        let rows = report.findings.filter { $0.seqs != nil }
        #expect(rows.map(\.kind) == [.macMismatch])
        #expect(rows.first?.firstSeq == 23)
    }

    @Test("a byte flipped in the page structure: reported as corruption, no crash")
    func byteFlipInPageStructure() async throws {
        try await makeStore(at: db, keys: keys, count: 2_000)
        let queue = try DatabaseQueue(path: db)
        let (root, pageSize) = try await queue.read { db in
            (try Int.fetchOne(db, sql: "SELECT rootpage FROM sqlite_schema WHERE name = 'audit_entries'")!,
             try Int.fetchOne(db, sql: "PRAGMA page_size")!)
        }
        try queue.close()
        // The root page of a 2,000-row table is an interior b-tree page (type 0x05); make its
        // type byte invalid.
        try patchFile(db, at: (root - 1) * pageSize, with: [0x01])
        let report = try await verify()
        #expect(report.findings.map(\.kind).contains(.corruption))
        #expect(!report.isIntact)
    }

    @Test("a leaf page in the middle of the log made unreadable: the rows before it verify, one corruption finding from the seq after them to the last, and nothing of the steps that judge the unread rows (7, 9-11); the Python verifier agrees",
          arguments: [false, true])
    func corruptLeafPageMidLog(_ lifecycle: Bool) async throws {
        try await makeStore(at: db, keys: keys, count: 6_000)
        if lifecycle {
            // Tombstones of tenant-1's rows, and an erasure: steps 9 and 10 would judge them
            // against the rows after the damage, which were not read, and find them "tampered".
            let store = try await AuditStore.open(at: db, keys: keys)
            let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 3 * 86_400_000_000)
            let expired = try await store.applyRetention(try RetentionPolicy(parsingDefault: "forever", tenants: ["tenant-1": "1d"]), now: later)
            #expect(expired.expired > 1_000)
            _ = try await store.erase(.seqs([5_000, 5_003]), fields: [.actor], reason: "TICKET-1")
            try await store.close()
        }
        let queue = try DatabaseQueue(path: db)
        let (page, pageSize, last) = try await queue.read { db in
            // A leaf of the table a quarter of the way in (the page of the row at seq 1,500).
            let pages = try Int.fetchAll(db, sql: "SELECT pageno FROM dbstat WHERE name = 'audit_entries' AND pagetype = 'leaf' ORDER BY path")
            return (pages[pages.count / 4], try Int.fetchOne(db, sql: "PRAGMA page_size")!, try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries")!)
        }
        try queue.close()
        try patchFile(db, at: (page - 1) * pageSize, with: [0x42])  // not a b-tree page type
        let report = try await verify()
        let ranged = try #require(report.findings.first { $0.kind == .corruption && $0.seqs != nil })
        let first = try #require(ranged.seqs?.lowerBound)
        #expect(first > 1 && ranged.seqs?.upperBound == last, "\(report)")
        #expect(findingNames(report) == ["corruption \(first)...\(last)"], "\(report)")
        if !lifecycle { #expect(report.rowsChecked == Int(first - 1)) }
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        let python = try pythonFindings(db, keyFile: keyFile)
        #expect(python == ["corruption \(first)...\(last)"], "\(python)")
    }

    /// A 50-row store whose object `name` has its root page made unreadable (not a b-tree page
    /// type); the report of both verifiers, which must be one `corruption` finding without a seq.
    func rootPageUnreadable(_ name: String) async throws -> IntegrityReport {
        try await makeStore(at: db, keys: keys, count: 50)
        let queue = try DatabaseQueue(path: db)
        let (root, pageSize) = try await queue.read { db in
            (try Int.fetchOne(db, sql: "SELECT rootpage FROM sqlite_schema WHERE name = ?", arguments: [name])!,
             try Int.fetchOne(db, sql: "PRAGMA page_size")!)
        }
        try queue.close()
        try patchFile(db, at: (root - 1) * pageSize, with: [0x00])
        let report = try await verify()
        #expect(findingNames(report) == ["corruption -"], "\(report)")
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        #expect(try pythonFindings(db, keyFile: keyFile) == ["corruption -...-"])
        return report
    }

    @Test("the root page of audit_time_breaks made unreadable (no row scan reads it): one corruption finding, never intact; the Python verifier agrees")
    func corruptTimeBreaksPage() async throws {
        let report = try await rootPageUnreadable("audit_time_breaks")
        #expect(report.findings.first?.message.hasPrefix("SQLite cannot read the store: ") == true, "\(report)")
    }

    @Test("the root page of a query index made unreadable: one corruption finding naming the index (step 7), in both verifiers (Python's end of its read transaction met the same damage again)")
    func corruptQueryIndexPage() async throws {
        let report = try await rootPageUnreadable("audit_entries_tenant_seq")
        #expect(report.findings.first?.message.hasPrefix("SQLite cannot read index audit_entries_tenant_seq: ") == true, "\(report)")
    }

    @Test("the last row's record header damaged, a checkpoint at that row: step 8 meets it before the rows are read, and the report is still the row scan's (store id, rows before it), as in Python")
    func damagedRowUnderACheckpoint() async throws {
        try await makeStore(at: db, keys: keys, count: 40)
        let store = try await AuditStore.open(at: db, keys: keys)
        _ = try await store.checkpoint(signer: try testSigner())  // at seq 41, its own entry
        try await store.close()
        let queue = try DatabaseQueue(path: db)
        let (page, pageSize, last) = try await queue.read { db in
            let pages = try Int.fetchAll(db, sql: "SELECT pageno FROM dbstat WHERE name = 'audit_entries' AND pagetype = 'leaf' ORDER BY path")
            return (pages.last!, try Int.fetchOne(db, sql: "PRAGMA page_size")!, try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries")!)
        }
        try queue.close()
        // The last cell of the last leaf: its payload size and rowid (varints), then the record's
        // header size, set past the payload.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: db)).subdata(in: (page - 1) * pageSize..<page * pageSize))
        let cells = Int(bytes[3]) << 8 | Int(bytes[4])
        let pointer = 8 + 2 * (cells - 1)
        var at = Int(bytes[pointer]) << 8 | Int(bytes[pointer + 1])
        for _ in 0..<2 { while bytes[at] & 0x80 != 0 { at += 1 }; at += 1 }  // skip two varints
        try patchFile(db, at: (page - 1) * pageSize + at, with: [0x7F])
        let report = try await verify()
        #expect(report.storeID != nil, "\(report)")
        #expect(findingNames(report) == ["corruption -", "corruption \(last)...\(last)"], "\(report)")
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        #expect(try pythonFindings(db, keyFile: keyFile) == ["corruption -...-", "corruption \(last)...\(last)"])
    }

    @Test("the free-page list pointed at a page in use (header bytes 32–39): rows and indexes read fine, appends fail; step 12 (quick_check) reports it in both verifiers")
    func poisonedFreelist() async throws {
        try await makeStore(at: db, keys: keys, count: 20)
        let queue = try DatabaseQueue(path: db)
        let root = try await queue.read { db in try Int.fetchOne(db, sql: "SELECT rootpage FROM sqlite_schema WHERE name = 'audit_entries'")! }
        try queue.close()
        // Freelist trunk = the log's own root page, free-page count 1.
        try patchFile(db, at: 32, with: [0, 0, 0, UInt8(root), 0, 0, 0, 1])
        let report = try await verify()
        #expect(findingNames(report) == ["corruption -"], "\(report)")
        #expect(report.findings.first?.message.hasPrefix("SQLite's own check of the file (PRAGMA quick_check) finds its structure damaged: ") == true,
                "\(report)")
        #expect(report.findings.first?.message.contains("*** in database main ***") == false, "\(report)")
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        #expect(try pythonFindings(db, keyFile: keyFile) == ["corruption -...-"])
        // What the finding warns of: SQLite's writer reads the list, and refuses.
        let store = try await AuditStore.open(at: db, keys: keys)
        var refused = false
        for i in 0..<50 {
            do { _ = try await store.append(sampleEvent(i)) } catch let error as AuditError { refused = error.code == .corrupt; break }
        }
        try await store.close()
        #expect(refused)
    }

    @Test("random bytes over a leaf page mid-log or the last leaf's cells, several seeds: never a crash, never intact, in both verifiers; a corruption range runs to the last seq",
          arguments: ["middle", "last"])
    func damagedLeafPages(_ which: String) async throws {
        try await makeStore(at: db, keys: keys, count: 3_000)
        let pristine = dir.path("pristine.db")
        try sqlite3Must(db, "VACUUM INTO '\(pristine)';")
        let queue = try DatabaseQueue(path: pristine)
        let (page, pageSize) = try await queue.read { db in
            let pages = try Int.fetchAll(db, sql: "SELECT pageno FROM dbstat WHERE name = 'audit_entries' AND pagetype = 'leaf' ORDER BY path")
            return (which == "middle" ? pages[pages.count / 3] : pages[pages.count - 1], try Int.fetchOne(db, sql: "PRAGMA page_size")!)
        }
        try queue.close()
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        for seed in UInt64(1)...4 {
            // What random bytes do to a page is up to SQLite: an error, rows it no longer finds,
            // a read that ends early without an error, or garbage in a row. Each must be a finding.
            let damaged = dir.path("damaged-\(seed).db")
            try FileManager.default.copyItem(atPath: pristine, toPath: damaged)
            var random = SeededRandom(seed: seed)
            try patchFile(damaged, at: (page - 1) * pageSize + (which == "middle" ? 1_500 : 8),
                          with: (0..<100).map { _ in UInt8.random(in: 0...255, using: &random) })
            let report = try await AuditStore.verify(storeAt: damaged, keys: keys)
            #expect(!report.isIntact && !report.findings.isEmpty, "seed \(seed): \(report)")
            // A range runs to the last seq SQLite gives (damaged cells can give it a wrong one).
            for finding in report.findings where finding.kind == .corruption {
                if let seqs = finding.seqs { #expect(seqs.upperBound == max(report.lastSeq, seqs.lowerBound), "seed \(seed): \(report)") }
            }
            #expect(!(try pythonFindings(damaged, keyFile: keyFile)).isEmpty, "seed \(seed)")
        }
    }

    @Test("a truncated store file (cut to half its pages): corruption reported, no crash")
    func truncatedFile() async throws {
        try await makeStore(at: db, keys: keys, count: 2_000)
        let size = try FileManager.default.attributesOfItem(atPath: db)[.size] as! Int
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: db))
        try handle.truncate(atOffset: UInt64(size / 2 / 4096 * 4096))
        try handle.close()
        let report = try await verify()
        #expect(!report.isIntact)
        #expect(report.findings.map(\.kind).contains(.corruption), "\(report)")
    }

    @Test("a file that is not a database at all: corruption finding")
    func notADatabase() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        try patchFile(db, at: 0, with: Array("this is not an sqlite file".utf8))
        let report = try await verify()
        #expect(report.findings.map(\.kind) == [.corruption])
    }

    @Test("a header claiming another format version: header-tampered")
    func headerFormatVersion() async throws {
        try await makeStore(at: db, keys: keys, count: 1)
        try sqlite3Must(db, "DROP TRIGGER audit_store_no_update; UPDATE audit_store SET format_version = 2;")
        let report = try await verify()
        #expect(report.findings(.headerTampered).map(\.message) == [
            "the store header claims format version 2; this AuditDB reads format 1",
        ])
    }

    @Test("the header's singleton changed (its CHECK switched off): header-tampered in both verifiers, and the rows' findings still reported",
          arguments: [("0", "0"), ("2", "2"), ("-9223372036854775808", "-9223372036854775808")])
    func headerSingletonChanged(_ stored: String, _ named: String) async throws {
        try await makeStore(at: db, keys: keys, count: 6)
        // `singleton` is the rowid (INTEGER PRIMARY KEY): only another integer fits. With the
        // header read regardless, a row changed in the same edit is still found.
        try sqlite3Must(db, """
            PRAGMA ignore_check_constraints = ON;
            DROP TRIGGER audit_store_no_update; DROP TRIGGER audit_entries_no_update;
            UPDATE audit_store SET singleton = \(stored); UPDATE audit_entries SET action = 'forged' WHERE seq = 4;
            """)
        let report = try await verify()
        #expect(report.storeID != nil)
        #expect(report.findings(.headerTampered).map(\.message) == [
            "the store header's singleton column is \(named), not the INTEGER 1: another SQLite client switched its CHECK off and changed it (the rest of the header is checked as stored)",
        ], "\(report)")
        #expect(report.findings(.macMismatch).map(\.firstSeq) == [4], "\(report)")
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        let python = try pythonFindings(db, keyFile: keyFile)
        #expect(python.filter { $0.hasPrefix("header-tampered") || $0.hasPrefix("mac-mismatch") } == ["header-tampered -...-", "mac-mismatch 4...4"],
                "\(python)")
        #expect(python.sorted() == report.findings.map { "\($0.kind.name) \($0.seqs.map { "\($0.lowerBound)...\($0.upperBound)" } ?? "-...-")" }.sorted(),
                "\(python) \(report.findings)")
    }

    @Test("triggers switched off for one connection (.dbconfig enable_trigger off): the shell changes and cuts rows; the MACs and the store's own checkpoint catch it")
    func triggersSwitchedOff() async throws {
        try await makeStore(at: db, keys: keys, count: 12)
        let store = try await AuditStore.open(at: db, keys: keys)
        try await store.checkpoint(signer: try testSigner())
        try await store.close()
        let shell = ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3"].first { FileManager.default.isExecutableFile(atPath: $0) }!
        let update = try run(shell, ["-batch", "-cmd", ".dbconfig enable_trigger off", db,
                                     "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 4; DELETE FROM audit_entries WHERE seq > 10;"])
        #expect(update.status == 0, "\(update.stderr)")  // the seat belt is off: nothing stops the shell
        #expect(try sqlite3Shell(db, "SELECT count(*) FROM audit_entries;").stdout == "10\n")
        let report = try await verify()
        #expect(report.findings.map(\.kind) == [.macMismatch, .truncated])
        #expect(report.findings(.macMismatch).map(\.firstSeq) == [4])
        #expect(report.findings(.truncated).first?.seqs == 11...12)
        // The schema is untouched: the triggers were never dropped.
        #expect(report.findings(.schemaTampered).isEmpty)
    }

    @Test("rows signed by a key version the ring lacks: open names it, verify reports it")
    func missingKeyVersion() async throws {
        let v1 = try AuditKey.generate(version: 1)
        let v2 = try AuditKey.generate(version: 2)
        try await makeStore(at: db, keys: try KeyRing([v1]), count: 3)
        let store = try await AuditStore.open(at: db, keys: try KeyRing([v1, v2]))
        try await store.append(sampleEvent(4))
        try await store.close()
        do {
            _ = try await AuditStore.open(at: db, keys: try KeyRing([v1]))
            Issue.record("open succeeded without key version 2")
        } catch let error as AuditError {
            #expect(error.code == .keyUnavailable)
            #expect(error.message.contains("key version(s) 2 that the key ring lacks"))
        }
        let report = try await verify(keys: try KeyRing([v1]))
        // Version 2 signed its rotation entry (row 4, FORMAT.md 10.1) and the event (row 5).
        #expect(report.findings.map(\.kind) == [.unknownKeyVersion, .unknownKeyVersion])
        #expect(report.findings.map(\.firstSeq) == [4, 5])
    }

    @Test("the header changed: header-tampered")
    func headerChanged() async throws {
        try await makeStore(at: db, keys: keys, count: 2)
        try sqlite3Must(db, "DROP TRIGGER audit_store_no_update; UPDATE audit_store SET created_at = created_at + 1;")
        let report = try await verify()
        #expect(report.findings(.headerTampered).count == 1)
        #expect(report.findings(.schemaTampered).count == 1)
        #expect(report.findings.filter { $0.seqs != nil }.isEmpty)
    }

    @Test("an app's own tables in the same file are not AuditDB's, whatever their names")
    func appTablesIgnored() async throws {
        try await makeStore(at: db, keys: keys, count: 2)
        try sqlite3Must(db, """
            CREATE TABLE audit_events(id INTEGER PRIMARY KEY, what TEXT);
            CREATE INDEX audit_events_what ON audit_events(what);
            CREATE TRIGGER audit_events_guard BEFORE DELETE ON audit_events BEGIN SELECT RAISE(ABORT, 'no'); END;
            """)
        #expect(try await verify().isIntact)
        // But an index on an AuditDB table, whatever its name, is reported.
        try sqlite3Must(db, "CREATE INDEX helpful ON audit_entries(actor);")
        #expect(try await verify().findings.map(\.message) == ["unexpected index helpful on audit_entries"])
    }

    @Test("an extra trigger on the log is schema tampering even if no row changed")
    func extraTrigger() async throws {
        try await makeStore(at: db, keys: keys, count: 2)
        try sqlite3Must(db, "CREATE TRIGGER sneaky AFTER INSERT ON audit_entries BEGIN SELECT 1; END;")
        let report = try await verify()
        #expect(report.findings.map(\.kind) == [.schemaTampered])
        #expect(report.findings.first?.message == "unexpected trigger sneaky on audit_entries")
    }

    @Test("a trigger replaced by one that allows updates: schema-tampered naming it")
    func editedTrigger() async throws {
        try await makeStore(at: db, keys: keys, count: 2)
        try sqlite3Must(db, """
            DROP TRIGGER audit_entries_no_delete;
            CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries WHEN 0 BEGIN SELECT 1; END;
            """)
        let report = try await verify()
        #expect(report.findings.map(\.message) == ["trigger audit_entries_no_delete differs from its definition (edited?)"])
    }

    @Test("a row with seq below 1 slipped in: unexpected-rows")
    func rowBelowOne() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        try sqlite3Must(db, """
            DROP TRIGGER audit_entries_next_seq_only;
            \(Self.copyRow(1, toSeq: 0))
            """)
        let report = try await verify()
        #expect(report.findings(.unexpectedRows).map(\.seqs) == [0...0])
    }

    @Test("the last row moved below seq 1 (found by the property test): its old seq is named")
    func lastRowMovedOut() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET seq = -5 WHERE seq = 10;")
        let report = try await verify()
        let rows = report.findings.filter { $0.seqs != nil }
        #expect(rows.map(\.kind) == [.unexpectedRows, .missingRows])
        #expect(rows.last?.seqs == 10...10)
        #expect(rows.last?.message == "the row of seq 10 was moved out of the log to seq -5 (the tail was cut)")
    }

    @Test("the last two rows moved below seq 1: one missing-rows range, as FORMAT.md section 11 step 5 says")
    func lastTwoRowsMovedOut() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        try sqlite3Must(db, """
            DROP TRIGGER audit_entries_no_update;
            UPDATE audit_entries SET seq = -5 WHERE seq = 10; UPDATE audit_entries SET seq = -6 WHERE seq = 9;
            """)
        let report = try await verify()
        let rows = report.findings.filter { $0.seqs != nil }
        #expect(rows.map(\.kind) == [.unexpectedRows, .missingRows])
        #expect(rows.last?.seqs == 9...10)
        #expect(rows.last?.message == "2 row(s) missing before seq 11 (removed)")
    }

    @Test("a column with an impossible value: malformed-row at that seq")
    func malformedRow() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET outcome = 256 WHERE seq = 2;")
        let report = try await verify()
        #expect(report.findings.filter { $0.seqs != nil }.map(\.kind) == [.malformedRow])
        #expect(report.findings(.malformedRow).first?.firstSeq == 2)
    }

    @Test("a tampered row is never returned by a query as if it were good")
    func queryRefusesTamperedRow() async throws {
        try await makeStore(at: db, keys: keys, count: 5)
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET action = 'noop' WHERE seq = 3;")
        let store = try await AuditStore.open(at: db, keys: keys)
        let firstTwo = try await store.entries(EntryQuery(limit: 2))
        #expect(firstTwo.map(\.seq) == [1, 2])
        do {
            _ = try await store.entries(EntryQuery(limit: 5))
            Issue.record("a tampered row was returned")
        } catch let error as AuditError {
            #expect(error.code == .integrityViolation)
            #expect(error.message.contains("entry 3 failed verification"))
        }
        try await store.close()
    }
}
