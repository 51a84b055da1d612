import AuditDBTestSupport
import CAuditCore
import Foundation
import Testing

@testable import AuditDB

/// Index b-trees edited by hand (raw bytes, or rebuilt without rows with the original schema text
/// put back) are found by verification as `index-mismatch`, naming the index; `repair-indexes`
/// rebuilds them.
@Suite("Index completeness")
struct IndexProofTests {
    let dir: TemporaryDirectory
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
        db = dir.path("store.db")
    }

    /// The byte range of an index's root page in the (checkpointed) main file.
    func rootPageRange(_ index: String) throws -> Range<Int> {
        try indexRootPage(index, in: db)
    }

    /// `rebuildIndex(_:in:as:)` on this test's store.
    func rebuildIndex(_ index: String, as definition: String) throws {
        try AuditDBTests.rebuildIndex(index, in: db, as: definition)
    }

    func verify() async throws -> IntegrityReport {
        try await AuditStore.verify(storeAt: db, keys: keys)
    }

    @Test("an untouched store proves every index, full and incremental")
    func intact() async throws {
        try await makeStore(at: db, keys: keys, count: 300)
        let store = try await AuditStore.open(at: db, keys: keys)
        let full = try await store.verify()
        #expect(full.isIntact)
        let head = try #require(full.verifiedHead)
        try await store.append(contentsOf: (301...340).map { sampleEvent($0) })
        let incremental = try await Verifier(pool: store.pool, keys: keys, expectedStoreID: nil).run(from: head)
        #expect(incremental.isIntact)
        #expect(incremental.rowsChecked == 40)
        try await store.close()
    }

    @Test("one byte of a value flipped inside the resource index page: index-mismatch, the query misses the row")
    func byteFlippedInIndex() async throws {
        try await makeStore(at: db, keys: keys, count: 20)
        let page = try rootPageRange("audit_entries_resource")
        let hits = try offsets(of: "doc-17", in: db).filter { page.contains($0) }
        #expect(hits.count == 1)
        try patchFile(db, at: hits[0] + 5, with: Array("6".utf8))  // doc-17 -> doc-16 in the index only, still in key order
        let store = try await AuditStore.open(at: db, keys: keys)
        let page17 = try await store.page(EntryQuery(limit: 10, resourceId: "doc-17"))
        #expect(page17.entries.isEmpty)  // the damage the proof exists for
        try await store.close()
        let report = try await verify()
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_resource does not hold exactly the entries of the log's rows (20 entries, as many as the rows imply, but some are altered)") == true)
    }

    @Test("the actor index rebuilt without a row, its CREATE INDEX text put back: index-mismatch naming it; repair-indexes fixes it")
    func indexRebuiltWithoutRows() async throws {
        try await makeStore(at: db, keys: keys, count: 30)
        try rebuildIndex("audit_entries_actor", as: "CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor, (seq >> 0), outcome, severity, action) WHERE actor IS NOT NULL AND seq <> 5")
        let report = try await verify()
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_actor does not hold exactly the entries of the log's rows (29 entries where the rows imply 30)") == true)

        let cli = try run(try cliPath(), ["repair-indexes", "--store", db],
                          environment: ["AUDITDB_KEYS": "1:" + KeyProofTests.hex(keys.signingKey)])
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect(cli.stdout.hasPrefix("indexes rebuilt; intact: 30 rows verified"))
        #expect(try await verify().isIntact)
    }

    @Test("an index entry planted above the last row (for a seq yet to come): index-mismatch; the Python verifier agrees")
    func entryAboveTheLastRow() async throws {
        try await makeStore(at: db, keys: keys, count: 30)
        // Row 31 with actor mallory goes in, the actor index is hidden from the schema while the
        // row is deleted again, then put back: its b-tree keeps the entry for rowid 31.
        try sqlite3Must(db, """
            CREATE TEMP TABLE t AS SELECT * FROM audit_entries WHERE seq = 30;
            UPDATE t SET seq = 31, actor = 'mallory';
            INSERT INTO audit_entries SELECT * FROM t;
            """)
        let index = try sqlite3Shell(db, "SELECT rootpage || '|' || sql FROM sqlite_schema WHERE name = 'audit_entries_actor';").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|", maxSplits: 1).map(String.init)
        try sqlite3Must(db, "PRAGMA writable_schema = ON; DELETE FROM sqlite_schema WHERE name = 'audit_entries_actor';")
        try sqlite3Tamper(db, "DELETE FROM audit_entries WHERE seq = 31;", around: "audit_entries_no_delete")
        try sqlite3Must(db, """
            PRAGMA writable_schema = ON;
            INSERT INTO sqlite_schema(type, name, tbl_name, rootpage, sql)
            VALUES ('index', 'audit_entries_actor', 'audit_entries', \(index[0]), '\(index[1].replacingOccurrences(of: "'", with: "''"))');
            """)
        let report = try await verify()
        #expect(findingNames(report) == ["index-mismatch -"], "\(report)")
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_actor holds 1 entry for seqs above the last row (seq 30), which no row implies") == true,
                "\(report.findings.first?.message ?? "")")
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        #expect(try pythonFindings(db, keyFile: keyFile) == ["index-mismatch -...-"])
    }

    @Test("the newest scan record hidden from the engine index: verify reports the index, and the scan history is refused, naming the record")
    func scanRecordHidden() async throws {
        try await makeStore(at: db, keys: keys, count: 5)
        let store = try await AuditStore.open(at: db, keys: keys)
        let scanner = IntegrityScanner(store: store, configuration: .init(interval: .seconds(300)))
        _ = try await scanner.scan(.full)
        _ = try await scanner.scan(.full)
        try await store.close()
        let newest = try sqlite3Shell(db, "SELECT max(seq) FROM audit_entries WHERE action = 'auditdb.scan';").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try rebuildIndex("audit_entries_engine", as: "CREATE INDEX audit_entries_engine ON audit_entries(action) WHERE action >= 'auditdb.' AND action < 'auditdb/' AND seq <> \(newest)")
        let report = try await verify()
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_engine does not hold exactly the entries of the log's rows (1 entries where the rows imply 2)") == true)
        // The status reads the rows after the newest record the index lists, and meets the hidden one.
        let older = try sqlite3Shell(db, "SELECT min(seq) FROM audit_entries WHERE action = 'auditdb.scan';").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let reopened = try await AuditStore.open(at: db, keys: keys)
        do {
            let status = try await reopened.recordedScanStatus()
            Issue.record("the scan history was believed: \(status)")
        } catch let error as AuditError {
            #expect(error.code == .integrityViolation)
            #expect(error.message == "scan record \(newest) is newer than the newest one the index audit_entries_engine lists (record seq \(older)): the index was edited to hide it, so the scan history is not believed. Run `auditdb verify` (it reports index-mismatch), then `auditdb repair-indexes` to rebuild the index")
        }
        try await reopened.close()
    }

    @Test("an appended row left out of the actor index is found by the incremental pass that covers it")
    func incrementalFindsAlteredEntry() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        let store = try await AuditStore.open(at: db, keys: keys)
        let head = try #require(try await store.verify().verifiedHead)
        try await store.append(contentsOf: (11...15).map { sampleEvent($0, actor: "zed") })
        try await store.close()
        try rebuildIndex("audit_entries_actor", as: "CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor, (seq >> 0), outcome, severity, action) WHERE actor IS NOT NULL AND seq <> 13")
        let reopened = try await AuditStore.open(at: db, keys: keys)
        let report = try await Verifier(pool: reopened.pool, keys: keys, expectedStoreID: nil).run(from: head)
        try await reopened.close()
        #expect(report.rowsChecked == 5)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_actor does not hold exactly the entries of the log's rows (4 entries where the rows imply 5)") == true)
    }

    @Test("SipHash (64- and 128-bit output) matches the reference test vectors")
    func siphashVector() {
        // Aumasson & Bernstein's reference vectors: key 00..0f, message 00..0e (15 bytes).
        let key = (0..<16).map { UInt8($0) }
        let message = (0..<15).map { UInt8($0) }
        var out = [UInt8](repeating: 0, count: 16)
        adb_siphash128(key, message, message.count, &out)
        #expect(ForeignRowTests.hex(out) == "5493e99933b0a8117e08ec0f97cfc3d9")
        adb_siphash128(key, [], 0, &out)
        #expect(ForeignRowTests.hex(out) == "a3817f04ba25a8e66df67214c7550293")
        // The 64-bit variant the digest uses: vectors 0 and 15 (little-endian output).
        #expect(adb_siphash64(key, [], 0, 2, 4) == 0x726fdb47dd0e0e31)
        #expect(adb_siphash64(key, message, message.count, 2, 4) == 0xa129ca6149be45e5)
        // The 1-3 variant the digest uses runs the same code with fewer rounds.
        #expect(adb_siphash64(key, message, message.count, 1, 3) != adb_siphash64(key, message, message.count, 2, 4))
    }

    @Test("The one-call entry hash equals streaming SipHash-1-3 at every tail length")
    func entryHashMatchesStreaming() {
        let key = (0..<16).map { UInt8(0xa0 &+ $0) }
        let bytes = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        var differing: [Int] = []
        for length in Array(0...40) + Array(250...300) {
            let message = Array(bytes.prefix(length))
            if adb_index_entry_hash(key, message, length) != adb_siphash64(key, message, length, 1, 3) { differing.append(length) }
        }
        #expect(differing.isEmpty, "lengths where the two disagree: \(differing)")
    }

    @Test("The table side's fast path gives the streaming builder's digest, long values and every index included")
    func fastTableSideMatchesStreaming() {
        let key = (0..<16).map { UInt8(0x5a ^ $0) }
        // Text lengths on both sides of the fast path's limit (227 bytes), and absent (NULL) fields.
        let lengths: [Int?] = [nil, 0, 1, 7, 8, 9, 200, 226, 227, 228, 1_000, 70_000]
        var mismatches: [String] = []
        for (i, length) in lengths.enumerated() {
            for action in ["auditdb.scan", "doc.read"] {
                let text = length.map { String(repeating: "é", count: $0 / 2) + String(repeating: "x", count: $0 % 2) }
                var fast = IndexProof.emptyDigest(key: key), streaming = IndexProof.emptyDigest(key: key)
                withBytes(text) { actor in
                    withBytes(length == nil ? nil : "tenant-\(i)") { tenant in
                        withBytes(action) { actionBytes in
                            withBytes(text.map { "/r/" + $0 }) { resource in
                                var row = adb_row()
                                row.seq = Int64(i) * 20_000 + 3
                                row.recorded_at = 1_700_000_000_000_000 + Int64(i)
                                row.actor = actor
                                row.tenant = tenant
                                row.action = actionBytes
                                row.resource_id = resource
                                row.has_origin_ref = Int32(i % 2)
                                row.origin_ref = Int64(i) * 7
                                adb_index_digest_add_parsed(&fast, &row)
                                adb_index_digest_add_parsed_streaming(&streaming, &row)
                            }
                        }
                    }
                }
                for index in 0..<Int32(ADB_INDEX_COUNT) where adb_index_digest_equal(&fast, &streaming, index) != 1 {
                    mismatches.append("length \(length.map(String.init) ?? "nil"), action \(action), index \(index)")
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    /// `body` with the UTF-8 bytes of `text` as an adb_bytes (len -1 for nil), valid during the call.
    private func withBytes(_ text: String?, _ body: (adb_bytes) -> Void) {
        guard let text else { return body(adb_bytes(ptr: nil, len: -1)) }
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBufferPointer { buffer in
            body(adb_bytes(ptr: UnsafePointer(buffer.baseAddress), len: Int64(buffer.count)))
        }
    }
}

/// Rebuilds `index` of the store at `path` from `definition` (e.g. one that leaves a row out) and
/// puts its original CREATE INDEX text back through writable_schema, so the schema compares
/// byte-identical.
func rebuildIndex(_ index: String, in path: String, as definition: String) throws {
    let original = try sqlite3Shell(path, "SELECT sql FROM sqlite_schema WHERE name = '\(index)';").stdout
        .trimmingCharacters(in: .whitespacesAndNewlines)
    try sqlite3Must(path, """
        DROP INDEX \(index);
        \(definition);
        PRAGMA writable_schema = ON;
        UPDATE sqlite_schema SET sql = '\(original.replacingOccurrences(of: "'", with: "''"))' WHERE name = '\(index)';
        """)
    #expect(try sqlite3Shell(path, "SELECT sql FROM sqlite_schema WHERE name = '\(index)';").stdout
        .trimmingCharacters(in: .whitespacesAndNewlines) == original)
}

/// The byte range of `index`'s root page in the (checkpointed) main file of the store at `path`.
func indexRootPage(_ index: String, in path: String) throws -> Range<Int> {
    let root = Int(try sqlite3Shell(path, "SELECT rootpage FROM sqlite_schema WHERE name = '\(index)';").stdout
        .trimmingCharacters(in: .whitespacesAndNewlines))!
    let pageSize = Int(try sqlite3Shell(path, "PRAGMA page_size;").stdout.trimmingCharacters(in: .whitespacesAndNewlines))!
    return ((root - 1) * pageSize)..<(root * pageSize)
}

/// A store at `path` of `rows` sample rows (of `actor`, if given) verified to its head, `added`
/// more appended, then `index` rebuilt as `definition` (its CREATE INDEX text put back): the
/// incremental pass over the added rows.
func incrementalPassAfterRebuild(at path: String, keys: KeyRing, rows: Int, added: Int, actor: String? = nil,
                                 index: String, as definition: String) async throws -> IntegrityReport {
    try await makeStore(at: path, keys: keys, count: rows, actor: actor.map { name in { _ in name } })
    let store = try await AuditStore.open(at: path, keys: keys)
    let head = try #require(try await store.verify().verifiedHead)
    try await store.append(contentsOf: (rows + 1...rows + added).map { sampleEvent($0, actor: actor) })
    try await store.close()
    try rebuildIndex(index, in: path, as: definition)
    let reopened = try await AuditStore.open(at: path, keys: keys)
    let report = try await Verifier(pool: reopened.pool, keys: keys, expectedStoreID: nil).run(from: head)
    try await reopened.close()
    return report
}

/// Entries an index's own condition excludes: an index rebuilt under a wider WHERE, its text put
/// back. The covering scan repeats the condition, which SQLite turns into a seek when it is on
/// the first key column, so it never reads them; the count of the b-tree's cells does
/// (FORMAT.md section 11, step 7).
@Suite("Index entries outside the index's condition")
struct IndexOutsideConditionTests {
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

    /// Each index whose condition is on its first key column, rebuilt to hold one more entry:
    /// seq 21 has no tenant (and, like every row here, no origin_ref), seq 3's action is "delete".
    static let widened: [(index: String, definition: String)] = [
        ("audit_entries_tenant_time", "CREATE INDEX audit_entries_tenant_time ON audit_entries(tenant, recorded_at) WHERE tenant IS NOT NULL OR seq = 21"),
        ("audit_entries_tenant_seq", "CREATE INDEX audit_entries_tenant_seq ON audit_entries(tenant, (seq >> 0), outcome, severity, action) WHERE tenant IS NOT NULL OR seq = 21"),
        ("audit_entries_origin_ref", "CREATE INDEX audit_entries_origin_ref ON audit_entries(origin_ref) WHERE origin_ref IS NOT NULL OR seq = 3"),
        ("audit_entries_engine", "CREATE INDEX audit_entries_engine ON audit_entries(action) WHERE action >= 'auditdb.' AND action < 'auditdb/' OR seq = 3"),
    ]

    @Test("an index rebuilt to hold one entry its condition excludes, its text put back: index-mismatch naming it and the count, as in Python; SQLite's quick_check sees nothing; repair-indexes restores it",
          arguments: widened.map(\.index))
    func widenedIndex(_ index: String) async throws {
        try await makeStore(at: db, keys: keys, count: 20)
        let store = try await AuditStore.open(at: db, keys: keys)
        var bare = sampleEvent(21)
        bare.tenant = nil
        try await store.append(bare)
        try await store.close()
        let definition = try #require(Self.widened.first { $0.index == index }?.definition)
        try rebuildIndex(index, in: db, as: definition)
        #expect(try sqlite3Shell(db, "PRAGMA quick_check;").stdout == "ok\n")

        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.indexMismatch], "\(report)")
        let message = try #require(report.findings.first?.message)
        #expect(message.hasPrefix("index \(index) holds 1 entry that its own condition (WHERE "), "\(message)")
        let verifier = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify.py").path
        let result = try run("/usr/bin/env", ["python3", verifier, "--store", db, "--key-file", keyPath, "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stderr)")
        let python = try #require(json["findings"] as? [[String: Any]]).map { "\($0["kind"] as? String ?? "?") \($0["message"] as? String ?? "?")" }
        #expect(python == ["index-mismatch \(message)"])

        let cli = try run(try cliPath(), ["repair-indexes", "--store", db], environment: ["AUDITDB_KEY_FILE": keyPath])
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect(try await AuditStore.verify(storeAt: db, keys: keys).isIntact)
    }
}
