import AuditDB
import AuditDBPostgres
import Foundation
import Logging
import PostgresNIO

/// Shipping from one store into `auditdb_ship.entries` next to its baseline — a plain `COPY` of
/// the same rows (the same bytes, under another store id) into the same table, measured in the
/// same run, pair by pair — then 10 shippers at once, then the central verifier over everything.
struct ShippingBench {
    let server: BenchPostgres
    let directory: String
    let rowsPerStore: Int
    let concurrentRows: Int
    let pairCount = 3

    struct Pair {
        var shipSeconds: Double
        var copySeconds: Double
        /// The instance's share of shipping, timed apart on the same store: planning (verify
        /// every row, compute leaves and proofs) and reading the batches' entries.
        var readSeconds: Double
        /// The same shipment from a twin store with one connection (one batch in flight).
        var shipOneConnectionSeconds: Double
    }

    struct Result {
        var rows: Int
        var pairs: [Pair]
        var concurrentStores: Int
        var concurrentRowsEach: Int
        var concurrentSeconds: Double
        var verifiedRows: Int64
        var verifySeconds: Double
        var verifyIntact: Bool
    }

    func events(_ store: Int, _ range: Range<Int>) -> [AuditEvent] {
        range.map { i in
            AuditEvent(actor: "user-\(i % 50_000)", action: ["document.read", "document.write", "login", "export"][i % 4],
                       resourceType: "document", resourceId: "doc-\(store)-\(i)", tenant: "tenant-\(i % 40)",
                       outcome: i % 17 == 0 ? .denied : .success, correlationId: "req-\(store)-\(i)",
                       source: "10.1.\(i % 250).\(store % 250)",
                       details: ["path": .string("/api/v2/documents/\(i)/content"), "bytes": .int(Int64(i * 37 % 100_000)),
                                 "client": .string("app/4.2.\(i % 9) (linux; x86_64)"), "note": .string(String(repeating: "x", count: 60))])
        }
    }

    /// A store of `rows` rows, registered, with a published checkpoint at its end.
    func makeStore(_ name: String, index: Int, rows: Int, owner: PostgresWitness, publisher: PostgresWitness) async throws -> AuditStore {
        let keys = try KeyRing([AuditKey.generate(version: 1)])
        let signer = try CheckpointSigner([CheckpointSigningKey.generate(version: 1)])
        let store = try await AuditStore.create(at: directory + "/" + name, keys: keys)
        for start in stride(from: 0, to: rows, by: 10_000) {
            try await store.append(contentsOf: events(index, start..<min(rows, start + 10_000)))
        }
        try await owner.register(store: store.storeID, publisher: "fleet_pub", publicKeys: signer.publicKeys, label: name)
        _ = try await store.checkpoint(signer: signer, anchors: [WitnessAnchor(witness: publisher)])
        return store
    }

    func run(log: (String) -> Void) async throws -> Result {
        var logger = Logger(label: "ship-bench")
        logger.logLevel = .error
        let owner = PostgresWitness(try WitnessConnection(url: server.url(BenchPostgres.owner)), logger: logger)
        let publisher = PostgresWitness(try WitnessConnection(url: server.url("fleet_pub")), logger: logger)
        let auditor = PostgresWitness(try WitnessConnection(url: server.url("fleet_auditor")), logger: logger)
        var concurrent: [PostgresWitness] = []
        for _ in 0..<10 { concurrent.append(PostgresWitness(try WitnessConnection(url: server.url("fleet_pub")), logger: logger)) }
        return try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
            for client in [owner, publisher, auditor] + concurrent {
                group.addTask { try await client.run() }
            }
            defer { group.cancelAll() }
            let shipper = CentralShipper(central: publisher, witness: publisher, logger: logger)
            var pairs: [Pair] = []
            for p in 0..<pairCount {
                let store = try await makeStore("ship-\(p).db", index: 100 + p, rows: rowsPerStore, owner: owner, publisher: publisher)
                let newest = try await publisher.checkpoints(of: store.storeID, below: Int64.max, limit: 1)[0]
                let r0 = ContinuousClock.now
                let plan = try await store.shippingRun(after: 0, through: newest)
                for batch in plan.batches { _ = try await store.shippedEntries(batch, of: plan) }
                let read = seconds(r0.duration(to: .now))
                let t0 = ContinuousClock.now
                let summary = try await shipper.ship(store)
                let ship = seconds(t0.duration(to: .now))
                guard summary.shipped == Int64(rowsPerStore) else { throw BenchFailure("shipped \(summary.shipped) of \(rowsPerStore)") }
                let copy = try await baselineCopy(of: store.storeID, owner: owner, logger: logger)
                let twin = try await makeStore("ship1-\(p).db", index: 100 + p, rows: rowsPerStore, owner: owner, publisher: publisher)
                let t1 = ContinuousClock.now
                let one = try await CentralShipper(central: publisher, witness: publisher, configuration: .init(connections: 1), logger: logger).ship(twin)
                let shipOne = seconds(t1.duration(to: .now))
                guard one.shipped == Int64(rowsPerStore) else { throw BenchFailure("shipped \(one.shipped) of \(rowsPerStore) on one connection") }
                pairs.append(Pair(shipSeconds: ship, copySeconds: copy, readSeconds: read, shipOneConnectionSeconds: shipOne))
                log("pair \(p + 1): ship \(String(format: "%.2f", ship)) s (reading \(String(format: "%.2f", read)) s), COPY \(String(format: "%.2f", copy)) s, ship on one connection \(String(format: "%.2f", shipOne)) s for \(rowsPerStore) rows")
                try await store.close()
                try await twin.close()
            }
            // 10 shippers at once, each with its own connection pool (as 10 instances would be).
            var stores: [AuditStore] = []
            for s in 0..<10 {
                stores.append(try await makeStore("conc-\(s).db", index: 200 + s, rows: concurrentRows, owner: owner, publisher: publisher))
            }
            let t0 = ContinuousClock.now
            let (each, quiet) = (concurrentRows, logger)
            try await withThrowingTaskGroup(of: Void.self) { shippers in
                for (store, client) in zip(stores, concurrent) {
                    shippers.addTask {
                        let summary = try await CentralShipper(central: client, witness: client, logger: quiet).ship(store)
                        guard summary.shipped == Int64(each) else { throw BenchFailure("a concurrent shipper shipped \(summary.shipped)") }
                    }
                }
                try await shippers.waitForAll()
            }
            let concurrentSeconds = seconds(t0.duration(to: .now))
            for store in stores { try await store.close() }
            log("10 shippers at once: \(10 * concurrentRows) rows in \(String(format: "%.2f", concurrentSeconds)) s")
            // The central verifier over every shipped row (the baseline copies are extra rows of
            // unregistered stores: counted apart).
            let v0 = ContinuousClock.now
            let report = try await ShippedVerifier(central: auditor, witness: auditor, logger: logger).verify()
            let verifySeconds = seconds(v0.duration(to: .now))
            let proven = report.stores.filter { !$0.label.isEmpty }
            return Result(rows: rowsPerStore, pairs: pairs, concurrentStores: 10, concurrentRowsEach: concurrentRows,
                          concurrentSeconds: concurrentSeconds, verifiedRows: report.stores.reduce(0) { $0 + $1.entriesChecked },
                          verifySeconds: verifySeconds, verifyIntact: proven.allSatisfy { $0.findings.isEmpty })
        }
    }

    /// The baseline: the shipped rows of `storeID`, dumped to a file as COPY text under a fresh
    /// store id, then loaded with one `COPY … FROM STDIN` as the table owner (the same table,
    /// indexes and statement trigger as shipping; the owner's rows skip only the trigger's
    /// registration lookup). Only the load is timed.
    func baselineCopy(of storeID: StoreID, owner: PostgresWitness, logger: Logger) async throws -> Double {
        let file = server.directory + "/baseline-\(storeID.hex).copy"
        var fresh = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { fresh[i] = UInt8.random(in: 0...255) }
        let freshHex = fresh.map { String(format: "%02x", $0) }.joined()
        try server.psql("""
            COPY (SELECT '\\x\(freshHex)'::bytea, seq, recorded_at, occurred_at, tenant, actor, action, resource_type, resource_id,
                         outcome, severity, correlation_id, source, details, origin, origin_ref, format_version, key_version,
                         actor_nonce, source_nonce, details_nonce, actor_commitment, source_commitment, details_commitment,
                         withheld, erased, leaf, tombstone, expiry_seq
                  FROM auditdb_ship.entries WHERE store_id = '\\x\(storeID.hex)' ORDER BY seq) TO '\(file)'
            """)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        let t0 = ContinuousClock.now
        try await owner.client.withConnection { connection in
            try await connection.query("SET search_path = auditdb_ship", logger: logger)
            try await connection.copyFrom(table: "entries", logger: logger) { writer in
                var offset = 0
                while offset < bytes.count {
                    let end = min(bytes.count, offset + (1 << 20))
                    try await writer.write(ByteBuffer(bytes: bytes[offset..<end]))
                    offset = end
                }
            }
        }
        let elapsed = seconds(t0.duration(to: .now))
        try? FileManager.default.removeItem(atPath: file)  // cleanup
        return elapsed
    }
}
