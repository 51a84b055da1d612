import Foundation
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing

@testable import AuditDB

/// A clock that moves only when the test advances it.
final class ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [UInt64: (Instant, CheckedContinuation<Void, any Error>)] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .zero }
    /// How many tasks are sleeping on the clock.
    var sleeping: Int { state.withLock { $0.sleepers.count } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id = state.withLock { s in s.nextID += 1; return s.nextID }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready = state.withLock { s -> Bool in
                    if deadline <= s.now || Task.isCancelled { return true }
                    s.sleepers[id] = (deadline, continuation)
                    return false
                }
                if ready {
                    if Task.isCancelled { continuation.resume(throwing: CancellationError()) } else { continuation.resume() }
                }
            }
        } onCancel: {
            state.withLock { $0.sleepers.removeValue(forKey: id) }?.1.resume(throwing: CancellationError())
        }
    }

    func advance(by duration: Duration) {
        let due = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.now = s.now.advanced(by: duration)
            let ready = s.sleepers.filter { $0.value.0 <= s.now }
            for id in ready.keys { s.sleepers.removeValue(forKey: id) }
            return ready.values.map(\.1)
        }
        for continuation in due { continuation.resume() }
    }
}

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
                #expect(try await eventually { clock.sleeping == 1 })
                // 12 rows: over the row threshold at the next tick.
                try await store.append(contentsOf: (1...12).map { sampleEvent($0) })
                clock.advance(by: .seconds(1))
                #expect(try await eventually { try await store.checkpoints().last?.seq == 12 })
                // 3 rows: below the threshold; only the interval brings them in.
                try await store.append(contentsOf: (13...15).map { sampleEvent($0) })
                #expect(try await eventually { clock.sleeping == 1 })
                clock.advance(by: .seconds(1))
                #expect(try await eventually { clock.sleeping == 1 })
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
