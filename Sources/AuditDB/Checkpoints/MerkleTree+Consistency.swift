import CAuditCore

/// Consistency proofs (RFC 9162 section 2.1.4; FORMAT.md section 22): that the tree of the
/// first `m` leaves is a prefix of the tree of the first `n`, shown with O(log n) hashes.
extension MerkleTree {
    /// The consistency proof from size `m` to size `n` (RFC 9162 section 2.1.4.1,
    /// `PROOF(m, D[n])`), with `subtree(start, count)` giving MTH of leaves start..<start+count.
    ///
    /// Only the subtrees the proof names are asked for: each either lies within the first `m`
    /// leaves and is one of the frontier hashes of `m` (16.2), or lies after leaf `m`.
    /// - Precondition: 1 ≤ m ≤ n. For m = n the proof is empty.
    static func consistencyProof(from m: Int64, to n: Int64, subtree: (Int64, Int64) throws -> [UInt8]) rethrows -> [[UInt8]] {
        precondition(m >= 1 && m <= n, "consistency proof from \(m) to \(n)")
        var proof: [[UInt8]] = []
        /// SUBPROOF(m, D[start ..< start+count], complete), appended in RFC order.
        func subproof(_ m: Int64, _ start: Int64, _ count: Int64, _ complete: Bool) throws {
            if m == count {
                if !complete { proof.append(try subtree(start, count)) }
                return
            }
            let k = largestPowerOfTwo(below: count)
            if m <= k {
                try subproof(m, start, k, complete)
                proof.append(try subtree(start + k, count - k))
            } else {
                try subproof(m - k, start + k, count - k, false)
                proof.append(try subtree(start, k))
            }
        }
        try subproof(m, 0, n, true)
        return proof
    }

    /// The largest power of two strictly below `n` (n ≥ 2).
    static func largestPowerOfTwo(below n: Int64) -> Int64 {
        Int64(1) << (63 - (n - 1).leadingZeroBitCount)
    }

    /// MTH of `count` leaves, 32 bytes each, concatenated in `flat` from leaf `start` on.
    static func subtreeRoot(flat: [UInt8], start: Int, count: Int) -> [UInt8] {
        if count == 1 { return Array(flat[start * 32..<start * 32 + 32]) }
        let k = Int(largestPowerOfTwo(below: Int64(count)))
        return node(subtreeRoot(flat: flat, start: start, count: k), subtreeRoot(flat: flat, start: start + k, count: count - k))
    }

    /// The consistency proof from the tree whose frontier is `old` to that tree extended by
    /// `tail` (the leaves after it, 32 bytes each, concatenated): no other leaf is needed.
    ///
    /// - Returns: The proof, or nil when the proof would need a subtree of the old tree that is
    ///   not one of its frontier hashes (it never does for a frontier of the RFC 6962 shape).
    /// - Complexity: O(tail) hashes.
    static func consistencyProof(old: Frontier, tail: [UInt8]) -> [[UInt8]]? {
        consistencyProof(old: old, to: old.size + Int64(tail.count / 32)) { start, count in
            subtreeRoot(flat: tail, start: Int(start - old.size), count: Int(count))
        }
    }

    /// The consistency proof from the tree whose frontier is `old` to the tree of `n` leaves,
    /// with `after(start, count)` giving MTH of leaves start..<start+count (all at or after
    /// `old.size`): the subtrees before it are the frontier's.
    static func consistencyProof(old: Frontier, to n: Int64, after: (Int64, Int64) -> [UInt8]) -> [[UInt8]]? {
        let m = old.size
        guard m >= 1, n >= m else { return nil }
        // The frontier's subtrees, by (start, count): largest first along the set bits of m.
        var known: [Int64: (Int64, [UInt8])] = [:]
        var start: Int64 = 0
        var hashes = old.hashes[...]
        for bit in stride(from: 62, through: 0, by: -1) where m & (Int64(1) << bit) != 0 {
            known[start] = (Int64(1) << bit, hashes.removeFirst())
            start += Int64(1) << bit
        }
        struct NotInFrontier: Error {}
        return try? consistencyProof(from: m, to: n) { start, count in
            if start >= m { return after(start, count) }
            guard let (size, hash) = known[start], size == count else { throw NotInFrontier() }
            return hash
        }
    }

    /// Checks a consistency proof (RFC 9162 section 2.1.4.2; FORMAT.md section 22.2).
    ///
    /// For `oldSize == newSize` the proof must be empty and the roots equal.
    ///
    /// - Parameters:
    ///   - oldSize: The older tree's size (its checkpoint's seq), ≥ 1.
    ///   - newSize: The newer tree's size, ≥ `oldSize`.
    ///   - oldRoot: The older signed root.
    ///   - newRoot: The newer signed root.
    ///   - proof: The hashes, in the order of RFC 9162.
    /// - Returns: Whether the older tree is a prefix of the newer one.
    public static func verifyConsistency(oldSize: Int64, newSize: Int64, oldRoot: [UInt8], newRoot: [UInt8],
                                         proof: [[UInt8]]) -> Bool
    {
        guard oldSize >= 1, newSize >= oldSize, oldRoot.count == 32, newRoot.count == 32,
              proof.count <= 128, proof.allSatisfy({ $0.count == 32 })
        else { return false }
        if oldSize == newSize { return proof.isEmpty && adb_ct_equal(oldRoot, newRoot, 32) == 1 }
        guard !proof.isEmpty else { return false }
        var path = proof[...]
        // A power-of-two old tree is a node of the new one: its root starts the path.
        if oldSize & (oldSize - 1) == 0 { path = [oldRoot] + path }
        var fn = oldSize - 1, sn = newSize - 1
        while fn & 1 == 1 { fn >>= 1; sn >>= 1 }
        var fr = path.first!, sr = path.first!
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = node(c, fr)
                sr = node(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
                }
            } else {
                sr = node(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && adb_ct_equal(fr, oldRoot, 32) == 1 && adb_ct_equal(sr, newRoot, 32) == 1
    }
}
