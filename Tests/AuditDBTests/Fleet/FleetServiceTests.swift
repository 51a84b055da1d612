import AuditDBPostgres
import AuditDBTestSupport
import Foundation
import Logging
import MetricsTestKit
import Synchronization
import Testing

@testable import AuditDB
@testable import AuditDBPostgres

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
            if name == "good" {
                try await withWitness(server.url(name)) { witness in
                    _ = try await store.checkpoint(signer: signer, anchors: [WitnessAnchor(witness: witness)])
                }
            } else {
                // The anchor refuses the unregistered key; a publisher role can still insert it.
                _ = try await withWitness(server.url(name)) { witness in
                    try await publishBypassingRegistration(store, signer: signer, to: witness)
                }
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

    @Test("a sweep that stops getting on (the witness's table locked) is given up after the stall limit and counted as failed; the next sweep runs on time")
    func stalledSweep() async throws {
        try await seed()
        let metrics = TestMetrics()
        let clock = ManualClock()
        let reports = Mutex<[FleetReport]>([])
        // Another session holds the publications table: the sweep's read waits on it, getting nowhere.
        let holder = try server.holdLock("LOCK TABLE auditdb_witness.checkpoints IN ACCESS EXCLUSIVE MODE")
        try await withWitness(server.url("auditor")) { witness in
            let auditor = FleetAuditor(witness: witness, configuration: .init(metricsFactory: metrics), logger: Logger(label: "test"))
            var service = FleetAuditService(auditor: auditor, interval: .seconds(30), clock: clock) { report in
                reports.withLock { $0.append(report) }
            }
            service.stallLimit = .seconds(120)
            service.stallClock = clock
            let guarded = service
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await guarded.run() }
                // The stall guard's timer is the only sleeper while the sweep waits: one whole
                // limit without progress gives it up.
                try await clock.waitForSleepers()
                clock.advance(by: .seconds(121))
                for _ in 0..<200 where (try? metrics.expectCounter("auditdb_fleet_sweep_errors_total").totalValue) != 1 {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(try metrics.expectCounter("auditdb_fleet_sweep_errors_total").totalValue == 1)
                #expect(try metrics.expectCounter("auditdb_fleet_sweep_stalls_total").totalValue == 1)
                #expect(reports.withLock { $0.isEmpty })
                // The lock goes; the next sweep, on time, reports.
                try holder.release()
                try await clock.waitForSleepers()
                clock.advance(by: .seconds(30))
                for _ in 0..<500 where reports.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(20)) }
                #expect(reports.withLock { $0.count } == 1)
                group.cancelAll()
            }
        }
        #expect(reports.withLock { $0.first?.findings.map { "\($0.finding.kind)" } } == ["unknown-key"])
    }

    @Test("`auditdb-fleet audit --every 1s` prints a report per sweep and exits 0 on SIGTERM")
    func cliEvery() async throws {
        try await seed()
        let output = dir.path("every.out")
        #expect(writeTestFile(output, Data()))
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

extension FleetServiceTests {
    @Test("`auditdb-fleet audit --every 1s --metrics-address` serves each finding kind to a real HTTP scrape, 404 elsewhere")
    func cliMetrics() async throws {
        try await seed()
        let child = TestProcess()
        child.executableURL = URL(fileURLWithPath: try builtProduct("auditdb-fleet"))
        child.arguments = ["audit", "--witness", server.url("auditor"), "--every", "1s", "--metrics-address", "127.0.0.1:0"]
        let out = Pipe(), err = Pipe()
        child.standardOutput = out
        child.standardError = err
        try child.run()
        let stderrText = ScanMetricsTests.drain(err), stdoutText = ScanMetricsTests.drain(out)
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }
        let base = try await ScanMetricsTests.waitFor("the metrics address") { () -> String? in
            guard let line = stderrText.withLock({ $0 }).split(separator: "\n").first(where: { $0.contains("serving metrics at ") }),
                  let url = line.split(separator: " ").last?.replacingOccurrences(of: "/metrics", with: "")
            else { return nil }
            return String(url)
        } orFail: { "stderr: \(stderrText.withLock { $0 }) / running: \(child.isRunning)" }
        let text = try await ScanMetricsTests.waitFor("two sweeps in /metrics") { () -> String? in
            let text = try await ScanMetricsTests.scrape(base + "/metrics").text
            return (ScanMetricsTests.value("auditdb_fleet_sweeps_total", in: text) ?? 0) >= 2 ? text : nil
        }
        #expect(ScanMetricsTests.value("auditdb_fleet_findings{kind=\"unknown-key\"}", in: text) == 1, "\(text)")
        #expect(ScanMetricsTests.value("auditdb_fleet_findings{kind=\"fork\"}", in: text) == 0)
        #expect(ScanMetricsTests.value("auditdb_fleet_stores", in: text) == 2)
        #expect(ScanMetricsTests.value("auditdb_fleet_stores_with_findings", in: text) == 1)
        #expect(ScanMetricsTests.value("auditdb_fleet_sweep_errors_total", in: text) == 0)
        #expect(text.contains("# TYPE auditdb_fleet_sweeps_total counter"))
        #expect(try await ScanMetricsTests.scrape(base + "/other").status == 404)
        kill(child.processIdentifier, SIGTERM)
        _ = try await ScanMetricsTests.waitFor("the auditor to stop") { child.isRunning ? nil : true }
        #expect(child.terminationReason == .exit && child.terminationStatus == 0)
        #expect(stdoutText.withLock { $0 }.contains("unknown-key at seq 5"))
    }

    @Test("--metrics-address without --every is a usage error")
    func metricsNeedEvery() throws {
        let result = try run(try builtProduct("auditdb-fleet"), ["audit", "--witness", "postgresql://x@127.0.0.1/w", "--metrics-address", "127.0.0.1:0"])
        #expect(result.status == 2)  // as every usage error of auditdb-fleet (its golden files)
        #expect(result.stderr.contains("--metrics-address needs --every"), "\(result.stderr)")
    }
}

/// The auditor's judgement split over the cores gives the report of the judgement in one piece.
@Suite("Fleet: concurrent judgement")
struct FleetJudgementTests {
    @Test("300 stores (every 7th with a bad signature, every 11th with an unregistered key, a rollback in every 13th): the same report both ways")
    func concurrentEqualsSerial() async throws {
        let signer = try CheckpointSigner.inMemory(), stranger = try CheckpointSigner.inMemory()
        var stores: [FleetAuditor.Store] = []
        var records: [FleetAuditor.Record] = []
        let now = Date()
        for i in 0..<300 {
            var idBytes = [UInt8](repeating: 0, count: 16)
            idBytes[14] = UInt8(i >> 8)
            idBytes[15] = UInt8(i & 0xFF)
            let id = try #require(StoreID(exactly: idBytes))
            stores.append(.init(storeID: id, label: "s\(i)", registeredAt: now, keys: [1: signer.publicKeys.keys[0].bytes]))
            for seq in i % 13 == 0 ? [Int64(5), 3] : [Int64(5)] {
                let key = i % 11 == 0 ? stranger.signingKey : signer.signingKey
                var cp = Checkpoint.signed(storeID: id, seq: seq, chainHead: [UInt8](repeating: 1, count: 32),
                                           merkleRoot: [UInt8](repeating: UInt8(seq), count: 32), time: .now(), key: key)
                if i % 7 == 0 {
                    cp = Checkpoint(storeID: id, seq: seq, chainHead: cp.chainHead, merkleRoot: cp.merkleRoot, time: cp.time,
                                    keyVersion: cp.keyVersion, publicKey: cp.publicKey, signature: [cp.signature[0] ^ 1] + cp.signature.dropFirst())
                }
                records.append(.init(checkpoint: cp, proof: nil, publishedAt: now))
            }
        }
        let serial = FleetAuditor.judge(stores: stores, records: records, now: now, silentAfter: nil)
        let concurrent = await FleetAuditor.judgeConcurrently(stores: stores, records: records, now: now, silentAfter: nil)
        func summary(_ r: FleetReport) -> [String] { r.findings.map { "\($0.storeID) \($0.finding.kind) \($0.finding.seq ?? 0)" } }
        #expect(summary(concurrent) == summary(serial))
        #expect(concurrent.stores.map(\.storeID) == stores.map(\.storeID))
        #expect(Set(serial.findings.map { "\($0.finding.kind)" }) == ["invalid-signature", "unknown-key", "rollback"])
    }
}
