import AuditDBTestSupport
import Foundation
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing

@testable import AuditDB

/// Waits (up to a generous bound, never asserting a time) until `condition` holds.
func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<2_000 {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(5))
    }
    return false
}

@Suite("Periodic checkpoint service")
struct CheckpointServiceTests {
    let dir: TempDir
    let keys: KeyRing
    let signer: CheckpointSigner

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        signer = try testSigner()
    }

    @Test("checkpoints after N rows, after the interval, and once more on graceful shutdown; then stops cleanly")
    func periodic() async throws {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        let clock = ManualClock()
        var config = CheckpointService<ManualClock>.Configuration()
        config.rows = 10
        config.interval = .seconds(60)
        config.pollInterval = .seconds(1)
        let anchor = dir.path("anchor")
        let service = CheckpointService(store: store, signer: signer, anchors: [DirectoryAnchor(path: anchor)],
                                        configuration: config, clock: clock)
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                #expect(try await eventually { clock.sleeperCount == 1 })
                // 12 rows: over the row threshold at the next tick.
                try await store.append(contentsOf: (1...12).map { sampleEvent($0) })
                clock.advance(by: .seconds(1))
                #expect(try await eventually { try await store.checkpoints().last?.seq == 12 })
                // 3 rows: below the threshold; only the interval brings them in.
                try await store.append(contentsOf: (13...15).map { sampleEvent($0) })
                #expect(try await eventually { clock.sleeperCount == 1 })
                clock.advance(by: .seconds(1))
                #expect(try await eventually { clock.sleeperCount == 1 })
                #expect(try await store.checkpoints().last?.seq == 12)
                clock.advance(by: .seconds(60))
                #expect(try await eventually { try await store.checkpoints().last?.seq == 15 })
                // 2 more rows, then shut down: the service checkpoints them and returns.
                try await store.append(contentsOf: (16...17).map { sampleEvent($0) })
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(try await store.checkpoints().map(\.seq) == [12, 15, 17])
        let report = try await store.verify(againstAnchors: [anchor], publicKeys: signer.publicKeys)
        #expect(report.isIntact)
        try await store.close()
    }

    @Test("in a ServiceGroup, the service stops on graceful shutdown and the group ends without error")
    func stopsInServiceGroup() async throws {
        let store = try await AuditStore.create(at: dir.path("g.db"), keys: keys)
        try await store.append(contentsOf: (1...3).map { sampleEvent($0) })
        let service = CheckpointService(store: store, signer: signer)  // the continuous clock, 5-minute interval
        let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await Task.sleep(for: .milliseconds(50))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(try await store.checkpoints().map(\.seq) == [3], "the shutdown checkpoint")
        try await store.close()
    }
}
