import AuditDBTestSupport
import CAuditCore
import Foundation
import Testing

@testable import AuditDB

/// The consistency proof by the recursive definition of RFC 9162 section 2.1.4.1 over all the
/// leaves (the test's own oracle, independent of the frontier-based generator).
func referenceConsistencyProof(_ m: Int, _ leaves: ArraySlice<[UInt8]>, _ complete: Bool = true) -> [[UInt8]] {
    let n = leaves.count
    if m == n { return complete ? [] : [referenceRoot(leaves)] }
    var k = 1
    while k * 2 < n { k *= 2 }
    let split = leaves.startIndex + k
    if m <= k { return referenceConsistencyProof(m, leaves[..<split], complete) + [referenceRoot(leaves[split...])] }
    return referenceConsistencyProof(m - k, leaves[split...], false) + [referenceRoot(leaves[..<split])]
}

/// Deterministic leaf hashes for the pure tests and the vectors: LEAF(i) = SHA256(00 || "leaf " || i).
func syntheticLeaves(_ count: Int) -> [[UInt8]] {
    (0..<count).map { i in
        let message = [UInt8(0)] + Array("leaf \(i)".utf8)
        var out = [UInt8](repeating: 0, count: 32)
        adb_sha256(message, message.count, &out)
        return out
    }
}

func frontier(_ leaves: ArraySlice<[UInt8]>) -> MerkleTree.Frontier {
    var f = MerkleTree.Frontier()
    for leaf in leaves { f.append(leaf: leaf) }
    return f
}

@Suite("Consistency proofs (RFC 9162 2.1.4)")
struct ConsistencyProofTests {
    static let leaves = syntheticLeaves(41)

    @Test("every pair of sizes up to 40: the proof equals the RFC recursion and verifies")
    func allPairs() throws {
        let leaves = Self.leaves
        for n in 1...40 {
            let newRoot = referenceRoot(leaves[..<n])
            for m in 1...n {
                let old = frontier(leaves[..<m])
                let proof = try #require(MerkleTree.consistencyProof(old: old, tail: Array(leaves[m..<n].joined())))
                #expect(proof == referenceConsistencyProof(m, leaves[..<n]), "m=\(m) n=\(n)")
                #expect(MerkleTree.verifyConsistency(oldSize: Int64(m), newSize: Int64(n), oldRoot: old.root!, newRoot: newRoot, proof: proof))
            }
        }
    }

    @Test("tampering: every flipped byte, swapped nodes, a dropped or extra hash, other sizes, other roots fail")
    func tampering() {
        let leaves = Self.leaves
        for (m, n) in [(1, 2), (3, 7), (4, 8), (6, 8), (5, 13), (7, 40), (16, 33), (31, 32)] {
            let oldRoot = referenceRoot(leaves[..<m]), newRoot = referenceRoot(leaves[..<n])
            let proof = referenceConsistencyProof(m, leaves[..<n])
            func ok(_ p: [[UInt8]], _ a: Int = m, _ b: Int = n, _ r1: [UInt8]? = nil, _ r2: [UInt8]? = nil) -> Bool {
                MerkleTree.verifyConsistency(oldSize: Int64(a), newSize: Int64(b), oldRoot: r1 ?? oldRoot, newRoot: r2 ?? newRoot, proof: p)
            }
            #expect(ok(proof))
            for i in proof.indices {
                for byte in [0, 17, 31] {
                    var bad = proof
                    bad[i][byte] ^= 0x01
                    #expect(!ok(bad), "flipped hash \(i) byte \(byte), m=\(m) n=\(n)")
                }
            }
            for i in proof.indices.dropLast() where proof[i] != proof[i + 1] {
                var swapped = proof
                swapped.swapAt(i, i + 1)
                #expect(!ok(swapped), "swapped \(i), m=\(m) n=\(n)")
            }
            #expect(!ok(Array(proof.dropLast())))
            #expect(!ok(Array(proof.dropFirst())))
            #expect(!ok(proof + [leaves[0]]))
            #expect(!ok([]))
            // The same proof claimed for other sizes, or for the right sizes with other roots.
            for (a, b) in [(m + 1, n), (m - 1, n), (m, n + 1), (m, n - 1)] where a >= 1 && b >= a {
                let r1 = referenceRoot(leaves[..<a]), r2 = referenceRoot(leaves[..<b])
                #expect(!ok(proof, a, b, r1, r2), "proof for \(m)->\(n) accepted as \(a)->\(b)")
            }
            #expect(!ok(proof, m, n, referenceRoot(leaves[1..<(m + 1)]), newRoot))
            #expect(!ok(proof, m, n, oldRoot, referenceRoot(leaves[1..<(n + 1)])))
        }
        // Equal sizes: empty proof and equal roots only.
        let root = referenceRoot(leaves[..<5])
        #expect(MerkleTree.verifyConsistency(oldSize: 5, newSize: 5, oldRoot: root, newRoot: root, proof: []))
        #expect(!MerkleTree.verifyConsistency(oldSize: 5, newSize: 5, oldRoot: root, newRoot: root, proof: [root]))
        #expect(!MerkleTree.verifyConsistency(oldSize: 5, newSize: 5, oldRoot: root, newRoot: referenceRoot(leaves[..<6]), proof: []))
        #expect(!MerkleTree.verifyConsistency(oldSize: 6, newSize: 5, oldRoot: root, newRoot: root, proof: []))
        #expect(!MerkleTree.verifyConsistency(oldSize: 0, newSize: 5, oldRoot: root, newRoot: root, proof: []))
    }

    @Test("the proof's JSON round-trips and is strict")
    func json() throws {
        let proof = ConsistencyProof(storeID: StoreID(bytes: Array(repeating: 7, count: 16)), fromSeq: 3, toSeq: 7,
                                     hashes: referenceConsistencyProof(3, Self.leaves[..<7]))
        #expect(try ConsistencyProof(json: Data(proof.json.utf8)) == proof)
        // Between equal seqs the proof is empty ("proof":[]), and reads back.
        let same = ConsistencyProof(storeID: proof.storeID, fromSeq: 7, toSeq: 7, hashes: [])
        #expect(same.json.contains("\"proof\":[]"))
        #expect(try ConsistencyProof(json: Data(same.json.utf8)) == same)
        for bad in [
            same.json.replacingOccurrences(of: "\"proof\":[]", with: "\"proof\":[1]"),
            same.json.replacingOccurrences(of: "\"proof\":[]", with: "\"proof\":{}"),
            proof.json.replacingOccurrences(of: "\"fromSeq\":3", with: "\"fromSeq\":0"),
            proof.json.replacingOccurrences(of: "\"fromSeq\":3", with: "\"fromSeq\":8"),
            proof.json.replacingOccurrences(of: "\"proof\":[\"", with: "\"proof\":[\"AB"),
            proof.json.replacingOccurrences(of: "}", with: ",\"note\":1}"),
            proof.json.replacingOccurrences(of: "auditdb-consistency v1", with: "auditdb-checkpoint v1"),
            proof.json.replacingOccurrences(of: "\"toSeq\":7", with: "\"toSeq\":7.0"),
        ] {
            #expect(throws: AuditError.self, "\(bad)") { try ConsistencyProof(json: Data(bad.utf8)) }
        }
    }
}
