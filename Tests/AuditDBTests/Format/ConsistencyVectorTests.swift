import Foundation
import Testing

@testable import AuditDB

/// docs/test-vectors/consistency.json (FORMAT.md section 22.5): written by this test with
/// `AUDITDB_UPDATE_VECTORS=1`, and otherwise regenerated and compared byte for byte, so the file
/// cannot drift from the engine. The Python verifier (docs/verifier/consistency.py, run by
/// selftest.py) recomputes every value from the text of the format.
@Suite("Format: consistency proof vectors")
struct ConsistencyVectorTests {
    static let file = FormatVectorTests.root.appendingPathComponent("docs/test-vectors/consistency.json")
    static let size = 12

    static func hex(_ bytes: [UInt8]) -> String { "\"\(Hex.encode(bytes))\"" }
    static func list(_ hashes: [[UInt8]], _ indent: String) -> String {
        hashes.isEmpty ? "[]" : "[\n" + hashes.map { indent + " " + hex($0) }.joined(separator: ",\n") + "\n" + indent + "]"
    }

    /// The file's text, from the engine's own generator and verifier.
    static func generate() -> String {
        let leaves = syntheticLeaves(size)
        var roots: [Int: [UInt8]] = [:]
        var f = MerkleTree.Frontier()
        for (i, leaf) in leaves.enumerated() { f.append(leaf: leaf); roots[i + 1] = f.root! }
        func proof(_ m: Int, _ n: Int) -> [[UInt8]] {
            MerkleTree.consistencyProof(old: frontier(leaves[..<m]), tail: Array(leaves[m..<n].joined()))!
        }
        var out = "{\n \"vectors_format\": \"auditdb-consistency-vectors\",\n \"vectors_version\": 1,\n"
        out += " \"generator\": \"Tests/AuditDBTests/Format/ConsistencyVectorTests.swift (AUDITDB_UPDATE_VECTORS=1)\",\n"
        out += " \"leaves_from\": \"LEAF(i) = SHA256(00 || 'leaf ' || i in decimal ASCII), i = 0...\(size - 1)\",\n"
        out += " \"leaves\": " + list(leaves, " ") + ",\n"
        out += " \"roots\": {\n" + (1...size).map { "  \"\($0)\": \(hex(roots[$0]!))" }.joined(separator: ",\n") + "\n },\n"
        var valid: [String] = []
        for n in 1...size {
            for m in 1...n {
                valid.append("  {\n   \"from\": \(m),\n   \"to\": \(n),\n   \"proof\": \(list(proof(m, n), "   "))\n  }")
            }
        }
        out += " \"proofs\": [\n" + valid.joined(separator: ",\n") + "\n ],\n"
        // Proofs that must fail, each with the reason.
        var invalid: [(Int, Int, [UInt8], [UInt8], [[UInt8]], String)] = []
        let p = proof(6, 11)
        var swapped = p; swapped.swapAt(0, 1)
        var flipped = p; flipped[1][31] ^= 1
        invalid.append((6, 11, roots[6]!, roots[11]!, swapped, "two hashes swapped"))
        invalid.append((6, 11, roots[6]!, roots[11]!, flipped, "one bit of a hash flipped"))
        invalid.append((6, 11, roots[6]!, roots[11]!, Array(p.dropLast()), "last hash dropped"))
        invalid.append((6, 11, roots[6]!, roots[11]!, p + [leaves[0]], "a hash appended"))
        invalid.append((6, 11, roots[6]!, roots[11]!, [], "empty proof for different sizes"))
        invalid.append((5, 11, roots[5]!, roots[11]!, p, "the proof of 6 -> 11 claimed for 5 -> 11"))
        invalid.append((6, 12, roots[6]!, roots[12]!, p, "the proof of 6 -> 11 claimed for 6 -> 12"))
        invalid.append((6, 11, roots[7]!, roots[11]!, p, "another old root"))
        invalid.append((6, 11, roots[6]!, roots[12]!, p, "another new root"))
        invalid.append((4, 8, roots[4]!, roots[8]!, [roots[4]!] + proof(4, 8), "power-of-two old size with its root included"))
        invalid.append((7, 7, roots[7]!, roots[7]!, [roots[7]!], "equal sizes with a non-empty proof"))
        invalid.append((7, 7, roots[7]!, roots[8]!, [], "equal sizes, different roots"))
        invalid.append((8, 7, roots[8]!, roots[7]!, [], "old size above new size"))
        for c in invalid {
            precondition(!MerkleTree.verifyConsistency(oldSize: Int64(c.0), newSize: Int64(c.1), oldRoot: c.2, newRoot: c.3, proof: c.4))
        }
        out += " \"invalid\": [\n" + invalid.map { c in
            "  {\n   \"from\": \(c.0),\n   \"to\": \(c.1),\n   \"old_root\": \(hex(c.2)),\n   \"new_root\": \(hex(c.3)),\n"
                + "   \"proof\": \(list(c.4, "   ")),\n   \"why\": \"\(c.5)\"\n  }"
        }.joined(separator: ",\n") + "\n ],\n"
        let example = ConsistencyProof(storeID: StoreID(bytes: Array(0xA0...0xAF)), fromSeq: 6, toSeq: 11, hashes: p)
        out += " \"proof_json\": \"\(example.json.replacingOccurrences(of: "\"", with: "\\\""))\"\n}\n"
        return out
    }

    @Test("consistency.json is what the engine generates now (AUDITDB_UPDATE_VECTORS=1 rewrites it)")
    func current() throws {
        let text = Self.generate()
        if ProcessInfo.processInfo.environment["AUDITDB_UPDATE_VECTORS"] == "1" {
            try text.write(to: Self.file, atomically: false, encoding: .utf8)
        }
        let stored = try String(contentsOf: Self.file, encoding: .utf8)
        #expect(stored == text, "docs/test-vectors/consistency.json drifted from the engine; rewrite it with AUDITDB_UPDATE_VECTORS=1 and read the diff")
    }

    @Test("every vector proof verifies with the engine, every invalid one fails, the JSON example parses")
    func verdicts() throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.file)) as? [String: Any])
        let roots = try #require(object["roots"] as? [String: String])
        func bytes(_ any: Any?) throws -> [UInt8] { try #require((any as? String).flatMap(Hex.decode)) }
        for case let entry as [String: Any] in try #require(object["proofs"] as? [Any]) {
            let m = try #require(entry["from"] as? Int), n = try #require(entry["to"] as? Int)
            let proof = try #require(entry["proof"] as? [String]).map { try bytes($0) }
            #expect(MerkleTree.verifyConsistency(oldSize: Int64(m), newSize: Int64(n), oldRoot: try bytes(roots["\(m)"]),
                                                 newRoot: try bytes(roots["\(n)"]), proof: proof))
        }
        for case let entry as [String: Any] in try #require(object["invalid"] as? [Any]) {
            let proof = try #require(entry["proof"] as? [String]).map { try bytes($0) }
            #expect(!MerkleTree.verifyConsistency(
                oldSize: Int64(try #require(entry["from"] as? Int)), newSize: Int64(try #require(entry["to"] as? Int)),
                oldRoot: try bytes(entry["old_root"]), newRoot: try bytes(entry["new_root"]), proof: proof), "\(entry["why"] ?? "")")
        }
        let example = try ConsistencyProof(json: Data(try #require(object["proof_json"] as? String).utf8))
        #expect(example.fromSeq == 6 && example.toSeq == 11)
    }
}
