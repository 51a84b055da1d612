import Foundation
import GRDB
import Synchronization
import Testing

@testable import AuditDB

/// Adoption in one transaction (LegacyAdoption.Commits.oneTransaction, what `automatic` chooses for
/// an empty or small store): the query indexes are dropped and re-created inside the transaction
/// that imports the rows, so no committed state lacks them or holds part of the run.
@Suite("Adopting in one transaction")
struct AdoptionOneTransactionTests {
    let dir: TempDir
    let keys: KeyRing

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
    }

    func workflowAdoption(_ legacy: String, table: String = "audit_events") -> LegacyAdoption {
        var adoption = LegacyAdoption(sourcePath: legacy, table: table, mapping: AdoptionTests.workflowMapping)
        adoption.idColumn = "id"
        adoption.dropUnmapped = true
        return adoption
    }

    /// AuditDB's indexes as the file stores them: name and CREATE INDEX text.
    static func indexes(_ path: String) throws -> [String] {
        let queue = try DatabaseQueue(path: path)
        return try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'audit_entries' ORDER BY name")
                .map { "\($0["name"] as String): \($0["sql"] as String? ?? "NULL")" }
        }
    }

    @Test("which runs go in one transaction: automatic takes an empty or small store and a source within the limit")
    func choice() {
        #expect(LegacyAdoption.Commits.automatic.isOneTransaction(sourceRows: 1_000, storeRows: 0))
        #expect(LegacyAdoption.Commits.automatic.isOneTransaction(sourceRows: 1_000, storeRows: 1_000))
        #expect(!LegacyAdoption.Commits.automatic.isOneTransaction(sourceRows: 1_000, storeRows: 1_001))
        #expect(!LegacyAdoption.Commits.automatic.isOneTransaction(sourceRows: LegacyAdoption.oneTransactionLimit + 1, storeRows: 0))
        #expect(LegacyAdoption.Commits.oneTransaction.isOneTransaction(sourceRows: 10, storeRows: 1_000_000))
        #expect(!LegacyAdoption.Commits.batches.isOneTransaction(sourceRows: 1_000, storeRows: 0))
    }

    static func fileSize(_ path: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? -1
    }

    /// The store's journal mode, read on a connection of its own.
    static func journalMode(_ path: String) throws -> String? {
        try DatabaseQueue(path: path).read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
    }

    @Test("another connection has the store open: the import goes through the WAL, and a reader sees the store as before it (no rows, every index); afterwards the indexes are byte for byte the same and answer queries")
    func readerSeesBeforeThenAll() async throws {
        let legacy = dir.path("legacy.db"), path = dir.path("s.db")
        try AdoptionTests.workflowTable(in: legacy, count: 5_000)
        let store = try await AuditStore.create(at: path, keys: keys)
        let before = try Self.indexes(path)
        #expect(before.count == 7)
        // An open connection that has read holds a shared lock on the file, so SQLite cannot leave WAL mode.
        let other = try DatabaseQueue(path: path)
        #expect(try await other.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM audit_entries") } == 0)
        var adoption = workflowAdoption(legacy)
        adoption.windowSize = 1_000
        // Each progress report comes after a window was handed to the writer, inside its open transaction.
        let seen = Mutex<[String]>([])
        let report = try await store.adopt(adoption) { step in
            guard step.imported < 5_000 else { return }
            do {
                let (rows, mode) = try other.read {
                    (try Int.fetchOne($0, sql: "SELECT count(*) FROM audit_entries") ?? -1, try String.fetchOne($0, sql: "PRAGMA journal_mode") ?? "")
                }
                let indexes = try Self.indexes(path)
                let journal = FileManager.default.fileExists(atPath: path + "-journal") ? ", a -journal file" : ""
                seen.withLock { $0.append("\(rows) rows, \(mode), indexes \(indexes == before ? "as before" : "changed: \(indexes)")\(journal)") }
            } catch {
                seen.withLock { $0.append("read failed: \(error)") }
            }
        }
        #expect(report.imported == 5_000 && report.resumedFrom == 0 && report.runSeq == 1)
        let during = seen.withLock { $0 }
        #expect(!during.isEmpty)
        #expect(during.allSatisfy { $0 == "0 rows, wal, indexes as before" }, "\(during)")
        #expect(try Self.indexes(path) == before)
        // Through the re-created indexes: an actor (bucketed index) and a tenant, newest first.
        let actor = try await store.entries(EntryQuery(limit: 1_000, actor: "user-7"))
        #expect(actor.map(\.resourceId) == stride(from: 7, through: 5_000, by: 50).map { "d\($0)" })
        let tenant = try await store.entries(EntryQuery(limit: 3, descending: true, tenant: "tenant-1"))
        #expect(tenant.map(\.resourceId) == ["d4997", "d4993", "d4989"])
        #expect(try await store.verify().isIntact)  // the schema check and the index proof included
        try await store.close()
        try other.close()
    }

    /// Nothing else has the store open, so the import goes through SQLite's rollback journal
    /// (BulkLoadJournal). A crash image (the database file, then its hot journal, copied while the
    /// writer is mid-import) must open as the store before the run: SQLite plays the journal back.
    @Test("nothing else has the store open: the import goes through the rollback journal; a connection opened meanwhile sees the store as before or waits, never part of it; a crash image opens as the store before it; afterwards the store is in WAL mode")
    func rollbackJournalImport() async throws {
        let legacy = dir.path("legacy.db"), path = dir.path("s.db")
        try AdoptionTests.workflowTable(in: legacy, count: 20_000)
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(sampleEvent(1))  // a store that is not empty: its pages go to the journal when changed
        let before = try Self.indexes(path)
        let sizeBefore = try Self.fileSize(path)
        var adoption = workflowAdoption(legacy)
        adoption.windowSize = 1_000  // ~10 MB of rows: the writer's 2 MB cache spills into the file mid-import
        let crash = dir.path("crash")
        try FileManager.default.createDirectory(atPath: crash, withIntermediateDirectories: false)
        let seen = Mutex<[String]>([])
        let copied = Mutex(false)
        let report = try await store.adopt(adoption) { step in
            guard step.imported < 20_000 else { return }
            let journal = FileManager.default.fileExists(atPath: path + "-journal") ? try? Self.fileSize(path + "-journal") : 0
            var outcome = (journal ?? 0) > 0 ? "a hot journal, " : "no journal, "
            do {
                var configuration = Configuration()
                configuration.busyMode = .immediateError
                let reader = try DatabaseQueue(path: path, configuration: configuration)
                outcome += "\(try reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM audit_entries") ?? -1 }) rows"
                try reader.close()
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
                outcome += "busy"
            } catch {
                outcome += "failed: \(error)"
            }
            seen.withLock { $0.append(outcome) }
            if step.imported >= 15_000, !copied.withLock({ $0 }) {
                do {
                    // The file first, then the journal: a page the file holds overwritten was journaled before.
                    try FileManager.default.copyItem(atPath: path, toPath: crash + "/s.db")
                    try FileManager.default.copyItem(atPath: path + "-journal", toPath: crash + "/s.db-journal")
                    copied.withLock { $0 = true }
                } catch {
                    seen.withLock { $0.append("copy failed: \(error)") }
                }
            }
        }
        #expect(report.imported == 20_000 && report.runSeq == 2)
        let during = seen.withLock { $0 }
        #expect(during.count >= 12)
        // Never part of the run: the row from before it, or a wait.
        #expect(during.allSatisfy { $0.hasSuffix(", 1 rows") || $0.hasSuffix(", busy") }, "\(during)")
        // The channel holds one window: from the third report on, the writer has taken one and is
        // inside its transaction, whose changes are in the journal (the first two may come before it began).
        #expect(during.dropFirst(2).allSatisfy { $0.hasPrefix("a hot journal, ") }, "\(during)")
        #expect(copied.withLock { $0 })
        #expect(!FileManager.default.fileExists(atPath: path + "-journal"))
        #expect(try Self.journalMode(path) == "wal")
        #expect(try Self.indexes(path) == before)
        #expect(try await store.entries(EntryQuery(limit: 2, descending: true, actor: "user-7")).map(\.resourceId) == ["d19957", "d19907"])
        #expect(try await store.verify().isIntact)
        try await store.close()

        // The crash image: the open plays the journal back; the store is as it was before the run.
        let image = crash + "/s.db"
        let imageSize = try Self.fileSize(image)
        #expect(imageSize > sizeBefore, "the copy holds pages the writer spilled past the file's old end: \(imageSize) bytes, \(sizeBefore) before the run")
        let reopened = try await AuditStore.open(at: image, keys: keys)
        #expect(try await reopened.lastSeq() == 1)
        #expect(!FileManager.default.fileExists(atPath: image + "-journal"))
        #expect(try Self.journalMode(image) == "wal")
        #expect(try Self.indexes(image) == before)
        #expect(try await reopened.verify().isIntact)
        try await reopened.close()
    }

    @Test("the index build sorts on SQLite helper threads, and gives the connection its own setting back, also when a statement fails")
    func indexBuildRestoresWorkerThreads() throws {
        let queue = try DatabaseQueue(path: dir.path("threads.db"))
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t(a INTEGER, b TEXT)")
            try db.execute(sql: "INSERT INTO t VALUES (1, 'x'), (2, 'y')")
            try db.execute(sql: "PRAGMA threads = 3")
            // What the connection's setting is while the build runs, recorded between two index statements.
            try db.execute(sql: "CREATE TEMP TABLE seen(n INTEGER)")
            try BulkLoadIndexes.create(
                ["CREATE INDEX t_a ON t(a)", "INSERT INTO seen SELECT * FROM pragma_threads", "CREATE INDEX t_b ON t(b)"], db)
            let during = try Int.fetchOne(db, sql: "SELECT n FROM seen")
            #expect(during == min(4, ProcessInfo.processInfo.activeProcessorCount))
            #expect(try Int.fetchOne(db, sql: "PRAGMA threads") == 3)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 't'") == 2)
            #expect(throws: DatabaseError.self) { try BulkLoadIndexes.create(["CREATE INDEX t_c ON t(no_such_column)"], db) }
            #expect(try Int.fetchOne(db, sql: "PRAGMA threads") == 3)
        }
    }

    @Test("an invalid row in a late window, met while writing: everything rolls back, nothing stays, the indexes are intact")
    func invalidRowRollsBack() async throws {
        let legacy = dir.path("legacy.db"), path = dir.path("s.db")
        try AdoptionTests.workflowTable(in: legacy, count: 1_000)
        try sqlite3Must(legacy, "UPDATE audit_events SET details = '{\"broken\": ' WHERE id = 950;")
        let store = try await AuditStore.create(at: path, keys: keys)
        let before = try Self.indexes(path)
        var adoption = workflowAdoption(legacy)
        adoption.windowSize = 100  // nine windows are written before the bad row is read
        await #expect { _ = try await store.adopt(adoption) } throws: {
            guard let error = $0 as? AuditError else { return false }
            return error.code == .invalidInput && error.message.contains("1 source row(s) are invalid; nothing was imported")
                && error.message.contains("row 950: details: invalid JSON")
        }
        #expect(try await store.lastSeq() == 0)
        #expect(try Self.indexes(path) == before)
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("cancelled mid-import: nothing of the run stays (no run entry); run again, it starts over and finishes")
    func cancelledLeavesNothing() async throws {
        let legacy = dir.path("legacy.db"), path = dir.path("s.db")
        try AdoptionTests.workflowTable(in: legacy, count: 3_000)
        let store = try await AuditStore.create(at: path, keys: keys)
        var adoption = workflowAdoption(legacy)
        adoption.windowSize = 500
        let reports = SharedCounter()
        let handle = Task<AdoptionReport, any Error>.detached { [store] in
            try await store.adopt(adoption) { _ in
                if reports.value.add(1, ordering: .relaxed).newValue == 1 { withUnsafeCurrentTask { $0?.cancel() } }
            }
        }
        await #expect(throws: CancellationError.self) { _ = try await handle.value }
        #expect(try await store.lastSeq() == 0)
        try await store.append(sampleEvent(1))  // the store takes appends at once
        let report = try await store.adopt(adoption)
        #expect(report.runSeq == 2 && report.resumedFrom == 0 && report.imported == 3_000)
        let entries = try await allEntries(store)
        #expect(entries.filter { $0.action == "auditdb.migration.adopt" }.count == 1)
        #expect(entries.dropFirst(2).map(\.resourceId) == (1...3_000).map { "d\($0)" })
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("forced into a larger store (one-transaction), and automatic into it (batches): the same rows, verified")
    func largerStore() async throws {
        let legacy = dir.path("legacy.db"), path = dir.path("s.db")
        try AdoptionTests.workflowTable(in: legacy, count: 300)
        try await makeStore(at: path, keys: keys, count: 400)
        let store = try await AuditStore.open(at: path, keys: keys)
        let before = try Self.indexes(path)
        var adoption = workflowAdoption(legacy)
        adoption.commits = .oneTransaction
        let forced = try await store.adopt(adoption)
        #expect(forced.runSeq == 401 && forced.imported == 300)
        #expect(try Self.indexes(path) == before)
        // A second table of as many rows, automatic: 701 rows in the store > 300 in the source.
        // (Other values: the very same rows again would be refused as the same table.)
        try sqlite3Must(legacy, "CREATE TABLE audit_events2 AS SELECT * FROM audit_events; UPDATE audit_events2 SET action = 'archive-' || action;")
        let automatic = try await store.adopt(workflowAdoption(legacy, table: "audit_events2"))
        #expect(automatic.runSeq == 702 && automatic.imported == 300)
        #expect(try await store.entries(EntryQuery(limit: 1_000, resourceId: "d42")).map(\.seq) == [443, 744])
        #expect(try await store.verify().isIntact)
        try await store.close()
    }
}
