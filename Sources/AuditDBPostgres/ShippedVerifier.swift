public import AuditDB
public import Foundation
public import Logging
import PostgresNIO

/// The central verifier: proves every row of `auditdb_ship.entries` against the checkpoints the
/// witness holds, with public keys only (the keys registered out of band in
/// `auditdb_witness.keys`), and reports precisely what was changed, removed or added
/// (``ShippedFinding``; docs/fleet.md "Shipping").
///
/// ```swift
/// let report = try await ShippedVerifier(central: central, witness: witness, logger: logger).verify()
/// if !report.isIntact { print(report.text) }
/// ```
public struct ShippedVerifier: Sendable {
    /// The central database (connect as a member of `auditdb_auditor`).
    public let central: PostgresWitness
    /// The witness holding the checkpoints and registered keys (often the same database).
    public let witness: PostgresWitness
    let logger: Logger
    /// Run once the batches are read, before anything else (tests: a shipment lands mid-read).
    var afterBatchesRead: (@Sendable () async throws -> Void)?

    /// A verifier of `central` against `witness`.
    public init(central: PostgresWitness, witness: PostgresWitness, logger: Logger) {
        self.central = central
        self.witness = witness
        self.logger = logger
    }

    /// Verifies every store's shipped rows (or only `storeID`'s).
    ///
    /// The central tables are read in one snapshot (a batch committed meanwhile is not half seen),
    /// and the witness after it: every checkpoint a batch in the snapshot names is there.
    /// - Throws: ``AuditError`` `storage`/`permissionDenied` when a database cannot be read.
    /// - Parameter progress: Called as the reads get on (each 1,000 rows, and between the
    ///   queries): a watchdog's tick (`auditdb-fleet verify-shipped` gives up on a database that
    ///   stops answering).
    /// - Complexity: O(rows × log batches) time; memory O(batches + checkpoints + late tombstones),
    ///   not O(rows).
    public func verify(storeID: StoreID? = nil, progress: (@Sendable () -> Void)? = nil) async throws -> ShippedReport {
        let filter = storeID.map { ByteBuffer(bytes: $0.bytes) }
        let logger = self.logger, witness = self.witness, afterBatchesRead = self.afterBatchesRead
        do {
            return try await central.snapshot { connection in
                try await PostgresWitness.requireAuditor(connection, logger: logger, for: "verify-shipped")
                var batches: [StoreID: [ShippedBatchRecord]] = [:]
                let batchRows = try await PostgresWitness.collected(connection,
                    """
                    SELECT store_id, first_seq, last_seq, checkpoint_seq, checkpoint_signature, proof FROM auditdb_ship.batches
                    WHERE \(filter)::bytea IS NULL OR store_id = \(filter)
                    """, logger: logger)
                for row in batchRows {
                    let (id, first, last, cpSeq, signature, proof) = try row.decode((Data, Int64, Int64, Int64, Data, Data).self)
                    guard let store = StoreID(exactly: Array(id)) else { continue }
                    batches[store, default: []].append(ShippedBatchRecord(
                        firstSeq: first, lastSeq: last, checkpointSeq: cpSeq, checkpointSignature: Array(signature),
                        concatenatedProof: Array(proof)))
                }
                try await afterBatchesRead?()
                // The witness, read after the snapshot was taken: it holds every checkpoint named
                // by a batch in it (the batch trigger checks that its checkpoint is published).
                let (stores, records) = try await FleetAuditor(witness: witness, logger: logger).read()
                var checkpoints: [StoreID: [Checkpoint]] = [:]
                let registered = Dictionary(uniqueKeysWithValues: stores.map { ($0.storeID, $0) })
                for record in records {
                    let cp = record.checkpoint
                    guard let store = registered[cp.storeID], store.keys[cp.keyVersion] == cp.publicKey else { continue }
                    checkpoints[cp.storeID, default: []].append(cp)
                }
                var late: [StoreID: [ShippedEntry]] = [:]
                let lateRows = try await PostgresWitness.collected(connection,
                    """
                    SELECT store_id, seq, tombstone, expiry_seq FROM auditdb_ship.tombstones
                    WHERE \(filter)::bytea IS NULL OR store_id = \(filter)
                    """, logger: logger)
                // NULLs read as such (the owner may have dropped a constraint): a malformed late tombstone.
                for row in lateRows {
                    let (id, seq, tombstone, expirySeq) = try row.decode((Data, Int64, Data?, Int64?).self)
                    let store = StoreID(exactly: Array(id)) ?? FleetAuditor.noStore
                    let bytes = tombstone.map(Array.init) ?? []
                    let leaf = bytes.count == ShippedEntry.Expired.tombstoneLength ? Array(bytes[44..<76]) : []
                    late[store, default: []].append(ShippedEntry(seq: seq, leaf: leaf, values: nil,
                                                                 expired: .init(tombstone: bytes, expirySeq: expirySeq ?? 0)))
                }
                var reports: [ShippedStoreReport] = []
                var current: ShippedLogVerifier?
                func open(_ id: StoreID) {
                    current = ShippedLogVerifier(storeID: id, batches: batches.removeValue(forKey: id) ?? [], checkpoints: checkpoints[id] ?? [],
                                                 lateTombstones: late.removeValue(forKey: id) ?? [])
                }
                func close() {
                    guard var verifier = current else { return }
                    let findings = verifier.finish()
                    reports.append(ShippedStoreReport(storeID: verifier.storeID, label: registered[verifier.storeID]?.label ?? "",
                                                      highWaterMark: verifier.highWaterMark, entriesChecked: verifier.entriesChecked,
                                                      batchesProven: verifier.batchesProven,
                                                      expiredAwaitingEntry: verifier.expiredAwaitingEntry, findings: findings))
                    current = nil
                }
                // Through a cursor, a page at a time, each page read whole as it arrives
                // (PostgresWitness.collected): the async row sequence crashes PostgresNIO 1.33.2
                // when the server closes the connection while it waits for this slower consumer.
                // The store id, when given, is inlined as validated hex (DECLARE takes no parameters).
                let only = storeID.map { "'\\x\($0.hex)'::bytea" } ?? "NULL::bytea"
                try await connection.query(
                    """
                    DECLARE shipped_rows NO SCROLL CURSOR FOR
                    SELECT store_id, seq, (extract(epoch FROM recorded_at) * 1000000)::bigint,
                           (extract(epoch FROM occurred_at) * 1000000)::bigint, tenant, actor, action, resource_type, resource_id,
                           outcome, severity, correlation_id, source, details, origin, origin_ref, format_version, key_version,
                           actor_nonce, source_nonce, details_nonce, actor_commitment, source_commitment, details_commitment,
                           withheld, erased, leaf, tombstone, expiry_seq
                    FROM auditdb_ship.entries WHERE \(unescaped: only) IS NULL OR store_id = \(unescaped: only) ORDER BY store_id, seq, ctid
                    """, logger: logger)
                var read = 0
                progress?()
                while true {
                    let page = try await PostgresWitness.collected(connection, "FETCH FORWARD 2000 FROM shipped_rows", logger: logger)
                    if page.isEmpty { break }
                    for row in page {
                        read += 1
                        if read % 1_000 == 0 { progress?() }
                        let cells = row.makeRandomAccess()
                        let idBytes = Array(try cells[0].decode(Data.self))
                        let id = StoreID(exactly: idBytes) ?? FleetAuditor.noStore
                        if current?.storeID != id {
                            close()
                            open(id)
                        }
                        current?.add(try Self.entry(cells))
                    }
                }
                close()
                // Stores with batches or late tombstones but no row at all.
                for id in Set(batches.keys).union(late.keys).sorted(by: { $0.hex < $1.hex }) {
                    open(id)
                    close()
                }
                return ShippedReport(stores: reports.sorted { $0.storeID.hex < $1.storeID.hex }, verifiedAt: Date())
            }
        } catch {
            throw AuditError.witness(error, while: "read the shipped entries")
        }
    }

    /// One row of `auditdb_ship.entries` (columns as selected above) as a ``ShippedEntry``, read by
    /// the one reading of a central row (``ShippedEntry/init(columns:)``, FORMAT.md 22.7).
    static func entry(_ c: PostgresRandomAccessRow) throws -> ShippedEntry {
        func text(_ i: Int) throws -> String? { try c[i].decode(String?.self) }
        func int(_ i: Int) throws -> Int64? { try c[i].decode(Int64?.self) }
        func small(_ i: Int) throws -> Int64? { try c[i].decode(Int16?.self).map(Int64.init) }
        func bytes(_ i: Int) throws -> [UInt8]? { try c[i].decode(Data?.self).map(Array.init) }
        var row = ShippedEntry.Columns(seq: try int(1) ?? 0)
        row.recordedAt = try int(2)
        row.occurredAt = try int(3)
        row.tenant = try text(4)
        row.actor = try text(5)
        row.action = try text(6)
        row.resourceType = try text(7)
        row.resourceId = try text(8)
        row.outcome = try small(9)
        row.severity = try small(10)
        row.correlationId = try text(11)
        row.source = try text(12)
        row.details = try text(13)
        row.origin = try small(14)
        row.originRef = try int(15)
        row.formatVersion = try small(16)
        row.keyVersion = try int(17)
        row.actorNonce = try bytes(18)
        row.sourceNonce = try bytes(19)
        row.detailsNonce = try bytes(20)
        row.actorCommitment = try bytes(21)
        row.sourceCommitment = try bytes(22)
        row.detailsCommitment = try bytes(23)
        row.withheld = try small(24)
        row.erased = try small(25)
        row.leaf = try bytes(26)
        row.tombstone = try bytes(27)
        row.expirySeq = try int(28)
        return ShippedEntry(columns: row)
    }
}

/// One store's part of a ``ShippedReport``.
public struct ShippedStoreReport: Sendable {
    /// The store.
    public let storeID: StoreID
    /// Its label at the witness ("" if it is not registered).
    public let label: String
    /// The highest seq its batches cover.
    public let highWaterMark: Int64
    /// Rows checked up to it.
    public let entriesChecked: Int64
    /// Batches whose consistency proof verified against their checkpoint.
    public let batchesProven: Int
    /// Expired rows of a shipment under way whose expiry entry is not committed yet (covered by
    /// their batch's checkpoint; their tombstones are checked once it is).
    public let expiredAwaitingEntry: Int
    /// The findings, by kind then seq.
    public let findings: [ShippedFinding]
}

/// The result of ``ShippedVerifier/verify(storeID:)``.
public struct ShippedReport: Sendable {
    /// Per store with shipped rows or batches, by store id.
    public let stores: [ShippedStoreReport]
    /// When it ran.
    public let verifiedAt: Date

    /// True when no store has a finding.
    public var isIntact: Bool { stores.allSatisfy { $0.findings.isEmpty } }

    /// One line per finding, then a summary line.
    public var text: String {
        var out = ""
        for store in stores {
            for f in store.findings {
                out += "store \(store.storeID)\(store.label.isEmpty ? "" : " (\(FleetReport.escapedForOutput(store.label)))"): \(FleetReport.escapedForOutput(f.description))\n"
            }
        }
        let rows = stores.reduce(Int64(0)) { $0 + $1.entriesChecked }
        let bad = stores.filter { !$0.findings.isEmpty }.count
        out += bad == 0
            ? "shipped entries intact: \(stores.count) store(s), \(rows) row(s) proven against the witness\n"
            : "shipped entries NOT intact: \(bad) of \(stores.count) store(s) with findings, \(stores.reduce(0) { $0 + $1.findings.count }) finding(s)\n"
        return out
    }

    /// One JSON object (keys in a fixed order).
    public var json: String {
        func q(_ s: String) -> String { "\"" + FleetReport.escapedForOutput(s) + "\"" }
        let stores = self.stores.map { s in
            "{\"storeId\":\"\(s.storeID.hex)\",\"label\":\(q(s.label)),\"highWaterMark\":\(s.highWaterMark),"
                + "\"entriesChecked\":\(s.entriesChecked),\"batchesProven\":\(s.batchesProven),\"expiredAwaitingEntry\":\(s.expiredAwaitingEntry),"
                + "\"findings\":[" + s.findings.map { f in
                    "{\"kind\":\"\(f.kind)\",\"fromSeq\":\(f.seqs.lowerBound),\"toSeq\":\(f.seqs.upperBound),\"message\":\(q(f.message))}"
                }.joined(separator: ",") + "]}"
        }
        return "{\"format\":\"auditdb-shipped-report v1\",\"intact\":\(isIntact),\"verifiedAt\":\(q(FleetReport.iso(verifiedAt))),"
            + "\"stores\":[\(stores.joined(separator: ","))]}"
    }
}
