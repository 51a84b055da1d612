import CAuditCore

/// The Merkle tree over the log in the style of RFC 6962 / RFC 9162 (FORMAT.md, section 16):
/// leaf = SHA256(0x00 || ENC_ROW), node = SHA256(0x01 || left || right), the RFC 6962 shape for
/// sizes that are not powers of two. Leaf index i (from 0) is the row of seq i + 1.
public enum MerkleTree {
    /// SHA256(0x01 || left || right).
    static func node(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        adb_node_hash(left, right, &out)
        return out
    }

    /// The compact range of the first `size` leaves: the roots of the perfect subtrees along
    /// the right edge, largest first (one per set bit of `size`). With it the tree grows by
    /// one leaf in O(log n) and its root is computed without the leaves.
    struct Frontier: Sendable, Equatable {
        private(set) var size: Int64 = 0
        private(set) var hashes: [[UInt8]] = []

        init() {}

        /// Rebuilds a stored frontier; nil if the byte count does not match `size`.
        init?(size: Int64, bytes: [UInt8]) {
            guard size >= 0, bytes.count == size.nonzeroBitCount * 32 else { return nil }
            self.size = size
            hashes = stride(from: 0, to: bytes.count, by: 32).map { Array(bytes[$0..<$0 + 32]) }
        }

        var bytes: [UInt8] { hashes.flatMap { $0 } }

        mutating func append(leaf: [UInt8]) {
            var hash = leaf
            var n = size
            // Merge with the right-edge subtrees of equal size (the trailing one-bits of size).
            while n & 1 == 1 {
                hash = MerkleTree.node(hashes.removeLast(), hash)
                n >>= 1
            }
            hashes.append(hash)
            size += 1
        }

        /// The root (RFC 6962 MTH); nil for the empty tree.
        var root: [UInt8]? {
            guard var hash = hashes.last else { return nil }
            for left in hashes.dropLast().reversed() { hash = MerkleTree.node(left, hash) }
            return hash
        }
    }

    /// All levels of the tree, each stored flat (32 bytes a node): level 0 = the leaves; an
    /// unpaired last node moves up unchanged, which gives exactly the RFC 6962 shape.
    struct Levels {
        private(set) var levels: [[UInt8]]

        /// The tree over `leaves`, 32 bytes each, concatenated.
        init(flatLeaves: [UInt8]) {
            levels = [flatLeaves]
            while let last = levels.last, last.count > 32 {
                let count = last.count / 32
                var next = [UInt8](repeating: 0, count: (count + 1) / 2 * 32)
                last.withUnsafeBufferPointer { src in
                    next.withUnsafeMutableBufferPointer { dst in
                        var i = 0
                        while i + 1 < count {
                            adb_node_hash(src.baseAddress! + i * 32, src.baseAddress! + (i + 1) * 32, dst.baseAddress! + i / 2 * 32)
                            i += 2
                        }
                        if i < count { (dst.baseAddress! + i / 2 * 32).update(from: src.baseAddress! + i * 32, count: 32) }
                    }
                }
                levels.append(next)
            }
        }

        init(_ leaves: [[UInt8]]) { self.init(flatLeaves: leaves.flatMap { $0 }) }

        /// Leaf `index`.
        func leaf(_ index: Int) -> [UInt8] { Array(levels[0][index * 32..<index * 32 + 32]) }

        /// The root (nil for no leaves).
        var root: [UInt8]? { levels.last.flatMap { $0.count == 32 ? $0 : nil } }

        /// The inclusion proof of leaf `index` (RFC 9162 section 2.1.3.1), from the leaf upwards.
        func proof(index: Int) -> [[UInt8]] {
            var proof: [[UInt8]] = []
            var i = index
            for level in levels.dropLast() {
                let sibling = i ^ 1
                if sibling < level.count / 32 { proof.append(Array(level[sibling * 32..<sibling * 32 + 32])) }
                i >>= 1
            }
            return proof
        }
    }

    /// Checks an inclusion proof (RFC 9162 section 2.1.3.2).
    ///
    /// - Parameters:
    ///   - leaf: The leaf hash.
    ///   - index: Its index (seq − 1).
    ///   - size: The tree size (the checkpoint's seq).
    ///   - proof: The sibling hashes, from the leaf upwards.
    ///   - root: The signed root.
    /// - Returns: Whether the proof leads from the leaf to `root`.
    public static func verifyInclusion(leaf: [UInt8], index: Int64, size: Int64, proof: [[UInt8]], root: [UInt8]) -> Bool {
        guard index >= 0, index < size, leaf.count == 32, root.count == 32, proof.allSatisfy({ $0.count == 32 }) else { return false }
        var fn = index, sn = size - 1
        var r = leaf
        for p in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = node(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
                }
            } else {
                r = node(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && adb_ct_equal(r, root, 32) == 1
    }

    /// How many hashes the inclusion proof of leaf `index` in a tree of `size` has.
    static func proofLength(index: Int64, size: Int64) -> Int {
        var count = 0
        var i = index, n = size
        while n > 1 {
            if i ^ 1 < n { count += 1 }
            i >>= 1
            n = (n >> 1) + (n & 1)  // ⌈n / 2⌉ without overflow at Int64.max
        }
        return count
    }
}
