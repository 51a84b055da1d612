import AuditDB
public import CoreMetrics
public import Foundation
public import Logging
import Metrics
import PostgresNIO

/// Checks every store's publications at a ``PostgresWitness`` with public keys only: every
/// signature, every consistency proof (re-verified here, not taken from the witness), and the
/// order of publication; reports per store `fork`, `rollback`, `silent`, `unknown-key` and
/// `invalid-signature` (docs/fleet.md).
///
/// ```swift
/// let auditor = FleetAuditor(witness: witness, configuration: .init(silentAfter: .seconds(900)), logger: logger)
/// let report = try await auditor.audit()
/// if !report.isIntact { print(report.text) }
/// ```
public struct FleetAuditor: Sendable {
    /// How the auditor judges and counts.
    public struct Configuration: Sendable {
        /// A store with no publication for longer than this is `silent`; nil: never.
        public var silentAfter: Duration?
        /// Metric names start with this (`<prefix>_fleet_findings_total{kind=…}`).
        public var metricsPrefix: String
        /// The metrics backend; nil for the process-wide `MetricsSystem.factory`.
        public var metricsFactory: (any MetricsFactory)?

        /// A configuration.
        public init(silentAfter: Duration? = nil, metricsPrefix: String = "auditdb", metricsFactory: (any MetricsFactory)? = nil) {
            self.silentAfter = silentAfter
            self.metricsPrefix = metricsPrefix
            self.metricsFactory = metricsFactory
        }
    }

    /// The witness (connect as a member of `auditdb_auditor`).
    public let witness: PostgresWitness
    /// The configuration.
    public let configuration: Configuration
    let logger: Logger

    /// An auditor of `witness`.
    public init(witness: PostgresWitness, configuration: Configuration = Configuration(), logger: Logger) {
        self.witness = witness
        self.configuration = configuration
        self.logger = logger
    }

    /// Stands for a malformed store id in a row (it matches no store, so the row's proof fails).
    static let noStore = StoreID(exactly: [UInt8](repeating: 0, count: 16))!

    /// A registered store, as the witness holds it; or (`registered` false) a store id the
    /// witness holds publications of but no registration.
    struct Store: Sendable {
        var storeID: StoreID
        var label: String
        var registeredAt: Date
        var keys: [UInt32: [UInt8]]
        var registered = true
    }

    /// One publication, as the witness holds it.
    struct Record: Sendable {
        var checkpoint: Checkpoint
        var proof: ConsistencyProof?
        var publishedAt: Date
    }

    /// One sweep: reads every store, key and publication, judges them, counts each finding in
    /// `<prefix>_fleet_findings_total` (dimension `kind`) and sets `<prefix>_fleet_stores` and
    /// `<prefix>_fleet_stores_with_findings`.
    /// - Parameter now: The time `silent` is judged at.
    /// - Throws: ``AuditError`` `storage`/`permissionDenied` when the witness cannot be read.
    /// - Complexity: O(publications).
    /// - Parameter progress: Called as the witness's rows are read (each 1,000): a watchdog's
    ///   tick (`auditdb-fleet audit` gives up on a witness that stops answering).
    public func audit(now: Date = Date(), progress: (@Sendable () -> Void)? = nil) async throws -> FleetReport {
        let (stores, records) = try await read(progress: progress)
        progress?()
        let report = await Self.judgeConcurrently(stores: stores, records: records, now: now, silentAfter: configuration.silentAfter,
                                                  progress: progress)
        progress?()
        let factory = configuration.metricsFactory ?? MetricsSystem.factory
        let prefix = configuration.metricsPrefix
        for (_, finding) in report.findings {
            Counter(label: "\(prefix)_fleet_findings_total", dimensions: [("kind", finding.kind.name)], factory: factory).increment()
        }
        Gauge(label: "\(prefix)_fleet_stores", factory: factory).record(report.stores.count)
        Gauge(label: "\(prefix)_fleet_stores_with_findings", factory: factory).record(report.stores.filter { !$0.findings.isEmpty }.count)
        if !report.isIntact {
            logger.error("fleet audit found problems", metadata: ["findings": "\(report.findings.count)"])
        }
        return report
    }

    /// The registered stores with their keys, and every publication: read in one snapshot, so
    /// that no checkpoint is of a store (or key) registered after the stores were read.
    func read(progress: (@Sendable () -> Void)? = nil) async throws -> ([Store], [Record]) {
        do {
            return try await witness.snapshot { connection in try await Self.read(connection, logger: logger, progress: progress) }
        } catch {
            throw AuditError.witness(error, while: "read the witness")
        }
    }

    /// The reads of ``read()``, on a connection in a snapshot.
    private static func read(_ connection: PostgresConnection, logger: Logger,
                             progress: (@Sendable () -> Void)?) async throws -> ([Store], [Record]) {
        try await PostgresWitness.requireAuditor(connection, logger: logger, for: "an audit")
        var stores: [StoreID: Store] = [:]
        // Every read collected as the rows arrive, the publications a page at a time through a
        // cursor (PostgresWitness.collected: the async row sequence crashes PostgresNIO 1.33.2
        // when the server ends the session while it waits).
        let storeRows = try await PostgresWitness.collected(connection,
            "SELECT store_id, label, (extract(epoch FROM registered_at) * 1000000)::bigint FROM auditdb_witness.stores", logger: logger)
        for row in storeRows {
            let (id, label, registered) = try row.decode((Data, String, Int64).self)
            guard let storeID = StoreID(exactly: Array(id)) else { continue }
            stores[storeID] = Store(storeID: storeID, label: label, registeredAt: Date(timeIntervalSince1970: Double(registered) / 1e6), keys: [:])
        }
        let keyRows = try await PostgresWitness.collected(connection, "SELECT store_id, key_version, public_key FROM auditdb_witness.keys", logger: logger)
        for row in keyRows {
            let (id, version, key) = try row.decode((Data, Int64, Data).self)
            guard let storeID = StoreID(exactly: Array(id)) else { continue }
            stores[storeID]?.keys[UInt32(clamping: version)] = Array(key)
        }
        var records: [Record] = []
        try await connection.query(
            """
            DECLARE fleet_publications NO SCROLL CURSOR FOR
            SELECT \(unescaped: PostgresWitness.checkpointColumns), proof_store_id, proof_from, proof,
                   (extract(epoch FROM published_at) * 1000000)::bigint
            FROM auditdb_witness.checkpoints ORDER BY id
            """, logger: logger)
        while true {
            let page = try await PostgresWitness.collected(connection, "FETCH FORWARD 2000 FROM fleet_publications", logger: logger)
            if page.isEmpty { break }
            for raw in page {
                let row = try raw.decode((Data, Int64, Data, Data, Int64, Int64, Data, Data, Data?, Int64?, Data?, Int64).self)
                let cp = PostgresWitness.checkpoint((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7))
                var proof: ConsistencyProof?
                if let store = row.8, let from = row.9, let hashes = row.10 {
                    let bytes = Array(hashes)
                    proof = ConsistencyProof(storeID: StoreID(exactly: Array(store)) ?? Self.noStore, fromSeq: from, toSeq: cp.seq,
                                             hashes: stride(from: 0, to: bytes.count - bytes.count % 32, by: 32).map { Array(bytes[$0..<$0 + 32]) })
                }
                records.append(Record(checkpoint: cp, proof: proof, publishedAt: Date(timeIntervalSince1970: Double(row.11) / 1e6)))
                if records.count % 1_000 == 0 { progress?() }
            }
        }
        // Publications of a store with no registration (deleted by the owner, or written for an
        // id never registered) are judged too, never passed over: they cannot be checked.
        for record in records where stores[record.checkpoint.storeID] == nil {
            stores[record.checkpoint.storeID] = Store(storeID: record.checkpoint.storeID, label: "", registeredAt: record.publishedAt,
                                                      keys: [:], registered: false)
        }
        return (stores.values.sorted { $0.storeID.hex < $1.storeID.hex }, records)
    }

    /// ``judge(stores:records:now:silentAfter:)`` with the stores split over the cores: the
    /// Ed25519 verification of every publication is most of a sweep's work.
    static func judgeConcurrently(stores: [Store], records: [Record], now: Date, silentAfter: Duration?,
                                  progress: (@Sendable () -> Void)? = nil) async -> FleetReport {
        let parts = max(1, min(ProcessInfo.processInfo.activeProcessorCount, stores.count / 64))
        guard parts > 1 else { return judge(stores: stores, records: records, now: now, silentAfter: silentAfter, progress: progress) }
        let byStore = Dictionary(grouping: records, by: \.checkpoint.storeID)
        let size = (stores.count + parts - 1) / parts
        let reports = await withTaskGroup(of: (Int, [FleetStoreReport]).self) { group in
            for (index, start) in stride(from: 0, to: stores.count, by: size).enumerated() {
                let chunk = Array(stores[start..<min(stores.count, start + size)])
                let chunkRecords = chunk.map { byStore[$0.storeID] ?? [] }
                group.addTask {
                    (index, zip(chunk, chunkRecords).map {
                        defer { progress?() }
                        return judge($0, $1, now: now, silentAfter: silentAfter, progress: progress)
                    })
                }
            }
            var out: [(Int, [FleetStoreReport])] = []
            for await part in group { out.append(part) }
            return out.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
        return FleetReport(stores: reports, auditedAt: now)
    }

    /// The judgement, from what was read (publication order = `records` order).
    static func judge(stores: [Store], records: [Record], now: Date, silentAfter: Duration?,
                      progress: (@Sendable () -> Void)? = nil) -> FleetReport {
        let byStore = Dictionary(grouping: records, by: \.checkpoint.storeID)
        return FleetReport(stores: stores.map { store in
            defer { progress?() }
            return judge(store, byStore[store.storeID] ?? [], now: now, silentAfter: silentAfter, progress: progress)
        }, auditedAt: now)
    }

    static func judge(_ store: Store, _ records: [Record], now: Date, silentAfter: Duration?,
                      progress: (@Sendable () -> Void)? = nil) -> FleetStoreReport {
        guard store.registered else {
            let finding = FleetFinding(
                kind: .unknownKey, seq: records.map(\.checkpoint.seq).max(),
                message: "the witness holds \(records.count) publication(s) of this store, which is not registered (its registration was deleted, or they were written for an id never registered): none of them can be checked against a registered key. If the store is yours, register it again (`auditdb-fleet register`); otherwise find out who wrote them")
            return FleetStoreReport(storeID: store.storeID, label: "", highestSeq: 0, publications: records.count, lastPublishedAt: nil,
                                    findings: [finding])
        }
        var findings: [FleetFinding] = []
        var bySeq: [Int64: Checkpoint] = [:]
        var head: Checkpoint?
        // The last publication that counts against `silent`: validly signed with a registered
        // key. A row a publisher role inserted without the signing key shows nothing was signed.
        var last: Date?
        for (index, record) in records.enumerated() {
            if index % 1_000 == 999 { progress?() }  // a signature check each: a long store takes a while
            let cp = record.checkpoint
            func add(_ kind: FleetFinding.Kind, _ message: String) { findings.append(FleetFinding(kind: kind, seq: cp.seq, message: message)) }
            if let why = cp.invalidityUnderOwnKey {
                add(.invalidSignature, "the checkpoint at seq \(cp.seq) published \(FleetReport.iso(record.publishedAt)) is not validly signed: \(why)")
                continue
            }
            guard store.keys[cp.keyVersion] == cp.publicKey else {
                add(.unknownKey, "the checkpoint at seq \(cp.seq) is signed with key version \(cp.keyVersion) (public key \(hex(cp.publicKey).prefix(16))…), which is not registered for this store: a misconfigured instance, or someone signing for the store with another key")
                continue
            }
            last = max(last ?? record.publishedAt, record.publishedAt)
            if let other = bySeq[cp.seq] {
                if other.chainHead != cp.chainHead || other.merkleRoot != cp.merkleRoot {
                    add(.fork, "two different checkpoints were published at seq \(cp.seq) (roots \(hex(other.merkleRoot).prefix(16))… and \(hex(cp.merkleRoot).prefix(16))…): two copies of the store diverged")
                }
                continue
            }
            bySeq[cp.seq] = cp
            if let proof = record.proof {
                guard let earlier = bySeq[proof.fromSeq] else {
                    add(.fork, "its consistency proof starts at seq \(proof.fromSeq), where no validly signed checkpoint of this store was published")
                    continue
                }
                if let why = proof.invalidity(from: earlier, to: cp, publicKeys: nil) {
                    add(.fork, "the consistency proof from seq \(proof.fromSeq) fails: \(why)")
                    continue
                }
            }
            guard let highest = head else {
                head = cp
                continue
            }
            if cp.seq < highest.seq {
                add(.rollback, "a checkpoint at seq \(cp.seq) was published after the one at seq \(highest.seq): the store was rolled back (an older copy of its file is running)")
            } else if cp.seq > highest.seq {
                if record.proof?.fromSeq != highest.seq {
                    add(.fork, "the checkpoint at seq \(cp.seq) is not proven to extend the highest one at seq \(highest.seq) (its proof starts at \(record.proof.map { String($0.fromSeq) } ?? "no seq")): its log diverged from the published one")
                }
                head = cp
            }
        }
        if let silentAfter {
            let since = last ?? store.registeredAt
            let limit = Double(silentAfter.components.seconds) + Double(silentAfter.components.attoseconds) / 1e18
            if now.timeIntervalSince(since) > limit {
                findings.append(FleetFinding(
                    kind: .silent, seq: head?.seq,
                    message: last == nil
                        ? "no checkpoint was ever published since the store was registered at \(FleetReport.iso(since))"
                        : "no checkpoint was published since \(FleetReport.iso(since)) (more than \(Int(limit)) s ago)"))
            }
        }
        let order = Dictionary(uniqueKeysWithValues: FleetFinding.Kind.all.enumerated().map { ($1, $0) })
        findings.sort { (order[$0.kind] ?? 9, $0.seq ?? 0) < (order[$1.kind] ?? 9, $1.seq ?? 0) }
        return FleetStoreReport(storeID: store.storeID, label: store.label, highestSeq: head?.seq ?? 0,
                                publications: records.count, lastPublishedAt: last, findings: findings)
    }
}
