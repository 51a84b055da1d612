import Foundation
import Synchronization
import Testing

@_spi(Testing) @testable import AuditDB

/// Bundles of format v2 (FORMAT.md 17.5), the format `export` writes: entry arrays and one
/// multiproof. Each tamper test edits the real files the engine wrote and checks the exact finding.
@Suite("Export bundles, format v2")
struct ExportV2Tests {
    let dir: TempDir
    let keys: KeyRing
    let signer: CheckpointSigner

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        signer = try testSigner()
    }

    static let rootMismatch = rootMismatch(at: 30)

    static func rootMismatch(at seq: Int) -> String {
        "the entries and multiproof.bin do not lead to the Merkle root of the checkpoint at seq \(seq): an entry's value, the commitment of a withheld or erased field, or a hash of multiproof.bin was changed"
    }

    /// 30 sample rows, checkpointed; a tenant-1 export (seqs 1, 4, …, 28) at `b`, signed when
    /// `signed`, and a full export at `all`.
    func bundle(redact: Set<WithholdableField> = [], signed: Bool = false) async throws -> String {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (1...30).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        try await store.export(to: dir.path("b"), filter: ExportFilter(tenant: "tenant-1"), redact: redact, signer: signed ? signer : nil)
        try await store.export(to: dir.path("all"))
        try await store.close()
        return dir.path("b")
    }

    func verify(_ bundle: String, requireStatement: Bool = false) async throws -> ExportVerification {
        try await ExportBundle.verify(at: bundle, publicKeys: signer.publicKeys, requireStatement: requireStatement)
    }

    func findings(_ bundle: String) async throws -> [String] {
        try await verify(bundle).findings.map(\.description)
    }

    func lines(_ bundle: String) throws -> [String] {
        try String(contentsOfFile: bundle + "/entries.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func write(_ lines: [String], _ bundle: String) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: bundle + "/entries.jsonl", atomically: false, encoding: .utf8)
    }

    func proof(_ bundle: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: bundle + "/multiproof.bin")))
    }

    func writeProof(_ bytes: [UInt8], _ bundle: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: bundle + "/multiproof.bin"))
    }

    @Test("a v2 export verifies with only the public key: arrays, no per-entry proof, one multiproof of MP's size")
    func verifies() async throws {
        let b = try await bundle(signed: true)
        let result = try await verify(b, requireStatement: true)
        #expect(result.isValid && result.isCompletenessAttested, "\(result.findings)")
        #expect(result.entriesVerified == 10)
        let manifest = try String(contentsOfFile: b + "/manifest.json", encoding: .utf8)
        #expect(manifest.hasPrefix(#"{"format":"auditdb-export v2","#))
        let first = try #require(try lines(b).first)
        #expect(first.hasPrefix("[1,2,1,") && first.contains(#",["user-1",""#) && !first.contains("leafHash"))
        let seqs = Array(stride(from: Int64(0), to: 30, by: 3))
        #expect(try proof(b).count == Int(MerkleTree.multiproofCount(indices: seqs, size: 30)) * 32)
        // Every leaf exported: nothing to prove beyond the leaves themselves.
        #expect(try proof(dir.path("all")).isEmpty)
        #expect(try await verify(dir.path("all")).entriesVerified == 30)
    }

    @Test("the multiproof: MP's hashes recompute every root, for every subset of small trees")
    func multiproofExhaustive() {
        for size in 1...9 {
            let leaves = (0..<size).flatMap { i in ExportStatement.sha256([UInt8(i)]) }
            let levels = MerkleTree.Levels(flatLeaves: leaves)
            for mask in 1..<(1 << size) {
                let indices = (0..<size).filter { mask & (1 << $0) != 0 }.map(Int64.init)
                let proof = levels.multiproof(indices: indices)
                #expect(proof.count == Int(MerkleTree.multiproofCount(indices: indices, size: Int64(size))) * 32)
                var hashes = stride(from: 0, to: proof.count, by: 32).map { Array(proof[$0..<$0 + 32]) }.makeIterator()
                let chosen = indices.flatMap { levels.leaf(Int($0)) }
                let root = MerkleTree.multiproofRoot(indices: indices, size: Int64(size), leaves: chosen) { out in
                    guard let hash = hashes.next() else { return false }
                    out.update(from: hash, count: 32)
                    return true
                }
                #expect(root == levels.root && hashes.next() == nil, "size \(size), leaves \(indices)")
            }
        }
    }

    @Test("a changed value, shown field or nonce: the root does not match (proof-invalid, no seq)")
    func changedValues() async throws {
        let b = try await bundle()
        let original = try lines(b)
        for (old, new) in [(",\"doc-7\",", ",\"doc-8\","), (",[\"user-0\",\"", ",[\"user-9\",\""), (",\"req-10\",", ",\"req-11\",")] {
            var l = original
            let i = try #require(l.firstIndex { $0.contains(old) }, "\(old)")
            l[i] = l[i].replacingOccurrences(of: old, with: new)
            try write(l, b)
            #expect(try await findings(b) == ["proof-invalid: \(Self.rootMismatch)"], "\(old)")
            #expect(try await verify(b).entriesVerified == 0)
        }
        var l = original
        let at = try #require(l[2].range(of: ",[\"user-0\",\"")).upperBound  // the nonce of seq 7's actor
        l[2].replaceSubrange(at...at, with: l[2][at] == "a" ? "b" : "a")
        try write(l, b)
        #expect(try await findings(b) == ["proof-invalid: \(Self.rootMismatch)"])
    }

    @Test("a removed, added, reordered or repeated entry: the exact finding, as in v1")
    func entriesMoved() async throws {
        let b = try await bundle()
        let original = try lines(b)
        var l = original
        l.remove(at: 3)
        try write(l, b)
        #expect(try await findings(b) == ["entry-missing at seq 10: the manifest lists seq 10 but the bundle has no entry for it: it was removed"])
        let foreign = try lines(dir.path("all"))[29]  // seq 30, tenant-0: genuine
        #expect(foreign.hasPrefix("[30,"))
        try write(original + [foreign], b)
        #expect(try await findings(b) == ["entry-added at seq 30: entry seq 30 (line 11) is not listed in the manifest: it was added"])
        #expect(try await verify(b).entriesVerified == 10)  // the added line is skipped; the rest are proven
        l = original
        l.swapAt(4, 5)  // seqs 13 and 16
        try write(l, b)
        #expect(try await findings(b) == ["entry-out-of-order at seq 13: entry seq 13 (line 6) comes after seq 16: the entries were reordered"])
        l = original
        l.insert(l[2], at: 3)
        try write(l, b)
        #expect(try await findings(b) == ["entry-duplicate at seq 7: seq 7 appears more than once (line 4)"])
    }

    @Test("an altered, missing, extra, swapped or torn multiproof hash: proof-invalid with the exact reason")
    func multiproofTampered() async throws {
        let b = try await bundle()
        let original = try proof(b)
        let count = original.count / 32
        #expect(count >= 2)
        var altered = original
        altered[40] ^= 0x01
        try writeProof(altered, b)
        #expect(try await findings(b) == ["proof-invalid: \(Self.rootMismatch)"])
        let need = "the 10 entries in a tree of 30 leaves need exactly \(count) (hashes were added or removed)"
        try writeProof(Array(original.dropLast(32)), b)
        #expect(try await findings(b) == ["proof-invalid: multiproof.bin holds \(count - 1) hashes; \(need)"])
        try writeProof(original + original.prefix(32), b)
        #expect(try await findings(b) == ["proof-invalid: multiproof.bin holds \(count + 1) hashes; \(need)"])
        try writeProof(Array(original[32..<64] + original[0..<32] + original[64...]), b)
        #expect(try await findings(b) == ["proof-invalid: \(Self.rootMismatch)"])
        try writeProof(Array(original.dropLast(1)), b)
        #expect(try await findings(b) == ["proof-invalid: multiproof.bin is \(original.count - 1) bytes, not a whole number of 32-byte hashes"])
        try FileManager.default.removeItem(atPath: b + "/multiproof.bin")
        #expect(try await findings(b) == ["bundle-malformed: multiproof.bin is missing"])
        try FileManager.default.createSymbolicLink(atPath: b + "/multiproof.bin", withDestinationPath: "/dev/zero")
        #expect(try await findings(b) == ["bundle-malformed: multiproof.bin is not a regular file (a FIFO, device or directory is refused)"])
    }

    @Test("another genuine checkpoint: the manifest and the statement name the other one, the root differs")
    func wrongCheckpoint() async throws {
        let b = try await bundle(signed: true)
        let store = try await AuditStore.open(at: dir.path("s.db"), keys: keys)
        // The exports of `bundle` recorded access entries after seq 30: the later checkpoint is past them.
        try await store.checkpoint(signer: signer)
        try await store.export(to: dir.path("later"), filter: ExportFilter(seqs: 1...1))
        try await store.close()
        try FileManager.default.removeItem(atPath: b + "/checkpoint.json")
        try FileManager.default.copyItem(atPath: dir.path("later") + "/checkpoint.json", toPath: b + "/checkpoint.json")
        let result = try await verify(b)
        let later = try #require(result.checkpoint?.seq)
        #expect(later > 30)
        #expect(result.findings.map(\.description) == [
            "manifest-mismatch: the manifest names another store or checkpoint than checkpoint.json (store \(result.checkpoint!.storeID), seq \(later))",
            "statement-mismatch: checkpoint: the statement binds another checkpoint (seq 30) than checkpoint.json (seq \(later)): it belongs to another export, or the checkpoint was replaced",
            // MP of seqs 1, 4, …, 28 has 15 hashes in a tree of 30 leaves and of 31 or 32: the count fits, the root does not.
            "proof-invalid: \(Self.rootMismatch(at: Int(later)))",
        ])
        #expect(result.entriesVerified == 0)
    }

    @Test("withheld and erased fields: a field withheld after signing is statement-mismatch; an erased commitment changed breaks the root")
    func withheldAndErased() async throws {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (1...30).map { sampleEvent($0) })
        _ = try await store.erase(.seqs([4, 7]), fields: [.actor], reason: "TICKET-9")
        try await store.checkpoint(signer: signer)
        try await store.export(to: dir.path("b"), filter: ExportFilter(tenant: "tenant-1"), redact: [.details], signer: signer)
        try await store.close()
        let b = dir.path("b")
        let ok = try await verify(b, requireStatement: true)
        #expect(ok.isValid && ok.isCompletenessAttested && ok.entriesVerified == 10, "\(ok.findings)")
        let original = try lines(b)
        #expect(original[1].hasPrefix("[4,") && original[1].contains(",{\"erased\":\"") && original[1].contains(",{\"withheld\":\""))
        // Withhold seq 1's source too, with its true commitment: every hash still holds.
        var l = original
        let source = try #require(l[0].range(of: #",\["10\.0\.0\.1","[0-9a-f]{64}"\]"#, options: .regularExpression))
        let commitment = try await sourceCommitment(seq: 1)
        l[0].replaceSubrange(source, with: ",{\"withheld\":\"\(commitment)\"}")
        try write(l, b)
        #expect(try await findings(b) == ["statement-mismatch at seq 1: entry seq 1 withholds source, details, but the statement attests that details was withheld"])
        // Change the commitment of seq 4's erased actor.
        l = original
        let at = try #require(l[1].range(of: ",{\"erased\":\"")).upperBound
        l[1].replaceSubrange(at...at, with: l[1][at] == "a" ? "b" : "a")
        try write(l, b)
        #expect(try await findings(b) == ["proof-invalid: \(Self.rootMismatch(at: 31))"])  // the erasure entry is seq 31
    }

    /// Lowercase hex of seq's source commitment, from a v1 export of that row (v1 shows commitments).
    func sourceCommitment(seq: Int64) async throws -> String {
        let store = try await AuditStore.open(at: dir.path("s.db"), keys: keys)
        try await ExportBundle.formatWritten.withValue(.v1) {
            try await store.export(to: dir.path("v1-\(seq)"), filter: ExportFilter(seqs: seq...seq))
        }
        try await store.close()
        let line = try String(contentsOfFile: dir.path("v1-\(seq)") + "/entries.jsonl", encoding: .utf8)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        return try #require((object["source"] as? [String: Any])?["commitment"] as? String)
    }

    @Test("malformed entry arrays: the element named, at the entry's seq")
    func malformed() async throws {
        let b = try await bundle()
        let original = try lines(b)
        let cases: [(String, String, String)] = [
            ("[1,2,1,", "[1,2,1,1,", "bundle-malformed at seq 1: entry seq 1 has 18 elements; an entry has 17"),
            ("[1,2,1,", "[1,2.0,1,", "bundle-malformed at seq 1: entry seq 1: element 1 (formatVersion) is not an integer in 0...255"),
            ("[1,2,1,", "[1,2,-1,", "bundle-malformed at seq 1: entry seq 1: element 2 (keyVersion) is not an integer in 0...4294967295"),
            (",\"read\",", ",null,", "bundle-malformed at seq 1: entry seq 1: element 6 (action) is not a string"),
            ("\"]]", "\",\"x\"]]", "bundle-malformed at seq 1: entry seq 1: element 16 (details) is not null, [value, nonce], {\"withheld\":commitment} or {\"erased\":commitment} (nonce and commitment 64 lowercase hex digits)"),
        ]
        for (old, new, finding) in cases {
            var l = original
            let range = try #require(l[0].range(of: old), "\(old)")
            l[0].replaceSubrange(range, with: new)
            try write(l, b)
            let got = try await findings(b)
            #expect(got.first == finding, "\(old) -> \(new)")
        }
    }

    @Test("--limit, progress and a signed statement work with v2")
    func limitAndProgress() async throws {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (1...30).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        let summary = try await store.export(to: dir.path("b"), filter: ExportFilter(tenant: "tenant-1"), signer: signer, limit: 4)
        try await store.close()
        #expect(summary.isLimited && summary.entryCount == 4 && summary.filter.seqs == 1...10)
        let seen = Mutex<[Int64]>([])
        let result = try await ExportBundle.verify(at: dir.path("b"), publicKeys: signer.publicKeys, requireStatement: true) { p in
            seen.withLock { $0.append(p.rowsChecked) }
        }
        #expect(result.isValid && result.isCompletenessAttested && result.entriesVerified == 4, "\(result.findings)")
        #expect(seen.withLock { $0 } == [4])
    }

    @Test("on the same rows a v2 bundle is less than a third of a v1 bundle")
    func smaller() async throws {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (1...300).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        try await store.export(to: dir.path("v2"), filter: ExportFilter(tenant: "tenant-1"))
        try await ExportBundle.formatWritten.withValue(.v1) { try await store.export(to: dir.path("v1"), filter: ExportFilter(tenant: "tenant-1")) }
        try await store.close()
        func size(_ b: String, _ files: [String]) throws -> Int {
            try files.reduce(0) { $0 + (try FileManager.default.attributesOfItem(atPath: b + "/" + $1)[.size] as? Int ?? 0) }
        }
        let v1 = try size(dir.path("v1"), ["entries.jsonl"]), v2 = try size(dir.path("v2"), ["entries.jsonl", "multiproof.bin"])
        #expect(v2 * 3 < v1, "v1 \(v1) bytes, v2 \(v2) bytes")
    }
}
