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

    /// A verifier of `central` against `witness`.
    public init(central: PostgresWitness, witness: PostgresWitness, logger: Logger) {
        self.central = central
        self.witness = witness
        self.logger = logger
    }

    /// Verifies every store's shipped rows (or only `storeID`'s).
    /// - Throws: ``AuditError`` `storage`/`permissionDenied` when a database cannot be read.
    /// - Complexity: O(rows) time; memory O(batches + checkpoints), not O(rows).
    public func verify(storeID: StoreID? = nil) async throws -> ShippedReport {
        let (stores, records) = try await FleetAuditor(witness: witness, logger: logger).read()
        var checkpoints: [StoreID: [Checkpoint]] = [:]
        let registered = Dictionary(uniqueKeysWithValues: stores.map { ($0.storeID, $0) })
        for record in records {
            let cp = record.checkpoint
            guard let store = registered[cp.storeID], store.keys[cp.keyVersion] == cp.publicKey else { continue }
            checkpoints[cp.storeID, default: []].append(cp)
        }
        let filter = storeID.map { ByteBuffer(bytes: $0.bytes) }
        do {
            var batches: [StoreID: [ShippedBatchRecord]] = [:]
            let batchRows = try await central.client.query(
                """
                SELECT store_id, first_seq, last_seq, checkpoint_seq, checkpoint_signature, proof FROM auditdb_ship.batches
                WHERE \(filter)::bytea IS NULL OR store_id = \(filter)
                """, logger: logger)
            for try await (id, first, last, cpSeq, signature, proof) in batchRows.decode((Data, Int64, Int64, Int64, Data, Data).self) {
                guard let store = StoreID(exactly: Array(id)) else { continue }
                let bytes = Array(proof)
                batches[store, default: []].append(ShippedBatchRecord(
                    firstSeq: first, lastSeq: last, checkpointSeq: cpSeq, checkpointSignature: Array(signature),
                    proof: stride(from: 0, to: bytes.count - bytes.count % 32, by: 32).map { Array(bytes[$0..<$0 + 32]) }))
            }
            var reports: [ShippedStoreReport] = []
            var current: ShippedLogVerifier?
            func close() {
                guard var verifier = current else { return }
                let findings = verifier.finish()
                reports.append(ShippedStoreReport(storeID: verifier.storeID, label: registered[verifier.storeID]?.label ?? "",
                                                  highWaterMark: verifier.highWaterMark, entriesChecked: verifier.entriesChecked,
                                                  batchesProven: verifier.batchesProven,
                                                  expiredAwaitingEntry: verifier.expiredAwaitingEntry, findings: findings))
                batches[verifier.storeID] = nil
                current = nil
            }
            let rows = try await central.client.query(
                """
                SELECT store_id, seq, (extract(epoch FROM recorded_at) * 1000000)::bigint,
                       (extract(epoch FROM occurred_at) * 1000000)::bigint, tenant, actor, action, resource_type, resource_id,
                       outcome, severity, correlation_id, source, details, origin, origin_ref, format_version, key_version,
                       actor_nonce, source_nonce, details_nonce, actor_commitment, source_commitment, details_commitment,
                       withheld, erased, leaf, tombstone, expiry_seq
                FROM auditdb_ship.entries WHERE \(filter)::bytea IS NULL OR store_id = \(filter) ORDER BY store_id, seq
                """, logger: logger)
            for try await row in rows {
                let cells = row.makeRandomAccess()
                let idBytes = Array(try cells[0].decode(Data.self))
                let id = StoreID(exactly: idBytes) ?? FleetAuditor.noStore
                if current?.storeID != id {
                    close()
                    current = ShippedLogVerifier(storeID: id, batches: batches[id] ?? [], checkpoints: checkpoints[id] ?? [])
                }
                current?.add(try Self.entry(cells))
            }
            close()
            // Stores with batches but no row at all.
            for (id, list) in batches.sorted(by: { $0.key.hex < $1.key.hex }) {
                current = ShippedLogVerifier(storeID: id, batches: list, checkpoints: checkpoints[id] ?? [])
                close()
            }
            return ShippedReport(stores: reports.sorted { $0.storeID.hex < $1.storeID.hex }, verifiedAt: Date())
        } catch {
            throw AuditError.witness(error, while: "read the shipped entries")
        }
    }

    /// One row of `auditdb_ship.entries` (columns as selected above) as a ``ShippedEntry``.
    static func entry(_ c: PostgresRandomAccessRow) throws -> ShippedEntry {
        func text(_ i: Int) throws -> String? { try c[i].decode(String?.self) }
        func int(_ i: Int) throws -> Int64? { try c[i].decode(Int64?.self) }
        func small(_ i: Int) throws -> Int16? { try c[i].decode(Int16?.self) }
        func bytes(_ i: Int) throws -> [UInt8]? { try c[i].decode(Data?.self).map(Array.init) }
        let seq = try int(1) ?? 0
        let leaf = try bytes(26) ?? []
        let expired = try bytes(27).map { ShippedEntry.Expired(tombstone: $0, expirySeq: try int(28) ?? 0) }
        // An expired row has no action; a row with one is read as values (and an expired row
        // holding values is reported by ShippedEntry.problem).
        guard let action = try text(6) else {
            return ShippedEntry(seq: seq, leaf: leaf, values: nil, expired: expired ?? .init(tombstone: [], expirySeq: 0))
        }
        let withheld = try small(24) ?? 0, erased = try small(25) ?? 0
        func field(_ value: Int, _ nonce: Int, _ commitment: Int, bit: Int16) throws -> ShippedEntry.Field {
            let state: ShippedEntry.Field.State = erased & bit != 0 ? .erased : (withheld & bit != 0 ? .withheld : .shown)
            return ShippedEntry.Field(value: try text(value), nonce: try bytes(nonce), commitment: try bytes(commitment) ?? [], state: state)
        }
        func u8(_ i: Int) throws -> UInt8 { UInt8(clamping: try small(i) ?? -1) }
        let values = ShippedEntry.Values(
            recordedAt: try int(2) ?? 0, occurredAt: try int(3), tenant: try text(4), action: action, resourceType: try text(7),
            resourceId: try text(8), outcome: try u8(9), severity: try u8(10), correlationId: try text(11), origin: try u8(14),
            originRef: try int(15), formatVersion: try u8(16), keyVersion: UInt32(clamping: try int(17) ?? -1),
            actor: try field(5, 18, 21, bit: 1), source: try field(12, 19, 22, bit: 2), details: try field(13, 20, 23, bit: 4))
        return ShippedEntry(seq: seq, leaf: leaf, values: values, expired: expired)
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
    /// Expired rows whose expiry entry is not shipped yet (proven in the tree; their tombstones
    /// are checked once it is).
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
