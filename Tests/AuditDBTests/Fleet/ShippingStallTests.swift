import AuditDBPostgres
import AuditDBTestSupport
import Foundation
import Logging
import MetricsTestKit
import Synchronization
import Testing

@testable import AuditDB
@testable import AuditDBPostgres

/// The shipping service against PostgreSQL that stops answering (its server processes frozen
/// with SIGSTOP, as a paused VM or a dead network path leaves a connection open and silent),
/// then restarts; and the central tables, dumped by docs/verifier/shipped_dump.sql, proven by the
/// Python verifier (FORMAT.md 22.7).
@Suite("Fleet: shipping stalls and the outside verifier", .serialized)
final class ShippingStallTests: Sendable {
    let server: PostgresServer
    let dir: TemporaryDirectory
    let keys: KeyRing

    init() async throws {
        server = try await PostgresServer.withWitnessSchema(publishers: ["inst_a"])
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
    }

    deinit { server.stop() }

    /// The server processes serving `role`'s connections.
    func backends(of role: String) throws -> [pid_t] {
        try server.psql("SELECT pid FROM pg_stat_activity WHERE usename = '\(role)'").split(separator: "\n").compactMap { pid_t($0) }
    }

    @Test("a round stalled by a frozen server is given up, counted and logged; the service reconnects after a restart and ships every entry once")
    func stalledRound() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (1...500).map { sampleEvent($0) })
        let id = store.storeID
        try await withWitness(server.url(PostgresServer.owner)) {
            try await $0.register(store: id, publisher: "inst_a", publicKeys: signer.publicKeys, label: "s")
        }
        let metrics = TestMetrics()
        // Rounds on one manual clock, the stall limit on another: only this test decides when
        // a round has been silent for a whole limit, however slow the machine is.
        let clock = ManualClock(), stallClock = ManualClock()
        let rounds = Mutex<[Int64]>([])
        var service = ShippingService(
            store: store, central: try WitnessConnection(url: server.url("inst_a")), configuration: .init(batchSize: 100),
            signer: signer, interval: .seconds(60), stallLimit: .seconds(5), clock: clock, logger: Logger(label: "test"),
            metricsFactory: metrics) { summary in rounds.withLock { $0.append(summary.shippedAfter) } }
        service.stallClock = stallClock
        var frozen: [pid_t] = []
        defer { for pid in frozen { kill(pid, SIGCONT) } }  // a failing test leaves no frozen server behind
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [service] in try await service.run() }
            try await clock.waitForSleepers()
            #expect(rounds.withLock { $0 } == [500])
            // Freeze every server process of the service's connections: their sockets stay open
            // and silent, and PostgresNIO waits for an answer for ever.
            frozen = try backends(of: "inst_a")
            #expect(!frozen.isEmpty)
            for pid in frozen { #expect(kill(pid, SIGSTOP) == 0) }
            try await store.append(contentsOf: (501...800).map { sampleEvent($0) })
            clock.advance(by: .seconds(60))
            // The round hangs on a frozen connection; its guard sleeps one limit on the stall
            // clock, finds no progress, and gives it up.
            try await stallClock.waitForSleepers()
            stallClock.advance(by: .seconds(5))
            var stalls: Int64 = 0
            for _ in 0..<600 where stalls == 0 {
                try await Task.sleep(for: .milliseconds(100))
                stalls = (try? metrics.expectCounter("auditdb_ship_stalls_total").totalValue) ?? 0  // no counter until one is made
            }
            #expect(stalls == 1)
            try await clock.waitForSleepers()
            #expect(rounds.withLock { $0 } == [500], "the stalled round reported nothing")
            for pid in frozen { kill(pid, SIGCONT) }
            frozen = []
            try self.server.restart()
            for _ in 0..<3 where rounds.withLock({ $0.last }) != 800 {
                clock.advance(by: .seconds(60))
                try await clock.waitForSleepers()
            }
            #expect(rounds.withLock { $0.last } == 800)
            group.cancelAll()
        }
        #expect(try metrics.expectCounter("auditdb_ship_stalls_total").totalValue == 1)
        #expect(try metrics.expectCounter("auditdb_ship_entries_total").totalValue == 800)
        #expect(try metrics.expectGauge("auditdb_ship_high_water_seq").lastValue == 800)
        let report = try await withWitness(server.url("auditor")) { witness in
            try await ShippedVerifier(central: witness, witness: witness, logger: Logger(label: "test")).verify()
        }
        #expect(report.isIntact, "\(report.text)")
        #expect(report.stores.map(\.entriesChecked) == [800])
        #expect(try server.psql("SELECT count(*), count(DISTINCT seq) FROM auditdb_ship.entries") == "800|800\n")
        try await store.close()
    }
}
