public import AuditDB
import Foundation
public import Logging
import PostgresNIO

/// Ships a store's verified entries into the central table `auditdb_ship.entries`
/// (`postgres/witness_shipping.sql`, docs/fleet.md "Shipping"), in batches, each tied to a
/// checkpoint published to the witness and carrying the consistency proof from its last seq to
/// it, so that ``ShippedVerifier`` proves every shipped row with public keys only.
///
/// Resumable and idempotent: a batch is one transaction that COPYs its rows into the central
/// table (a statement trigger checks that they are of a store registered to the role) and records
/// the batch — the store's high-water mark — with them. Up to ``Configuration/connections``
/// batches COPY at once, each on its own connection, but each records its batch row and commits
/// only after the one before it committed: commits stay in seq order. A shipper killed or cut off
/// mid-batch leaves nothing of the uncommitted batches; run again, it continues after the last
/// committed batch, and the primary key `(store_id, seq)` refuses any row twice.
///
/// ```swift
/// let shipper = CentralShipper(central: central, witness: witness, logger: logger)
/// let summary = try await shipper.ship(store, signer: signer)
/// ```
public struct CentralShipper: Sendable {
    /// How to ship.
    public struct Configuration: Sendable {
        /// Entries per batch (one transaction each).
        public var batchSize: Int
        /// Fields shipped as their commitment only, for every row (erased fields always are).
        public var withholding: Set<WithholdableField>
        /// Batches in flight at once, each COPYing on its own connection of the pool (at least 1).
        /// With 2, PostgreSQL loads one batch while the next is sent (docs/performance.md).
        public var connections: Int

        /// A configuration.
        public init(batchSize: Int = 10_000, withholding: Set<WithholdableField> = [], connections: Int = 2) {
            self.batchSize = batchSize
            self.withholding = withholding
            self.connections = connections
        }
    }

    /// The central database (connect as the instance's role, a member of `auditdb_publisher`).
    public let central: PostgresWitness
    /// The witness the checkpoints are published to (often the same database as `central`).
    public let witness: PostgresWitness
    /// The configuration.
    public let configuration: Configuration
    let logger: Logger

    /// A shipper to `central`, proving against checkpoints at `witness`.
    public init(central: PostgresWitness, witness: PostgresWitness, configuration: Configuration = Configuration(), logger: Logger) {
        self.central = central
        self.witness = witness
        self.configuration = configuration
        self.logger = logger
    }

    /// What one ``ship(_:signer:cursor:)`` did.
    public struct Summary: Sendable {
        /// The store.
        public let storeID: StoreID
        /// Entries the central table held for it before.
        public let shippedBefore: Int64
        /// Entries it holds now (its high-water mark).
        public let shippedAfter: Int64
        /// Batches committed.
        public let batches: Int
        /// The checkpoint they are proven against (nil when there was nothing to ship).
        public let checkpoint: Checkpoint?
        /// Where the central copy stands: pass it to the next call to read fewer rows.
        public let cursor: ShippingCursor?
        /// Late tombstones shipped (`auditdb_ship.tombstones`): rows shipped whole by an earlier
        /// call that an expiry entry shipped by this one expired.
        public var lateTombstones: Int = 0
        /// Where the shipment stopped short of its checkpoint: an expired row whose expiry entry
        /// is above the checkpoint (``ShippingRun/heldBackAt``); a newer checkpoint ships it.
        public var heldBackAt: Int64? = nil

        /// Entries shipped by this call.
        public var shipped: Int64 { shippedAfter - shippedBefore }
    }

    /// The store's high-water mark: how many leading entries the central table holds.
    public func highWaterMark(of storeID: StoreID) async throws -> Int64 {
        let id = ByteBuffer(bytes: storeID.bytes)
        do {
            let rows = try await central.client.query(
                "SELECT coalesce(max(last_seq), 0) FROM auditdb_ship.batches WHERE store_id = \(id)", logger: logger)
            for try await high in rows.decode(Int64.self) { return high }
            return 0
        } catch {
            throw AuditError.witness(error, while: "read the shipped high-water mark of store \(storeID)")
        }
    }

    /// The high-water mark and what the central copy's last batch says of it (nil with nothing
    /// shipped): the checkpoint it is proven against, read from the witness, and its proof.
    /// - Throws: ``AuditError`` `integrityViolation` when that checkpoint is not at the witness
    ///   under a registered key with a valid signature (the batch row was forged or the witness
    ///   row removed): the copy cannot be continued safely.
    func shippedTip(of storeID: StoreID) async throws -> (Int64, ShippedTip?) {
        let id = ByteBuffer(bytes: storeID.bytes)
        var last: (seq: Int64, checkpointSeq: Int64, signature: [UInt8], proof: [UInt8])?
        do {
            let rows = try await central.client.query(
                "SELECT last_seq, checkpoint_seq, checkpoint_signature, proof FROM auditdb_ship.batches WHERE store_id = \(id) ORDER BY last_seq DESC LIMIT 1",
                logger: logger)
            for try await (seq, checkpointSeq, signature, proof) in rows.decode((Int64, Int64, Data, Data).self) {
                last = (seq, checkpointSeq, Array(signature), Array(proof))
            }
        } catch {
            throw AuditError.witness(error, while: "read the shipped high-water mark of store \(storeID)")
        }
        guard let last else { return (0, nil) }
        guard last.proof.count % 32 == 0,
              let checkpoint = try await witness.trustedCheckpoint(of: storeID, seq: last.checkpointSeq, signature: last.signature)
        else {
            throw AuditError(.integrityViolation, "the central copy's last batch (up to seq \(last.seq)) is proven against a checkpoint at seq \(last.checkpointSeq) that the witness does not hold signed with a key registered for store \(storeID) (or its proof is malformed): the copy cannot be continued safely. Nothing was shipped. Run `auditdb-fleet verify-shipped` and `auditdb-fleet audit`.")
        }
        let proof = stride(from: 0, to: last.proof.count, by: 32).map { Array(last.proof[$0..<$0 + 32]) }
        return (last.seq, ShippedTip(checkpoint: checkpoint, proof: proof))
    }

    /// Ships every verified entry of `store` after the central high-water mark, up to the newest
    /// checkpoint of the store at the witness that this store matches — or up to the row before
    /// the first expired row whose expiry entry that checkpoint does not cover
    /// (``Summary/heldBackAt``).
    ///
    /// - Parameters:
    ///   - store: The store (opened with its HMAC keys: every row is verified before it is sent).
    ///   - signer: When given, a checkpoint is made first and published to the witness (with its
    ///     consistency proof), so that everything appended so far is shipped. Without it, the
    ///     newest checkpoint already published bounds the shipment.
    ///   - cursor: The ``Summary/cursor`` of the previous call, to skip re-reading shipped rows.
    /// - Returns: What was shipped.
    /// - Throws: ``AuditError``: `integrityViolation` (the store does not verify, or does not
    ///   match the published checkpoint: nothing more is shipped), `permissionDenied` (the role
    ///   may not ship for the store), `storage` (PostgreSQL unreachable; the batches committed
    ///   before stay, and the next call resumes after them), `busy` (a row expired while it was
    ///   being shipped: likewise, call again).
    ///   - onBatch: Told the high-water mark once the shipment is planned, then the last seq of
    ///     each committed batch.
    public func ship(_ store: AuditStore, signer: CheckpointSigner? = nil, cursor: ShippingCursor? = nil,
                     onBatch: (@Sendable (Int64) -> Void)? = nil) async throws -> Summary
    {
        let storeID = store.storeID
        if let signer {
            // Before the store records a checkpoint the witness would not trust.
            try await witness.requireRegistered(signer.signingKey.publicKey, for: storeID)
            _ = try await store.checkpoint(signer: signer, anchors: [WitnessAnchor(witness: witness)])
        }
        let (before, tip) = try await shippedTip(of: storeID)
        // Only a checkpoint the store's owner signed bounds a shipment: its key registered for the
        // store at the witness and its signature valid. A publisher role can insert rows without
        // the signing key; those must not decide what is shipped (or block it).
        guard let checkpoint = try await witness.newestTrustedCheckpoint(of: storeID) else {
            throw AuditError(.invalidInput, "the witness holds no checkpoint of store \(storeID) signed with a key registered for it: publish one first (`auditdb-fleet ship --signing-key`, or a CheckpointService with a WitnessAnchor), with the key registered by the witness owner")
        }
        guard checkpoint.seq > before else {
            // Nothing new to ship, but the rows shipped must still be this store's: a store rolled
            // back to a backup at a published seq, or another copy, would otherwise pass as done.
            if let tip { try await store.checkShippedPrefix(before, tip: tip, cursor: cursor) }
            return Summary(storeID: storeID, shippedBefore: before, shippedAfter: before, batches: 0, checkpoint: nil,
                           cursor: cursor?.shipped == before ? cursor : nil)
        }
        // Every checkpoint of the store's owner above the high-water mark must be of this log: a
        // store rolled back and grown again, or another copy, publishes a checkpoint the newest
        // one need not contradict (its proof may start below the other copy's).
        let witnessed = try await witness.registeredCheckpoints(of: storeID, above: before, through: checkpoint.seq)
        let run = try await store.shippingRun(after: before, through: checkpoint, cursor: cursor, batchSize: configuration.batchSize,
                                              tip: tip, witnessed: witnessed)
        guard !run.batches.isEmpty else {
            return Summary(storeID: storeID, shippedBefore: before, shippedAfter: before, batches: 0, checkpoint: nil,
                           cursor: cursor?.shipped == before ? cursor : nil, heldBackAt: run.heldBackAt)
        }
        onBatch?(before)  // planned: every row verified, nothing committed yet
        let withholding = configuration.withholding, lanes = max(1, configuration.connections)
        /// A batch's rows read from the store (each leaf checked against the plan) and encoded,
        /// with the late tombstones of its expiry entries.
        @Sendable func prepared(_ index: Int) async throws -> (rows: ByteBuffer, late: ByteBuffer, lateCount: Int) {
            let batch = try await store.shippedEntries(run.batches[index], of: run, withholding: withholding)
            return (ShipCopyEncoding.rows(batch.entries, storeID: storeID), ShipCopyEncoding.lateTombstones(batch.lateTombstones, storeID: storeID),
                    batch.lateTombstones.count)
        }
        // The instance reads and encodes the next batch while up to `lanes` batches COPY, each on
        // its own connection: the instance's work and PostgreSQL's overlap (two cores). Commits
        // follow seq order (CommitOrder); a failed batch makes every later one roll back.
        let order = CommitOrder(onCommit: onBatch)
        let logger = self.logger
        var lateTombstones = 0
        let committed = try await withThrowingTaskGroup(of: Void.self, returning: Int.self) { group in
            var inFlight = 0, done = 0
            for (index, batch) in run.batches.enumerated() {
                let (rows, late, lateCount) = try await prepared(index)
                lateTombstones += lateCount  // all batches commit, or the call throws
                if inFlight == lanes {
                    try await group.next()
                    (inFlight, done) = (inFlight - 1, done + 1)
                }
                group.addTask {
                    do {
                        try await commit(rows, late: late, batch: batch, checkpoint: checkpoint, storeID: storeID) {
                            try await order.turn(index)
                        }
                    } catch {
                        await order.fail(index, error)
                        throw error
                    }
                    await order.didCommit(index, lastSeq: batch.seqs.upperBound)
                    logger.debug("shipped a batch", metadata: ["store": "\(storeID)", "seqs": "\(batch.seqs)"])
                }
                inFlight += 1
            }
            while try await group.next() != nil { done += 1 }
            return done
        }
        return Summary(storeID: storeID, shippedBefore: before, shippedAfter: run.endSeq, batches: committed,
                       checkpoint: checkpoint, cursor: run.endCursor, lateTombstones: lateTombstones, heldBackAt: run.heldBackAt)
    }

    /// One batch in one transaction: COPY into the central table (and the late tombstones of its
    /// expiry entries into `auditdb_ship.tombstones`), wait for `turn` (the batch before
    /// committed), record the batch (the trigger checks it continues the high-water mark).
    func commit(_ rows: ByteBuffer, late: ByteBuffer, batch: ShippingRun.Batch, checkpoint: Checkpoint, storeID: StoreID,
                turn: @Sendable () async throws -> Void) async throws
    {
        let id = ByteBuffer(bytes: storeID.bytes), signature = ByteBuffer(bytes: checkpoint.signature)
        let proof = ByteBuffer(bytes: batch.proof.flatMap { $0 })
        let (first, last, cpSeq) = (batch.seqs.lowerBound, batch.seqs.upperBound, checkpoint.seq)
        let logger = self.logger
        do {
            try await central.client.withTransaction(logger: logger) { connection in
                // PostgresNIO quotes the table name whole: the schema comes from search_path
                // (pg_temp last, so that no temporary table can stand in for the central one).
                try await connection.query("SET LOCAL search_path = pg_catalog, auditdb_ship, pg_temp", logger: logger)
                try await connection.copyFrom(table: "entries", columns: ShipCopyEncoding.columns, logger: logger) { writer in
                    try await writer.write(rows)  // one write: see ShipCopyEncoding.rows
                }
                if late.readableBytes > 0 {
                    try await connection.copyFrom(table: "tombstones", columns: ShipCopyEncoding.tombstoneColumns, logger: logger) { writer in
                        try await writer.write(late)
                    }
                }
                try await turn()
                try await connection.query(
                    """
                    INSERT INTO auditdb_ship.batches (store_id, first_seq, last_seq, checkpoint_seq, checkpoint_signature, proof)
                    VALUES (\(id), \(first), \(last), \(cpSeq), \(signature), \(proof))
                    """, logger: logger)
            }
        } catch {
            // Another shipper of this store committed these seqs first (23505: its rows are
            // there; the trigger: its batch moved the high-water mark past this one's start).
            if let (state, message) = AuditError.serverError(error),
               state == "23505" || (state == "23514" && message.hasPrefix("a batch must start right after"))
            {
                throw AuditError(.busy, "seqs \(first)...\(last) of store \(storeID) were shipped meanwhile by another shipper of this store (\(message)): this batch was rolled back, and nothing is lost or doubled. Ship again to continue after what is shipped, and run one shipper per store; if it repeats with no other shipper running, the rows were put there by other means: run `auditdb-fleet verify-shipped`")
            }
            throw AuditError.witness(error, while: "ship seqs \(first)...\(last) of store \(storeID)")
        }
    }
}
