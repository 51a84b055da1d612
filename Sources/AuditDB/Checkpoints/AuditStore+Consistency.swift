import Foundation
import GRDB

extension AuditStore {
    /// The consistency proof between two checkpoints of this store (RFC 9162 section 2.1.4;
    /// FORMAT.md section 22): that the log `old` signed is a prefix of the log `new` signed.
    ///
    /// The rows are read only after `old` (when the store holds `old`'s frontier in
    /// `audit_checkpoints` and it folds to `old`'s root), else from seq 1. The proof is checked
    /// against both signed roots before it is returned, so a proof from this function always
    /// verifies with ``ConsistencyProof/invalidity(from:to:publicKeys:)``.
    ///
    /// - Parameters:
    ///   - old: The older checkpoint (from an anchor, a witness or ``checkpoints()``).
    ///   - new: The newer one (same store, seq ≥ `old.seq`).
    /// - Returns: The proof.
    /// - Throws: ``AuditError`` `invalidInput` for checkpoints of another store or out of order;
    ///   `integrityViolation` when this store's rows do not hash to one of the two roots (the
    ///   checkpoint is of another copy of the log: forked, rewritten or rolled back); storage errors.
    /// - Complexity: O(new.seq − old.seq) with `old`'s frontier stored, else O(new.seq).
    public func consistencyProof(from old: Checkpoint, to new: Checkpoint) async throws -> ConsistencyProof {
        do {
            return try await Self.consistencyProof(pool, storeID: storeID, keys: keys, from: old, to: new)
        } catch {
            throw AuditError.from(error, while: "prove consistency in \(path)")
        }
    }

    static func consistencyProof(_ reader: any DatabaseReader, storeID: StoreID, keys: KeyRing,
                                 from old: Checkpoint, to new: Checkpoint) async throws -> ConsistencyProof
    {
        guard old.storeID == storeID, new.storeID == storeID else {
            throw AuditError(.invalidInput, "a consistency proof is between two checkpoints of this store (\(storeID)); got stores \(old.storeID) and \(new.storeID)")
        }
        guard old.seq >= 1, old.seq <= new.seq else {
            throw AuditError(.invalidInput, "a consistency proof goes from an older checkpoint to a newer one; got seq \(old.seq) to \(new.seq)")
        }
        if old.seq == new.seq {
            guard old.chainHead == new.chainHead, old.merkleRoot == new.merkleRoot else {
                throw AuditError(.integrityViolation, "\(old) and \(new) state different logs at one seq (a fork)")
            }
            return ConsistencyProof(storeID: storeID, fromSeq: old.seq, toSeq: new.seq, hashes: [])
        }
        let stored = try await reader.read { db in
            try readCheckpoints(db, storeID: storeID, upTo: old.seq, limit: 1).first
        }
        var frontier = MerkleTree.Frontier()
        if let stored, stored.checkpoint.seq == old.seq,
           let f = MerkleTree.Frontier(size: old.seq, bytes: stored.frontier), f.root == old.merkleRoot
        {
            frontier = f
        }
        let start = frontier.size + 1
        let scan = try await LeafScan.leaves(reader, range: start...new.seq, prevMac: [UInt8](repeating: 0, count: 32),
                                             storeID: storeID, keys: keys, verify: false)
        guard scan.lastGood == new.seq else {
            throw AuditError(.integrityViolation,
                             "row \(scan.lastGood + 1) is missing or unreadable, so the log up to seq \(new.seq) cannot be proven; run `auditdb verify`")
        }
        var tail = scan.flat
        if frontier.size < old.seq {
            let count = Int(old.seq - frontier.size) * 32
            for offset in stride(from: 0, to: count, by: 32) { frontier.append(leaf: Array(tail[offset..<offset + 32])) }
            tail.removeFirst(count)
        }
        return try checkedProof(old: old, new: new, frontier: frontier, tail: tail)
    }

    /// The proof from `frontier` (the tree at `old`) extended by `tail`, checked against both
    /// signed roots.
    static func checkedProof(old: Checkpoint, new: Checkpoint, frontier: MerkleTree.Frontier, tail: [UInt8]) throws(AuditError)
        -> ConsistencyProof
    {
        guard frontier.root == old.merkleRoot else {
            throw AuditError(.integrityViolation,
                             "this store's rows 1...\(old.seq) do not hash to the Merkle root of \(old): that checkpoint is of another copy of the log (forked, rewritten or rolled back)")
        }
        let hashes = MerkleTree.consistencyProof(old: frontier, tail: tail) ?? []
        let proof = ConsistencyProof(storeID: old.storeID, fromSeq: old.seq, toSeq: new.seq, hashes: hashes)
        if let why = proof.invalidity(from: old, to: new, publicKeys: nil) {
            throw AuditError(.integrityViolation, "this store's log does not reach \(new) from \(old): \(why)")
        }
        return proof
    }
}
