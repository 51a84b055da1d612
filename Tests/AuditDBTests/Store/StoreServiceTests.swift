import AuditDBTestSupport
import Foundation
import GRDBSQLite
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing

@testable import AuditDB

/// `AuditStore` as a swift-service-lifecycle `Service`: open while it runs, flushed and closed
/// at shutdown. Shutdown is triggered with ServiceLifecycleTestKit; schedules run on a
/// `ManualClock` that never moves, so a service that waited for its next tick would hang (and
/// the time limit would fail the test) instead of passing slowly.
@Suite("The store as a service", .timeLimit(.minutes(10)))
struct StoreServiceTests {
    static let silent = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    static func configuration(_ durability: AuditStore.Durability = .synchronous) -> AuditStore.Configuration {
        var configuration = AuditStore.Configuration()
        configuration.durability = durability
        configuration.logger = silent
        return configuration
    }

    /// A copy of the store's main file alone (no -wal, no -shm): what is in it was flushed.
    static func mainFileOnly(_ temporary: TemporaryStore) throws -> String {
        let copy = temporary.directory.path("main-file-only.db")
        try FileManager.default.copyItem(atPath: temporary.path, toPath: copy)
        return copy
    }

    @Test("graceful shutdown waits for the appends queued before it, flushes them into the file, and refuses later ones")
    func flushesPendingAppendsAndCloses() async throws {
        var configuration = Self.configuration(.relaxed)
        configuration.maximumGroupSize = 300  // one batch per transaction: the queue is observable
        // The first batch waits on the lock until the shutdown has begun: on a loaded machine that
        // took longer than the default busy timeout once, and the batch failed as `busy`.
        configuration.busyTimeout = .seconds(120)
        let temporary = try await TemporaryStore(configuration: configuration)
        let store = temporary.store
        #expect(try await store.append(sampleEvent(0)) == 1)
        // Another connection holds the write lock, so the appends below wait behind it.
        var other: OpaquePointer?
        #expect(sqlite3_open(temporary.path, &other) == SQLITE_OK)
        defer { sqlite3_close(other) }
        #expect(sqlite3_exec(other, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK)
        var ranges: [ClosedRange<Int64>] = []
        var lateAppend: AuditError.Code?
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { service in
                service.addTask { try await store.run() }
                ranges = try await withThrowingTaskGroup(of: ClosedRange<Int64>.self) { appends in
                    for batch in 0..<5 {
                        appends.addTask { try await store.append(contentsOf: (1...300).map { sampleEvent(batch * 300 + $0) }) }
                    }
                    // The first batch is being written (waiting for the lock); the other four are queued.
                    while store.appender.state.withLock({ $0.pending.count }) < 4 { await Task.yield() }
                    trigger.triggerGracefulShutdown()
                    // close() has begun once the appender refuses new work; only then is the lock let go.
                    while !store.appender.state.withLock({ $0.closed }) { await Task.yield() }
                    do {
                        try await store.append(sampleEvent(9_999))
                    } catch let error as AuditError {
                        lateAppend = error.code
                    }
                    #expect(sqlite3_exec(other, "ROLLBACK", nil, nil, nil) == SQLITE_OK)
                    return try await appends.reduce(into: []) { $0.append($1) }
                }
                try await service.waitForAll()  // run() returned: the store is closed
            }
        }
        #expect(lateAppend == .closed)
        // Every queued batch was written, in full, in the order it was queued behind the lock.
        #expect(ranges.map(\.lowerBound).sorted() == [2, 302, 602, 902, 1_202])
        #expect(ranges.allSatisfy { $0.count == 300 })
        await #expect { try await store.append(sampleEvent(1_000)) } throws: { ($0 as? AuditError)?.code == .closed }
        // Relaxed durability defers fsyncs to close: the rows are in the main database file
        // itself, without the WAL, and they verify.
        let reopened = try await AuditStore.open(
            at: try Self.mainFileOnly(temporary), keys: temporary.keys, configuration: Self.configuration())
        #expect(try await reopened.lastSeq() == 1_501)
        #expect(try await reopened.verify().isIntact)
        try await reopened.close()
    }

    @Test("cancelled instead of shut down gracefully (another service failed), it still flushes and closes")
    func cancellationCloses() async throws {
        let temporary = try await TemporaryStore(configuration: Self.configuration(.relaxed))
        let store = temporary.store
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            try await store.append(contentsOf: (1...40).map { sampleEvent($0) })
            group.cancelAll()
            try await group.waitForAll()  // run() returned without throwing
        }
        await #expect { try await store.append(sampleEvent(41)) } throws: { ($0 as? AuditError)?.code == .closed }
        let reopened = try await AuditStore.open(
            at: try Self.mainFileOnly(temporary), keys: temporary.keys, configuration: Self.configuration())
        #expect(try await reopened.lastSeq() == 40)
        try await reopened.close()
    }

    @Test("close() called by the app as well, before and after run() ends, closes once and never fails")
    func closeIsIdempotent() async throws {
        let temporary = try await TemporaryStore(configuration: Self.configuration())
        let store = temporary.store
        try await store.append(sampleEvent(1))
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.run() }
                async let concurrent: Void = store.close()  // the app closes while the service runs
                trigger.triggerGracefulShutdown()
                try await concurrent
                try await group.waitForAll()  // run()'s own close found the store closed: no error
            }
        }
        try await store.close()
        await #expect { try await store.append(sampleEvent(2)) } throws: { ($0 as? AuditError)?.code == .closed }
        let reopened = try await temporary.open(configuration: Self.configuration())
        #expect(try await reopened.lastSeq() == 1)
        try await reopened.close()
    }

    @Test("in a ServiceGroup after the store, the scanner and checkpoint service stop at once and the store closes last")
    func groupShutsDownInOrder() async throws {
        let temporary = try await TemporaryStore(configuration: Self.configuration())
        let store = temporary.store
        try await store.append(contentsOf: (1...5).map { sampleEvent($0) })
        let signer = try CheckpointSigner.inMemory()
        let anchor = temporary.directory.path("anchor")
        let clock = ManualClock()
        let scanner = IntegrityScanner(store: store, configuration: .init(interval: .seconds(3_600)), clock: clock)
        let checkpoints = CheckpointService(
            store: store, signer: signer, anchors: [DirectoryAnchor(path: anchor)], clock: clock)
        let group = ServiceGroup(services: [store, scanner, checkpoints], logger: Self.silent)
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                // The scanner has made its first pass (recorded as seq 6) and sleeps for an hour;
                // the checkpoint service waits for its first poll.
                try await clock.waitForSleepers(2)
                trigger.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
        #expect(clock.now == ManualClock.Instant(offset: .zero), "nobody needed the clock to move to stop")
        #expect(clock.sleeperCount == 0)
        #expect(scanner.status.passes == 1)
        await #expect { try await store.append(sampleEvent(6)) } throws: { ($0 as? AuditError)?.code == .closed }
        // The checkpoint service stopped before the store closed: its shutdown checkpoint covers the
        // scanner's record, and it is both in the store and in the anchor.
        let reopened = try await temporary.open(configuration: Self.configuration())
        #expect(try await reopened.checkpoints().map(\.seq) == [6])
        #expect(try await reopened.verify(againstAnchors: [anchor], publicKeys: signer.publicKeys).isIntact)
        try await reopened.close()
    }
}
