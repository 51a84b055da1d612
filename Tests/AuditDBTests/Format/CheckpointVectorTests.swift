import CAuditCore
import Foundation
import Testing

@_spi(Testing) @testable import AuditDB

/// docs/test-vectors/checkpoints.json and bundle/ were produced by the independent Python
/// verifier (pure-Python Ed25519 from RFC 8032) from docs/FORMAT.md; these tests recompute them
/// with the engine's code, and run the Python bundle verifier on a bundle the engine wrote.
@Suite("Format: checkpoint and export vectors")
struct CheckpointVectorTests {
    static let root = FormatVectorTests.root
    let vectors: [String: Any]
    let base: [String: Any]

    init() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("docs/test-vectors/checkpoints.json"))
        vectors = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let baseData = try Data(contentsOf: Self.root.appendingPathComponent("docs/test-vectors/vectors.json"))
        base = try #require(try JSONSerialization.jsonObject(with: baseData) as? [String: Any])
    }

    func hex(_ text: Any?) throws -> [UInt8] { try #require((text as? String).flatMap(Hex.decode)) }

    @Test("leaves (C), Merkle roots and inclusion proofs match the vectors")
    func merkle() throws {
        let rows = try #require(base["rows"] as? [[String: Any]])
        let leaves = try #require(vectors["leaves"] as? [String]).map { try hex($0) }
        #expect(leaves.count == rows.count)
        for (row, leaf) in zip(rows, leaves) {
            let enc = try hex(row["enc_row"])
            var out = [UInt8](repeating: 0, count: 32)
            let message = [UInt8(0)] + enc
            adb_sha256(message, message.count, &out)
            #expect(out == leaf)
        }
        let roots = try #require(vectors["roots"] as? [String: String])
        var frontier = MerkleTree.Frontier()
        for (n, leaf) in leaves.enumerated() {
            frontier.append(leaf: leaf)
            #expect(frontier.root == (try hex(roots[String(n + 1)])))
        }
        for proof in try #require(vectors["inclusion_proofs"] as? [[String: Any]]) {
            let index = try #require(proof["index"] as? Int), size = try #require(proof["size"] as? Int)
            let expected = try #require(proof["proof"] as? [String]).map { try hex($0) }
            #expect(MerkleTree.Levels(Array(leaves[0..<size])).proof(index: index) == expected)
        }
    }

    @Test("the checkpoint: public key from the seed, statement, deterministic Ed25519 signature, JSON")
    func checkpoint() throws {
        let key = try #require(vectors["checkpoint_key"] as? [String: Any])
        let seed = try hex(key["seed"])
        let signing = try seed.withUnsafeBytes { try CheckpointSigningKey(version: 1, seed: $0) }
        #expect(signing.publicKey.bytes == (try hex(key["public_key"])))
        let json = try #require(vectors["checkpoint_json"] as? String)
        let cp = try Checkpoint(json: Data(json.utf8))
        #expect(cp.statement == (try hex(vectors["statement"])))
        #expect(cp.json == json)
        let resigned = Checkpoint.signed(storeID: cp.storeID, seq: cp.seq, chainHead: cp.chainHead, merkleRoot: cp.merkleRoot,
                                         time: cp.time, key: signing)
        #expect(resigned.signature == cp.signature)
        let pub = try CheckpointPublicKeys.load(path: Self.root.appendingPathComponent("docs/test-vectors/checkpoint.pub").path)
        #expect(cp.invalidity(under: pub) == nil)
    }

    @Test("the vector bundles of both formats (written by the Python generator) verify with the engine, under one statement",
          arguments: ["bundle", "bundle-v2"])
    func vectorBundle(directory: String) async throws {
        let pub = try CheckpointPublicKeys.load(path: Self.root.appendingPathComponent("docs/test-vectors/checkpoint.pub").path)
        let result = try await ExportBundle.verify(at: Self.root.appendingPathComponent("docs/test-vectors/" + directory).path, publicKeys: pub,
                                                   requireStatement: true)
        #expect(result.isValid, "\(result.findings)")
        #expect(result.entriesVerified == 2)
        #expect(result.isCompletenessAttested)
    }

    @Test("the export statement: FILTER_ENC, the seqs' hash, EXPT_MSG and its deterministic signature, JSON")
    func exportStatement() throws {
        let v = try #require(vectors["export_statement"] as? [String: Any])
        // The filter as a manifest holds it, read by the engine's strict reader.
        let filterJSON = Array(try JSONSerialization.data(withJSONObject: try #require(v["filter"])))
        let filter = try ExportFilter.fromManifest(.object(try JSONReader.readObject(filterJSON, limits: .manifest).members)).get()
        let redact = Set(try #require(v["redacted"] as? [String]).compactMap(WithholdableField.init(rawValue:)))
        #expect(redact == [.details])
        #expect(filter.encoding(redact: redact) == (try hex(v["filter_encoding"])))
        #expect(ExportStatement.sha256(filter.encoding(redact: redact)) == (try hex(v["filter_hash"])))
        let seqs = try #require(v["seqs"] as? [Int64])
        #expect(ExportStatement.seqsHash(seqs) == (try hex(v["seqs_hash"])))
        let json = try #require(v["statement_json"] as? String)
        let statement = try ExportStatement(json: Data(json.utf8))
        #expect(statement.message == (try hex(v["message"])))
        #expect(statement.json == json)
        let cp = try Checkpoint(json: Data(try #require(vectors["checkpoint_json"] as? String).utf8))
        #expect(statement.checkpointHash == (try hex(v["checkpoint_hash"])))
        let key = try #require(vectors["checkpoint_key"] as? [String: Any])
        let signing = try (try hex(key["seed"])).withUnsafeBytes { try CheckpointSigningKey(version: 1, seed: $0) }
        // v1 (no erasedHash): the reference writes v2 since 2026-12-05, so it is re-signed by hand.
        #expect(statement.erasedHash == nil && statement.message.count == 180)
        #expect(signing.sign(statement.message) == statement.signature)
        let pub = try CheckpointPublicKeys.load(path: Self.root.appendingPathComponent("docs/test-vectors/checkpoint.pub").path)
        #expect(statement.invalidity(under: pub) == nil)

        // v2: the same export with the erased fields attested (FORMAT.md 17.3).
        let v2 = try #require(vectors["export_statement_v2"] as? [String: Any])
        let erased = try #require(v2["erased"] as? [[Int64]]).map { (seq: $0[0], mask: UInt8($0[1])) }
        #expect(ExportStatement.erasedHash(erased) == (try hex(v2["erased_hash"])))
        let json2 = try #require(v2["statement_json"] as? String)
        let statement2 = try ExportStatement(json: Data(json2.utf8))
        #expect(statement2.message == (try hex(v2["message"])) && statement2.message.count == 212)
        #expect(statement2.json == json2)
        let resigned = ExportStatement.signed(checkpoint: cp, filter: filter, redact: redact, seqs: seqs, erased: erased,
                                              createdAt: statement.createdAt, key: signing)
        #expect(resigned == statement2)
        #expect(statement2.invalidity(under: pub) == nil)
    }

    @Test("the independent Python verifier accepts a bundle the engine wrote, and rejects it changed, as the engine does",
          arguments: ExportBundle.Format.allCases)
    func pythonVerifiesEngineBundle(format: ExportBundle.Format) async throws {
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let script = Self.root.appendingPathComponent("docs/verifier/auditdb_verify_export.py").path
        guard let python else {
            Issue.record("python3 is not installed; it is needed to run the independent verifier")
            return
        }
        let dir = try TempDir()
        let keys = try testKeyRing(), signer = try testSigner()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (1...9).map { sampleEvent($0) })
        try await store.append(AuditEvent(actor: "Zoë Ångström", action: "document.read", tenant: "tenant-1",
                                          details: ["note": .string("résumé 🔒 \u{202E}")]))
        try await store.checkpoint(signer: signer)
        try await ExportBundle.formatWritten.withValue(format) {
            try await store.export(to: dir.path("b"), filter: ExportFilter(tenant: "tenant-1"), redact: [.source])
        }
        try await store.close()
        try signer.publicKeys.write(to: dir.path("c.pub"))
        let ok = try run(python, [script, dir.path("b"), "--public-key", dir.path("c.pub")])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout == "valid: 4 entries\ncompleteness NOT attested: the bundle has no signed statement.json\n")
        let file = dir.path("b") + "/entries.jsonl"
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let action = format == .v1 ? "\"action\":\"document.read\"" : ",\"document.read\","
        #expect(text.contains(action))
        try text.replacingOccurrences(of: action, with: action.replacingOccurrences(of: "read", with: "edit"))
            .write(toFile: file, atomically: false, encoding: .utf8)
        let bad = try run(python, [script, dir.path("b"), "--public-key", dir.path("c.pub")])
        #expect(bad.status == 1)
        // v1 names the entry (its leaf hash is in the bundle); v2 proves all entries with one
        // multiproof, so the changed root is the finding (FORMAT.md 17.5).
        let finding = format == .v1
            ? "entry-changed at seq 10: entry seq 10: its values do not hash to its leaf hash: a value or the commitment of a withheld field (source) was changed"
            : "proof-invalid: the entries and multiproof.bin do not lead to the Merkle root of the checkpoint at seq 10: an entry's value, the commitment of a withheld or erased field, or a hash of multiproof.bin was changed"
        #expect(bad.stdout == "EXPORT INVALID: 1 finding(s)\n  \(finding)\n", "\(bad.stdout)")
        let engine = try await ExportBundle.verify(at: dir.path("b"), publicKeys: signer.publicKeys)
        #expect(engine.findings.map(\.description) == [finding])
    }
}
