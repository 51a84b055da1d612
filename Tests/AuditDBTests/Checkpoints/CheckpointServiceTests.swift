import AuditDBTestSupport
import Foundation
import Logging
import MetricsTestKit
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing

@testable import AuditDB

/// An anchor that refuses every checkpoint, as an unreachable remote would.
struct UnreachableAnchor: AnchorSink {
    var name: String { "unreachable.example" }

    func write(_ checkpoint: Checkpoint) async throws {
        throw AuditError(.storage, "the anchor host is unreachable (test)")
    }
}

/// The periodic checkpoint service. Its schedule runs on a `ManualClock`: the tests advance time
/// and wait for the service to sleep again (`waitForSleepers`), never for real time to pass.
@Suite("Periodic checkpoint service", .timeLimit(.minutes(10)))
struct CheckpointServiceTests {
    let dir: TemporaryDirectory
    let keys: KeyRing
    let signer: CheckpointSigner

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
        signer = try CheckpointSigner.inMemory()
    }

    @Test("checkpoints after N rows, after the interval, and once more on graceful shutdown; then stops cleanly")
    func periodic() async throws {
        let metrics = TestMetrics()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        let clock = ManualClock()
        let config = CheckpointService.Configuration(
            interval: .seconds(60), rows: 10, pollInterval: .seconds(1), metricsFactory: metrics)
        let anchor = dir.path("anchor")
        let service = CheckpointService(store: store, signer: signer, anchors: [DirectoryAnchor(path: anchor)],
                                        configuration: config, clock: clock)
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                try await clock.waitForSleepers()
                // 12 rows: over the row threshold at the next tick.
                try await store.append(contentsOf: (1...12).map { sampleEvent($0) })
                clock.advance(by: .seconds(1))
                try await clock.waitForSleepers()
                #expect(try await store.checkpoints().last?.seq == 12)
                // 3 rows: below the threshold; only the interval brings them in.
                try await store.append(contentsOf: (13...15).map { sampleEvent($0) })
                clock.advance(by: .seconds(1))
                try await clock.waitForSleepers()
                #expect(try await store.checkpoints().last?.seq == 12)
                clock.advance(by: .seconds(60))
                try await clock.waitForSleepers()
                #expect(try await store.checkpoints().last?.seq == 15)
                // 2 more rows, then shut down: the service checkpoints them and returns.
                try await store.append(contentsOf: (16...17).map { sampleEvent($0) })
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(try await store.checkpoints().map(\.seq) == [12, 15, 17])
        #expect(clock.sleeperCount == 0, "nothing of the service is left waiting on the clock")
        let report = try await store.verify(againstAnchors: [anchor], publicKeys: signer.publicKeys)
        #expect(report.isIntact)
        #expect(try metrics.expectCounter("auditdb_checkpoint_made_total").totalValue == 3)
        #expect(try metrics.expectTimer("auditdb_checkpoint_duration").values.count == 3)
        #expect(try metrics.expectGauge("auditdb_checkpoint_through_seq").lastValue == 17)
        #expect(try metrics.expectGauge("auditdb_checkpoint_last_success_timestamp_seconds").lastValue ?? 0 > 1_700_000_000)
        try await store.close()
    }

    /// A new store whose logger and metrics the test reads.
    func observedStore(_ name: String, metricsPrefix: String? = nil) async throws -> (AuditStore, TestMetrics, CapturingLogHandler) {
        let metrics = TestMetrics()
        let handler = CapturingLogHandler()
        var storeConfiguration = AuditStore.Configuration()
        storeConfiguration.logger = Logger(label: "store") { _ in handler }
        storeConfiguration.metricsFactory = metrics
        if let metricsPrefix { storeConfiguration.metricsPrefix = metricsPrefix }
        return (try await AuditStore.create(at: dir.path(name), keys: keys, configuration: storeConfiguration), metrics, handler)
    }

    @Test("a failed checkpoint is counted and logged to the store's logger; the service carries on")
    func failuresCountedAndLogged() async throws {
        let (store, metrics, handler) = try await observedStore("f.db", metricsPrefix: "app_audit")
        let clock = ManualClock()
        let service = CheckpointService(
            store: store, signer: signer, anchors: [UnreachableAnchor()],
            configuration: .init(rows: 1, checkpointsOnShutdown: false), clock: clock)
        try await store.append(contentsOf: (1...3).map { sampleEvent($0) })
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                for _ in 1...2 {
                    try await clock.waitForSleepers()
                    clock.advance(by: .seconds(1))
                }
                try await clock.waitForSleepers()  // two attempts failed; the service still polls
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        // The store's prefix and factory, the checkpoint component's names.
        #expect(try metrics.expectCounter("app_audit_checkpoint_errors_total").totalValue == 2)
        #expect(try metrics.expectCounter("app_audit_checkpoint_made_total").totalValue == 0)
        let errors = handler.records.withLock { $0.filter { $0.level == .error } }
        #expect(errors.count == 2)
        #expect(errors.allSatisfy { $0.message.contains("periodic checkpoint failed") })
        #expect(errors.first?.metadata["error"]?.contains("the anchor host is unreachable (test)") == true)
        #expect(try await store.checkpoints().isEmpty)
        try await store.close()
    }

    @Test("a shutdown checkpoint that fails is thrown, logged and counted: there is no next tick to anchor the last rows")
    func shutdownCheckpointFailureThrows() async throws {
        let (store, metrics, handler) = try await observedStore("s.db")
        try await store.append(contentsOf: (1...3).map { sampleEvent($0) })
        let clock = ManualClock()
        let service = CheckpointService(store: store, signer: signer, anchors: [UnreachableAnchor()], clock: clock)
        var thrown: (any Error)?
        do {
            try await testGracefulShutdown { trigger in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await service.run() }
                    try await clock.waitForSleepers()
                    trigger.triggerGracefulShutdown()
                    try await group.waitForAll()
                }
            }
        } catch {
            thrown = error
        }
        #expect((thrown as? AuditError)?.message == "the anchor host is unreachable (test)", "\(String(describing: thrown))")
        #expect(handler.records.withLock { $0.contains { $0.level == .error && $0.message.contains("shutdown checkpoint failed") } })
        #expect(try metrics.expectCounter("auditdb_checkpoint_errors_total").totalValue == 1)
        #expect(try await store.checkpoints().isEmpty)
        try await store.close()
    }

    @Test("without a logger of its own or the store's, the service logs to the creating task's Logger.current")
    func loggerFallsBackToTaskLocal() async throws {
        let handler = CapturingLogHandler()
        let store = try await AuditStore.create(at: dir.path("l.db"), keys: keys)  // no logger configured
        try await store.append(sampleEvent(1))
        let clock = ManualClock()
        // Made inside a withLogger scope (synchronous, as an app's set-up code would be).
        func makeService() -> CheckpointService {
            withLogger(Logger(label: "task-local") { _ in handler }) { _ in
                CheckpointService(store: store, signer: signer, anchors: [UnreachableAnchor()],
                                  configuration: .init(rows: 1, checkpointsOnShutdown: false, metricsFactory: TestMetrics()),
                                  clock: clock)
            }
        }
        let service = makeService()
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }  // outside the withLogger scope
                try await clock.waitForSleepers()
                clock.advance(by: .seconds(1))
                try await clock.waitForSleepers()
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(handler.records.withLock { $0.contains { $0.level == .error && $0.message.contains("periodic checkpoint failed") } })
        try await store.close()
    }

    @Test("in a ServiceGroup, graceful shutdown stops the service at once and the group ends without error")
    func stopsInServiceGroup() async throws {
        let store = try await AuditStore.create(at: dir.path("g.db"), keys: keys)
        try await store.append(contentsOf: (1...3).map { sampleEvent($0) })
        let clock = ManualClock()
        let service = CheckpointService(store: store, signer: signer, clock: clock)  // 5-minute interval, 10,000 rows
        let group = ServiceGroup(services: [service], logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await clock.waitForSleepers()  // running, and waiting for its next poll
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()  // returns although the clock never moved
        }
        #expect(try await store.checkpoints().map(\.seq) == [3], "the shutdown checkpoint")
        #expect(clock.sleeperCount == 0)
        try await store.close()
    }
}
