import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// Where a central copy of the log stands: the number of leading entries shipped and the Merkle
/// frontier of their leaves (FORMAT.md 16.2). A shipping service keeps it between rounds so that
/// a round reads only the rows after it.
public struct ShippingCursor: Sendable, Equatable {
    let frontier: MerkleTree.Frontier
    /// How many entries (seqs 1…shipped) it covers.
    public var shipped: Int64 { frontier.size }
}

/// What the central copy says of the entries it already holds: its last batch, proven from its
/// last seq (the high-water mark) to ``checkpoint`` with ``proof``. A shipment continues it only
/// if this store's rows up to the high-water mark hash to a tree that proof connects to that
/// checkpoint: the rows shipped before are this store's rows, not another copy's (a forked or
/// rolled-back store, or a batch forged centrally).
public struct ShippedTip: Sendable {
    /// The checkpoint the last batch is proven against (validly signed under a key registered
    /// for the store: the caller checks that at the witness).
    public let checkpoint: Checkpoint
    /// The batch's consistency proof from the high-water mark to ``checkpoint`` (empty when the
    /// batch ends at the checkpoint).
    public let proof: [[UInt8]]

    /// The tip of a central copy.
    public init(checkpoint: Checkpoint, proof: [[UInt8]]) {
        self.checkpoint = checkpoint
        self.proof = proof
    }
}

/// One planned shipment: the verified entries after a cursor up to a checkpoint, cut into
/// batches, each with the consistency proof (FORMAT.md section 22) from its last seq to the
/// checkpoint, so that a central verifier proves every batch against that checkpoint with the
/// public key alone. Made by ``AuditStore/shippingRun(after:through:cursor:batchSize:)``.
public struct ShippingRun: Sendable {
    /// One batch.
    public struct Batch: Sendable {
        /// The seqs it ships.
        public let seqs: ClosedRange<Int64>
        /// The consistency proof from the tree of seqs 1…`seqs.upperBound` to the checkpoint's
        /// (empty for a batch that ends at the checkpoint).
        public let proof: [[UInt8]]
    }

    /// The checkpoint every batch is proven against.
    public let checkpoint: Checkpoint
    /// The batches, in seq order, covering the seqs after the cursor up to ``endSeq``.
    public let batches: [Batch]
    /// The last seq shipped: the checkpoint's, or the seq before ``heldBackAt``.
    public let endSeq: Int64
    /// The seq of the first expired row after the cursor whose expiry entry is above the
    /// checkpoint, where the run stops (nil if none): an expired row is shipped only with a
    /// checkpoint that covers its expiry entry, so that the central verifier can tell it from a
    /// row made to look expired (FORMAT.md 22.7). A newer checkpoint lets it through.
    public let heldBackAt: Int64?
    /// Where the central copy stands once every batch is shipped.
    public let endCursor: ShippingCursor
    /// The leaves after the cursor (32 bytes each), which pass 2 compares each row with.
    let tail: [UInt8]
    let firstSeq: Int64
}

extension AuditStore {
    /// Plans shipping the entries after `shipped` up to `checkpoint` (docs/fleet.md, "Shipping").
    ///
    /// Every row from `shipped + 1` to the checkpoint is verified (MAC and chain, as
    /// ``verify(progress:)`` does) and the checkpoint must match the store (chain head and Merkle
    /// root), so nothing is shipped that the store does not vouch for. The run stops before an
    /// expired row whose expiry entry is above the checkpoint (``ShippingRun/heldBackAt``; it
    /// may then have no batch).
    ///
    /// - Parameters:
    ///   - shipped: How many leading entries the central copy already holds (its high-water mark).
    ///   - checkpoint: A checkpoint of this store with seq > `shipped` (one published to the
    ///     witness, so that the central verifier finds it there).
    ///   - cursor: The cursor a previous run ended at, if it is at `shipped` (saves reading
    ///     rows 1…`shipped`); else the store's recorded frontier at `shipped`, or the rows, are used.
    ///   - batchSize: Entries per batch (≥ 1).
    ///   - tip: What the central copy says of its last batch (nil when it holds nothing of this
    ///     store): this store's rows 1…`shipped` must be the ones it was proven with.
    ///   - witnessed: Other checkpoints of this store the witness holds with `shipped` < seq ≤
    ///     `checkpoint.seq`, under keys registered for the store: this store's rows must give
    ///     the Merkle root of each one whose signature is valid (checked only where the root
    ///     differs). One they do not give was signed over another copy of the log (a fork, or
    ///     this store rolled back and grown again), and the rows are not shipped on top of it.
    /// - Throws: ``AuditError`` `invalidInput` (another store's checkpoint, nothing to ship),
    ///   `integrityViolation` (the rows do not verify, or do not hash to the checkpoint or to one
    ///   of `witnessed`: the checkpoint is of another copy of the log; or the rows already
    ///   shipped are not this store's), storage errors.
    /// - Complexity: O(checkpoint.seq − shipped) rows read, 32 bytes of memory each; O(shipped)
    ///   more when neither a cursor nor a recorded frontier at `shipped` is at hand.
    public func shippingRun(after shipped: Int64, through checkpoint: Checkpoint, cursor: ShippingCursor? = nil,
                            batchSize: Int = 10_000, tip: ShippedTip? = nil, witnessed: [Checkpoint] = []) async throws -> ShippingRun
    {
        guard checkpoint.storeID == storeID else {
            throw AuditError(.invalidInput, "the checkpoint is of store \(checkpoint.storeID), not of this store (\(storeID))")
        }
        guard shipped >= 0, checkpoint.seq > shipped, batchSize >= 1 else {
            throw AuditError(.invalidInput, "nothing to ship: the central copy holds \(shipped) entries and the checkpoint is at seq \(checkpoint.seq)")
        }
        let storeID = self.storeID, keys = self.keys
        do {
            let start = try await startFrontier(at: shipped, cursor: cursor)
            if let tip { try Self.check(start, continues: tip, storeID: storeID) }
            let prevMac: [UInt8] = shipped == 0
                ? [UInt8](repeating: 0, count: 32)
                : try await pool.read { db in try StoredMacs(db).mac(at: shipped) } ?? []
            guard prevMac.count == 32 else {
                throw AuditError(.integrityViolation, "the row at seq \(shipped), the last one the central copy holds, is missing here or its stored MAC is not 32 bytes, so the next row's link cannot be checked; nothing was shipped. Run `auditdb verify`.")
            }
            // A checkpoint above this store's last row was signed over rows it does not have: by
            // another copy of the store (a fork the fleet auditor reports), or before a rollback.
            let last = try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries NOT INDEXED") ?? 0 }
            guard last >= checkpoint.seq else {
                throw AuditError(.integrityViolation, "the checkpoint to ship against is at seq \(checkpoint.seq), above this store's last row (seq \(last)): another copy of the store signed and published it (a fork; `auditdb-fleet audit` reports it), or this store was rolled back. Nothing was shipped. Find which copy is the real store before shipping again.")
            }
            let scan = try await LeafScan.leaves(pool, range: (shipped + 1)...checkpoint.seq, prevMac: prevMac, storeID: storeID,
                                                 keys: keys, verify: true, erasures: erasureClaims)
            guard scan.findings.isEmpty, scan.lastGood == checkpoint.seq else {
                let first = scan.findings.first.map(String.init(describing:)) ?? "row \(scan.lastGood + 1) cannot be read"
                throw AuditError(.integrityViolation, "the store does not verify from seq \(shipped + 1) up to the checkpoint at seq \(checkpoint.seq) (\(first)); nothing was shipped. Run `auditdb verify`.")
            }
            var whole = start
            let others = Dictionary(grouping: witnessed.filter { $0.seq > shipped && $0.seq <= checkpoint.seq }, by: \.seq)
            for offset in stride(from: 0, to: scan.flat.count, by: 32) {
                whole.append(leaf: Array(scan.flat[offset..<offset + 32]))
                let seq = shipped + 1 + Int64(offset / 32)
                if let other = others[seq]?.first(where: { $0.merkleRoot != whole.root && $0.invalidityUnderOwnKey == nil }) {
                    throw AuditError(.integrityViolation, "the witness holds \(other), signed with this store's registered key, which this store's rows do not give (another Merkle root at seq \(seq)): another copy of the store published it (a fork), or this store was rolled back and grew again. Nothing was shipped. `auditdb-fleet audit` reports it; find which copy is the real store before shipping again (docs/fleet.md, Runbook: fork).")
                }
            }
            guard scan.lastMac == checkpoint.chainHead, whole.root == checkpoint.merkleRoot else {
                throw AuditError(.integrityViolation, "this store's rows do not hash to \(checkpoint) (chain head or Merkle root): it is of another copy of the log (forked, rewritten or rolled back); nothing was shipped. Run `auditdb verify --anchor`.")
            }
            // Each batch's proof from its last seq L to the checkpoint: the frontier at L and the
            // leaves after it.
            var batches: [ShippingRun.Batch] = []
            var frontier = start
            // The subtrees after a batch's end, shared by the batches' proofs: each is hashed once.
            var memo: [SIMD2<Int64>: [UInt8]] = [:]
            func subtree(_ start: Int64, _ count: Int64) -> [UInt8] {
                if count == 1 {
                    let offset = Int(start - shipped) * 32
                    return Array(scan.flat[offset..<offset + 32])
                }
                if let known = memo[SIMD2(start, count)] { return known }
                let k = MerkleTree.largestPowerOfTwo(below: count)
                let hash = MerkleTree.node(subtree(start, k), subtree(start + k, count - k))
                if count >= 64 { memo[SIMD2(start, count)] = hash }
                return hash
            }
            let heldBackAt = try await pool.read { db in try Self.firstExpired(db, in: (shipped + 1)...checkpoint.seq, byEntryAbove: checkpoint.seq) }
            let endSeq = heldBackAt.map { $0 - 1 } ?? checkpoint.seq
            var first = shipped + 1
            while first <= endSeq {
                let last = min(endSeq, first + Int64(batchSize) - 1)
                for seq in first...last {
                    let offset = Int(seq - shipped - 1) * 32
                    frontier.append(leaf: Array(scan.flat[offset..<offset + 32]))
                }
                let proof = last == checkpoint.seq ? [] : (MerkleTree.consistencyProof(old: frontier, to: checkpoint.seq, after: subtree) ?? [])
                batches.append(.init(seqs: first...last, proof: proof))
                first = last + 1
            }
            return ShippingRun(checkpoint: checkpoint, batches: batches, endSeq: endSeq, heldBackAt: heldBackAt,
                               endCursor: ShippingCursor(frontier: frontier), tail: scan.flat, firstSeq: shipped + 1)
        } catch {
            throw AuditError.from(error, while: "plan shipping from \(path)")
        }
    }

    /// Checks that this store still holds the rows a central copy already has: rows
    /// 1…`shipped` must be here, and be the ones its last batch was proven with (`tip`). A
    /// shipper with nothing new to ship runs it, so that a store rolled back to an older backup,
    /// or replaced by another copy, is refused rather than reported as having nothing to ship.
    ///
    /// - Parameter cursor: The previous run's cursor, if it is at `shipped`: its tree was checked
    ///   then, and the rows are not read again (only that the store still reaches `shipped`).
    /// - Throws: ``AuditError`` `integrityViolation` (the store ends below `shipped`, a row is
    ///   missing, or its rows are another log's), storage errors.
    /// - Complexity: O(1) with the cursor, or with a checkpoint recorded at `shipped`; otherwise
    ///   O(`shipped` − the last recorded checkpoint below it) rows read.
    public func checkShippedPrefix(_ shipped: Int64, tip: ShippedTip, cursor: ShippingCursor? = nil) async throws {
        let last = try await lastSeq()
        guard last >= shipped else {
            throw AuditError(.integrityViolation, "the central copy holds entries 1...\(shipped) of this store, but this store ends at seq \(last): it was rolled back (an older backup or copy put in its place) or cut. Nothing was shipped. Run `auditdb verify --anchor` here and `auditdb-fleet audit`.")
        }
        do {
            let start = try await startFrontier(at: shipped, cursor: cursor)
            try Self.check(start, continues: tip, storeID: storeID)
        } catch {
            throw AuditError.from(error, while: "check the entries already shipped from \(path)")
        }
    }

    /// Refuses to continue a central copy whose last batch this store's rows up to the
    /// high-water mark (`start`) do not prove: the copy holds another log's rows.
    static func check(_ start: MerkleTree.Frontier, continues tip: ShippedTip, storeID: StoreID) throws(AuditError) {
        let shipped = start.size, cp = tip.checkpoint
        guard cp.storeID == storeID, shipped >= 1, cp.seq >= shipped, let root = start.root,
              MerkleTree.verifyConsistency(oldSize: shipped, newSize: cp.seq, oldRoot: root, newRoot: cp.merkleRoot, proof: tip.proof)
        else {
            throw AuditError(.integrityViolation, "the central copy's entries 1...\(shipped) were proven against \(cp), but this store's rows 1...\(shipped) are not the ones that proof connects to it: this store is another copy of the log (forked, rewritten or rolled back), or the central copy's last batch was forged. Nothing was shipped. Run `auditdb verify --anchor` here and `auditdb-fleet verify-shipped` centrally.")
        }
    }

    /// The lowest seq of `range` whose row expired under an expiry entry above `seq`, or nil.
    private static func firstExpired(_ db: Database, in range: ClosedRange<Int64>, byEntryAbove seq: Int64) throws -> Int64? {
        guard try db.tableExists("audit_expired") else { return nil }
        return try Int64.fetchOne(db, sql: "SELECT min(seq) FROM audit_expired x WHERE seq >= ? AND seq <= ? AND expiry_seq > ? AND \(Tombstone.inLog)",
                                  arguments: [range.lowerBound, range.upperBound, seq])
    }

    /// The frontier at `shipped`: the cursor's, or the store's newest recorded one at or below it
    /// (checked later, with everything else, against the checkpoint's root) extended by the
    /// leaves of the rows after it, or computed from rows 1…`shipped`. A shipment that ended
    /// between checkpoints (held back, killed, refused as busy) resumes without re-reading the store.
    private func startFrontier(at shipped: Int64, cursor: ShippingCursor?) async throws -> MerkleTree.Frontier {
        if let cursor, cursor.shipped == shipped { return cursor.frontier }
        if shipped == 0 { return MerkleTree.Frontier() }
        let storeID = self.storeID
        let recorded = try await pool.read { db in try Self.readCheckpoints(db, storeID: storeID, upTo: shipped, limit: 1).first }
        var frontier = MerkleTree.Frontier()
        if let recorded, recorded.checkpoint.seq <= shipped, let f = MerkleTree.Frontier(size: recorded.checkpoint.seq, bytes: recorded.frontier),
           f.root == recorded.checkpoint.merkleRoot
        {
            frontier = f
        }
        guard frontier.size < shipped else { return frontier }
        var prevMac = [UInt8](repeating: 0, count: 32)
        if frontier.size > 0 {
            let size = frontier.size
            let stored = try await pool.read { db in try StoredMacs(db).mac(at: size) }
            if let stored, stored.count == 32 { prevMac = stored } else { frontier = MerkleTree.Frontier() }  // from row 1 then
        }
        let scan = try await LeafScan.leaves(pool, range: (frontier.size + 1)...shipped, prevMac: prevMac, storeID: storeID, keys: keys,
                                             verify: false)
        guard scan.lastGood == shipped else {
            throw AuditError(.integrityViolation, "row \(scan.lastGood + 1) is missing or unreadable, so the entries already shipped cannot be followed; run `auditdb verify`")
        }
        for offset in stride(from: 0, to: scan.flat.count, by: 32) { frontier.append(leaf: Array(scan.flat[offset..<offset + 32])) }
        return frontier
    }

    /// What one batch of a ``ShippingRun`` ships: its entries, and the tombstones of rows shipped
    /// whole by an earlier run that an expiry entry of this batch expired (FORMAT.md 22.7).
    public struct ShippedBatch: Sendable {
        /// The batch's entries, in seq order.
        public var entries: [ShippedEntry]
        /// Late tombstones: for each expiry entry of the batch, the tombstones it lists whose seqs
        /// are at or below the run's start (the central copy holds those rows whole, or already as
        /// tombstones shipped ahead of their entry), in seq order; `values` is nil, `expired` set.
        public var lateTombstones: [ShippedEntry]
    }

    /// The entries of one batch of `run`, in seq order: each row's values with the commitments of
    /// its withholdable fields (nonces of the shown ones), or an expired row's tombstone; each
    /// leaf equal to the one verified when the run was planned. With them, the late tombstones
    /// of the batch's expiry entries (``ShippedBatch/lateTombstones``), read in the same snapshot.
    ///
    /// - Parameters:
    ///   - batch: One of `run.batches`.
    ///   - run: The run.
    ///   - withholding: Fields shipped as their commitment only (erased fields always are), except
    ///     in AuditDB's own entries (actions `auditdb.…`), which carry no personal data.
    /// - Throws: ``AuditError`` `integrityViolation` when a row changed since the run was planned,
    ///   or an expiry entry's tombstones are not the ones it lists; `busy` when a row expired since
    ///   the run was planned under an entry above its checkpoint (plan again); `invalidInput` for a
    ///   text value PostgreSQL cannot hold (invalid UTF-8 or a NUL byte).
    public func shippedEntries(_ batch: ShippingRun.Batch, of run: ShippingRun,
                               withholding: Set<WithholdableField> = []) async throws -> ShippedBatch
    {
        let storeID = self.storeID, keys = self.keys
        do {
            return try await pool.read { db in
                var out: [ShippedEntry] = []
                out.reserveCapacity(batch.seqs.count)
                let tombstones = try Self.tombstones(db, batch.seqs)
                func expected(_ seq: Int64) -> ArraySlice<UInt8> {
                    let offset = Int(seq - run.firstSeq) * 32
                    return run.tail[offset..<offset + 32]
                }
                let prev = batch.seqs.lowerBound == 1 ? [UInt8](repeating: 0, count: 32) : try StoredMacs(db).mac(at: batch.seqs.lowerBound - 1) ?? []
                let scan = try LeafScan.scan(db, range: batch.seqs, prevMac: prev, storeID: storeID, keys: keys, verify: false,
                                             onExpired: { seq, leaf in
                    guard let tombstone = tombstones[seq], leaf[...] == expected(seq) else {
                        throw AuditError(.integrityViolation, "expired row \(seq) changed while it was being shipped; nothing of this batch was shipped")
                    }
                    // Expired after the run was planned, by an entry its checkpoint does not cover:
                    // shipped now, it would look made up (FORMAT.md 22.7 rule 4).
                    guard tombstone.expirySeq <= run.checkpoint.seq else {
                        throw AuditError(.busy, "row \(seq) expired while it was being shipped (expiry entry at seq \(tombstone.expirySeq), above the checkpoint at seq \(run.checkpoint.seq)); nothing of this batch was shipped. Ship again: the next shipment stops before it, or ships it with a newer checkpoint")
                    }
                    out.append(ShippedEntry(seq: seq, leaf: leaf, values: nil,
                                            expired: .init(tombstone: tombstone.encoded, expirySeq: tombstone.expirySeq)))
                }) { view, leaf in
                    guard leaf[...] == expected(view.seq) else {
                        throw AuditError(.integrityViolation, "row \(view.seq) changed while it was being shipped; nothing of this batch was shipped. Run `auditdb verify`.")
                    }
                    out.append(try Self.shippedEntry(view, leaf: leaf, storeID: storeID, keys: keys, withholding: withholding))
                }
                guard scan.lastGood == batch.seqs.upperBound else {
                    throw AuditError(.integrityViolation, "row \(scan.lastGood + 1) disappeared while it was being shipped; nothing of this batch was shipped")
                }
                return ShippedBatch(entries: out, lateTombstones: try Self.lateTombstones(db, of: out, shippedBefore: run.firstSeq - 1))
            }
        } catch {
            throw AuditError.from(error, while: "read entries to ship from \(path)")
        }
    }

    /// The tombstones, at seqs up to `shipped`, of the expiry entries among `entries` (verified
    /// rows): the central copy received those rows before they expired. Each entry's tombstones
    /// are checked against it (count and digest, FORMAT.md 20.3) first: the central tables are
    /// append-only, and a set shipped incomplete would be reported there for ever.
    private static func lateTombstones(_ db: Database, of entries: [ShippedEntry], shippedBefore shipped: Int64) throws -> [ShippedEntry] {
        var out: [ShippedEntry] = []
        for entry in entries {
            guard let values = entry.values, values.isExpiryEntry else { continue }
            let record: ExpiryRecord
            do {
                guard let parsed = try values.expiryRecord(seq: entry.seq) else { continue }
                record = parsed
            } catch {
                throw AuditError(.integrityViolation, "the expiry entry at seq \(entry.seq) cannot be read (\(error.reason)); nothing of this batch was shipped. Run `auditdb verify`.")
            }
            guard record.first <= shipped else { continue }
            let all = try tombstones(db, record.first...record.last).values.filter { $0.expirySeq == entry.seq }.sorted { $0.seq < $1.seq }
            guard Int64(all.count) == record.count, Tombstone.digest(all) == record.digest else {
                throw AuditError(.integrityViolation, "the tombstones of the expiry entry at seq \(entry.seq) are not the ones it lists (\(all.count) found, \(record.count) listed, or their bytes differ); nothing of this batch was shipped. Run `auditdb verify`.")
            }
            out += all.filter { $0.seq <= shipped }.map { t in
                ShippedEntry(seq: t.seq, leaf: t.leaf, values: nil, expired: .init(tombstone: t.encoded, expirySeq: t.expirySeq))
            }
        }
        return out
    }

    /// The full tombstones of `range` (FORMAT.md 20.1), by seq.
    private static func tombstones(_ db: Database, _ range: ClosedRange<Int64>) throws -> [Int64: Tombstone] {
        guard try db.tableExists("audit_expired") else { return [:] }
        var out: [Int64: Tombstone] = [:]
        let rows = try Row.fetchCursor(db, sql: """
            SELECT seq, key_version, mac, leaf, recorded_at, tags, expiry_seq FROM audit_expired x WHERE seq >= ? AND seq <= ?
                AND \(Tombstone.inLog)
            """, arguments: [range.lowerBound, range.upperBound])
        while let row = try rows.next() {
            guard let kv = UInt32(exactly: row.stored(1, as: Int64.self) ?? -1), let mac = row.stored(2, as: Data.self), let leaf = row.stored(3, as: Data.self),
                  let tags = row.stored(5, as: Data.self), tags.count == 80,
                  let seq = row.stored(0, as: Int64.self), let recordedAt = row.stored(4, as: Int64.self),
                  let expirySeq = row.stored(6, as: Int64.self)
            else { continue }  // a malformed tombstone: the scan's leaf check stops at it
            out[seq] = Tombstone(seq: seq, keyVersion: kv, mac: Array(mac), leaf: Array(leaf), recordedAt: recordedAt,
                                 tags: Array(tags), expirySeq: expirySeq)
        }
        return out
    }

    /// A well-formed, verified row as a shipped entry.
    private static func shippedEntry(_ view: RowView, leaf: [UInt8], storeID: StoreID, keys: KeyRing,
                                     withholding: Set<WithholdableField>) throws(AuditError) -> ShippedEntry
    {
        var row = view.row
        let seq = row.seq
        func text(_ b: adb_bytes, _ name: String) throws(AuditError) -> String? {
            if b.len > 0, let p = b.ptr, memchr(p, 0, Int(b.len)) != nil {
                throw AuditError(.invalidInput, "row \(seq): \(name) holds a NUL byte, which a PostgreSQL text value cannot hold; ship it withheld (--withhold) or leave this store unshipped")
            }
            return try RowView.validString(b, field: name, seq: seq)
        }
        guard let key = keys.key(version: row.key_version) else {
            throw AuditError(.keyUnavailable, "row \(seq) is signed with key version \(row.key_version), which the key ring lacks")
        }
        let erased = adb_row_erased_mask(&row)
        // AuditDB's own entries (actions `auditdb.…`) are shipped whole: their details hold no
        // personal data (an erasure entry lists seqs, never values), and the central verifier
        // reads expiry entries' details to check the tombstones shipped for them.
        let isEngineEntry = RowView.bytes(row.action).map { $0.starts(with: "auditdb.".utf8) } ?? false
        var fields: [ShippedEntry.Field] = []
        for field in WithholdableField.allCases {
            var nonce = [UInt8](repeating: 0, count: 32)
            var commitment = [UInt8](repeating: 0, count: 32)
            _ = adb_row_field_nonce(key.keyset, storeID.bytes, &row, field.id, &nonce)
            adb_row_field_commitment(key.keyset, storeID.bytes, &row, field.id, &commitment)
            if erased & (1 << (field.id - 1)) != 0 {
                fields.append(.init(value: nil, nonce: nil, commitment: commitment, state: .erased))
            } else if withholding.contains(field) && !isEngineEntry {
                fields.append(.init(value: nil, nonce: nil, commitment: commitment, state: .withheld))
            } else if let value = try text(field.value(of: row), field.rawValue) {
                fields.append(.init(value: value, nonce: nonce, commitment: commitment, state: .shown))
            } else {
                fields.append(.init(value: nil, nonce: nil, commitment: commitment, state: .shown))
            }
        }
        let values = ShippedEntry.Values(
            recordedAt: row.recorded_at, occurredAt: row.has_occurred_at != 0 ? row.occurred_at : nil,
            tenant: try text(row.tenant, "tenant"), action: try text(row.action, "action") ?? "",
            resourceType: try text(row.resource_type, "resource_type"), resourceId: try text(row.resource_id, "resource_id"),
            outcome: row.outcome, severity: row.severity, correlationId: try text(row.correlation_id, "correlation_id"),
            origin: row.origin, originRef: row.has_origin_ref != 0 ? row.origin_ref : nil, formatVersion: row.format_version,
            keyVersion: row.key_version, actor: fields[0], source: fields[1], details: fields[2])
        return ShippedEntry(seq: seq, leaf: leaf, values: values, expired: nil)
    }
}
