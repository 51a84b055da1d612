import CAuditCore

/// Multiproofs (FORMAT.md section 17.5): one proof that several leaves are in the tree, as the
/// hashes of the largest subtrees that hold none of them, listed left to right. Neighbouring
/// leaves share their siblings, so a dense range of k leaves needs O(log n) hashes in all, where
/// k separate inclusion proofs need k·log n.
///
/// With I the sorted leaf indices and D[lo..hi) a subtree of the RFC 6962 shape (16.2):
///
///     MP(I, D[lo..hi)) = [MTH(D[lo..hi))]                           if no index of I is in lo..<hi
///                      = []                                         if hi − lo = 1 (the leaf is in I)
///                      = MP(I, D[lo..lo+k)) || MP(I, D[lo+k..hi))   otherwise, k the largest power of 2 below hi − lo
///
/// and the multiproof of I in a tree of n leaves is MP(I, D[0..n)).
extension MerkleTree {
    /// How many hashes the multiproof of `indices` (strictly increasing, each in 0..<size) has.
    /// - Complexity: O(k log n) for k indices.
    static func multiproofCount(indices: [Int64], size: Int64) -> Int64 {
        guard !indices.isEmpty else { return 0 }
        var count: Int64 = 0
        walk(indices, size) { _, _ in count += 1 } leaf: { _ in }
        return count
    }

    /// Folds the tree over [lo, hi) along MP's definition: `gap(lo, hi)` for a subtree without
    /// an index (one multiproof hash, in order), `leaf(position)` for the leaf of indices[position].
    fileprivate static func walk(_ indices: [Int64], _ size: Int64, gap: (Int64, Int64) -> Void, leaf: (Int) -> Void) {
        func visit(_ lo: Int64, _ hi: Int64, _ a: Int, _ b: Int) {
            if a == b { return gap(lo, hi) }
            if hi - lo == 1 { return leaf(a) }
            let mid = lo + largestPowerOfTwo(below: hi - lo)
            let m = firstPosition(in: indices, a, b, notBelow: mid)
            visit(lo, mid, a, m)
            visit(mid, hi, m, b)
        }
        visit(0, size, 0, indices.count)
    }

    /// The first position in indices[a..<b] whose index is ≥ `value` (b if none).
    private static func firstPosition(in indices: [Int64], _ a: Int, _ b: Int, notBelow value: Int64) -> Int {
        var low = a, high = b
        while low < high {
            let mid = (low + high) / 2
            if indices[mid] < value { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// The root that `leaves` (32 bytes each, concatenated, one per index in order) and the
    /// multiproof hashes give, `next` writing each hash (32 bytes) where MP's order needs it, and
    /// returning false when it runs out (the multiproof is too short: the result is nil).
    ///
    /// Allocation-free on the way: each level of the recursion (at most 64) has its own 64 bytes of
    /// scratch for its two children, so a sparse export costs a hash per node and nothing more.
    /// - Precondition: `indices` strictly increasing within 0..<size, `leaves` 32 bytes per index.
    static func multiproofRoot(indices: [Int64], size: Int64, leaves: [UInt8],
                               next: (UnsafeMutablePointer<UInt8>) -> Bool) -> [UInt8]?
    {
        precondition(!indices.isEmpty && leaves.count == indices.count * 32, "a multiproof proves at least one leaf")
        var short = false
        var scratch = [UInt8](repeating: 0, count: 65 * 64)
        var root = [UInt8](repeating: 0, count: 32)
        leaves.withUnsafeBufferPointer { leaves in
            scratch.withUnsafeMutableBufferPointer { scratch in
                root.withUnsafeMutableBufferPointer { root in
                    func visit(_ lo: Int64, _ hi: Int64, _ a: Int, _ b: Int, _ depth: Int, _ out: UnsafeMutablePointer<UInt8>) {
                        if short { return }
                        if a == b {
                            if !next(out) { short = true }
                            return
                        }
                        if hi - lo == 1 { return out.update(from: leaves.baseAddress! + a * 32, count: 32) }
                        let mid = lo + largestPowerOfTwo(below: hi - lo)
                        let m = firstPosition(in: indices, a, b, notBelow: mid)
                        let left = scratch.baseAddress! + depth * 64, right = left + 32
                        visit(lo, mid, a, m, depth + 1, left)
                        visit(mid, hi, m, b, depth + 1, right)
                        if !short { adb_node_hash(left, right, out) }
                    }
                    visit(0, size, 0, indices.count, 0, root.baseAddress!)
                }
            }
        }
        return short ? nil : root
    }
}

extension MerkleTree.Levels {
    /// MTH of leaves lo..<hi, a subtree of the RFC 6962 shape (a left-aligned power of two, or
    /// the rest of the tree at the right edge): the node at level ⌈log2(hi − lo)⌉, index lo >> level.
    private func subtree(_ lo: Int, _ hi: Int) -> ArraySlice<UInt8> {
        let level = hi - lo == 1 ? 0 : Int.bitWidth - (hi - lo - 1).leadingZeroBitCount
        let index = lo >> level
        return levels[level][index * 32..<index * 32 + 32]
    }

    /// The multiproof (FORMAT.md 17.5) of `indices` (strictly increasing, each a leaf of this
    /// tree): its hashes concatenated in MP's order, 32 bytes each.
    func multiproof(indices: [Int64]) -> [UInt8] {
        var out: [UInt8] = []
        let size = Int64(levels[0].count / 32)
        out.reserveCapacity(Int(MerkleTree.multiproofCount(indices: indices, size: size)) * 32)
        guard !indices.isEmpty else { return out }
        MerkleTree.walk(indices, size, gap: { lo, hi in out += subtree(Int(lo), Int(hi)) }, leaf: { _ in })
        return out
    }
}
