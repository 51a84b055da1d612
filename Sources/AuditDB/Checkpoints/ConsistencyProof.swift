public import Foundation

/// A proof that a store's log at one checkpoint is a prefix of its log at a later one
/// (RFC 9162 section 2.1.4; FORMAT.md section 22): the older Merkle tree is contained in the
/// newer, so nothing the older checkpoint covered was changed, removed or reordered.
///
/// It holds no secret and needs no row: anyone with the two checkpoints and the public
/// checkpoint keys checks it with ``invalidity(from:to:publicKeys:)``.
///
/// ```swift
/// let proof = try await store.consistencyProof(from: older, to: newer)
/// if let why = proof.invalidity(from: older, to: newer, publicKeys: keys) { print("fork: \(why)") }
/// ```
public struct ConsistencyProof: Sendable, Hashable {
    /// The store both checkpoints are about.
    public let storeID: StoreID
    /// The older checkpoint's seq (its tree size).
    public let fromSeq: Int64
    /// The newer checkpoint's seq.
    public let toSeq: Int64
    /// The hashes (32 bytes each), in the order of RFC 9162 section 2.1.4.1.
    public let hashes: [[UInt8]]

    /// The format name of the JSON form.
    static let jsonFormat = "auditdb-consistency v1"
    /// At most this many hashes (a proof for sizes below 2^63 has at most 2 × 63).
    static let maxHashes = 128

    /// A proof from its parts (not checked here).
    public init(storeID: StoreID, fromSeq: Int64, toSeq: Int64, hashes: [[UInt8]]) {
        self.storeID = storeID
        self.fromSeq = fromSeq
        self.toSeq = toSeq
        self.hashes = hashes
    }

    /// Why the proof does not show `old` to be a prefix of `new`, or nil if it does.
    ///
    /// Checks, in order: both checkpoints are of the proof's store and valid under `publicKeys`
    /// (section 16.1); the proof's seqs are theirs, oldest first; the proof leads from the older
    /// Merkle root to the newer (RFC 9162 section 2.1.4.2). For equal seqs the proof must be
    /// empty and the two checkpoints must state the same chain head and root.
    ///
    /// - Parameters:
    ///   - old: The older checkpoint.
    ///   - new: The newer checkpoint.
    ///   - publicKeys: The public checkpoint keys to trust; nil to check the two roots only (for
    ///     callers that have already checked both signatures).
    /// - Returns: nil if consistent, else a sentence saying what failed.
    public func invalidity(from old: Checkpoint, to new: Checkpoint, publicKeys: CheckpointPublicKeys?) -> String? {
        for (name, cp) in [("older", old), ("newer", new)] {
            guard cp.storeID == storeID else {
                return "the proof is for store \(storeID) but the \(name) checkpoint is of store \(cp.storeID)"
            }
            if let keys = publicKeys, let why = cp.invalidity(under: keys) {
                return "the \(name) checkpoint (seq \(cp.seq)) is invalid: \(why)"
            }
        }
        guard fromSeq == old.seq, toSeq == new.seq else {
            return "the proof is from seq \(fromSeq) to \(toSeq), not from the checkpoints' seqs \(old.seq) to \(new.seq)"
        }
        guard fromSeq >= 1, fromSeq <= toSeq else { return "the proof's seqs \(fromSeq) to \(toSeq) are not in order" }
        if fromSeq == toSeq, old.chainHead != new.chainHead {
            return "the two checkpoints at seq \(fromSeq) state different chain heads: two different logs (a fork)"
        }
        guard MerkleTree.verifyConsistency(oldSize: fromSeq, newSize: toSeq, oldRoot: old.merkleRoot,
                                           newRoot: new.merkleRoot, proof: hashes)
        else {
            return "the proof does not lead from the Merkle root at seq \(fromSeq) to the one at seq \(toSeq): the newer log does not extend the older (a fork or a rewrite), or the proof was changed"
        }
        return nil
    }

    /// The proof as one line of JSON (keys in a fixed order; hashes in lowercase hex).
    public var json: String {
        "{\"format\":\"\(Self.jsonFormat)\",\"storeId\":\"\(storeID.hex)\",\"fromSeq\":\(fromSeq),\"toSeq\":\(toSeq),"
            + "\"proof\":[\(hashes.map { "\"\(Hex.encode($0))\"" }.joined(separator: ","))]}"
    }

    /// Parses the JSON form strictly (FORMAT.md sections 18 and 22.3).
    /// - Throws: ``AuditError`` `invalidInput` naming what is wrong.
    public init(json data: Data) throws(AuditError) {
        let json = try StrictJSONObject(
            Array(data), what: "consistency proof", article: "a", format: Self.jsonFormat,
            known: ["format", "storeId", "fromSeq", "toSeq", "proof"],
            unknownNote: "a consistency proof holds only its store, its two seqs and its hashes")
        let storeID = try json.storeID
        let from = try json.integer("fromSeq"), to = try json.integer("toSeq")
        guard from >= 1, to >= from else {
            throw AuditError(.invalidInput, "consistency proof seqs must satisfy 1 ≤ fromSeq ≤ toSeq", field: "fromSeq")
        }
        // `elements`: the reader holds an empty array (a proof between equal seqs) as `.integers`.
        guard let items = json.object["proof"]?.elements, items.count <= Self.maxHashes else {
            throw AuditError(.invalidInput, "consistency proof field proof must be an array of at most \(Self.maxHashes) hashes", field: "proof")
        }
        var hashes: [[UInt8]] = []
        for item in items {
            guard let text = item.text, let bytes = Hex.decodeLowercase(text), bytes.count == 32 else {
                throw AuditError(.invalidInput, "consistency proof field proof must hold 64 lowercase hex digits per hash", field: "proof")
            }
            hashes.append(bytes)
        }
        self.init(storeID: storeID, fromSeq: from, toSeq: to, hashes: hashes)
    }
}

/// Makes consistency proofs to one new checkpoint from older ones, for an ``AnchorSink`` that
/// keeps proofs beside checkpoints (a directory anchor, a witness).
public struct ConsistencyProver: Sendable {
    /// The checkpoint being written.
    public let checkpoint: Checkpoint
    let make: @Sendable (Checkpoint) async throws -> ConsistencyProof

    init(checkpoint: Checkpoint, make: @escaping @Sendable (Checkpoint) async throws -> ConsistencyProof) {
        self.checkpoint = checkpoint
        self.make = make
    }

    /// A prover that cannot prove anything (for a checkpoint written without its store).
    public static func unavailable(for checkpoint: Checkpoint) -> ConsistencyProver {
        ConsistencyProver(checkpoint: checkpoint) { _ in
            throw AuditError(.invalidInput, "no consistency proof can be made for \(checkpoint) without its store")
        }
    }

    /// The proof from `older` (an earlier checkpoint of the same store) to ``checkpoint``.
    ///
    /// The proof is checked against both signed roots before it is returned.
    /// - Throws: ``AuditError`` `integrityViolation` if the store's log does not extend `older`
    ///   (another log's checkpoint under this store id: a fork or a rollback); `invalidInput`
    ///   for a checkpoint of another store or a later seq; storage errors.
    public func proof(from older: Checkpoint) async throws -> ConsistencyProof {
        guard older.storeID == checkpoint.storeID, older.seq <= checkpoint.seq, older.seq >= 1 else {
            throw AuditError(.invalidInput, "no consistency proof from \(older) to \(checkpoint): another store, or a later seq")
        }
        return try await make(older)
    }
}
