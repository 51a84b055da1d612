import AuditDBTestSupport
import CAuditCore
import Foundation
import GRDB
import Testing

@testable import AuditDB

/// The Merkle root by the recursive definition of RFC 6962 section 2.1 (the test's own oracle).
func referenceRoot(_ leaves: ArraySlice<[UInt8]>) -> [UInt8] {
    if leaves.count == 1 { return leaves.first! }
    var k = 1
    while k * 2 < leaves.count { k *= 2 }
    let split = leaves.startIndex + k
    return MerkleTree.node(referenceRoot(leaves[..<split]), referenceRoot(leaves[split...]))
}

/// Every leaf hash of a store (rows 1...last), computed the way the checkpoint does.
func allLeaves(_ store: AuditStore) async throws -> [[UInt8]] {
    let storeID = store.storeID, keys = store.keys
    return try await store.pool.read { db in
        var leaves: [[UInt8]] = []
        let last = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries") ?? 0
        _ = try LeafScan.scan(db, range: 1...last, prevMac: [UInt8](repeating: 0, count: 32), storeID: storeID, keys: keys) {
            _, leaf in leaves.append(leaf)
        }
        return leaves
    }
}

/// Deletes rows above `seq` as someone with the file would: drop the trigger, delete, put the
/// trigger back exactly as it was (so the schema check sees nothing).
func cutTail(_ path: String, above seq: Int64) throws {
    let trigger = try sqlite3Shell(path, "SELECT sql FROM sqlite_schema WHERE name = 'audit_entries_no_delete';").stdout
    try sqlite3Must(path, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq > \(seq); \(trigger.trimmingCharacters(in: .whitespacesAndNewlines));")
}

@Suite("Checkpoints and anchors")
struct CheckpointTests {
    let dir: TemporaryDirectory
    let keys: KeyRing
    let signer: CheckpointSigner

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
        signer = try CheckpointSigner.inMemory()
    }

    func sample() throws -> Checkpoint {
        Checkpoint.signed(
            storeID: StoreID(bytes: Array(0xA0...0xAF)), seq: 42, chainHead: Array(repeating: 7, count: 32),
            merkleRoot: Array(repeating: 9, count: 32), time: AuditTimestamp(microsecondsSinceEpoch: 1_795_439_700_000_000),
            key: signer.signingKey)
    }

    @Test("a checkpoint's signature verifies under its public key and survives a JSON round trip")
    func signatureVerifies() throws {
        let cp = try sample()
        #expect(cp.statement.count == 140)
        #expect(cp.invalidity(under: signer.publicKeys) == nil)
        let parsed = try Checkpoint(json: Data(cp.json.utf8))
        #expect(parsed == cp)
        #expect(parsed.invalidity(under: signer.publicKeys) == nil)
    }

    static let fields = ["storeID", "seq", "chainHead", "merkleRoot", "time", "keyVersion", "signature"]

    @Test("changing any field of a checkpoint breaks its signature", arguments: fields)
    func anyChangeFails(field: String) throws {
        let c = try sample()
        func flip(_ b: [UInt8]) -> [UInt8] { [b[0] ^ 1] + b.dropFirst() }
        let changed = Checkpoint(
            storeID: field == "storeID" ? StoreID(bytes: flip(c.storeID.bytes)) : c.storeID,
            seq: field == "seq" ? c.seq + 1 : c.seq,
            chainHead: field == "chainHead" ? flip(c.chainHead) : c.chainHead,
            merkleRoot: field == "merkleRoot" ? flip(c.merkleRoot) : c.merkleRoot,
            time: field == "time" ? AuditTimestamp(microsecondsSinceEpoch: c.time.microsecondsSinceEpoch + 1) : c.time,
            keyVersion: c.keyVersion, publicKey: c.publicKey,
            signature: field == "signature" ? flip(c.signature) : c.signature)
        if field == "keyVersion" {
            let other = Checkpoint(storeID: c.storeID, seq: c.seq, chainHead: c.chainHead, merkleRoot: c.merkleRoot,
                                   time: c.time, keyVersion: 2, publicKey: c.publicKey, signature: c.signature)
            #expect(other.invalidity(under: CheckpointPublicKeys([CheckpointPublicKey(version: 2, bytes: c.publicKey)]))
                == "its Ed25519 signature does not verify (the checkpoint was changed or forged)")
            return
        }
        #expect(changed.invalidity(under: signer.publicKeys) == "its Ed25519 signature does not verify (the checkpoint was changed or forged)")
    }

    @Test("a checkpoint signed by another key fails under the public key file")
    func otherKeyFails() throws {
        let cp = try sample()
        let stranger = try CheckpointSigner.inMemory()
        #expect(cp.invalidity(under: stranger.publicKeys)
            == "it names a different public key for version 1 than the public key file (signed by another key)")
        #expect(cp.invalidity(under: try CheckpointSigner.inMemory(versions: [2]).publicKeys)
            == "it is signed with checkpoint key version 1, which the public key file lacks")
    }

    @Test("checkpoint key files: mode 0600 enforced, round trip, rotation, no secret in the description")
    func keyFiles() throws {
        let secret = dir.path("ckpt.key"), pub = dir.path("ckpt.pub")
        try signer.write(to: secret, replacing: false)
        try signer.publicKeys.write(to: pub)
        let loaded = try CheckpointSigner.load(path: secret)
        #expect(loaded.signingKey.publicKey == signer.signingKey.publicKey)
        #expect(try CheckpointPublicKeys.load(path: pub) == signer.publicKeys)
        #expect(!String(describing: loaded.signingKey).contains(try String(contentsOfFile: secret, encoding: .utf8).split(separator: " ").last!.prefix(64)))
        #expect(throws: AuditError.self) { try signer.write(to: secret, replacing: false) }
        chmod(secret, 0o644)
        do {
            _ = try CheckpointSigner.load(path: secret)
            Issue.record("a group-readable checkpoint key file was accepted")
        } catch {
            #expect(error.code == .keyFileInsecure)
        }
        chmod(secret, 0o600)
        let rotated = try loaded.rotated()
        #expect(rotated.signingKey.version == 2 && rotated.publicKeys.keys.count == 2)
    }

    @Test("a checkpoint key file whose seed is 32 zero bytes (a key pair anyone knows) is refused, naming the version, as an HMAC key of zeros is")
    func zeroSeed() throws {
        let secret = dir.path("zero.key")
        let text = "auditdb-checkpoint-key v1\nkey 1 - " + String(repeating: "0", count: 64) + "\nkey 2 - " + String(repeating: "0", count: 64) + "\n"
        #expect(FileManager.default.createFile(atPath: secret, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]))
        do {
            _ = try CheckpointSigner.load(path: secret)
            Issue.record("a checkpoint key of zeros was accepted")
        } catch {
            #expect(error.code == .invalidKeyFile)
            #expect(error.message.contains("checkpoint key version 1 has a seed of 32 zero bytes, which anyone could sign with"), "\(error.message)")
        }
        // One nonzero byte is a key like any other.
        let one = text.replacingOccurrences(of: "key 1 - 0000", with: "key 1 - 0001").replacingOccurrences(of: "key 2 - 0000", with: "key 2 - 0002")
        try Data(one.utf8).write(to: URL(fileURLWithPath: secret))
        #expect(try CheckpointSigner.load(path: secret).signingKey.version == 2)
    }

    @Test("the Merkle frontier, levels and inclusion proofs agree with RFC 6962 for sizes 1...70")
    func merkleTree() throws {
        let leaves = (0..<70).map { i -> [UInt8] in
            var out = [UInt8](repeating: 0, count: 32)
            adb_sha256([UInt8(i)], 1, &out)
            return out
        }
        var frontier = MerkleTree.Frontier()
        for n in 1...leaves.count {
            frontier.append(leaf: leaves[n - 1])
            let root = referenceRoot(leaves[0..<n])
            #expect(frontier.root == root, "size \(n)")
            #expect(MerkleTree.Frontier(size: Int64(n), bytes: frontier.bytes) == frontier)
            let levels = MerkleTree.Levels(Array(leaves[0..<n]))
            #expect(levels.root == root)
            for i in 0..<n {
                let proof = levels.proof(index: i)
                #expect(proof.count == MerkleTree.proofLength(index: Int64(i), size: Int64(n)))
                #expect(MerkleTree.verifyInclusion(leaf: leaves[i], index: Int64(i), size: Int64(n), proof: proof, root: root))
                if i + 1 < n {
                    #expect(!MerkleTree.verifyInclusion(leaf: leaves[i + 1], index: Int64(i), size: Int64(n), proof: proof, root: root))
                }
                if !proof.isEmpty {
                    var bad = proof
                    bad[0][0] ^= 1
                    #expect(!MerkleTree.verifyInclusion(leaf: leaves[i], index: Int64(i), size: Int64(n), proof: bad, root: root))
                }
            }
        }
    }

    @Test("checkpoints extend the stored frontier: the root equals a full recomputation")
    func incremental() async throws {
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...10).map { sampleEvent($0) })
        let first = try await store.checkpoint(signer: signer)
        #expect(first.seq == 10)
        try await store.append(contentsOf: (11...23).map { sampleEvent($0) })
        let second = try await store.checkpoint(signer: signer)
        #expect(second.seq == 23)
        let leaves = try await allLeaves(store)
        #expect(first.merkleRoot == referenceRoot(leaves[0..<10]))
        #expect(second.merkleRoot == referenceRoot(leaves[0..<23]))
        #expect(second.invalidity(under: signer.publicKeys) == nil)
        // Nothing new: the last checkpoint again.
        #expect(try await store.checkpoint(signer: signer) == second)
        #expect(try await store.checkpoints() == [first, second])
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("stores of 20,000 rows and more are scanned in two halves: the same root, bundle and anchor checks as one pass")
    func twoHalves() async throws {
        let path = dir.path("big.db"), anchor = dir.path("anchor")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...25_000).map { sampleEvent($0) })
        #expect(Verifier.split(1...25_000, rows: 25_000).count == 2 || ProcessInfo.processInfo.activeProcessorCount == 1)
        let cp = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: anchor)])
        let leaves = try await allLeaves(store)  // one pass, on one connection
        #expect(cp.merkleRoot == referenceRoot(leaves[...]))
        try await store.export(to: dir.path("b"), filter: ExportFilter(seqs: 12_490...12_510))
        let bundle = try await ExportBundle.verify(at: dir.path("b"), publicKeys: signer.publicKeys)
        #expect(bundle.isValid && bundle.entriesVerified == 21, "\(bundle.findings)")
        #expect(try await store.verify(againstAnchors: [anchor], publicKeys: signer.publicKeys).isIntact)
        try await store.append(contentsOf: (25_001...25_010).map { sampleEvent($0) })
        try sqlite3Must(path, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET action = 'x' WHERE seq = 20000;")
        await #expect { try await store.export(to: dir.path("c")) } throws: {
            ($0 as? AuditError)?.message.contains("mac-mismatch at seq 20000") == true
        }
        let report = try await store.verify(againstAnchors: [anchor], publicKeys: signer.publicKeys)
        #expect(report.findings.map(\.kind).contains(.anchorMismatch))
        #expect(report.findings.first { $0.kind == .anchorMismatch }?.seqs == 1...25_000)
        try await store.close()
    }

    @Test("an anchor directory is created (0755) on first write, unless createsDirectory is false: then a missing one fails the checkpoint")
    func anchorDirectoryCreation() async throws {
        let store = try await AuditStore.create(at: dir.path("a.db"), keys: keys)
        try await store.append(sampleEvent(1))
        let unmounted = dir.path("mnt") + "/audit"
        await #expect {
            _ = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: unmounted, createsDirectory: false)])
        } throws: { error in
            (error as? AuditError)?.message.hasPrefix("the anchor directory \(unmounted) does not exist (an unmounted volume?)") == true
        }
        #expect(!FileManager.default.fileExists(atPath: unmounted))
        _ = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: unmounted)])
        #expect(try FileManager.default.attributesOfItem(atPath: unmounted)[.posixPermissions] as? Int == 0o755)
        #expect(try FileManager.default.contentsOfDirectory(atPath: unmounted).count == 1)
        try await store.close()
    }

    @Test("no checkpoint is signed over a tampered store")
    func refusesDamagedStore() async throws {
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...10).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        try await store.append(contentsOf: (11...12).map { sampleEvent($0) })
        try sqlite3Must(path, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET action = 'x' WHERE seq = 11;")
        do {
            try await store.checkpoint(signer: signer)
            Issue.record("checkpointed a tampered store")
        } catch let error as AuditError {
            #expect(error.code == .integrityViolation)
            #expect(error.message.contains("mac-mismatch at seq 11"))
        }
        try await store.close()
    }

    /// A store of `count` rows with a checkpoint of all of them in an anchor directory.
    func anchoredStore(count: Int) async throws -> (path: String, anchor: String, checkpoint: Checkpoint) {
        let path = dir.path("s.db"), anchor = dir.path("anchor")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...count).map { sampleEvent($0) })
        let cp = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: anchor)])
        try await store.close()
        return (path, anchor, cp)
    }

    func verifyAnchored(_ path: String, _ anchor: String) async throws -> IntegrityReport {
        let store = try await AuditStore.open(at: path, keys: keys)
        let report = try await store.verify(againstAnchors: [anchor], publicKeys: signer.publicKeys)
        try await store.close()
        return report
    }

    @Test("an intact store verifies against its anchor; the anchor file is written once")
    func intactAgainstAnchor() async throws {
        let (path, anchor, cp) = try await anchoredStore(count: 20)
        let files = try FileManager.default.contentsOfDirectory(atPath: anchor)
        #expect(files == [DirectoryAnchor.fileName(of: cp)])
        let report = try await verifyAnchored(path, anchor)
        #expect(report.isIntact, "\(report.findings)")
        // Writing the same checkpoint again is a no-op; a different one under the same name is refused.
        try DirectoryAnchor(path: anchor).writeSync(cp)
        let forged = Checkpoint(storeID: cp.storeID, seq: cp.seq, chainHead: cp.merkleRoot, merkleRoot: cp.merkleRoot,
                                time: cp.time, keyVersion: cp.keyVersion, publicKey: cp.publicKey, signature: cp.signature)
        #expect(throws: AuditError.self) { try DirectoryAnchor(path: anchor).writeSync(forged) }
    }

    @Test("tail truncation below an anchored seq is reported as truncated, naming the checkpoint")
    func truncationDetected() async throws {
        let (path, anchor, _) = try await anchoredStore(count: 20)
        try cutTail(path, above: 15)
        // The store's own checkpoint row (left in place) already tells plain verify.
        let plain = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(plain.findings.map(\.kind) == [.truncated])
        #expect(plain.findings.first?.seqs == 16...20)
        #expect(plain.findings.first?.message.hasPrefix("the log ends at seq 15 but the store's own checkpoint at seq 20 (made ") == true)
        #expect(plain.findings.first?.message.hasSuffix("rows 16...20 were cut from the tail after it was made (its signature was checked only against the public key it names; verify with --public-key to rule out a forged checkpoint row)") == true)
        var pinned = AuditStore.Configuration()
        pinned.checkpointPublicKeys = signer.publicKeys
        let withKey = try await AuditStore.verify(storeAt: path, keys: keys, configuration: pinned)
        #expect(withKey.findings.first?.message.hasSuffix("rows 16...20 were cut from the tail after it was made") == true)
        let report = try await verifyAnchored(path, anchor)
        #expect(report.findings.map(\.kind) == [.truncated])
        let finding = try #require(report.findings.first)
        #expect(finding.seqs == 16...20)
        #expect(finding.message.hasPrefix("the log ends at seq 15 but the checkpoint at seq 20 made "))
        #expect(finding.message.contains("rows 16...20 were cut from the tail after it was made"))
        // The same from the file alone, without opening it for appends (archived stores, auditors).
        let fromFile = try await AuditStore.verify(storeAt: path, keys: keys, againstAnchors: [anchor], publicKeys: signer.publicKeys)
        #expect(fromFile.findings == report.findings)
        // Cut the checkpoint rows too: plain verify sees only the dropped trigger, the anchor a rollback.
        try sqlite3Must(path, "DROP TRIGGER audit_checkpoints_no_delete; DELETE FROM audit_checkpoints;")
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).findings.map(\.kind) == [.schemaTampered])
        #expect(try await verifyAnchored(path, anchor).findings.map(\.kind) == [.schemaTampered, .rolledBack])
    }

    @Test("rollback to an older copy of the file is reported as rolled-back")
    func rollbackDetected() async throws {
        let path = dir.path("s.db"), anchor = dir.path("anchor"), copy = dir.path("old.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...10).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: anchor)])
        try await store.close()
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        let reopened = try await AuditStore.open(at: path, keys: keys)
        try await reopened.append(contentsOf: (11...25).map { sampleEvent($0) })
        try await reopened.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: anchor)])
        try await reopened.close()
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: copy, toPath: path)
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).isIntact, "MACs alone cannot see a rollback")
        let report = try await verifyAnchored(path, anchor)
        #expect(report.findings.map(\.kind) == [.rolledBack])
        #expect(report.findings.first?.seqs == 11...25)
        #expect(report.findings.first?.message.contains("the checkpoint at seq 25 made") == true)
        #expect(report.findings.first?.message.contains("the file was rolled back to an older copy (rows 11...25 are gone)") == true)
    }

    @Test("a consistent rewrite by someone holding the HMAC key verifies by MAC but contradicts the anchor")
    func rewriteDetected() async throws {
        let (path, anchor, cp) = try await anchoredStore(count: 20)
        // The attacker cuts the last 8 rows and appends different ones with the real key: every
        // MAC and link is valid, the schema is unchanged.
        try cutTail(path, above: 12)
        let attacker = try await AuditStore.open(at: path, keys: keys)
        try await attacker.append(contentsOf: (13...22).map { sampleEvent($0 + 1000) })
        try await attacker.close()
        // Valid MACs everywhere; only the store's own checkpoint row (left in place) disagrees.
        let plain = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(plain.findings.map(\.kind) == [.anchorMismatch])
        #expect(plain.findings.first?.message.hasPrefix("row 20 does not have the chain head signed by the store's own checkpoint at seq 20 (made ") == true)
        let report = try await verifyAnchored(path, anchor)
        #expect(report.findings.map(\.kind) == [.anchorMismatch])
        #expect(report.findings.first?.seqs == cp.seq...cp.seq)
        #expect(report.findings.first?.message.hasPrefix("row 20 does not have the chain head signed by the checkpoint at seq 20 made ") == true)
        #expect(report.findings.first?.message.contains("rewritten or forked (even if every MAC verifies)") == true)
    }

    @Test("a changed anchor file is checkpoint-invalid; an anchor of another store only is anchor-mismatch")
    func badAnchors() async throws {
        let (path, anchor, cp) = try await anchoredStore(count: 5)
        let file = anchor + "/" + DirectoryAnchor.fileName(of: cp)
        var text = try String(contentsOfFile: file, encoding: .utf8)
        let root = cp.merkleRoot.map { String(format: "%02x", $0) }.joined()
        text = text.replacingOccurrences(of: root, with: String(root.reversed()))
        try text.write(toFile: file, atomically: false, encoding: .utf8)
        let report = try await verifyAnchored(path, anchor)
        #expect(report.findings.map(\.kind) == [.checkpointInvalid])
        #expect(report.findings.first?.message == "the checkpoint at seq 5 in anchor file \(file) is invalid: its Ed25519 signature does not verify (the checkpoint was changed or forged)")

        // The store file replaced by another store (same HMAC key): the anchor names none of its checkpoints.
        try FileManager.default.removeItem(atPath: file)
        let other = dir.path("other.db")
        let otherStore = try await AuditStore.create(at: other, keys: keys)
        try await otherStore.append(sampleEvent(1))
        try await otherStore.close()
        try DirectoryAnchor(path: anchor).writeSync(cp)
        let swapped = try await verifyAnchored(other, anchor)
        #expect(swapped.findings.map(\.kind) == [.anchorMismatch])
        #expect(swapped.findings.first?.message.contains("but none of this store") == true)
    }

    @Test("audit_checkpoints is append-only for other SQLite clients, and a dropped trigger is schema-tampered")
    func checkpointTableAppendOnly() async throws {
        let (path, _, _) = try await anchoredStore(count: 3)
        for sql in ["DELETE FROM audit_checkpoints;", "UPDATE audit_checkpoints SET seq = 2;",
                    "INSERT INTO audit_checkpoints SELECT 1, created_at, key_version, public_key, chain_head, merkle_root, signature, frontier FROM audit_checkpoints;"] {
            let result = try sqlite3Shell(path, sql)
            #expect(result.status != 0 && result.stderr.contains("AuditDB: audit_checkpoints is append-only"), "\(sql): \(result.stderr)")
        }
        try sqlite3Must(path, "DROP TRIGGER audit_checkpoints_no_delete;")
        let report = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(report.findings.map(\.description) == ["schema-tampered: trigger audit_checkpoints_no_delete is missing (dropped?)"])
    }

    @Test("concurrent checkpoint processes: every one succeeds; the anchor and the store hold one checkpoint per seq")
    func concurrentCheckpointProcesses() async throws {
        let cli = try cliPath()
        let keyFile = dir.path("k.keys"), path = dir.path("s.db"), secret = dir.path("c.key"), pub = dir.path("c.pub")
        let anchor = dir.path("anchor")
        try FileManager.default.createDirectory(atPath: anchor, withIntermediateDirectories: false)
        try KeyFile.write(keys, to: keyFile, replacing: false)
        try await makeStore(at: path, keys: keys, count: 2_000)
        #expect(try run(cli, ["checkpoint-key", "generate", "--out", secret, "--public-out", pub]).status == 0)
        for round in 0..<3 {
            let arguments = ["checkpoint", "--store", path, "--key-file", keyFile, "--signing-key", secret, "--anchor", anchor]
            for result in try runConcurrently(cli, Array(repeating: arguments, count: 4)) {
                #expect(result.status == 0, "round \(round): \(result.stderr)")
            }
            let store = try await AuditStore.open(at: path, keys: keys)
            try await store.append(sampleEvent(10_000 + round))
            try await store.close()
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: anchor)
        #expect(names.filter { $0.hasSuffix(".json") && !$0.hasSuffix(".consistency.json") }.count == 3)
        // One consistency proof per consecutive pair (FORMAT.md 22.3), written once by racing processes.
        #expect(names.filter { $0.hasSuffix(".consistency.json") }.count == 2)
        let report = try await AuditStore.verify(storeAt: path, keys: keys, againstAnchors: [anchor],
                                                 publicKeys: try CheckpointPublicKeys.load(path: pub))
        #expect(report.isIntact, "\(report)")
    }

    @Test("checkpoint-key rotate: new checkpoints use version 2; older ones still verify under the rewritten public file")
    func rotation() async throws {
        let cli = try cliPath()
        let keyFile = dir.path("k.keys"), path = dir.path("s.db"), secret = dir.path("c.key"), pub = dir.path("c.pub")
        let anchor = dir.path("anchor")
        try FileManager.default.createDirectory(atPath: anchor, withIntermediateDirectories: false)
        try KeyFile.write(keys, to: keyFile, replacing: false)
        try await makeStore(at: path, keys: keys, count: 4)
        #expect(try run(cli, ["checkpoint-key", "generate", "--out", secret, "--public-out", pub]).status == 0)
        let again = try run(cli, ["checkpoint-key", "generate", "--out", secret, "--public-out", pub])
        #expect(again.status == 2 && again.stderr.contains("refusing to overwrite a checkpoint key file"))
        #expect(try run(cli, ["checkpoint", "--store", path, "--key-file", keyFile, "--signing-key", secret, "--anchor", anchor]).status == 0)
        let rotated = try run(cli, ["checkpoint-key", "rotate", "--signing-key", secret, "--public-out", pub])
        #expect(rotated.status == 0, "\(rotated.stderr)")
        // No command prints a seed; the secret file is 0600 and the public file holds no seed.
        let seeds = try String(contentsOfFile: secret, encoding: .utf8).split(separator: "\n")
            .filter { $0.hasPrefix("key ") }.map { String($0.split(separator: " ")[3]) }
        #expect(seeds.count == 2)
        let publicText = try String(contentsOfFile: pub, encoding: .utf8)
        for seed in seeds {
            for output in [again, rotated] { #expect(!output.stdout.contains(seed) && !output.stderr.contains(seed)) }
            #expect(!publicText.contains(seed))
        }
        #expect((try FileManager.default.attributesOfItem(atPath: secret)[.posixPermissions] as? Int) == 0o600)
        #expect(rotated.stdout.hasPrefix("added checkpoint key version 2 to "))
        let store = try await AuditStore.open(at: path, keys: keys)
        try await store.append(sampleEvent(5))
        try await store.close()
        let made = try run(cli, ["checkpoint", "--store", path, "--key-file", keyFile, "--signing-key", secret, "--anchor", anchor])
        #expect(made.stdout.contains("checkpoint at seq 5 of store ") && made.stdout.contains("signed by checkpoint key version 2"))
        let ok = try run(cli, ["verify", "--store", path, "--key-file", keyFile, "--anchor", anchor, "--public-key", pub])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(try CheckpointPublicKeys.load(path: pub).keys.map(\.version) == [1, 2])
    }

    @Test("the CLI: checkpoint-key, checkpoint --anchor, verify --anchor (0 intact, 1 truncated)")
    func commandLine() async throws {
        let cli = try cliPath()
        let keyFile = dir.path("k.keys"), path = dir.path("s.db"), secret = dir.path("c.key"), pub = dir.path("c.pub")
        let anchor = dir.path("anchor")
        try FileManager.default.createDirectory(atPath: anchor, withIntermediateDirectories: false)
        try KeyFile.write(keys, to: keyFile, replacing: false)
        try await makeStore(at: path, keys: keys, count: 12)
        let generated = try run(cli, ["checkpoint-key", "generate", "--out", secret, "--public-out", pub])
        #expect(generated.status == 0, "\(generated.stderr)")
        let made = try run(cli, ["checkpoint", "--store", path, "--key-file", keyFile, "--signing-key", secret, "--anchor", anchor])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.hasPrefix("checkpoint at seq 12 of store "))
        let ok = try run(cli, ["verify", "--store", path, "--key-file", keyFile, "--anchor", anchor, "--public-key", pub])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.hasPrefix("intact: 12 rows verified"))
        let noKey = try run(cli, ["verify", "--store", path, "--key-file", keyFile, "--anchor", anchor])
        #expect(noKey.status == 2)
        #expect(noKey.stderr.contains("--anchor needs --public-key FILE"))
        try cutTail(path, above: 9)
        let cut = try run(cli, ["verify", "--store", path, "--key-file", keyFile, "--anchor", anchor, "--public-key", pub])
        #expect(cut.status == 1)
        #expect(cut.stdout.contains("INTEGRITY VIOLATION: 1 finding(s)"))
        #expect(cut.stdout.contains("truncated at seqs 10...12: the log ends at seq 9 but the checkpoint at seq 12 made "))
    }

    @Test("an inclusion proof's length at the largest tree a seq allows: no overflow (a hostile checkpoint may claim it)")
    func proofLengthAtInt64Max() {
        #expect(MerkleTree.proofLength(index: 0, size: Int64.max) == 63)
        #expect(MerkleTree.proofLength(index: Int64.max - 1, size: Int64.max) == 62)
        #expect(MerkleTree.proofLength(index: Int64.max - 2, size: Int64.max) == 63)
    }
}
