import Foundation
import GRDB
import Logging

extension AuditStore {
    /// Makes a signed checkpoint of the log as it is now, stores it in the store, and writes it
    /// to every anchor.
    ///
    /// The store must verify intact up to the new checkpoint: the first checkpoint verifies the
    /// whole store; later ones check that the last stored checkpoint's frontier reproduces its
    /// signed root and that the last checkpointed row still has the signed chain head, then
    /// verify only the rows appended since, chained from it, and extend the Merkle tree with them.
    /// If no row was appended since the last checkpoint, that checkpoint is returned (and
    /// written to the anchors again, which keeps an anchor that already holds it unchanged).
    ///
    /// ```swift
    /// let signer = try CheckpointSigner.load(path: "/etc/auditdb/checkpoint.key")
    /// let checkpoint = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: "/mnt/worm/audit")])
    /// ```
    ///
    /// - Parameters:
    ///   - signer: The checkpoint signing key (the newest version signs).
    ///   - anchors: Where to write the checkpoint besides the store. Written before the store
    ///     records it; if one fails, the error is thrown and the store does not record it.
    /// - Returns: The checkpoint.
    /// - Throws: ``AuditError`` `invalidInput` for an empty store; `integrityViolation` if the
    ///   store does not verify (nothing is signed); storage errors; an anchor's error.
    /// - Complexity: O(rows since the last checkpoint), O(n) for the first one.
    @discardableResult
    public func checkpoint(signer: CheckpointSigner, anchors: [any AnchorSink] = []) async throws -> Checkpoint {
        let last = try await storedCheckpoints(latestOnly: true).last
        if last == nil {
            let report = try await verify()
            guard report.isIntact else {
                throw AuditError(.integrityViolation,
                                 "the store does not verify (\(report.firstFinding.map(String.init(describing:)) ?? "?")); no checkpoint is signed over a damaged log. Run `auditdb verify`.")
            }
        }
        let storeID = self.storeID, keys = self.keys
        let extended: (Int64, [UInt8], MerkleTree.Frontier)?
        do {
            extended = try await Self.extend(pool, from: last, storeID: storeID, keys: keys)
        } catch {
            throw AuditError.from(error, while: "checkpoint \(path)")
        }
        guard let (seq, head, frontier) = extended else {
            guard let last else {
                throw AuditError(.invalidInput, "the store is empty; a checkpoint covers at least one row")
            }
            for anchor in anchors { try await anchor.write(last.checkpoint) }
            return last.checkpoint
        }
        let checkpoint = Checkpoint.signed(
            storeID: storeID, seq: seq, chainHead: head, merkleRoot: frontier.root!, time: .now(), key: signer.signingKey)
        for anchor in anchors { try await anchor.write(checkpoint) }
        do {
            try await pool.write { db in
                let latest = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_checkpoints") ?? 0
                guard latest < seq else {
                    throw AuditError(.busy, "another checkpoint (seq \(latest)) was recorded meanwhile; retry")
                }
                try db.execute(
                    sql: """
                        INSERT INTO audit_checkpoints(seq, created_at, key_version, public_key, chain_head, merkle_root, signature, frontier)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [seq, checkpoint.time.microsecondsSinceEpoch, Int64(checkpoint.keyVersion),
                                Data(checkpoint.publicKey), Data(head), Data(checkpoint.merkleRoot),
                                Data(checkpoint.signature), Data(frontier.bytes)])
            }
        } catch {
            throw AuditError.from(error, while: "record checkpoint \(seq) in \(path)")
        }
        logger.info("checkpoint signed", metadata: ["store": "\(path)", "seq": "\(seq)", "anchors": "\(anchors.count)"])
        return checkpoint
    }

    /// The checkpoints recorded in the store, oldest first.
    ///
    /// These are copies inside the file; only checkpoints read back from an anchor outside it
    /// (``verify(againstAnchors:publicKeys:)``) prove anything against someone who can write the file.
    public func checkpoints() async throws -> [Checkpoint] {
        try await storedCheckpoints(latestOnly: false).map(\.checkpoint)
    }

    struct StoredCheckpoint: Sendable {
        var checkpoint: Checkpoint
        var frontier: [UInt8]
    }

    func storedCheckpoints(latestOnly: Bool) async throws(AuditError) -> [StoredCheckpoint] {
        let storeID = self.storeID
        do {
            return try await pool.read { db in try Self.readCheckpoints(db, storeID: storeID, latestOnly: latestOnly) }
        } catch {
            throw AuditError.from(error, while: "read checkpoints of \(path)")
        }
    }

    static func readCheckpoints(_ db: Database, storeID: StoreID, latestOnly: Bool) throws -> [StoredCheckpoint] {
        let sql = """
            SELECT seq, created_at, key_version, public_key, chain_head, merkle_root, signature, frontier
            FROM audit_checkpoints ORDER BY seq \(latestOnly ? "DESC LIMIT 1" : "")
            """
        return try Row.fetchAll(db, sql: sql).map { row in
            func blob(_ name: String) -> [UInt8] { Array((row[name] as Data?) ?? Data()) }
            let kv = row["key_version"] as Int64? ?? -1
            return StoredCheckpoint(
                checkpoint: Checkpoint(
                    storeID: storeID, seq: row["seq"], chainHead: blob("chain_head"), merkleRoot: blob("merkle_root"),
                    time: AuditTimestamp(microsecondsSinceEpoch: row["created_at"] ?? 0),
                    keyVersion: UInt32(exactly: kv) ?? 0, publicKey: blob("public_key"), signature: blob("signature")),
                frontier: blob("frontier"))
        }
    }

    /// Checks the last checkpoint against the store and extends its tree over the rows after
    /// it: nil if there are none; the new seq, its chain head and the frontier otherwise.
    static func extend(_ reader: any DatabaseReader, from last: StoredCheckpoint?, storeID: StoreID, keys: KeyRing)
        async throws -> (Int64, [UInt8], MerkleTree.Frontier)?
    {
        let (start, prevMac, lastSeq) = try await reader.read { db in try Self.checkLast(db, last) }
        var frontier = start
        let from = frontier.size + 1
        guard lastSeq >= from else { return nil }
        let scan = try await LeafScan.leaves(reader, range: from...lastSeq, prevMac: prevMac, storeID: storeID, keys: keys, verify: true)
        guard scan.findings.isEmpty, scan.lastGood == lastSeq else {
            let first = scan.findings.first.map(String.init(describing:)) ?? "row \(scan.lastGood + 1) cannot be read"
            throw AuditError(.integrityViolation,
                             "the rows after the last checkpoint do not verify (\(first)); no checkpoint is signed over a damaged log. Run `auditdb verify`.")
        }
        for offset in stride(from: 0, to: scan.flat.count, by: 32) {
            frontier.append(leaf: Array(scan.flat[offset..<offset + 32]))
        }
        return (lastSeq, scan.lastMac, frontier)
    }

    /// Checks the last stored checkpoint against the store: its frontier, its signature, and
    /// the chain head of its row. Returns its frontier, that chain head and the current last seq.
    static func checkLast(_ db: Database, _ last: StoredCheckpoint?) throws -> (MerkleTree.Frontier, [UInt8], Int64) {
        var frontier = MerkleTree.Frontier()
        var prevMac = [UInt8](repeating: 0, count: 32)
        if let last {
            let cp = last.checkpoint
            guard let stored = MerkleTree.Frontier(size: cp.seq, bytes: last.frontier), stored.root == cp.merkleRoot else {
                throw AuditError(.integrityViolation,
                                 "the frontier stored with the last checkpoint (seq \(cp.seq)) does not reproduce its signed Merkle root; the checkpoint table was tampered with. Run `auditdb verify --anchor`.")
            }
            if let why = cp.selfInvalidity() {
                throw AuditError(.integrityViolation, "the last stored checkpoint (seq \(cp.seq)) is invalid: \(why)")
            }
            guard let mac = try Data.fetchOne(db, sql: "SELECT mac FROM audit_entries WHERE seq = ?", arguments: [cp.seq]),
                  Array(mac) == cp.chainHead
            else {
                throw AuditError(.integrityViolation,
                                 "row \(cp.seq) no longer has the chain head signed by the last checkpoint; the log was truncated, rolled back or rewritten. Run `auditdb verify --anchor`.")
            }
            frontier = stored
            prevMac = cp.chainHead
        }
        return (frontier, prevMac, try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries") ?? 0)
    }
}
