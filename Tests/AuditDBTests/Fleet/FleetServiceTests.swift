import AuditDBPostgres
import AuditDBTestSupport
import Foundation
import Logging
import MetricsTestKit
import Synchronization
import Testing

@testable import AuditDB

/// The fleet auditor as a long-running service (FleetAuditService, `auditdb-fleet audit --every`)
/// against a real PostgreSQL witness: sweeps on its clock, findings as metrics.
@Suite("Fleet: audit service", .serialized)
final class FleetServiceTests: Sendable {
    let server: PostgresServer
    let dir: TemporaryDirectory
    let keys: KeyRing

    init() async throws {
        server = try await PostgresServer.withWitnessSchema(publishers: ["good", "wrongkey"])
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
    }

    deinit { server.stop() }

    /// One intact store and one that publishes under a key nobody registered.
    func seed() async throws {
        let registered = try CheckpointSigner.inMemory(), other = try CheckpointSigner.inMemory()
        for (name, signer) in [("good", registered), ("wrongkey", other)] {
            let store = try await AuditStore.create(at: dir.path(name + ".db"), keys: keys)
            try await store.append(contentsOf: (1...5).map { sampleEvent($0) })
            let id = store.storeID
            try await withWitness(server.url(PostgresServer.owner)) {
                try await $0.register(store: id, publisher: name, publicKeys: registered.publicKeys, label: name)
            }
            do {
                try await withWitness(server.url(name)) { witness in
                    _ = try await store.checkpoint(signer: signer, anchors: [WitnessAnchor(witness: witness)])
                }
                #expect(name == "good")
            } catch let error as AuditError {
                #expect(name == "wrongkey" && error.message.contains("not registered"), "\(error.message)")
            }
            try await store.close()
        }
    }

    @Test("sweeps at once and then every interval of its clock; the latest findings per kind are gauges, sweeps are counted")
    func serviceMetrics() async throws {
        try await seed()
        let metrics = TestMetrics()
        let clock = ManualClock()
        let reports = Mutex<[FleetReport]>([])
        try await withWitness(server.url("auditor")) { witness in
            let auditor = FleetAuditor(witness: witness, configuration: .init(metricsFactory: metrics), logger: Logger(label: "test"))
            let service = FleetAuditService(auditor: auditor, interval: .seconds(30), clock: clock) { report in
                reports.withLock { $0.append(report) }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                try await clock.waitForSleepers()
                #expect(reports.withLock { $0.count } == 1)
                clock.advance(by: .seconds(29))
                try await Task.sleep(for: .milliseconds(50))
                #expect(reports.withLock { $0.count } == 1, "no sweep before the interval")
                clock.advance(by: .seconds(1))
                try await clock.waitForSleepers()
                #expect(reports.withLock { $0.count } == 2)
                group.cancelAll()
            }
        }
        let kinds = reports.withLock { $0.last?.findings.map { "\($0.finding.kind)" } }
        #expect(kinds == ["unknown-key"])
        #expect(try metrics.expectGauge("auditdb_fleet_findings", [("kind", "unknown-key")]).lastValue == 1)
        #expect(try metrics.expectGauge("auditdb_fleet_findings", [("kind", "fork")]).lastValue == 0)
        #expect(try metrics.expectCounter("auditdb_fleet_sweeps_total").totalValue == 2)
        #expect(try metrics.expectGauge("auditdb_fleet_stores_with_findings").lastValue == 1)
        #expect(clock.sleeperCount == 0)
    }

    @Test("`auditdb-fleet audit --every 1s` prints a report per sweep and exits 0 on SIGTERM")
    func cliEvery() async throws {
        try await seed()
        let output = dir.path("every.out")
        #expect(FileManager.default.createFile(atPath: output, contents: nil, attributes: [.posixPermissions: 0o600]))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        let child = TestProcess()
        child.executableURL = URL(fileURLWithPath: try builtProduct("auditdb-fleet"))
        child.arguments = ["audit", "--witness", server.url("auditor"), "--every", "1s"]
        child.standardOutput = handle
        try child.run()
        try handle.close()
        var text = ""
        for _ in 0..<3_000 where text.components(separatedBy: "fleet NOT intact").count < 3 {
            usleep(10_000)
            text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""  // read while it is written: retried
        }
        kill(child.processIdentifier, SIGTERM)
        child.waitUntilExit()
        #expect(child.terminationReason == .exit && child.terminationStatus == 0)
        #expect(text.components(separatedBy: "fleet NOT intact: 1 of 2 store(s) with findings, 1 finding(s)").count >= 3, "\(text)")
        #expect(text.contains("unknown-key at seq 5"))
    }
}
