import CAuditCore
import Foundation
import GRDB
import GRDBSQLite
import Testing

@testable import AuditDB

/// Erasure (FORMAT.md section 21): the values really leave the file and cannot be confirmed even
/// with every key, while every proof still verifies; tampering with erased rows is reported with
/// its exact finding.
@Suite("Erasure")
struct ErasureTests {
    let dir: TempDir
    let keys: KeyRing
    let path: String
    static let alice = "alice.liddell@example.org"
    static let aliceSource = "203.0.113.77"
    static let aliceDetails = #"{"email":"alice.liddell@example.org","plan":"gold"}"#

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        path = dir.path("store.db")
    }

    /// 20 rows; rows 3, 8, 13 and 18 are alice's (her actor, address and e-mail in the details).
    func makeAliceStore() async throws -> AuditStore {
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...20).map { i in
            i % 5 == 3
                ? AuditEvent(actor: Self.alice, action: "read", resourceType: "document", resourceId: "doc-\(i)", tenant: "acme",
                             source: Self.aliceSource, details: AuditDetails(json: Self.aliceDetails))
                : sampleEvent(i)
        })
        return store
    }

    func findings(_ report: IntegrityReport) -> [String] {
        findingNames(report)
    }

    /// Every byte of the store file, its -wal and -shm.
    func fileBytes() throws -> Data {
        try storeFileBytes(path)
    }

    @Test("erase --seqs names every seq not in the log at once, expired or never written, and erases nothing")
    func seqsNotInTheLog() async throws {
        try await makeStore(at: path, keys: keys, count: 30)
        let store = try await AuditStore.open(at: path, keys: keys)
        let expired = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later)
        #expect(expired.expired == 20)
        let gone = try #require(try await store.entries(EntryQuery(limit: 100)).first).seq - 1  // the last expired seq before the first row left
        #expect(gone >= 1)
        let error = await #expect(throws: AuditError.self) {
            // The expiry entry (31, AuditDB's own) is named too: the seqs not in the log come first.
            try await store.erase(.seqs([gone, 31, 3_000, 4_000]), fields: [.source], reason: "ticket-7")
        }
        #expect(error?.code == .invalidInput)
        #expect(error?.message == "seqs \(gone), 3000, 4000 are not in the log (expired: their values left with the row; or never written); nothing was erased. Leave them out of the seqs and run the erasure again")
        #expect(try await store.entries(EntryQuery(limit: 100, action: "auditdb.erasure")).isEmpty)
        try await store.close()
    }

    @Test("erase: MACs, chain, scan, anchored checkpoints and pre-erasure export proofs still verify; reads show the fields erased")
    func eraseKeepsEveryProof() async throws {
        let signer = try testSigner()
        let store = try await makeAliceStore()
        let anchors = dir.path("anchors")
        try FileManager.default.createDirectory(atPath: anchors, withIntermediateDirectories: true)
        let before = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: anchors)])
        _ = try await store.export(to: dir.path("before"), signer: signer)

        let report = try await store.erase(.actor(Self.alice), fields: [.actor, .source, .details], reason: "TICKET-1")
        #expect(report.erased == [3, 8, 13, 18])
        #expect(report.erasureEntries == [22])  // seq 21: the export's access entry (FORMAT.md 23.4)
        #expect(report.scrubbed)

        let verified = try await store.verify()
        #expect(verified.isIntact, "\(verified)")
        #expect(try await IntegrityScanner.scan(storeAt: path, keys: keys, mode: .full).isIntact)
        let anchored = try await store.verify(againstAnchors: [anchors], publicKeys: signer.publicKeys)
        #expect(anchored.isIntact, "\(anchored)")
        // The export made before still verifies against its checkpoint, and a new checkpoint has
        // the same root over the rows the old one covered (the leaves did not change).
        let old = try await ExportBundle.verify(at: dir.path("before"), publicKeys: signer.publicKeys, requireStatement: true)
        #expect(old.isValid && old.entriesVerified == 20, "\(old)")
        let after = try await store.checkpoint(signer: signer)
        #expect(after.seq == 22)
        var frontier = MerkleTree.Frontier()
        for leaf in try await leaves(store, upTo: before.seq) { frontier.append(leaf: leaf) }
        #expect(frontier.root == before.merkleRoot)

        // Reads: erased, not null and not empty; filters no longer match the value.
        let entries = try await allEntries(store)
        let erased = entries.filter { [3, 8, 13, 18].contains($0.seq) }
        #expect(erased.allSatisfy { $0.erasedFields == [.actor, .source, .details] && $0.actor == nil && $0.source == nil && $0.detailsJSON == nil })
        #expect(entries.filter { !$0.erasedFields.isEmpty }.count == 4)
        #expect(try await store.entries(EntryQuery(actor: Self.alice)).isEmpty)
        #expect(try await store.entries(EntryQuery(tenant: "acme")).count == 4)

        // The erasure entry names the seqs, the fields and the reason, never a value.
        let entry = try #require(entries.last)
        #expect(entry.action == "auditdb.erasure")
        #expect(entry.detailsJSON == #"{"fields":["actor","source","details"],"reason":"TICKET-1","seqs":[3,8,13,18],"subject":"actor"}"#)

        // An export after the erasure shows the fields as erased and verifies with the public key alone.
        _ = try await store.export(to: dir.path("after"), signer: signer)
        let bundle = try await ExportBundle.verify(at: dir.path("after"), publicKeys: signer.publicKeys, requireStatement: true)
        #expect(bundle.isValid && bundle.entriesVerified == 22, "\(bundle)")
        let lines = try String(contentsOfFile: dir.path("after") + "/entries.jsonl", encoding: .utf8)
        #expect(lines.contains(#",{"erased":""#))  // the actor element of a v2 entry (FORMAT.md 17.5)
        #expect(!lines.contains(Self.alice))

        // Erasing again finds nothing left to erase.
        let again = try await store.erase(.actor(Self.alice), fields: [.actor], reason: "TICKET-1")
        #expect(again.erased.isEmpty && again.erasureEntries.isEmpty)
        try await store.close()
    }

    @Test("a reader holding an old snapshot: the erasure's WAL scrub waits for it without holding off writers, so an append made meanwhile on a handle that waits less than the scrub commits; scrubbed is false")
    func scrubLeavesTheWriterFree() async throws {
        var configuration = AuditStore.Configuration()
        configuration.busyTimeout = .seconds(2)  // how long the scrub keeps trying
        let created = try await makeAliceStore()
        try await created.close()
        let store = try await AuditStore.open(at: path, keys: keys, configuration: configuration)
        // Appends go through a second handle that waits at most 0.5 s for the write lock: a scrub
        // that held it through its whole wait (2 s) would make them fail with busy.
        configuration.busyTimeout = .milliseconds(500)
        let writer = try await AuditStore.open(at: path, keys: keys, configuration: configuration)
        // Another connection reads, and keeps its snapshot, until the end of the test.
        var reader: OpaquePointer?
        #expect(sqlite3_open(path, &reader) == SQLITE_OK)
        defer { sqlite3_close(reader) }
        #expect(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM audit_entries", nil, nil, nil) == SQLITE_OK)
        async let erasure = store.erase(.actor(Self.alice), fields: [.actor], reason: "TICKET-9")
        // Once the erasure's entry is committed (seq 21), the scrub is under way: append then.
        while try await writer.lastSeq() < 21 { try await Task.sleep(for: .milliseconds(5)) }
        // Before the scrub waited 25 ms at a time, these failed with busy.
        let seqs = try await (writer.append(sampleEvent(98)), writer.append(sampleEvent(99)))
        let report = try await erasure
        #expect([seqs.0, seqs.1].sorted() == [22, 23] && report.erasureEntries == [21])
        #expect(!report.scrubbed, "the reader's snapshot predates the erasure")
        #expect(sqlite3_exec(reader, "COMMIT", nil, nil, nil) == SQLITE_OK)
        #expect(try await store.scrubWriteAheadLog(), "with the reader gone the scrub completes")
        try await writer.close()
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("an erasure whose scrub a reader held off: running it again, though its actor now matches no row, empties the log and the values leave the file")
    func rerunScrubs() async throws {
        var configuration = AuditStore.Configuration()
        configuration.busyTimeout = .milliseconds(300)  // how long the scrub keeps trying
        let created = try await makeAliceStore()
        try await created.close()
        let store = try await AuditStore.open(at: path, keys: keys, configuration: configuration)
        var reader: OpaquePointer?
        #expect(sqlite3_open(path, &reader) == SQLITE_OK)
        defer { sqlite3_close(reader) }
        #expect(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM audit_entries", nil, nil, nil) == SQLITE_OK)
        let first = try await store.erase(.actor(Self.alice), fields: [.actor, .source], reason: "TICKET-10")
        #expect(first.erased == [3, 8, 13, 18] && !first.scrubbed)
        #expect(try fileBytes().range(of: Data(Self.aliceSource.utf8)) != nil, "the old pages are still in the -wal or the file")
        #expect(sqlite3_exec(reader, "COMMIT", nil, nil, nil) == SQLITE_OK)
        let again = try await store.erase(.actor(Self.alice), fields: [.actor, .source], reason: "TICKET-10")
        #expect(again.erased.isEmpty && again.alreadyErased == 0 && again.scrubbed)
        #expect(try fileBytes().range(of: Data(Self.aliceSource.utf8)) == nil)
        try await store.close()
    }

    @Test("raw bytes: after erasure the values are in neither the store file, its -wal nor its -shm, open or closed")
    func valuesLeaveTheFile() async throws {
        let store = try await makeAliceStore()
        // Another batch after alice's rows, so that her rows' pages were rewritten in the WAL meanwhile.
        try await store.append(contentsOf: (21...400).map { sampleEvent($0) })
        let beforeBytes = try fileBytes()
        #expect(beforeBytes.range(of: Data(Self.alice.utf8)) != nil)  // the search can find it
        _ = try await store.erase(.actor(Self.alice), fields: [.actor, .source, .details], reason: "TICKET-2")
        for needle in [Self.alice, Self.aliceSource, "liddell"] {
            #expect(try fileBytes().range(of: Data(needle.utf8)) == nil, "\(needle) is still in the open store's files")
        }
        try await store.close()
        for needle in [Self.alice, Self.aliceSource, "liddell"] {
            #expect(try fileBytes().range(of: Data(needle.utf8)) == nil, "\(needle) is still in the closed store's files")
        }
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).isIntact)
    }

    @Test("an attacker with the file, every key and 100,000 candidates (the real value among them) cannot single it out")
    func allKeysAndCandidatesDoNotConfirm() async throws {
        let store = try await makeAliceStore()
        _ = try await store.erase(.actor(Self.alice), fields: [.actor, .source, .details], reason: "TICKET-3")
        try await store.close()
        let candidates = (0..<100_000).map { "user\($0)@example.org" } + [Self.alice]
        // No candidate is in the file's bytes: they all end in "@example.org", which is nowhere in it.
        #expect(try fileBytes().range(of: Data("@example.org".utf8)) == nil)
        // What the attacker has: every row's seals and MAC, the store id, and every master key.
        let rows = try sqlite3Shell(path, "SELECT seq, hex(seals) FROM audit_entries WHERE length(seals) = 97;").stdout
            .split(separator: "\n").map { $0.split(separator: "|") }
        #expect(rows.count == 4)
        let key = try #require(keys.key(version: 1))
        for row in rows {
            let seq = try #require(Int64(row[0])), seals = try #require(Hex.decode(String(row[1])))
            let commitment = Array(seals[1..<33])  // the actor's slot: its commitment
            var hits = 0, controlHits = 0
            var keyed = [UInt8](repeating: 0, count: 32)
            adb_field_nonce(key.keyset, store.storeID.bytes, seq, 1, &keyed)
            // The commitment a format-1 row would hold for the real value: the attack must work on it.
            var control = [UInt8](repeating: 0, count: 32)
            var real = Array(Self.alice.utf8)
            real.withUnsafeMutableBufferPointer { adb_commitment(keyed, 1, adb_bytes(ptr: $0.baseAddress, len: Int64($0.count)), &control) }
            for candidate in candidates {
                var bytes = Array(candidate.utf8)
                var guess = [UInt8](repeating: 0, count: 32)
                bytes.withUnsafeMutableBufferPointer { adb_commitment(keyed, 1, adb_bytes(ptr: $0.baseAddress, len: Int64($0.count)), &guess) }
                if guess == commitment { hits += 1 }
                if guess == control { controlHits += 1 }
            }
            #expect(hits == 0, "row \(seq): a candidate matched the erased actor")
            #expect(controlHits == 1, "the same attack confirms a key-derived commitment (format 1)")
        }
    }

    @Test("scanner: an incremental pass after an erasure is intact; a full pass finds an erasure made without AuditDB in an old row")
    func scannerPasses() async throws {
        let store = try await makeAliceStore()
        let scanner = IntegrityScanner(store: store)
        #expect(try await scanner.scan(.full).isIntact)
        _ = try await store.erase(.seqs([3]), fields: [.details], reason: "TICKET-6")
        let incremental = try await scanner.scan(.incremental)
        #expect(incremental.isIntact && incremental.mode == .incremental, "\(incremental.integrity)")
        // Someone with the file erases row 13's actor without an entry (the MAC still verifies).
        let seals = try await forgedErasedSeals(store, seq: 13, mask: 1)
        try sqlite3Must(path, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET actor = NULL, seals = X'\(Hex.encode(seals))' WHERE seq = 13;")
        let full = try await scanner.scan(.full)
        #expect(findings(full.integrity) == ["schema-tampered -", "erasure-tampered 13...13"], "\(full.integrity)")
        try await store.close()
    }

    @Test("a store read in two ranges: erased rows in both halves are checked from the rows the pass reads; forged ones are found in full and incremental passes")
    func erasedRowsInBothRanges() async throws {
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...30_000).map { sampleEvent($0) })
        _ = try await store.erase(.seqs([10, 25_000]), fields: [.actor], reason: "TICKET-7")
        let scanner = IntegrityScanner(store: store)
        #expect(try await scanner.scan(.full).isIntact)
        // Someone with the file erases actors without entries: one row in each half of the first
        // pass's ranges, and then one row appended after it (covered by the incremental pass).
        let low = try await forgedErasedSeals(store, seq: 20, mask: 1), high = try await forgedErasedSeals(store, seq: 29_000, mask: 1)
        try await store.append(contentsOf: (30_001...30_010).map { sampleEvent($0) })
        let late = try await forgedErasedSeals(store, seq: 30_005, mask: 1)
        try sqlite3Must(path, """
            DROP TRIGGER audit_entries_no_update;
            UPDATE audit_entries SET actor = NULL, seals = X'\(Hex.encode(low))' WHERE seq = 20;
            UPDATE audit_entries SET actor = NULL, seals = X'\(Hex.encode(high))' WHERE seq = 29000;
            UPDATE audit_entries SET actor = NULL, seals = X'\(Hex.encode(late))' WHERE seq = 30005;
            """)
        let incremental = try await scanner.scan(.incremental)
        #expect(findings(incremental.integrity) == ["schema-tampered -", "erasure-tampered 30005...30005"], "\(incremental.integrity)")
        let full = try await store.verify()
        #expect(findings(full) == ["schema-tampered -", "erasure-tampered 20...20", "erasure-tampered 29000...29000",
                                   "erasure-tampered 30005...30005"], "\(full)")
        try await store.close()
    }

    @Test("rows written before migration 0006 (format 1) are refused, or left as they are with skippingLegacyRows; the store verifies")
    func legacyRows() async throws {
        // An older store: format-1 rows, then migrated; new rows of the same actor are format 2.
        let old = try await AuditStore.create(at: path, keys: keys, configuration: .init(), schemaUpTo: "0005-retention")
        try await old.append(contentsOf: (1...4).map { sampleEvent($0, actor: Self.alice) })
        try await old.close()
        let migrated = try await AuditStore.migrate(at: path, keys: keys, backup: .none)
        #expect(migrated.applied == Array(StoreSchema.knownMigrations.drop { $0 != "0006-erasure" }) && migrated.verification.isIntact)
        let store = try await AuditStore.open(at: path, keys: keys)
        try await store.append(contentsOf: (5...6).map { sampleEvent($0, actor: Self.alice) })
        await #expect {
            _ = try await store.erase(.actor(Self.alice), fields: [.actor], reason: "TICKET-5")
        } throws: { error in
            let error = error as? AuditError
            return error?.code == .invalidInput && error?.message.hasPrefix("4 matching row(s) (first seq 1) were written before migration 0006") == true
        }
        #expect(try await store.entries(EntryQuery(actor: Self.alice)).count == 6)  // nothing was erased
        let report = try await store.erase(.actor(Self.alice), fields: [.actor], reason: "TICKET-5", skippingLegacyRows: true)
        #expect(report.erased == [5, 6] && report.legacyRowsSkipped == [1, 2, 3, 4])
        let entries = try await allEntries(store)
        #expect(entries.map(\.formatVersion) == [1, 1, 1, 1, 2, 2, 2])
        #expect(entries.filter { $0.isErased(.actor) }.map(\.seq) == [5, 6])
        #expect(try await store.verify().isIntact)
        try await store.close()
        let verifier = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify.py").path
        try KeyFile.write(keys, to: dir.path("k.keys"), replacing: false)
        let python = try run("/usr/bin/env", ["python3", verifier, "--store", path, "--key-file", dir.path("k.keys")])
        #expect(python.status == 0 && python.stdout.hasPrefix("intact: 7 rows"), "\(python.stdout)\(python.stderr)")
    }

    @Test("rows signed by a key version declared compromised, re-attested: erased like any other (verify and queries accept them, so erasure does); the store verifies")
    func reattestedRowsErase() async throws {
        let v1 = try AuditKey.generate(version: 1), v2 = try AuditKey.generate(version: 2)
        let store = try await AuditStore.create(at: path, keys: try KeyRing([v1]))
        try await store.append(contentsOf: (1...6).map { i in AuditEvent(actor: i == 2 ? Self.alice : "user-\(i)", action: "read", source: Self.aliceSource) })
        try await store.close()
        let rotated = try await AuditStore.open(at: path, keys: try KeyRing([v1, v2]))
        #expect(try await rotated.reattest(compromisedVersion: 1).rowsAttested == 6)
        try await rotated.close()
        let ring = try KeyRing([v1, v2]).markingCompromised(1)
        let reopened = try await AuditStore.open(at: path, keys: ring)
        let report = try await reopened.erase(.actor(Self.alice), fields: [.actor, .source], reason: "GDPR-1")
        #expect(report.erased == [2])
        #expect(try await reopened.entries().first { $0.seq == 2 }?.actor == nil)
        try await reopened.close()
        #expect(try await AuditStore.verify(storeAt: path, keys: ring).isIntact)
        #expect(try fileBytes().range(of: Data(Self.alice.utf8)) == nil)
    }

    @Test("a row of the actor hidden from the actor index: the erasure stops before erasing anything, naming the row and the fix; after repair-indexes it erases every row, that one too")
    func rowHiddenFromTheIndex() async throws {
        let store = try await makeAliceStore()  // alice: seqs 3, 8, 13, 18
        try await store.close()
        let original = try sqlite3Shell(path, "SELECT sql FROM sqlite_schema WHERE name = 'audit_entries_actor';").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(original.hasSuffix("WHERE actor IS NOT NULL"), "\(original)")
        try sqlite3Must(path, """
            DROP INDEX audit_entries_actor;
            \(original) AND seq <> 13;
            PRAGMA writable_schema = ON;
            UPDATE sqlite_schema SET sql = '\(original.replacingOccurrences(of: "'", with: "''"))' WHERE name = 'audit_entries_actor';
            """)
        let reopened = try await AuditStore.open(at: path, keys: keys)
        let error = await #expect(throws: AuditError.self) {
            try await reopened.erase(.actor(Self.alice), fields: [.actor, .source], reason: "GDPR-7")
        }
        #expect(error?.code == .integrityViolation)
        #expect(error?.message == "row 13 matches the erasure's subject, but the index audit_entries_actor does not list it (the index was edited: `auditdb verify` reports index-mismatch); nothing was erased. Run `auditdb repair-indexes` (after keeping a copy of the file as evidence), then the erasure again")
        #expect(try await reopened.entries().filter { $0.actor == Self.alice }.map(\.seq) == [3, 8, 13, 18])  // nothing erased
        _ = try await reopened.repairIndexes()
        let report = try await reopened.erase(.actor(Self.alice), fields: [.actor, .source, .details], reason: "GDPR-7")
        #expect(report.erased == [3, 8, 13, 18])
        try await reopened.close()
        #expect(try fileBytes().range(of: Data(Self.alice.utf8)) == nil)
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).isIntact)
    }

    @Test("tampering with erased rows gives the exact findings", arguments: ErasureTamper.allCases)
    func tamper(_ tamper: ErasureTamper) async throws {
        let store = try await makeAliceStore()
        let backup = dir.path("backup.db")
        try sqlite3Must(path, "VACUUM INTO '\(backup)';")
        if tamper != .eraseWithoutEntry {
            _ = try await store.erase(.seqs([8]), fields: [.actor, .details], reason: "TICKET-4")
        }
        try await store.close()
        let shell = ["-batch", "-cmd", ".dbconfig enable_trigger off", path]
        func sql(_ statement: String) throws {
            let result = try run("/usr/bin/sqlite3", shell + [statement])
            guard result.status == 0 else { throw TestFailure("sqlite3: \(result.stderr)") }
        }
        switch tamper {
        case .eraseWithoutEntry:
            // Someone with only the file replaces a value and its nonce by the commitment: the MAC still verifies.
            let reopened = try await AuditStore.open(at: path, keys: keys)
            let seals = try await forgedErasedSeals(reopened, seq: 8, mask: 1)
            try await reopened.close()
            try sql("UPDATE audit_entries SET actor = NULL, seals = X'\(Hex.encode(seals))' WHERE seq = 8;")
        case .changedCommitment:
            // Byte 6 changed whatever it was (the seals are random: setting it to 00 left it as it was 1 time in 256).
            try sql("UPDATE audit_entries SET seals = CAST(substr(seals, 1, 5) || CASE WHEN substr(seals, 6, 1) = X'00' THEN X'01' ELSE X'00' END || substr(seals, 7) AS BLOB) WHERE seq = 8;")
        case .valueBackWithErasedSeals:
            try sql("UPDATE audit_entries SET actor = 'somebody' WHERE seq = 8;")
        case .valueBackWithFreshSeals:
            try sql("UPDATE audit_entries SET actor = '\(Self.alice)', details = '\(Self.aliceDetails)', seals = CAST(X'00' || randomblob(32) AS BLOB) WHERE seq = 8;")
        case .restoredFromBackup:
            try sql("ATTACH '\(backup)' AS old; UPDATE audit_entries SET actor = (SELECT actor FROM old.audit_entries WHERE seq = 8), details = (SELECT details FROM old.audit_entries WHERE seq = 8), seals = (SELECT seals FROM old.audit_entries WHERE seq = 8) WHERE seq = 8;")
        case .entryRemoved:
            try sql("DELETE FROM audit_entries WHERE seq = 21;")
        }
        let report = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(findings(report) == tamper.expected, "\(report)")
    }
}

enum ErasureTamper: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case eraseWithoutEntry, changedCommitment, valueBackWithErasedSeals, valueBackWithFreshSeals, restoredFromBackup, entryRemoved
    var testDescription: String { rawValue }

    var expected: [String] {
        switch self {
        case .eraseWithoutEntry: ["erasure-tampered 8...8"]
        case .changedCommitment: ["mac-mismatch 8...8"]
        case .valueBackWithErasedSeals: ["malformed-row 8...8"]
        case .valueBackWithFreshSeals: ["erasure-tampered 8...8", "mac-mismatch 8...8"]
        case .restoredFromBackup: ["erasure-tampered 8...8"]
        // The entry was the last row: its removal is a cut tail (section 2), but the erased row it
        // accounted for is caught.
        case .entryRemoved: ["erasure-tampered 8...8"]
        }
    }
}

/// The Merkle leaves of rows 1...n, as a checkpoint computes them.
func leaves(_ store: AuditStore, upTo n: Int64) async throws -> [[UInt8]] {
    let storeID = store.storeID, keys = store.keys
    return try await store.pool.read { db in
        let statement = try db.makeStatement(sql: RowLayout.select + " WHERE seq <= ? ORDER BY seq")
        let stmt = statement.sqliteStatement
        try SQLite.bind(stmt, 1, n)
        defer { SQLite.reset(stmt) }
        var out: [[UInt8]] = []
        while try SQLite.step(stmt, while: "read") { out.append(RowView(stmt).leaf(storeID: storeID, keys: keys) ?? []) }
        return out
    }
}

/// The seals someone with only the file writes to "erase" fields of row `seq` without an erasure
/// entry: computed by the C core from the row alone (no key), so the row's MAC still verifies.
func forgedErasedSeals(_ store: AuditStore, seq: Int64, mask: UInt8) async throws -> [UInt8] {
    try await store.pool.read { db -> [UInt8] in
        let statement = try db.makeStatement(sql: RowLayout.select + " WHERE seq = \(seq)")
        let stmt = statement.sqliteStatement
        defer { SQLite.reset(stmt) }
        _ = try SQLite.step(stmt, while: "read row \(seq)")
        var row = RowView(stmt).row
        var out = [UInt8](repeating: 0, count: 97)
        _ = adb_seals_erase(&row, mask, &out)
        return out
    }
}

extension ErasureTests {
    @Test("close while another connection reads an older snapshot: the writer of another handle is not held off meanwhile; nothing is lost")
    func closeLeavesTheWriterFree() async throws {
        var configuration = AuditStore.Configuration()
        configuration.busyTimeout = .seconds(2)  // how long close keeps trying (it used to hold the write lock throughout)
        let created = try await makeAliceStore()
        try await created.close()
        let store = try await AuditStore.open(at: path, keys: keys, configuration: configuration)
        _ = try await store.append(sampleEvent(97))  // seq 21, in the WAL
        configuration.busyTimeout = .milliseconds(500)
        let writer = try await AuditStore.open(at: path, keys: keys, configuration: configuration)
        var reader: OpaquePointer?
        #expect(sqlite3_open(path, &reader) == SQLITE_OK)
        defer { sqlite3_close(reader) }
        #expect(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM audit_entries", nil, nil, nil) == SQLITE_OK)
        _ = try await writer.append(sampleEvent(98))  // seq 22: the reader's snapshot is now older
        async let closed: Void = store.close()
        try await Task.sleep(for: .milliseconds(200))
        // A close that held the write lock through its whole wait (2 s) would make this fail with busy.
        #expect(try await writer.append(sampleEvent(99)) == 23)
        try await closed
        #expect(sqlite3_exec(reader, "COMMIT", nil, nil, nil) == SQLITE_OK)
        try await writer.close()
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).lastSeq == 23)
    }
}

extension ErasureTests {
    @Test("a row restored after its erasure, or erased without an entry, never leaves the store: queries, export, shipping and expiry stop at it with its finding",
          arguments: [ErasureTamper.restoredFromBackup, .eraseWithoutEntry])
    func tamperedErasureIsNotPassedOn(_ tamper: ErasureTamper) async throws {
        let store = try await makeAliceStore()  // alice: seqs 3, 8, 13, 18
        let backup = dir.path("backup.db")
        try sqlite3Must(path, "VACUUM INTO '\(backup)';")
        var forged: [UInt8] = []
        if tamper == .restoredFromBackup {
            _ = try await store.erase(.seqs([8]), fields: [.actor, .details], reason: "TICKET-4")
        } else {
            forged = try await forgedErasedSeals(store, seq: 8, mask: 1)
        }
        // As the runbook says: a checkpoint right after the erasure. The rows it covers are then
        // exported, shipped and archived against it.
        let checkpoint = try await store.checkpoint(signer: try testSigner())
        try await store.close()
        let set = tamper == .restoredFromBackup
            ? "actor = (SELECT actor FROM old.audit_entries WHERE seq = 8), details = (SELECT details FROM old.audit_entries WHERE seq = 8), seals = (SELECT seals FROM old.audit_entries WHERE seq = 8)"
            : "actor = NULL, seals = X'\(Hex.encode(forged))'"
        let result = try run("/usr/bin/sqlite3", ["-batch", "-cmd", ".dbconfig enable_trigger off", path,
                                                  "ATTACH '\(backup)' AS old; UPDATE audit_entries SET \(set) WHERE seq = 8;"])
        #expect(result.status == 0, "\(result.stderr)")
        let finding = tamper == .restoredFromBackup
            ? "erasure-tampered at seq 8: erasure entry 21 erased actor, details of row 8, but the row holds it again (restored from a copy made before the erasure?)"
            : "erasure-tampered at seq 8: row 8 has actor erased, but no erasure entry that verifies erased it (erased without AuditDB, or its erasure entry was removed or changed)"
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).findings.map(\.description) == [finding])

        let reopened = try await AuditStore.open(at: path, keys: keys)
        let query = await #expect(throws: AuditError.self) { try await reopened.entries() }
        #expect(query?.message == "entry 8 failed verification (\(finding)); it is not returned. Run `auditdb verify` for a full report.")
        let bundle = dir.path("bundle")
        let export = await #expect(throws: AuditError.self) { try await reopened.export(to: bundle) }
        #expect(export?.code == .integrityViolation)
        #expect(export?.message == "the store does not verify up to its checkpoint (\(finding)); nothing was exported. Run `auditdb verify`.")
        #expect(!FileManager.default.fileExists(atPath: bundle))
        let shipping = await #expect(throws: AuditError.self) { try await reopened.shippingRun(after: 0, through: checkpoint) }
        #expect(shipping?.message == "the store does not verify from seq 1 up to the checkpoint at seq \(checkpoint.seq) (\(finding)); nothing was shipped. Run `auditdb verify`.")
        let policy = try RetentionPolicy(parsingDefault: "1d")
        let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 86_400_000_000)
        let expiry = await #expect(throws: AuditError.self) { try await reopened.applyRetention(policy, now: later) }
        #expect(expiry?.message == "row 8 does not verify (\(finding)); nothing of this batch was expired. Run `auditdb verify`.")
        try await reopened.close()
        // Nothing expired: the evidence is still there.
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).findings.map(\.description) == [finding])
    }
}

extension ErasureTests {
    @Test("erase while a reader holds an older snapshot: the CLI warns and says how to finish; run again once it is gone, the values leave the file")
    func scrubHeldOffByAReader() async throws {
        let store = try await makeAliceStore()
        try await store.close()
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        // Another client's read transaction, opened before the erasure and held through it.
        var configuration = Configuration()
        configuration.allowsUnsafeTransactions = true
        let reader = try DatabaseQueue(path: path, configuration: configuration)
        try reader.inDatabase { db in
            try db.execute(sql: "BEGIN")
            _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_entries")
        }
        let erase = ["erase", "--actor", Self.alice, "--fields", "actor,source,details", "--reason", "GDPR-9",
                     "--store", path, "--key-file", keyFile, "--busy-timeout", "1"]
        let first = try run(try cliPath(), erase)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("warning: the write-ahead log could not be emptied (a reader held an older snapshot for the whole busy timeout, or the disk is full), so the erased values may still be in the store file or its -wal. Once that reader is gone (or space is freed), run this erasure again: it finds nothing more to erase and empties the log. Commands that only read (query, verify) do not empty it\n"), "\(first.stdout)")
        try reader.inDatabase { db in try db.execute(sql: "COMMIT") }
        try reader.close()
        let again = try run(try cliPath(), erase)
        #expect(again.status == 0 && !again.stdout.contains("warning"), "\(again.stdout)\(again.stderr)")
        // The actor is gone from its rows, so they match it no longer: the note says how to reach them.
        #expect(again.stdout.hasPrefix("erased actor, source, details of 0 row(s); 0 had nothing left to erase\nnote: no row has this actor now; a row whose actor an earlier erasure erased no longer matches it. To erase more of such rows, name them with --seqs"), "\(again.stdout)")
        #expect(try fileBytes().range(of: Data(Self.alice.utf8)) == nil)
    }
}
