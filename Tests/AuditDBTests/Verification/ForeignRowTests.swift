import Foundation
import GRDB
import Testing

@testable import AuditDB

/// Rows that another SQLite client inserts into AuditDB's side tables are reported by `verify`
/// as `foreign-row` and otherwise ignored: none changes an answer or blocks an operation.
/// Every test inserts the rows with the `sqlite3` shell.
@Suite("Foreign rows in side tables")
struct ForeignRowTests {
    let dir: TempDir
    let db: String

    init() throws {
        dir = try TempDir()
        db = dir.path("store.db")
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    @Test("an audit_key_versions row the log does not confirm: reported, and append, query, scan still work")
    func foreignKeyVersion() async throws {
        let keys = try testKeyRing()
        try await makeStore(at: db, keys: keys, count: 8)
        try sqlite3Must(db, "INSERT INTO audit_key_versions VALUES (99, 5);")
        let store = try await AuditStore.open(at: db, keys: keys)
        #expect(try await store.append(sampleEvent(9)) == 9)
        let page = try await store.page(EntryQuery(limit: 100))
        #expect(page.entries.map(\.seq) == Array(1...9))
        let report = try await store.verify()
        #expect(report.findings.map(\.kind) == [.foreignRow])
        #expect(report.findings.first?.message == "audit_key_versions row (key_version 99, first_seq 5) is not confirmed by the log: the row at that seq is not the first one signed with that version. AuditDB ignores it; it was inserted by another SQLite client")
        #expect(report.isLogIntact && !report.isIntact)
        // Operations that need a sound log are not blocked by it.
        let checkpoint = try await store.checkpoint(signer: try testSigner())
        #expect(checkpoint.seq == 9)
        try await store.close()
    }

    @Test("a cache row that points at a row of another version is foreign; the genuine one is not")
    func cacheRowPointingElsewhere() async throws {
        let v1 = try AuditKey.generate(version: 1), v2 = try AuditKey.generate(version: 2)
        try await makeStore(at: db, keys: try KeyRing([v1]), count: 3)
        let store = try await AuditStore.open(at: db, keys: try KeyRing([v1, v2]))
        try await store.append(contentsOf: [sampleEvent(4), sampleEvent(5)])  // v2 from seq 4
        try await store.close()
        try sqlite3Must(db, "INSERT INTO audit_key_versions VALUES (3, 2);")
        let report = try await AuditStore.verify(storeAt: db, keys: try KeyRing([v1, v2]))
        #expect(report.findings.map(\.message) == [
            "audit_key_versions row (key_version 3, first_seq 2) is not confirmed by the log: the row at that seq is not the first one signed with that version. AuditDB ignores it; it was inserted by another SQLite client",
        ])
        // The ring may lack version 3: the foreign row names no missing key. It still must have 2.
        let reopened = try await AuditStore.open(at: db, keys: try KeyRing([v1, v2]))
        try await reopened.close()
        await #expect(throws: AuditError.self) { _ = try await AuditStore.open(at: db, keys: try KeyRing([v1])) }
    }

    @Test("the cache emptied by another client after a rotation: the next append writes no unconfirmable row; repair-indexes rebuilds the cache from the log")
    func cacheEmptied() async throws {
        let v1 = try AuditKey.generate(version: 1), v2 = try AuditKey.generate(version: 2)
        try await makeStore(at: db, keys: try KeyRing([v1]), count: 3)
        let rotated = try await AuditStore.open(at: db, keys: try KeyRing([v1, v2]))
        try await rotated.append(contentsOf: [sampleEvent(4), sampleEvent(5)])  // v2 from seq 4
        try await rotated.close()
        try sqlite3Must(db, "DROP TRIGGER audit_key_versions_no_delete; DELETE FROM audit_key_versions;")
        let store = try await AuditStore.open(at: db, keys: try KeyRing([v1, v2]))
        let before = try await store.lastSeq()
        #expect(try await store.append(sampleEvent(6)) == before + 1)  // v2 again: the row before has v2 too, so (2, next) would be foreign
        let cache = try sqlite3Shell(db, "SELECT key_version, first_seq FROM audit_key_versions ORDER BY key_version;").stdout
        #expect(cache.isEmpty, "\(cache)")
        #expect(try await store.verify().findings.filter { $0.kind == .foreignRow }.isEmpty)
        let repaired = try await store.repairIndexes()
        #expect(repaired.findings.filter { $0.kind == .foreignRow }.isEmpty, "\(repaired)")
        try await store.close()
        let firsts = try sqlite3Shell(db, "SELECT key_version, min(seq) FROM audit_entries WHERE seq >= 1 GROUP BY key_version ORDER BY key_version;").stdout
        #expect(firsts.hasPrefix("1|1\n2|"))
        #expect(try sqlite3Shell(db, "SELECT key_version, first_seq FROM audit_key_versions ORDER BY key_version;").stdout == firsts)
    }

    @Test("the CLI: append and status work with a foreign cache row; verify exits 1 naming it")
    func cliForeignKeyVersion() async throws {
        let cli = try cliPath()
        let keyFile = dir.path("audit.keys")
        var environment = inheritedEnvironment
        for name in ["AUDITDB_STORE", "AUDITDB_KEY_FILE", "AUDITDB_KEYS", "AUDITDB_STORE_ID"] { environment.removeValue(forKey: name) }
        #expect(try run(cli, ["keys", "generate", "--out", keyFile], environment: environment).status == 0)
        #expect(try run(cli, ["init", "--store", db, "--key-file", keyFile], environment: environment).status == 0)
        #expect(try run(cli, ["append", "--store", db, "--key-file", keyFile, "--actor", "a", "--action", "x"], environment: environment).stdout == "1\n")
        try sqlite3Must(db, "INSERT INTO audit_key_versions VALUES (99, 5);")
        let append = try run(cli, ["append", "--store", db, "--key-file", keyFile, "--actor", "b", "--action", "y"], environment: environment)
        #expect(append.status == 0)
        #expect(append.stdout == "2\n")
        let verify = try run(cli, ["verify", "--store", db, "--key-file", keyFile], environment: environment)
        #expect(verify.status == 1)
        #expect(verify.stdout.contains("  foreign-row: audit_key_versions row (key_version 99, first_seq 5) is not confirmed by the log"))
        let query = try run(cli, ["query", "--store", db, "--key-file", keyFile, "--format", "jsonl"], environment: environment)
        #expect(query.status == 0)
        #expect(query.stdout.split(separator: "\n").count == 2)
    }

    @Test("a junk attestation row: reported; re-attestation names it and the way past it, then succeeds after a rotation")
    func junkAttestation() async throws {
        let v1 = try AuditKey.generate(version: 1), v2 = try AuditKey.generate(version: 2), v3 = try AuditKey.generate(version: 3)
        try await makeStore(at: db, keys: try KeyRing([v1]), count: 6)
        try sqlite3Must(db, "INSERT INTO audit_attestations VALUES (5, 2, 7, randomblob(32));")
        let report = try await AuditStore.verify(storeAt: db, keys: try KeyRing([v1, v2]))
        #expect(report.findings.map(\.message) == [
            "audit_attestations row (seq 5, key_version 2) is not an attestation AuditDB wrote: its declaration_seq does not name an auditdb.key.compromised entry after the row it attests. It attests nothing; another SQLite client inserted it",
        ])
        let store = try await AuditStore.open(at: db, keys: try KeyRing([v1, v2]))
        await #expect {
            _ = try await store.reattest(compromisedVersion: 1)
        } throws: { error in
            let error = error as? AuditError
            return error?.code == .integrityViolation
                && error?.message.hasPrefix("audit_attestations already holds rows under key version 2 for seq(s) 5 that are not valid attestations") == true
                && error?.message.contains("Nothing was written. Add a new key version (`auditdb keys rotate` with the store: it skips every version audit_attestations already uses) and run this again") == true
        }
        #expect(try await store.lastSeq() == 6)  // no declaration was appended
        try await store.close()
        let rotated = try await AuditStore.open(at: db, keys: try KeyRing([v1, v2, v3]))
        let receipt = try await rotated.reattest(compromisedVersion: 1)
        #expect(receipt.attestingVersion == 3)
        #expect(receipt.rowsAttested == 6)
        try await rotated.close()
        let after = try await AuditStore.verify(storeAt: db, keys: try KeyRing([v1, v2, v3]).markingCompromised(1))
        #expect(after.findings.map(\.kind) == [.foreignRow])
    }

    @Test("junk attestations under every next key version: the rotation of `keys compromised` (and `keys rotate`) skips them, nothing blocks")
    func junkAttestationsUnderFutureVersions() async throws {
        let keyFile = dir.path("k.keys")
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: db, keys: keys, count: 6)
        // Versions 2...40 at seq 5: each next version's attestation of row 5 would collide.
        try sqlite3Must(db, "WITH RECURSIVE v(k) AS (SELECT 2 UNION ALL SELECT k + 1 FROM v WHERE k < 40) "
                        + "INSERT INTO audit_attestations SELECT 5, k, 7, randomblob(32) FROM v;")
        let store = try await AuditStore.open(at: db, keys: keys)
        #expect(try await store.attestationKeyVersions(above: 1) == Set(2...40))
        try await store.close()
        #expect(try keys.rotated(skipping: Set(2...40)).signingKey.version == 41)
        let declared = try run(cliPath(), ["keys", "compromised", "1", "--store", db, "--key-file", keyFile])
        #expect(declared.status == 0, "\(declared.stderr)")
        #expect(declared.stdout.contains("added key version 41 to \(keyFile)"))
        #expect(declared.stdout.contains("re-attested 6 row(s) signed by key version 1 with key version 41"))
        let rotated = try run(cliPath(), ["keys", "rotate", "--store", db, "--key-file", keyFile])
        #expect(rotated.status == 0 && rotated.stdout.hasPrefix("added key version 42 to"), "\(rotated.stdout)\(rotated.stderr)")
        let after = try await AuditStore.verify(storeAt: db, keys: try KeyFile(path: keyFile).load())
        #expect(after.isLogIntact)
        #expect(after.findings.count == 39 && after.findings.allSatisfy { $0.kind == .foreignRow }, "\(after.findings)")  // each junk row, named
    }

    @Test("an attestation with a real declaration but a forged MAC, and one for a seq not in the log: both foreign")
    func forgedAttestations() async throws {
        let v1 = try AuditKey.generate(version: 1), v2 = try AuditKey.generate(version: 2)
        try await makeStore(at: db, keys: try KeyRing([v1]), count: 3)
        let store = try await AuditStore.open(at: db, keys: try KeyRing([v1, v2]))
        // Key 2's rotation entry at seq 4 (FORMAT.md 10.1), the declaration at seq 5; rows 1...3 and the header attested.
        _ = try await store.reattest(compromisedVersion: 1)
        try await store.close()
        try sqlite3Must(db, """
            INSERT INTO audit_attestations VALUES (2, 7, 5, randomblob(32));
            INSERT INTO audit_attestations VALUES (3, 1, 5, randomblob(32));
            INSERT INTO audit_attestations VALUES (-1, 2, 5, randomblob(32));
            """)
        let report = try await AuditStore.verify(storeAt: db, keys: try KeyRing([v1, v2]).markingCompromised(1))
        // (2, 7): version 7 is not in the ring, so it cannot be checked and is not reported.
        #expect(report.findings.map(\.message).sorted() == [
            "audit_attestations row (seq -1, key_version 2) is not an attestation AuditDB wrote: it attests seq -1, which is not in the log. It attests nothing; another SQLite client inserted it",
            "audit_attestations row (seq 3, key_version 1) is not an attestation AuditDB wrote: its MAC does not verify over the row it attests (forged, or that row was changed). It attests nothing; another SQLite client inserted it",
        ])
    }

    @Test("forged audit_checkpoints rows (a bad signature, seq 2^62, a foreign key with a fake root) neither block nor mislead checkpoint and export")
    func forgedCheckpoints() async throws {
        let keys = try testKeyRing(), signer = try testSigner()
        try await makeStore(at: db, keys: keys, count: 40)
        let store = try await AuditStore.open(at: db, keys: keys)
        let first = try await store.checkpoint(signer: signer)
        #expect(first.seq == 40)
        try await store.append(contentsOf: (41...60).map { sampleEvent($0) })
        // A foreign signer's checkpoint at seq 60 with the real chain head but a made-up root and
        // a frontier that folds to it: it must not be extended.
        let chainHead = try await store.pool.read { db in try [UInt8](Data.fetchOne(db, sql: "SELECT mac FROM audit_entries WHERE seq = 55")!) }
        let fake = MerkleTree.Frontier(size: 55, bytes: (0..<(55.nonzeroBitCount * 32)).map { UInt8($0 & 0xff) })!
        let fakeRoot = fake.root!
        let forger = try testSigner()
        let forged = Checkpoint.signed(storeID: store.storeID, seq: 55, chainHead: chainHead, merkleRoot: fakeRoot, time: .now(),
                                       key: forger.signingKey)
        try sqlite3Must(db, """
            INSERT INTO audit_checkpoints SELECT 50, created_at, key_version, public_key, chain_head, merkle_root, signature, frontier FROM audit_checkpoints WHERE seq = 40;
            INSERT INTO audit_checkpoints VALUES (55, 0, 1, x'\(Self.hex(forged.publicKey))', x'\(Self.hex(chainHead))', x'\(Self.hex(fakeRoot))', x'\(Self.hex(forged.signature))', x'\(Self.hex(fake.bytes))');
            INSERT INTO audit_checkpoints SELECT 4611686018427387904, created_at, key_version, public_key, chain_head, merkle_root, signature, frontier FROM audit_checkpoints WHERE seq = 40;
            """)
        let second = try await store.checkpoint(signer: signer)
        #expect(second.seq == 60)
        #expect(second.merkleRoot == referenceRoot(try await allLeaves(store)[...]))
        let summary = try await store.export(to: dir.path("bundle"), signer: signer)
        #expect(summary.checkpoint.seq == 60)
        try await store.close()
        let verified = try await ExportBundle.verify(at: dir.path("bundle"), publicKeys: signer.publicKeys)
        #expect(verified.isValid, "\(verified.findings)")
    }

    @Test("the store's own checkpoint rows edited where they agree with the log (signature, root, frontier): foreign-row in a full pass, in both verifiers, with or without the public key",
          arguments: ["signature = zeroblob(64)", "merkle_root = zeroblob(32)", "frontier = x'00'", "created_at = created_at + 1"])
    func editedAgreeingCheckpoint(_ edit: String) async throws {
        let keys = try testKeyRing(), signer = try testSigner()
        try await makeStore(at: db, keys: keys, count: 40)
        let store = try await AuditStore.open(at: db, keys: keys)
        try await store.checkpoint(signer: signer)
        try await store.append(contentsOf: (41...60).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        try await store.close()
        try sqlite3Must(db, "DROP TRIGGER audit_checkpoints_no_update; UPDATE audit_checkpoints SET \(edit) WHERE seq = 40;")
        let why = edit.hasPrefix("frontier")
            ? "its frontier is not 32 × popcount(seq) bytes that fold to its Merkle root"
            : "its Ed25519 signature does not verify (the checkpoint was changed or forged)"
        let expected = "audit_checkpoints row at seq 40 has the chain head of the log but is not a checkpoint of this store: \(why). AuditDB ignores it (a checkpoint or export skips it); another SQLite client changed or inserted it"
        var configuration = AuditStore.Configuration()
        for trusted in [nil, signer.publicKeys] {
            configuration.checkpointPublicKeys = trusted
            let report = try await AuditStore.verify(storeAt: db, keys: keys, configuration: configuration)
            #expect(report.findings.filter { $0.kind != .schemaTampered }.map(\.message) == [expected], "\(report)")
        }
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        #expect(try pythonFindings(db, keyFile: keyFile).filter { !$0.hasPrefix("schema-tampered") } == ["foreign-row -...-"])
    }

    @Test("a foreign row at the seq of the next checkpoint: the checkpoint is made and anchored all the same")
    func foreignRowAtNextSeq() async throws {
        let keys = try testKeyRing(), signer = try testSigner()
        try await makeStore(at: db, keys: keys, count: 10)
        try sqlite3Must(db, "INSERT INTO audit_checkpoints VALUES (10, 0, 1, zeroblob(32), zeroblob(32), zeroblob(32), zeroblob(64), x'');")
        let store = try await AuditStore.open(at: db, keys: keys)
        let anchor = dir.path("anchors")
        let checkpoint = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: anchor)])
        #expect(checkpoint.seq == 10)
        try await store.close()
        let report = try await AuditStore.verify(storeAt: db, keys: keys, againstAnchors: [anchor], publicKeys: signer.publicKeys)
        #expect(report.findings.map(\.message) == [
            "audit_checkpoints row at seq 10 is not a checkpoint of this store: its Ed25519 signature does not verify (the checkpoint was changed or forged). AuditDB ignores it; another SQLite client inserted it",
        ])
    }
    @Test("docs/operations.md's removal of foreign side-table rows, run as written: evidence kept, the store intact, the triggers as defined")
    func documentedRemoval() async throws {
        // The rows the section's example names: a checkpoint at 103, an attestation (2, 1), key version 7.
        let keyFile = dir.path("k.keys"), store = dir.path("audit.db")
        let keys = try KeyFile.generate(at: keyFile)
        let signer = try testSigner()
        try signer.publicKeys.write(to: dir.path("ckpt.pub"))
        try await makeStore(at: store, keys: keys, count: 3)
        let opened = try await AuditStore.open(at: store, keys: keys)
        #expect(try await opened.checkpoint(signer: signer).seq == 3)
        try await opened.close()
        try sqlite3Must(store, """
            INSERT INTO audit_checkpoints SELECT seq + 100, created_at, key_version, public_key, chain_head, merkle_root, signature, frontier FROM audit_checkpoints;
            INSERT INTO audit_attestations VALUES (2, 1, 3, zeroblob(32));
            INSERT INTO audit_key_versions VALUES (7, 1);
            """)
        var trusting = AuditStore.Configuration()
        trusting.checkpointPublicKeys = signer.publicKeys
        let before = try await AuditStore.verify(storeAt: store, keys: keys, configuration: trusting)
        #expect(before.findings.map(\.kind) == [.foreignRow, .foreignRow, .foreignRow])
        #expect(before.findings.map { String($0.message.prefix(44)) } == [
            "audit_key_versions row (key_version 7, first", "audit_attestations row (seq 2, key_version 1", "audit_checkpoints row at seq 103 is not a ch",
        ])  // step 6's findings, then step 8's (FORMAT.md 11: in the order they were found)
        // The section's second shell block, as written, in the store's directory.
        let text = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/operations.md"), encoding: .utf8)
        let section = try #require(text.components(separatedBy: "## A foreign row in a side table").last)
        let blocks = section.components(separatedBy: "```sh\n").dropFirst().map { $0.components(separatedBy: "```").first ?? "" }
        let script = try #require(blocks.first { $0.contains(".backup") })
        let binaries = URL(fileURLWithPath: try cliPath()).deletingLastPathComponent().path
        var environment = environmentWithoutAuditDBOptions()
        environment["PATH"] = binaries + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["AUDITDB_STORE"] = store
        environment["AUDITDB_KEY_FILE"] = keyFile
        let ran = try run("/bin/bash", ["-e", "-c", "cd \"$1\" && " + script, "bash", dir.path("")], environment: environment)
        #expect(ran.status == 0 && ran.stdout.hasPrefix("intact: 3 rows verified"), "\(ran.stdout)\(ran.stderr)")
        #expect(try await AuditStore.verify(storeAt: store, keys: keys, configuration: trusting).isIntact)
        // The evidence holds the rows; the store refuses a DELETE again.
        #expect(try sqlite3Shell(dir.path("evidence-foreign-rows.db"), "SELECT count(*) FROM audit_checkpoints; SELECT count(*) FROM audit_attestations;").stdout == "2\n1\n")
        #expect(try sqlite3Shell(store, "DELETE FROM audit_checkpoints;").status != 0)
        // (audit_attestations is empty again, so no DELETE meets its trigger: it is there, and
        // verify, intact above, compares its text with the definition.)
        #expect(try sqlite3Shell(store, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name = 'audit_attestations_no_delete';").stdout == "1\n")
        #expect(try sqlite3Shell(store, "DELETE FROM audit_key_versions;").status != 0)
    }
}
