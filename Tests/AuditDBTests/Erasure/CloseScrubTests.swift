import Foundation
import GRDB
import GRDBSQLite
import Logging
import Synchronization
import Testing

@testable import AuditDB

/// What `close()` waits for: after appends, one checkpoint attempt (another client's long read
/// never holds a close for the busy timeout); after an erasure whose scrub a reader held off, it
/// keeps trying, so the erased values leave the WAL once the reader is gone.
extension ErasureTests {
    /// Another client's read transaction on an older snapshot, held until `end()`.
    final class HeldSnapshot {
        let queue: DatabaseQueue
        init(_ path: String) throws {
            var configuration = Configuration()
            configuration.allowsUnsafeTransactions = true
            queue = try DatabaseQueue(path: path, configuration: configuration)
            try queue.inDatabase { db in
                try db.execute(sql: "BEGIN")
                _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_entries")
            }
        }
        func end() throws {
            try queue.inDatabase { db in try db.execute(sql: "COMMIT") }
            try queue.close()
        }
    }

    @Test("a close after appends makes one checkpoint attempt: a reader's old snapshot never holds it for the busy timeout")
    func closeAfterAppendsDoesNotWait() async throws {
        try await makeAliceStore().close()
        let reader = try HeldSnapshot(path)
        let handler = CapturingLogHandler()
        var configuration = AuditStore.Configuration()
        configuration.busyTimeout = .seconds(1)
        configuration.logger = Logger(label: "close") { _ in handler }
        let store = try await AuditStore.open(at: path, keys: keys, configuration: configuration)
        #expect(try await store.append(sampleEvent(21)) == 21)  // the reader's snapshot is now older
        try await store.close()
        try reader.end()
        // One attempt, left to the next checkpoint: not the scrub that tries for the whole busy
        // timeout and then says so (what a close after an erasure does).
        let messages = handler.records.withLock { $0.map { "\($0.level) \($0.message)" } }
        #expect(messages.contains("debug the write-ahead log was left for the next checkpoint at close: a reader holds an older snapshot"), "\(messages)")
        #expect(!messages.contains { $0.contains("could not be emptied at close") }, "\(messages)")
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).lastSeq == 21)
    }

    @Test("a close after an erasure whose scrub a reader held off keeps trying: once the reader is gone, the values leave the -wal")
    func closeFinishesAHeldOffScrub() async throws {
        try await makeAliceStore().close()
        var configuration = AuditStore.Configuration()
        configuration.busyTimeout = .seconds(2)
        let store = try await AuditStore.open(at: path, keys: keys, configuration: configuration)
        let reader = try HeldSnapshot(path)
        let report = try await store.erase(.actor(Self.alice), fields: [.actor, .source, .details], reason: "TICKET-7")
        #expect(report.erased == [3, 8, 13, 18])
        #expect(!report.scrubbed)
        #expect(store.walScrubPending.withLock { $0 })
        async let closed: Void = store.close()
        try await Task.sleep(for: .milliseconds(300))
        try reader.end()
        try await closed
        #expect(!store.walScrubPending.withLock { $0 })
        #expect(try fileBytes().range(of: Data(Self.alice.utf8)) == nil)
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).isIntact)
    }
}
