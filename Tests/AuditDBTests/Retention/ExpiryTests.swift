import CAuditCore
import Foundation
import Testing

@testable import AuditDB

/// Expiry with proof (FORMAT.md section 20): every guarantee survives, and tampering with the
/// retention machinery is reported with its exact finding.
@Suite("Retention: expiry")
struct ExpiryTests {
    let dir: TempDir
    let keys: KeyRing
    let path: String

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        path = dir.path("store.db")
    }

    /// 30 sample rows (tenants tenant-0..2), applied two days later: tenant-0 kept for ever, the
    /// others after one day.
    static let policy: RetentionPolicy = {
        do { return try RetentionPolicy(parsingDefault: "1d", tenants: ["tenant-0": "forever"]) } catch { preconditionFailure("\(error)") }
    }()
    static var later: AuditTimestamp { AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 86_400_000_000) }

    func rows(of report: IntegrityReport) -> [String] { findingNames(report) }

    @Test("expiry removes exactly the rows the policy allows, and the store still verifies, queries, checkpoints and exports")
    func expireAndKeepEveryGuarantee() async throws {
        let signer = try testSigner()
        try await makeStore(at: path, keys: keys, count: 30)
        let store = try await AuditStore.open(at: path, keys: keys)
        let anchors = dir.path("anchors")
        try FileManager.default.createDirectory(atPath: anchors, withIntermediateDirectories: true)
        _ = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: anchors)])
        // A recorded scan pass before the expiry, so that an incremental pass after it starts
        // from a position whose row has expired since.
        let scanner = IntegrityScanner(store: store)
        #expect(try await scanner.scan(.full).isIntact)
        let dry = try await store.applyRetention(Self.policy, now: Self.later, dryRun: true)
        #expect(dry.expired == 20 && dry.expiryEntries.isEmpty)
        #expect(try await store.lastSeq() == 31)  // the 30 rows and the scan record

        let report = try await store.applyRetention(Self.policy, now: Self.later, batchSize: 8)
        // tenant-0 is i % 3 == 0: 10 rows kept; the other 20 expire (the newest row, 30, is tenant-0).
        // The 29 candidates go in batches of 8: four expiry entries.
        #expect(report.expired == 20)
        #expect(report.expiredByTenant == ["tenant-1": 10, "tenant-2": 10])
        #expect(report.expiryEntries == [32, 33, 34, 35])
        let remaining = try await allEntries(store)
        #expect(remaining.map(\.seq) == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31, 32, 33, 34, 35])
        #expect(remaining.allSatisfy { $0.isVerified })

        let verified = try await store.verify()
        #expect(verified.isIntact, "\(verified)")
        let scan = try await IntegrityScanner.scan(storeAt: path, keys: keys, mode: .full)
        #expect(scan.isIntact)
        let incremental = try await scanner.scan(.incremental)
        #expect(incremental.isIntact && incremental.mode == .incremental, "\(incremental.integrity)")
        // The checkpoint anchored before the expiry still verifies: its root is recomputed from
        // the tombstones' leaves.
        let anchored = try await store.verify(againstAnchors: [anchors], publicKeys: signer.publicKeys)
        #expect(anchored.isIntact, "\(anchored)")
        let next = try await store.checkpoint(signer: signer)
        #expect(next.seq == 36)
        let summary = try await store.export(to: dir.path("export"), signer: signer)
        #expect(summary.entryCount == 16)
        let bundle = try await ExportBundle.verify(at: dir.path("export"), publicKeys: signer.publicKeys)
        #expect(bundle.isValid && bundle.entriesVerified == 16, "\(bundle)")
        // Nothing more to expire.
        #expect(try await store.applyRetention(Self.policy, now: Self.later).expired == 0)
        try await store.close()
        // The values are gone from the file.
        let left = try sqlite3Shell(path, "SELECT count(*) FROM audit_entries WHERE seq <= 29 AND seq % 3 != 0;").stdout
        #expect(left.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    @Test("a legal hold keeps its rows whatever their age; released, they expire")
    func holdsKeepRows() async throws {
        try await makeStore(at: path, keys: keys, count: 30)
        let store = try await AuditStore.open(at: path, keys: keys)
        let hold = try await store.placeHold(.tenant("tenant-1"), reason: "case 1", placedBy: "legal")
        let first = try await store.applyRetention(Self.policy, now: Self.later)
        #expect(first.expired == 10 && first.held == 10)
        #expect(try await store.verify().isIntact)
        _ = try await store.releaseHold(id: hold.id, reason: "closed", releasedBy: "legal")
        let second = try await store.applyRetention(Self.policy, now: Self.later)
        #expect(second.expired == 10 && second.held == 0)
        let report = try await store.verify()
        #expect(report.isIntact, "\(report)")
        try await store.close()
    }

    /// A store whose rows 1...29 not of tenant-0 were expired by entries 31...
    func expired() async throws -> AuditStore {
        try await makeStore(at: path, keys: keys, count: 30)
        let store = try await AuditStore.open(at: path, keys: keys)
        _ = try await store.applyRetention(Self.policy, now: Self.later)  // one entry, seq 31
        return store
    }

    func tamper(_ sql: String) throws {
        try sqlite3Must(path, """
            DROP TRIGGER IF EXISTS audit_expired_no_update; DROP TRIGGER IF EXISTS audit_expired_no_delete;
            DROP TRIGGER IF EXISTS audit_entries_no_delete; DROP TRIGGER IF EXISTS audit_entries_no_update;
            \(sql)
            """)
    }

    func findings() async throws -> [String] {
        rows(of: try await AuditStore.verify(storeAt: path, keys: keys)).filter { !$0.hasPrefix("schema-tampered") }
    }

    @Test("rows removed any other way than expiry are still missing-rows")
    func deletedRowsStillMissing() async throws {
        try await expired().close()
        try tamper("DELETE FROM audit_entries WHERE seq = 6;")
        #expect(try await findings() == ["missing-rows 6...6"])
    }

    @Test("a tombstone deleted: missing-rows at its seq and expiry-tampered at its expiry entry")
    func tombstoneDeleted() async throws {
        try await expired().close()
        try tamper("DELETE FROM audit_expired WHERE seq = 5;")
        #expect(try await findings() == ["missing-rows 5...5", "expiry-tampered 31...31"])
    }

    @Test("a tombstone's MAC changed: chain-break, and expiry-tampered at its expiry entry")
    func tombstoneMacChanged() async throws {
        try await expired().close()
        try tamper("UPDATE audit_expired SET mac = randomblob(32) WHERE seq = 5;")
        #expect(try await findings() == ["chain-break 5...5", "expiry-tampered 31...31"])
    }

    @Test("a tombstone's recorded_at or tags changed: expiry-tampered at its expiry entry")
    func tombstoneValuesChanged() async throws {
        try await expired().close()
        try tamper("UPDATE audit_expired SET recorded_at = recorded_at + 1 WHERE seq = 7;")
        #expect(try await findings() == ["expiry-tampered 31...31"])
    }

    @Test("the expiry entry deleted: missing-rows at its seq, expiry-tampered at each tombstone")
    func expiryEntryDeleted() async throws {
        let store = try await expired()
        try await store.append(sampleEvent(99))  // so that the entry is not the tail
        try await store.close()
        try tamper("DELETE FROM audit_entries WHERE seq = 31;")
        let found = try await findings()
        #expect(found.first == "missing-rows 31...31" || found.contains("missing-rows 31...31"))
        #expect(found.filter { $0.hasPrefix("expiry-tampered") }.count == 20)
    }

    @Test("a tombstone moved to a signed expiry entry whose details do not parse: that entry counts as none, so the tombstone is expiry-tampered too; both verifiers agree")
    func tombstoneNamingAnUnreadableEntry() async throws {
        let keyPath = dir.path("k.keys")
        try KeyFile.write(keys, to: keyPath, replacing: false)
        let store = try await expired()
        let bogus = try await store.appendEngineEntry(AuditEvent(actor: "auditdb", action: ExpiryRecord.action, details: ["note": "not an expiry"]))
        try await store.close()
        #expect(bogus == 32)
        try tamper("UPDATE audit_expired SET expiry_seq = 32 WHERE seq = (SELECT min(seq) FROM audit_expired);")
        let first = try #require(Int64(try sqlite3Shell(path, "SELECT min(seq) FROM audit_expired;").stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(try await findings() == ["expiry-tampered \(first)...\(first)", "expiry-tampered 31...31", "expiry-tampered 32...32"])
        let python = try ExpiryAgreementTests.pythonFindings(path, keyPath).compactMap { f -> String? in
            guard let kind = f["kind"] as? String, kind != "schema-tampered" else { return nil }
            return "\(kind) \((f["first_seq"] as? NSNumber)?.int64Value ?? -1)...\((f["last_seq"] as? NSNumber)?.int64Value ?? -1)"
        }
        #expect(python == ["expiry-tampered \(first)...\(first)", "expiry-tampered 31...31", "expiry-tampered 32...32"])
    }

    @Test("audit_expired dropped: schema-tampered, and each expiry entry matches no tombstone; both verifiers agree")
    func tombstoneTableDropped() async throws {
        try await expired().close()
        try tamper("DROP TABLE audit_expired;")
        let found = try await findings()
        #expect(found.contains("expiry-tampered 31...31"), "\(found)")
    }

    @Test("a tombstone inserted beside a row still in the log: foreign-row at that seq only; the expiry entry it names still matches its own")
    func tombstoneBesideItsRow() async throws {
        try await expired().close()
        try tamper("INSERT INTO audit_expired SELECT 3, key_version, mac, leaf, recorded_at, tags, expiry_seq FROM audit_expired WHERE seq = 1;")
        #expect(try await findings() == ["foreign-row 3...3"])  // besides the triggers this tamper dropped
    }

    @Test("a foreign tombstone at a live row's seq keeps that row only; removed as docs/retention.md says, the row expires")
    func foreignTombstoneKeepsItsRow() async throws {
        try await makeStore(at: path, keys: keys, count: 30)
        // No trigger refuses an INSERT into audit_expired: any SQLite client can add one.
        try sqlite3Must(path, "INSERT INTO audit_expired VALUES (2, 1, randomblob(32), randomblob(32), 0, randomblob(80), 40);")
        #expect(try await findings() == ["foreign-row 2...2"])
        let store = try await AuditStore.open(at: path, keys: keys)
        let report = try await store.applyRetention(Self.policy, now: Self.later)
        #expect(report.expired == 19 && report.keptByForeignTombstones == [2])
        let dry = try await store.applyRetention(Self.policy, now: Self.later, dryRun: true)
        #expect(dry.expired == 0 && dry.keptByForeignTombstones == [2])
        #expect(try await store.entries(EntryQuery(afterSeq: 1, limit: 1)).map(\.seq) == [2])
        try await store.close()
        #expect(try await findings() == ["foreign-row 2...2"])
        // The removal docs/retention.md gives, verbatim.
        try sqlite3Must(path, """
            DROP TRIGGER audit_expired_no_delete; DELETE FROM audit_expired WHERE seq = 2;
            CREATE TRIGGER audit_expired_no_delete BEFORE DELETE ON audit_expired
            BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_expired is append-only: DELETE is not allowed'); END;
            """)
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).isIntact)
        let reopened = try await AuditStore.open(at: path, keys: keys)
        let again = try await reopened.applyRetention(Self.policy, now: Self.later)
        #expect(again.expired == 1 && again.keptByForeignTombstones.isEmpty)
        #expect(try await reopened.verify().isIntact)
        try await reopened.close()
    }

    @Test("an expired row put back from a backup: foreign-row at its tombstone, expiry-tampered at its expiry entry")
    func expiredRowPutBack() async throws {
        try await makeStore(at: path, keys: keys, count: 30)
        let backup = dir.path("backup.db")
        try sqlite3Must(path, "VACUUM INTO '\(backup)';")
        let store = try await AuditStore.open(at: path, keys: keys)
        _ = try await store.applyRetention(Self.policy, now: Self.later)  // seq 1 (tenant-1) expires; entry 31
        try await store.close()
        try tamper("DROP TRIGGER audit_entries_next_seq_only; ATTACH '\(backup)' AS old; INSERT INTO audit_entries SELECT * FROM old.audit_entries WHERE seq = 1;")
        #expect(try await findings() == ["foreign-row 1...1", "expiry-tampered 31...31"])
    }

    @Test("the tail cut back below expired rows: their signed tombstones above the last row give truncated, in Python too")
    func tailCutBelowTombstones() async throws {
        try await expired().close()  // rows 1...30, tenant-1 and -2 expired (20 tombstones), expiry entry 31
        // Rows 28...31 cut: the tombstones of 28 and 29 now stand above the last row, 27.
        try tamper("DELETE FROM audit_entries WHERE seq >= 28;")
        let found = try await findings()
        #expect(found.contains("truncated 28...29"), "\(found)")
        #expect(!found.contains { $0.hasPrefix("foreign-row") }, "\(found)")
    }

    @Test("one foreign tombstone above the last row, then appends and a checkpoint over it: foreign-row only; the log verifies against the checkpoint")
    func foreignTombstoneAboveTheLog() async throws {
        try await makeStore(at: path, keys: keys, count: 10)
        // Any SQLite client, no key: a plain INSERT at the next seq (no trigger stops it).
        try sqlite3Must(path, "INSERT INTO audit_expired VALUES (11, 1, zeroblob(32), zeroblob(32), 0, zeroblob(80), 1);")
        #expect(try await findings() == ["foreign-row 11...11"])
        let foreign = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(foreign.findings.first?.message.hasPrefix("audit_expired row at seq 11 is not a tombstone of the log: the log ends at seq 10") == true)
        #expect(foreign.isLogIntact)

        let store = try await AuditStore.open(at: path, keys: keys)
        try await store.append(sampleEvent(11))  // the app goes on: row 11 beside the foreign row
        let signer = try testSigner()
        let anchors = dir.path("anchors")
        try FileManager.default.createDirectory(atPath: anchors, withIntermediateDirectories: true)
        let checkpoint = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: anchors)])
        #expect(checkpoint.seq == 11)
        let anchored = try await store.verify(againstAnchors: [anchors], publicKeys: signer.publicKeys)
        try await store.close()
        #expect(findingNames(anchored) == ["foreign-row 11...11"], "\(anchored)")
        let beside = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(findingNames(beside) == ["foreign-row 11...11"], "\(beside)")
        #expect(beside.findings.first?.message.hasPrefix("audit_expired row at seq 11 is not a tombstone of the log: the log has a row at that seq") == true)
        #expect(beside.isLogIntact)
    }

    @Test("a key holder's expiry of rows younger than its own policy: retention-violation at each")
    func expiryBeforeItsTime() async throws {
        try await makeStore(at: path, keys: keys, count: 6)
        let store = try await AuditStore.open(at: path, keys: keys)
        let strict = try RetentionPolicy(parsingDefault: "30d")
        let (storeID, keys, later) = (store.storeID, self.keys, Self.later)
        _ = try await store.holdTransaction("test") { db, _, append in
            // Rows 2 and 4 (tenant-2, tenant-1) pass the applied policy; the stated one keeps them 30 days.
            try AuditStore.expire([2, 4], db, policy: Self.policy, now: later, storeID: storeID, keys: keys, erasures: ErasureClaimsCache(), write: true,
                                  stated: strict, append: append)
        }
        try await store.close()
        let found = try await findings()
        #expect(found == ["retention-violation 2...2", "retention-violation 4...4"], "\(found)")
    }

    @Test("a key holder's expiry of a held row: retention-violation naming the hold")
    func expiryOfAHeldRow() async throws {
        try await makeStore(at: path, keys: keys, count: 6)
        let store = try await AuditStore.open(at: path, keys: keys)
        let hold = try await store.placeHold(.resource(type: nil, id: "doc-2"), reason: "subpoena", placedBy: "legal")
        let (storeID, keys, later) = (store.storeID, self.keys, Self.later)
        _ = try await store.holdTransaction("test") { db, _, append in
            try AuditStore.expire([2, 4], db, policy: Self.policy, now: later, storeID: storeID, keys: keys, erasures: ErasureClaimsCache(), write: true,
                                  ignoringHolds: true, append: append)
        }
        try await store.close()
        let report = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(rows(of: report) == ["retention-violation 2...2"])
        #expect(report.findings.first?.message.contains("legal hold \(hold.id)") == true)
    }
}

/// The independent Python verifier (docs/verifier/, written from FORMAT.md alone) agrees with the
/// engine on a store with expired rows and a legal hold, intact and damaged.
@Suite("Retention: the Python verifier agrees")
struct ExpiryAgreementTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let sql: String?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "intact", sql: nil),
        Case(name: "a tombstone deleted", sql: "DROP TRIGGER audit_expired_no_delete; DELETE FROM audit_expired WHERE seq = 5;"),
        Case(name: "a tombstone's MAC changed", sql: "DROP TRIGGER audit_expired_no_update; UPDATE audit_expired SET mac = randomblob(32) WHERE seq = 8;"),
        Case(name: "a tombstone's tags changed", sql: "DROP TRIGGER audit_expired_no_update; UPDATE audit_expired SET tags = randomblob(80) WHERE seq = 8;"),
        Case(name: "the expiry entry deleted", sql: "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq = (SELECT min(expiry_seq) FROM audit_expired);"),
        Case(name: "a row deleted", sql: "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq = 6;"),
        Case(name: "the tail cut back below expired rows", sql: "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq > (SELECT max(seq) FROM audit_expired WHERE seq <= 20) - 2;"),
        Case(name: "a foreign tombstone above the last row", sql: "INSERT INTO audit_expired VALUES ((SELECT max(seq) FROM audit_entries) + 1, 1, zeroblob(32), zeroblob(32), 0, zeroblob(80), 1);"),
        Case(name: "a tombstone inserted beside a row", sql: "INSERT INTO audit_expired SELECT 3, key_version, mac, leaf, recorded_at, tags, expiry_seq FROM audit_expired WHERE seq = (SELECT min(seq) FROM audit_expired);"),
        // Each fails its own MAC, so a sequential pass does not check the next link against it:
        // the expiry entries after them still count (no expiry-tampered at their tombstones).
        Case(name: "the row before each expiry entry changed",
             sql: "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET mac = zeroblob(32) WHERE seq IN (SELECT expiry_seq - 1 FROM audit_expired);"),
        Case(name: "the tombstone table dropped", sql: "DROP TABLE audit_expired;"),
        Case(name: "an expired row put back", sql: "DROP TRIGGER audit_entries_next_seq_only; INSERT INTO audit_entries SELECT 5, recorded_at, occurred_at, tenant, actor, action, resource_type, resource_id, outcome, severity, correlation_id, source, details, origin, origin_ref, format_version, key_version, mac, seals FROM audit_entries WHERE seq = 6;"),
    ]

    @Test("tenants that are only canonically equivalent ('café' composed, decomposed) have limits of their own; both verifiers agree")
    func canonicallyEquivalentTenants() async throws {
        let dir = try TempDir()
        let keyPath = dir.path("k.keys")
        let keys = try KeyFile.generate(at: keyPath)
        let path = dir.path("s.db")
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: [
            AuditEvent(actor: "u1", action: "a", tenant: composed), AuditEvent(actor: "u2", action: "a", tenant: decomposed),
            AuditEvent(actor: "u3", action: "a", tenant: composed), AuditEvent(actor: "u4", action: "a"),
        ])
        // Given apart, they stay apart; the same bytes twice are refused.
        let policy = try RetentionPolicy(parsingDefault: "forever", tenantTexts: [(composed, "1d"), (decomposed, "forever")])
        #expect(policy.tenantOverrides.count == 2)
        #expect(policy.limit(forTenant: decomposed) == .forever && policy.limit(forTenant: composed) != .forever)
        #expect(throws: AuditError.self) { try RetentionPolicy(parsingDefault: "forever", tenantTexts: [(composed, "1d"), (composed, "2d")]) }
        // Only the composed spelling's rows expire, under either policy (the other spelling named or not).
        let onlyComposed = try RetentionPolicy(parsingDefault: "forever", tenantTexts: [(composed, "1d")])
        #expect(onlyComposed.limit(forTenant: decomposed) == .forever)
        let report = try await store.applyRetention(onlyComposed, now: ExpiryTests.later)
        #expect(report.expired == 2)
        #expect(report.expiredPerTenant.map(\.tenant).map { Array($0.utf8) } == [Array(composed.utf8)])
        #expect(try await store.entries(EntryQuery(limit: 10)).map(\.seq) == [2, 4, 5])
        let both = try await store.applyRetention(policy, now: ExpiryTests.later)
        #expect(both.expired == 0)
        // The expiry entry names the tenant in its own bytes, and reads back as the same policy.
        let record = try ExpiryRecord(try #require(try await store.entries(EntryQuery(limit: 1, action: ExpiryRecord.action)).first))
        #expect(record.policy == onlyComposed)
        // One entry naming both spellings, each with a limit of its own: only the decomposed
        // tenant's row is left to expire, under its own override.
        let apart = try RetentionPolicy(parsingDefault: "forever", tenantTexts: [(decomposed, "2h"), (composed, "1d")])
        let last = try await store.applyRetention(apart, now: ExpiryTests.later)
        #expect(last.expired == 1 && last.expiredPerTenant.map { Array($0.tenant.utf8) } == [Array(decomposed.utf8)])
        #expect(try await store.entries(EntryQuery(limit: 10)).map(\.seq).prefix(2) == [4, 5])
        let entry = try #require(try await store.entries(EntryQuery(limit: 1, descending: true, action: ExpiryRecord.action)).first)
        let written = try ExpiryRecord(entry)
        #expect(written.policy == apart && written.policy.tenantOverrides.count == 2)
        #expect(written.policy.limit(forTenant: decomposed) != written.policy.limit(forTenant: composed))
        try await store.close()
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).isIntact)
        #expect(try Self.pythonFindings(path, keyPath).isEmpty)
    }

    /// The findings of the Python verifier (docs/verifier) on the store at `path`.
    static func pythonFindings(_ path: String, _ keyPath: String) throws -> [[String: Any]] {
        let verifier = root.appendingPathComponent("docs/verifier/auditdb_verify.py").path
        let theirs = try run("/usr/bin/env", ["python3", verifier, "--store", path, "--key-file", keyPath, "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(theirs.stdout.utf8)) as? [String: Any], "\(theirs.stderr)")
        return try #require(json["findings"] as? [[String: Any]], "\(theirs.stdout)")
    }

    @Test("the same findings (kind and seqs) from both verifiers", arguments: cases)
    func agree(_ c: Case) async throws {
        let dir = try TempDir()
        let keyPath = dir.path("k.keys")
        let keys = try KeyFile.generate(at: keyPath)
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...40).map { sampleEvent($0) })
        _ = try await store.placeHold(.resource(type: nil, id: "doc-11"), reason: "case", placedBy: "legal")
        try await store.append(contentsOf: (41...45).map { sampleEvent($0) })
        // Archived first: the expiry entries carry the optional `archive` member, and the store holds
        // the checkpoints the bundles were proven against.
        let archive = RetentionArchive(directory: dir.path("archive"), signer: try testSigner())
        let report = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, batchSize: 10, archive: archive)
        #expect(report.expired > 0 && report.held == 1 && !report.archives.isEmpty)
        try await store.append(sampleEvent(46))
        try await store.close()
        if let sql = c.sql { try sqlite3Must(path, sql) }
        let ours = try await AuditStore.verify(storeAt: path, keys: keys)
        let findings = try Self.pythonFindings(path, keyPath)
        func describe(_ kind: String, _ first: Int64?, _ last: Int64?) -> String { "\(kind) \(first.map(String.init) ?? "-")...\(last.map(String.init) ?? "-")" }
        let python = findings.map { f in
            describe(f["kind"] as? String ?? "?", (f["first_seq"] as? NSNumber)?.int64Value, (f["last_seq"] as? NSNumber)?.int64Value)
        }.sorted()
        let swift = ours.findings.map { describe($0.kind.name, $0.seqs?.lowerBound, $0.seqs?.upperBound) }.sorted()
        #expect(python == swift, "python: \(python)\nswift: \(swift)")
        #expect(ours.isIntact == (c.sql == nil))
    }
}

/// The worked values of FORMAT.md section 20.2, computed here by the engine (the Python verifier
/// computed them from the text).
@Suite("Retention: match tag vectors")
struct MatchTagVectorTests {
    @Test("TAG(1, opt_str(tenant)) under test key 1 and store id a0...af")
    func tags() throws {
        let text = """
            auditdb-keys v1
            key 1 active 2026-11-23T13:15:00.000000Z 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f

            """
        let ring = try Array(text.utf8).withUnsafeBytes { try KeyText.parse($0, origin: "vectors") }
        let key = try #require(ring.key(version: 1))
        let store = try #require(StoreID(hex: "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"))
        #expect(Hex.encode(Tombstone.tag(.tenant, Tombstone.optString("acme-eu"), key: key, storeID: store)) == "1e8fe5b3fa8e9e78b6886db876cf626c")
        #expect(Hex.encode(Tombstone.tag(.tenant, Tombstone.optString("bank"), key: key, storeID: store)) == "175b5a567d4bad620e6d0d8ff4677057")
    }
}

/// Archive first, then expire (#15 item 3): every batch's rows are in a verified, signed bundle
/// before they go, and the expiry entry names it.
@Suite("Retention: archives")
struct ExpiryArchiveTests {
    let dir: TempDir
    let keys: KeyRing
    let signer: CheckpointSigner

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        signer = try testSigner()
    }

    /// A store of `rows` sample rows, open, and an archive in the test's directory.
    func storeAndArchive(rows: Int) async throws -> (AuditStore, RetentionArchive) {
        let path = dir.path("s.db")
        try await makeStore(at: path, keys: keys, count: rows)
        return (try await AuditStore.open(at: path, keys: keys), RetentionArchive(directory: dir.path("archive"), signer: signer))
    }

    @Test("retain --archive: a missing directory (an unmounted volume) or a file is refused before anything expires; the library creates a missing one only when told to")
    func archiveDirectoryChecked() async throws {
        let (store, _) = try await storeAndArchive(rows: 30)
        let missing = dir.path("mnt/archive")
        for createsDirectory in [false, true] {
            let archive = RetentionArchive(directory: missing, signer: signer, createsDirectory: createsDirectory)
            if createsDirectory {
                let report = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, archive: archive)
                #expect(report.expired == 20 && report.archives.count == 1)
                #expect(try FileManager.default.attributesOfItem(atPath: missing)[.posixPermissions] as? Int == 0o700)
            } else {
                let error = await #expect(throws: AuditError.self) {
                    try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, archive: archive)
                }
                #expect(error?.code == .invalidInput)
                #expect(error?.message == "the archive directory \(missing) does not exist (an unmounted volume?); rows are archived there before they expire, so none expires while it is missing. Mount it, or create it (mkdir -p -m 700 '\(missing)')")
                // A dry run fails the same way: it is the check an operator runs first.
                await #expect(throws: AuditError.self) {
                    try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, dryRun: true, archive: archive)
                }
                #expect(!FileManager.default.fileExists(atPath: dir.path("mnt")))
                #expect(try await store.entries(EntryQuery(limit: 100)).count == 30)
            }
        }
        try await store.close()
        // The CLI never creates it; a file is refused too.
        let keyFile = dir.path("k.keys"), signingKey = dir.path("c.key"), file = dir.path("file")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        try signer.write(to: signingKey, replacing: false)
        try Data().write(to: URL(fileURLWithPath: file))
        for (target, message) in [
            (dir.path("gone/archive"), "the archive directory \(dir.path("gone/archive")) does not exist (an unmounted volume?); rows are archived there before they expire, so none expires while it is missing. Mount it, or create it (mkdir -p -m 700 '\(dir.path("gone/archive"))')"),
            (file, "the archive directory \(file) is not a directory; rows are archived there before they expire, so none expires. Give a directory for the archive bundles"),
        ] {
            let retain = try run(try cliPath(), ["retain", "--older-than", "1d", "--archive", target, "--signing-key", signingKey,
                                                 "--store", dir.path("s.db"), "--key-file", keyFile], environment: environmentWithoutAuditDBOptions())
            #expect(retain.status == 2 && retain.stderr == "auditdb: error: \(message)\n", "\(retain.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path("gone")))
    }

    @Test("each batch is exported, verified and named by its expiry entry before its rows expire")
    func archiveFirst() async throws {
        let (store, archive) = try await storeAndArchive(rows: 30)
        let report = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, batchSize: 15, archive: archive)
        #expect(report.expired == 20)
        #expect(report.archives.count == report.expiryEntries.count && report.archives.count == 2)
        let entries = try await store.entries(EntryQuery(limit: 100, action: ExpiryRecord.action))
        for (bundle, entry) in zip(report.archives, entries) {
            let verification = try await ExportBundle.verify(at: bundle, publicKeys: signer.publicKeys, requireStatement: true)
            #expect(verification.isCompletenessAttested, "\(verification)")
            let record = try ExpiryRecord(entry)
            let manifest = Array(try Data(contentsOf: URL(fileURLWithPath: bundle + "/manifest.json")))
            var digest = [UInt8](repeating: 0, count: 32)
            adb_sha256(manifest, manifest.count, &digest)
            #expect(record.archive == ExpiryRecord.Archive(bundle: URL(fileURLWithPath: bundle).lastPathComponent, manifest: digest))
            // The bundle holds every row of the batch's range, the expired ones included.
            #expect(verification.entriesVerified == Int(record.last - record.first + 1))
        }
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("a run interrupted after its bundle was written uses that bundle when run again")
    func resumeWithBundle() async throws {
        let (store, archive) = try await storeAndArchive(rows: 10)
        // What the interrupted run left: the bundle of the first batch, nothing expired.
        let plan = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, dryRun: true)
        #expect(plan.expired == 6)
        _ = try await store.archiveRows(1...8, expiring: [], to: archive)
        #expect(try await store.lastSeq() == 10)
        let report = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, archive: archive)
        #expect(report.expired == 6 && report.archives == [dir.path("archive") + "/expiry-1-8"])
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    /// Applies the policy with `archive` and checks that it is refused with exactly `why` about
    /// the bundle at expiry-1-`last`, and that nothing expired.
    func refusesBundle(_ store: AuditStore, _ archive: RetentionArchive, last: Int64 = 8, _ why: String) async throws {
        let bundle = dir.path("archive") + "/expiry-1-\(last)"
        let before = try await store.lastSeq()
        await #expect {
            _ = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, archive: archive)
        } throws: { error in
            let error = error as? AuditError
            return error?.code == .integrityViolation && error?.message == "the archive bundle \(bundle) is not this batch's archive: \(why); "
                + "nothing of this batch was expired. Move it away (or archive to another directory) and run again"
        }
        #expect(try await store.entries(EntryQuery(limit: 100)).map(\.seq) == Array(1...before))
        #expect(try await store.verify().isIntact)
    }

    @Test("another store's bundle at the batch's name (a shared archive directory) is refused and left as it is, also after an erasure here",
          arguments: [false, true])
    func anotherStoresBundle(_ erasedHere: Bool) async throws {
        let (store, archive) = try await storeAndArchive(rows: 10)
        let otherPath = dir.path("other.db")
        let otherID = try await makeStore(at: otherPath, keys: keys, count: 12)
        let other = try await AuditStore.open(at: otherPath, keys: keys)
        // The erasure entry (seq 11) makes row 10 the batch's last: its bundle is expiry-1-10.
        let last: Int64 = erasedHere ? 10 : 8
        _ = try await other.archiveRows(1...last, expiring: [], to: archive)
        try await other.close()
        let bundle = dir.path("archive") + "/expiry-1-\(last)"
        let before = try String(contentsOfFile: bundle + "/manifest.json", encoding: .utf8)
        // An erasure here, after that bundle's checkpoint: the bundle must not be taken for this
        // store's stale archive and removed.
        if erasedHere { _ = try await store.erase(.seqs([9]), fields: [.actor], reason: "GDPR-1") }
        try await refusesBundle(store, archive, last: last,
                                "it holds rows of store \(otherID.hex), not of this store \(store.storeID.hex)")
        #expect(try String(contentsOfFile: bundle + "/manifest.json", encoding: .utf8) == before)
        try await store.close()
    }

    @Test("a bundle from a copy of this store that grew apart (same store id, other rows) is not taken as its archive")
    func forkedCopysBundle() async throws {
        let path = dir.path("s.db"), forkPath = dir.path("fork.db")
        let created = try await AuditStore.create(at: path, keys: keys)
        try await created.close()
        try FileManager.default.copyItem(atPath: path, toPath: forkPath)
        let store = try await AuditStore.open(at: path, keys: keys)
        try await store.append(contentsOf: (1...10).map { sampleEvent($0) })
        let fork = try await AuditStore.open(at: forkPath, keys: keys)
        try await fork.append(contentsOf: (1...10).map { sampleEvent($0, actor: "fake-\($0)") })
        #expect(fork.storeID == store.storeID)
        let archive = RetentionArchive(directory: dir.path("archive"), signer: signer)
        _ = try await fork.archiveRows(1...8, expiring: [], to: archive)
        try await fork.close()
        try await refusesBundle(store, archive, "its checkpoint (seq 10) is not of this store's log (another copy of the store, grown apart from this one)")
        try await store.close()
    }

    @Test("an export of the batch's seqs with another condition or withheld fields is not taken as its archive",
          arguments: ["tenant", "redact"])
    func narrowerBundle(_ kind: String) async throws {
        let (store, archive) = try await storeAndArchive(rows: 10)
        _ = try await store.checkpoint(signer: signer)
        // The export records an access entry (seq 11), so the batch is 1...10.
        let bundle = dir.path("archive") + "/expiry-1-10"
        try FileManager.default.createDirectory(atPath: dir.path("archive"), withIntermediateDirectories: true)
        if kind == "tenant" {
            _ = try await store.export(to: bundle, filter: ExportFilter(tenant: "tenant-1", seqs: 1...10), signer: signer)
            try await refusesBundle(store, archive, last: 10, "its filter has a `tenant` condition besides the seq range")
        } else {
            _ = try await store.export(to: bundle, filter: ExportFilter(seqs: 1...10), redact: [.actor, .details], signer: signer)
            try await refusesBundle(store, archive, last: 10, "it withholds fields (actor, details)")
        }
        try await store.close()
    }

    @Test("a bundle an interrupted run wrote before an erasure is not reused: exported again, it holds no erased value")
    func bundleBeforeAnErasure() async throws {
        let (store, archive) = try await storeAndArchive(rows: 10)
        // The interrupted run's first batch (seqs 1...4, candidates 1, 2 and 4): its bundle shows
        // row 2's actor, user-2; then that actor is erased.
        let bundle = dir.path("archive") + "/expiry-1-4"
        _ = try await store.archiveRows(1...4, expiring: [], to: archive)
        func holdsUser2() throws -> Bool { try String(contentsOfFile: bundle + "/entries.jsonl", encoding: .utf8).contains("user-2") }
        #expect(try holdsUser2())
        let erasure = try await store.erase(.seqs([2]), fields: [.actor], reason: "GDPR-9")
        #expect(erasure.erased == [2])
        let report = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, batchSize: 4, archive: archive)
        #expect(report.archives.first == bundle)
        #expect(try !holdsUser2())
        let verification = try await ExportBundle.verify(at: bundle, publicKeys: signer.publicKeys, requireStatement: true)
        #expect(verification.isCompletenessAttested, "\(verification)")
        // Proven against a checkpoint that covers the erasure entry (else it would look stale again).
        #expect((verification.checkpoint?.seq ?? 0) >= erasure.erasureEntries[0])
        #expect(try await store.verify().isIntact)
        try await store.close()
    }
}
