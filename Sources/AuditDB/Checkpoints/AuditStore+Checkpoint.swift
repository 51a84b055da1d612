import CAuditCore
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
    ///   - progress: Told how many rows are read as it goes (``VerificationProgress``). The first
    ///     checkpoint reads every row twice (verification, then the Merkle tree): its total
    ///     counts both.
    /// - Complexity: O(rows since the last checkpoint), O(n) for the first one.
    @discardableResult
    public func checkpoint(signer: CheckpointSigner, anchors: [any AnchorSink] = [],
                           progress: (@Sendable (VerificationProgress) -> Void)? = nil) async throws -> Checkpoint
    {
        let last = try await usableCheckpoint(trusting: signer.publicKeys)
        var treeProgress = progress
        if last == nil {
            var verifyProgress: (@Sendable (VerificationProgress) -> Void)?
            if let progress {
                verifyProgress = { @Sendable step in
                    progress(VerificationProgress(rowsChecked: step.rowsChecked, totalRows: 2 * step.totalRows))
                }
                treeProgress = { @Sendable step in
                    progress(VerificationProgress(rowsChecked: step.totalRows + step.rowsChecked, totalRows: 2 * step.totalRows))
                }
            }
            let report = try await verify(progress: verifyProgress)
            guard report.isLogIntact else {
                throw AuditError(.integrityViolation,
                                 "the store does not verify (\(report.firstFinding.map(String.init(describing:)) ?? "?")); no checkpoint is signed over a damaged log. Run `auditdb verify`.")
            }
        }
        let storeID = self.storeID, keys = self.keys
        let extended: (Int64, [UInt8], MerkleTree.Frontier, tail: [UInt8])?
        do {
            extended = try await Self.extend(pool, from: last, storeID: storeID, keys: keys, erasures: erasureClaims, progress: treeProgress)
        } catch {
            throw AuditError.from(error, while: "checkpoint \(path)")
        }
        let pool = self.pool
        /// Proofs to `new` for anchors that keep them (section 22): from the last checkpoint
        /// without reading a row (its frontier and the leaves just scanned), from any other by
        /// reading the rows.
        func prover(for new: Checkpoint, tail: [UInt8]) -> ConsistencyProver {
            ConsistencyProver(checkpoint: new) { old in
                if let last, old.seq == last.checkpoint.seq, old.merkleRoot == last.checkpoint.merkleRoot,
                   let frontier = MerkleTree.Frontier(size: last.checkpoint.seq, bytes: last.frontier)
                {
                    return try Self.checkedProof(old: old, new: new, frontier: frontier, tail: tail)
                }
                return try await Self.consistencyProof(pool, storeID: storeID, keys: keys, from: old, to: new)
            }
        }
        guard let (seq, head, frontier, tail) = extended else {
            guard let last else {
                throw AuditError(.invalidInput, "the store is empty; a checkpoint covers at least one row")
            }
            for anchor in anchors { try await anchor.write(last.checkpoint, prover: prover(for: last.checkpoint, tail: [])) }
            return last.checkpoint
        }
        let checkpoint = Checkpoint.signed(
            storeID: storeID, seq: seq, chainHead: head, merkleRoot: frontier.root!, time: .now(), key: signer.signingKey)
        for anchor in anchors { try await anchor.write(checkpoint, prover: prover(for: checkpoint, tail: tail)) }
        do {
            // Through the appender, like every write of the log's tables: durable, and ordered
            // after the appends queued before it.
            let recorded = try await appender.exclusiveTransaction { db, _ -> Bool in
                // A row already at this seq is either the same checkpoint recorded meanwhile by
                // another process (the same chain head: nothing to add), or a foreign row; either
                // way the anchors hold the new one, and the next checkpoint extends from the
                // newest usable row (usableCheckpoint).
                if let existing = try Row.fetchOne(db, sql: """
                    SELECT created_at, key_version, public_key, chain_head, merkle_root, signature FROM audit_checkpoints WHERE seq = ?
                    """, arguments: [seq]) {
                    // The same checkpoint only if it is one: this log's head and root, signed
                    // under this signer's keys (anyone can copy the head into a forged row).
                    func blob(_ index: Int) -> [UInt8] { Array(existing.stored(index, as: Data.self) ?? Data()) }
                    let stored = Checkpoint(
                        storeID: storeID, seq: seq, chainHead: blob(3), merkleRoot: blob(4),
                        time: AuditTimestamp(microsecondsSinceEpoch: existing.stored(0, as: Int64.self) ?? 0),
                        keyVersion: existing.stored(1, as: Int64.self).flatMap(UInt32.init(exactly:)) ?? 0,
                        publicKey: blob(2), signature: blob(5))
                    let agrees = stored.chainHead == head && stored.merkleRoot == checkpoint.merkleRoot
                    let same = agrees && stored.invalidity(under: signer.publicKeys) == nil
                    if !same && anchors.isEmpty {
                        // A checkpoint of this log signed by another key (a key pair of its own,
                        // not a version of this signer's) is no foreign row: verification accepts it.
                        if agrees, stored.invalidityUnderOwnKey == nil {
                            throw AuditError(.invalidInput, "the checkpoint at seq \(seq) could not be recorded: audit_checkpoints already holds a checkpoint of this log at that seq, signed by another key (checkpoint key version \(stored.keyVersion), public key \(stored.publicKey.prefix(8).map { String(format: "%02x", $0) }.joined())…), and keeps one per seq; nothing was kept. Sign with that key file, anchor the new checkpoint outside the file (--anchor), or append and checkpoint again")
                        }
                        throw AuditError(.integrityViolation, "the checkpoint at seq \(seq) could not be recorded: audit_checkpoints holds another row at that seq (a foreign row, which `auditdb verify` reports); nothing was kept. Anchor it outside the file (--anchor), or append and checkpoint again")
                    }
                    return false
                }
                try db.execute(
                    sql: """
                        INSERT INTO audit_checkpoints(seq, created_at, key_version, public_key, chain_head, merkle_root, signature, frontier)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [seq, checkpoint.time.microsecondsSinceEpoch, Int64(checkpoint.keyVersion),
                                Data(checkpoint.publicKey), Data(head), Data(checkpoint.merkleRoot),
                                Data(checkpoint.signature), Data(frontier.bytes)])
                return true
            }
            if !recorded {
                logger.warning("audit_checkpoints already holds a row at this seq; the new checkpoint is in the anchors only",
                               metadata: ["store": "\(path)", "seq": "\(seq)"])
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
        try await storedCheckpoints().map(\.checkpoint)
    }

    struct StoredCheckpoint: Sendable {
        var checkpoint: Checkpoint
        var frontier: [UInt8]
    }

    func storedCheckpoints() async throws(AuditError) -> [StoredCheckpoint] {
        let storeID = self.storeID
        do {
            return try await pool.read { db in try Self.readCheckpoints(db, storeID: storeID, upTo: nil, limit: nil) }
        } catch {
            throw AuditError.from(error, while: "read checkpoints of \(path)")
        }
    }

    /// Stored checkpoints as they are (unchecked): all, oldest first; or with `upTo`, those at or
    /// below that seq, newest first, at most `limit`.
    static func readCheckpoints(_ db: Database, storeID: StoreID, upTo: Int64?, limit: Int?) throws -> [StoredCheckpoint] {
        let columns = "seq, created_at, key_version, public_key, chain_head, merkle_root, signature, frontier"
        let sql = upTo == nil
            ? "SELECT \(columns) FROM audit_checkpoints ORDER BY seq"
            : "SELECT \(columns) FROM audit_checkpoints WHERE seq <= \(upTo!) ORDER BY seq DESC LIMIT \(limit ?? -1)"
        return try Row.fetchAll(db, sql: sql).map { row in
            func blob(_ name: String) -> [UInt8] { Array(row.stored(name, as: Data.self) ?? Data()) }
            let kv = row.stored("key_version", as: Int64.self) ?? -1
            return StoredCheckpoint(
                checkpoint: Checkpoint(
                    storeID: storeID, seq: row["seq"], chainHead: blob("chain_head"), merkleRoot: blob("merkle_root"),
                    time: AuditTimestamp(microsecondsSinceEpoch: row.stored("created_at", as: Int64.self) ?? 0),
                    keyVersion: UInt32(exactly: kv) ?? 0, publicKey: blob("public_key"), signature: blob("signature")),
                frontier: blob("frontier"))
        }
    }

    /// Extends the tree of `last` (a checkpoint ``usableCheckpoint(trusting:)`` chose, or none)
    /// over the rows after it: nil if there are none; the new seq, its chain head and the
    /// frontier and the new rows' leaves otherwise. The new rows are verified, chained from
    /// `last`'s chain head.
    static func extend(_ reader: any DatabaseReader, from last: StoredCheckpoint?, storeID: StoreID, keys: KeyRing,
                       erasures: ErasureClaimsCache? = nil, progress: (@Sendable (VerificationProgress) -> Void)? = nil)
        async throws -> (Int64, [UInt8], MerkleTree.Frontier, tail: [UInt8])?
    {
        var frontier = MerkleTree.Frontier()
        var prevMac = [UInt8](repeating: 0, count: 32)
        if let last, let stored = MerkleTree.Frontier(size: last.checkpoint.seq, bytes: last.frontier) {
            frontier = stored
            prevMac = last.checkpoint.chainHead
        }
        let lastSeq = try await reader.read { db in try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries NOT INDEXED") ?? 0 }
        let from = frontier.size + 1
        guard lastSeq >= from else { return nil }
        let scan = try await LeafScan.leaves(reader, range: from...lastSeq, prevMac: prevMac, storeID: storeID, keys: keys, verify: true,
                                             erasures: erasures,
                                             progress: progress.map { RowsProgress(total: lastSeq - from + 1, report: $0) })
        guard scan.findings.isEmpty, scan.lastGood == lastSeq else {
            let first = scan.findings.first.map(String.init(describing:)) ?? "row \(scan.lastGood + 1) cannot be read"
            throw AuditError(.integrityViolation,
                             "the rows after the last checkpoint do not verify (\(first)); no checkpoint is signed over a damaged log. Run `auditdb verify`.")
        }
        for offset in stride(from: 0, to: scan.flat.count, by: 32) {
            frontier.append(leaf: Array(scan.flat[offset..<offset + 32]))
        }
        return (lastSeq, scan.lastMac, frontier, scan.flat)
    }

    /// The newest checkpoint recorded in the store that AuditDB may build on, or nil.
    ///
    /// `audit_checkpoints` is attacker-controlled like every table, so a row is used only if it
    /// is **usable**: its seq is within the log, its Ed25519 signature verifies, its signing key is
    /// one of `trusted` (when given: the keys that sign this store's checkpoints), its stored
    /// frontier reproduces its signed Merkle root, and the log row at its seq still has its signed
    /// chain head. Other rows are skipped (and logged): a forged row can neither make AuditDB sign a
    /// wrong root nor stop it from checkpointing. At most ``checkpointCandidates`` rows are tried,
    /// newest first; with none usable, the caller starts from an empty tree (O(n) once).
    func usableCheckpoint(trusting trusted: CheckpointPublicKeys?) async throws(AuditError) -> StoredCheckpoint? {
        try await usableCheckpointAndSkipped(trusting: trusted).usable
    }

    /// ``usableCheckpoint(trusting:)``, and the seqs of the newer rows skipped on the way (newest
    /// first), for a caller that must say it did not use them.
    func usableCheckpointAndSkipped(trusting trusted: CheckpointPublicKeys?) async throws(AuditError)
        -> (usable: StoredCheckpoint?, skipped: [Int64])
    {
        let storeID = self.storeID
        let (usable, skipped): (StoredCheckpoint?, [Int64])
        do {
            (usable, skipped) = try await pool.read { db in try Self.usableCheckpoint(db, storeID: storeID, trusting: trusted) }
        } catch {
            throw AuditError.from(error, while: "read checkpoints of \(path)")
        }
        if !skipped.isEmpty {
            logger.warning("skipping audit_checkpoints rows that do not match the log or the trusted keys; `auditdb verify` reports them",
                           metadata: ["store": "\(path)", "seqs": "\(skipped.prefix(10).map(String.init).joined(separator: ","))"])
        }
        return (usable, skipped)
    }

    static let checkpointCandidates = 1_000

    static func usableCheckpoint(_ db: Database, storeID: StoreID, trusting trusted: CheckpointPublicKeys?) throws
        -> (StoredCheckpoint?, skipped: [Int64])
    {
        guard try db.tableExists("audit_checkpoints") else { return (nil, []) }
        let lastSeq = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries NOT INDEXED") ?? 0
        var skipped: [Int64] = []
        for stored in try readCheckpoints(db, storeID: storeID, upTo: lastSeq, limit: checkpointCandidates) {
            let cp = stored.checkpoint
            let keyTrusted = trusted.map { keys in keys.key(version: cp.keyVersion)?.bytes == cp.publicKey } ?? true
            guard keyTrusted, cp.selfInvalidity() == nil,
                  let frontier = MerkleTree.Frontier(size: cp.seq, bytes: stored.frontier), frontier.root == cp.merkleRoot,
                  let mac = try StoredMacs(db).mac(at: cp.seq),
                  mac.count == 32, adb_ct_equal(Array(mac), cp.chainHead, 32) == 1
            else {
                skipped.append(cp.seq)
                continue
            }
            return (stored, skipped)
        }
        return (nil, skipped)
    }
}
