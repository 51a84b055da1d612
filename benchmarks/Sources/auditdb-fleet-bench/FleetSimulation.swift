import AuditDB
import AuditDBPostgres
import Foundation
import Logging

/// 1,000 stores (each its own store id, HMAC key and checkpoint key) publishing a checkpoint every
/// 10 s of simulated time for 10 simulated minutes: 60 rounds, run back to back (no real waiting),
/// every store appending its share of rows and publishing once per round, round after round, so
/// that the witness's publication order follows the simulated clock. Four stores carry the
/// injected faults.
struct FleetSimulation {
    enum Fault: String, CaseIterable {
        case forked, rolledBack = "rolled-back", silent, wrongKey = "wrong-key"
    }

    final class SimStore: @unchecked Sendable {
        // @unchecked: each SimStore is touched by one task at a time (one per store per round).
        let index: Int
        let path: String
        var store: AuditStore
        let signer: CheckpointSigner
        /// The store's own HMAC key ring.
        let keys: KeyRing
        let rowsPerRound: Int
        let fault: Fault?
        var fork: AuditStore?
        var rollbackCopy: String?
        var wrongSigner: CheckpointSigner?

        init(index: Int, path: String, store: AuditStore, signer: CheckpointSigner, keys: KeyRing, rowsPerRound: Int, fault: Fault?) {
            self.index = index
            self.keys = keys
            self.path = path
            self.store = store
            self.signer = signer
            self.rowsPerRound = rowsPerRound
            self.fault = fault
        }
    }

    let server: BenchPostgres
    let directory: String
    let storeCount: Int
    let rounds = 60
    let concurrency = 8

    /// The mix of sizes (rows per round → rows after 60 rounds): 70% ~300 rows, 25% ~3,000,
    /// 4.5% ~18,000, 0.5% ~90,000.
    func rowsPerRound(_ i: Int) -> Int {
        switch i % 200 {
        case 0: 1_500
        case 1...9: 300
        case 10...59: 50
        default: 5
        }
    }

    struct Result {
        var stores: Int
        var rows: Int64
        var publications: Int
        var simulationSeconds: Double
        var sweepSeconds: [Double]
        var report: FleetReport
        var faultStores: [Fault: StoreID]
        var silentAfterSeconds: Int64
    }

    func run(log: (String) -> Void) async throws -> Result {
        var logger = Logger(label: "fleet-bench")
        logger.logLevel = .error
        try server.psql("CREATE ROLE fleet_pub LOGIN IN ROLE auditdb_publisher; CREATE ROLE fleet_auditor LOGIN IN ROLE auditdb_auditor;")
        let owner = PostgresWitness(try WitnessConnection(url: server.url(BenchPostgres.owner)), logger: logger)
        let publisher = PostgresWitness(try WitnessConnection(url: server.url("fleet_pub")), logger: logger)
        let auditorClient = PostgresWitness(try WitnessConnection(url: server.url("fleet_auditor")), logger: logger)
        return try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
            for client in [owner, publisher, auditorClient] {
                group.addTask { try await client.run() }
            }
            defer { group.cancelAll() }
            // Faulty stores: four of the 3,000-row kind.
            let faults: [Int: Fault] = [10: .forked, 11: .rolledBack, 12: .silent, 13: .wrongKey]
            var stores: [SimStore] = []
            for i in 0..<storeCount {
                let path = directory + "/store-\(i).db"
                let keys = try KeyRing([AuditKey.generate(version: 1)])
                let store = try await AuditStore.create(at: path, keys: keys)
                let signer = try CheckpointSigner([CheckpointSigningKey.generate(version: 1)])
                try await owner.register(store: store.storeID, publisher: "fleet_pub", publicKeys: signer.publicKeys, label: "store-\(i)")
                let sim = SimStore(index: i, path: path, store: store, signer: signer, keys: keys, rowsPerRound: rowsPerRound(i), fault: faults[i])
                if sim.fault == .wrongKey { sim.wrongSigner = try CheckpointSigner([CheckpointSigningKey.generate(version: 1)]) }
                stores.append(sim)
            }
            log("created and registered \(storeCount) stores")
            let started = ContinuousClock.now
            var roundStarts: [ContinuousClock.Instant] = []
            for round in 1...rounds {
                roundStarts.append(.now)
                try await forEachConcurrently(stores) { sim in try await self.step(sim, round: round, publisher: publisher) }
                if round % 10 == 0 { log("round \(round) of \(rounds) done (\(started.duration(to: .now)))") }
            }
            let simulation = started.duration(to: .now)
            // Silent: the auditor's limit is the real time rounds 41–60 took (every healthy store
            // published within it; the silent store stopped after round 20).
            let silentAfter = Int64(roundStarts[40].duration(to: .now).components.seconds) + 1
            let auditor = FleetAuditor(witness: auditorClient, configuration: .init(silentAfter: .seconds(silentAfter)), logger: logger)
            var sweeps: [Double] = []
            var report: FleetReport?
            for _ in 0..<3 {
                let t0 = ContinuousClock.now
                report = try await auditor.audit()
                sweeps.append(seconds(t0.duration(to: .now)))
            }
            var rows: Int64 = 0
            var faultStores: [Fault: StoreID] = [:]
            for sim in stores {
                rows += try await sim.store.lastSeq()
                if let fault = sim.fault { faultStores[fault] = sim.store.storeID }
                try await sim.store.close()
                try await sim.fork?.close()
            }
            let publications = report?.stores.reduce(0) { $0 + $1.publications } ?? 0
            return Result(stores: storeCount, rows: rows, publications: publications, simulationSeconds: seconds(simulation),
                          sweepSeconds: sweeps, report: report!, faultStores: faultStores, silentAfterSeconds: silentAfter)
        }
    }

    /// One round of one store: append its rows, checkpoint, publish — with its fault.
    func step(_ sim: SimStore, round: Int, publisher: PostgresWitness) async throws {
        if sim.fault == .silent && round > 20 { return }
        let anchor = WitnessAnchor(witness: publisher)
        func events(_ tag: String, _ count: Int) -> [AuditEvent] {
            (0..<count).map { j in
                AuditEvent(actor: "user-\((sim.index * 7 + j) % 5_000)", action: ["login", "read", "write", "delete"][j % 4],
                           resourceType: "document", resourceId: "doc-\(round)-\(j)", tenant: "tenant-\(sim.index % 20)",
                           source: "10.0.\(sim.index % 250).\(j % 250)", details: ["round": .int(Int64(round)), "tag": .string(tag)])
            }
        }
        if sim.fault == .rolledBack && round == rounds, let copy = sim.rollbackCopy {
            // The file is replaced by the copy from round 45, which grows a little and publishes.
            try await sim.store.close()
            sim.store = try await AuditStore.open(at: copy, keys: sim.keys)
            try await sim.store.append(contentsOf: events("after-restore", sim.rowsPerRound / 2))
            _ = try await sim.store.checkpoint(signer: sim.signer, anchors: [anchor])
            return
        }
        if sim.fault == .forked && round == 50 {
            // Two copies of one file, diverging from here on.
            try await sim.store.close()
            let copy = sim.path + ".fork"
            try FileManager.default.copyItem(atPath: sim.path, toPath: copy)
            sim.store = try await AuditStore.open(at: sim.path, keys: sim.keys)
            sim.fork = try await AuditStore.open(at: copy, keys: sim.keys)
        }
        try await sim.store.append(contentsOf: events("main", sim.rowsPerRound))
        if sim.fault == .wrongKey && round > 30, let wrong = sim.wrongSigner {
            do {
                _ = try await sim.store.checkpoint(signer: wrong, anchors: [anchor])
            } catch let error as AuditError where error.message.contains("not registered") {
                // Recorded at the witness; the auditor reports it (unknown-key).
            }
        } else {
            _ = try await sim.store.checkpoint(signer: sim.signer, anchors: [anchor])
        }
        if let fork = sim.fork {
            try await fork.append(contentsOf: events("fork", sim.rowsPerRound))
            _ = try await fork.checkpoint(signer: sim.signer, anchors: [anchor])
        }
        if sim.fault == .rolledBack && round == 45 {
            try await sim.store.close()
            let copy = sim.path + ".round45"
            try FileManager.default.copyItem(atPath: sim.path, toPath: copy)
            sim.rollbackCopy = copy
            sim.store = try await AuditStore.open(at: sim.path, keys: sim.keys)
        }
    }

    func forEachConcurrently(_ stores: [SimStore], _ body: @Sendable @escaping (SimStore) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            for _ in 0..<min(concurrency, stores.count) {
                let sim = stores[next]
                next += 1
                group.addTask { try await body(sim) }
            }
            while try await group.next() != nil {
                guard next < stores.count else { continue }
                let sim = stores[next]
                next += 1
                group.addTask { try await body(sim) }
            }
        }
    }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
