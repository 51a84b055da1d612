import AuditDBTestSupport
import Foundation
import GRDBSQLite
import Logging
import MetricsTestKit
import Synchronization
import Testing

@testable import AuditDB

/// Collects log records in memory.
final class CapturingLogHandler: LogHandler, Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    let records = Mutex<[Record]>([])
    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }
    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(event: LogEvent) {
        let record = Record(
            level: event.level, message: event.message.description,
            metadata: (event.metadata ?? [:]).mapValues { $0.description })
        records.withLock { $0.append(record) }
    }
}

@Suite("Metrics and logging")
struct ObservabilityTests {
    @Test("appends, commits and rejected events are counted; failures are logged at error level")
    func countersAndLogs() async throws {
        let dir = try TemporaryDirectory()
        let metrics = TestMetrics()
        let handler = CapturingLogHandler()
        var config = AuditStore.Configuration()
        config.metricsFactory = metrics
        config.logger = Logger(label: "test", factory: { _ in handler })
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: try KeyRing.inMemory(), configuration: config)
        try await store.append(contentsOf: (1...5).map { sampleEvent($0) })
        try await store.append(sampleEvent(6))
        await #expect(throws: AuditError.self) { try await store.append(AuditEvent(actor: "", action: "x")) }
        #expect(try metrics.expectCounter("auditdb_appended_entries_total").totalValue == 6)
        #expect(try metrics.expectCounter("auditdb_commits_total").totalValue == 2)
        #expect(try metrics.expectCounter("auditdb_append_failures_total").totalValue == 1)
        try await store.close()

        // A storage failure: another connection holds the write lock past the busy timeout.
        config.busyTimeout = .milliseconds(200)
        let reopened = try await AuditStore.open(at: path, keys: store.keys, configuration: config)
        // A plain SQLite client (GRDB refuses to leave a transaction open, rightly).
        var other: OpaquePointer?
        #expect(sqlite3_open(path, &other) == SQLITE_OK)
        #expect(sqlite3_exec(other, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK)
        do {
            try await reopened.append(sampleEvent(7))
            Issue.record("append succeeded while another connection held the write lock")
        } catch let error as AuditError {
            #expect(error.code == .busy)
            #expect(error.message.contains("Nothing was written"))
        }
        #expect(try metrics.expectCounter("auditdb_append_failures_total").totalValue == 2)
        #expect(handler.records.withLock { $0.contains { $0.level == .error && $0.message.contains("append failed") } })
        // Once the lock is gone the next append works and takes the next seq: nothing half-written.
        #expect(sqlite3_exec(other, "ROLLBACK", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(other)
        #expect(try await reopened.append(sampleEvent(7)) == 7)
        #expect(try await reopened.verify().isIntact)
        try await reopened.close()
    }
}
