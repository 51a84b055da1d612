import AuditDBTestSupport
import Foundation
import MetricsTestKit
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing

@testable import AuditDB

/// The retention service on a `ManualClock`: the test advances time and waits for the service to
/// sleep again, never for real time to pass.
@Suite("Retention service", .timeLimit(.minutes(10)))
struct RetentionServiceTests {
    @Test("applies the policy every interval, counts what it expired, and stops on graceful shutdown")
    func periodic() async throws {
        let dir = try TemporaryDirectory()
        let metrics = TestMetrics()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try KeyRing.inMemory())
        try await store.append(contentsOf: (1...30).map { sampleEvent($0) })
        let clock = ManualClock()
        let reports = Mutex<[RetentionReport]>([])
        var configured = RetentionService(
            store: store, policy: ExpiryTests.policy,
            configuration: RetentionService.Configuration(interval: .seconds(3_600), metricsFactory: metrics),
            clock: clock) { report in reports.withLock { $0.append(report) } }
        configured.now = { ExpiryTests.later }
        let service = configured
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                try await clock.waitForSleepers()
                #expect(reports.withLock { $0.isEmpty }, "the first run waits one interval")
                clock.advance(by: .seconds(3_600))
                try await clock.waitForSleepers()
                clock.advance(by: .seconds(3_600))
                try await clock.waitForSleepers()
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(reports.withLock { $0.map(\.expired) } == [20, 0])
        #expect(clock.sleeperCount == 0)
        #expect(try await store.verify().isIntact)
        #expect(try metrics.expectCounter("auditdb_retention_runs_total").totalValue == 2)
        #expect(try metrics.expectCounter("auditdb_retention_expired_total").totalValue == 20)
        try await store.close()
    }

    @Test("a failed run is counted and the service carries on")
    func failureCounted() async throws {
        let dir = try TemporaryDirectory()
        let metrics = TestMetrics()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try KeyRing.inMemory())
        try await store.append(contentsOf: (1...6).map { sampleEvent($0) })
        try await store.close()  // every run fails: the store is closed
        let clock = ManualClock()
        var configured = RetentionService(
            store: store, policy: ExpiryTests.policy,
            configuration: RetentionService.Configuration(interval: .seconds(60), metricsFactory: metrics), clock: clock)
        configured.now = { ExpiryTests.later }
        let service = configured
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                try await clock.waitForSleepers()
                clock.advance(by: .seconds(60))
                try await clock.waitForSleepers()
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(try metrics.expectCounter("auditdb_retention_errors_total").totalValue == 1)
    }
}
