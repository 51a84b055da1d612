import Foundation
import Testing

@testable import AuditDB

/// docs/test-vectors/shipping.json (FORMAT.md 22.7): the central tables of two shipped stores,
/// and cases that change them, each with the exact findings. Written by this test with
/// `AUDITDB_UPDATE_VECTORS=1`, otherwise regenerated and compared byte for byte; then every case
/// is verified by the engine (``ShippedLogVerifier`` over rows read by
/// ``ShippedEntry/init(columns:)``). The Python verifier (docs/verifier/shipping.py, run by
/// selftest.py) checks the same cases from the text of the format.
@Suite("Format: central shipping vectors")
struct ShippingVectorTests {
    static let file = FormatVectorTests.root.appendingPathComponent("docs/test-vectors/shipping.json")
    typealias V = ShippingVectors
    typealias J = VectorJSON

    /// The file's text.
    static func generate() -> String {
        let rowsA = V.rowsA(), rowsB = V.rowsB()
        let leavesA = V.leaves(rowsA, V.storeA), leavesB = V.leaves(rowsB, V.storeB)
        let a6 = V.checkpoint(V.storeA, leavesA, 6, V.seedA), a8 = V.checkpoint(V.storeA, leavesA, 8, V.seedA)
        let a10 = V.checkpoint(V.storeA, leavesA, 10, V.seedA), b6 = V.checkpoint(V.storeB, leavesB, 6, V.seedB)
        let b7 = V.checkpoint(V.storeB, leavesB, 7, V.seedB)
        let entries: [J] = rowsA.map { row in
            row.seq == 3 || row.seq == 4 ? V.expiredColumns(row, store: V.storeA, expirySeq: 6) : row.columns(V.storeA)
        } + rowsB.map { $0.columns(V.storeB) }
        let batches: [J] = [
            V.batchJSON(V.storeA, 1, 4, a6, V.proof(leavesA, from: 4, to: 6)),
            V.batchJSON(V.storeA, 5, 6, a6, []),
            V.batchJSON(V.storeA, 7, 10, a10, []),
            V.batchJSON(V.storeB, 1, 4, b6, V.proof(leavesB, from: 4, to: 6)),
            V.batchJSON(V.storeB, 5, 6, b6, []),
            V.batchJSON(V.storeB, 7, 7, b7, []),
        ]
        let keys: [J] = [(V.storeA, V.seedA), (V.storeB, V.seedB)].map { store, seed in
            .object([("store_id", .hex(store.bytes)), ("key_version", .int(1)), ("public_key", .hex(V.key(seed).publicKey.bytes))])
        }
        let dump: J = .object([
            ("format", .string("auditdb-shipped-dump v1")), ("keys", .array(keys)),
            ("checkpoints", .array([a6, a8, a10, b6, b7].map(V.checkpointJSON))), ("batches", .array(batches)), ("entries", .array(entries)),
            ("tombstones", .array(V.lateTombstonesB())),
        ])
        let a = Hex.encode(V.storeA.bytes), b = Hex.encode(V.storeB.bytes)
        func set(_ seq: Int64, _ values: [(String, J)], store: String = a) -> J {
            .object([("table", .string("entries")), ("store_id", .string(store)), ("seq", .int(seq)), ("set", .object(values))])
        }
        func setBatch(_ first: Int64, _ values: [(String, J)]) -> J {
            .object([("table", .string("batches")), ("store_id", .string(a)), ("first_seq", .int(first)), ("set", .object(values))])
        }
        func setBatchDelete(_ first: Int64) -> J {
            .object([("table", .string("batches")), ("store_id", .string(a)), ("first_seq", .int(first)), ("delete", .int(1))])
        }
        func late(_ seq: Int64, _ values: [(String, J)]) -> J {
            .object([("table", .string("tombstones")), ("store_id", .string(b)), ("seq", .int(seq)), ("set", .object(values))])
        }
        func finding(_ kind: String, _ from: Int64, _ to: Int64, store: String = a) -> J {
            .object([("store_id", .string(store)), ("kind", .string(kind)), ("from_seq", .int(from)), ("to_seq", .int(to))])
        }
        // Row 7 with another tenant and its leaf recomputed to match: only the tree can tell.
        var forged7 = rowsA[6]
        forged7.tenant = "acme-us"
        let tomb4 = V.tombstone(rowsA[3], store: V.storeA)
        var tomb4Leaf = tomb4
        tomb4Leaf[44] ^= 1
        var tomb3Tag = V.tombstone(rowsA[2], store: V.storeA)
        tomb3Tag[100] ^= 1
        var lateB1Tag = V.tombstone(rowsB[0], store: V.storeB)
        lateB1Tag[150] ^= 1
        // Row 3's tombstone made to name seq 1: the right shape, another row's leaf.
        let lateB1OtherLeaf = V.be(1, 8) + V.tombstone(rowsB[2], store: V.storeB)[8...]
        let lateTable: [(String, J)] = [("table", .string("tombstones")), ("store_id", .string(b))]
        let unregistered = V.key(V.seedUnregistered).publicKey.bytes
        let cases: [(String, String, [J], [J])] = [
            ("intact", "the tables as shipped", [], []),
            ("tenant-changed", "a shipped row's tenant changed", [set(1, [("tenant", .string("acme-us"))])], [finding("changed", 1, 1)]),
            ("shown-actor-changed", "a shown actor changed (its commitment no longer matches)",
             [set(1, [("actor", .string("mallory@example.com"))])], [finding("changed", 1, 1)]),
            ("row-and-leaf-recomputed", "a row changed and its leaf recomputed: the batch's tree no longer reaches the checkpoint",
             [set(7, [("tenant", .string("acme-us")), ("leaf", .hex(forged7.leaf(V.storeA)))])], [finding("changed", 7, 10)]),
            ("withheld-field-filled-in", "a value written into a withheld field",
             [set(2, [("actor", .string("eve@example.com"))])], [finding("changed", 2, 2)]),
            ("withheld-field-guessed", "a withheld field shown with a guessed value and a made-up nonce",
             [set(2, [("withheld", .int(0)), ("actor", .string("bob@example.com")), ("actor_nonce", .hex(V.sha("guess")))])],
             [finding("changed", 2, 2)]),
            ("erased-field-restored", "an erased field shown again with a made-up nonce",
             [set(5, [("erased", .int(0)), ("details", .string(#"{"email":"erin@example.com"}"#)), ("details_nonce", .hex(V.sha("guess")))])],
             [finding("changed", 5, 5)]),
            ("erased-commitment-changed", "an erased field's commitment replaced",
             [set(5, [("details_commitment", .hex(V.sha("other")))])], [finding("changed", 5, 5)]),
            ("outcome-null", "a NULL in a column every row has", [set(10, [("outcome", .null)])], [finding("changed", 10, 10)]),
            ("row-deleted", "a shipped row deleted", [.object([("table", .string("entries")), ("store_id", .string(a)), ("seq", .int(9)), ("delete", .int(1))])],
             [finding("missing", 9, 9)]),
            ("row-added", "a row added above the highest batch",
             [.object([("table", .string("entries")), ("store_id", .string(a)), ("seq", .int(10)), ("copy_to_seq", .int(11))])],
             [finding("extra", 11, 11)]),
            ("batch-tied-to-another-checkpoint", "a batch record names another checkpoint of the store (its proof is for the one at 6)",
             [setBatch(1, [("checkpoint_seq", .int(8)), ("checkpoint_signature", .hex(a8.signature))])], [finding("batch-changed", 1, 4)]),
            ("proof-for-another-store", "a batch's proof replaced by another store's proof of the same sizes",
             [setBatch(1, [("proof", .hex(V.proof(leavesB, from: 4, to: 6)))])], [finding("batch-changed", 1, 4)]),
            ("checkpoint-of-another-store", "the last batch names another store's checkpoint: nothing proves its rows",
             [setBatch(7, [("checkpoint_seq", .int(6)), ("checkpoint_signature", .hex(b6.signature))])], [finding("unproven", 7, 10)]),
            ("checkpoint-not-at-witness", "the last batch names a signature the witness does not hold",
             [setBatch(7, [("checkpoint_signature", .hex(Array(a10.signature.dropLast()) + [a10.signature[63] ^ 1]))])],
             [finding("unproven", 7, 10)]),
            ("proof-with-trailing-bytes", "16 bytes appended to a batch's proof",
             [setBatch(1, [("proof", .hex(V.proof(leavesA, from: 4, to: 6) + [UInt8](repeating: 0, count: 16)))])],
             [finding("batch-changed", 1, 4)]),
            ("key-not-registered", "the store's registered key replaced: no checkpoint is valid under a registered key",
             [.object([("table", .string("keys")), ("store_id", .string(a)), ("set", .object([("public_key", .hex(unregistered))]))])],
             [finding("unproven", 1, 4)]),
            ("tombstone-tag-changed", "a tombstone's match tag changed: the expiry entry's digest no longer matches",
             [set(3, [("tombstone", .hex(tomb3Tag))])], [finding("changed", 3, 4)]),
            ("tombstone-and-leaf-changed", "an expired row's tombstone leaf and its leaf changed together",
             [set(4, [("tombstone", .hex(tomb4Leaf)), ("leaf", .hex(Array(tomb4Leaf[44..<76])))])],
             [finding("changed", 1, 4), finding("changed", 3, 4)]),
            ("expired-recorded-at-changed", "an expired row's recorded_at differs from its tombstone's",
             [set(3, [("recorded_at", .int(rowsA[2].recordedAt + 1))])], [finding("changed", 3, 3)]),
            ("row-made-to-look-expired", "a row replaced by a tombstone naming the expiry entry at 6, which does not list it",
             [set(9, [("action", .null), ("outcome", .null), ("severity", .null), ("origin", .null), ("format_version", .null),
                      ("key_version", .null), ("actor_commitment", .null), ("source_commitment", .null), ("details_commitment", .null),
                      ("tombstone", .hex(V.tombstone(rowsA[8], store: V.storeA))), ("expiry_seq", .int(6))])],
             [finding("changed", 9, 9)]),
            ("row-made-to-look-expired-by-an-unshipped-entry", "a row replaced by a tombstone naming seq 1000, above every checkpoint",
             [set(9, [("action", .null), ("outcome", .null), ("severity", .null), ("origin", .null), ("format_version", .null),
                      ("key_version", .null), ("actor_commitment", .null), ("source_commitment", .null), ("details_commitment", .null),
                      ("tombstone", .hex(V.tombstone(rowsA[8], store: V.storeA))), ("expiry_seq", .int(1000))])],
             [finding("changed", 9, 9)]),
            ("shipment-under-way", "only the first batch committed: rows 3 and 4 expired, their entry at 6 not shipped yet but covered by the batch's checkpoint",
             [setBatchDelete(5), setBatchDelete(7)] + (5...10).map { seq in
                 .object([("table", .string("entries")), ("store_id", .string(a)), ("seq", .int(seq)), ("delete", .int(1))])
             }, []),
            ("late-tombstone-changed", "a late tombstone's match tag changed: the expiry entry at 7 no longer matches",
             [late(1, [("tombstone", .hex(lateB1Tag))])], [finding("changed", 1, 2, store: b)]),
            ("late-tombstone-deleted", "a late tombstone deleted",
             [.object([("table", .string("tombstones")), ("store_id", .string(b)), ("seq", .int(2)), ("delete", .int(1))])],
             [finding("changed", 1, 2, store: b)]),
            ("late-tombstone-of-another-seq", "a late tombstone copied to seq 3, whose bytes name seq 2",
             [.object([("table", .string("tombstones")), ("store_id", .string(b)), ("seq", .int(2)), ("copy_to_seq", .int(3))])],
             [finding("changed", 3, 3, store: b)]),
            ("late-tombstone-naming-no-expiry-entry", "a late tombstone moved to the row at 5, which is no expiry entry",
             [late(1, [("expiry_seq", .int(5))])], [finding("changed", 1, 1, store: b), finding("changed", 1, 2, store: b)]),
            ("late-tombstone-disagrees-with-expired-row", "a late tombstone (taken from store B) at store A's expired seq 3, with another tag",
             [late(2, [("store_id", .string(a)), ("seq", .int(3)), ("expiry_seq", .int(6)), ("tombstone", .hex(tomb3Tag))])],
             [finding("changed", 3, 3), finding("changed", 1, 2, store: b)]),
            ("late-tombstone-duplicated", "a second late tombstone at seq 2 (the primary key dropped): both are left out",
             [.object(lateTable + [("seq", .int(2)), ("copy_to_seq", .int(2))])],
             [finding("changed", 1, 2, store: b), finding("changed", 2, 2, store: b)]),
            ("late-tombstone-short", "a late tombstone cut to 100 bytes",
             [late(2, [("tombstone", .hex(Array(V.tombstone(rowsB[1], store: V.storeB)[0..<100])))])],
             [finding("changed", 1, 2, store: b), finding("changed", 2, 2, store: b)]),
            ("late-tombstone-of-another-row", "a late tombstone at seq 1 holding row 3's leaf",
             [late(1, [("tombstone", .hex(lateB1OtherLeaf))])],
             [finding("changed", 1, 1, store: b), finding("changed", 1, 2, store: b)]),
            ("late-tombstone-for-a-row-not-expired", "the late tombstone of row 2 replaced by a well-formed one of row 3, which did not expire",
             [late(2, [("seq", .int(3)), ("tombstone", .hex(V.tombstone(rowsB[2], store: V.storeB)))])],
             [finding("changed", 1, 2, store: b)]),
            ("late-tombstone-of-an-unknown-store", "a late tombstone moved to a store with no rows or batches",
             [late(2, [("store_id", .string(String(repeating: "c", count: 32)))])],
             [finding("changed", 1, 2, store: b), finding("changed", 2, 2, store: String(repeating: "c", count: 32))]),
            ("expiry-entry-details-withheld", "the expiry entry's details withheld centrally: its tombstones could no longer be checked",
             [.object([("table", .string("entries")), ("store_id", .string(b)), ("seq", .int(7)),
                       ("set", .object([("withheld", .int(4)), ("details", .null), ("details_nonce", .null)]))])],
             [finding("changed", 7, 7, store: b)]),
            ("late-tombstone-equal-to-expired-row", "a late tombstone equal to store A's expired row 3 (counted once there); store B lacks it",
             [late(2, [("store_id", .string(a)), ("seq", .int(3)), ("expiry_seq", .int(6)), ("tombstone", .hex(V.tombstone(rowsA[2], store: V.storeA)))])],
             [finding("changed", 1, 2, store: b)]),
        ]
        let caseJSON: [J] = cases.map { name, why, changes, findings in
            .object([("name", .string(name)), ("why", .string(why)), ("changes", .array(changes)), ("findings", .array(findings))])
        }
        let top: J = .object([
            ("vectors_format", .string("auditdb-shipping-vectors")), ("vectors_version", .int(1)),
            ("generator", .string("Tests/AuditDBTests/Format/ShippingVectorTests.swift (AUDITDB_UPDATE_VECTORS=1)")),
            ("WARNING", .string("PUBLIC TEST-ONLY checkpoint seeds (40..5f store A, 60..7f store B, 80..9f unregistered); never use them")),
            ("dump", dump), ("cases", .array(caseJSON)),
        ])
        return top.render(depth: 3) + "\n"
    }

    @Test("shipping.json is what the engine generates now (AUDITDB_UPDATE_VECTORS=1 rewrites it)")
    func current() throws {
        let text = Self.generate()
        if ProcessInfo.processInfo.environment["AUDITDB_UPDATE_VECTORS"] == "1" {
            try text.write(to: Self.file, atomically: false, encoding: .utf8)
        }
        let stored = try String(contentsOf: Self.file, encoding: .utf8)
        #expect(stored == text, "docs/test-vectors/shipping.json drifted from the engine; rewrite it with AUDITDB_UPDATE_VECTORS=1 and read the diff")
    }

    @Test("batch-changed says whether the checkpoint a batch names is at the witness: a proof or checkpoint edited in the record, or a checkpoint gone from the witness")
    func batchChangedMessages() throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.file)) as? [String: Any])
        let dump = try #require(object["dump"] as? [String: Any])
        let cases = try #require(object["cases"] as? [[String: Any]])
        func changes(_ name: String) throws -> [[String: Any]] {
            let found = try #require(cases.first { $0["name"] as? String == name })
            return try #require(found["changes"] as? [[String: Any]])
        }
        func messages(_ changes: [[String: Any]]) throws -> [String] {
            try ShippedDump.findings(try ShippedDump.applying(changes, to: dump)).map { "\($0.finding.kind) \($0.finding.seqs.lowerBound)...\($0.finding.seqs.upperBound) \($0.finding.message)" }
        }
        for name in ["batch-tied-to-another-checkpoint", "proof-for-another-store"] {
            let got = try messages(try changes(name))
            #expect(got.count == 1 && got[0].hasPrefix("batch-changed 1...4 the batch record's proof, or the checkpoint it names, was changed (its proof does not lead from its rows to the checkpoint at seq "), "\(name): \(got)")
        }
        // The first batch names a signature the witness does not hold (as a checkpoint deleted
        // there would leave it); the batch after it proves its rows.
        var gone = try changes("checkpoint-not-at-witness")
        #expect(gone.count == 1)
        gone[0]["first_seq"] = 1
        var set = try #require(gone[0]["set"] as? [String: Any])
        set["checkpoint_seq"] = 6
        gone[0]["set"] = set
        let got = try messages(gone)
        #expect(got == ["batch-changed 1...4 the checkpoint the batch record names (seq 6) is not at the witness validly signed under a registered key: deleted or changed there, or the record's checkpoint seq or signature was changed; its rows are proven by the batch ending at seq 6"], "\(got)")
    }

    @Test("every case of shipping.json gets exactly its findings from the engine")
    func verdicts() throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.file)) as? [String: Any])
        let dump = try #require(object["dump"] as? [String: Any])
        let cases = try #require(object["cases"] as? [[String: Any]])
        #expect(cases.count >= 20)
        for c in cases {
            let name = try #require(c["name"] as? String)
            let changed = try ShippedDump.applying(try #require(c["changes"] as? [[String: Any]]), to: dump)
            let got = try ShippedDump.findings(changed).map { "\($0.store) \($0.finding.kind) \($0.finding.seqs.lowerBound)...\($0.finding.seqs.upperBound)" }
            let want = try #require(c["findings"] as? [[String: Any]]).map { f in
                "\(f["store_id"]!) \(f["kind"]!) \(f["from_seq"]!)...\(f["to_seq"]!)"
            }
            #expect(got.sorted() == want.sorted(), "case \(name)")
        }
    }
}
